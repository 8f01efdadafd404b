"""A sweep's results as one table, one row per run, read back from the records on disk."""
from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from workbench.errors import did_you_mean

from workbench.sweep.grid import _number, _short, plan_sweep


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


