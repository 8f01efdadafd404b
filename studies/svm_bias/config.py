"""Configuration of the SVM implicit-bias study (TF-SVM and MMTS).

One config describes a *primary run* and, with ``suite=True``, the battery of sub-experiments
that the checks A1-A8 and the spectral-descent extension need.  How the fields drive them:

============  ==========================================================================================
prefix        what runs, and which fields set it
============  ==========================================================================================
``main``      exactly the issue fields: ``n_seeds`` instances of kind ``instance`` (sizes ``n, T, d``,
              or ``angle_deg`` for the toy), parametrisation ``param`` (rank ``rank_m``), optimiser
              ``optimizer`` (``ngd_per``) with ``lr`` for ``steps`` steps on ``loss``, from
              W0 (or K0, Q0) with N(0, ``init_scale``^2) entries.  Check A3 reads it.
``toy``       the two-sequence toy at ``angle_deg``: W by NGD (``lr``, ``steps``, W0 = 0; A1); (K, Q)
              by per-factor NGD (``kq_lr``, ``steps``, K0, Q0 ~ N(0, ``kq_init``^2), m = ``rank_m``;
              A2); W by plain GD (``gd_lr``, ``gd_steps``; A6).
``norms``     ``norm_seeds`` random instances of size ``n, T, d`` (the first ``norm_seeds`` instances
              of ``main`` when ``instance='random'``): W by NGD, (K, Q) by NGD (``kq_lr``, ``kq_init``)
              and W by spectral descent (``lr``), all for ``steps`` (A5 and the extension); W by plain
              GD (``gd_lr``, ``gd_steps``; A6); and the naive-vs-stable forward pass demonstration on
              the first min(4, ``norm_seeds``) of them (NGD, ``lr``, ``steps``).
``equal``     ``n_inits`` equal-non-opt-score instances of size ``n, T, d`` with orthonormal queries, W
              by NGD (``lr``, ``steps``) from W0 ~ N(0, ``init_std``^2) (A4); ``equal_rq``: the same
              with random unit queries (the free-rider check).
``sweep``     for each width in ``sweep_d``: ``n_inits`` random instances of size ``n, T, d'``, W by NGD
              (``lr``, ``steps``) from W0 ~ N(0, ``init_std``^2) (global/local fractions); and on the
              first ``rank_instances`` of them the Frobenius and nuclear SVM for alpha = opt and the
              feasibility of a uniformly random alpha (A7).
``mmts``      the MMTS single-input example, W by NGD (``mmts_lr``, ``steps``) from the six
              prompts p0 = (0, c), c in {1, .5, 0, -.5, -1, -1.5} (A8).
``horizon``   the gradient along the ray m W^mm / ||W^mm|| of the toy, for the naive and the
              cancellation-free forward pass (no training).
============  ==========================================================================================

Every sub-experiment uses ``loss``, ``dtype``, ``device`` and ``grad_floor``; its random draws come
from generators seeded ``seed + OFFSET[prefix] + member`` (see `studies.svm_bias.simulate.STREAMS`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from workbench.config import (StudyConfig, require, require_choice, require_float, require_int,
                              require_sequence)

from studies.svm_bias.instances import INSTANCE_KINDS
from studies.svm_bias.model import LOSSES
from studies.svm_bias.training import OPTIMIZERS


@dataclass(frozen=True, kw_only=True)
class Config(StudyConfig):
    # ------------------------------------------------------------- the primary run (issue fields)
    n: int = 6
    """n: sequences (examples) per instance."""
    T: int = 8
    """T: tokens per sequence."""
    d: int = 10
    """d: token dimension (W is d x d)."""
    param: Literal["W", "KQ"] = "W"
    """Parametrisation of the primary run: W, or W = K Q^T with K, Q in R^{d x m}."""
    rank_m: int = 10
    """m: width of K and Q (rank W <= m); the nuclear-norm theory is the convex case m >= d."""
    optimizer: Literal["gd", "ngd", "spectral"] = "ngd"
    """Optimiser of the primary run: plain GD, normalised GD, or spectral (Muon-style) descent."""
    lr: float = 0.5
    """Step size of the primary run and of the battery's W runs by NGD and spectral descent."""
    steps: int = 1000
    """Steps of the primary run and of every battery run except plain GD."""
    loss: Literal["logistic", "exp", "correlation"] = "logistic"
    """The decreasing loss of Y f: log(1 + e^-u), e^-u, or -u (every run)."""
    init_scale: float = 0.0
    """Entry std of W0 (or of K0 and Q0) in the primary run; 0 is the zero initialisation."""
    instance: Literal["random", "equal_scores", "toy", "mmts_single"] = "random"
    """Instance kind of the primary run (the toy and MMTS examples ignore n, T, d)."""
    angle_deg: float = 60.0
    """phi: angle between the two query tokens of the toy, in (0, 90) degrees."""
    n_seeds: int = 20
    """Ensemble size of the primary run (member i: instance and initialisation from seed + i)."""

    # ------------------------------------------------------------------- documented extras
    ngd_per: Literal["tensor", "joint"] = "tensor"
    """NGD normalisation for (K, Q): per factor ('tensor') or joint over (K, Q)."""
    suite: bool = True
    """Run the battery of sub-experiments behind checks A1-A8 and the extension (else main only)."""
    kq_lr: float = 0.1
    """Per-factor NGD step of the battery's (K, Q) runs (||K Q^T|| grows ~ (lr k)^2; the rescaled
    gradient of normalised descent has no float64 horizon, so this sets resolution, not reach)."""
    kq_init: float = 0.01
    """Entry std of K0 and Q0 in the battery's (K, Q) runs (K = Q = 0 is a stationary point)."""
    gd_lr: float = 1.0
    """Step size of the battery's plain-GD runs (the ln k norm growth, A6)."""
    gd_steps: int = 20000
    """Steps of the plain-GD runs; the ln k slope is fitted over [gd_steps / 4, gd_steps]."""
    mmts_lr: float = 0.1
    """NGD step of the MMTS single-input runs (a large first step can leave the local cone)."""
    init_std: float = 1.0
    """Entry std of the random W0 of the equal-score (A4) and width-sweep runs."""
    n_inits: int = 25
    """Ensemble size of the equal-score runs and of each width of the sweep."""
    norm_seeds: int = 8
    """Random instances of the norm-trichotomy, plain-GD and precision-horizon runs."""
    sweep_d: tuple[int, ...] = (4, 6, 8, 10, 16)
    """Widths d of the global/local-fraction and SVM-rank sweep."""
    rank_instances: int = 10
    """Instances per width on which the SVM rank and random-alpha feasibility are measured."""
    grad_floor: float = 1e-140
    """Gradient-underflow guard of plain GD and the naive forward pass (normalised and spectral
    descent take a rescaled gradient that never gets there): a member whose largest gradient entry
    falls below this is frozen (kept above ~1e-154, where a gradient's sum of squares underflows)."""

    def validate(self) -> None:
        for name in ("n", "T", "d"):
            require_int(self, name, low=1)
        require(self.T >= 2, f"T must be >= 2 (one token must be selected against another), got {self.T}")
        require_choice(self, "param", ("W", "KQ"))
        require_int(self, "rank_m", low=1)
        require_choice(self, "optimizer", OPTIMIZERS)
        require_choice(self, "ngd_per", ("tensor", "joint"))
        require_float(self, "lr", low=0.0, low_open=True)
        require_int(self, "steps", low=1)
        require_choice(self, "loss", LOSSES)
        require_float(self, "init_scale", low=0.0)
        require_choice(self, "instance", INSTANCE_KINDS)
        require_float(self, "angle_deg", low=0.0, high=90.0, low_open=True, high_open=True)
        require_int(self, "n_seeds", low=1, high=100_000)
        require(not (self.param == "KQ" and self.init_scale == 0.0),
                "param='KQ' needs init_scale > 0: K = Q = 0 is a stationary point of the loss")
        require(self.instance != "equal_scores" or 2 <= self.d,
                "instance='equal_scores' needs d >= 2")
        require(not self.suite or self.n <= self.d,
                f"the battery's equal-score instances have orthonormal queries and need n <= d, got n={self.n}, "
                f"d={self.d} (or set suite=false)")
        require(self.instance != "equal_scores" or self.n <= self.d,
                f"instance='equal_scores' has orthonormal queries and needs n <= d, got n={self.n}, d={self.d}")
        require(isinstance(self.suite, bool), f"suite must be true or false, got {self.suite!r}")
        for name in ("kq_lr", "gd_lr", "mmts_lr", "kq_init", "grad_floor"):
            require_float(self, name, low=0.0, low_open=True)
        require_float(self, "init_std", low=0.0)
        require_int(self, "gd_steps", low=8)
        require_int(self, "n_inits", low=1, high=100_000)
        require_int(self, "norm_seeds", low=1, high=100_000)
        require_int(self, "rank_instances", low=1)
        require(self.rank_instances <= self.n_inits,
                f"rank_instances ({self.rank_instances}) must be <= n_inits ({self.n_inits}): the rank "
                "study reuses the sweep's instances")
        require_sequence(self, "sweep_d", low=2, increasing=True)
        require(all(isinstance(v, int) and not isinstance(v, bool) for v in self.sweep_d),
                f"sweep_d must hold integers, got {self.sweep_d!r}")

    def memory_estimate(self) -> tuple[float, str]:
        """The largest ensemble tensors held at once: the instances X (e, n, T, d) and the W
        trajectory (observations, e, d, d) of the primary run and of the battery (a lower bound)."""
        size = 8 if self.dtype == "float64" else 4
        observed = min(self.steps + 1, 41)  # at least the 41 evenly spaced observation steps
        runs = [(self.n_seeds, self.d)]
        if self.suite:
            runs += [(max(self.n_inits, self.norm_seeds), max((self.d, *self.sweep_d)))]
        numbers, what = max((max(e * self.n * self.T * d, observed * e * d * d), f"{e} members with d={d}")
                            for e, d in runs)
        return numbers * size, f"the instances and W trajectories of {what}"

    # ------------------------------------------------------------------------------ presets
    @classmethod
    def smoke(cls) -> "Config":
        """Seconds: every sub-experiment at a small size.  ``A6_random_gd_log_growth`` is shown but
        not asserted here (``gd_steps`` < `GD_LOG_REGIME_STEPS`: plain GD reaches its ln k regime on
        random instances only after ~10^4 steps; smoke runs 3000)."""
        return cls(n_seeds=4, steps=1000, gd_steps=3000, n_inits=6, norm_seeds=3, sweep_d=(4, 8),
                   rank_instances=3)

    @classmethod
    def quick(cls) -> "Config":
        """About a minute on two cores: every check passes."""
        return cls(steps=1500)

    @classmethod
    def paper(cls) -> "Config":
        """The papers' scales: 100 seeds of local_converge, widths up to 32; 8000 normalised steps, since the
        (K, Q) runs' nuclear efficiency climbs slowly (the slowest of 20 seeds: 0.88 at 2000 steps, 0.94 at 6000)."""
        return cls(n_seeds=100, steps=8000, gd_steps=20000, n_inits=100, norm_seeds=20,
                   sweep_d=(4, 6, 8, 10, 16, 32), rank_instances=50)


GD_LOG_REGIME_STEPS = 10_000
"""Plain GD on random instances reaches its ||W_k|| ~ ||W^mm|| ln k regime only after ~10^4 steps
(measured: 3000 steps give slope ratios outside 1 +- 0.2), so A6 is asserted only from here on."""
