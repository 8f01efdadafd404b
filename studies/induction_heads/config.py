"""The config of induction-heads.

The flat fields are the primary experiment: the two-layer attention-only transformer (TF) trained
online with Adam on in-context Markov chains (regime O of the spec), with its one-layer control.
The reduced/minimal model on the exact population loss (regime E) owns ``reduced``.

================  ==============  ============================================================
phase (arrays)    fields          what runs
================  ==============  ============================================================
``bayes.``        alpha,          the exact per-position risk curves at k = 2 (dynamic program)
                  dp_tokens
``reduced.``      ``reduced``     RM/MM on the exact population loss (k^T prefixes): plateau,
                                  escape law (sigma sweep), quartic saddle, alpha sweep, cold start,
                                  full MM
``transformer.``  primary         TF (2 layers, n_seeds) and its 1-layer control (one_layer_seeds)
================  ==============  ============================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workbench.config import StudyConfig, SubConfig, require, require_float, require_int, require_sequence

from studies.induction_heads.data import check_alpha


@dataclass(frozen=True, kw_only=True)
class ReducedConfig(SubConfig):
    """The reduced symmetric model (RM) and the minimal model (MM), exact population GD."""

    k: int = 2
    """States of the chain (the population has k^T prefixes)."""
    n_tokens: int = 10
    """T of the exact population (k^T prefixes)."""
    eta: float = 3.0
    """GD learning rate on the exact population loss."""
    sigmas: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4)
    """Init scales of the two factors (q, kappa) ~ N(0, sigma^2) of the escape-law sweep (T4, C6)."""
    seeds: int = 4
    """Seeds per sigma of the escape-law sweep."""
    steps: int = 450
    """GD steps of the escape-law sweep and of the cold start."""
    quartic_sigmas: tuple[float, ...] = (0.4, 0.3, 0.2, 0.15)
    """Init of the four balanced factors of the quartic saddle (T5, C7)."""
    quartic_steps: int = 700
    """GD steps of the quartic runs."""
    alphas: tuple[float, ...] = (0.5, 1.0, 2.0)
    """Dirichlet concentrations of the sink sweep (C8)."""
    alpha_steps: int = 1200
    """GD steps of the sink sweep."""
    alpha_sigma: float = 1e-2
    """Factor init of the sink sweep."""
    cold_sigma: float = 1e-4
    """Factor init of the cold start (gamma = b = 0; C3)."""
    mm_steps: int = 1200
    """GD steps of the full MM (rank-2 factorised W_prev, all lags), reported only."""
    mm_sigma: float = 0.1
    """Init scale of the full MM."""

    def validate(self) -> None:
        require_int(self, "k", low=2, high=5)
        require_int(self, "n_tokens", low=3, high=16)
        require(self.k ** self.n_tokens <= 70_000, f"k^T = {self.k ** self.n_tokens} prefixes is too many for the "
                                                    f"exact population (at most 70000)")
        require_float(self, "eta", low=0, low_open=True)
        require_sequence(self, "sigmas", low=0, low_open=True, min_len=2)
        require_int(self, "seeds", low=1)
        require_int(self, "steps", low=10)
        require_sequence(self, "quartic_sigmas", low=0, low_open=True, min_len=1)
        require_int(self, "quartic_steps", low=10)
        require_sequence(self, "alphas", low=0, low_open=True, min_len=2)
        for a in self.alphas:
            check_alpha(a)
        require_int(self, "alpha_steps", low=10)
        require_float(self, "alpha_sigma", low=0, low_open=True)
        require_float(self, "cold_sigma", low=0, low_open=True)
        require_int(self, "mm_steps", low=1)
        require_float(self, "mm_sigma", low=0, low_open=True)


@dataclass(frozen=True, kw_only=True)
class Config(StudyConfig):
    k: int = 3
    """States of the Markov chain (vocabulary without BOS)."""
    n_tokens: int = 32
    """T: predicted positions per sequence (T + 1 tokens)."""
    alpha: float = 1.0
    """Dirichlet concentration of each transition row (a multiple of 1/2)."""
    d_model: int = 16
    """Residual width of the transformer."""
    init_scale: float = 0.02
    """sigma of the Q/K/V/O matrices at init (Edelman et al.'s 0.02)."""
    lr: float = 3e-3
    """Adam learning rate."""
    batch_size: int = 64
    """Fresh sequences per Adam step and member."""
    steps: int = 1200
    """Adam steps of the 2-layer model and of the 1-layer control."""
    one_layer_seeds: int = 2
    """Seeds of the 1-layer control."""
    test_size: int = 1024
    """Fixed test sequences shared by every member (Bayes/Laplace are scored on the same ones)."""
    n_eval: int = 40
    """Evaluations on the test set along training (a uniform grid)."""
    dp_tokens: int = 100
    """T of the exact k = 2 risk curves of the bayes phase."""
    reduced: ReducedConfig = field(default_factory=ReducedConfig)
    """The reduced/minimal model on the exact population loss."""

    def validate(self) -> None:
        require_int(self, "k", low=2, high=20)
        require_int(self, "n_tokens", low=4, high=1000)
        require_float(self, "alpha", low=0, low_open=True)
        check_alpha(self.alpha)
        require_int(self, "d_model", low=2)
        require_float(self, "init_scale", low=0, low_open=True)
        require_float(self, "lr", low=0, low_open=True)
        require_int(self, "batch_size", low=1)
        require_int(self, "steps", low=10)
        require_int(self, "one_layer_seeds", low=1)
        require_int(self, "test_size", low=16)
        require_int(self, "n_eval", low=5)
        require_int(self, "dp_tokens", low=2, high=200)

    @property
    def eval_steps(self) -> list[int]:
        """The evaluation grid: n_eval + 1 uniform steps from 0 to steps."""
        import numpy as np
        return sorted(set(int(s) for s in np.linspace(0, self.steps, self.n_eval + 1).round()))

    # ---------------------------------------------------------------------------------- presets
    @classmethod
    def smoke(cls) -> "Config":
        return cls(k=2, n_tokens=8, steps=60, n_seeds=2, one_layer_seeds=1, test_size=128, n_eval=6,
                   dp_tokens=20,                         # seconds: the test suite (the TF checks are out of regime)
                   reduced=ReducedConfig(n_tokens=8, sigmas=(1e-1, 1e-3), seeds=2, steps=300, quartic_sigmas=(0.4, 0.3),
                                         quartic_steps=400, mm_steps=20))   # T = 8: 255 prefixes, the checks' regime

    @classmethod
    def quick(cls) -> "Config":
        return cls(n_seeds=4,                            # the spec's quick preset: k = 3, T = 32, 4 seeds, 1200 steps
                   reduced=ReducedConfig(mm_steps=600))  # the full MM is reported only: 600 steps reach Bayes + 1e-3

    @classmethod
    def paper(cls) -> "Config":
        return cls(k=3, n_tokens=100, lr=5e-4, steps=8000, n_seeds=16, one_layer_seeds=4,   # EEGMT's shape, GPU
                   reduced=ReducedConfig(seeds=16))
