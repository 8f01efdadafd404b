"""Run records: the unit of reproducibility.

A `Record` is what a study's ``run(config)`` returns: the config, the raw arrays (inputs it
generated, trajectories, final parameters; enough for a third party to re-verify every check) and
a small JSON ``info`` dict (solver statuses, timings).  `save_record` writes it atomically as

    runs/<study>/<config-hash>/
        config.json   arrays.npz   checks.json   meta.json   figures/*.png, *.svg

into a temporary sibling directory that is renamed into place only when everything is written and
``meta.json`` says ``"status": "complete"``.  `load_record` refuses any directory without that
status, so a half-written run is never mistaken for a result.

Integrity.  ``meta.json`` holds the sha256 of ``config.json``, ``arrays.npz`` and ``checks.json``
(``checksums``); `verify_record` (called on every cache hit and by ``workbench check``) and
`load_record` refuse a record whose files do not match, do not parse or are missing, with a
`RecordError` that names the file and the remedy (``--force``).  `quarantine` moves such a record
aside (``<hash>.damaged-<time>``) so the next run recomputes it.

Concurrency.  The final rename happens under an exclusive lock (``fcntl.flock`` on the folder
that holds the study's records), so several processes saving the same config never collide; the
last one wins and no ``.old-*`` directory is left behind.  Temporary directories are
named ``.<hash>.tmp-<host>-<pid>-<random>``; one left by a killed process (its pid is gone, or it
is older than `STALE_AFTER_S`) is removed by the next save and never read.  Record directories get
the permissions the umask allows (``0o777 & ~umask``), so a shared filesystem works.

``arrays.npz`` is written with fixed zip timestamps and sorted keys, so the same arrays give the
same bytes: bit-identical reruns can be tested on the file itself.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import io
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from workbench.checks import Check
from workbench.config import StudyConfig
from workbench.errors import RecordError, RecordWriteError, TrainingError, WorkbenchInputError

SCHEMA_VERSION = 2
"""2: ``meta.json`` holds the sha256 ``checksums`` of the other files."""
CHECKSUMMED = ("config.json", "arrays.npz", "checks.json")
STALE_AFTER_S = 3600.0
"""A temporary directory older than this is a leftover of a killed run, whatever its pid says."""


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


def partial_arrays(value: Any, prefix: str = "", _depth: int = 0) -> dict[str, np.ndarray]:
    """The arrays inside whatever a failed run left (`TrainingError.partial`), flat as
    ``<prefix>.<field>[.<key>]``: a `Record` (its arrays, as named), a mapping, a dataclass (such as
    `workbench.train.TrainResult`) or any object with array-valued attributes, recursively.
    Anything that is not an array or a number is skipped."""
    join = (lambda k: f"{prefix}.{k}") if prefix else (lambda k: str(k))
    out: dict[str, np.ndarray] = {}
    if value is None or _depth > 8:  # (a reference cycle, or a structure no result has)
        return out
    if isinstance(value, Record):
        return {(join(k) if prefix and not k.startswith(prefix + ".") else k): v for k, v in value.arrays.items()}
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic, bool, int, float)):
        array = to_numpy(value)
        return {prefix or "value": array} if array.dtype != object else {}
    if isinstance(value, Mapping):
        items = value.items()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (torch.Tensor, np.ndarray)) for v in value):
            try:
                return {prefix or "value": np.stack([to_numpy(v) for v in value])}
            except ValueError:  # ragged: store each
                pass
        items = enumerate(value)
    elif hasattr(value, "__dict__") and not callable(value):
        items = ((k, v) for k, v in vars(value).items() if not k.startswith("_"))
    else:
        return out
    for key, item in items:
        out.update(partial_arrays(item, join(key), _depth + 1))
    return out


def keep_finished(err: TrainingError, record: "Record", name: str) -> TrainingError:
    """A `TrainingError` raised in phase ``name`` keeps what was computed: its ``partial`` becomes a
    `Record` of every finished phase (already in ``record``) plus the failing phase's own partial
    arrays under ``<name>.``, and its message names the study and the phase (once: an inner phase
    that already did it wins).  `workbench.phases.run_phases` calls it."""
    if err.phase is None:
        kept = Record(study=record.study, config=record.config, arrays=dict(record.arrays), info=dict(record.info))
        kept.arrays.update({k: v for k, v in partial_arrays(err.partial, name).items() if k not in kept.arrays})
        err.partial = kept
        err.phase = name
        err.args = (f"{record.study}, phase {name!r}: {err.args[0] if err.args else ''}",) + err.args[1:]
    return err


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
    """Write ``record`` (with its checks and figures) atomically to ``directory``.

    Raises `RecordWriteError` (a clear message, nothing half-written left) when the filesystem
    refuses: full, read-only, or not a directory."""
    directory = Path(directory)

    def write(tmp: Path) -> None:
        _write_json(tmp / "config.json", {"study": record.study, **record.config.to_dict()})
        save_npz(tmp / "arrays.npz", record.arrays)
        _write_json(tmp / "checks.json", [c.to_dict() for c in (checks or [])])
        if figures:
            from workbench.plotting import save_figure
            (tmp / "figures").mkdir()
            for name, fig in figures.items():
                save_figure(fig, tmp / "figures" / name)
        meta = {"schema": SCHEMA_VERSION, **record.meta, "info": record.info, "status": "complete",
                "checksums": {name: file_sha256(tmp / name) for name in CHECKSUMMED}}
        _write_json(tmp / "meta.json", meta)

    return write_directory(directory, write)


def write_directory(directory: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` in a fresh temporary sibling of ``directory``, then put it in place of
    ``directory`` atomically (under the record's lock).  On any failure nothing is left behind;
    an `OSError` becomes a `RecordWriteError` that says what to do."""
    directory = Path(directory)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(directory.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-{_host()}-{os.getpid()}-", dir=directory.parent))
    except OSError as err:
        raise RecordWriteError(write_error_message(err, directory)) from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; records follow the umask
        write(tmp)
        with record_lock(directory):
            if directory.exists():
                trash = directory.with_name(f".{directory.name}.old-{_host()}-{os.getpid()}-{os.urandom(4).hex()}")
                directory.rename(trash)
                tmp.rename(directory)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                tmp.rename(directory)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RecordWriteError(write_error_message(err, directory)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def write_error_message(err: OSError, directory: Path) -> str:
    """What a person should read when the record could not be written."""
    where = directory.parent
    if err.errno == errno.ENOSPC or err.errno == getattr(errno, "EDQUOT", None):
        return (f"the disk holding {where} is full ({err.strerror}) while writing the record {directory.name}; "
                f"nothing was written: free some space, or give --out on another disk, and rerun")
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write the record in {where} ({err.strerror}): give --out a writable directory"
    if err.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"cannot write the record in {where}: a path component is not a directory ({err.strerror})"
    return f"could not write the record {directory}: {type(err).__name__}: {err}"


@contextlib.contextmanager
def record_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock for swapping a record into place: ``flock`` on the folder that holds the
    records of the study (held by one process at a time, released when it dies; the critical
    section is two renames, so one lock per folder costs nothing and leaves no lock files).  Where
    a folder cannot be locked (some network filesystems) a ``.lock`` file in it is locked instead."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: renames are still atomic, only the swap is not locked
        yield
        return
    folder = Path(directory).parent
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            fd = os.open(folder / ".lock", os.O_CREAT | os.O_RDWR, 0o666 & ~_umask())
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<host>.+)-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def clean_stale(folder: Path, *, now: float | None = None) -> list[Path]:
    """Remove the ``.<hash>.tmp-*`` / ``.<hash>.old-*`` directories that killed processes left in
    ``folder``: made on this host by a pid that is gone, or older than `STALE_AFTER_S` (from
    another host, or of an older naming).  Returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith(".") or (".tmp-" not in name and ".old-" not in name):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        match = _LEFTOVER.match(name)
        dead = False
        if match and match["host"] == _host():
            pid = int(match["pid"])
            dead = pid != os.getpid() and not _pid_alive(pid)
        if dead or age > STALE_AFTER_S:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError:
        return True
    return True


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname() or "host")


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (``os.umask`` must set
    it to read it, which would briefly affect files other threads create)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_meta(directory: str | Path) -> dict[str, Any]:
    """A run directory's ``meta.json`` ({} when missing or unreadable)."""
    try:
        meta = json.loads((Path(directory) / "meta.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def is_complete(directory: str | Path) -> bool:
    return read_meta(directory).get("status") == "complete"


REMEDY = "rerun with --force to recompute it"


def verify_record(directory: str | Path) -> dict[str, Any]:
    """Check that ``directory`` is a complete, undamaged record; return its meta.

    Raises `RecordError` naming the file at fault (missing, not valid JSON, or not matching the
    checksum in ``meta.json``) and the remedy."""
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.exists():
        raise RecordError(f"{directory} is not a run record (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise RecordError(f"damaged record: {meta_path} is not valid JSON ({_short(err)}); {REMEDY}") from None
    if not isinstance(meta, dict) or meta.get("status") != "complete":
        status = meta.get("status") if isinstance(meta, dict) else None
        raise RecordError(f"{directory} is not a complete run record (meta.json status {status!r}); {REMEDY}")
    sums = meta.get("checksums")
    if sums is not None and not isinstance(sums, dict):
        raise RecordError(f"damaged record: {meta_path} has malformed checksums; {REMEDY}")
    for name in CHECKSUMMED:
        path = directory / name
        if not path.is_file():
            raise RecordError(f"damaged record: {path} is missing; {REMEDY}")
        if sums and name in sums and file_sha256(path) != sums[name]:
            raise RecordError(f"damaged record: {path} does not match its sha256 in meta.json (changed since it "
                              f"was written); {REMEDY}")
    return meta


def quarantine(directory: str | Path) -> Path | None:
    """Move a damaged record aside (``<hash>.damaged-<UTC time>``) so the next run recomputes it;
    returns the new path (None if it was already gone)."""
    directory = Path(directory)
    target = directory.with_name(f"{directory.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
                                 f"-{os.getpid()}")
    try:
        with record_lock(directory):
            if not directory.exists():
                return None
            directory.rename(target)
    except OSError:
        return None
    return target


def load_record(directory: str | Path, config_cls: type[StudyConfig] | None = None, *,
                verify: bool = True) -> tuple[Record, list[Check]]:
    """Read a complete record and its checks.  ``config_cls`` defaults to the registered study's.

    Every file is checked first (`verify_record`); a file that is missing, damaged or does not
    parse raises `RecordError` naming it."""
    directory = Path(directory)
    if not is_complete(directory):
        raise RecordError(f"{directory} is not a complete run record (missing or unfinished meta.json)")
    meta = verify_record(directory) if verify else read_meta(directory)
    cfg = _read_json(directory / "config.json")
    if not isinstance(cfg, dict) or "study" not in cfg:
        raise RecordError(f"damaged record: {directory / 'config.json'} does not name its study; {REMEDY}")
    study = cfg.pop("study")
    if config_cls is None:
        from workbench.registry import get_study
        config_cls = get_study(study).Config
    try:
        config = config_cls.from_dict(cfg)
    except (WorkbenchInputError, TypeError, ValueError) as err:
        raise RecordError(f"{directory / 'config.json'} does not fit the study's Config ({err}); {REMEDY}") from None
    meta = dict(meta)
    info = meta.pop("info", {})
    try:
        arrays = load_npz(directory / "arrays.npz")
    except Exception as err:  # BadZipFile, truncated member, bad header: all mean a damaged file
        raise RecordError(f"damaged record: {directory / 'arrays.npz'} cannot be read ({type(err).__name__}: "
                          f"{_short(err)}); {REMEDY}") from None
    stored = _read_json(directory / "checks.json")
    try:
        checks = [Check.from_dict(c) for c in stored]
    except (TypeError, ValueError, AttributeError) as err:
        raise RecordError(f"damaged record: {directory / 'checks.json'} is not a list of checks ({_short(err)}); "
                          f"{REMEDY}") from None
    record = Record(study=study, config=config, arrays=arrays, info=info, meta=meta)
    return record, checks


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RecordError(f"damaged record: {path} is missing; {REMEDY}") from None
    except (OSError, ValueError) as err:
        raise RecordError(f"damaged record: {path} is not valid JSON ({_short(err)}); {REMEDY}") from None


def _short(err: Exception, n: int = 120) -> str:
    text = str(err)
    return text if len(text) <= n else text[: n - 1] + "…"


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
