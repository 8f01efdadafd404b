"""Config of the in-context linear regression study.

One config drives a coherent set of sub-experiments; each stores its arrays under a prefix.
How each derives from the fields:

==================  =========================================================================
prefix              what runs, and from which fields
==================  =========================================================================
``theory.``         closed forms vs context length (d, sigma2, psi2, Sigma_main); ridge by
                    Monte Carlo over Wishart draws (``mc_prompts // 4`` draws per length)
``mc.``             A1: full-LSA closed form vs Monte Carlo at d = min(d, 3), N = min(n_context,
                    8), random parameters, Sigma and B (``mc_prompts`` prompts); A3: GD*, DGD*,
                    OLS and ridge predictors on ``mc_prompts`` fresh prompts at (d, n_context,
                    Sigma_main)
``lsa.``            LSA trained by exact GD on its population risk (``lsa_steps``, ``lsa_lr``) at
                    (d, n_context, sigma2, psi2) for Sigma in {I, AR(rho)} x init in {zfb,
                    random} x ``n_seeds``; ``init`` is the initialisation whose convergence A2
                    asserts, the other is run for contrast (figure P6)
``softmax.``        He et al.'s multi-head softmax attention trained online with Adam (``steps``,
                    ``lr``, ``batch_size``) at n_context: n_heads x n_seeds members on
                    Sigma_main, plus ``aniso_seeds`` 2-head members on AR(rho) when cov = iso;
                    one batched program (heads padded to max(n_heads) with a mask); evaluated on
                    the fixed evaluation set (``eval_prompts`` per test length)
``mixed.``          the extension: the smallest head count >= 2 trained on lengths uniform on
                    ``mixed_lengths`` (same steps, lr, batch), n_seeds members, same evaluation
``pool.``           the finite task-pool Gamma model for T = 1, 2, 4, ..., n_tasks_pool
                    (``pool_draws`` pools per T) at (d, n_context, sigma2, psi2, Sigma_main)
==================  =========================================================================

Sigma_main is the identity when ``cov = 'iso'`` and AR(rho) (Sigma_ij = rho^|i-j|) when
``cov = 'ar'``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from workbench.config import StudyConfig, require, require_choice, require_float, require_int, require_sequence


@dataclass(frozen=True, kw_only=True)
class Config(StudyConfig):
    """In-context linear regression with linear and softmax attention (defaults: the quick preset)."""

    d: int = 5
    """Covariate dimension d (He et al.: 5)."""
    n_context: int = 40
    """Training context length N (He et al.'s L = 8 d = 40)."""
    sigma2: float = 0.1
    """Label-noise variance sigma^2 (the query target includes it)."""
    psi2: float = 0.2
    """Task prior variance: beta ~ N(0, psi2 I); He et al. use 1/d so that E|beta|^2 = 1."""
    cov: Literal["iso", "ar"] = "iso"
    """Covariance of x in the main experiment: 'iso' (Sigma = I) or 'ar' (Sigma_ij = rho^|i-j|)."""
    rho: float = 0.5
    """AR correlation, used wherever an anisotropic Sigma appears (LSA contrast, A8 members)."""
    n_heads: tuple[int, ...] = (1, 2, 3)
    """Head counts of the softmax members (must contain 1 and one count >= 2); padded to the max."""
    steps: int = 3000
    """Adam steps of the softmax (and mixed-length) training, one fresh batch per step."""
    lr: float = 3e-3
    """Adam learning rate of the softmax training."""
    batch_size: int = 256
    """Fresh prompts per Adam step and member (He et al.: 256)."""
    eval_prompts: int = 10000
    """Prompts of the fixed seeded evaluation set, per test length."""
    test_lengths: tuple[int, ...] = (10, 20, 40, 80, 160, 320)
    """Context lengths M at which trained models are evaluated (length generalisation)."""
    n_tasks_pool: int = 4096
    """Largest task-pool size T of the finite-pool Gamma model (T = 1, 2, 4, ..., n_tasks_pool)."""
    init: Literal["zfb", "random"] = "zfb"
    """LSA initialisation whose exact-GD convergence to R* is asserted (A2); the other runs for contrast."""
    lsa_steps: int = 3000
    """Full-batch GD iterations of the LSA on its exact population risk."""
    lsa_lr: float = 0.1
    """Learning rate of the LSA exact GD."""
    mc_prompts: int = 200000
    """Monte Carlo prompts for the closed-form checks A1 and A3 (risks are averaged analytically
    over the query, i.e. conditional on the context)."""
    aniso_seeds: int = 1
    """Seeds of the extra 2-head softmax members on AR(rho) covariates (A8) when cov = 'iso'."""
    mixed_lengths: tuple[int, ...] = (10, 20, 40, 80)
    """Training lengths of the mixed-length extension (uniform mixture; each batch is split evenly)."""
    pool_draws: int = 64
    """Independent task pools per pool size T."""
    n_observe: int = 40
    """Number of (log-spaced) training steps at which the per-head KQ / OV matrices are recorded."""

    def validate(self) -> None:
        require_int(self, "d", low=1, high=64)
        require_int(self, "n_context", low=3)
        require_float(self, "sigma2", low=0, low_open=True)
        require_float(self, "psi2", low=0, low_open=True)
        require_choice(self, "cov", ("iso", "ar"))
        require_float(self, "rho", low=-1, high=1, low_open=True, high_open=True)
        require_sequence(self, "n_heads", low=1, increasing=True)
        require(all(isinstance(h, int) for h in self.n_heads), f"n_heads must hold integers, got {self.n_heads!r}")
        require(1 in self.n_heads and max(self.n_heads) >= 2,
                f"n_heads must contain 1 (the single-head contrast) and a count >= 2 (pairs of heads), got {self.n_heads!r}")
        require_int(self, "steps", low=1)
        require_float(self, "lr", low=0, low_open=True)
        require_int(self, "batch_size", low=1)
        require_int(self, "eval_prompts", low=100)
        require_sequence(self, "test_lengths", low=2, increasing=True)
        require(all(isinstance(m, int) for m in self.test_lengths), f"test_lengths must hold integers, got {self.test_lengths!r}")
        require(self.n_context in self.test_lengths,
                f"test_lengths must contain n_context={self.n_context} (the in-distribution risk), got {self.test_lengths!r}")
        require(any(m > self.n_context for m in self.test_lengths),
                f"test_lengths needs a length above n_context={self.n_context} for the length-generalisation checks")
        require_int(self, "n_tasks_pool", low=8)
        require((self.n_tasks_pool & (self.n_tasks_pool - 1)) == 0, f"n_tasks_pool must be a power of two, got {self.n_tasks_pool}")
        require_choice(self, "init", ("zfb", "random"))
        require_int(self, "lsa_steps", low=1)
        require_float(self, "lsa_lr", low=0, low_open=True)
        require_int(self, "mc_prompts", low=1000)
        require_int(self, "aniso_seeds", low=0)
        require_sequence(self, "mixed_lengths", low=2, min_len=2, increasing=True)
        require(all(isinstance(m, int) for m in self.mixed_lengths), f"mixed_lengths must hold integers, got {self.mixed_lengths!r}")
        require(self.batch_size >= len(self.mixed_lengths),
                f"batch_size={self.batch_size} must be at least len(mixed_lengths)={len(self.mixed_lengths)}")
        require_int(self, "pool_draws", low=2)
        require_int(self, "n_observe", low=2)
        require(self.n_context >= self.d + 2, f"n_context must be >= d + 2 (OLS baseline), got {self.n_context} with d={self.d}")

    def memory_estimate(self) -> tuple[float, str]:
        """One Adam step's fresh prompts for every softmax member at once, (members, batch,
        length + 1, d + 1) (a lower bound of the run's peak)."""
        members = len(self.n_heads) * self.n_seeds + (self.aniso_seeds if self.cov == "iso" else 0)
        length = max(self.n_context, max(self.mixed_lengths)) + 1
        numbers = members * self.batch_size * length * (self.d + 1)
        return numbers * (8 if self.dtype == "float64" else 4), (
            f"one training batch of {members} softmax members ({self.batch_size} prompts of length {length})")

    # ---------------------------------------------------------------------------- presets
    @classmethod
    def smoke(cls) -> "Config":
        """Seconds (tests).  The closed-form checks (A1, A2, A3, A6_length_lsa, A7) pass honestly; the
        softmax training (150 Adam steps) is far from converged, so its checks (A4, A5, A6 softmax,
        A8, mixed) are computed and shown but not asserted at this size (see
        `studies.icl_regression.checks.SOFTMAX_CONVERGED_STEPS`)."""
        return cls(steps=150, lr=1e-2, batch_size=64, eval_prompts=1000, test_lengths=(20, 40, 80),
                   n_tasks_pool=64, lsa_steps=2000, mc_prompts=5000, mixed_lengths=(20, 60),
                   pool_draws=8, n_observe=10, aniso_seeds=1, n_heads=(1, 2))

    @classmethod
    def quick(cls) -> "Config":
        """About a minute on 2 CPU cores; every check passes (He et al.'s setting, shorter training)."""
        return cls(n_seeds=2)

    @classmethod
    def paper(cls) -> "Config":
        """Paper scale: He et al.'s head counts and evaluation size, longer training (GPU welcome)."""
        return cls(n_heads=(1, 2, 3, 4, 8), steps=20000, lr=1e-3, eval_prompts=200000, n_seeds=4,
                   lsa_steps=10000, lsa_lr=0.04, mc_prompts=4_000_000, aniso_seeds=2,
                   pool_draws=256, n_observe=80)
