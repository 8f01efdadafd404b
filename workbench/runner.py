"""Run a study at a config, with the run cache, checks, figures and an atomic record.

`execute` is what the CLI, the book and `workbench reproduce` call.  Notebook users can call a
study's ``run(config)`` directly; `execute` adds the record directory and the cache:

>>> from workbench.runner import execute                                     # doctest: +SKIP
>>> result = execute("rank-collapse", preset="quick")                        # doctest: +SKIP
>>> result.checks, result.path, result.cached                                # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import torch

from workbench.checks import Check, all_passed
from workbench.config import StudyConfig, resolve_device
from workbench.errors import TrainingError
from workbench.record import (Record, environment_meta, load_record, read_meta, save_npz, save_record,
                              _write_json)
from workbench.registry import get_study


def runs_root(root: str | Path | None = None) -> Path:
    """Where run records live: ``root``, else ``$WORKBENCH_RUNS``, else ``<repo>/runs``."""
    if root is not None:
        return Path(root)
    env = os.environ.get("WORKBENCH_RUNS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "runs"


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
    fingerprint = code_fingerprint(study)
    if path is not None and not force and is_cached(path, fingerprint):
        record, checks = load_record(path, study.Config)
        return RunResult(record, checks, path, cached=True)

    with deterministic(cfg.device):
        start = time.perf_counter()
        try:
            record = study.run(cfg, progress=progress)
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


def is_cached(path: Path, fingerprint: str) -> bool:
    """A complete record at ``path`` written by the code whose fingerprint is ``fingerprint``:
    the one rule for reusing a run (`execute` and `workbench.sweep` both apply it)."""
    meta = read_meta(path)
    return meta.get("status") == "complete" and meta.get("code_fingerprint") == fingerprint


def save_failed(study_name: str, cfg: StudyConfig, err: TrainingError, path: Path) -> None:
    """Keep what a failed run computed, marked ``status: failed`` (never read back as a result)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path.with_name(path.name + ".failed")
    target.mkdir(exist_ok=True)
    arrays: dict[str, Any] = {}
    partial = err.partial
    if isinstance(partial, Record):
        arrays = partial.arrays
    elif isinstance(partial, dict):
        from workbench.record import to_numpy
        arrays = {k: to_numpy(v) for k, v in partial.items() if _array_like(v)}
    _write_json(target / "config.json", {"study": study_name, **cfg.to_dict()})
    save_npz(target / "arrays.npz", arrays)
    _write_json(target / "meta.json", {"status": "failed", "error": type(err).__name__, "message": str(err),
                                       "step": err.step})
    err.args = (f"{err.args[0]}\n(partial results kept in {target})",)


def _array_like(v: Any) -> bool:
    import numpy as np
    return isinstance(v, (torch.Tensor, np.ndarray, float, int))


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
