"""Phases and typed results: a study's run as named sub-experiments stored flat, loaded typed."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from workbench.config import StudyConfig
from workbench.errors import DivergenceError
from workbench.phases import TRANSIENT, Phase, flatten, load, run_phases


@dataclass(frozen=True, kw_only=True)
class Cfg(StudyConfig):
    steps: int = 3


@dataclass
class Inner:
    a: np.ndarray
    n: int


@dataclass
class First:
    x: np.ndarray
    """(steps,)"""
    scale: float
    label: str
    inner: Inner
    curves: dict[str, np.ndarray]
    optional: np.ndarray | None = None
    tensor: torch.Tensor | None = field(default=None, metadata=TRANSIENT)


@dataclass
class Second:
    total: float
    grad_on: bool


def first(cfg: Cfg) -> First:
    x = np.arange(cfg.steps, dtype=np.float64)
    return First(x=x, scale=2.5, label="lin", inner=Inner(a=x * 2, n=cfg.steps), curves={"up": x, "down": -x},
                 tensor=torch.ones(2))


def second(cfg: Cfg, *, first: First, progress: bool = False) -> Second:
    assert first.tensor is not None           # transient fields reach later phases in memory
    return Second(total=float(first.x.sum() * first.scale), grad_on=torch.is_grad_enabled())


PHASES = (Phase("first", first), Phase("second", second, needs=("first",), grad=True))


def test_results_are_stored_flat_and_load_back_typed():
    rec = run_phases("toy", Cfg(), PHASES, progress=False)
    assert sorted(rec.arrays) == ["first.curves.down", "first.curves.up", "first.inner.a", "first.inner.n",
                                  "first.label", "first.scale", "first.x", "second.grad_on", "second.total"]
    back = load(rec, "first", First)
    assert isinstance(back, First) and isinstance(back.inner, Inner) and back.inner.n == 3
    assert back.scale == 2.5 and back.label == "lin" and back.optional is None and back.tensor is None
    np.testing.assert_array_equal(back.curves["down"], -np.arange(3.0))
    assert load(rec, "second", Second) == Second(total=7.5, grad_on=True)
    assert set(rec.info["phase_seconds"]) == {"first", "second"}
    assert PHASES[0].result_type is First


def test_autograd_is_off_unless_a_phase_asks():
    rec = run_phases("toy", Cfg(), (Phase("second", lambda cfg: Second(total=0.0, grad_on=torch.is_grad_enabled())),),
                     progress=False)
    assert not bool(rec["second.grad_on"])


def test_a_failing_phase_keeps_the_finished_ones():
    def boom(cfg: Cfg, *, first: First) -> Second:
        raise DivergenceError("loss is NaN", step=2, partial={"loss": np.array([1.0, np.nan])})

    with pytest.raises(DivergenceError, match="toy, phase 'boom': loss is NaN") as info:
        run_phases("toy", Cfg(), (PHASES[0], Phase("boom", boom, needs=("first",))), progress=False)
    partial = info.value.partial
    assert "first.x" in partial.arrays and "boom.loss" in partial.arrays and info.value.step == 2


def test_unstorable_values_are_named():
    with pytest.raises(TypeError, match="'p.obj'"):
        flatten("p", {"obj": object()})


def test_needs_must_name_earlier_phases():
    with pytest.raises(ValueError, match="needs \\['first'\\]"):
        run_phases("toy", Cfg(), (PHASES[1], PHASES[0]), progress=False)


# ------------------------------------------------------------------------------ phase cache
from workbench.phases import phase_cache  # noqa: E402

CALLS: list[str] = []


@dataclass(frozen=True, kw_only=True)
class Cfg2(StudyConfig):
    steps: int = 3
    """Primary: read by 'primary' only."""
    toy_steps: int = 2
    """Read by 'toy' only."""


@dataclass
class Toy:
    x: np.ndarray


def toy(cfg: Cfg2) -> Toy:
    CALLS.append("toy")
    return Toy(x=np.arange(cfg.toy_steps, dtype=np.float64) + cfg.seed)


def primary(cfg: Cfg2) -> Toy:
    CALLS.append("primary")
    return Toy(x=np.full(cfg.steps, 2.0))


def with_memory(cfg: Cfg2) -> First:
    CALLS.append("with_memory")
    return first(Cfg(steps=cfg.toy_steps))


CACHED = (Phase("primary", primary), Phase("toy", toy, inputs=lambda cfg: cfg.toy_steps),
          Phase("memory", with_memory, inputs=lambda cfg: cfg.toy_steps))


def test_a_phase_whose_inputs_are_unchanged_is_reused_bit_identically(tmp_path):
    CALLS.clear()
    with phase_cache(tmp_path, "code-1"):
        a = run_phases("toy", Cfg2(), CACHED, progress=False)
        b = run_phases("toy", Cfg2(steps=5), CACHED, progress=False)       # a primary field swept
    assert CALLS == ["primary", "toy", "with_memory", "primary", "with_memory"]
    assert b.info["phases_reused"] == ["toy"]                                  # transient results never are
    assert a["toy.x"].tobytes() == b["toy.x"].tobytes() and b["primary.x"].shape == (5,)
    CALLS.clear()
    with phase_cache(tmp_path, "code-1"):
        run_phases("toy", Cfg2(toy_steps=4), CACHED, progress=False)        # its own input changed
        run_phases("toy", Cfg2(seed=1), CACHED, progress=False)             # a run-level field changed
    with phase_cache(tmp_path, "code-2"):
        run_phases("toy", Cfg2(), CACHED, progress=False)                   # the code changed
    assert CALLS.count("toy") == 3
    run_phases("toy", Cfg2(), CACHED, progress=False)                       # no cache outside the block
    assert CALLS.count("toy") == 4


def test_a_damaged_cache_file_is_recomputed(tmp_path):
    with phase_cache(tmp_path, "c"):
        run_phases("toy", Cfg2(), CACHED, progress=False)
        for f in tmp_path.glob("toy-*.npz"):
            f.write_bytes(b"not a zip")
        CALLS.clear()
        rec = run_phases("toy", Cfg2(), CACHED, progress=False)
    assert "toy" in CALLS and "phases_reused" not in rec.info
