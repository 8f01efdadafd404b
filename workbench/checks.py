"""Theory checks: a prediction from the theory, a measurement from the simulation, a tolerance.

Build checks with the constructors, which compute ``passed`` from the numbers so a check can never
be hard-wired to pass:

>>> Check.close("gd_risk", "one-step GD risk matches its closed form", predicted=0.5,
...             measured=0.5004, rtol=1e-2, regime="isotropic, N=20, 20k prompts")  # doctest: +SKIP

A measured value that is NaN fails every check.

Every check has a ``kind``: ``theory`` (a theorem's prediction against a measurement of the
simulation), ``identity`` (true by construction of the model or the algebra) or ``numerics`` (a
solver's or integrator's accuracy).  A preset may declare a check outside its regime
(`Check.not_asserted`): it is still computed and shown, as "not asserted", but never counted and
never printed as FAIL.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from dataclasses import replace as _replace
from typing import Any, Iterable, Literal, Sequence

KINDS = ("theory", "identity", "numerics")
Kind = Literal["theory", "identity", "numerics"]


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
    kind: Kind = "theory"
    """theory | identity | numerics (see the module docstring)."""
    asserted: bool = True
    """False when the run's preset lies outside the check's regime: shown, not counted."""
    alternative: str | None = None
    """A theory check's nearest rival hypothesis, in a few words."""
    alternative_predicted: str | None = None
    """What the rival predicts, computed the same way as ``predicted``."""
    discriminates: bool | None = None
    """True when the measurement rejects the rival at the check's own tolerance."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"check {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def status(self) -> str:
        """'PASS', 'FAIL' or 'not asserted' (a check outside the preset's regime)."""
        if not self.asserted:
            return "not asserted"
        return "PASS" if self.passed else "FAIL"

    @property
    def ok(self) -> bool:
        """What counts for the verdict of a run: passed, or not asserted at this preset."""
        return self.passed or not self.asserted

    def not_asserted(self, reason: str) -> "Check":
        """This check declared outside the preset's regime (``reason`` says why, in a few words)."""
        return _replace(self, asserted=False, regime=f"{self.regime}; not asserted at this preset: {reason}")

    def only_if(self, in_regime: bool, reason: str) -> "Check":
        """This check, or (when ``in_regime`` is False) the same check declared not asserted."""
        return self if in_regime else self.not_asserted(reason)

    def as_kind(self, kind: Kind) -> "Check":
        return _replace(self, kind=kind)

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
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def all_passed(checks: Iterable[Check]) -> bool:
    """Every asserted check passed (checks declared out of the preset's regime do not count)."""
    return all(c.ok for c in checks)


def summary(checks: Sequence[Check]) -> str:
    """'12/12 checks passed' (plus how many were not asserted at this preset)."""
    asserted = [c for c in checks if c.asserted]
    text = f"{sum(c.passed for c in asserted)}/{len(asserted)} checks passed"
    skipped = len(checks) - len(asserted)
    return text + (f" ({skipped} not asserted at this preset)" if skipped else "")


def checks_table(checks: Sequence[Check], *, markdown: bool = False, width: int = 60) -> str:
    """The checks as a table: name | claim | predicted | measured | tolerance | pass."""
    header = ["check", "claim", "predicted", "measured", "tolerance", "pass"]
    rows = [[c.name, c.claim, c.predicted, _fmt(c.measured), c.tolerance, c.status] for c in checks]
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
    out.append(summary(checks))
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
