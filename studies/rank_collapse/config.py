"""Configuration of the rank-collapse study (Dong, Cordonnier & Loukas 2021, with the Noci et al.
2022 and Geshkovski et al. 2023 extensions).

The primary experiment is the depth sweep (Dong et al.'s Fig. 2 with the uniform-attention witness
and the alpha = 1/sqrt(L) depth-scaling runs on the same weights); its fields are flat, and their
names ``n_tokens, d_model, n_heads, depth, qk_scale, value_scale, skip, branch_scale, mlp, norm``
are the public interface given by the issue.  ``skip``, ``branch_scale``, ``mlp`` and ``norm``
describe the *full model*, the last of the four Fig. 2 variants; the three ablations (SAN, SAN+MLP,
SAN+skip) are derived from it (see `studies.rank_collapse.model.variant_specs`).

Every other sub-experiment has its own nested config (``cfg.scan.epsilons``, set as
``--set scan.epsilons=...``), holding its own sizes and its own copies of the model fields it
uses, with the sweep's defaults: so ``--grid qk_scale=...`` changes the depth sweep only, and
``--set scan.qk_scale=...`` the cubic-law scan only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from workbench.config import (StudyConfig, SubConfig, require, require_choice, require_float, require_int,
                              require_sequence)

INV_SQRT_DEPTH = "1/sqrt(L)"
"""The string value of ``branch_scale`` that means alpha = 1/sqrt(depth) (Noci et al. 2022)."""
PATHS_MAX = 4096
"""The most paths (H + 1)^L the exact path decomposition enumerates."""


def _logspace(lo: float, hi: float, num: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.logspace(lo, hi, num))


def branch_alpha(branch_scale: float | str, depth: int) -> float:
    """alpha as a number: ``branch_scale`` itself, or 1/sqrt(depth) for the string '1/sqrt(L)'."""
    if isinstance(branch_scale, str):
        return 1.0 / math.sqrt(depth)
    return float(branch_scale)


def _require_bool(cfg, name: str) -> None:
    value = getattr(cfg, name)
    require(isinstance(value, bool), f"{name} must be true or false, got {value!r}")


def _require_no_overflow(value_scale: float, alpha: float, depth: int) -> None:
    """The signal grows by at most (1 + max(1, alpha) sigma_v) per layer; its squares (norms, the
    Noci prediction (1 + alpha^2 sigma_v^2)^L) must stay below float64's ~1.8e308."""
    growth = 1.0 + max(1.0, alpha) * value_scale
    require(2 * depth * math.log10(growth) <= 300,
            f"value_scale={value_scale:g} (with branch_scale alpha={alpha:.3g}) grows the signal by up to "
            f"{growth:.3g} per layer, so its squares overflow float64 over {depth} layers; keep "
            f"(1 + max(1, alpha) value_scale)^(2L) <= 1e300, i.e. value_scale <= "
            f"{(10 ** (150 / depth) - 1) / max(1.0, alpha):.4g} at this depth")


# ------------------------------------------------------------------------ sub-experiments
@dataclass(frozen=True, kw_only=True)
class ModelCopy(SubConfig):
    """A sub-experiment's own copy of the model fields (defaults: the depth sweep's)."""

    n_tokens: int = 16
    """n: tokens per input sequence X (n x d)."""
    d_model: int = 32
    """d: model width."""
    n_heads: int = 1
    """H: heads per attention layer."""
    qk_scale: tuple[float, ...] = (0.5, 1.0, 2.0)
    """QK scales s: W_Q, W_K ~ N(0, s^2/d), all run at once (ensemble axis)."""
    value_scale: float = 1.0
    """sigma_v: W_V ~ N(0, sigma_v^2/d)."""
    skip: bool = True
    """Residual connections in the full model."""
    branch_scale: float = 1.0
    """alpha: residual-branch scale of the full model (a positive number)."""
    mlp: bool = True
    """ReLU MLP sublayer (width 4d, He init) in the full model."""
    norm: Literal["none", "pre", "post"] = "post"
    """LayerNorm placement in the full model: none | pre | post."""

    def validate(self) -> None:
        require_int(self, "n_tokens", low=2)
        require_int(self, "d_model", low=1)
        require_int(self, "n_heads", low=1)
        require_sequence(self, "qk_scale", low=0.0, low_open=True)
        require_float(self, "value_scale", low=0.0, low_open=True)
        _require_bool(self, "skip")
        require_float(self, "branch_scale", low=0.0, low_open=True)
        _require_bool(self, "mlp")
        require_choice(self, "norm", ("none", "pre", "post"))


@dataclass(frozen=True, kw_only=True)
class ScanConfig(ModelCopy):
    """The cubic-law scan: one (and two) layers at X = 1 x^T + eps R0 over a grid of eps."""

    heads: int = 4
    """Head count of the multi-head variant (d_head = d / heads)."""
    epsilons: tuple[float, ...] = _logspace(-4, -1, 13)
    """Input-residual scales eps of the one-layer scan."""
    epsilons_two_layer: tuple[float, ...] = _logspace(-2, 0, 17)
    """Input-residual scales of the two-layer scan (expected slope 9)."""

    def validate(self) -> None:
        super().validate()
        require_int(self, "heads", low=1)
        require_sequence(self, "epsilons", low=0.0, min_len=3, increasing=True, low_open=True)
        require_sequence(self, "epsilons_two_layer", low=0.0, min_len=3, increasing=True, low_open=True)


@dataclass(frozen=True, kw_only=True)
class GradConfig(ModelCopy):
    """The query/key-gradient test: one SA layer at X = 1 x^T + eps R0, and the full model at X = 1 x^T."""

    depth: int = 6
    """Layers of the full model."""
    epsilons: tuple[float, ...] = _logspace(-4, -1, 13)
    """Input-residual scales eps of the one-layer gradient scan (eps = 0 is added in front)."""

    def validate(self) -> None:
        super().validate()
        require_int(self, "depth", low=1)
        require_sequence(self, "epsilons", low=0.0, min_len=3, increasing=True, low_open=True)


@dataclass(frozen=True, kw_only=True)
class BoundConfig(SubConfig):
    """The explicit-bound trials: random single-head layers at random (s, sigma_v, input residual)."""

    tokens: tuple[int, ...] = (2, 4, 16, 64)
    """Token counts n; n = 2 with d = 1 is the case where the bound is tight up to 2 sqrt 2, so an
    error in its constants larger than that shows (`explicit_bound_tight`)."""
    widths: tuple[int, ...] = (1, 8, 32)
    """Widths d (d = 1: see ``tokens``)."""
    trials: int = 50
    """Random draws per (n, d) pair."""

    def validate(self) -> None:
        require_sequence(self, "tokens", low=2)
        require_sequence(self, "widths", low=1)
        require(all(isinstance(v, int) for v in self.tokens + self.widths), "tokens and widths must hold integers")
        require_int(self, "trials", low=1)

    @property
    def groups(self) -> list[tuple[int, int]]:
        """The (n, d) pairs, n-major: group (n, d) draws from the sub-stream ``"n{n}_d{d}"``."""
        return [(n, d) for n in self.tokens for d in self.widths]


@dataclass(frozen=True, kw_only=True)
class PrecisionConfig(SubConfig):
    """The pure SAN in extended precision (mpmath): the cubic law followed through depth past the
    float64 floor, where the residual of layer l is of order 10^(-3^l)."""

    n_tokens: int = 4
    """n: small, since each layer costs n^2 exponentials at ``digits`` digits."""
    d_model: int = 4
    """d: model width (one head)."""
    depth: int = 8
    """L: 8 layers take the residual to about 1e-300 .. 1e-1000, five cubic steps below 1e-5."""
    qk_scale: float = 1.0
    """s: W_Q, W_K ~ N(0, s^2/d)."""
    value_scale: float = 1.0
    """sigma_v: W_V ~ N(0, sigma_v^2/d)."""
    digits: int = 1500
    """Working precision in decimal digits; residuals below 10^-(digits - 30) are at its floor and
    are not fitted (as float64's are not)."""
    runs: int = 6
    """Independent networks (seeds of their own stream); about half a second each at the defaults."""

    def validate(self) -> None:
        require_int(self, "n_tokens", low=2)
        require_int(self, "d_model", low=1)
        require_int(self, "depth", low=3)
        require_float(self, "qk_scale", low=0.0, low_open=True)
        require_float(self, "value_scale", low=0.0, low_open=True)
        require_int(self, "digits", low=50)
        require_int(self, "runs", low=1)


@dataclass(frozen=True, kw_only=True)
class ComposedConfig(SubConfig):
    """The one-layer bound composed over depth (the form of Dong et al.'s Thm 2.2/2.3): pure SANs with
    1 and H heads on inputs X = 1 x^T + eps R0 (||res(X)||_{1,inf} = eps), measured in extended
    precision (mpmath) so that the residual is followed through every layer, far below float64's floor."""

    heads: tuple[int, ...] = (1, 2)
    """Head counts H of the networks (Thm 2.2 is H = 1, Thm 2.3 any H); d_head = d_model / H."""
    n_tokens: int = 6
    """n: small, since each layer costs H n^2 exponentials and n^2 d products at ``digits`` digits."""
    d_model: int = 6
    """d (d_head = d / H)."""
    depth: int = 5
    """L: the bound's exponent 3^L reaches 243 (a measured residual of about 10^-500 .. 10^-800)."""
    qk_scale: float = 1.0
    """s: W_Q, W_K ~ N(0, s^2/d)."""
    value_scale: float = 1.0
    """sigma_v: W_V ~ N(0, sigma_v^2/d)."""
    epsilons: tuple[float, ...] = (0.1, 0.01)
    """Input residuals eps = ||res(X_0)||_{1,inf}: the bound is informative only where sqrt(c) eps < 1
    (c the layer constant, about 10-100 here), so eps is small."""
    runs: int = 3
    """Networks per head count."""
    digits: int = 1000
    """Working precision in decimal digits; relative residuals below 10^-(digits - 30) are at its floor
    and are not compared."""

    def validate(self) -> None:
        require_sequence(self, "heads", low=1)
        require(all(isinstance(h, int) and self.d_model % h == 0 for h in self.heads),
                f"heads must hold integers dividing d_model={self.d_model}, got {self.heads!r}")
        require_int(self, "n_tokens", low=2)
        require_int(self, "d_model", low=1)
        require_int(self, "depth", low=2)
        require_float(self, "qk_scale", low=0.0, low_open=True)
        require_float(self, "value_scale", low=0.0, low_open=True)
        require_sequence(self, "epsilons", low=0.0, high=1.0, low_open=True)
        require_int(self, "runs", low=1)
        require_int(self, "digits", low=50)


@dataclass(frozen=True, kw_only=True)
class PathsConfig(SubConfig):
    """The exact path decomposition, without and with skips (QK scale 1)."""

    heads: int = 2
    """H (the sum has H^L or (H+1)^L terms)."""
    depth: int = 3
    """L."""
    n_tokens: int = 16
    """n: tokens per input."""
    d_model: int = 32
    """d: model width."""
    value_scale: float = 1.0
    """sigma_v: W_V ~ N(0, sigma_v^2/d)."""
    branch_scale: float = 1.0
    """alpha: scale of the head branches when skips are on (a positive number)."""

    def validate(self) -> None:
        require_int(self, "heads", low=1)
        require_int(self, "depth", low=1)
        require((self.heads + 1) ** self.depth <= PATHS_MAX,
                f"depth = {self.depth} with heads = {self.heads} gives (heads + 1)^depth = "
                f"{(self.heads + 1) ** self.depth} paths, too many to enumerate (limit {PATHS_MAX})")
        require_int(self, "n_tokens", low=2)
        require_int(self, "d_model", low=1)
        require_float(self, "value_scale", low=0.0, low_open=True)
        require_float(self, "branch_scale", low=0.0, low_open=True)


@dataclass(frozen=True, kw_only=True)
class NociConfig(SubConfig):
    """The Monte Carlo test of E||m_L||^2 = (1 + alpha^2 sigma_v^2)^L ||m_0||^2 (uniform attention + skips)."""

    depth: int = 12
    """L."""
    samples: int = 1000
    """Independent networks."""
    n_tokens: int = 16
    """n: tokens per input."""
    d_model: int = 32
    """d: model width."""
    n_heads: int = 1
    """H: heads per layer."""
    value_scale: float = 1.0
    """sigma_v: W_V ~ N(0, sigma_v^2/d)."""

    def validate(self) -> None:
        require_int(self, "depth", low=1)
        require_int(self, "samples", low=10)
        require_int(self, "n_tokens", low=2)
        require_int(self, "d_model", low=1)
        require_int(self, "n_heads", low=1)
        require_float(self, "value_scale", low=0.0, low_open=True)
        _require_no_overflow(self.value_scale, 1.0, self.depth)

    @property
    def alphas(self) -> tuple[float, float]:
        """The two branch scales tested: 1 and 1/sqrt(L)."""
        return 1.0, 1.0 / math.sqrt(self.depth)


BERT_INIT_STD = 0.02
"""The per-entry init std of BERT-like models (all weight matrices N(0, 0.02^2) at width 768)."""
BERT_WIDTH = 768
BERT_QK_SCALE = BERT_INIT_STD * math.sqrt(BERT_WIDTH)
"""s of the 0.02 init in this study's parametrisation W_Q, W_K ~ N(0, s^2/d): 0.02 sqrt(768) = 0.554."""
BERT_VALUE_GAIN = BERT_INIT_STD ** 2 * BERT_WIDTH
"""sigma_v of the 0.02 init: W_V and W_O both N(0, 0.02^2) at d = 768 make the value map's gain
(0.02 sqrt 768)^2 = 0.307 times the norm-preserving N(0, 1/d) pair this study uses."""


@dataclass(frozen=True, kw_only=True)
class RegimeConfig(SubConfig):
    """Where skips keep the residual: SAN+skip over a grid of (alpha, sigma_v, s), all layers to ``depth``."""

    alphas: tuple[float, ...] = (0.1, 0.3, 1.0)
    """Branch scales alpha (1/sqrt(L) is 0.29 at L = 12 and 0.14 at L = 48)."""
    value_scales: tuple[float, ...] = (round(BERT_VALUE_GAIN, 3), 1.0, 2.0)
    """sigma_v values; the first is the value-map gain of the 0.02 init (`BERT_VALUE_GAIN`)."""
    qk_scales: tuple[float, ...] = (round(BERT_QK_SCALE, 3), 1.0, 2.0)
    """QK scales s; the first is the 0.02 init's (`BERT_QK_SCALE`)."""
    depth: int = 48
    """L: every layer up to it is recorded."""
    n_tokens: int = 16
    """n."""
    d_model: int = 32
    """d (one head)."""
    seeds: int = 10
    """Networks per cell (shared across cells: cell (alpha, sigma_v, s) rescales seed i's unit weights)."""

    def validate(self) -> None:
        require_sequence(self, "alphas", low=0.0, low_open=True)
        require_sequence(self, "value_scales", low=0.0, low_open=True)
        require_sequence(self, "qk_scales", low=0.0, low_open=True)
        require_int(self, "depth", low=1)
        require_int(self, "n_tokens", low=2)
        require_int(self, "d_model", low=1)
        require_int(self, "seeds", low=2)
        _require_no_overflow(max(self.value_scales), max(self.alphas), self.depth)


TRAINED_TASKS = ("sort", "circle")
"""The synthetic tasks of the trained-model phase (Dong et al.'s ``run_sort.py`` and ``run_circle.py``)."""


@dataclass(frozen=True, kw_only=True)
class TrainedConfig(SubConfig):
    """The four Fig. 2 variants trained (float64, full batch, Adam) on sorting and the circle task."""

    tasks: tuple[str, ...] = TRAINED_TASKS
    """Tasks trained, a subset of `TRAINED_TASKS`."""
    d_model: int = 16
    """d: model width (the official sort run uses 48, the circle run 32)."""
    n_heads: int = 2
    """H: heads per layer (2 in both official runs)."""
    depth: int = 4
    """L: layers (official: 6 for sorting, 1 for the circle, which is then applied recurrently)."""
    seeds: int = 3
    """Independently initialised networks per variant and task (the ensemble axis)."""
    steps: int = 150
    """Full-batch Adam steps (official: Adam at lr 1e-5, batch 30, 65-70 epochs)."""
    lr: float = 1e-2
    """Adam learning rate."""
    vocab: int = 10
    """Sorting: token values 0 .. vocab-1 (official: 10)."""
    seq_len: int = 8
    """Sorting: tokens per sequence (official: 8)."""
    n_train: int = 128
    """Sorting: training sequences, drawn once (official: 1000)."""
    n_eval: int = 128
    """Sorting: held-out sequences (official: 200)."""
    circle_points: int = 100
    """Circle: points on the radius-0.3 circle; sample i is points (i, i + points/2 - 1) (official: 1000)."""

    def validate(self) -> None:
        require(isinstance(self.tasks, tuple) and len(self.tasks) >= 1 and all(t in TRAINED_TASKS for t in self.tasks) and len(set(self.tasks)) == len(self.tasks),
                f"tasks must be distinct names from {TRAINED_TASKS}, got {self.tasks!r}")
        require_int(self, "d_model", low=2)
        require_int(self, "n_heads", low=1)
        require(self.d_model % self.n_heads == 0, f"d_model={self.d_model} must be a multiple of n_heads={self.n_heads}")
        require_int(self, "depth", low=2)
        require((self.n_heads + 1) ** self.depth <= PATHS_MAX,
                f"(n_heads + 1)^depth = {(self.n_heads + 1) ** self.depth} paths, more than {PATHS_MAX}")
        require_int(self, "seeds", low=2)
        require_int(self, "steps", low=1)
        require_float(self, "lr", low=0.0, low_open=True)
        require_int(self, "vocab", low=2)
        require_int(self, "seq_len", low=2)
        require_int(self, "n_train", low=2)
        require_int(self, "n_eval", low=2)
        require_int(self, "circle_points", low=8)
        require(self.circle_points % 4 == 0, f"circle_points must be a multiple of 4, got {self.circle_points}")


@dataclass(frozen=True, kw_only=True)
class ClusterConfig(SubConfig):
    """The Geshkovski et al. sphere model: n tokens on S^{d-1} under the attention dynamics."""

    tokens: int = 32
    """n."""
    dim: int = 3
    """d (tokens on S^{d-1})."""
    betas: tuple[float, ...] = (0.5, 1.0, 4.0, 9.0)
    """Inverse temperatures beta."""
    step: float = 0.05
    """Euler step h (with renormalisation)."""
    time: float = 20.0
    """Final time T."""

    def validate(self) -> None:
        require_int(self, "tokens", low=2)
        require_int(self, "dim", low=2)
        require_sequence(self, "betas", low=0.0, low_open=True)
        require_float(self, "step", low=0.0, high=1.0, low_open=True)
        require_float(self, "time", low=0.0, low_open=True)
        require(self.time >= self.step, "time must be at least one step")

    @property
    def n_steps(self) -> int:
        """Euler steps to reach ``time``."""
        return int(round(self.time / self.step))


@dataclass(frozen=True, kw_only=True)
class ToyConfig(SubConfig):
    """The two-token phase diagram: a one-dimensional SAN on tokens (cos theta, sin theta)."""

    grid: int = 61
    """Grid points per axis (theta, kappa)."""
    depth: int = 24
    """Layers."""

    def validate(self) -> None:
        require_int(self, "grid", low=3)
        require_int(self, "depth", low=1)

    @property
    def theta(self) -> np.ndarray:
        """(grid,) token directions in (0, pi): the tokens are cos theta and sin theta."""
        return np.pi * (np.arange(self.grid) + 0.5) / self.grid

    @property
    def kappa(self) -> np.ndarray:
        """(grid,) logit strengths, log-spaced over [0.1, 10^2.5]."""
        return np.logspace(-1, 2.5, self.grid)


# ------------------------------------------------------------------------ the study's config
@dataclass(frozen=True, kw_only=True)
class Config(StudyConfig):
    # ---------------------------------------------------------------- the model (issue fields)
    n_tokens: int = 16
    """n: tokens per input sequence X (n x d)."""
    d_model: int = 32
    """d: model width (= d_qk for one head; d_qk = d / n_heads per head)."""
    n_heads: int = 1
    """H: heads per attention layer in the depth sweep."""
    depth: int = 48
    """L: layers of the depth sweep (Fig. 1); at least 8, since the collapse check reads layer 8."""
    qk_scale: tuple[float, ...] = (0.5, 1.0, 2.0)
    """QK scales s: W_Q, W_K ~ N(0, s^2/d); the sweep runs across all of them (ensemble axis)."""
    value_scale: float = 1.0
    """sigma_v: W_V ~ N(0, sigma_v^2/d), W_O ~ N(0, 1/(d_head H)), so sigma_v = 1 is norm-preserving."""
    skip: bool = True
    """Residual connections in the full model."""
    branch_scale: float | str = 1.0
    """alpha: residual-branch scale (a positive number, or the string '1/sqrt(L)')."""
    mlp: bool = True
    """ReLU MLP sublayer (width 4d, He init) in the full model."""
    norm: Literal["none", "pre", "post"] = "post"
    """LayerNorm placement in the full model: none | pre | post."""
    # ---------------------------------------------------------------- the sweep's two companions
    witness_value_scales: tuple[float, ...] = (1.0, 3.0)
    """sigma_v values of the uniform-attention witness of Claim 3.1 (run at the sweep depth)."""
    scaling_depths: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 48)
    """Depths L of the alpha = 1/sqrt(L) depth-scaling runs; the check reads the largest."""

    # ---------------------------------------------------------------- the other sub-experiments
    scan: ScanConfig = field(default_factory=ScanConfig)
    """The cubic-law scan (one and two layers)."""
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    """The pure SAN in extended precision (the doubly exponential law through depth)."""
    bound: BoundConfig = field(default_factory=BoundConfig)
    """The explicit-bound trials."""
    composed: ComposedConfig = field(default_factory=ComposedConfig)
    """The one-layer bound composed over depth, in extended precision."""
    paths: PathsConfig = field(default_factory=PathsConfig)
    """The exact path decomposition."""
    grad: GradConfig = field(default_factory=GradConfig)
    """The query/key gradients at a collapsed input."""
    noci: NociConfig = field(default_factory=NociConfig)
    """The Noci et al. uniform-attention Monte Carlo."""
    regime: RegimeConfig = field(default_factory=RegimeConfig)
    """Where skips keep the residual: the (alpha, sigma_v, s) map of SAN+skip."""
    trained: TrainedConfig = field(default_factory=TrainedConfig)
    """The trained Fig. 2 variants on sorting and the circle task, and their paths by length."""
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """The Geshkovski et al. sphere dynamics."""
    toy: ToyConfig = field(default_factory=ToyConfig)
    """The two-token phase diagram."""

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        require_int(self, "n_tokens", low=2)
        require_int(self, "d_model", low=1)
        require_int(self, "n_heads", low=1)
        require_int(self, "depth", low=8)
        require_sequence(self, "qk_scale", low=0.0, low_open=True)
        require_float(self, "value_scale", low=0.0, low_open=True)
        _require_bool(self, "skip")
        _require_bool(self, "mlp")
        require_choice(self, "norm", ("none", "pre", "post"))
        if isinstance(self.branch_scale, str):
            require(self.branch_scale.replace(" ", "") == INV_SQRT_DEPTH,
                    f"branch_scale must be a positive number or the string {INV_SQRT_DEPTH!r}, "
                    f"got {self.branch_scale!r}")
        else:
            require_float(self, "branch_scale", low=0.0, low_open=True)
        require_sequence(self, "witness_value_scales", low=0.0, low_open=True)
        require_sequence(self, "scaling_depths", low=1, increasing=True)
        require(all(isinstance(v, int) for v in self.scaling_depths), "scaling_depths must hold integers")
        _require_no_overflow(self.value_scale, self.alpha, self.weight_depth)

    # ---------------------------------------------------------------- derived
    @property
    def alpha(self) -> float:
        """The resolved branch scale alpha at the sweep depth."""
        return branch_alpha(self.branch_scale, self.depth)

    @property
    def weight_depth(self) -> int:
        """Layers of weights the sweep draws: the sweep depth or the deepest scaling run, whichever is more."""
        return max(self.depth, max(self.scaling_depths))

    @property
    def argmin_layers(self) -> list[int]:
        """Layers at which the sweep also records the (costly) argmin residual."""
        return sorted({l for l in (0, 1, 2, 3, 4, 6, 8, 12, 24, self.depth) if l <= self.depth})

    def memory_estimate(self) -> tuple[float, str]:
        """The depth sweep's weights: W_Q, W_K, W_V, W_O (4 d^2 per layer) for every QK scale x
        seed x layer, held at once (a lower bound of the run's peak)."""
        layers = self.weight_depth
        numbers = len(self.qk_scale) * self.n_seeds * layers * 4 * self.d_model ** 2
        return numbers * (8 if self.dtype == "float64" else 4), (
            f"the depth sweep's weights ({len(self.qk_scale)} QK scales x {self.n_seeds} seeds x {layers} layers x "
            f"4 x {self.d_model}^2)")

    # ---------------------------------------------------------------- presets
    @classmethod
    def smoke(cls) -> "Config":
        """A few seconds, for the test suite."""
        coarse = _logspace(-4, -1, 7)  # every other point of the default eps grid: still 3+ inside the fit window
        return cls(
            n_seeds=3,                                  # three seeds: the spread shows, seconds in all
            depth=12,                                   # the least depth that holds both checked layers, 8 and 12
            scaling_depths=(1, 4, 16),                  # three 1/sqrt(L) depths instead of seven
            scan=ScanConfig(epsilons=coarse),           # the coarse eps grid
            grad=GradConfig(epsilons=coarse),           # the gradient scan on the same coarse grid
            bound=BoundConfig(tokens=(2, 16), widths=(1, 8), trials=20),  # 4 (n, d) pairs (with the tight n=2, d=1) x 20 trials
            precision=PrecisionConfig(depth=7, digits=800, runs=2),  # 2 networks, 7 layers: four cubic steps below 1e-5
            composed=ComposedConfig(n_tokens=4, d_model=4, depth=4, digits=400, runs=2),  # 2 small networks per H, 3^4 = 81
            noci=NociConfig(depth=6, samples=300),      # a smaller Monte Carlo: its tolerance is its own 4 SE
            regime=RegimeConfig(alphas=(0.1, 1.0), value_scales=(round(BERT_VALUE_GAIN, 3), 2.0),
                                qk_scales=(round(BERT_QK_SCALE, 3), 1.0), depth=12, seeds=3),  # the grid's corners, shallower
            cluster=ClusterConfig(betas=(1.0, 4.0), time=12.0),  # one merging, one metastable beta; t=12 merges beta=1
            toy=ToyConfig(grid=21, depth=12),           # a coarser, shallower phase diagram
            trained=TrainedConfig(d_model=8, depth=3, seeds=2, steps=20, n_train=16, n_eval=16, circle_points=24),  # a second or two
        )

    @classmethod
    def quick(cls) -> "Config":
        """About a minute on 2 cores: the spec's sizes."""
        return cls(n_seeds=20)  # the spec's ensemble size: 20 seeds can hold the rare long plateaus at s = 2

    @classmethod
    def paper(cls) -> "Config":
        """The spec's section-4 scale plus longer clustering runs and a larger Monte Carlo."""
        return cls(
            n_seeds=20,                                 # the spec's ensemble, as quick
            bound=BoundConfig(trials=100),              # twice the random layers per (n, d)
            precision=PrecisionConfig(depth=9, digits=4000, runs=20),  # one more cubic step, 20 networks (minutes)
            composed=ComposedConfig(depth=6, digits=3000, runs=10),  # one more layer (3^6 = 729), 10 networks per H
            paths=PathsConfig(depth=4),                 # 81 paths instead of 27
            noci=NociConfig(samples=10000),             # a standard error sqrt(10) below quick's
            regime=RegimeConfig(depth=96, seeds=20),    # twice as deep, 20 networks per cell
            cluster=ClusterConfig(time=200.0),          # 10x longer, to follow the metastable clusters at large beta
            toy=ToyConfig(grid=121, depth=48),          # a finer phase diagram, as deep as the sweep
            trained=TrainedConfig(d_model=48, depth=6, seeds=5, steps=1000, lr=3e-3, n_train=1000, n_eval=200,
                                  circle_points=1000),  # the official sort sizes (d 48, L 6, 1000/200), minutes
        )
