"""Theory checks: a prediction from the theory, a measurement from the simulation, a tolerance.

Build checks with the constructors, which compute ``passed`` from the numbers so a check can never
be hard-wired to pass:

>>> Check.close("gd_risk", "one-step GD risk matches its closed form", predicted=0.5,
...             measured=0.5004, rtol=1e-2, regime="isotropic, N=20, 20k prompts")  # doctest: +SKIP

A measured value that is NaN fails every check.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class Check:
    name: str
    """Short identifier, stable across runs (e.g. ``cubic_law``)."""
    claim: str
    """One sentence: what the theory says."""
    predicted: str
    """The predicted value or bound, as printed (e.g. ``3``, ``<= 1.2e-3``, ``[2.9, 3.1]``)."""
    measured: float | str
    """The measured value (a number when one number summarises it)."""
    tolerance: str
    """The tolerance or inequality applied (e.g. ``|m-p| <= 0.1``)."""
    regime: str
    """Where the statement holds and was tested (sizes, scales, seeds)."""
    passed: bool

    # ---------------------------------------------------------------------------- builders
    @classmethod
    def close(cls, name: str, claim: str, predicted: float, measured: float, *, rtol: float = 0.0,
              atol: float = 0.0, regime: str) -> "Check":
        """|measured - predicted| <= atol + rtol * |predicted|."""
        bound = atol + rtol * abs(predicted)
        ok = _finite(measured) and _finite(predicted) and abs(measured - predicted) <= bound
        tol = " + ".join(s for s in (f"{atol:.2g}" if atol else "", f"{rtol:.2g}*|p|" if rtol else "") if s) or "0"
        return cls(name, claim, _fmt(predicted), _num(measured), f"|m-p| <= {tol}", regime, bool(ok))

    @classmethod
    def at_most(cls, name: str, claim: str, bound: float, measured: float, *, regime: str,
                predicted: str | None = None) -> "Check":
        """measured <= bound."""
        ok = _finite(measured) and measured <= bound
        return cls(name, claim, predicted or f"<= {_fmt(bound)}", _num(measured), f"m <= {_fmt(bound)}", regime, bool(ok))

    @classmethod
    def at_least(cls, name: str, claim: str, bound: float, measured: float, *, regime: str,
                 predicted: str | None = None) -> "Check":
        """measured >= bound."""
        ok = _finite(measured) and measured >= bound
        return cls(name, claim, predicted or f">= {_fmt(bound)}", _num(measured), f"m >= {_fmt(bound)}", regime, bool(ok))

    @classmethod
    def within(cls, name: str, claim: str, low: float, high: float, measured: float, *, regime: str,
               predicted: str | None = None) -> "Check":
        """low <= measured <= high."""
        ok = _finite(measured) and low <= measured <= high
        return cls(name, claim, predicted or f"[{_fmt(low)}, {_fmt(high)}]", _num(measured),
                   f"{_fmt(low)} <= m <= {_fmt(high)}", regime, bool(ok))

    @classmethod
    def holds(cls, name: str, claim: str, condition: bool, *, measured: float | str, predicted: str,
              tolerance: str, regime: str) -> "Check":
        """A check whose pass condition is computed by the caller (e.g. an ordering or a count).

        ``condition`` must be computed from measured data; ``measured`` shows what it was.
        """
        return cls(name, claim, predicted, _num(measured) if isinstance(measured, (int, float)) else measured,
                   tolerance, regime, bool(condition))

    # ------------------------------------------------------------------------------- I/O
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if isinstance(d["measured"], float) and not math.isfinite(d["measured"]):
            d["measured"] = repr(d["measured"])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Check":
        return cls(**data)


def all_passed(checks: Iterable[Check]) -> bool:
    return all(c.passed for c in checks)


def checks_table(checks: Sequence[Check], *, markdown: bool = False, width: int = 60) -> str:
    """The checks as a table: name | claim | predicted | measured | tolerance | pass."""
    header = ["check", "claim", "predicted", "measured", "tolerance", "pass"]
    rows = [[c.name, c.claim, c.predicted, _fmt(c.measured), c.tolerance, "PASS" if c.passed else "FAIL"] for c in checks]
    if markdown:
        esc = markdown_escape
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
        return "\n".join(lines)
    clip = lambda s, n: s if len(s) <= n else s[: n - 1] + "…"
    rows = [[r[0], clip(r[1], width)] + r[2:] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()
    out = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    n_pass = sum(c.passed for c in checks)
    out.append(f"{n_pass}/{len(checks)} checks passed")
    return "\n".join(out)


def markdown_escape(text: Any) -> str:
    """Text for a Markdown table cell: `|`, `*`, `_`, `$`, backticks and `<` shown literally
    (claims are written in plain ASCII maths such as ``W^mm_*``)."""
    out = str(text).replace("\\", "\\\\")
    for ch in "|*_$`<":
        out = out.replace(ch, "\\" + ch)
    return out


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _num(x: Any) -> float | str:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def _fmt(x: Any) -> str:
    if isinstance(x, str):
        return x
    x = float(x)
    if x == 0 or (1e-3 <= abs(x) < 1e5):
        return f"{x:.4g}"
    return f"{x:.3e}"
