"""Closed forms for in-context linear regression with one attention layer.

Notation (book chapter, Sec. "The setting"): x ~ N(0, Sigma), beta ~ N(0, B) (B = psi^2 I unless
stated), noise variance sigma^2, context length N (test length M), r = sigma^2 / psi^2.  Every risk
is the full risk E (yhat - y_q)^2, which includes sigma^2.

- One-step preconditioned GD, the Gamma model (Wu et al. 2024, the model their abstract names; Zhang, Frei &
  Bartlett 2023; Ahn et al. 2023):  yhat = x_q^T Gamma (1/M) sum_i y_i x_i,
      R_M(Gamma) = sigma^2 + tr(Sigma B) - 2 tr(Sigma Gamma Sigma B) + tr(Sigma Gamma G_M Gamma^T),
      G_M = (M+1)/M Sigma B Sigma + (tr(Sigma B) + sigma^2)/M Sigma,
  minimised by Gamma* = B Sigma G_N^{-1}.
- Debiased GD (He et al. 2025): yhat = x_q^T Gamma (1/M) sum_i (y_i - ybar) x_i.  For Gaussian x a
  Helmert rotation turns the centred sum into M-1 independent pairs, so exactly
      R^DGD_M(Gamma) = R_{M-1}(Gamma (M-1)/M)   ("centring removes one sample in law").
- The full single-layer linear self-attention (LSA) population risk: the Isserlis expansion of
  `lsa_population_risk` (derived in the chapter, Eq. lsa-risk).
- Bayes ridge (Monte Carlo over Wishart draws), OLS, the finite task-pool Gamma_T and the
  proportional limits d, N -> infinity with d/N = xi and psi^2 d = 1.

Functions take torch tensors and broadcast over leading batch axes of Sigma / B / Gamma; the ones
under "on saved arrays" take the numpy arrays of a record.  `predict(config)` collects the numbers
the checks and figures compare with (milliseconds, no training).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from studies.icl_regression.data import covariance


def _tr(A: Tensor) -> Tensor:
    return A.diagonal(dim1=-2, dim2=-1).sum(-1)


# --------------------------------------------------------------------------- Gamma model
def gd_gram(Sigma: Tensor, B: Tensor, sigma2: float, M: float) -> Tensor:
    """G_M = E[s s^T] for s = (1/M) sum_i y_i x_i:  (M+1)/M Sigma B Sigma + (tr(Sigma B) + sigma^2)/M Sigma."""
    SBS = Sigma @ B @ Sigma
    t = _tr(Sigma @ B)[..., None, None]
    return (M + 1) / M * SBS + (t + sigma2) / M * Sigma


def gd_risk(Gamma: Tensor, Sigma: Tensor, B: Tensor, sigma2: float, M: float) -> Tensor:
    """R_M(Gamma): risk of yhat = x_q^T Gamma (1/M) sum_i y_i x_i at context length M."""
    G = gd_gram(Sigma, B, sigma2, M)
    return (sigma2 + _tr(Sigma @ B) - 2 * _tr(Sigma @ Gamma @ Sigma @ B)
            + _tr(Sigma @ Gamma @ G @ Gamma.transpose(-1, -2)))


def gamma_star(Sigma: Tensor, B: Tensor, sigma2: float, N: float) -> Tensor:
    """Gamma* = B Sigma G_N^{-1}, the minimiser of R_N (derived in the chapter; the optimum of Wu et al. 2024's Gamma model)."""
    G = gd_gram(Sigma, B, sigma2, N)
    return torch.linalg.solve(G, (B @ Sigma).transpose(-1, -2)).transpose(-1, -2)  # (B Sigma) G^{-1}, G symmetric


def gd_optimal_risk(Sigma: Tensor, B: Tensor, sigma2: float, N: float) -> Tensor:
    """R* = R_N(Gamma*) = sigma^2 + tr(Sigma B) - tr(Sigma B Sigma G_N^{-1} Sigma B)."""
    return gd_risk(gamma_star(Sigma, B, sigma2, N), Sigma, B, sigma2, N)


def dgd_risk(Gamma: Tensor, Sigma: Tensor, B: Tensor, sigma2: float, M: float) -> Tensor:
    """R^DGD_M(Gamma) = R_{M-1}(Gamma (M-1)/M): risk of yhat = x_q^T Gamma (1/M) sum_i (y_i - ybar) x_i."""
    return gd_risk(Gamma * ((M - 1) / M), Sigma, B, sigma2, M - 1)


def gamma_dgd_star(Sigma: Tensor, B: Tensor, sigma2: float, N: float) -> Tensor:
    """Gamma_D* = N/(N-1) Gamma*_{N-1}; for B = psi^2 I this is N [N Sigma + (tr Sigma + r) I]^{-1}."""
    return gamma_star(Sigma, B, sigma2, N - 1) * (N / (N - 1))


def dgd_optimal_risk(Sigma: Tensor, B: Tensor, sigma2: float, N: float) -> Tensor:
    """R*_DGD(N) = R*_GD(N-1)."""
    return gd_optimal_risk(Sigma, B, sigma2, N - 1)


# ----------------------------------------------------------------- isotropic scalar forms
def gd_risk_iso(gamma, d: int, psi2: float, sigma2: float, M):
    """R^GD_M(gamma) = sigma^2 + psi^2 d [1 - 2 gamma + gamma^2 (M+1+d+r)/M]  (Sigma = I, Gamma = gamma I)."""
    r = sigma2 / psi2
    return sigma2 + psi2 * d * (1 - 2 * gamma + gamma ** 2 * (M + 1 + d + r) / M)


def dgd_risk_iso(gamma, d: int, psi2: float, sigma2: float, M):
    """R^DGD_M(gamma) = sigma^2 + psi^2 d [1 - 2 gamma (M-1)/M + gamma^2 (M-1)(M+d+r)/M^2]."""
    r = sigma2 / psi2
    return sigma2 + psi2 * d * (1 - 2 * gamma * (M - 1) / M + gamma ** 2 * (M - 1) * (M + d + r) / M ** 2)


def gamma_gd_iso(d: int, psi2: float, sigma2: float, N):
    """gamma* = N / (N + 1 + d + r)."""
    return N / (N + 1 + d + sigma2 / psi2)


def gamma_dgd_iso(d: int, psi2: float, sigma2: float, N):
    """gamma_D* = N / (N + d + r)."""
    return N / (N + d + sigma2 / psi2)


def gamma_mixed_dgd(lengths: Sequence[int], d: int, psi2: float, sigma2: float) -> float:
    """The DGD step minimising the length-averaged isotropic risk, lengths uniform on ``lengths``:
    gamma_pi = E[(M-1)/M] / E[(M-1)(M+d+r)/M^2]."""
    r = sigma2 / psi2
    M = np.asarray(lengths, dtype=float)
    return float(np.mean((M - 1) / M) / np.mean((M - 1) * (M + d + r) / M ** 2))


def gamma_mixed(Sigma: Tensor, B: Tensor, sigma2: float, lengths: Sequence[int]) -> Tensor:
    """Gamma_pi = argmin_Gamma E_pi R^DGD_M(Gamma) for M uniform on ``lengths``:
    with a_M = (M-1)/M,  Gamma_pi = E[a] B Sigma (E[a^2 G_{M-1}])^{-1}."""
    a = [(M - 1) / M for M in lengths]
    Gbar = sum(ai ** 2 * gd_gram(Sigma, B, sigma2, M - 1) for ai, M in zip(a, lengths)) / len(lengths)
    return float(np.mean(a)) * torch.linalg.solve(Gbar, (B @ Sigma).T).T


def gamma_mixed_gd(Sigma: Tensor, B: Tensor, sigma2: float, lengths: Sequence[int]) -> Tensor:
    """The plain-GD rival of `gamma_mixed`: argmin_Gamma E_pi R_M(Gamma) = B Sigma (E_pi[G_M])^{-1}."""
    Gbar = sum(gd_gram(Sigma, B, sigma2, M) for M in lengths) / len(lengths)
    return torch.linalg.solve(Gbar, (B @ Sigma).T).T


def ols_risk(d: int, N: int, sigma2: float) -> float:
    """OLS risk sigma^2 (1 + d/(N-d-1)) for N >= d+2 (any Sigma: OLS is affine invariant)."""
    if N < d + 2:
        return math.inf
    return sigma2 * (1 + d / (N - d - 1))


# ------------------------------------------------------------------------- Bayes (ridge)
def chi2_draw(source, dof: Tensor, members, *, device=None) -> Tensor:
    """Chi-square variates with integer degrees of freedom ``dof`` (k,) for each of ``members``, (m, k):
    chi2(n) = -2 sum_{j < floor(n/2)} log u_j (+ z^2 when n is odd), exact in law (a sum of
    exponentials is a Gamma(n/2, 2) variate for even n), from one uniform and one normal draw."""
    dof = torch.as_tensor(dof, dtype=torch.int64)
    half = dof // 2
    width = max(int(half.max()), 1)
    u = source.child("exp").uniform((dof.numel(), width), members=members, device=device)
    used = torch.arange(width, device=u.device) < half.to(u.device)[:, None]          # (k, width)
    val = -2 * torch.where(used, torch.log1p(-u), torch.zeros_like(u)).sum(-1)          # 1 - u in (0, 1]
    z = source.child("odd").normal(dof.numel(), members=members, device=device)
    return val + torch.where((dof % 2 == 1).to(u.device), z * z, torch.zeros_like(z))


def ridge_risk_mc(Sigma: Tensor, psi2: float, sigma2: float, N: int, draws: int, source,
                  chunk: int = 4096, device=None) -> tuple[float, float]:
    """Bayes risk sigma^2 + sigma^2 E tr[Sigma (X^T X + lambda I)^{-1}], lambda = sigma^2/psi^2,
    by Monte Carlo over Wishart draws X^T X = L A A^T L^T (Bartlett decomposition, L = chol Sigma),
    drawn from the stream ``source`` on ``device`` in chunks of ``chunk`` draws (chunk c is its child c).

    Returns (mean, standard error).  The chi-square diagonal of A is `chi2_draw`'s.
    """
    d = Sigma.shape[-1]
    S = Sigma.detach().to(device=device, dtype=torch.float64)
    L = torch.linalg.cholesky(S)
    lam = sigma2 / psi2
    vals = []
    for c, start in enumerate(range(0, draws, chunk)):
        n = min(chunk, draws - start)
        part = source.child(c)
        if N < d:  # rank-deficient Gram matrix: sample X directly instead
            X = part.child("x").normal((n, N, d), device=device)
            W = X.transpose(-1, -2) @ X
        else:
            A = torch.tril(part.child("offdiag").normal((n, d, d), device=device), diagonal=-1)
            dof = N - torch.arange(d)                                            # N, N-1, ..., N-d+1
            diag = torch.sqrt(chi2_draw(part.child("diag"), dof.repeat(n), 1, device=device)[0].reshape(n, d))
            A = A + torch.diag_embed(diag)
            W = A @ A.transpose(-1, -2)
        XtX = L @ W @ L.T
        inv = torch.linalg.solve(XtX + lam * torch.eye(d, dtype=torch.float64, device=S.device), S.expand(n, d, d))
        vals.append(sigma2 + sigma2 * inv.diagonal(dim1=-2, dim2=-1).sum(-1))
    v = torch.cat(vals)
    return float(v.mean()), float(v.std() / math.sqrt(draws))


# --------------------------------------------------------------------- proportional limits
def ridge_risk_proportional(xi, sigma2):
    """Bayes risk as d, N -> inf with d/N = xi, Sigma = I, psi^2 d = 1:
    (1/2)[sigma^2 + 1 - 1/xi + sqrt((sigma^2 + 1/xi - 1)^2 + 4 sigma^2)]."""
    xi = np.asarray(xi, dtype=float)
    return 0.5 * (sigma2 + 1 - 1 / xi + np.sqrt((sigma2 + 1 / xi - 1) ** 2 + 4 * sigma2))


def gd_risk_proportional(xi, sigma2):
    """R*_GD in the same limit: sigma^2 + xi (1 + sigma^2) / (1 + xi (1 + sigma^2)) (also R*_DGD's limit)."""
    xi = np.asarray(xi, dtype=float)
    return sigma2 + xi * (1 + sigma2) / (1 + xi * (1 + sigma2))


# ---------------------------------------------------------------- full LSA population risk
class LSARisk:
    """Exact population risk of single-layer linear self-attention (derived in the chapter).

    yhat = p^T Shat K x_q with Shat = (1/N) sum_i z_i z_i^T, z_i = (x_i; y_i), where p = (p_x; p_y) is
    the last row of W^PV and K = (K_x; k_y^T) the first d columns of W^KQ.

    Given beta, z_i ~ N(0, C) with C = [[Sigma, Sigma beta], [beta^T Sigma, beta^T Sigma beta + sigma^2]],
    so E[Shat Omega Shat | beta] = (N+1)/N C Omega C + tr(Omega C) C / N with Omega = K Sigma K^T, and
        R = sigma^2 + t - 2 E[beta^T Sigma K^T C p] + (N+1)/N p^T E[C Omega C] p + tr(Omega E[(p^T C p) C]) / N.
    The beta-expectations follow from Isserlis' theorem with C = C0 + C1 + C2 (degree 0, 1, 2 in beta):
    t = tr(Sigma B), t2 = E(beta^T Sigma beta)^2 = t^2 + 2 tr(Sigma B Sigma B), U = diag(Sigma B Sigma, 0):
        E[C Omega C] = C0 Omega C0 + t (C0 Omega ee^T + ee^T Omega C0) + U Omega ee^T + Omega_yy U
                       + tr(Omega U) ee^T + ee^T Omega U + Omega_yy t2 ee^T,
        E[(p^T C p) C] = (p^T C0 p)(C0 + t ee^T) + p_y^2 t C0 + 2 p_y (U p e^T + e p^T U) + p_y^2 t2 ee^T,
        E[beta^T Sigma K^T C p] = p_y tr(K_x^T Sigma B Sigma) + p_x^T Sigma B Sigma k_y.
    The Sigma-dependent constants are computed once; calling the object costs a few small matmuls.
    Sigma and B (..., d, d) broadcast against the parameters' leading axes.
    """

    def __init__(self, Sigma: Tensor, B: Tensor, sigma2: float, N: float):
        d = Sigma.shape[-1]
        self.d, self.sigma2, self.N = d, float(sigma2), float(N)
        batch = torch.broadcast_shapes(Sigma.shape[:-2], B.shape[:-2])
        Sigma, B = Sigma.expand(*batch, d, d), B.expand(*batch, d, d)
        SB = Sigma @ B
        self.Sigma = Sigma
        self.SBS = SB @ Sigma                                               # (..., d, d)
        self.t = _tr(SB)
        self.t2 = self.t ** 2 + 2 * _tr(SB @ SB)
        self.C0 = torch.zeros(*batch, d + 1, d + 1, dtype=Sigma.dtype, device=Sigma.device)
        self.C0[..., :d, :d] = Sigma
        self.C0[..., d, d] = sigma2
        self.U = torch.zeros_like(self.C0)
        self.U[..., :d, :d] = self.SBS

    def __call__(self, p: Tensor, K: Tensor) -> Tensor:
        """p (..., d+1), K (..., d+1, d) -> risk (...)."""
        d, N, s2 = self.d, self.N, self.sigma2
        p_y = p[..., d]
        Omega = K @ self.Sigma @ K.transpose(-1, -2)                        # (..., d+1, d+1)
        Om_yy = Omega[..., d, d]
        a = (self.C0 @ p[..., None])[..., 0]                                # C0 p
        Up = (self.U @ p[..., None])[..., 0]                                # U p
        Om_a = (Omega @ a[..., None])[..., 0]
        Om_Up_y = (Omega[..., d, :] * Up).sum(-1)                           # (Omega U p)_y
        trOmC0 = (Omega * self.C0).sum((-1, -2))
        trOmU = (Omega * self.U).sum((-1, -2))
        pC0p = (p * a).sum(-1)
        quad_COmC = ((a * Om_a).sum(-1) + 2 * self.t * p_y * Om_a[..., d] + 2 * p_y * Om_Up_y
                     + Om_yy * (p * Up).sum(-1) + trOmU * p_y ** 2 + Om_yy * self.t2 * p_y ** 2)
        quad_pCpC = (pC0p * (trOmC0 + self.t * Om_yy) + p_y ** 2 * self.t * trOmC0 + 4 * p_y * Om_Up_y
                     + p_y ** 2 * self.t2 * Om_yy)
        # cross = p_y tr(K_x^T SBS) + p_x^T SBS k_y = sum over (K^T)(U p) with the y row of K
        cross = p_y * (K[..., :d, :] * self.SBS).sum((-1, -2)) + (Up[..., :d] * K[..., d, :]).sum(-1)
        return s2 + self.t - 2 * cross + (N + 1) / N * quad_COmC + quad_pCpC / N


def lsa_population_risk(p: Tensor, K: Tensor, Sigma: Tensor, B: Tensor, sigma2: float, N: float) -> Tensor:
    """`LSARisk` in one call: p (..., d+1), K (..., d+1, d), Sigma and B (..., d, d) -> (...)."""
    return LSARisk(Sigma, B, sigma2, N)(p, K)


def lsa_gamma(p: Tensor, K: Tensor) -> Tensor:
    """Gamma = p_y K_x^T + k_y p_x^T: the part of the LSA prediction odd in y is x_q^T Gamma s_xy."""
    d = K.shape[-1]
    return p[..., d, None, None] * K[..., :d, :].transpose(-1, -2) + K[..., d, :, None] * p[..., None, :d]


# ------------------------------------------------------------------------ finite task pool
def pool_gamma(beta_pool: Tensor, Sigma: Tensor, sigma2: float, N: float) -> tuple[Tensor, Tensor]:
    """Gamma_T = Bhat Sigma Ghat^{-1}: the Gamma-model optimum when tasks are uniform on a pool.

    beta_pool (..., T, d) -> (Gamma_T (..., d, d), Bhat (..., d, d)).  Only the second moment
    Bhat = (1/T) sum_m beta_m beta_m^T of the task distribution enters G_N, so training on the pool
    is the Gamma model with B replaced by Bhat.
    """
    T = beta_pool.shape[-2]
    Bhat = beta_pool.transpose(-1, -2) @ beta_pool / T
    return gamma_star(Sigma, Bhat, sigma2, N), Bhat


def pool_excess_constant(Sigma: Tensor, B: Tensor, sigma2: float, N: float) -> float:
    """c = lim_T T E[R_N(Gamma_T) - R*]: the first-order (delta-method) prediction of the excess.

    R_N is quadratic with minimiser Gamma*, so R_N(Gamma_T) - R* = tr(Sigma D G_N D^T) exactly with
    D = Gamma_T - Gamma*.  Linearising D = J vec(Bhat - B) and using
    Cov(beta_i beta_j, beta_k beta_l) = B_ik B_jl + B_il B_jk gives c = tr(H Cov) / 2 with H the
    Hessian of Delta -> excess(Gamma*(B + Delta)) at 0.
    """
    d = Sigma.shape[-1]
    Sigma = Sigma.detach().to(torch.float64).cpu()
    B = B.detach().to(torch.float64).cpu()
    G = gd_gram(Sigma, B, sigma2, N)
    Gs = gamma_star(Sigma, B, sigma2, N)

    def excess(delta_flat: Tensor) -> Tensor:
        Delta = delta_flat.view(d, d)
        D = gamma_star(Sigma, B + Delta, sigma2, N) - Gs
        return _tr(Sigma @ D @ G @ D.T)

    H = torch.autograd.functional.hessian(excess, torch.zeros(d * d, dtype=torch.float64))
    cov = torch.einsum("ik,jl->ijkl", B, B) + torch.einsum("il,jk->ijkl", B, B)
    return float(0.5 * (H * cov.reshape(d * d, d * d)).sum())


# -------------------------------------------------------------- He et al.'s one-head family
def single_head_pattern_risk(omega: Tensor, X: Tensor, x_q: Tensor, psi2: float, sigma2: float) -> tuple[Tensor, Tensor]:
    """Best risk of one softmax head restricted to He et al.'s pattern (KQ = omega diag(I_d, 0),
    OV = mu e_{d+1}^T), minimised over mu in closed form, averaged over the given covariates.

    yhat = mu sum_l p_l y_l with p = softmax(omega x_l^T x_q).  Integrating beta and the noise,
        R(omega, mu) = sigma^2 + E[psi^2 |mu a - x_q|^2 + sigma^2 mu^2 |p|^2],  a = sum_l p_l x_l,
    which is quadratic in mu.  omega (k,), X (n, N, d), x_q (n, d) -> (risk (k,), mu (k,)).
    """
    s = torch.einsum("nld,nd->nl", X, x_q)                              # (n, N)
    P = torch.softmax(omega[:, None, None] * s[None], dim=-1)          # (k, n, N)
    a = torch.einsum("knl,nld->knd", P, X)                             # (k, n, d)
    lin = psi2 * torch.einsum("knd,nd->kn", a, x_q).mean(-1)           # E[psi^2 a^T x_q]
    quad = (psi2 * a.pow(2).sum(-1) + sigma2 * P.pow(2).sum(-1)).mean(-1)
    const = sigma2 + psi2 * x_q.pow(2).sum(-1).mean()
    mu = lin / quad
    return const - lin ** 2 / quad, mu


def pattern_risk(omega: Tensor, mu: Tensor, X: Tensor, x_q: Tensor, psi2: float, sigma2: float) -> Tensor:
    """Risk of H heads in He et al.'s pattern (KQ_h = omega_h diag(I_d, 0), OV_h = mu_h e_{d+1}^T), the task
    and the noise integrated exactly, averaged over the given covariates (a fixed sample: a smooth,
    deterministic function of (omega, mu) for autograd):

        yhat = sum_h mu_h sum_l p_hl y_l,  p_h = softmax(omega_h x_l^T x_q),
        R = sigma^2 + E[psi^2 |sum_h mu_h a_h - x_q|^2 + sigma^2 |sum_h mu_h p_h|^2],  a_h = sum_l p_hl x_l.

    omega, mu (h,); X (n, N, d), x_q (n, d) -> scalar."""
    s = torch.einsum("nld,nd->nl", X, x_q)                              # (n, N)
    P = torch.softmax(omega[:, None, None] * s[None], dim=-1)          # (h, n, N)
    w = torch.einsum("h,hnl->nl", mu, P)                                # (n, N): the label weights
    a = torch.einsum("nl,nld->nd", w, X)                                # (n, d)
    return sigma2 + (psi2 * (a - x_q).pow(2).sum(-1) + sigma2 * w.pow(2).sum(-1)).mean()


# -------------------------------------------------------------------------- on saved arrays
def dgd_risk_matrix(Gamma: np.ndarray, Sigma: np.ndarray, psi2: float, sigma2: float, M: int) -> float:
    """R^DGD_M(Gamma) with B = psi^2 I, for numpy Gamma and Sigma (d, d)."""
    S = torch.as_tensor(Sigma, dtype=torch.float64)
    return float(dgd_risk(torch.as_tensor(Gamma, dtype=torch.float64), S, psi2 * torch.eye(S.shape[0], dtype=torch.float64), sigma2, M))


def trained_lsa_risks(p: np.ndarray, K: np.ndarray, Sigma: Tensor, psi2: float, sigma2: float, n_train: int,
                      lengths: Sequence[int], normalise_by_M: bool) -> np.ndarray:
    """Closed-form risk (len(lengths),) of a trained LSA (p (d+1,), K (d+1, d)) at each test length M:
    normalised by the current 1/M, or by the training 1/N fixed (p scaled by M / N)."""
    B = psi2 * torch.eye(Sigma.shape[-1], dtype=torch.float64)
    p = torch.as_tensor(p, dtype=torch.float64)
    K = torch.as_tensor(K, dtype=torch.float64)
    return np.array([float(lsa_population_risk(p if normalise_by_M else p * (M / n_train), K, Sigma, B, sigma2, M))
                     for M in lengths])


def best_scalar_dgd_risk(Sigma: np.ndarray, psi2: float, sigma2: float, N: int) -> float:
    """min over gamma of R^DGD_N(gamma I): R is quadratic in gamma, so two evaluations and the
    curvature give the minimum exactly."""
    S = torch.as_tensor(Sigma, dtype=torch.float64)
    I = torch.eye(S.shape[0], dtype=torch.float64)
    B = psi2 * I
    r0, r1, r2 = (float(dgd_risk(g * I, S, B, sigma2, N)) for g in (0.0, 1.0, 2.0))
    curv = (r2 - 2 * r1 + r0) / 2          # R(g) = r0 + lin g + curv g^2
    lin = r1 - r0 - curv
    return r0 - lin ** 2 / (4 * curv)


# ---------------------------------------------------------------------------------- predict
def predict(config) -> dict[str, Any]:
    """Closed-form predictions at the config (Sigma_main from ``cov``; the AR(rho) ones for A8)."""
    cfg = config
    d, N, s2 = cfg.d, cfg.n_context, cfg.sigma2
    B = cfg.psi2 * torch.eye(d, dtype=torch.float64)
    out: dict[str, Any] = {}
    for tag, kind in (("main", cfg.cov), ("ar", "ar"), ("iso", "iso")):
        S = covariance(d, kind, cfg.rho)
        out[f"Sigma_{tag}"] = S.numpy()
        out[f"R_star_gd_{tag}"] = float(gd_optimal_risk(S, B, s2, N))
        out[f"R_star_dgd_{tag}"] = float(dgd_optimal_risk(S, B, s2, N))
        out[f"Gamma_star_{tag}"] = gamma_star(S, B, s2, N).numpy()
        out[f"Gamma_dgd_star_{tag}"] = gamma_dgd_star(S, B, s2, N).numpy()
        out[f"dgd_envelope_{tag}"] = np.array([float(dgd_optimal_risk(S, B, s2, M)) for M in cfg.test_lengths])
    S = cfg.sigma_main
    for n_s in cfg.small_n.lengths:      # the small-N regime (Sigma_main): where GD and DGD differ
        out[f"R_star_gd_small_{n_s}"] = float(gd_optimal_risk(S, B, s2, n_s))
        out[f"R_star_dgd_small_{n_s}"] = float(dgd_optimal_risk(S, B, s2, n_s))
        out[f"Gamma_star_small_{n_s}"] = gamma_star(S, B, s2, n_s).numpy()
        out[f"Gamma_dgd_star_small_{n_s}"] = gamma_dgd_star(S, B, s2, n_s).numpy()
    for L in cfg.long_n.lengths:         # He et al.'s lengths: GD and DGD merge as 1 / L
        out[f"R_star_gd_long_{L}"] = float(gd_optimal_risk(S, B, s2, L))
        out[f"R_star_dgd_long_{L}"] = float(dgd_optimal_risk(S, B, s2, L))
    out["R_ols"] = ols_risk(d, N, s2)
    out["gamma_gd_iso"] = gamma_gd_iso(d, cfg.psi2, s2, N)
    out["gamma_dgd_iso"] = gamma_dgd_iso(d, cfg.psi2, s2, N)
    out["Gamma_pi"] = gamma_mixed(S, B, s2, cfg.mixed.lengths).numpy()
    out["Gamma_pi_gd"] = gamma_mixed_gd(S, B, s2, cfg.mixed.lengths).numpy()
    out["gamma_pi_iso"] = gamma_mixed_dgd(cfg.mixed.lengths, d, cfg.psi2, s2)
    out["pool_constant"] = pool_excess_constant(S, B, s2, N)
    xi = d / N
    out["xi"] = xi
    tau = cfg.psi2 * d  # the limits are stated for psi^2 d = 1; rescaling y by 1/sqrt(tau) gives tau R(xi, sigma^2/tau)
    out["ridge_proportional"] = float(tau * ridge_risk_proportional(xi, s2 / tau))
    out["gd_proportional"] = float(tau * gd_risk_proportional(xi, s2 / tau))
    return out


# ------------------------------------------------- Wu et al.: one-pass SGD pretraining
def power_spectrum(d: int, decay: float, dtype=torch.float64) -> Tensor:
    """Eigenvalues lambda_i = i^(-decay), i = 1..d, of a power-law covariance H (decay 0: H = I), (d,).

    The Gamma model's risk depends on H only through its spectrum when B = psi^2 I (rotate x, beta
    and Gamma together), so H is taken diagonal."""
    return torch.arange(1, d + 1, dtype=dtype) ** (-float(decay))


def sgd_base_step(H: Tensor, B: Tensor, sigma2: float, N: int, lr_scale: float) -> float:
    """eta_0 = lr_scale / R^2 with R^2 = (tr H + 2 tr H^2 / tr H)(tr G + 2 tr G^2 / tr G), G = G_N.

    One-pass SGD on (1/2)(x^T Gamma s - y)^2 moves Gamma by eta r x s^T, which contracts the residual
    along the feature phi = x s^T by 1 - eta |x|^2 |s|^2; the usual stability scale of SGD is
    R^2 = E|phi|^4 / E|phi|^2 = (E|x|^4 / E|x|^2)(E|s|^4 / E|s|^2) (x_q is independent of s).  For
    Gaussian x, E|x|^4 / E|x|^2 = tr H + 2 tr H^2 / tr H exactly; s is not Gaussian and its factor is
    the Gaussian value at its covariance G_N (an approximation, which the power-law spectrum, whose
    features are nearly one-dimensional and heavy-tailed, needs: tr H tr G_N alone is 4-5x too large a
    step there and SGD diverges)."""
    G = gd_gram(H, B, sigma2, N)
    kx = _tr(H) + 2 * _tr(H @ H) / _tr(H)
    ks = _tr(G) + 2 * _tr(G @ G) / _tr(G)
    return float(lr_scale / (kx * ks))


def sgd_schedule(T: int, eta0: float) -> np.ndarray:
    """Wu et al.'s step sizes, as reconstructed here (their body text was not reachable): a constant
    eta_0 for the first phase, halved every K = ceil(T / log2 T) steps (the geometrically decaying
    schedule of the last-iterate SGD bounds they build on), (T,)."""
    K = math.ceil(T / max(math.log2(T), 1.0))
    return eta0 * 0.5 ** (np.arange(T) // K)


def sgd_saturation(H: Tensor, B: Tensor, sigma2: float, N: int, lr_scale: float, T: int) -> float:
    """eta_0 K a_min: the first phase's step times its length times the smallest eigenvalue a_min of the
    excess's Hessian H (x) G_N (the eigenvalues are lambda_i(H) mu_j(G_N)).  Above a few units every
    direction of Gamma is learned within the first phase, the bias is spent, and the last iterate's
    excess is the variance term ~ d_eff / K (Wu et al.'s rate; d_eff = d^2 when every direction is learned)."""
    K = math.ceil(T / max(math.log2(T), 1.0))
    a_min = float(torch.linalg.eigvalsh(H)[0] * torch.linalg.eigvalsh(gd_gram(H, B, sigma2, N))[0])
    return sgd_base_step(H, B, sigma2, N, lr_scale) * K * a_min


def sgd_rate_slope(T: np.ndarray) -> float:
    """The log-log slope of the variance term 1 / K(T), K = ceil(T / log2 T), fitted (least squares)
    over the given task counts: -1 plus the log factor of the halving schedule."""
    K = np.ceil(T / np.maximum(np.log2(T), 1.0))
    x, y = np.log(T), -np.log(K)
    return float(np.polyfit(x, y, 1)[0])


# ------------------------------------------------------- He et al.'s multi-task regression
def task_priors(d: int, supports: Sequence[Sequence[int]]) -> Tensor:
    """B_k = diag(1 on S_k, 0 elsewhere), (K, d, d): beta_k ~ N(0, I) on the task's coordinates."""
    B = torch.zeros((len(supports), d, d), dtype=torch.float64)
    for k, S in enumerate(supports):
        B[k, list(S), list(S)] = 1.0
    return B


def multitask_dgd_risks(Gammas: Tensor, d: int, supports: Sequence[Sequence[int]], sigma2: float, N: int) -> Tensor:
    """Per-task risk (K,) of debiased GD yhat_k = x_q^T Gamma_k (1/N) sum_l (y_lk - ybar_k) x_l on the
    multi-task data (x ~ N(0, I_d), noiseless query): R^DGD_N(Gamma_k; I, B_k) - sigma^2."""
    I = torch.eye(d, dtype=torch.float64)
    return dgd_risk(Gammas, I, task_priors(d, supports), sigma2, N) - sigma2


def multitask_pair_optimum(d: int, supports: Sequence[Sequence[int]], sigma2: float, N: int) -> Tensor:
    """Per-task optimum (K,) of debiased GD, each task its own Gamma_k: R*_DGD(N; I, B_k) - sigma^2
    (Gamma_D,k* vanishes off S_k: the other coordinates carry no signal for task k)."""
    I = torch.eye(d, dtype=torch.float64)
    return dgd_optimal_risk(I, task_priors(d, supports), sigma2, N) - sigma2


def multitask_head_optimum(heads: int, d: int, supports: Sequence[Sequence[int]], sigma2: float, N: int,
                           iterations: int = 5) -> float:
    """The best mean per-task risk of ``heads`` softmax heads in the first-order (small-logit) expansion.

    Output k of H heads is sum_h mu_hk [ybar_k + (1/N) sum_l (y_lk - ybar_k) x_l^T KQ_h x_q] + O(KQ^2):
    debiasing task k needs sum_h mu_hk = 0, and then Gamma_k = sum_h mu_hk KQ_h,xx^T lies in the span of
    the H - 1 differences KQ_h - KQ_H.  With H >= K + 1 heads any K matrices are reachable (one head
    shared by every task is enough), so the optimum is the per-task one; with 2 <= H <= K the K
    preconditioners share H - 1 matrices, Gamma_k = sum_j C_kj D_j, and the minimum over (C, D) is found
    by L-BFGS from a deterministic start (float64, strong-Wolfe line search, ``iterations`` restarts of
    the optimiser's memory).  H = 1 cannot debias at all (returns NaN; see the one-head family)."""
    K = len(supports)
    if heads < 2:
        return float("nan")
    if heads >= K + 1:
        return float(multitask_pair_optimum(d, supports, sigma2, N).mean())
    I = torch.eye(d, dtype=torch.float64)
    B = task_priors(d, supports)
    star = gamma_dgd_star(I, B, sigma2, N)                                # (K, d, d)
    J = heads - 1
    D = torch.stack([star[j:: J].mean(0) for j in range(J)]).requires_grad_(True)   # (J, d, d)
    C = torch.zeros((K, J), dtype=torch.float64)
    C[torch.arange(K), torch.arange(K) % J] = 1.0
    C.requires_grad_(True)
    opt = torch.optim.LBFGS([D, C], max_iter=500, tolerance_grad=1e-13, tolerance_change=1e-16,
                            line_search_fn="strong_wolfe")

    def objective():
        opt.zero_grad()
        risk = (dgd_risk(torch.einsum("kj,jab->kab", C, D), I, B, sigma2, N) - sigma2).mean()
        risk.backward()
        return risk

    with torch.enable_grad():
        for _ in range(iterations):
            opt.step(objective)
        return float(objective().detach())


def multitask_no_sharing_risk(heads: int, n_tasks: int, pair: float, single: float, zero: float) -> float:
    """The best mean per-task risk when no head serves two tasks: every task gets a pair (risk ``pair``),
    one head (``single``: He et al.'s one-head pattern, no debiasing) or none (``zero``: yhat = 0).
    Filling single heads first, then upgrading to pairs, is optimal when zero - single >= single - pair
    (checked here; true in He et al.'s set-up, 3.0 against 0.54)."""
    if not zero - single >= single - pair:
        raise ValueError(f"the greedy allocation needs zero - single >= single - pair, got {zero}, {single}, {pair}")
    singles = min(heads, n_tasks)
    pairs = min(n_tasks, max(0, heads - n_tasks))
    return (pairs * pair + (singles - pairs) * single + (n_tasks - singles) * zero) / n_tasks
