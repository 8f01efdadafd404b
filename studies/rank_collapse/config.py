"""Configuration of the rank-collapse study (Dong, Cordonnier & Loukas 2021, with the Noci et al.
2022 and Geshkovski et al. 2023 extensions).

The field names ``n_tokens, d_model, n_heads, depth, qk_scale, value_scale, skip, branch_scale,
mlp, norm`` are the public interface given by the issue; the rest are documented extras that size
the individual experiments.  ``skip``, ``branch_scale``, ``mlp`` and ``norm`` describe the *full
model*, the last of the four Fig. 2 variants; the three ablations (SAN, SAN+MLP, SAN+skip) are
derived from it (see `studies.rank_collapse.model.variant_specs`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from workbench.config import (StudyConfig, require, require_choice, require_float, require_int,
                              require_sequence)

INV_SQRT_DEPTH = "1/sqrt(L)"
"""The string value of ``branch_scale`` that means alpha = 1/sqrt(depth) (Noci et al. 2022)."""


def _logspace(lo: float, hi: float, num: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.logspace(lo, hi, num))


@dataclass(frozen=True, kw_only=True)
class Config(StudyConfig):
    # ---------------------------------------------------------------- the model (issue fields)
    n_tokens: int = 16
    """n: tokens per input sequence X (n x d)."""
    d_model: int = 32
    """d: model width (= d_qk for one head; d_qk = d / n_heads per head)."""
    n_heads: int = 1
    """H: heads per attention layer in the depth sweeps."""
    depth: int = 48
    """L: layers of the depth sweep (Fig. 1); at least 8, since the collapse check reads layer 8."""
    qk_scale: tuple[float, ...] = (0.5, 1.0, 2.0)
    """QK scales s: W_Q, W_K ~ N(0, s^2/d); every sweep runs across all of them (ensemble axis)."""
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

    # ---------------------------------------------------------------- extra experiment sizes
    scan_heads: int = 4
    """Head count of the multi-head variant in the cubic-law scan (d_head = d / scan_heads)."""
    epsilons: tuple[float, ...] = _logspace(-4, -1, 13)
    """Input-residual scales eps of the one-layer cubic-law scan X = 1 x^T + eps R0."""
    epsilons_two_layer: tuple[float, ...] = _logspace(-2, 0, 17)
    """Input-residual scales of the two-layer scan (expected slope 9)."""
    bound_tokens: tuple[int, ...] = (4, 16, 64)
    """Token counts n of the explicit-bound trials."""
    bound_widths: tuple[int, ...] = (8, 32)
    """Widths d of the explicit-bound trials."""
    bound_trials: int = 50
    """Random (s, sigma_v, input residual) draws per (n, d) pair of the explicit-bound check."""
    path_heads: int = 2
    """H of the exact path decomposition (the sum has H^L or (H+1)^L terms)."""
    path_depth: int = 3
    """L of the exact path decomposition."""
    witness_value_scales: tuple[float, ...] = (1.0, 3.0)
    """sigma_v values of the uniform-attention witness of Claim 3.1 (run at the sweep depth)."""
    scaling_depths: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 48)
    """Depths L of the alpha = 1/sqrt(L) depth-scaling runs; the check reads the largest."""
    grad_depth: int = 6
    """Layers of the full model in the query/key-gradient test at a collapsed input X = 1 x^T."""
    noci_depth: int = 12
    """L of the Monte Carlo test of E||m_L||^2 = (1 + alpha^2 sigma_v^2)^L ||m_0||^2."""
    noci_samples: int = 1000
    """Independent uniform-attention networks in that Monte Carlo test."""
    cluster_tokens: int = 32
    """n of the Geshkovski et al. sphere model."""
    cluster_dim: int = 3
    """d of the sphere model (tokens on S^{d-1})."""
    cluster_betas: tuple[float, ...] = (0.5, 1.0, 4.0, 9.0)
    """Inverse temperatures beta of the sphere model."""
    cluster_step: float = 0.05
    """Euler step h of the sphere model (with renormalisation)."""
    cluster_time: float = 20.0
    """Final time T of the sphere model."""
    toy_grid: int = 61
    """Grid points per axis of the two-token phase diagram."""
    toy_depth: int = 24
    """Layers of the two-token phase diagram."""

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        require_int(self, "n_tokens", low=2)
        require_int(self, "d_model", low=1)
        require_int(self, "n_heads", low=1)
        require_int(self, "depth", low=8)
        require_sequence(self, "qk_scale", low=0.0, low_open=True)
        require_float(self, "value_scale", low=0.0, low_open=True)
        require(isinstance(self.skip, bool), f"skip must be true or false, got {self.skip!r}")
        require(isinstance(self.mlp, bool), f"mlp must be true or false, got {self.mlp!r}")
        require_choice(self, "norm", ("none", "pre", "post"))
        if isinstance(self.branch_scale, str):
            require(self.branch_scale.replace(" ", "") == INV_SQRT_DEPTH,
                    f"branch_scale must be a positive number or the string {INV_SQRT_DEPTH!r}, "
                    f"got {self.branch_scale!r}")
        else:
            require_float(self, "branch_scale", low=0.0, low_open=True)
        require_int(self, "scan_heads", low=1)
        require_sequence(self, "epsilons", low=0.0, min_len=3, increasing=True, low_open=True)
        require_sequence(self, "epsilons_two_layer", low=0.0, min_len=3, increasing=True, low_open=True)
        require_sequence(self, "bound_tokens", low=2)
        require_sequence(self, "bound_widths", low=1)
        require(all(isinstance(v, int) for v in self.bound_tokens + self.bound_widths),
                "bound_tokens and bound_widths must hold integers")
        require_int(self, "bound_trials", low=1)
        require_int(self, "path_heads", low=1)
        require_int(self, "path_depth", low=1)
        require((self.path_heads + 1) ** self.path_depth <= 4096,
                f"(path_heads + 1)^path_depth = {(self.path_heads + 1) ** self.path_depth} paths is too many "
                "to enumerate (limit 4096)")
        require_sequence(self, "witness_value_scales", low=0.0, low_open=True)
        require_sequence(self, "scaling_depths", low=1, increasing=True)
        require(all(isinstance(v, int) for v in self.scaling_depths), "scaling_depths must hold integers")
        require_int(self, "grad_depth", low=1)
        require_int(self, "noci_depth", low=1)
        require_int(self, "noci_samples", low=10)
        require_int(self, "cluster_tokens", low=2)
        require_int(self, "cluster_dim", low=2)
        require_sequence(self, "cluster_betas", low=0.0, low_open=True)
        require_float(self, "cluster_step", low=0.0, high=1.0, low_open=True)
        require_float(self, "cluster_time", low=0.0, low_open=True)
        require(self.cluster_time >= self.cluster_step, "cluster_time must be at least one cluster_step")
        require_int(self, "toy_grid", low=3)
        require_int(self, "toy_depth", low=1)
        # The signal grows by at most (1 + max(1, alpha) sigma_v) per layer; its squares (norms, the
        # Noci prediction (1 + alpha^2 sigma_v^2)^L) must stay below float64's ~1.8e308.
        depth_max = max(self.depth, max(self.scaling_depths), self.noci_depth)
        growth = 1.0 + max(1.0, self.alpha) * self.value_scale
        require(2 * depth_max * math.log10(growth) <= 300,
                f"value_scale={self.value_scale:g} (with branch_scale alpha={self.alpha:.3g}) grows the signal by up to "
                f"{growth:.3g} per layer, so its squares overflow float64 over {depth_max} layers; keep "
                f"(1 + max(1, alpha) value_scale)^(2L) <= 1e300, i.e. value_scale <= "
                f"{(10 ** (150 / depth_max) - 1) / max(1.0, self.alpha):.4g} at this depth")

    # ---------------------------------------------------------------- derived
    def memory_estimate(self) -> tuple[float, str]:
        """The depth sweep's weights: W_Q, W_K, W_V, W_O (4 d^2 per layer) for every QK scale x
        seed x layer, held at once (a lower bound of the run's peak)."""
        layers = max(self.depth, max(self.scaling_depths))
        numbers = len(self.qk_scale) * self.n_seeds * layers * 4 * self.d_model ** 2
        return numbers * (8 if self.dtype == "float64" else 4), (
            f"the depth sweep's weights ({len(self.qk_scale)} QK scales x {self.n_seeds} seeds x {layers} layers x "
            f"4 x {self.d_model}^2)")

    @property
    def alpha(self) -> float:
        """The resolved branch scale alpha at the sweep depth."""
        return branch_alpha(self.branch_scale, self.depth)

    # ---------------------------------------------------------------- presets
    @classmethod
    def smoke(cls) -> "Config":
        """A few seconds: 3 seeds, depth 12, small scans."""
        return cls(n_seeds=3, depth=12, epsilons=_logspace(-4, -1, 7), epsilons_two_layer=_logspace(-2, 0, 17),
                   bound_tokens=(4, 16), bound_widths=(8,), bound_trials=20, scaling_depths=(1, 4, 16),
                   noci_depth=6, noci_samples=300, cluster_betas=(1.0, 4.0), cluster_time=12.0, toy_grid=21, toy_depth=12)

    @classmethod
    def quick(cls) -> "Config":
        """About a minute on 2 cores: the spec's sizes with 20 seeds, depth 48."""
        return cls(n_seeds=20)

    @classmethod
    def paper(cls) -> "Config":
        """The spec's section-4 scale plus longer clustering runs and a larger Monte Carlo."""
        return cls(n_seeds=20, depth=48, bound_trials=100, noci_samples=10000, path_depth=4,
                   cluster_time=200.0, toy_grid=121, toy_depth=48)


def branch_alpha(branch_scale: float | str, depth: int) -> float:
    """alpha as a number: ``branch_scale`` itself, or 1/sqrt(depth) for the string '1/sqrt(L)'."""
    if isinstance(branch_scale, str):
        return 1.0 / math.sqrt(depth)
    return float(branch_scale)
