"""The errors the workbench raises, and the CLI exit code each maps to.

=====  ===========================================================================================
code   meaning
=====  ===========================================================================================
0      every (asserted) check passed
1      a theory check failed (or, for ``workbench check``, a recomputed check differs from the record)
2      bad input, found before any computing: an unknown study, field or preset, a malformed or
       out-of-range value, a config too large for the memory, a runs directory that is not a writable
       directory, a missing or damaged record (`WorkbenchInputError` and its subclasses)
3      a run failed: divergence, gradient underflow, a failed ODE or convex solve, the allocator ran
       out of memory, or the record could not be written (`TrainingError`, `RecordWriteError`)
4      an internal error (a bug): the traceback goes to a log file, one line to stderr
130    interrupted (Ctrl-C); finished runs are kept
=====  ===========================================================================================

`TrainingError` and its subclasses carry what was computed before the failure (``partial``) and
where it happened (``step``, ``time``, ``members``, ``phase``), so nothing is lost; the runner
keeps those arrays in ``<hash>.failed/`` and never writes them as a complete record.
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable, Sequence

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_RUN_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class WorkbenchInputError(ValueError):
    """Bad input from a person: unknown study or field, malformed or out-of-range value."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(WorkbenchInputError):
    """A config field is unknown, malformed or out of range."""


class UnknownStudyError(WorkbenchInputError):
    """No study with that name is registered."""


class RunsDirectoryError(WorkbenchInputError):
    """The runs directory (``--out``, ``$WORKBENCH_RUNS``) is not a writable directory."""


class TooLargeError(ConfigError):
    """The config's largest tensor would not fit in the memory available (estimated before running)."""


class RecordError(WorkbenchInputError):
    """A run record is missing, unreadable or damaged (a file fails its checksum or does not parse)."""


class TrainingError(RuntimeError):
    """A run stopped before it finished.  `partial` holds what was computed up to `step` (or `time`)."""

    exit_code = EXIT_RUN_FAILED

    def __init__(self, message: str, *, step: int | None = None, partial: Any = None, time: float | None = None,
                 members: Sequence[int] | None = None, phase: str | None = None):
        super().__init__(message)
        self.step = step
        """The step at which it failed (for an ODE: how many output times were reached)."""
        self.partial = partial
        """What was computed before the failure: a `Record`, a dict of arrays or a result dataclass."""
        self.time = time
        """For an integration: the time t reached."""
        self.members = list(members) if members is not None else None
        """The ensemble members that failed (None: not known, or all)."""
        self.phase = phase
        """The study's phase (sub-experiment) in which it failed."""


class DivergenceError(TrainingError):
    """A loss, parameter or state became NaN/Inf (or exceeded a divergence threshold)."""


class GradientUnderflowError(TrainingError):
    """Every gradient entry of a member is exactly zero: the float64 precision horizon was hit."""


class IntegrationError(TrainingError):
    """An ODE integration failed (solver status, non-finite state)."""


class SolverError(TrainingError):
    """A convex or root-finding solve failed or was infeasible."""


class OutOfMemoryError(TrainingError):
    """The allocator could not give a tensor the run needed (CPU or GPU memory)."""


class RecordWriteError(RuntimeError):
    """The record could not be written (disk full, permissions changed during the run); nothing
    half-written is left behind."""

    exit_code = EXIT_RUN_FAILED


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix naming the closest candidate, or '' if none is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""
