"""The config of head-rank.

The flat fields are Part A, the single-head threshold (the primary experiment: every instance's fits,
certificates and constructions); each Part B sub-experiment owns a nested config:

=================  ===========  ==============================================================
phase              fields       what runs
=================  ===========  ==============================================================
``threshold.``     primary      n in n_values: instances P = softmax(logit_scale G), X, L-BFGS
                                fits per head size, certificate, SVD bound, construction (A1-A3)
``causal.``        primary      the causal mask at n in causal_n (A4)
``narrow.``        primary      d < n: (narrow_n, narrow_d), the bi-subspace certificate (A5)
``full_rank.``     ``nn``       B1: the head beta I on the test sample against the quadrature
``features.``      ``rf``       B4: the random-feature (rank-1 hardmax) MSE with exact b
``heads.``         ``nn``       B2-B4: H heads of rank r trained by Adam, n_seeds members each
``depth.``         ``depth``    B5: depth-2 construction and tagged depth-2 vs depth-1 training
=================  ===========  ==============================================================

``n_seeds`` is the Part B ensemble (seeds of every trained configuration); Part A's restarts are
``restarts``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workbench.config import StudyConfig, SubConfig, require, require_float, require_int, require_sequence


def _ints(cfg, name: str, low: int) -> None:
    require_sequence(cfg, name, low=low)
    require(all(isinstance(v, int) for v in getattr(cfg, name)), f"{name} must hold integers, got {getattr(cfg, name)!r}")


@dataclass(frozen=True, kw_only=True)
class NNConfig(SubConfig):
    """Part B: the nearest-neighbour target of Amsel, Yehudai & Bruna, heads trained by Adam."""

    d: int = 6
    """Embedding dimension d (keys and query on S^{d-1})."""
    n_keys: int = 2
    """N keys per sample (the quadrature, the depth model and the control need N = 2)."""
    train_samples: int = 2048
    """M: fixed training samples per member (full batch)."""
    test_samples: int = 16384
    """Fixed test samples (shared by all members)."""
    steps: int = 500
    """Adam steps."""
    lr: float = 0.01
    """Adam peak learning rate (5% linear warm-up, cosine to lr/10)."""
    heads_r1: tuple[int, ...] = (6, 12, 24)
    """Head counts H of the rank-1 runs (B4)."""
    heads_r2: tuple[int, ...] = (3, 6)
    """Head counts H of the rank-2 runs (F4)."""
    control_ranks: tuple[int, ...] = (2, 3)
    """Ranks r whose (H = d/r, r) model is also trained on the rank-r control target (B3)."""
    betas: tuple[float, ...] = (1.0, 10.0, 100.0)
    """beta of the full-rank head beta I compared with the quadrature by Monte Carlo (B1)."""
    mc_dims: tuple[int, ...] = (4, 6, 8, 16)
    """Dimensions of the err(beta) figure (quadrature + Monte Carlo)."""

    def validate(self) -> None:
        require_int(self, "d", low=3, high=256)
        require_int(self, "n_keys", low=2, high=1024)
        require_int(self, "train_samples", low=16)
        require_int(self, "test_samples", low=256)
        require_int(self, "steps", low=1)
        require_float(self, "lr", low=0, low_open=True)
        _ints(self, "heads_r1", 1)
        _ints(self, "heads_r2", 1)
        require(all(isinstance(r, int) and 2 <= r < self.d for r in self.control_ranks),
                f"control_ranks must be integers in [2, d), got {self.control_ranks!r}")
        require_sequence(self, "betas", low=0, low_open=True)
        _ints(self, "mc_dims", 3)

    @property
    def fixed_width_grid(self) -> list[tuple[int, int]]:
        """(H, r) with H r = d, from (1, d) to (d, 1)."""
        return [(self.d // r, r) for r in range(self.d, 0, -1) if self.d % r == 0]


@dataclass(frozen=True, kw_only=True)
class RFConfig(SubConfig):
    """B4's closed-form curve: rank-1 hardmax heads with random (q, k), O_h = a_h I, optimal a."""

    d: int = 8
    """Dimension (AYB's random_features.png has d = 8, 16, 32, 64)."""
    heads: tuple[int, ...] = (1, 4, 16, 64, 256, 1024)
    """Head counts H."""
    draws: int = 5
    """Independent draws of the H features per H."""

    def validate(self) -> None:
        require_int(self, "d", low=3, high=256)
        _ints(self, "heads", 1)
        require_int(self, "draws", low=1)


@dataclass(frozen=True, kw_only=True)
class DepthConfig(SubConfig):
    """B5: tagged depth-2 [d, 1] against depth-1 [d+1] and [2d+2], all rank 1, N = 2."""

    train: bool = True
    """Train the three models (False: the construction only)."""
    steps: int = 800
    """Adam steps (same schedule as ``nn``): the spec's B5 regime (d = 6, 800 steps); at 500 the tagged
    depth-2 model is still leaving the depth-1 plateau (measured ratio 0.30, see the chapter)."""
    eps: tuple[float, ...] = (0.1, 0.01)
    """epsilon of the construction's first layer."""
    beta: tuple[float, ...] = (1e3, 1e5)
    """beta of its second layer (paired with eps)."""

    def validate(self) -> None:
        require_int(self, "steps", low=1)
        require_sequence(self, "eps", low=0, low_open=True)
        require_sequence(self, "beta", low=0, low_open=True)
        require(len(self.eps) == len(self.beta), f"eps and beta must pair up, got {self.eps!r}, {self.beta!r}")


@dataclass(frozen=True, kw_only=True)
class Config(StudyConfig):
    """Rank and heads (defaults: the quick preset)."""

    n_values: tuple[int, ...] = (4, 5, 6)
    """Sequence lengths n of Part A (one P per instance per n)."""
    d: int = 8
    """Token width d of Part A (d >= n: rank X = n)."""
    instances: int = 3
    """Targets P = softmax(logit_scale G) per n."""
    logit_scale: float = 1.0
    """sigma of P = softmax(sigma G), G ~ N(0, 1)."""
    restarts: int = 6
    """L-BFGS restarts per (instance, head size); the best is reported."""
    max_iter: int = 5000
    """L-BFGS iteration cap per restart."""
    all_head_sizes: bool = True
    """Fit every d_h = 1..n-1 (False: only n-2 and n-1, which already decide the threshold)."""
    causal_n: tuple[int, ...] = (5, 6)
    """n of the causal-mask threshold (A4); () skips it."""
    narrow_n: int = 6
    """n of the d < n extension (A5); 0 skips it."""
    narrow_d: int = 4
    """d of the d < n extension."""
    nn: NNConfig = field(default_factory=NNConfig)
    """Part B: the nearest-neighbour target, the trained (H, r) grid and the full-rank head (B1-B4)."""
    rf: RFConfig = field(default_factory=RFConfig)
    """Part B: the exact random-feature curve (B4)."""
    depth: DepthConfig = field(default_factory=DepthConfig)
    """Part B: the depth-2 construction and the tagged depth comparison (B5)."""

    def validate(self) -> None:
        _ints(self, "n_values", 3)
        require(max(self.n_values) <= self.d, f"d must be >= every n (rank X = n), got d={self.d}, n={self.n_values}")
        require_int(self, "d", low=3, high=64)
        require_int(self, "instances", low=1)
        require_float(self, "logit_scale", low=0, low_open=True)
        require_int(self, "restarts", low=1)
        require_int(self, "max_iter", low=10)
        if self.causal_n:
            _ints(self, "causal_n", 3)
            require(max(self.causal_n) <= self.d, f"d must be >= every causal n, got {self.causal_n}")
        require_int(self, "narrow_n", low=0)
        if self.narrow_n:
            require_int(self, "narrow_d", low=1)
            require(self.narrow_d < self.narrow_n, f"narrow_d must be < narrow_n, got {self.narrow_d}, {self.narrow_n}")
        require(self.nn.n_keys == 2 or not self.depth.train,
                f"depth.train needs nn.n_keys = 2 (the tagged construction), got {self.nn.n_keys}")

    # ------------------------------------------------------------------------ derived quantities
    def head_sizes(self, n: int) -> list[int]:
        """The d_h fitted at length n."""
        return list(range(1, n)) if self.all_head_sizes else [n - 2, n - 1]

    def causal_head_sizes(self, n: int) -> list[int]:
        return list(range(1, n)) if self.all_head_sizes else [n // 2 - 1, n // 2]

    # ---------------------------------------------------------------------------------- presets
    @classmethod
    def smoke(cls) -> "Config":
        return cls(
            n_values=(4,), d=6, instances=1, restarts=2,  # spec 4: the test suite, seconds
            all_head_sizes=False,                         # n-2 (certified failure) and n-1 decide the threshold
            causal_n=(4,), narrow_n=4, narrow_d=3,        # the extensions at their smallest
            n_seeds=2,
            nn=NNConfig(d=4, train_samples=512, test_samples=4096, steps=150, heads_r1=(4,), heads_r2=(2,),
                        control_ranks=(2,), mc_dims=(4,)),  # (1,4), (2,2), (4,1): seconds, too short to assert
            rf=RFConfig(heads=(1, 16, 64), draws=2),
            depth=DepthConfig(train=False),               # the construction only
        )

    @classmethod
    def quick(cls) -> "Config":
        return cls(n_seeds=3)  # the defaults are the spec's quick preset; 3 seeds per Part B configuration

    @classmethod
    def paper(cls) -> "Config":
        return cls(
            n_values=(4, 5, 6, 7, 8, 9, 10), d=12, instances=10, restarts=20,  # spec 4's paper row
            causal_n=(5, 6, 7, 8, 9, 10), narrow_n=8, narrow_d=6,
            n_seeds=8,
            nn=NNConfig(d=16, train_samples=65536, steps=5000, heads_r1=(16, 32, 64), heads_r2=(8, 16, 32),
                        control_ranks=(2, 4, 8)),        # a GPU run: 8 seeds, 5000 steps
            rf=RFConfig(heads=(1, 4, 16, 64, 256, 1024, 4096), draws=5),
            depth=DepthConfig(steps=5000),
        )
