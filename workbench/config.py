"""Study configs: frozen, typed, validated dataclasses with presets and a stable content hash.

Every study's `Config` subclasses `StudyConfig` (with ``@dataclass(frozen=True, kw_only=True)``) and
so gets, for free:

- the fields every run needs: ``seed``, ``n_seeds``, ``dtype`` and ``device``;
- ``replace(**changes)`` that re-validates, ``to_dict``/``from_dict`` (JSON-safe, round-trips);
- ``with_overrides(["key=value", ...])``: the CLI's ``--set`` with type coercion from the
  annotations and "did you mean" for unknown fields;
- ``preset(name)`` for the ``smoke`` / ``quick`` / ``paper`` classmethods;
- ``content_hash()``: sha256 of the canonical JSON of the config (stable across runs and machines).

Validation lives in the subclass's ``validate()`` (called from ``__post_init__``) using the small
``require_*`` helpers below, which raise `ConfigError` with a message a person understands.  Before
it, every config gets the generic range checks (`check_ranges`): the seed fits the streams'
range (``0 <= seed <= SEED_MAX``), every integer field (counts, sizes, steps) is at most
``COUNT_MAX`` in absolute value, every float field is finite.  Every message names the study and
the field: ``svm-bias: steps must be <= 1000000000, got ...``.

A study whose tensors can be sized from the config overrides `StudyConfig.memory_estimate`; the
runner compares it with the memory available before it computes anything.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, Sequence, get_args, get_origin

import torch

from workbench.errors import ConfigError, did_you_mean

PRESETS = ("smoke", "quick", "paper")
DTYPES = {"float64": torch.float64, "float32": torch.float32}
SEED_MAX = 2 ** 62
"""The largest seed: streams take seeds below 2**64, and records store seeds in int64 arrays, so
2**62 leaves room for both."""
COUNT_MAX = 10 ** 9
"""The largest value of an integer field (steps, sizes, counts): beyond it nothing finishes, and
numpy's int64 arithmetic on step grids (``logspace(0, log10(steps))``) stops being exact."""


@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    """Fields shared by every study config."""

    seed: int = 0
    """Root of every random stream: ``workbench.streams.Stream(seed, experiment, *keys)``, with
    ensemble member i as a key (never ``seed + i``)."""
    n_seeds: int = 1
    """Number of independent seeds (ensemble members) run as one batched program."""
    dtype: Literal["float64", "float32"] = "float64"
    """Floating-point type of every tensor; float64 unless you are studying precision itself."""
    device: str = "cpu"
    """'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when available); resolved by the runner."""

    _presets: ClassVar[tuple[str, ...]] = PRESETS

    # ----------------------------------------------------------------------------------- checks
    def __post_init__(self) -> None:
        try:
            require_int(self, "seed", low=0)
            if self.seed > SEED_MAX:
                raise ConfigError(f"seed must be <= 2**62 = {SEED_MAX} (streams take seeds below 2**64; records "
                                  f"store seeds in int64), got {self.seed}")
            require_int(self, "n_seeds", low=1)
            require_choice(self, "dtype", tuple(DTYPES))
            if not isinstance(self.device, str) or not (self.device in ("cpu", "cuda", "auto")
                                                        or self.device.startswith("cuda:")):
                raise ConfigError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")
            check_ranges(self)
            for f in fields(self):
                sub = getattr(self, f.name)
                if isinstance(sub, SubConfig):
                    try:
                        sub.validate()
                    except ConfigError as err:
                        raise ConfigError(f"{f.name}.{err}") from None
            self.validate()
        except ConfigError as err:
            raise named(type(self), err) from None

    def validate(self) -> None:
        """Study-specific validation; override in subclasses (raise `ConfigError`)."""

    def memory_estimate(self) -> tuple[float, str] | None:
        """(bytes, what) of the largest allocation of a run at this config, or None when the study
        cannot size it from the config.  The runner refuses a config whose estimate exceeds the
        memory available (exit 2) before anything runs."""
        return None

    @classmethod
    def study_name(cls) -> str | None:
        """The CLI name of the study this config belongs to (for messages), or None."""
        explicit = getattr(cls, "_study_name", None)
        if explicit:
            return explicit
        module = cls.__module__
        for name in (module, module.rpartition(".")[0]):
            mod = sys.modules.get(name) if name else None
            if mod is not None and isinstance(getattr(mod, "NAME", None), str):
                return mod.NAME
        parts = module.split(".")
        if len(parts) >= 2 and parts[0] == "studies":
            return parts[1].replace("_", "-")
        return None

    # ------------------------------------------------------------------------------ derived
    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def torch_device(self) -> torch.device:
        return torch.device(resolve_device(self.device))

    # ------------------------------------------------------------------------- construction
    @classmethod
    def preset(cls, name: str) -> "StudyConfig":
        if name not in cls._presets:
            raise ConfigError(f"unknown preset {name!r}; choose one of {list(cls._presets)}.{did_you_mean(name, cls._presets)}")
        return getattr(cls, name)()

    @classmethod
    def smoke(cls):
        return cls()

    @classmethod
    def quick(cls):
        return cls()

    @classmethod
    def paper(cls):
        return cls()

    def replace(self, **changes: Any):
        """A copy with ``changes`` applied and validated; a sub-experiment's field is named with a
        dot, ``cfg.replace(**{"toy.lr": 0.2})``, or the whole sub-config replaced, ``toy=...``."""
        flat: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        try:
            for key, value in changes.items():
                field_annotation(type(self), key)
                head, _, rest = key.partition(".")
                if rest:
                    nested.setdefault(head, {})[rest] = value
                else:
                    flat[key] = value
            for head, sub_changes in nested.items():
                base = flat.get(head, getattr(self, head))
                flat[head] = dataclasses.replace(base, **sub_changes)
        except ConfigError as err:
            raise named(type(self), err) from None
        return dataclasses.replace(self, **flat)

    def with_overrides(self, assignments: Sequence[str]):
        """Apply CLI-style ``key=value`` strings (``toy.lr=0.2`` for a sub-experiment's field),
        coercing each value to the field's type."""
        changes: dict[str, Any] = {}
        try:
            for item in assignments:
                if "=" not in item:
                    raise ConfigError(f"--set expects key=value, got {item!r}")
                key, raw = (s.strip() for s in item.split("=", 1))
                changes[key] = coerce(raw, field_annotation(type(self), key), key)
        except ConfigError as err:
            raise named(type(self), err) from None
        return self.replace(**changes)

    @classmethod
    def field_names(cls) -> list[str]:
        """Every settable name: the primary fields and each sub-config's fields as ``sub.field``."""
        return field_names(cls)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        try:
            return _from_dict(cls, data)
        except ConfigError as err:
            raise named(cls, err) from None

    def content_hash(self, length: int = 12) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=True)
        return hashlib.sha256(f"{type(self).__module__}:{blob}".encode()).hexdigest()[:length]

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """Each field's documentation string (the string literal under it in the class body)."""
        import ast
        import inspect

        docs: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            if not dataclasses.is_dataclass(klass):
                continue
            try:
                tree = ast.parse(inspect.getsource(klass).lstrip())
            except (OSError, TypeError, SyntaxError):
                continue
            body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
            for a, b in zip(body, body[1:]):
                if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr) \
                        and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str):
                    docs[a.target.id] = " ".join(b.value.value.split())
        return docs

    @classmethod
    def describe_fields(cls) -> list[dict[str, Any]]:
        """Every field (a nested dataclass's fields as ``sub.field``): name, type, documentation
        and the value in each preset.  What ``workbench fields STUDY`` prints."""
        presets = {}
        for name in cls._presets:
            try:
                presets[name] = cls.preset(name)
            except ConfigError:  # pragma: no cover - a preset that does not validate is a bug
                presets[name] = None
        return _describe(cls, "", {k: v for k, v in presets.items()})


@dataclass(frozen=True, kw_only=True)
class SubConfig:
    """The fields of one sub-experiment, nested in a study's `Config` (``cfg.toy.lr``).

    Subclass with ``@dataclass(frozen=True, kw_only=True)``, document each field like a primary
    one, and validate in ``validate()``; the study's config calls it and names the field
    ``toy.lr`` in any message.  In the study's `Config`: ``toy: ToyConfig = field(default_factory=ToyConfig)``.
    """

    def validate(self) -> None:
        """Sub-experiment validation; override (raise `ConfigError`)."""

    def replace(self, **changes: Any):
        for key in changes:
            field_annotation(type(self), key)
        return dataclasses.replace(self, **changes)

    field_docs = classmethod(StudyConfig.field_docs.__func__)


def field_names(cls: type, prefix: str = "") -> list[str]:
    out: list[str] = []
    hints = _hints(cls)
    for f in fields(cls):
        annotation = hints.get(f.name, f.type)
        if isinstance(annotation, type) and issubclass(annotation, SubConfig):
            out += field_names(annotation, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def field_annotation(cls: type, key: str) -> Any:
    """The annotation of field ``key`` (dotted for a sub-config's field) of ``cls``, or a
    `ConfigError` with "did you mean" over every settable name."""
    hints = _hints(cls)
    head, _, rest = key.partition(".")
    annotation = hints.get(head) if head in {f.name for f in fields(cls)} else None
    if annotation is not None and rest and isinstance(annotation, type) and issubclass(annotation, SubConfig):
        if rest in {f.name for f in fields(annotation)}:
            return _hints(annotation)[rest]
        annotation = None
    elif rest:
        annotation = None
    if annotation is None:
        names = field_names(cls) + [f.name for f in fields(cls)]
        raise ConfigError(f"{cls.__qualname__} has no field {key!r}.{did_you_mean(key, names)}")
    return annotation


def _to_dict(cfg: Any) -> dict[str, Any]:
    return {f.name: (_to_dict(v) if isinstance(v := getattr(cfg, f.name), SubConfig) else _jsonable(v))
            for f in fields(cfg)}


def _from_dict(cls: type, data: dict[str, Any]):
    hints = _hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"{cls.__qualname__} has no field {unknown[0]!r}.{did_you_mean(unknown[0], names)}")
    values = {}
    for k, v in data.items():
        annotation = hints[k]
        if isinstance(annotation, type) and issubclass(annotation, SubConfig):
            values[k] = _from_dict(annotation, v)
        else:
            values[k] = _from_json(v, annotation)
    return cls(**values)


# ----------------------------------------------------------------------------------- devices
def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; a CUDA request without CUDA is a clear error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available on this machine; use --device cpu or auto")
    return device


def _describe(cls: type, prefix: str, presets: dict[str, Any]) -> list[dict[str, Any]]:
    hints = _hints(cls)
    docs = cls.field_docs() if hasattr(cls, "field_docs") else _field_docs(cls)
    rows: list[dict[str, Any]] = []
    for f in fields(cls):
        values = {p: (getattr(c, f.name) if c is not None else None) for p, c in presets.items()}
        annotation = hints.get(f.name, f.type)
        if dataclasses.is_dataclass(annotation):
            rows.append({"name": prefix + f.name, "type": annotation.__qualname__, "doc": docs.get(f.name, ""),
                         "presets": {p: "(sub-config)" for p in values}})
            rows += _describe(annotation, f"{prefix}{f.name}.", values)
            continue
        rows.append({"name": prefix + f.name, "type": type_name(annotation), "doc": docs.get(f.name, ""),
                     "presets": {p: _jsonable(v) for p, v in values.items()}})
    return rows


def _field_docs(cls: type) -> dict[str, str]:
    return StudyConfig.field_docs.__func__(cls)  # the same reader, for a sub-config not derived from StudyConfig


def type_name(annotation: Any) -> str:
    """A readable name of a field's type: ``int``, ``tuple[float, ...]``, ``'a' | 'b'``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is tuple:
        return f"tuple[{', '.join('...' if a is Ellipsis else type_name(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


# ------------------------------------------------------------------------------- validation
def named(cls: type, err: ConfigError) -> ConfigError:
    """``err`` with the study's name in front of its message (once)."""
    study = cls.study_name() if hasattr(cls, "study_name") else None
    message = str(err)
    if not study or message.startswith(f"{study}: "):
        return err
    return type(err)(f"{study}: {message}")


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_ranges(cfg: Any, prefix: str = "") -> None:
    """The generic range checks every config gets: integers within +-`COUNT_MAX` (the seed is
    checked against `SEED_MAX` instead), floats finite, in plain fields, tuples and nested
    sub-configs alike."""
    hints = _hints(type(cfg))
    for f in fields(cfg):
        if f.name == "seed" and not prefix:
            continue
        value = getattr(cfg, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_ranges(value, f"{name}.")
            continue
        for v in (value if isinstance(value, tuple) else (value,)):
            if isinstance(v, bool):
                continue
            if isinstance(v, int) and abs(v) > COUNT_MAX:
                low = "" if v > 0 else "-"
                raise ConfigError(f"{name} must be {'<=' if v > 0 else '>='} {low}{COUNT_MAX}, got {value!r}")
            if isinstance(v, float) and not math.isfinite(v):
                annotation = hints.get(f.name)
                raise ConfigError(f"{name} must be a finite number, got {value!r}"
                                  + (" (a string value is allowed too)" if _allows_str(annotation) else ""))


def _allows_str(annotation: Any) -> bool:
    return str in get_args(annotation)


def require_int(cfg: Any, name: str, low: int | None = None, high: int | None = None) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    _require_range(name, value, low, high)


def require_float(cfg: Any, name: str, low: float | None = None, high: float | None = None,
                  low_open: bool = False, high_open: bool = False) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    _require_range(name, value, low, high, low_open, high_open)


def require_choice(cfg: Any, name: str, choices: Sequence[Any]) -> None:
    value = getattr(cfg, name)
    if value not in choices:
        hint = did_you_mean(str(value), [str(c) for c in choices])
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}.{hint}")


def require_sequence(cfg: Any, name: str, low: float | None = None, high: float | None = None,
                     min_len: int = 1, increasing: bool = False, low_open: bool = False) -> None:
    value = getattr(cfg, name)
    if not isinstance(value, tuple) or len(value) < min_len:
        raise ConfigError(f"{name} must be a tuple of at least {min_len} number(s), got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{name} must hold finite numbers, got {value!r}")
        _require_range(name, v, low, high, low_open)
    if increasing and any(b <= a for a, b in zip(value, value[1:])):
        raise ConfigError(f"{name} must be strictly increasing, got {value!r}")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _require_range(name, value, low, high, low_open=False, high_open=False) -> None:
    if low is not None and (value < low or (low_open and value == low)):
        raise ConfigError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ConfigError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")


# --------------------------------------------------------------------------------- coercion
def coerce(raw: str, annotation: Any, name: str = "value") -> Any:
    """Convert a CLI string to a value of ``annotation`` (int, float, bool, str, Literal,
    tuple[T, ...], unions such as ``float | str``)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        for choice in args:
            try:
                value = coerce(raw, type(choice), name)
            except ConfigError:
                continue
            if value == choice:
                return value
        raise ConfigError(f"{name} must be one of {list(args)}, got {raw!r}.{did_you_mean(raw, [str(a) for a in args])}")
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            if option is type(None):
                if raw.lower() in ("none", "null"):
                    return None
                continue
            try:
                return coerce(raw, option, name)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{name}: could not read {raw!r} as {annotation}")
    if origin is tuple:
        text = raw.strip().strip("()[]")
        items = [s for s in (p.strip() for p in text.split(",")) if s]
        inner = args[0] if args else str
        return tuple(coerce(s, inner, name) for s in items)
    if annotation is bool:
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    if annotation is int:
        try:
            return int(raw)
        except ValueError:
            try:
                as_float = float(raw)
            except ValueError:
                as_float = math.nan
            if math.isfinite(as_float) and as_float.is_integer():
                return int(as_float)
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if annotation is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if annotation is str:
        return raw
    raise ConfigError(f"{name}: cannot parse values of type {annotation}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _from_json(value: Any, annotation: Any) -> Any:
    origin = get_origin(annotation)
    if isinstance(value, list) and (origin is tuple or origin in (typing.Union, types.UnionType)):
        return tuple(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


__all__ = [
    "StudyConfig", "SubConfig", "PRESETS", "resolve_device", "require", "require_int", "require_float",
    "require_choice", "require_sequence", "coerce", "field",
]
