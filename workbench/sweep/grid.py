"""The grid of a sweep: ``--grid``/``--seeds`` parsing and the plan of runs (one per grid point
and seed), validated before anything runs."""
from __future__ import annotations

import itertools
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping, Sequence


from workbench.config import StudyConfig, coerce, field_annotation, resolve_device
from workbench.errors import ConfigError, WorkbenchInputError, did_you_mean

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


