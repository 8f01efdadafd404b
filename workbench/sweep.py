"""Sweeps: a grid of independent runs of one study over the run cache.

    workbench sweep STUDY --grid KEY=V1,V2,... [--grid ...] [--seeds 0-9] [--preset quick]
                          [--set KEY=VALUE]... [--executor local|submitit] [--workers N]

Every point of the grid (the Cartesian product of the ``--grid`` lists) times every seed is one
ordinary run: it goes through `workbench.runner.execute`, writes ``runs/<study>/<hash>/`` and is
a cache hit when that record is already complete.  Runs that are complete are skipped before
anything is launched, so an interrupted sweep resumes where it stopped when the same command is
given again (``--force`` reruns everything).  A run that fails (divergence, solver failure) keeps
its partial arrays in ``<hash>.failed/`` and the sweep goes on.

Grid syntax (values are read with the config's own type coercion, as ``--set`` does):

- ``--grid lr=0.05,0.1,0.2``: values are separated by ``,``;
- if the list contains a ``;``, or the field holds a tuple, values are separated by ``;`` instead,
  so a ``,`` can appear inside a value: ``--grid "betas=0.5,1;2,4"`` (or ``"(0.5,1);(2,4)"``) is
  two runs, ``betas=(0.5, 1.0)`` and ``betas=(2.0, 4.0)``; ``--grid betas=0.5,1`` is one run;
- repeating a key takes the union: ``--grid lr=0.1 --grid lr=0.2`` is ``--grid lr=0.1,0.2``;
- ``--seeds 0-9``, ``--seeds 0,3,5`` or ``--seeds 0-4,10``: each seed (the config's ``seed``
  field) is a separate run; a ``seed`` key in ``--grid`` is refused in favour of ``--seeds``.

Everything (study, preset, ``--set``, every grid value, every grid point, the runs directory) is
validated before anything runs; bad input exits 2 with a message.

Ctrl-C.  The first Ctrl-C stops launching runs and waits for the runs in progress to finish and
be saved (it says which); a second Ctrl-C stops those too (their work is lost).  Either way the
sweep exits with code 130 and no traceback, and the same command resumes it.

Executors: ``local`` (default) is a process pool (``spawn``; one torch thread per worker;
``--workers 1`` runs in this process, for debugging).  ``submitit`` submits a Slurm job array with
a parallelism cap (``pip install attention-workbench[cluster]``) and waits for it;
``--submitit-cluster local|debug`` runs the same code path on this machine (``debug``: in process).

In a notebook, a sweep's results load as one table, one row per run:

>>> from workbench.sweep import load_sweep                                             # doctest: +SKIP
>>> table = load_sweep("toy", {"lr": [0.05, 0.1]}, seeds=range(4), preset="smoke")      # doctest: +SKIP
>>> table.column("lr"), table.column("loss_floor.measured"), table.to_pandas()          # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import itertools
import json
import math
import os
import sys
import time
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from workbench.config import StudyConfig, coerce, field_annotation, resolve_device
from workbench.errors import ConfigError, UnknownStudyError, WorkbenchInputError, did_you_mean

EXECUTORS = ("local", "submitit")
CLUSTERS = ("slurm", "local", "debug")
CLUSTER_HINT = "pip install 'attention-workbench[cluster]'"


# ======================================================================== parsing the grid
def parse_seeds(text: str | Iterable[int] | None) -> list[int] | None:
    """``"0-9"``, ``"0,3,5"``, ``"0-4,10"`` (or an iterable of ints) -> the seeds, in order, unique."""
    if text is None:
        return None
    if isinstance(text, str):
        seeds: list[int] = []
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise ConfigError(f"--seeds expects e.g. 0-9 or 0,3,5, got {text!r}")
        for part in parts:
            lo, sep, hi = part.partition("-")
            try:
                a, b = (int(lo), int(hi)) if sep else (int(part), int(part))
            except ValueError:
                raise ConfigError(f"--seeds expects e.g. 0-9 or 0,3,5 (non-negative integers), got {text!r}") from None
            if b < a:
                raise ConfigError(f"--seeds range {part!r} is empty (write low-high with low <= high)")
            seeds.extend(range(a, b + 1))
    else:
        seeds = []
        for s in text:
            if isinstance(s, bool) or not float(s).is_integer():
                raise ConfigError(f"seeds must be integers, got {s!r}")
            seeds.append(int(s))
    if not seeds:
        raise ConfigError("the list of seeds is empty")
    if min(seeds) < 0:
        raise ConfigError(f"seeds must be >= 0, got {min(seeds)}")
    return list(dict.fromkeys(seeds))


def parse_grid(specs: Sequence[str], config_cls: type[StudyConfig]) -> dict[str, list[str]]:
    """``["lr=0.1,0.2", "steps=5"]`` -> ``{"lr": ["0.1", "0.2"], "steps": ["5"]}`` (raw strings).

    Keys are checked against ``config_cls`` (with a "did you mean"); values are split by the rule
    of the module docstring (``;`` for tuple fields or when present, else ``,``).
    """
    names = config_cls.field_names()
    grid: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, raw = (s.strip() for s in spec.partition("="))
        if not sep or not key:
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {spec!r}")
        _check_key(key, names, config_cls)
        if not raw:
            raise ConfigError(f"--grid {key}= has an empty list of values; give at least one, e.g. --grid {key}=V1,V2")
        separator = ";" if (";" in raw or _holds_tuple(field_annotation(config_cls, key))) else ","
        values = [v.strip() for v in raw.split(separator)]
        if any(not v for v in values):
            raise ConfigError(f"--grid {spec!r} has an empty value (values are separated by {separator!r})")
        grid.setdefault(key, []).extend(values)
    return grid


def _check_key(key: str, names: Sequence[str], config_cls: type) -> None:
    if key == "seed":
        raise ConfigError("sweep seeds with --seeds (e.g. --seeds 0-9), not --grid seed=...")
    if key not in names:
        raise ConfigError(f"{config_cls.__qualname__} has no field {key!r} (in --grid).{did_you_mean(key, names)}")


def _holds_tuple(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin is tuple or any(typing.get_origin(a) is tuple for a in typing.get_args(annotation))


# ============================================================================ the plan
@dataclass(frozen=True)
class PlannedRun:
    label: dict[str, Any]
    """The grid values and the seed of this run (the table's leading columns)."""
    config: StudyConfig
    path: Path

    def describe(self) -> str:
        return " ".join(f"{k}={_short(v)}" for k, v in self.label.items())


def plan_sweep(study: ModuleType | str, grid: Mapping[str, Any], seeds: Iterable[int] | str | None = None, *,
               preset: str = "quick", overrides: Sequence[str] = (), device: str | None = None,
               root: str | Path | None = None, resolve: bool = True) -> list[PlannedRun]:
    """Every run of a sweep (validated, nothing run): grid points in order, seeds innermost.

    ``grid`` maps a config field to a list of values: strings (read like ``--set``), numbers, or
    tuples for tuple fields (``{"betas": [(0.5, 1), (2, 4)]}``); a plain string is split like
    ``--grid``.  ``resolve=False`` keeps ``device='cuda'`` unresolved (a Slurm login node has no GPU).
    """
    from workbench.registry import get_study
    from workbench.runner import runs_root

    study = get_study(study)
    base = study.Config.preset(preset)
    if overrides:
        base = base.with_overrides(list(overrides))
    if device is not None:
        base = base.replace(device=device)
    values = _grid_values(base, grid)
    fixed = {s.partition("=")[0].strip() for s in overrides}
    both = sorted(fixed & set(values))
    if both:
        raise ConfigError(f"{both[0]!r} is both fixed by --set and swept by --grid; keep one")
    seed_list = parse_seeds(seeds) if seeds is not None else None
    if not values and seed_list is None:
        raise ConfigError("nothing to sweep: give --grid KEY=V1,V2,... and/or --seeds "
                          "(for one run use `workbench run`)")
    seed_list = seed_list if seed_list is not None else [base.seed]
    if not resolve and base.device == "auto":
        raise ConfigError("device 'auto' cannot be resolved on a submit node; give --device cpu or --device cuda")
    root = runs_root(root).resolve()
    keys = list(values)
    plan: dict[str, PlannedRun] = {}
    for combo in itertools.product(*values.values()):
        point = dict(zip(keys, combo))
        for seed in seed_list:
            try:
                cfg = base.replace(**point, seed=seed)
                if resolve:
                    cfg = cfg.replace(device=resolve_device(cfg.device))
            except WorkbenchInputError as err:
                where = " ".join(f"{k}={_short(v)}" for k, v in {**point, "seed": seed}.items())
                raise ConfigError(f"grid point {where}: {err}") from None
            path = root / study.NAME / cfg.content_hash()
            plan.setdefault(str(path), PlannedRun({**point, "seed": seed}, cfg, path))
    return list(plan.values())


def _grid_values(base: StudyConfig, grid: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Every grid value read as its field's type; duplicates dropped, order kept."""
    names = type(base).field_names()
    out: dict[str, list[Any]] = {}
    for key, raw in grid.items():
        _check_key(key, names, type(base))
        annotation = field_annotation(type(base), key)
        if isinstance(raw, str):
            raw = parse_grid([f"{key}={raw}"], type(base))[key]
        elif not isinstance(raw, Iterable):
            raw = [raw]
        items = list(raw)
        if not items:
            raise ConfigError(f"--grid {key}: the list of values is empty; give at least one value")
        coerced: list[Any] = []
        for item in items:
            text = item if isinstance(item, str) else _as_text(item, annotation)
            try:  # the type only: ranges are checked on each grid point (constraints may join fields)
                value = coerce(text.strip(), annotation, key)
            except WorkbenchInputError as err:
                raise ConfigError(f"--grid {key}={text}: {err}") from None
            if value not in coerced:
                coerced.append(value)
        out[key] = coerced
    return out


def _as_text(value: Any, annotation: Any) -> str:
    if isinstance(value, (tuple, list)) and _holds_tuple(annotation):
        return ",".join(_as_text(v, float) for v in value)
    if isinstance(value, (tuple, list)):
        raise ConfigError(f"{value!r} is a sequence but the field is not a tuple field")
    return str(value)


# ============================================================================= the table
class SweepTable:
    """One row per run: the grid values and seed, ``status`` (complete / failed / missing),
    ``passed`` (every check), ``wall_time_s``, ``<check>.measured`` and ``<check>.passed`` for
    every check, ``path`` and ``error``.  Missing entries are ``None``."""

    def __init__(self, rows: list[dict[str, Any]], keys: Sequence[str] = ()):
        self.rows = rows
        self.keys = list(keys)
        """The label columns (grid fields and ``seed``)."""
        checks = list(dict.fromkeys(k for r in rows for k in r if k.endswith((".measured", ".passed"))))
        self.checks = list(dict.fromkeys(c.rsplit(".", 1)[0] for c in checks))
        check_cols = [f"{c}.{s}" for c in self.checks for s in ("measured", "passed")]
        self.columns = [*self.keys, "status", "passed", "wall_time_s", *check_cols, "path", "error"]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, item: int | str):
        return self.column(item) if isinstance(item, str) else self.rows[item]

    def column(self, name: str) -> np.ndarray:
        """A column as an array: bool or int when every entry is one, float for numbers (``nan``
        where missing), otherwise an object array (strings, tuples, ``None``)."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; columns: {self.columns}.{did_you_mean(name, self.columns)}")
        values = [r.get(name) for r in self.rows]
        if values and all(isinstance(v, (bool, np.bool_)) for v in values):
            return np.array(values, dtype=bool)
        if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            return np.array(values, dtype=np.int64)
        if all(v is None or (isinstance(v, (int, float, np.number)) and not isinstance(v, bool)) for v in values) \
                and any(v is not None for v in values):
            return np.array([np.nan if v is None else v for v in values], dtype=float)
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out

    def where(self, **conditions: Any) -> "SweepTable":
        """The rows whose columns equal the given values, e.g. ``table.where(lr=0.1, status="complete")``."""
        for name in conditions:
            self.column(name)  # unknown column -> KeyError with a suggestion
        return SweepTable([r for r in self.rows if all(r.get(k) == v for k, v in conditions.items())], self.keys)

    def record(self, i: int):
        """The full `Record` (arrays included) of row ``i``, loaded from disk."""
        from workbench.record import load_record

        return load_record(self.rows[i]["path"])[0]

    def to_pandas(self):
        """A ``pandas.DataFrame`` (pandas is optional: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("SweepTable.to_pandas needs pandas (pip install pandas); "
                              "table.column(name) gives numpy arrays without it") from None
        return pd.DataFrame({c: [r.get(c) for r in self.rows] for c in self.columns}, columns=self.columns)

    def format(self, max_rows: int | None = None) -> str:
        """A text table: label columns, status, checks passed, wall time, path."""
        header = [*self.keys, "status", "checks", "wall_s", "path"]
        rows = self.rows if max_rows is None else self.rows[:max_rows]
        body = []
        for r in rows:
            flags = [(c, r.get(f"{c}.passed")) for c in self.checks if r.get(f"{c}.passed") is not None]
            failed = [c for c, ok in flags if not ok]
            checks = "-" if not flags else (f"{len(flags)}/{len(flags)}" if not failed else "FAIL " + ",".join(failed))
            wall = "-" if r.get("wall_time_s") is None else f"{r['wall_time_s']:.2f}"
            body.append([*(_short(r.get(k)) for k in self.keys), r["status"], checks, wall, r["path"]])
        widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
        line = lambda cells: "  ".join(str(x).ljust(w) for x, w in zip(cells, widths)).rstrip()
        out = [line(header), line(["-" * w for w in widths])] + [line(b) for b in body]
        if max_rows is not None and len(self.rows) > max_rows:
            out.append(f"... {len(self.rows) - max_rows} more rows")
        return "\n".join(out)

    def __repr__(self) -> str:
        return f"SweepTable({len(self.rows)} rows)\n{self.format(max_rows=20)}"


def read_row(label: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """One table row from what is on disk at ``path`` (complete, ``<path>.failed``, or nothing)."""
    row: dict[str, Any] = {**label, "status": "missing", "passed": None, "wall_time_s": None,
                           "path": str(path), "error": None}
    from workbench.record import is_complete

    if is_complete(path):
        from workbench.errors import RecordError
        from workbench.record import verify_record

        try:  # a damaged record is not a result
            meta = verify_record(path)
            checks = json.loads((path / "checks.json").read_text())
        except (RecordError, OSError, ValueError) as err:
            row.update(status="damaged", error=str(err))
            return row
        row.update(status="complete", wall_time_s=meta.get("wall_time_s"), passed=all(c["passed"] for c in checks))
        for c in checks:
            row[f"{c['name']}.measured"] = _number(c["measured"])
            row[f"{c['name']}.passed"] = bool(c["passed"])
        return row
    failed = path.with_name(path.name + ".failed") / "meta.json"
    if failed.exists():
        try:
            meta = json.loads(failed.read_text())
            row.update(status="failed", error=f"{meta.get('error')}: {meta.get('message')}")
        except (OSError, ValueError):
            row.update(status="failed", error="unreadable meta.json")
    return row


def load_sweep(study: ModuleType | str, grid: Mapping[str, Any], seeds: Iterable[int] | str | None = None, *,
               preset: str = "quick", overrides: Sequence[str] = (), device: str | None = None,
               root: str | Path | None = None) -> SweepTable:
    """The table of a sweep (same arguments as `sweep`), read from the run cache; runs nothing."""
    plan = plan_sweep(study, grid, seeds, preset=preset, overrides=overrides, device=device, root=root,
                      resolve=device not in ("cuda",) and not str(device or "").startswith("cuda:"))
    return SweepTable([read_row(p.label, p.path) for p in plan], list(plan[0].label) if plan else [])


def load_runs(study: ModuleType | str, root: str | Path | None = None) -> SweepTable:
    """Every run of ``study`` found under the runs directory, whatever grid made it; the label
    columns are the config fields whose values differ between those runs."""
    from workbench.registry import get_study
    from workbench.runner import runs_root

    study = get_study(study)
    folder = runs_root(root) / study.NAME
    found: list[tuple[dict[str, Any], Path]] = []
    for d in sorted(folder.iterdir()) if folder.is_dir() else []:
        if d.name.startswith(".") or ".damaged-" in d.name or not d.is_dir():
            continue  # temporary, lock and moved-aside directories are never results
        path = d.with_name(d.name[: -len(".failed")]) if d.name.endswith(".failed") else d
        if d.name.endswith(".failed") and path.exists():
            continue  # the complete (or retried) run is listed under its own name
        try:
            cfg = json.loads((d / "config.json").read_text())
        except (OSError, ValueError):
            continue
        cfg.pop("study", None)
        found.append(({k: tuple(v) if isinstance(v, list) else v for k, v in _dotted(cfg).items()}, path))
    keys = [k for k in (found[0][0] if found else {}) if len({repr(c.get(k)) for c, _ in found}) > 1]
    return SweepTable([read_row({k: c.get(k) for k in keys}, p) for c, p in found], keys)


def _dotted(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config dict with each sub-config's fields as ``sub.field`` (the names ``--grid`` takes)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        out.update(_dotted(v, f"{prefix}{k}.") if isinstance(v, Mapping) else {prefix + k: v})
    return out


# ============================================================================ the runs
def _run_one(task: dict[str, Any]) -> dict[str, Any]:
    """Run one config in this process (a pool worker, a Slurm task, or the parent with
    ``--workers 1``); return a small summary, never the record."""
    summary = {"path": task["path"], "status": "failed", "cached": False, "passed": None, "error": None}
    start = time.perf_counter()
    try:
        if task.get("threads"):
            _limit_threads(task["threads"])
        study = _import_study(task["study"], task["module"], task["file"])
        cfg = study.Config.from_dict(task["config"])
        if cfg.content_hash() != Path(task["path"]).name:
            raise RuntimeError(f"config hash {cfg.content_hash()} in the worker differs from {Path(task['path']).name} "
                               f"in the parent: is {study.__name__} the same code on both sides?")
        from workbench.runner import execute

        result = execute(study, cfg, root=task["root"], force=task["force"], progress=False)
        summary.update(status="complete", cached=result.cached, passed=result.passed,
                       checks={c.name: (c.measured, c.passed) for c in result.checks})
    except Exception as err:  # a failed run must not stop the sweep; TrainingError keeps .failed/
        summary["error"] = f"{type(err).__name__}: {err}"
    summary["seconds"] = time.perf_counter() - start
    return summary


def _limit_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("MPLBACKEND", "Agg")
    import torch

    torch.set_num_threads(n)


def _init_worker() -> None:
    import signal

    # Ctrl-C is the parent's to handle: the first lets this worker finish (and save) its run
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_threads(1)
    import torch

    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (parallel work has started)
        pass


def _import_study(name: str, module_name: str, file: str | None) -> ModuleType:
    """The study in a fresh process.  A study not listed in ``studies.STUDIES`` on disk (one a
    notebook or a test registered at run time) is imported from its file and registered here."""
    from workbench.registry import get_study

    try:
        return get_study(name)
    except UnknownStudyError:
        pass
    import studies

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        if not file:
            raise
        package = Path(file).name == "__init__.py"
        spec = importlib.util.spec_from_file_location(
            module_name, file, submodule_search_locations=[str(Path(file).parent)] if package else None)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    snake = name.replace("-", "_")
    sys.modules.setdefault(f"studies.{snake}", module)
    if snake not in studies.STUDIES:
        studies.STUDIES.append(snake)
    return get_study(name)


@dataclass
class SweepResult:
    study: str
    table: SweepTable
    """One row per run of the sweep, read back from disk after it finished."""
    skipped: int
    """Runs already complete before the sweep started (not launched)."""
    ran: int
    """Runs launched by this sweep."""
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(run, message) for every run that did not finish."""

    @property
    def exit_code(self) -> int:
        """0 every run finished and every check passed; 1 a check failed; 3 a run failed."""
        if self.failures or any(r["status"] != "complete" for r in self.table):
            return 3
        return 0 if all(r["passed"] for r in self.table) else 1


def sweep(study: ModuleType | str, grid: Mapping[str, Any], seeds: Iterable[int] | str | None = None, *,
          preset: str = "quick", overrides: Sequence[str] = (), executor: str = "local",
          workers: int | None = None, root: str | Path | None = None, force: bool = False,
          progress: bool = True, device: str | None = None, **submitit_opts: Any) -> SweepResult:
    """Run every point of ``grid`` x ``seeds`` that is not complete yet; return the table.

    ``executor="local"``: a spawn process pool of ``workers`` (default: the CPUs this process may
    use), one torch thread each; one worker runs in this process.  ``executor="submitit"``: a
    job array; ``submitit_opts`` are those of `make_submitit_executor` (``cluster``, ``folder``,
    ``partition``, ``time_min``, ``array_parallelism``, ``cpus_per_task``, ``gpus_per_node``,
    ``mem_gb``) plus ``poll_s``.  Raises `ConfigError` on bad input before anything runs.
    """
    import multiprocessing

    from workbench.registry import get_study
    from workbench.runner import code_fingerprint, is_cached

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError("sweep() was called while a worker process was importing your script: with the "
                           "'spawn' start method every worker imports the main script, so put the call under "
                           "`if __name__ == '__main__':`")
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}."
                          f"{did_you_mean(executor, EXECUTORS)}")
    study = get_study(study)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    if executor == "local" and submitit_opts:
        raise ConfigError(f"{sorted(submitit_opts)} only apply to executor='submitit'")
    cluster = submitit_opts.get("cluster", "slurm")
    plan = plan_sweep(study, grid, seeds, preset=preset, overrides=overrides, device=device, root=root,
                      resolve=not (executor == "submitit" and cluster == "slurm"))
    from workbench.runner import check_runs_root
    check_runs_root(root)  # a runs directory that cannot be written fails here, not in every run
    submit = None
    if executor == "submitit":
        poll_s = submitit_opts.pop("poll_s", None)
        opts = {"folder": Path(plan[0].path).parent.parent / ".submitit" / study.NAME / "%j", **submitit_opts}
        submit = make_submitit_executor(**opts)  # fails (bad input) before anything runs
    _warn_overlapping_seeds(plan)
    fingerprint = code_fingerprint(study)
    pending = [p for p in plan if force or not is_cached(p.path, fingerprint)]
    if progress:
        print(f"sweep {study.NAME} [{preset}]: {len(plan)} runs, {len(plan) - len(pending)} already complete "
              f"(skipped), {len(pending)} to run", flush=True)
    tasks = [_task(study, p, force) for p in pending]
    if executor == "local":
        summaries = _run_local(tasks, pending, workers or _available_cpus(), progress)
    else:
        summaries = _run_submitit(submit, tasks, pending, progress, cluster=cluster,
                                  threads=submitit_opts.get("cpus_per_task") or 1, poll_s=poll_s)
    failures = [(p.describe(), s["error"]) for p, s in zip(pending, summaries) if s["status"] != "complete"]
    table = SweepTable([read_row(p.label, p.path) for p in plan], list(plan[0].label))
    return SweepResult(study.NAME, table, skipped=len(plan) - len(pending), ran=len(pending), failures=failures)


def _task(study: ModuleType, run: PlannedRun, force: bool) -> dict[str, Any]:
    return {"study": study.NAME, "module": study.__name__, "file": getattr(study, "__file__", None),
            "config": run.config.to_dict(), "path": str(run.path), "root": str(run.path.parent.parent),
            "force": force, "threads": None}


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _warn_overlapping_seeds(plan: list[PlannedRun]) -> None:
    """Member i of a run uses seed + i, so seeds closer than n_seeds share ensemble members."""
    seeds = sorted({p.config.seed for p in plan})
    n = max(p.config.n_seeds for p in plan)
    gaps = [b - a for a, b in zip(seeds, seeds[1:])]
    if gaps and n > 1 and min(gaps) < n:
        print(f"warning: n_seeds={n} and member i of a run uses seed+i, so runs with seeds closer than {n} "
              f"share ensemble members; use --set n_seeds=1 or seeds spaced by {n} for independent runs",
              file=sys.stderr)


def _report(bar, run: PlannedRun, s: dict[str, Any], progress: bool) -> None:
    if bar is not None:
        bar.update(1)
    if not progress:
        return
    from tqdm import tqdm

    outcome = s["passed"] if s["status"] == "complete" else None
    state = {True: "PASS", False: "FAIL (check)", None: "RUN FAILED"}[outcome]
    tqdm.write(f"  {run.describe()}: {state} ({s['seconds']:.1f}s){'' if s['error'] is None else ' ' + s['error']}")


def _bar(total: int, progress: bool):
    if not progress or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="sweep", unit="run")


def _run_local(tasks: list[dict], pending: list[PlannedRun], workers: int, progress: bool) -> list[dict]:
    summaries: list[dict | None] = [None] * len(tasks)
    bar = _bar(len(tasks), progress)
    try:
        if min(workers, len(tasks)) <= 1:
            for i, task in enumerate(tasks):
                summaries[i] = _run_one(task)
                _report(bar, pending[i], summaries[i], progress)
            return summaries  # type: ignore[return-value]
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        for task in tasks:
            task["threads"] = 1
        pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), initializer=_init_worker,
                                   mp_context=multiprocessing.get_context("spawn"))
        futures: dict = {}
        try:
            futures = _submit_ignoring_ctrl_c(pool, tasks)
            for future in as_completed(futures):
                i = futures[future]
                try:
                    summaries[i] = future.result()
                except Exception as err:  # the worker process died (killed, out of memory)
                    summaries[i] = {"path": tasks[i]["path"], "status": "failed", "passed": None, "seconds": 0.0,
                                    "error": f"worker process failed: {type(err).__name__}: {err} (calling sweep() "
                                             "from a script? guard it with `if __name__ == '__main__':`)"}
                _report(bar, pending[i], summaries[i], progress)
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
                bar = None
            _interrupted(pool, futures, pending)
            raise
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=False)  # every result is in; the workers take seconds to exit (torch teardown)
        return summaries  # type: ignore[return-value]
    finally:
        if bar is not None:
            bar.close()


def _submit_ignoring_ctrl_c(pool, tasks: list[dict]) -> dict:
    """Submit every task; the workers are spawned with Ctrl-C ignored (inherited across exec, so
    even a worker still importing torch does not die with a traceback): Ctrl-C is the parent's."""
    import signal

    handler = signal.getsignal(signal.SIGINT) if threading_is_main() else None
    if handler is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return {pool.submit(_run_one, task): i for i, task in enumerate(tasks)}
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _interrupted(pool, futures: dict, pending: list[PlannedRun]) -> None:
    """The first Ctrl-C: launch nothing more, wait for the runs in progress (saying which); a
    second Ctrl-C: terminate the workers.  Returns once the pool is down (no thread left behind
    to print a traceback at exit)."""
    from concurrent.futures import wait

    for future in futures:
        future.cancel()  # the ones not handed to a worker yet
    running = [f for f in futures if not f.done()]
    if running:
        names = ", ".join(pending[futures[f]].describe() for f in running[:6]) + (" ..." if len(running) > 6 else "")
        print(f"\ninterrupted: launching no more runs; waiting for the {len(running)} run(s) in progress to finish "
              f"and be saved ({names}). Press Ctrl-C again to stop them now (their work is lost).",
              file=sys.stderr, flush=True)
    try:
        wait(running)
        pool.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            try:
                process.terminate()
            except Exception:  # pragma: no cover - already gone
                pass
        for process in processes:
            process.join(timeout=10)
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        except Exception:  # pragma: no cover - a broken pool is expected here
            pass
        print(f"stopped: the {len(running)} run(s) in progress were terminated; finished runs are kept",
              file=sys.stderr, flush=True)


# ========================================================================== submitit
def make_submitit_executor(*, cluster: str = "slurm", folder: str | Path, partition: str | None = None,
                           time_min: int | None = 60, array_parallelism: int = 16, cpus_per_task: int | None = 1,
                           gpus_per_node: int | None = None, mem_gb: float | None = None,
                           job_name: str = "workbench-sweep"):
    """A ``submitit.AutoExecutor`` for a job array with at most ``array_parallelism`` tasks
    running at once.  Missing submitit, or Slurm not found, is bad input (`ConfigError`)."""
    if cluster not in CLUSTERS:
        raise ConfigError(f"unknown submitit cluster {cluster!r}; choose one of {list(CLUSTERS)}."
                          f"{did_you_mean(cluster, CLUSTERS)}")
    for name, value in (("array_parallelism", array_parallelism), ("time_min", time_min),
                        ("cpus_per_task", cpus_per_task), ("gpus_per_node", gpus_per_node)):
        low = 0 if name == "gpus_per_node" else 1
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    try:
        import submitit
    except ImportError:
        raise ConfigError(f"the submitit executor needs the submitit package, which is not installed: "
                          f"{CLUSTER_HINT}") from None
    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    except RuntimeError as err:  # e.g. 'Could not detect "srun"'
        raise ConfigError(f"submitit cannot use the {cluster!r} cluster here ({err}); run from a Slurm login node, "
                          f"or use --submitit-cluster local to try the array on this machine") from None
    params = {"name": job_name, "timeout_min": time_min, "cpus_per_task": cpus_per_task, "gpus_per_node": gpus_per_node,
              "mem_gb": mem_gb, "slurm_partition": partition, "slurm_array_parallelism": array_parallelism}
    executor.update_parameters(**{k: v for k, v in params.items()
                                  if v is not None and (cluster == "slurm" or not k.startswith("slurm_"))})
    return executor


def _run_submitit(executor, tasks: list[dict], pending: list[PlannedRun], progress: bool, *, cluster: str,
                  threads: int, poll_s: float | None) -> list[dict]:
    if not tasks:
        return []
    for task in tasks:
        task["threads"] = None if cluster == "debug" else threads  # debug runs in this process
    jobs = executor.map_array(_run_one, tasks)
    if progress and cluster != "debug":
        print(f"submitted {len(jobs)} jobs ({cluster}); job ids {jobs[0].job_id} ... {jobs[-1].job_id}; "
              f"logs in {executor.folder}", flush=True)
    index = {id(j): i for i, j in enumerate(jobs)}
    summaries: list[dict | None] = [None] * len(jobs)
    bar = _bar(len(jobs), progress)
    try:
        if cluster == "debug":
            done = iter(jobs)
        else:
            import submitit

            done = submitit.helpers.as_completed(jobs, poll_frequency=poll_s or (1.0 if cluster == "local" else 30.0))
        for job in done:
            i = index[id(job)]
            try:
                summaries[i] = job.result()
            except Exception as err:  # the job itself died: timeout, preemption, out of memory
                summaries[i] = {"path": tasks[i]["path"], "status": "failed", "passed": None, "seconds": 0.0,
                                "error": f"job {job.job_id} failed ({type(err).__name__}); see {job.paths.stderr}"}
            _report(bar, pending[i], summaries[i], progress)
    finally:
        if bar is not None:
            bar.close()
    return summaries  # type: ignore[return-value]


# ============================================================================= the CLI
def add_sweep_parser(subparsers) -> None:
    """Add ``workbench sweep`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "sweep", help="a grid of runs of one study (cached, resumable; local pool or Slurm)",
        description="Run every point of a grid of config values (times every seed) as its own run, "
                    "skipping runs already complete in the run cache. Values are separated by ',' "
                    "(by ';' for tuple fields or when the list contains ';').")
    try:
        from workbench.registry import study_names
        names = ", ".join(study_names())
    except Exception:  # pragma: no cover - a broken studies package must not break --help
        names = ""
    p.add_argument("study", help=f"the study: {names}" if names else "the study")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="values of one config field to sweep (repeatable; the grid is their product)")
    p.add_argument("--seeds", default=None, metavar="SEEDS",
                   help="seeds, each its own run: 0-9, 0,3,5 or 0-4,10 (default: the preset's seed)")
    p.add_argument("--preset", default="quick", help="smoke | quick | paper (default: quick)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a fixed override for every run (repeatable)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N | auto (default: the config's)")
    p.add_argument("--executor", default="local", choices=EXECUTORS,
                   help="local process pool (default) or submitit (Slurm job array)")
    p.add_argument("--workers", type=int, default=None,
                   help="local pool size (default: the CPUs available); 1 runs in this process")
    p.add_argument("--out", default=None, help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
    p.add_argument("--force", action="store_true", help="rerun even the runs that are complete")
    p.add_argument("--quiet", action="store_true", help="no progress, only the summary table")
    g = p.add_argument_group("submitit (--executor submitit; pip install 'attention-workbench[cluster]')")
    g.add_argument("--slurm-partition", default=None, help="Slurm partition")
    g.add_argument("--slurm-time-min", type=int, default=60, help="time limit of each run in minutes (default 60)")
    g.add_argument("--slurm-array-parallelism", type=int, default=16,
                   help="at most this many array tasks run at once (default 16)")
    g.add_argument("--slurm-cpus-per-task", type=int, default=1, help="CPUs (and torch threads) per run (default 1)")
    g.add_argument("--slurm-gpus-per-node", type=int, default=None, help="GPUs per run (with --device cuda)")
    g.add_argument("--slurm-mem-gb", type=float, default=None, help="memory per run in GB")
    g.add_argument("--submitit-folder", default=None,
                   help="job pickles and logs, on a shared filesystem (default: <runs>/.submitit/<study>/%%j)")
    g.add_argument("--submitit-cluster", default="slurm", choices=CLUSTERS,
                   help="slurm (default); local or debug (in process) run the array on this machine")


def run_sweep_command(args: argparse.Namespace) -> int:
    """``workbench sweep``: 0 every run finished and passed; 1 a check failed; 2 bad input; 3 a run
    failed; 130 interrupted (Ctrl-C)."""
    from workbench.registry import get_study

    try:
        study = get_study(args.study)
        grid = parse_grid(args.grid, study.Config)
        opts: dict[str, Any] = {}
        if args.executor == "submitit":
            opts = {"cluster": args.submitit_cluster, "partition": args.slurm_partition,
                    "time_min": args.slurm_time_min, "array_parallelism": args.slurm_array_parallelism,
                    "cpus_per_task": args.slurm_cpus_per_task, "gpus_per_node": args.slurm_gpus_per_node,
                    "mem_gb": args.slurm_mem_gb}
            if args.submitit_folder:
                opts["folder"] = args.submitit_folder
        result = sweep(study, grid, args.seeds, preset=args.preset, overrides=args.overrides,
                       executor=args.executor, workers=args.workers, root=args.out, force=args.force,
                       progress=not args.quiet, device=args.device, **opts)
    except WorkbenchInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; give the same command again to resume", file=sys.stderr)
        return 130
    table = result.table
    shown = table if len(table) <= 40 else SweepTable(
        [r for r in table if r["status"] != "complete" or not r["passed"]], table.keys)
    print(f"\n== sweep {result.study} [{args.preset}]: {len(table)} runs ({result.skipped} skipped as complete, "
          f"{result.ran} run, {len(result.failures)} failed)")
    if len(shown):
        print(shown.format() if shown is table else f"(showing the {len(shown)} runs that failed)\n{shown.format()}")
    n_pass = sum(bool(r["passed"]) for r in table)
    print(f"{n_pass}/{len(table)} runs passed every check")
    for run, message in result.failures:
        print(f"run failed: {run}: {message}", file=sys.stderr)
    print(f"load in a notebook: from workbench.sweep import load_sweep; "
          f"table = load_sweep({result.study!r}, {_python_grid(grid, study, args)}, "
          f"seeds={args.seeds!r}, preset={args.preset!r}{_python_kw(args)})")
    return result.exit_code


def _python_grid(grid: dict[str, list[str]], study: ModuleType, args: argparse.Namespace) -> str:
    base = study.Config.preset(args.preset).with_overrides(args.overrides)
    return repr({k: _grid_values(base, {k: v})[k] for k, v in grid.items()})


def _python_kw(args: argparse.Namespace) -> str:
    kw = ""
    if args.overrides:
        kw += f", overrides={list(args.overrides)!r}"
    if args.device:
        kw += f", device={args.device!r}"
    if args.out:
        kw += f", root={args.out!r}"
    return kw


# ============================================================================== helpers
def _number(x: Any) -> Any:
    if isinstance(x, str):
        try:
            return float(x)  # checks.json writes non-finite floats as 'nan', 'inf'
        except ValueError:
            return x
    return x


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    if isinstance(v, tuple):
        return "(" + ",".join(_short(x) for x in v) + ")"
    return str(v)


__all__ = ["sweep", "load_sweep", "load_runs", "plan_sweep", "parse_grid", "parse_seeds", "SweepTable",
           "SweepResult", "PlannedRun", "make_submitit_executor", "add_sweep_parser", "run_sweep_command"]
