"""The errors the workbench raises, and the CLI exit code each maps to.

`WorkbenchInputError` and its subclasses are bad input (exit 2).  `TrainingError` and its
subclasses are a run that could not finish (divergence, gradient underflow, a failed ODE or convex
solve); they carry what was computed before the failure so nothing is lost, and the runner never
writes them as a complete record.
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable


class WorkbenchInputError(ValueError):
    """Bad input from a person: unknown study or field, malformed or out-of-range value."""

    exit_code = 2


class ConfigError(WorkbenchInputError):
    """A config field is unknown, malformed or out of range."""


class UnknownStudyError(WorkbenchInputError):
    """No study with that name is registered."""


class TrainingError(RuntimeError):
    """A run stopped before it finished.  `partial` holds what was computed up to `step`."""

    exit_code = 3

    def __init__(self, message: str, *, step: int | None = None, partial: Any = None):
        super().__init__(message)
        self.step = step
        self.partial = partial


class DivergenceError(TrainingError):
    """A loss, parameter or state became NaN/Inf (or exceeded a divergence threshold)."""


class GradientUnderflowError(TrainingError):
    """Every gradient entry of a member is exactly zero: the float64 precision horizon was hit."""


class IntegrationError(TrainingError):
    """An ODE integration failed (solver status, non-finite state)."""


class SolverError(TrainingError):
    """A convex or root-finding solve failed or was infeasible."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix naming the closest candidate, or '' if none is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""
