"""Helpers for the book's notebooks: run a study through the shared run cache and display results.

Chapters call ``run_study("rank-collapse", "quick")``; the first call (from `workbench reproduce`
or the book build) computes and saves the record, later calls are cache hits.  Nothing here is
needed outside a notebook.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from workbench.checks import Check, checks_table, markdown_escape
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
    """Display the checks as a Markdown table (claim | predicted | measured | tolerance | pass)."""
    from IPython.display import Markdown, display

    display(Markdown(checks_table(checks, markdown=True)))


def show_figures(figures: Mapping[str, Any]) -> None:
    """Display each figure (PNG) in order."""
    from IPython.display import display

    for fig in figures.values():
        display(fig)
        try:
            import matplotlib.pyplot as plt
            plt.close(fig)
        except ImportError:
            pass


def book_preset(default: str = "quick") -> str:
    """The preset chapters run at: ``quick`` unless ``$WORKBENCH_BOOK_PRESET`` says otherwise
    (the test suite builds the book at ``smoke`` to stay fast)."""
    import os

    return os.environ.get("WORKBENCH_BOOK_PRESET", default)


def summary_table(results: Mapping[str, RunResult], preset: str) -> str:
    """Markdown: one summary row per study, then each study's checks (claim, predicted, measured)."""
    asserted = [c for r in results.values() for c in r.checks if c.asserted]
    n_pass, n_all = sum(c.passed for c in asserted), len(asserted)
    n_out = sum(not c.asserted for r in results.values() for c in r.checks)
    tail = f"; {n_out} not asserted at this preset" if n_out else ""
    out = [f"**{n_pass} of {n_all} checks pass** (preset `{preset}`{tail}).", "",
           "| study | checks passed | run time |", "|---|---|---|"]
    for name, result in results.items():
        mine = [c for c in result.checks if c.asserted]
        ok = sum(c.passed for c in mine)
        wall = result.record.meta.get("wall_time_s")
        out.append(f"| {name} | {ok}/{len(mine)} | {f'{wall:.0f} s' if wall is not None else '-'} |")
    for name, result in results.items():
        out += ["", f"**{name}**", "", "| check | claim | predicted | measured | pass |", "|---|---|---|---|---|"]
        for c in result.checks:
            measured = c.measured if isinstance(c.measured, str) else f"{c.measured:.4g}"
            cells = [c.name, c.claim, c.predicted, measured, "**FAIL**" if c.status == "FAIL" else c.status]
            out.append("| " + " | ".join(markdown_escape(x) if i < 4 else x for i, x in enumerate(cells)) + " |")
    return "\n".join(out)
