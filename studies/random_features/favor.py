"""FAVOR+ (Part 2): random-feature estimators of the softmax kernel SM(x, y) = exp(x^T y).

Reference: Choromanski et al., "Rethinking Attention with Performers", ICLR 2021 (Lemma 1, Lemma 2,
the orthogonal-features theorem).  The closed forms below were re-derived for this study (chapter,
section "FAVOR+") and are checked against Monte Carlo by the study's checks; the exact MSE of
orthogonal positive features (`mse_orf_positive`) and the pitfall biases (`bias_unfixed_qr`,
`bias_fixed_norms`) are derived here, not quoted.

With omega ~ N(0, I_d), z = x + y, Delta = x - y:

- trigonometric  phi(x) = e^{|x|^2/2} m^{-1/2} [sin w_r.x, cos w_r.x]_r, estimate
  e^{(|x|^2+|y|^2)/2} (1/m) sum_r cos(w_r . Delta);
- positive       phi(x) = e^{-|x|^2/2} m^{-1/2} [exp(w_r.x)]_r, estimate e^{-(|x|^2+|y|^2)/2} (1/m) sum_r exp(w_r . z);
- hyperbolic     phi(x) = e^{-|x|^2/2} (2m)^{-1/2} [exp(w_r.x), exp(-w_r.x)]_r, estimate
  e^{-(|x|^2+|y|^2)/2} (1/m) sum_r cosh(w_r . z).

Orthogonal random features (ORF): within a block of at most d features the directions are the
rows of a Haar orthogonal matrix and the norms are independent chi_d, so every omega_r is exactly
N(0, I) and the estimators stay unbiased.  Haar matrices come from the QR decomposition of a
Gaussian matrix with the signs of R's diagonal moved into Q.  ``sign_fix=False`` and
``norms="sqrt_d"`` reproduce the defaults of the official code (rows of ``Q^T`` without the sign
fix; every row rescaled to sqrt(d)), whose biases the chapter measures.

Shapes: ``R`` Monte-Carlo draws (independent feature sets), ``m`` features, ``d`` dimension,
``s`` settings (pairs x, y), ``l``/``j`` query/key tokens.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from scipy import special
from torch import Tensor

from workbench.attention import stable_softmax
from workbench.streams import Stream


# --------------------------------------------------------------------------------- samplers
# Every sampler takes a `workbench.streams.Stream` and the indices of the Monte-Carlo draws: draw r
# is member r of the stream, so a draw does not depend on how the draws are chunked, and the
# first R draws of a longer run are the R draws of a shorter one.
def _draws(draws) -> range | list[int]:
    return range(draws) if isinstance(draws, int) else draws


def iid_features(st: Stream, draws, m: int, d: int, *, device=None, dtype=torch.float64) -> Tensor:
    """Independent sets of m i.i.d. N(0, I_d) features, one per draw index: (R, m, d)."""
    return st.normal((m, d), members=_draws(draws), device=device, dtype=dtype)


def orthogonal_directions(st: Stream, draws, m: int, d: int, *, device=None,
                          dtype=torch.float64) -> tuple[Tensor, Tensor]:
    """Unit directions of m orthogonal features in blocks of d, from one QR per block: (R, m, d) twice.

    Block b is ``Q^T`` of ``Q, R' = qr(G_b)`` for a d x d Gaussian G_b (stream ``qr``; the last
    block keeps its first rows).  Returns (sign-fixed, unfixed): the first multiplies column c of
    Q by sign(R'_cc), which makes Q Haar distributed; the second is Q as LAPACK returns it.
    """
    blocks = math.ceil(m / d)
    G = st.child("qr").normal((blocks, d, d), members=_draws(draws), device=device, dtype=dtype)   # (R, b, d, d)
    R = G.shape[0]
    Q, Rr = torch.linalg.qr(G)
    fixed = Q * torch.sign(Rr.diagonal(dim1=-2, dim2=-1))[..., None, :]      # column c times sign(R'_cc)
    rows = lambda A: A.transpose(-1, -2).reshape(R, blocks * d, d)[:, :m]    # (R, m, d)
    return rows(fixed), rows(Q)


def chi_norms(st: Stream, draws, m: int, d: int, *, device=None, dtype=torch.float64) -> Tensor:
    """Norms of fresh Gaussian vectors (chi_d distributed; stream ``chi``): (R, m, 1)."""
    return st.child("chi").normal((m, d), members=_draws(draws), device=device, dtype=dtype).norm(dim=-1, keepdim=True)


def orthogonal_features(st: Stream, draws, m: int, d: int, *, sign_fix: bool = True,
                        norms: Literal["chi", "sqrt_d"] = "chi", device=None, dtype=torch.float64) -> Tensor:
    """Sets of m orthogonal random features in blocks of d, one per draw index: (R, m, d).

    ``sign_fix=True, norms="chi"`` is the unbiased ORF construction (every feature exactly
    N(0, I)); ``sign_fix=False`` reproduces the official code's QR without sign correction and
    ``norms="sqrt_d"`` its ``scaling=1`` (every row of norm sqrt(d)).
    """
    fixed, unfixed = orthogonal_directions(st, draws, m, d, device=device, dtype=dtype)
    rows = fixed if sign_fix else unfixed
    if norms == "chi":
        return rows * chi_norms(st, draws, m, d, device=device, dtype=dtype)
    if norms == "sqrt_d":
        return rows * math.sqrt(d)
    raise ValueError(f"norms must be 'chi' or 'sqrt_d', got {norms!r}")


# ------------------------------------------------------------------------------ feature maps
def phi_trig(x: Tensor, omega: Tensor) -> Tensor:
    """Trigonometric features: x (..., L, d), omega (..., m, d) -> (..., L, 2m)."""
    proj = x @ omega.transpose(-1, -2)                                        # (..., L, m)
    scale = torch.exp(x.pow(2).sum(-1, keepdim=True) / 2) / math.sqrt(omega.shape[-2])
    return scale * torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


def phi_positive(x: Tensor, omega: Tensor) -> Tensor:
    """Positive features (Lemma 1): x (..., L, d), omega (..., m, d) -> (..., L, m)."""
    proj = x @ omega.transpose(-1, -2)
    return torch.exp(proj - x.pow(2).sum(-1, keepdim=True) / 2) / math.sqrt(omega.shape[-2])


def phi_hyperbolic(x: Tensor, omega: Tensor) -> Tensor:
    """Hyperbolic positive features: x (..., L, d), omega (..., m, d) -> (..., L, 2m)."""
    proj = x @ omega.transpose(-1, -2)
    half = x.pow(2).sum(-1, keepdim=True) / 2
    return torch.cat([torch.exp(proj - half), torch.exp(-proj - half)], dim=-1) / math.sqrt(2 * omega.shape[-2])


FEATURE_MAPS = {"trig": phi_trig, "pos": phi_positive, "hyp": phi_hyperbolic}


def estimates(kind: str, x: Tensor, y: Tensor, omega: Tensor) -> Tensor:
    """phi(x) . phi(y) for every draw and every setting: x, y (s, d), omega (R, m, d) -> (R, s).

    Written through the projections (equal to the feature-map inner product, see the tests).
    """
    nx, ny = x.pow(2).sum(-1), y.pow(2).sum(-1)                               # (s,)
    if kind == "trig":
        proj = torch.einsum("rmd,sd->rsm", omega, x - y)                      # (R, s, m)
        return torch.exp((nx + ny) / 2) * torch.cos(proj).mean(-1)
    proj = torch.einsum("rmd,sd->rsm", omega, x + y)
    if kind == "pos":
        return torch.exp(-(nx + ny) / 2) * torch.exp(proj).mean(-1)
    if kind == "hyp":
        return torch.exp(-(nx + ny) / 2) * torch.cosh(proj).mean(-1)
    raise ValueError(f"unknown estimator {kind!r}")


# ----------------------------------------------------------------------------- closed forms
def softmax_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SM(x, y) = exp(x . y) over the last axis."""
    return np.exp(np.sum(x * y, axis=-1))


def mse_iid(kind: str, x: np.ndarray, y: np.ndarray, m: int) -> np.ndarray:
    """MSE of the i.i.d. estimators (Lemma 2 and the hyperbolic variant), derived in the chapter:

    trig: e^{|z|^2} SM^{-2} (1 - e^{-|Delta|^2})^2 / (2m);  pos: e^{|z|^2} SM^2 (1 - e^{-|z|^2}) / m;
    hyp:  (1 - e^{-|z|^2}) / 2 * MSE_pos.
    """
    z2, D2, sm = np.sum((x + y) ** 2, -1), np.sum((x - y) ** 2, -1), softmax_kernel(x, y)
    if kind == "trig":
        return np.exp(z2) * sm ** -2 * (1 - np.exp(-D2)) ** 2 / (2 * m)
    pos = np.exp(z2) * sm ** 2 * (-np.expm1(-z2)) / m
    if kind == "pos":
        return pos
    if kind == "hyp":
        return -np.expm1(-z2) / 2 * pos
    raise ValueError(f"unknown estimator {kind!r}")


def block_sizes(m: int, d: int) -> list[int]:
    """Sizes of the orthogonal blocks: d, d, ..., remainder."""
    return [d] * (m // d) + ([m % d] if m % d else [])


def orthogonal_pair_moment(s2: float, d: int, terms: int = 80) -> float:
    """E[exp(w_1 . z) exp(w_2 . z)] for two orthogonal features with chi_d norms, |z|^2 = s2.

    Derived in the chapter: sum_{p,q} [Gamma(a+p) Gamma(a+q) / (Gamma(a) Gamma(a+p+q))]
    (s2/2)^{p+q} / (p! q!), a = d/2.  Without the bracket (i.i.d. features) the sum is e^{s2}.
    """
    a = d / 2
    p = np.arange(terms)[:, None]
    q = np.arange(terms)[None, :]
    log_ratio = special.gammaln(a + p) + special.gammaln(a + q) - special.gammaln(a) - special.gammaln(a + p + q)
    log_term = log_ratio + (p + q) * math.log(max(s2 / 2, 1e-300)) - special.gammaln(p + 1) - special.gammaln(q + 1)
    if s2 == 0:
        return 1.0
    return float(np.exp(log_term).sum())


def mse_orf_positive(x: np.ndarray, y: np.ndarray, m: int, d: int) -> float:
    """Exact MSE of the positive estimator with orthogonal (Haar, chi_d) features in blocks of d.

    MSE = c^2 / m^2 [ m (e^{2|z|^2} - e^{|z|^2}) + n_pairs (C(|z|^2) - e^{|z|^2}) ], c = e^{-(|x|^2+|y|^2)/2},
    n_pairs = sum over blocks of b (b - 1), C = `orthogonal_pair_moment`.
    """
    s2 = float(np.sum((x + y) ** 2))
    c2 = math.exp(-float(np.sum(x ** 2) + np.sum(y ** 2)))
    pairs = sum(b * (b - 1) for b in block_sizes(m, d))
    var_single = math.exp(2 * s2) - math.exp(s2)
    return c2 / m ** 2 * (m * var_single + pairs * (orthogonal_pair_moment(s2, d) - math.exp(s2)))


def orf_theorem_bound(x: np.ndarray, y: np.ndarray, m: int, d: int) -> float:
    """Choromanski et al.'s bound (quoted; m <= d): MSE_ort <= MSE_iid - 2(m-1)/(m(d+2)) (SM - e^{-(|x|^2+|y|^2)/2})^2."""
    sm = float(softmax_kernel(x, y))
    c = math.exp(-(float(np.sum(x ** 2) + np.sum(y ** 2))) / 2)
    return float(mse_iid("pos", x, y, m)) - 2 * (m - 1) / (m * (d + 2)) * (sm - c) ** 2


def bias_unfixed_qr(z_e1: np.ndarray | float, m: int, d: int) -> np.ndarray:
    """Relative bias of the positive estimator with Householder-QR features without the sign fix,
    for z = x + y parallel to +-e_1 (``z_e1`` = <z, e_1>, so |z_e1| = |z|).

    Derived in the chapter: in each block the first feature is a Gaussian vector whose first
    coordinate is forced negative (LAPACK's Householder convention makes Q_11 < 0), and the first
    coordinate of every other feature keeps its exact N(0, 1) law, so for z along e_1,
    E[estimate] / SM - 1 = n_blocks (2 Phi(-z_1) - 1) / m.  For other directions the other columns
    carry sign biases too (measured in the chapter); this formula does not apply there.
    """
    blocks = len(block_sizes(m, d))
    return blocks * (2 * special.ndtr(-np.asarray(z_e1, dtype=float)) - 1) / m


def bias_fixed_norms(z_norm: np.ndarray | float, d: int) -> np.ndarray:
    """Relative bias of the positive estimator when every feature has norm sqrt(d) (the official
    code's ``scaling=1``): E[exp(sqrt(d) u . z)] = Gamma(nu+1) (2/t)^nu I_nu(t), t = sqrt(d)|z|,
    nu = d/2 - 1, for u uniform on the sphere; divided by e^{|z|^2/2}, minus 1."""
    s = np.asarray(z_norm, dtype=float)
    nu, t = d / 2 - 1, math.sqrt(d) * s
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mgf = special.gammaln(nu + 1) + nu * np.log(2 / t) + np.log(special.ive(nu, t)) + t
    return np.where(s > 0, np.expm1(log_mgf - s ** 2 / 2), 0.0)


# -------------------------------------------------------------------------------- attention
def softmax_attention(Q: Tensor, K: Tensor, V: Tensor) -> Tensor:
    """Exact softmax attention with the 1/sqrt(d) temperature: (L, d), (L, d), (L, v) -> (L, v)."""
    d = Q.shape[-1]
    return stable_softmax(Q @ K.transpose(-1, -2) / math.sqrt(d)) @ V          # (l, j) @ (j, v)


def favor_attention(Q: Tensor, K: Tensor, V: Tensor, omega: Tensor) -> Tensor:
    """FAVOR+ attention D^{-1} phi(Q') (phi(K')^T V) with positive features, Q' = Q / d^{1/4}.

    No stabiliser and no epsilon (the official code adds both; they bias the estimate).
    Q, K (L, d), V (L, v), omega (R, m, d) -> (R, L, v).
    """
    d = Q.shape[-1]
    phq = phi_positive(Q / d ** 0.25, omega)                                  # (R, l, m)
    phk = phi_positive(K / d ** 0.25, omega)                                  # (R, j, m)
    num = phq @ (phk.transpose(-1, -2) @ V)                                   # (R, l, v): linear in L
    den = phq @ phk.sum(-2, keepdim=True).transpose(-1, -2)                   # (R, l, 1)
    return num / den


def favor_attention_mse(Q: Tensor, K: Tensor, V: Tensor, m: int, *, centred: bool = True) -> float:
    """Leading-order (delta method, large m) MSE of FAVOR+ attention with i.i.d. positive features,
    summed over value coordinates and averaged over queries (derived in the chapter):

        (1/m) mean_l (1/D_l^2) sum_{j,j'} A_lj A_lj' (e^{(q_l + k_j).(q_l + k_j')} - 1) (v_j - o_l).(v_j' - o_l),

    with q = Q / d^{1/4}, k = K / d^{1/4}, A = exp(q k^T), D_l = sum_j A_lj, o = exact output.
    ``centred=False`` is the rival of the check: the normaliser D_l treated as exact, so v_j
    replaces v_j - o_l (the error of the numerator alone, divided by D_l).
    """
    return attention_mse_coefficients(Q, K, V, centred=centred)[0] / m


def attention_mse_coefficients(Q: Tensor, K: Tensor, V: Tensor, *, centred: bool = True) -> tuple[float, float]:
    """(M_1, M_2) of MSE = M_1 / m + M_2 / m^2 + O(1/m^3) for FAVOR+ attention with i.i.d.
    positive features (chapter, eq. rf-attn-mse2), averaged over queries.

    The error of query l is exactly Z / (D (1 + delta)) with Z = sum_j A_j eps_j w_j, w_j = v_j - o,
    delta = sum_j a_j eps_j, a_j = A_j / D, and eps_j the mean over the m features of
    eta_j = f_j / A_j - 1.  Every moment of the features is closed form,
    E prod_{j in S} (1 + eta_j) = prod_{pairs in S} E_jk with E_jk = e^{(q + k_j).(q + k_k)}, so
    C_jk = E_jk - 1 and T_jkl = E_jk E_jl E_kl - E_jk - E_jl - E_kl + 2.  Expanding (1 + delta)^-2,

        M_1 = sum a_j a_k G_jk C_jk,    G_jk = w_j . w_k,
        M_2 = -2 sum a_j a_k a_l G_jk T_jkl + 3 (M_1 S + 2 sum a_j a_k G_jk c_j c_k),
        S = sum a_j a_k C_jk,   c_j = sum_k a_k C_jk.

    ``centred=False`` (the rival, numerator error alone) gives M_1 with v_j for w_j and M_2 = NaN.
    """
    d = Q.shape[-1]
    q, k = Q / d ** 0.25, K / d ** 0.25
    A = torch.exp(q @ k.T)                                                    # (l, j)
    D = A.sum(-1)                                                             # (l,)
    o = (A @ V) / D[:, None]                                                  # (l, v)
    a = A / D[:, None]                                                        # (l, j)
    s = q[:, None, :] + k[None, :, :]                                         # (l, j, d): q_l + k_j
    E = torch.exp(torch.einsum("ljd,lkd->ljk", s, s))                         # (l, j, j')
    C = E - 1
    w = V[None, :, :] - o[:, None, :] if centred else V[None, :, :].expand(len(q), -1, -1)   # (l, j, v)
    G = torch.einsum("ljv,lkv->ljk", w, w)                                    # (l, j, j')
    M1 = torch.einsum("lj,lk,ljk->l", a, a, C * G)                            # (l,)
    if not centred:
        return float(M1.mean()), float("nan")
    T = (E[:, :, :, None] * E[:, :, None, :] * E[:, None, :, :]
         - E[:, :, :, None] - E[:, :, None, :] - E[:, None, :, :] + 2)        # (l, j, k, n)
    c = torch.einsum("ljk,lk->lj", C, a)                                      # (l, j)
    S = torch.einsum("lj,lk,ljk->l", a, a, C)                                 # (l,)
    M2 = (-2 * torch.einsum("lj,lk,ln,ljk,ljkn->l", a, a, a, G, T)
          + 3 * (M1 * S + 2 * torch.einsum("lj,lk,ljk,lj,lk->l", a, a, G, c, c)))
    return float(M1.mean()), float(M2.mean())


# ------------------------------------------------------------------- Monte-Carlo resolution
def _single_feature_moments(kind: str, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Raw moments E[Y^k], k = 1..4, of one feature's contribution Y (the estimate with m = 1)."""
    nx, ny = np.sum(x ** 2, -1), np.sum(y ** 2, -1)
    if kind == "trig":
        v2, c = np.sum((x - y) ** 2, -1), np.exp((nx + ny) / 2)
        E = lambda j: np.exp(-j * j * v2 / 2)          # E cos(j v), v ~ N(0, |Delta|^2)
    else:
        s2, c = np.sum((x + y) ** 2, -1), np.exp(-(nx + ny) / 2)
        E = lambda j: np.exp(j * j * s2 / 2)           # E exp(j u) = E cosh(j u), u ~ N(0, |z|^2)
    if kind == "pos":
        return [c ** k * E(k) for k in range(1, 5)]
    # cos^k and cosh^k in harmonics: the same identities hold for both
    m1 = E(1)
    m2 = (1 + E(2)) / 2
    m3 = (3 * E(1) + E(3)) / 4
    m4 = (3 + 4 * E(2) + E(4)) / 8
    return [c * m1, c ** 2 * m2, c ** 3 * m3, c ** 4 * m4]


def mc_mse_se(kind: str, x: np.ndarray, y: np.ndarray, m: int, draws: int) -> np.ndarray:
    """Standard error of a Monte-Carlo estimate of the MSE of an i.i.d. estimator from ``draws``
    draws: sqrt((E[(S^ - S)^4] - MSE^2) / draws), with the fourth central moment of a mean of m
    i.i.d. terms, (mu_4 + 3 (m - 1) sigma^4) / m^3, from the single-feature moments."""
    r1, r2, r3, r4 = _single_feature_moments(kind, x, y)
    var = r2 - r1 ** 2
    mu4 = r4 - 4 * r3 * r1 + 6 * r2 * r1 ** 2 - 3 * r1 ** 4
    fourth = (mu4 + 3 * (m - 1) * var ** 2) / m ** 3
    mse = var / m
    return np.sqrt(np.maximum(fourth - mse ** 2, 0.0) / draws)
