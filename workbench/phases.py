"""A study's run as a list of phases, each a sub-experiment that returns a typed result.

A study declares its phases once, in ``simulate.py``::

    PHASES = (
        Phase("toy", toy),                          # toy(cfg) -> ToyResult
        Phase("main", main, grad=True),             # autograd on for this phase
        Phase("evaluate", evaluate, needs=("main",)),  # evaluate(cfg, main=<MainResult>) -> ...
    )

    def run(config, *, progress=True) -> Record:
        return run_phases(NAME, config, PHASES, progress=progress)

`run_phases` owns what every study used to write itself: one intra-op thread on the CPU, autograd
off unless the phase asks for it, the progress bar, the wall time of each phase, and on a failure
(`TrainingError`) a partial `Record` holding every finished phase plus what the failing phase had
computed, so nothing is lost.  The device and dtype come from the config alone.

A result is a dataclass.  `store` writes it flat into the record as ``<phase>.<field>`` (a nested
dataclass or a ``dict`` of arrays adds ``.<key>``), so ``arrays.npz`` stays readable with numpy
alone; `load` reads it back as the same dataclass from the field annotations.  A field declared
with ``field(metadata=TRANSIENT)`` is kept in memory for later phases (tensors on the device,
fitted models) but not written.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import inspect
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from workbench.errors import TrainingError
from workbench.progress import progress_bar
from workbench.record import Record, keep_finished, to_numpy
from workbench.runtime import single_thread

TRANSIENT = {"store": False}
"""``field(default=None, metadata=TRANSIENT)``: kept in memory for later phases, never stored."""


@dataclass(frozen=True)
class Phase:
    name: str
    """The phase's name: its result is stored under ``<name>.``."""
    fn: Callable[..., Any]
    """``fn(cfg, [progress=...], **{need: result})`` returning a result dataclass (or a dict of arrays)."""
    needs: tuple[str, ...] = ()
    """Earlier phases whose results ``fn`` takes as keyword arguments of the same names."""
    grad: bool = False
    """Run with autograd on (default: off, as every exact trainer computes its own gradients)."""
    inputs: Callable[[Any], Any] | None = None
    """The part of the config the phase (and every phase it needs) reads, e.g. ``lambda cfg: cfg.toy``.
    With it the phase is reused from the phase cache whenever those inputs (and the run-level
    seed, n_seeds, dtype, device and the code) are unchanged: sweeping a primary field then reruns
    only the phases that read it.  Without it the phase always runs."""

    @property
    def result_type(self) -> type | None:
        """The dataclass ``fn`` is annotated to return (None for a dict of arrays)."""
        hint = self.return_annotation
        return hint if dataclasses.is_dataclass(hint) else None

    @property
    def return_annotation(self) -> Any:
        return typing.get_type_hints(self.fn).get("return")


_PHASE_CACHE: contextvars.ContextVar[tuple[Path, str] | None] = contextvars.ContextVar("phase_cache", default=None)


@contextlib.contextmanager
def phase_cache(folder: str | Path, fingerprint: str):
    """Within this block `run_phases` reuses (and stores) the results of phases that declare their
    ``inputs``, in ``folder`` (the runner passes ``<runs>/<study>/.phases`` and the code fingerprint)."""
    token = _PHASE_CACHE.set((Path(folder), fingerprint))
    try:
        yield
    finally:
        _PHASE_CACHE.reset(token)


def run_phases(study: str, config: Any, phases: Sequence[Phase], *, progress: bool = True) -> Record:
    """Run ``phases`` in order at ``config`` and return the record of their results."""
    names = [p.name for p in phases]
    if len(set(names)) != len(names):
        raise ValueError(f"{study}: phase names repeat: {names}")
    for i, phase in enumerate(phases):
        unknown = [n for n in phase.needs if n not in names[:i]]
        if unknown:
            raise ValueError(f"{study}: phase {phase.name!r} needs {unknown}, which do not run before it")
    record = Record(study=study, config=config)
    last_use = {p.name: max([i for i, q in enumerate(phases) if p.name in q.needs], default=-1)
                for p in phases}
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    reused_phases: list[str] = []
    bar = progress_bar(total=len(phases), desc=study, unit="phase", enabled=progress)
    try:
        with single_thread(config.torch_device):
            for index, phase in enumerate(phases):
                bar.set_postfix_str(phase.name)
                start = time.perf_counter()
                cached = _cache_path(study, config, phase)
                reused = _reuse(cached, phase)
                if reused is not None:
                    results[phase.name], arrays = reused
                    record.arrays.update(arrays)
                    reused_phases.append(phase.name)
                    timings[phase.name] = round(time.perf_counter() - start, 3)
                    bar.update(1)
                    continue
                kwargs = {need: results[need] for need in phase.needs}
                if "progress" in inspect.signature(phase.fn).parameters:
                    kwargs["progress"] = progress
                try:
                    with torch.enable_grad() if phase.grad else torch.no_grad():
                        result = phase.fn(config, **kwargs)
                except TrainingError as err:
                    keep_finished(err, record, phase.name)
                    raise
                results[phase.name] = result
                store(record, phase.name, result)
                if cached is not None:
                    _save_cached(cached, {k: v for k, v in record.arrays.items() if k.startswith(phase.name + ".")})
                del result
                for name in [n for n in results if last_use[n] <= index]:
                    del results[name]  # no later phase needs it: free its in-memory (transient) parts
                timings[phase.name] = round(time.perf_counter() - start, 3)
                bar.update(1)
    finally:
        bar.close()
    record.info["phase_seconds"] = timings
    if reused_phases:
        record.info["phases_reused"] = reused_phases
    return record


def _cache_path(study: str, config: Any, phase: Phase) -> Path | None:
    """Where the phase cache keeps this phase's result at this config (None: not cacheable here)."""
    where = _PHASE_CACHE.get()
    if where is None or phase.inputs is None:
        return None
    kind = phase.result_type
    if kind is not None and any(not f.metadata.get("store", True) for f in dataclasses.fields(kind)):
        return None  # a result with in-memory parts cannot be rebuilt from its arrays
    import hashlib
    import json

    folder, fingerprint = where
    inputs = phase.inputs(config)
    blob = json.dumps({"study": study, "phase": phase.name, "code": fingerprint,
                       "run": [config.seed, config.n_seeds, config.dtype, str(config.device)],
                       "inputs": _canonical(inputs)}, sort_keys=True, default=repr)
    return folder / f"{phase.name}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.npz"


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__qualname__,
                **{f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, (tuple, list)):
        return [_canonical(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    return value


def _reuse(path: Path | None, phase: Phase) -> tuple[Any, dict[str, np.ndarray]] | None:
    """(typed result, arrays) of a cached phase, or None (no cache, a miss, or an unreadable file)."""
    if path is None or not path.is_file():
        return None
    from workbench.record import load_npz

    try:
        arrays = load_npz(path)
        annotation = phase.return_annotation
        result = _unflatten(arrays, phase.name, annotation) if annotation is not None else arrays
    except Exception:  # a damaged or stale cache file is recomputed, never trusted
        return None
    return result, arrays


def _save_cached(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write a phase's arrays atomically (a concurrent writer of the same key writes the same bytes)."""
    import os
    import tempfile

    from workbench.record import save_npz

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        save_npz(Path(tmp), arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # the cache is an optimisation: a full disk only costs a recomputation


# ------------------------------------------------------------------------- typed results
def store(record: Record, name: str, result: Any) -> None:
    """Write ``result`` (a dataclass, or a mapping of arrays) into ``record`` under ``name.``."""
    record.arrays.update(flatten(name, result))


def flatten(prefix: str, value: Any) -> dict[str, np.ndarray]:
    """``{"<prefix>.<field>[.<key>]": array}`` for a dataclass or a mapping, recursively."""
    out: dict[str, np.ndarray] = {}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            if f.metadata.get("store", True):
                item = getattr(value, f.name)
                if item is not None:
                    out.update(flatten(f"{prefix}.{f.name}", item))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if item is not None:
                out.update(flatten(f"{prefix}.{key}", item))
    elif isinstance(value, (torch.Tensor, np.ndarray, bool, int, float, str, np.generic)) or _is_flat_sequence(value):
        out[prefix] = to_numpy(value)
    else:
        raise TypeError(f"cannot store {prefix!r}: {type(value).__name__} is not an array, number, string, "
                        "dataclass or mapping")
    return out


def load(record: Record | Mapping[str, np.ndarray], name: str, cls: type) -> Any:
    """The result of phase ``name`` read back from the record's arrays as a ``cls`` instance."""
    arrays = record.arrays if isinstance(record, Record) else record
    return _unflatten(arrays, name, cls)


def _unflatten(arrays: Mapping[str, np.ndarray], prefix: str, annotation: Any) -> Any:
    if dataclasses.is_dataclass(annotation):
        hints = typing.get_type_hints(annotation)
        values = {}
        for f in dataclasses.fields(annotation):
            if not f.init:
                continue
            if not f.metadata.get("store", True):
                values[f.name] = None
                continue
            values[f.name] = _unflatten(arrays, f"{prefix}.{f.name}", hints[f.name])
        return annotation(**values)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (dict, Mapping, typing.Mapping) or annotation is dict:
        head = prefix + "."
        keys = sorted({k[len(head):].split(".")[0] for k in arrays if k.startswith(head)})
        inner = args[1] if len(args) == 2 else np.ndarray
        return {k: _unflatten(arrays, head + k, inner) for k in keys}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        if prefix not in arrays and not any(k.startswith(prefix + ".") for k in arrays):
            return None
        concrete = [a for a in args if a is not type(None)]
        return _unflatten(arrays, prefix, concrete[0]) if len(concrete) == 1 else arrays[prefix]
    if prefix not in arrays:
        raise KeyError(f"record has no array {prefix!r}")
    value = arrays[prefix]
    if annotation in (float, int, bool, str):
        return annotation(value.item() if value.ndim == 0 else value)
    if origin is tuple:
        return tuple(value.tolist())
    return value


def _is_flat_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str, np.generic)) for v in value)
