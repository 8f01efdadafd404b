"""Config base: coercion, validation, did-you-mean, presets, hashing."""
from dataclasses import dataclass
from typing import Literal

import pytest

from workbench.config import StudyConfig, coerce, require_choice, require_float
from workbench.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Demo(StudyConfig):
    depth: int = 3
    """Layers."""
    qk_scale: tuple[float, ...] = (0.5, 1.0)
    """QK scales."""
    branch_scale: float | str = 1.0
    """alpha."""
    norm: Literal["none", "pre", "post"] = "none"
    """Where LayerNorm goes."""
    skip: bool = False
    """Residual connections."""
    lr: float = 0.1
    """Step size."""

    def validate(self):
        require_float(self, "lr", low=0, low_open=True)
        require_choice(self, "norm", ("none", "pre", "post"))

    @classmethod
    def quick(cls):
        return cls(depth=5)


def test_overrides_coerce_each_type():
    cfg = Demo().with_overrides(["depth=7", "qk_scale=0.1,2", "branch_scale=1/sqrt(L)", "norm=post",
                                 "skip=true", "lr=1e-3", "seed=4"])
    assert cfg.depth == 7 and cfg.qk_scale == (0.1, 2.0) and cfg.branch_scale == "1/sqrt(L)"
    assert cfg.norm == "post" and cfg.skip is True and cfg.lr == 1e-3 and cfg.seed == 4
    assert Demo().with_overrides(["branch_scale=0.5"]).branch_scale == 0.5


def test_unknown_field_suggests_close_match():
    with pytest.raises(ConfigError, match="Did you mean 'depth'"):
        Demo().with_overrides(["deph=3"])
    with pytest.raises(ConfigError, match="Did you mean 'qk_scale'"):
        Demo().replace(qk_scal=(1.0,))


@pytest.mark.parametrize("item, message", [
    ("depth=two", "integer"), ("lr=-1", "lr must be >"), ("norm=mid", "must be one of"),
    ("skip=maybe", "true or false"), ("depth", "key=value"), ("dtype=float16", "must be one of"),
    ("n_seeds=0", "n_seeds must be >= 1"),
])
def test_bad_values_are_clear_errors(item, message):
    with pytest.raises(ConfigError, match=message):
        Demo().with_overrides([item])


def test_presets_and_unknown_preset():
    assert Demo.preset("quick").depth == 5
    with pytest.raises(ConfigError, match="Did you mean 'quick'"):
        Demo.preset("quik")


def test_hash_is_stable_and_sensitive():
    a, b = Demo(), Demo()
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != a.replace(lr=0.2).content_hash()
    assert Demo.from_dict(a.replace(qk_scale=(3.0,)).to_dict()) == a.replace(qk_scale=(3.0,))
    # a known value: the hash must not change between runs, machines or Python versions
    assert len(a.content_hash()) == 12 and a.content_hash() == Demo().content_hash()


def test_field_docs_are_read_from_source():
    docs = Demo.field_docs()
    assert docs["depth"] == "Layers." and "seed" in docs


def test_coerce_int_accepts_integral_floats_only():
    assert coerce("1e3", int) == 1000
    with pytest.raises(ConfigError):
        coerce("1.5", int)


def test_configs_hold_no_generator():
    """Randomness is named by streams (workbench.streams), not held by a config."""
    assert not hasattr(Demo(seed=3), "generator")


# ------------------------------------------------------------------------- sub-experiment configs
from dataclasses import dataclass as _dataclass, field as _field  # noqa: E402

from workbench.config import SubConfig, require_float as _require_float  # noqa: E402


@_dataclass(frozen=True, kw_only=True)
class _Toy(SubConfig):
    lr: float = 0.5
    """Step size of the toy runs."""
    steps: int = 10
    """Steps of the toy runs."""

    def validate(self) -> None:
        _require_float(self, "lr", low=0, low_open=True)


@_dataclass(frozen=True, kw_only=True)
class _Nested(StudyConfig):
    lr: float = 0.1
    """Step size of the primary run."""
    toy: _Toy = _field(default_factory=_Toy)
    """The toy sub-experiment."""


def test_sub_config_fields_are_set_with_dots_and_separate_from_the_primary():
    cfg = _Nested().with_overrides(["toy.lr=0.2", "toy.steps=20", "lr=0.3"])
    assert cfg.toy == _Toy(lr=0.2, steps=20) and cfg.lr == 0.3
    assert _Nested().replace(lr=0.9).toy == _Toy()           # sweeping lr leaves the toy alone
    assert _Nested().replace(**{"toy.lr": 0.7}).toy.lr == 0.7
    assert _Nested().replace(toy=_Toy(steps=3)).toy.steps == 3
    assert _Nested.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["toy"] == {"lr": 0.2, "steps": 20}
    assert cfg.content_hash() != _Nested().content_hash()
    assert _Nested.field_names() == ["seed", "n_seeds", "dtype", "device", "lr", "toy.lr", "toy.steps"]


def test_sub_config_errors_name_the_dotted_field():
    with pytest.raises(ConfigError, match=r"no field 'toy.lrr'.*Did you mean 'toy.lr'"):
        _Nested().with_overrides(["toy.lrr=1"])
    with pytest.raises(ConfigError, match=r"no field 'toy.lr.x'"):
        _Nested().replace(**{"toy.lr.x": 1})
    with pytest.raises(ConfigError, match=r"toy.lr must be"):
        _Nested().with_overrides(["toy.lr=-1"])
    with pytest.raises(ConfigError, match=r"toy.steps must be <="):
        _Nested().with_overrides(["toy.steps=1e30"])
