"""Configuration of the random-feature attention study.

One config drives a fixed set of sub-experiments whose sizes all derive from its fields (the
``model`` and ``target`` fields pick the headline experiment shown first; the checks compare across
models and targets, so every run computes all of them):

=================  =====================================================================================
prefix             what runs
=================  =====================================================================================
``learn.``         every model x every target, N = ``n_keys``, M = ``n_heads``, training sizes
                   ``round(f * n_train)`` for f in ``n_factors``; lambda chosen on ``n_val`` points,
                   errors on ``n_test`` points; ``n_seeds`` seeds (data and heads per seed).
``headline.``      the learning curve and test predictions of ``model`` on ``target`` (a view of ``learn.``).
``nkeys.``         RFA and RFMLP at n = ``n_train`` for every N in ``n_keys_grid`` (N = ``n_keys`` is
                   the ``learn.`` run), plus kernel ridge with the RFMLP kernel (its P -> infinity limit).
``alpha.``         BRFA and BRFA+- with mean ``f * bias_alpha`` for f in ``alpha_factors``, n = ``n_train``
                   (f = 0 is RFA and f = 1 the ``learn.`` run: the heads share their Gaussian part).
``intercept.``     BRFA and BRFA+- with one extra constant feature, n = ``n_train`` (an extension).
``heads.``         RFA with M in ``heads_grid`` (nested heads) and M = infinity (kernel ridge with the
                   arc-cos kernel), n = ``krr_n``, validated and tested on the first ``krr_eval`` points.
``kernel.``        Monte-Carlo Gram matrices with ``kernel_heads`` heads on ``kernel_sets`` input sets
                   against the closed-form kernels (N = ``n_keys``).
``favor.``         FAVOR+ estimators in dimension ``favor_d`` with ``favor_m`` features and
                   ``favor_draws`` independent draws; the MSE-vs-m sweep over ``favor_m_grid`` and the
                   attention comparison (``attn_len`` tokens) use ``favor_draws // 10`` draws per point.
=================  =====================================================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from workbench.config import (StudyConfig, require, require_choice, require_float, require_int,
                              require_sequence)

Target = Literal["geg1", "geg2", "geg3", "pow3", "sep11"]
Model = Literal["rfa", "brfa", "brfa_pm", "rfmlp"]


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
    favor_m: int = 16
    """m, the number of FAVOR+ random features in the headline estimator checks (m <= favor_d)."""
    favor_draws: int = 100_000
    """Independent feature draws for the Monte-Carlo MSE of each FAVOR+ estimator."""

    # ---- sweep fields (documented additions)
    n_val: int = 1000
    """Validation points per seed, used only to choose lambda."""
    n_factors: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    """Training sizes of the learning curves, as multiples of n_train (must contain 1)."""
    n_keys_grid: tuple[int, ...] = (2, 4, 8, 16)
    """Sequence lengths N of the N sweep (must contain n_keys)."""
    alpha_factors: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    """Bias strengths of the alpha sweep, as multiples of bias_alpha."""
    heads_grid: tuple[int, ...] = (32, 128, 512)
    """Head counts M of the M -> infinity sweep (RFA); the limit itself is kernel ridge regression."""
    krr_n: int = 500
    """Training size of the M sweep and of kernel ridge regression (the first krr_n training points)."""
    krr_eval: int = 500
    """Validation and test points of the M sweep (the first krr_eval of the validation/test sets)."""
    kernel_heads: int = 20_000
    """Heads of the Monte-Carlo Gram matrices compared with the closed-form kernels."""
    kernel_sets: int = 6
    """Number of random inputs (x_0, X) in the kernel comparison."""
    favor_d: int = 16
    """Dimension of the vectors x, y in the FAVOR+ experiments."""
    favor_m_grid: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    """Feature counts m of the MSE-vs-m sweep and of the attention comparison."""
    attn_len: int = 8
    """Sequence length of the exact-vs-FAVOR+ attention comparison."""

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
        require_int(self, "favor_d", low=2)
        require_int(self, "favor_m", low=1)
        require(self.favor_m <= self.favor_d,
                f"favor_m ({self.favor_m}) must be <= favor_d ({self.favor_d}): the orthogonal-feature checks use one block")
        require_int(self, "favor_draws", low=100)
        require(self.n_seeds < 10_000, "n_seeds must be < 10000 (seed streams are spaced 10^4 apart)")
        require_sequence(self, "n_factors", low=0.0, low_open=True, increasing=True)
        require(1.0 in self.n_factors, f"n_factors must contain 1.0 (the headline n_train), got {self.n_factors}")
        require(round(self.n_factors[0] * self.n_train) >= 2, "the smallest training size round(n_factors[0] * n_train) must be >= 2")
        for name in ("n_keys_grid", "heads_grid", "favor_m_grid"):
            require_sequence(self, name, low=1, increasing=True)
            require(all(isinstance(v, int) for v in getattr(self, name)), f"{name} must hold integers, got {getattr(self, name)}")
        require(self.n_keys in self.n_keys_grid, f"n_keys_grid must contain n_keys={self.n_keys}, got {self.n_keys_grid}")
        require(all(v < 10_000 for v in self.n_keys_grid), "n_keys_grid values must be < 10000")
        require_sequence(self, "alpha_factors", low=0.0, increasing=True)
        require_int(self, "krr_n", low=2)
        require(self.krr_n <= max(self.n_sizes), f"krr_n ({self.krr_n}) must be at most the largest training size {max(self.n_sizes)}")
        require_int(self, "krr_eval", low=2)
        require(self.krr_eval <= min(self.n_val, self.n_test), "krr_eval must be at most n_val and n_test")
        require_int(self, "kernel_heads", low=2)
        require_int(self, "kernel_sets", low=2)
        require_int(self, "attn_len", low=1)

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
    def n_params(self) -> int:
        """P = M (d+1), the trainable parameters of every model."""
        return self.n_heads * (self.d + 1)

    @property
    def mc_draws(self) -> int:
        """Draws per point of the FAVOR+ sweeps (MSE vs m, attention): favor_draws // 10."""
        return max(self.favor_draws // 10, 50)

    # ------------------------------------------------------------------------------ presets
    @classmethod
    def smoke(cls) -> "Config":
        """Seconds on one core: small sizes, one seed (a subset regime; see the chapter)."""
        return cls(n_heads=64, n_train=600, n_test=500, n_val=300, n_factors=(0.5, 1.0), n_keys_grid=(2, 8),
                   alpha_factors=(0.0, 1.0), heads_grid=(16, 256), krr_n=200, krr_eval=200,
                   favor_draws=20_000, favor_m_grid=(4, 16), n_seeds=1)

    @classmethod
    def quick(cls) -> "Config":
        """About a minute on two cores: the spec's d = 8, N = 8, M = 128, n = 1000, three seeds."""
        return cls(n_seeds=3)

    @classmethod
    def paper(cls) -> "Config":
        """Larger sweeps: n up to 8000, five seeds, 10^6 FAVOR+ draws (GPU welcome)."""
        return cls(n_seeds=5, n_factors=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0), heads_grid=(32, 128, 512, 2048),
                   krr_n=1000, krr_eval=1000, alpha_factors=(0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
                   favor_draws=1_000_000, favor_m_grid=(2, 4, 8, 16, 32, 64, 128, 256))
