"""Run a study at a config, with the run cache, checks, figures and an atomic record.

`execute` is what the CLI, the book and `workbench reproduce` call.  Notebook users can call a
study's ``run(config)`` directly; `execute` adds the record directory and the cache:

>>> from workbench.runner import execute                                     # doctest: +SKIP
>>> result = execute("rank-collapse", preset="quick")                        # doctest: +SKIP
>>> result.checks, result.path, result.cached                                # doctest: +SKIP

Before anything is computed, `execute` checks that the runs directory is a writable directory
(`check_runs_root`) and that the config's largest tensor fits in the memory available
(`check_memory`); both are bad input.  A cache hit is verified against the checksums in
``meta.json``; a damaged record is moved aside (``<hash>.damaged-<time>``) with a warning and
recomputed.  A run that fails keeps what it computed in ``<hash>.failed/`` (`save_failed`); an
allocation failure of torch or numpy becomes `OutOfMemoryError` with a message, never a traceback.
"""
from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import torch

from workbench.checks import Check, all_passed
from workbench.config import StudyConfig, resolve_device
from workbench.config import named
from workbench.errors import (OutOfMemoryError, RecordError, RunsDirectoryError, TooLargeError, TrainingError)
from workbench.record import (Record, environment_meta, file_sha256, load_record, partial_arrays, quarantine,
                              read_meta, save_npz, save_record, verify_record, write_directory, _write_json)
from workbench.phases import phase_cache
from workbench.registry import get_study


def runs_root(root: str | Path | None = None) -> Path:
    """Where run records live: ``root``, else ``$WORKBENCH_RUNS``, else ``<repo>/runs``."""
    if root is not None:
        return Path(root)
    env = os.environ.get("WORKBENCH_RUNS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "runs"


def check_runs_root(root: str | Path | None = None) -> Path:
    """The runs directory, made if missing, after checking it is a directory this process can
    write to; `RunsDirectoryError` (bad input, exit 2) otherwise.  Called before any computing."""
    path = runs_root(root)
    if path.exists() and not path.is_dir():
        raise RunsDirectoryError(f"the runs directory {path} is not a directory (it is a file); "
                                 "give --out (or $WORKBENCH_RUNS) a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunsDirectoryError(f"cannot create the runs directory {path}: {err.strerror or err}; "
                                 "give --out (or $WORKBENCH_RUNS) a writable directory") from None
    try:
        _probe_writable(path)
    except OSError as err:
        if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            raise RunsDirectoryError(f"the disk holding the runs directory {path} is full ({err.strerror}); "
                                     "free some space or give --out on another disk") from None
        raise RunsDirectoryError(f"the runs directory {path} is not writable ({err.strerror or err}); "
                                 "give --out (or $WORKBENCH_RUNS) a writable directory") from None
    return path


def _probe_writable(path: Path) -> None:
    """Write (and remove) a small file in ``path``: permissions, a read-only mount and a full disk
    all show up here, before a run computes for minutes."""
    with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-") as f:
        f.write(b"\0" * 4096)
        f.flush()


def available_memory(device: str) -> int | None:
    """Bytes a run may still allocate on ``device`` (None if unknown): free GPU memory, or the
    smaller of ``MemAvailable`` and the cgroup's remaining limit on the CPU."""
    if str(device).startswith("cuda"):
        try:
            free, _total = torch.cuda.mem_get_info(torch.device(device))
            return int(free)
        except Exception:  # pragma: no cover - no CUDA
            return None
    candidates = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit.isdigit() and used.isdigit():
            candidates.append(int(limit) - int(used))
    except OSError:
        pass
    return min(candidates) if candidates else None


def check_memory(study: ModuleType, cfg: StudyConfig) -> None:
    """Refuse (bad input, exit 2) a config whose largest allocation, as the study estimates it
    (`StudyConfig.memory_estimate`), exceeds the memory available."""
    estimate = cfg.memory_estimate()
    if not estimate:
        return
    need, what = estimate
    have = available_memory(cfg.device)
    if have is not None and need > have:
        raise named(type(cfg), TooLargeError(
            f"this config needs about {_bytes(need)} for {what}, more than the {_bytes(have)} available on "
            f"{cfg.device}; reduce the sizes (n_seeds, widths, lengths) or run on a larger machine"))


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def run_dir(study: ModuleType | str, config: StudyConfig, root: str | Path | None = None) -> Path:
    study = get_study(study)
    return runs_root(root) / study.NAME / config.content_hash()


@dataclass
class RunResult:
    record: Record
    checks: list[Check]
    path: Path | None
    cached: bool

    @property
    def passed(self) -> bool:
        return all_passed(self.checks)


def resolve_config(study: ModuleType | str, config: StudyConfig | None = None, *, preset: str = "quick",
                   overrides: Sequence[str] = (), device: str | None = None) -> StudyConfig:
    """The config a run uses: a preset (or ``config``), ``--set`` overrides, then the device
    resolved ('auto' becomes 'cuda' or 'cpu') so the content hash names the real device."""
    study = get_study(study)
    cfg = config if config is not None else study.Config.preset(preset)
    if overrides:
        cfg = cfg.with_overrides(list(overrides))
    if device is not None:
        cfg = cfg.replace(device=device)
    return cfg.replace(device=resolve_device(cfg.device))


def execute(study: ModuleType | str, config: StudyConfig | None = None, *, preset: str = "quick",
            overrides: Sequence[str] = (), device: str | None = None, root: str | Path | None = None,
            force: bool = False, progress: bool = True, save: bool = True, make_figures: bool = True) -> RunResult:
    """Run (or load from the cache) one study at one config; write its record; return checks."""
    study = get_study(study)
    cfg = resolve_config(study, config, preset=preset, overrides=overrides, device=device)
    path = run_dir(study, cfg, root) if save else None
    if path is not None:
        check_runs_root(root)
        check_runs_root(path.parent)  # the study's folder too (it could be a file, or read-only)
    fingerprint = code_fingerprint(study)
    if path is not None and not force and (path / "meta.json").exists() and not read_meta(path):
        print(f"warning: damaged record: {path / 'meta.json'} is not valid JSON; recomputing it", file=sys.stderr)
    if path is not None and not force and is_cached(path, fingerprint, verify=False):
        try:
            verify_record(path)
            record, checks = load_record(path, study.Config, verify=False)
            return RunResult(record, checks, path, cached=True)
        except RecordError as err:
            moved = quarantine(path)
            print(f"warning: {err}\n(moved aside to {moved}; recomputing)" if moved else f"warning: {err}",
                  file=sys.stderr)
    check_memory(study, cfg)

    with deterministic(cfg.device):
        start = time.perf_counter()
        try:
            try:
                with phase_cache(path.parent / ".phases", fingerprint) if path is not None and not force \
                        else contextlib.nullcontext():
                    record = study.run(cfg, progress=progress)
            except (MemoryError, RuntimeError) as err:
                oom = None if isinstance(err, TrainingError) else out_of_memory(err, study.NAME, cfg)
                if oom is None:
                    raise
                raise oom from err
        except TrainingError as err:
            if path is not None:
                save_failed(study.NAME, cfg, err, path)
            raise
        wall = time.perf_counter() - start
    record.meta.update(environment_meta(cfg.device, cfg.dtype))
    record.meta.update({"study": study.NAME, "config_hash": cfg.content_hash(), "code_fingerprint": fingerprint,
                        "wall_time_s": round(wall, 3),
                        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    checks = list(study.checks(record))
    figures = study.figures(record) if make_figures else {}
    if path is not None:
        save_record(record, path, checks, figures)
    _close(figures)
    return RunResult(record, checks, path, cached=False)


def source_digest(files: Sequence[Path]) -> str:
    """sha256 over the names and contents of ``files`` (in the order given)."""
    import hashlib

    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def code_fingerprint(study: ModuleType) -> str:
    """Digest of the source of `workbench` and of the study's package.

    Records are keyed by the config hash (stable across code versions), and a cached record is
    reused only while this fingerprint matches, so editing the library or a study never serves a
    stale result.
    """
    source = Path(study.__file__).resolve()
    files = sorted(Path(__file__).resolve().parent.rglob("*.py"))
    files += sorted(source.parent.rglob("*.py")) if source.name == "__init__.py" else [source]
    return source_digest(files)[:16]


def is_cached(path: Path, fingerprint: str, *, verify: bool = True) -> bool:
    """A complete record at ``path`` written by the code whose fingerprint is ``fingerprint``
    (and, with ``verify``, whose files match their checksums): the one rule for reusing a run
    (`execute` and `workbench.sweep` both apply it)."""
    meta = read_meta(path)
    if meta.get("status") != "complete" or meta.get("code_fingerprint") != fingerprint:
        return False
    if verify:
        try:
            verify_record(path)
        except RecordError:
            return False
    return True


_OOM_MARKERS = ("not enough memory", "defaultcpuallocator", "out of memory", "cannot allocate memory",
                "unable to allocate")


def out_of_memory(err: BaseException, study_name: str, cfg: StudyConfig) -> OutOfMemoryError | None:
    """An allocator's error (``MemoryError``, ``torch.OutOfMemoryError``, a ``RuntimeError`` such
    as "DefaultCPUAllocator: not enough memory") as an `OutOfMemoryError` with a message; None
    for any other error."""
    text = str(err)
    oom_types = tuple(t for t in (MemoryError, getattr(torch, "OutOfMemoryError", None)) if t is not None)
    if not isinstance(err, oom_types) and not any(m in text.lower() for m in _OOM_MARKERS):
        return None
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return OutOfMemoryError(f"{study_name}: ran out of memory on {cfg.device} ({first[:200]}); reduce the sizes "
                            "(n_seeds, widths, lengths) or run on a machine with more memory")


def save_failed(study_name: str, cfg: StudyConfig, err: TrainingError, path: Path) -> Path | None:
    """Keep what a failed run computed in ``<hash>.failed/`` (atomically), marked ``status:
    failed`` (never read back as a result): every array of ``err.partial`` (a `Record`, a dict,
    or a result object such as `workbench.train.TrainResult`, prefixed by the failing phase), with
    where it failed (phase, step or time, members) in ``meta.json``.  Returns the directory (None
    if even that could not be written: the error message says so)."""
    target = path.with_name(path.name + ".failed")
    prefix = "" if isinstance(err.partial, Record) else (err.phase or "partial")
    arrays = partial_arrays(err.partial, prefix)
    meta = {"status": "failed", "study": study_name, "config_hash": cfg.content_hash(), "error": type(err).__name__,
            "message": str(err), "phase": err.phase, "step": err.step, "time": err.time, "members": err.members,
            "n_arrays": len(arrays), "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def write(tmp: Path) -> None:
        _write_json(tmp / "config.json", {"study": study_name, **cfg.to_dict()})
        save_npz(tmp / "arrays.npz", arrays)
        _write_json(tmp / "meta.json", {**meta, "checksums": {n: file_sha256(tmp / n)
                                                              for n in ("config.json", "arrays.npz")}})

    try:
        write_directory(target, write)
    except Exception as write_err:  # the failure itself is what the user must hear about
        err.args = (f"{err.args[0]}\n(the partial results could not be kept: {write_err})",) + err.args[1:]
        return None
    err.args = (f"{err.args[0]}\n(partial results kept in {target}: {len(arrays)} arrays)",) + err.args[1:]
    return target


@contextlib.contextmanager
def deterministic(device: str):
    """Deterministic kernels for the duration of a run; on CUDA also no TF32 anywhere.

    ``CUBLAS_WORKSPACE_CONFIG`` must be set before CUDA initialises: ``import workbench`` sets it.
    """
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    if str(device).startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _close(figures: Any) -> None:
    try:
        import matplotlib.pyplot as plt
        for fig in (figures or {}).values():
            plt.close(fig)
    except ImportError:
        pass
