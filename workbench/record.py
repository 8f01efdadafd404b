"""Run records: the unit of reproducibility.

A `Record` is what a study's ``run(config)`` returns: the config, the raw arrays (inputs it
generated, trajectories, final parameters; enough for a third party to re-verify every check) and
a small JSON ``info`` dict (solver statuses, timings).  `save_record` writes it atomically as

    runs/<study>/<config-hash>/
        config.json   arrays.npz   checks.json   meta.json   figures/*.png, *.svg

into a temporary sibling directory that is renamed into place only when everything is written and
``meta.json`` says ``"status": "complete"``.  `load_record` refuses any directory without that
status, so a half-written run is never mistaken for a result.

``arrays.npz`` is written with fixed zip timestamps and sorted keys, so the same arrays give the
same bytes: bit-identical reruns can be tested on the file itself.
"""
from __future__ import annotations

import io
import json
import os
import platform
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from workbench.checks import Check
from workbench.config import StudyConfig

SCHEMA_VERSION = 1


@dataclass
class Record:
    study: str
    """The study's CLI name (kebab-case)."""
    config: StudyConfig
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    """Named raw arrays (numpy, on the CPU); keys are free-form strings."""
    info: dict[str, Any] = field(default_factory=dict)
    """Small JSON-able facts about the run (solver status, wall time of a phase, ...)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Filled by the runner: versions, device, dtype, git commit, wall time, status."""

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self.arrays[key]
        except KeyError:
            import difflib
            close = difflib.get_close_matches(key, list(self.arrays), n=3)
            raise KeyError(f"record of {self.study!r} has no array {key!r}; close: {close}") from None

    def add(self, **arrays: Any) -> None:
        """Store arrays (torch tensors are detached and moved to the CPU as numpy)."""
        for k, v in arrays.items():
            self.arrays[k] = to_numpy(v)


def to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


# -------------------------------------------------------------------------------------- npz
def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """A deterministic ``.npz``: sorted keys, fixed timestamps, no compression."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            array = np.asarray(arrays[key])
            if not array.flags.c_contiguous:  # (np.ascontiguousarray would turn 0-d arrays into 1-d)
                array = np.ascontiguousarray(array)
            np.lib.format.write_array(buf, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


# ------------------------------------------------------------------------------------ meta
def environment_meta(device: str | torch.device, dtype: str) -> dict[str, Any]:
    import scipy

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(torch.device(device)) if str(device).startswith("cuda") else platform.processor() or platform.machine(),
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "git_commit": git_commit(),
    }


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------------------- save / load
def save_record(record: Record, directory: str | Path, checks: list[Check] | None = None,
                figures: Mapping[str, Any] | None = None) -> Path:
    """Write ``record`` (with its checks and figures) atomically to ``directory``."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        _write_json(tmp / "config.json", {"study": record.study, **record.config.to_dict()})
        save_npz(tmp / "arrays.npz", record.arrays)
        _write_json(tmp / "checks.json", [c.to_dict() for c in (checks or [])])
        if figures:
            from workbench.plotting import save_figure
            (tmp / "figures").mkdir()
            for name, fig in figures.items():
                save_figure(fig, tmp / "figures" / name)
        meta = {"schema": SCHEMA_VERSION, **record.meta, "info": record.info, "status": "complete"}
        _write_json(tmp / "meta.json", meta)
        if directory.exists():
            trash = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            directory.rename(trash)
            tmp.rename(directory)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_meta(directory: str | Path) -> dict[str, Any]:
    """A run directory's ``meta.json`` ({} when missing or unreadable)."""
    try:
        return json.loads((Path(directory) / "meta.json").read_text())
    except (OSError, ValueError):
        return {}


def is_complete(directory: str | Path) -> bool:
    return read_meta(directory).get("status") == "complete"


def load_record(directory: str | Path, config_cls: type[StudyConfig] | None = None) -> tuple[Record, list[Check]]:
    """Read a complete record and its checks.  ``config_cls`` defaults to the registered study's."""
    directory = Path(directory)
    if not is_complete(directory):
        raise FileNotFoundError(f"{directory} is not a complete run record (missing or unfinished meta.json)")
    cfg = json.loads((directory / "config.json").read_text())
    study = cfg.pop("study")
    if config_cls is None:
        from workbench.registry import get_study
        config_cls = get_study(study).Config
    meta = json.loads((directory / "meta.json").read_text())
    info = meta.pop("info", {})
    record = Record(study=study, config=config_cls.from_dict(cfg), arrays=load_npz(directory / "arrays.npz"),
                    info=info, meta=meta)
    checks = [Check.from_dict(c) for c in json.loads((directory / "checks.json").read_text())]
    return record, checks


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
