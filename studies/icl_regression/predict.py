"""What the theory says for a config, without training (closed forms only; milliseconds)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import data as dt
from . import theory as th
from .config import Config


def gamma_mixed(Sigma: torch.Tensor, B: torch.Tensor, sigma2: float, lengths) -> torch.Tensor:
    """Gamma_pi = argmin_Gamma E_pi R^DGD_M(Gamma) for M uniform on ``lengths``:
    with a_M = (M-1)/M,  Gamma_pi = E[a] B Sigma (E[a^2 G_{M-1}])^{-1}."""
    a = [(M - 1) / M for M in lengths]
    Gbar = sum(ai ** 2 * th.gd_gram(Sigma, B, sigma2, M - 1) for ai, M in zip(a, lengths)) / len(lengths)
    return float(np.mean(a)) * torch.linalg.solve(Gbar, (B @ Sigma).T).T


def predict(config: Config) -> dict[str, Any]:
    """Closed-form predictions at the config (Sigma_main from ``cov``; the AR(rho) ones for A8)."""
    cfg = config
    d, N, s2 = cfg.d, cfg.n_context, cfg.sigma2
    B = cfg.psi2 * torch.eye(d, dtype=torch.float64)
    out: dict[str, Any] = {}
    for tag, kind in (("main", cfg.cov), ("ar", "ar"), ("iso", "iso")):
        S = dt.covariance(d, kind, cfg.rho)
        out[f"Sigma_{tag}"] = S.numpy()
        out[f"R_star_gd_{tag}"] = float(th.gd_optimal_risk(S, B, s2, N))
        out[f"R_star_dgd_{tag}"] = float(th.dgd_optimal_risk(S, B, s2, N))
        out[f"Gamma_star_{tag}"] = th.gamma_star(S, B, s2, N).numpy()
        out[f"Gamma_dgd_star_{tag}"] = th.gamma_dgd_star(S, B, s2, N).numpy()
        out[f"dgd_envelope_{tag}"] = np.array([float(th.dgd_optimal_risk(S, B, s2, M)) for M in cfg.test_lengths])
    S = dt.covariance(d, cfg.cov, cfg.rho)
    out["R_ols"] = th.ols_risk(d, N, s2)
    out["gamma_gd_iso"] = th.gamma_gd_iso(d, cfg.psi2, s2, N)
    out["gamma_dgd_iso"] = th.gamma_dgd_iso(d, cfg.psi2, s2, N)
    out["Gamma_pi"] = gamma_mixed(S, B, s2, cfg.mixed_lengths).numpy()
    out["gamma_pi_iso"] = th.gamma_mixed_dgd(cfg.mixed_lengths, d, cfg.psi2, s2)
    out["pool_constant"] = th.pool_excess_constant(S, B, s2, N)
    xi = d / N
    out["xi"] = xi
    tau = cfg.psi2 * d  # the limits are stated for psi^2 d = 1; rescaling y by 1/sqrt(tau) gives tau R(xi, sigma^2/tau)
    out["ridge_proportional"] = float(tau * th.ridge_risk_proportional(xi, s2 / tau))
    out["gd_proportional"] = float(tau * th.gd_risk_proportional(xi, s2 / tau))
    return out
