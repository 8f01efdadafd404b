"""Configuration of the random-feature attention study.

The primary experiment is the learning sweep (phase ``learn.``): every model on every target with
N = ``n_keys`` keys, M = ``n_heads`` heads and training sizes ``round(f * n_train)`` for f in
``n_factors``; lambda chosen on ``n_val`` points, errors on ``n_test`` points, ``n_seeds`` seeds
(data and heads per seed).  Its fields are flat.  ``model`` and ``target`` pick the headline pair
(phase ``headline.``, a view of ``learn.``); the checks compare across models and targets, so every
run computes all of them.

Every other sub-experiment has a nested config holding the fields only it uses:

==============  ============================================================================================
phase           what runs, and from which fields
==============  ============================================================================================
``nkeys.``      RFA and RFMLP at n = ``n_train`` for every N in ``nkeys.grid`` (N = ``n_keys`` is the
                ``learn.`` run), plus kernel ridge with the RFMLP kernel (its P -> infinity limit).
``alpha.``      BRFA and BRFA+- with mean ``f * bias_alpha`` for f in ``alpha.factors``, n = ``n_train``
                (f = 0 is RFA and f = 1 the ``learn.`` run: the heads share their Gaussian part).
``heads.``      RFA, BRFA, RFMLP with M in ``heads.grid`` (nested heads; RFMLP M (d+1) features) and
                M = infinity (kernel ridge with each closed-form kernel), n = ``heads.n_train``, validated
                and tested on the first ``heads.n_eval`` points.
``spectral.``   Kernel ridge with the RFA and RFMLP kernels at n in ``spectral.sizes`` against the
                learning curves predicted from their exact spectra (``spectral.kmax``, ``spectral.max_total``).
``kernel.``     Monte-Carlo Gram matrices with ``kernel.heads`` heads on ``kernel.sets`` input sets
                against the closed-form kernels, in dimension ``kernel.d`` with ``kernel.n_keys`` keys.
``favor.``      FAVOR+ estimators in dimension ``favor.d`` with ``favor.m`` features and ``favor.draws``
                independent draws.
``favor_m.``    The MSE of positive features against m in ``favor_m.grid`` (``favor_m.draws`` draws each).
``attn.``       Exact softmax attention against FAVOR+ attention on ``attn.length`` tokens for m in
                ``attn.grid`` (``attn.draws`` draws each; the same feature streams as ``favor_m.``).
``trained.``    One softmax head (W_Q, W_K) trained by ``trained.steps`` full-batch GD steps on in-context
                regression (``trained.d``, ``trained.length``, ``trained.n_seq``, ``trained.lr``,
                ``trained.noise``); FAVOR+ (``trained.m`` features, ``trained.draws`` draws) at the query-key
                pairs of ``trained.n_eval`` fresh sequences, against the closed forms there.
==============  ============================================================================================

Every fit has an unpenalised intercept.  The sweeps ``nkeys.``, ``alpha.``, ``heads.`` and ``spectral.`` are ablations around the primary
point: they reuse the learning sweep's data, heads and fits (at N = n_keys, alpha = bias_alpha),
so they follow the primary fields (``d``, ``n_keys``, ``n_heads``, ``n_train``, ``n_val``,
``n_test``, ``bias_alpha``, ``ridge_grid``); only the axis each one sweeps is its own.  The kernel
check and the FAVOR+ experiments draw their own inputs and own every field they use.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from workbench.config import (StudyConfig, SubConfig, require, require_choice, require_float, require_int,
                              require_sequence)

Target = Literal["geg1", "geg2", "geg3", "pow3", "sep11"]
Model = Literal["rfa", "brfa", "brfa_pm", "rfmlp"]


def _require_int_grid(cfg, name: str) -> None:
    require_sequence(cfg, name, low=1, increasing=True)
    require(all(isinstance(v, int) for v in getattr(cfg, name)), f"{name} must hold integers, got {getattr(cfg, name)}")


# --------------------------------------------------------------------------- sub-experiments
@dataclass(frozen=True, kw_only=True)
class NKeysConfig(SubConfig):
    grid: tuple[int, ...] = (2, 4, 8, 16)
    """Sequence lengths N of the N sweep (must contain n_keys, whose point is the learning sweep's)."""

    def validate(self) -> None:
        _require_int_grid(self, "grid")
        require(all(v < 10_000 for v in self.grid), "grid values must be < 10000 (data streams are spaced 10^4 apart)")


@dataclass(frozen=True, kw_only=True)
class AlphaConfig(SubConfig):
    factors: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    """Bias strengths of the alpha sweep, as multiples of bias_alpha (0 is RFA, 1 the learning sweep's BRFA)."""

    def validate(self) -> None:
        require_sequence(self, "factors", low=0.0, increasing=True)


@dataclass(frozen=True, kw_only=True)
class HeadsConfig(SubConfig):
    grid: tuple[int, ...] = (32, 128, 512)
    """Head counts M of the M -> infinity sweep (RFA); the limit itself is kernel ridge regression."""
    n_train: int = 500
    """Training size of the M sweep and of kernel ridge regression (the first n_train training points)."""
    n_eval: int = 500
    """Validation and test points of the M sweep (the first n_eval of the validation/test sets)."""
    krr_sizes: tuple[int, ...] = (50, 100, 250)
    """Smaller training sizes (first rows) at which the kernel ridge of the M = infinity point is also
    solved: those below n_train, with n_train, are the RFA and BRFA kernel-ridge learning curves of
    the BRFA/RFA sample-size ratio (the kernel matrices are those of n_train: no extra kernel
    evaluations)."""

    def validate(self) -> None:
        _require_int_grid(self, "grid")
        require_int(self, "n_train", low=2)
        require_int(self, "n_eval", low=2)
        _require_int_grid(self, "krr_sizes")
        require(self.krr_sizes[0] >= 2, f"krr_sizes must be >= 2, got {self.krr_sizes}")


@dataclass(frozen=True, kw_only=True)
class KernelConfig(SubConfig):
    d: int = 8
    """Dimension of the sphere of the random inputs (the learning sweep's d by default)."""
    n_keys: int = 8
    """Keys N per random input (the learning sweep's n_keys by default)."""
    heads: int = 20_000
    """Heads (RFA) and features (RFMLP) of the Monte-Carlo Gram matrices."""
    sets: int = 6
    """Number of random inputs (x_0, X) compared."""

    def validate(self) -> None:
        require_int(self, "d", low=2)
        require_int(self, "n_keys", low=1)
        require_int(self, "heads", low=2)
        require_int(self, "sets", low=2)


@dataclass(frozen=True, kw_only=True)
class FavorConfig(SubConfig):
    d: int = 16
    """Dimension of the vectors x, y."""
    m: int = 16
    """Number of random features of every estimator (m <= d: the orthogonal checks use one block)."""
    draws: int = 100_000
    """Independent feature draws for the Monte-Carlo moments of each estimator."""

    def validate(self) -> None:
        require_int(self, "d", low=2)
        require_int(self, "m", low=1)
        require(self.m <= self.d, f"m ({self.m}) must be <= d ({self.d}): the orthogonal-feature checks use one block")
        require_int(self, "draws", low=100)


@dataclass(frozen=True, kw_only=True)
class FavorMConfig(SubConfig):
    d: int = 16
    """Dimension of the vectors x, y (the ``a1`` setting of the estimator experiment)."""
    grid: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    """Feature counts m (blocks of d orthogonal features when m > d)."""
    draws: int = 10_000
    """Independent feature draws per m."""

    def validate(self) -> None:
        require_int(self, "d", low=2)
        _require_int_grid(self, "grid")
        require_int(self, "draws", low=50)


@dataclass(frozen=True, kw_only=True)
class SpectralConfig(SubConfig):
    sizes: tuple[int, ...] = (50, 100, 250, 500, 1000)
    """Training sizes of the kernel-ridge learning curves (the first n training points of the learning sweep)."""
    n_eval: int = 500
    """Validation and test points of the kernel-ridge curves (the first n_eval of each split)."""
    kmax: int = 10
    """Harmonic degrees k, l <= kmax of the exact RFA spectrum (the rest enters through its trace)."""
    max_total: int = 6
    """Total harmonic degree of the degree classes of the exact RFMLP spectrum (the rest: its trace)."""

    def validate(self) -> None:
        _require_int_grid(self, "sizes")
        require_int(self, "n_eval", low=2)
        require_int(self, "kmax", low=3)
        require_int(self, "max_total", low=6)


@dataclass(frozen=True, kw_only=True)
class AttentionConfig(SubConfig):
    d: int = 16
    """Dimension of the queries and keys."""
    length: int = 8
    """Tokens L of the sequence."""
    grid: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    """Feature counts m of the output-MSE sweep (draws from the same streams as favor_m's at the same index)."""
    draws: int = 10_000
    """Independent feature draws per m."""
    m: int = 16
    """Orthogonal features of the single FAVOR+ draw shown beside exact attention."""

    def validate(self) -> None:
        require_int(self, "d", low=2)
        require_int(self, "length", low=1)
        _require_int_grid(self, "grid")
        require_int(self, "draws", low=50)
        require_int(self, "m", low=1)


@dataclass(frozen=True, kw_only=True)
class TrainedConfig(SubConfig):
    d: int = 16
    """Token and head dimension of the trained softmax head (queries, keys in R^d)."""
    length: int = 8
    """Keys per sequence."""
    n_seq: int = 256
    """Training sequences of the in-context regression task (full batch)."""
    steps: int = 200
    """Full-batch gradient steps on W_Q, W_K."""
    lr: float = 2.0
    """Step size."""
    noise: float = 0.5
    """Label noise of the in-context regression task."""
    n_eval: int = 4
    """Evaluation sequences whose L query-key pairs the FAVOR+ estimators approximate."""
    m: int = 16
    """Random features of every estimator (m <= d: one orthogonal block)."""
    draws: int = 4_000
    """Independent feature draws."""

    def validate(self) -> None:
        require_int(self, "d", low=2)
        require_int(self, "length", low=1)
        require_int(self, "n_seq", low=1)
        require_int(self, "steps", low=0)
        require_float(self, "lr", low=0.0)
        require_float(self, "noise", low=0.0)
        require_int(self, "n_eval", low=1)
        require_int(self, "m", low=1)
        require(self.m <= self.d, f"m ({self.m}) must be <= d ({self.d}): one orthogonal block")
        require_int(self, "draws", low=50)


# ------------------------------------------------------------------------------------ config
@dataclass(frozen=True, kw_only=True)
class Config(StudyConfig):
    d: int = 8
    """Dimension of the sphere S^{d-1} on which the query and the keys live."""
    n_keys: int = 8
    """N, the number of keys per input (the sequence length)."""
    n_heads: int = 128
    """M, the number of random attention heads; every model has P = M (d+1) trainable parameters."""
    n_train: int = 1000
    """Headline training-set size n (the sweeps use round(f * n_train) for f in n_factors)."""
    n_test: int = 2000
    """Test points per seed (errors are relative test MSE)."""
    target: Target = "geg2"
    """Headline target: geg1 | geg2 | geg3 (Gegenbauer degree k), pow3 (centred cube), sep11 (control)."""
    model: Model = "brfa"
    """Headline model: rfa | brfa | brfa_pm | rfmlp."""
    bias_alpha: float = 2.8284271247461903
    """alpha, the mean of the query-key matrices of BRFA: W_0 = alpha diag(I_d, 0) (default sqrt(8))."""
    ridge_grid: tuple[float, ...] = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
    """Ridge parameters lambda (in units of tr G / P, or tr K / n for kernel ridge); chosen on validation."""
    n_val: int = 1000
    """Validation points per seed, used only to choose lambda."""
    n_factors: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    """Training sizes of the learning curves, as multiples of n_train (must contain 1)."""

    nkeys: NKeysConfig = field(default_factory=NKeysConfig)
    """The sequence-length sweep (RFA against RFMLP)."""
    alpha: AlphaConfig = field(default_factory=AlphaConfig)
    """The bias-strength sweep (BRFA, BRFA+-)."""
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    """The heads sweep M -> infinity (RFA, BRFA, RFMLP and kernel ridge with their kernels)."""
    spectral: SpectralConfig = field(default_factory=SpectralConfig)
    """Kernel-ridge learning curves (RFA, RFMLP kernels) against the predictions of their exact spectra."""
    kernel: KernelConfig = field(default_factory=KernelConfig)
    """The Monte-Carlo check of the infinite-head kernels."""
    favor: FavorConfig = field(default_factory=FavorConfig)
    """The FAVOR+ estimators of exp(x.y)."""
    favor_m: FavorMConfig = field(default_factory=FavorMConfig)
    """The MSE of positive features against m."""
    attn: AttentionConfig = field(default_factory=AttentionConfig)
    """Exact softmax attention against FAVOR+ attention."""
    trained: TrainedConfig = field(default_factory=TrainedConfig)
    """FAVOR+ at the queries and keys of a softmax head trained in the study."""

    def validate(self) -> None:
        require_int(self, "d", low=2)
        require_int(self, "n_keys", low=1)
        require_int(self, "n_heads", low=2)
        require(self.n_heads % 2 == 0, f"n_heads must be even (BRFA+- splits the heads in two halves), got {self.n_heads}")
        require_int(self, "n_train", low=4)
        require_int(self, "n_test", low=2)
        require_int(self, "n_val", low=2)
        require_choice(self, "target", ("geg1", "geg2", "geg3", "pow3", "sep11"))
        require_choice(self, "model", ("rfa", "brfa", "brfa_pm", "rfmlp"))
        require_float(self, "bias_alpha", low=0.0)
        require_sequence(self, "ridge_grid", low=0.0, low_open=True, increasing=True)
        require(self.n_seeds < 10_000, "n_seeds must be < 10000 (seed streams are spaced 10^4 apart)")
        require_sequence(self, "n_factors", low=0.0, low_open=True, increasing=True)
        require(1.0 in self.n_factors, f"n_factors must contain 1.0 (the headline n_train), got {self.n_factors}")
        require(round(self.n_factors[0] * self.n_train) >= 2, "the smallest training size round(n_factors[0] * n_train) must be >= 2")
        # the sweeps around the primary point
        require(self.n_keys in self.nkeys.grid, f"nkeys.grid must contain n_keys={self.n_keys}, got {self.nkeys.grid}")
        require(self.heads.n_train <= max(self.n_sizes),
                f"heads.n_train ({self.heads.n_train}) must be at most the largest training size {max(self.n_sizes)}")
        require(self.heads.n_eval <= min(self.n_val, self.n_test), "heads.n_eval must be at most n_val and n_test")
        require(max(self.spectral.sizes) <= max(self.n_sizes),
                f"spectral.sizes must be at most the largest training size {max(self.n_sizes)}")
        require(self.spectral.n_eval <= min(self.n_val, self.n_test), "spectral.n_eval must be at most n_val and n_test")

    # ------------------------------------------------------------------------------ derived
    def memory_estimate(self) -> tuple[float, str]:
        """The learning sweep's inputs: the largest training set X (e, n, N, d) of every seed and
        its features (e, n, P) (a lower bound of the run's peak)."""
        n = max(self.n_sizes)
        numbers = self.n_seeds * n * (self.n_keys * self.d + self.n_params)
        return numbers * (8 if self.dtype == "float64" else 4), (
            f"the training inputs and features of {self.n_seeds} seeds (n={n}, N={self.n_keys}, P={self.n_params})")

    @property
    def n_sizes(self) -> tuple[int, ...]:
        """The training sizes of the learning curves: round(f * n_train)."""
        return tuple(int(round(f * self.n_train)) for f in self.n_factors)

    @property
    def k_train(self) -> int:
        """The index of n_train in n_sizes (where the sweeps around the primary point sit)."""
        return self.n_factors.index(1.0)

    @property
    def krr_curve_sizes(self) -> tuple[int, ...]:
        """The kernel-ridge sizes of the heads sweep: heads.krr_sizes below heads.n_train, then n_train."""
        return tuple(n for n in self.heads.krr_sizes if n < self.heads.n_train) + (self.heads.n_train,)

    @property
    def n_params(self) -> int:
        """P = M (d+1), the trainable parameters of every model."""
        return self.n_heads * (self.d + 1)

    @property
    def n_bank(self) -> int:
        """Heads drawn per seed: enough for n_heads and for the largest M of the heads sweep (models
        use the first M)."""
        return max(self.n_heads, max(self.heads.grid))

    # ------------------------------------------------------------------------------ presets
    @classmethod
    def smoke(cls) -> "Config":
        """Seconds on one core: small sizes, three seeds (a subset regime; see the chapter)."""
        return cls(
            n_seeds=3,                   # the learning checks' tolerances are Student-t intervals over seeds
            n_heads=64,                  # P = 576 features: the fits take milliseconds
            n_train=600,                 # still above P, so the primary (P x P) ridge path runs
            n_test=500, n_val=300,       # enough points for errors resolved to a few percent
            n_factors=(0.5, 1.0),        # two sizes: one dual and one primal solve, and a slope
            nkeys=NKeysConfig(grid=(2, 8)),                       # the shortest N and the learning sweep's
            alpha=AlphaConfig(factors=(0.0, 1.0)),                # RFA and BRFA only: both reuse the learning fits
            heads=HeadsConfig(grid=(16, 256), n_train=120, n_eval=120,  # two M and a 120-point kernel ridge (BRFA's kernel is costly)
                              krr_sizes=(50,)),                     # one smaller size: a two-point BRFA/RFA curve
            spectral=SpectralConfig(sizes=(50, 100, 200, 400), n_eval=150),  # four sizes, the smoke data
            favor=FavorConfig(draws=20_000),                      # 5x fewer draws: SEs 2.2x wider, still resolved
            favor_m=FavorMConfig(grid=(4, 16), draws=2_000),      # two m, one of them m = d
            attn=AttentionConfig(grid=(4, 16), draws=2_000),      # the same two m on the same streams
            trained=TrainedConfig(n_seq=128, steps=100, draws=2_000),  # a shorter training, fewer draws
        )

    @classmethod
    def quick(cls) -> "Config":
        """The spec's d = 8, N = 8, M = 128, n = 1000 (about 9 minutes on two heavily shared cores;
the kernel ridge regressions with the exact kernels, BRFA's above all, take most of it)."""
        return cls(n_seeds=3)  # three seeds: the learning checks' Student-t intervals and the figures' bands

    @classmethod
    def paper(cls) -> "Config":
        """Larger sweeps: n up to 8000, five seeds, 10^6 FAVOR+ draws (GPU welcome)."""
        return cls(
            n_seeds=5,                                          # tighter seed bands
            n_factors=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0),          # learning curves out to n = 8000 > B(8,2)^2 = 1225
            alpha=AlphaConfig(factors=(0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)),  # the trade-off curve resolved
            heads=HeadsConfig(grid=(32, 128, 512, 2048), n_train=1000, n_eval=1000,  # M to 2048 and a larger kernel ridge
                              krr_sizes=(50, 100, 250, 500)),   # the BRFA/RFA curves out to n = 1000
            favor=FavorConfig(draws=1_000_000),                 # SEs sqrt(10) narrower than quick's
            favor_m=FavorMConfig(grid=(2, 4, 8, 16, 32, 64, 128, 256), draws=100_000),  # m to 16 blocks of d
            attn=AttentionConfig(grid=(2, 4, 8, 16, 32, 64, 128, 256), draws=100_000),  # the delta method at large m
        )
