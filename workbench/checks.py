"""Theory checks: a prediction from the theory, a measurement from the simulation, a tolerance.

Build checks with the constructors, which compute ``passed`` from the numbers so a check can never
be hard-wired to pass:

>>> Check.close("gd_risk", "one-step GD risk matches its closed form", predicted=0.5,
...             measured=0.5004, rtol=1e-2, regime="isotropic, N=20, 20k prompts")  # doctest: +SKIP

A measured value that is NaN fails every check.

Every check has a ``kind``: ``theory`` (a theorem's prediction against a measurement of the
simulation), ``identity`` (true by construction of the model or the algebra), ``numerics`` (a
solver's or integrator's accuracy) or ``observation`` (an empirical threshold no theory predicts:
reported beside the others, never counted, and it never fails a run).  A preset may declare a check outside its regime
(`Check.not_asserted`): it is still computed and shown, as "not asserted", but never counted and
never printed as FAIL.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from dataclasses import replace as _replace
from typing import Any, Callable, Iterable, Literal, Sequence

KINDS = ("theory", "identity", "numerics", "observation")
Kind = Literal["theory", "identity", "numerics", "observation"]


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
    rule: Callable[[Any], bool] | None = field(default=None, compare=False, repr=False)
    """The builder's pass rule on a measured value (not stored): `passes` applies it."""

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
        """What counts for the verdict of a run: passed, not asserted at this preset, or an
        observation (reported, never counted)."""
        return self.passed or not self.asserted or self.kind == "observation"

    def passes(self, measured: Any) -> bool:
        """Whether this check would pass with ``measured`` in place of its measurement (a
        negative control: fed the alternative's prediction, a discriminating check fails)."""
        if self.rule is None:
            raise ValueError(f"check {self.name!r} was built by `holds` or loaded from disk: it has no rule")
        return bool(self.rule(measured))

    def not_asserted(self, reason: str) -> "Check":
        """This check declared outside the preset's regime (``reason`` says why, in a few words)."""
        return _replace(self, asserted=False, regime=f"{self.regime}; not asserted at this preset: {reason}")

    def contradicted(self, why: str) -> "Check":
        """A theory claim whose bar was stated before the run and which the measurement missed, kept
        with that bar and its rival and reported as an observation ("not observed" while it misses),
        not re-tuned; ``why`` says what was measured and where the chapter explains it."""
        return _replace(self, kind="observation", regime=f"{self.regime}; {why}")

    def only_if(self, in_regime: bool, reason: str) -> "Check":
        """This check, or (when ``in_regime`` is False) the same check declared not asserted."""
        return self if in_regime else self.not_asserted(reason)

    def as_kind(self, kind: Kind) -> "Check":
        return _replace(self, kind=kind)

    # ---------------------------------------------------------------------------- builders
    # Every builder takes ``kind`` and, for a theory check, ``alternative`` (the rival hypothesis in a
    # few words) with ``alternative_predicted`` (the rival's value of the measured quantity, computed
    # the same way as ``predicted``).  ``discriminates`` is then computed: the rival's value fails the
    # check's own pass rule (fed the alternative, the check fails) and, for a two-sided check, the
    # measurement lies outside the tolerance around the rival too.  ``no_alternative`` states, in one
    # sentence, why a theory check has no rival.
    @classmethod
    def _build(cls, rule, name, claim, predicted, measured, tolerance, regime, *, kind, alternative,
               alternative_predicted, no_alternative, rejects_alt=None) -> "Check":
        passed = bool(rule(measured))
        alt_text, discriminates = _alternative(rule, passed, alternative, alternative_predicted, no_alternative,
                                               rejects_alt)
        return cls(name, claim, predicted, _num(measured), tolerance, regime, passed, kind=kind,
                   alternative=alt_text, alternative_predicted=None if alternative_predicted is None
                   else _fmt(alternative_predicted), discriminates=discriminates, rule=rule)

    @classmethod
    def close(cls, name: str, claim: str, predicted: float, measured: float, *, rtol: float = 0.0,
              atol: float = 0.0, regime: str, kind: Kind = "theory", alternative: str | None = None,
              alternative_predicted: float | None = None, no_alternative: str | None = None) -> "Check":
        """|measured - predicted| <= atol + rtol * |predicted|."""
        def near(centre):
            return lambda m: _finite(m) and _finite(centre) and abs(float(m) - centre) <= atol + rtol * abs(centre)
        tol = " + ".join(s for s in (f"{atol:.2g}" if atol else "", f"{rtol:.2g}*|p|" if rtol else "") if s) or "0"
        rejects = None if alternative_predicted is None else not near(float(alternative_predicted))(measured)
        return cls._build(near(float(predicted)) if _finite(predicted) else (lambda m: False), name, claim,
                          _fmt(predicted), measured, f"|m-p| <= {tol}", regime, kind=kind, alternative=alternative,
                          alternative_predicted=alternative_predicted, no_alternative=no_alternative,
                          rejects_alt=rejects)

    @classmethod
    def at_most(cls, name: str, claim: str, bound: float, measured: float, *, regime: str,
                predicted: str | None = None, kind: Kind = "theory", alternative: str | None = None,
                alternative_predicted: float | None = None, no_alternative: str | None = None) -> "Check":
        """measured <= bound."""
        return cls._build(lambda m: _finite(m) and float(m) <= bound, name, claim, predicted or f"<= {_fmt(bound)}",
                          measured, f"m <= {_fmt(bound)}", regime, kind=kind, alternative=alternative,
                          alternative_predicted=alternative_predicted, no_alternative=no_alternative)

    @classmethod
    def at_least(cls, name: str, claim: str, bound: float, measured: float, *, regime: str,
                 predicted: str | None = None, kind: Kind = "theory", alternative: str | None = None,
                 alternative_predicted: float | None = None, no_alternative: str | None = None) -> "Check":
        """measured >= bound."""
        return cls._build(lambda m: _finite(m) and float(m) >= bound, name, claim, predicted or f">= {_fmt(bound)}",
                          measured, f"m >= {_fmt(bound)}", regime, kind=kind, alternative=alternative,
                          alternative_predicted=alternative_predicted, no_alternative=no_alternative)

    @classmethod
    def within(cls, name: str, claim: str, low: float, high: float, measured: float, *, regime: str,
               predicted: str | None = None, kind: Kind = "theory", alternative: str | None = None,
               alternative_predicted: float | None = None, no_alternative: str | None = None) -> "Check":
        """low <= measured <= high."""
        return cls._build(lambda m: _finite(m) and low <= float(m) <= high, name, claim,
                          predicted or f"[{_fmt(low)}, {_fmt(high)}]", measured, f"{_fmt(low)} <= m <= {_fmt(high)}",
                          regime, kind=kind, alternative=alternative, alternative_predicted=alternative_predicted,
                          no_alternative=no_alternative)

    @classmethod
    def holds(cls, name: str, claim: str, condition: bool, *, measured: float | str, predicted: str,
              tolerance: str, regime: str, kind: Kind = "theory", alternative: str | None = None,
              alternative_holds: bool | None = None, alternative_predicted: str | None = None,
              no_alternative: str | None = None) -> "Check":
        """A check whose pass condition is computed by the caller (e.g. an ordering or a count).

        ``condition`` must be computed from measured data; ``measured`` shows what it was.  For a
        theory check, ``alternative_holds`` is the same condition evaluated on the rival's prediction
        (the check discriminates when the measurement satisfies it and the rival does not).
        """
        shown = _num(measured) if isinstance(measured, (int, float)) else measured
        alt_text, discriminates = _alternative(None, bool(condition), alternative, None, no_alternative,
                                               None if alternative_holds is None else not alternative_holds)
        return cls(name, claim, predicted, shown, tolerance, regime, bool(condition), kind=kind,
                   alternative=alt_text, alternative_predicted=alternative_predicted, discriminates=discriminates)

    # ------------------------------------------------------------------------------- I/O
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rule"}
        if isinstance(d["measured"], float) and not math.isfinite(d["measured"]):
            d["measured"] = repr(d["measured"])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Check":
        """The inverse of `to_dict`, a non-finite measurement (stored as its repr, JSON has no NaN) read back as
        the float it was."""
        known = {f for f in cls.__dataclass_fields__}
        data = {k: v for k, v in data.items() if k in known}
        if data.get("measured") in _NON_FINITE:
            data["measured"] = float(data["measured"])
        return cls(**data)


_NON_FINITE = (repr(math.nan), repr(math.inf), repr(-math.inf))
"""How `Check.to_dict` writes a non-finite measurement."""


def _alternative(rule, passed, alternative, alternative_predicted, no_alternative, rejects_alt):
    """(the alternative's text, discriminates) for a builder."""
    if alternative is not None and no_alternative is not None:
        raise ValueError("give either an alternative or the reason there is none, not both")
    if no_alternative is not None:
        return f"none: {no_alternative}", None
    if alternative is None:
        return None, None
    fails_on_alt = rejects_alt
    if rule is not None and alternative_predicted is not None:
        fails_on_alt = not rule(alternative_predicted) and (True if rejects_alt is None else rejects_alt)
    return alternative, None if fails_on_alt is None else bool(passed and fails_on_alt)


def all_passed(checks: Iterable[Check]) -> bool:
    """Every asserted check passed (checks declared out of the preset's regime do not count)."""
    return all(c.ok for c in checks)


def summary(checks: Sequence[Check]) -> str:
    """'5/5 theory checks passed, 4 discriminate; 3/3 identity, 2/2 numerics' (plus how many were
    not asserted at this preset).  The headline counts theory checks."""
    asserted = [c for c in checks if c.asserted]
    theory = [c for c in asserted if c.kind == "theory"]
    parts = [f"{sum(c.passed for c in theory)}/{len(theory)} theory checks passed"]
    if theory:
        rivals = sum(c.discriminates is None and (c.alternative or "").startswith("none:") for c in theory)
        parts[0] += f" ({sum(bool(c.discriminates) for c in theory)} discriminate" + (
            f", {rivals} {'has' if rivals == 1 else 'have'} no rival)" if rivals else ")")
    others = [f"{sum(c.passed for c in asserted if c.kind == k)}/{n} {k}"
              for k in KINDS[1:] if (n := sum(c.kind == k for c in asserted))]
    text = "; ".join(parts + others)
    skipped = len(checks) - len(asserted)
    return text + (f"; {skipped} not asserted at this preset" if skipped else "")


def verdict(check: Check) -> str:
    """The status shown in tables: PASS / FAIL / not asserted, and a theory check that passed
    without rejecting its rival is flagged."""
    if check.kind == "observation" and check.asserted:
        return "observed" if check.passed else "not observed"
    if check.status == "PASS" and check.kind == "theory" and check.discriminates is False:
        return "PASS (does not discriminate)"
    return check.status


def checks_table(checks: Sequence[Check], *, markdown: bool = False, width: int = 60) -> str:
    """The checks as a table: check | kind | claim | predicted | alternative | measured | tolerance | status."""
    header = ["check", "kind", "claim", "predicted", "alternative", "measured", "tolerance", "status"]
    rows = [[c.name, c.kind, c.claim, c.predicted, _alt_cell(c), _fmt(c.measured), c.tolerance, verdict(c)]
            for c in checks]
    if markdown:
        esc = markdown_escape
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
        return "\n".join(lines)
    clip = lambda s, n: s if len(s) <= n else s[: n - 1] + "…"
    rows = [[r[0], r[1], clip(r[2], width), r[3], clip(r[4], 32)] + r[5:] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()
    out = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    out.append(summary(checks))
    return "\n".join(out)


def _alt_cell(c: Check) -> str:
    if c.alternative is None:
        return "-"
    return c.alternative if c.alternative_predicted is None else f"{c.alternative}: {c.alternative_predicted}"


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
