"""Helpers for the book's notebooks: run a study through the shared run cache and display results.

Chapters call ``run_study("rank-collapse", "quick")``; the first call (from `workbench reproduce`
or the book build) computes and saves the record, later calls are cache hits.  Nothing here is
needed outside a notebook.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from workbench.checks import Check, markdown_escape
from workbench.runner import RunResult, execute


def run_study(name: str, preset: str | None = None, **kwargs: Any) -> RunResult:
    """Run (or load) a study with the run cache; no progress bars in the book.

    ``preset`` defaults to `book_preset()` (``quick``, or ``$WORKBENCH_BOOK_PRESET``); an explicit
    "quick" is also overridden by ``$WORKBENCH_BOOK_PRESET`` so test builds stay fast.
    """
    kwargs.setdefault("progress", False)
    if preset is None or preset == "quick":
        preset = book_preset()
    return execute(name, preset=preset, **kwargs)


def show_checks(checks: Sequence[Check]):
    """Display the checks: the theory checks (claim | predicted | alternative | measured | status),
    then the identities, numerics and observations, each table with its counts."""
    from IPython.display import Markdown, display

    display(Markdown(checks_markdown(checks)))


def checks_markdown(checks: Sequence[Check]) -> str:
    """The chapter's checks as Markdown: theory checks with their rivals side by side, then the rest."""
    from workbench.checks import summary, verdict

    theory = [c for c in checks if c.kind == "theory"]
    others = [c for c in checks if c.kind != "theory"]
    out = [f"**{markdown_escape(summary(checks))}**", ""]
    if theory:
        out += ["| check | claim | predicted | alternative: its prediction | measured | status |",
                "|---|---|---|---|---|---|"]
        for c in theory:
            alt = "-" if c.alternative is None else (c.alternative if c.alternative_predicted is None
                                                     else f"{c.alternative}: {c.alternative_predicted}")
            out.append(_row([c.name, c.claim, c.predicted, alt, _measured(c)], verdict(c)))
    if others:
        out += ["", "| check | kind | claim | measured | tolerance | status |", "|---|---|---|---|---|---|"]
        for c in others:
            out.append(_row([c.name, c.kind, c.claim, _measured(c), c.tolerance], verdict(c)))
    return "\n".join(out)


def _measured(c: Check) -> str:
    return c.measured if isinstance(c.measured, str) else f"{c.measured:.4g}"


def _row(cells: Sequence[str], status: str) -> str:
    shown = f"**{status}**" if status in ("FAIL",) else status
    return "| " + " | ".join(markdown_escape(x) for x in cells) + f" | {shown} |"


def show_figures(figures: Mapping[str, Any]) -> None:
    """Display each figure (PNG) once, in order.

    A study's ``figures(record)`` returns figures that pyplot has already closed
    (`workbench.plotting.new_figure`), so nothing else shows them: this is the one display.
    """
    from IPython.display import display

    for fig in figures.values():
        display(fig)


def book_preset(default: str = "quick") -> str:
    """The preset chapters run at: ``quick`` unless ``$WORKBENCH_BOOK_PRESET`` says otherwise
    (the test suite builds the book at ``smoke`` to stay fast)."""
    import os

    return os.environ.get("WORKBENCH_BOOK_PRESET", default)


def summary_table(results: Mapping[str, RunResult], preset: str) -> str:
    """Markdown: per study the theory checks passed and how many discriminate, the identities,
    numerics and observations, then each study's checks tables."""
    def count(cs, kind):
        mine = [c for c in cs if c.kind == kind and c.asserted]
        return f"{sum(c.passed for c in mine)}/{len(mine)}" if mine else "-"

    everything = [c for r in results.values() for c in r.checks]
    theory = [c for c in everything if c.kind == "theory" and c.asserted]
    n_out = sum(not c.asserted for c in everything)
    tail = f"; {n_out} not asserted at this preset" if n_out else ""
    out = [f"**{sum(c.passed for c in theory)} of {len(theory)} theory checks pass, "
           f"{sum(bool(c.discriminates) for c in theory)} of them reject their nearest alternative** "
           f"(preset `{preset}`{tail}).", "",
           "| study | theory checks passed | discriminate | identities | numerics | observations | run time |",
           "|---|---|---|---|---|---|---|"]
    for name, result in results.items():
        cs = result.checks
        disc = sum(bool(c.discriminates) for c in cs if c.kind == "theory" and c.asserted)
        wall = result.record.meta.get("wall_time_s")
        out.append(f"| {name} | {count(cs, 'theory')} | {disc} | {count(cs, 'identity')} | {count(cs, 'numerics')} "
                   f"| {count(cs, 'observation')} | {f'{wall:.0f} s' if wall is not None else '-'} |")
    for name, result in results.items():
        out += ["", f"**{name}**", "", checks_markdown(result.checks)]
    return "\n".join(out)
