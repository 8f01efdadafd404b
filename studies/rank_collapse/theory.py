"""Closed forms of the rank-collapse study: what the theory predicts, computed without simulation.

References (see the book chapter for the derivations):

* Dong, Cordonnier & Loukas (2021), *Attention is not all you need: pure attention loses rank
  doubly exponentially with depth*, ICML: the path decomposition (Thm 2.1, Claim 3.1 with skips)
  and the cubic one-layer contraction behind Thm 2.2.  The explicit bound `explicit_bound` is our
  own derivation of that contraction with computable constants (the paper's gamma is not used).
* Noci et al. (2022), *Signal propagation in transformers*, NeurIPS: the uniform-attention growth
  law of the token mean, `noci_mean_growth`, and the 1/sqrt(L) branch scaling; its almost-sure
  counterpart `mean_lyapunov_exponent` (our addition) sets how fast SAN + skip still loses rank.
* Geshkovski, Letrouit, Polyanskiy & Rigollet (2023), *A mathematical perspective on
  Transformers*: the interaction energy `cluster_energy`, nondecreasing along the sphere dynamics.

Everything here is numpy/scipy; nothing draws random numbers.
"""
from __future__ import annotations

import math
from itertools import product

import numpy as np
from scipy.special import comb, expit, roots_genlaguerre, roots_hermitenorm

# ------------------------------------------------------------------------------ cubic law
CUBIC_EXPONENT = 3.0
"""One attention layer maps res(X) = O(eps) to res(SA(X)) = O(eps^3) (Dong et al. Sec. 2)."""
SKIP_EXPONENT = 1.0
"""With a skip, the length-0 path carries res(X) unchanged: res(X + alpha SA(X)) = res(X) + O(eps^3)."""


def two_layer_exponent(layers: int = 2) -> float:
    """3^L: L cubic contractions in a row."""
    return 3.0 ** layers


def explicit_bound(n_tokens, max_logit_deviation, residual_norm, value_norm):
    """Explicit one-layer bound (single head) on the mean-centred residual, derived in the chapter:

        ||res(SA(X))||_{1,inf} <= 2 (1 - 1/n) sqrt(n) (exp(2 eps_E) - 1) ||R||_{1,inf} ||W||_{1,inf}

    with R = (I - J) X the centred input, E = R A R^T the only logit part that is not constant along
    a row, eps_E = max_ij |E_ij| (<= ||A||_2 max_i ||R_i||^2) and W = W_V W_O the value map.
    Broadcasts over arrays.
    """
    n = np.asarray(n_tokens, dtype=float)
    return (2.0 * (1.0 - 1.0 / n) * np.sqrt(n) * np.expm1(2.0 * np.asarray(max_logit_deviation))
            * np.asarray(residual_norm) * np.asarray(value_norm))


EXPLICIT_BOUND_TIGHT = 1.0 / (2.0 * math.sqrt(2.0))
"""The limit of measured / `explicit_bound` at n = 2, d = 1 as the residual vanishes (derived in the
chapter): there res(SA(X)) / (||R|| |W|) = |1 - p - q| <= tanh(eps_E) (attained at a zero token
mean), against the bound's sqrt(2) (e^{2 eps_E} - 1), so the ratio is 1 / (sqrt 2 (e^{2 eps_E} + 1))
-> 1/(2 sqrt 2): the softmax sandwich gives away a factor 2 and the centring and column-sum factors
2 (1 - 1/n) sqrt(n) a factor sqrt 2, and nothing else."""


def centring_norm(n_tokens: int) -> float:
    """||I - J||_1 = ||I - J||_inf = 2 (1 - 1/n), hence also its composite norm."""
    return 2.0 * (1.0 - 1.0 / n_tokens)


QK_GRADIENT_EXPONENT = 2.0
"""|dL/dW_Q|, |dL/dW_K| = O(eps^2) at X = 1 x^T + eps R (exactly 0 at eps = 0), derived in the chapter."""


# ------------------------------------------------------------------------------ paths
def path_length_counts(depth: int, heads: int) -> np.ndarray:
    """|P_k| = binom(L, k) H^k paths of length k = 0..L through a skip-connected SAN (Claim 3.1)."""
    k = np.arange(depth + 1)
    return np.array([math.comb(depth, int(j)) * heads ** int(j) for j in k], dtype=np.int64)


def path_length_distribution(depth: int, heads: int) -> np.ndarray:
    """Fraction of the (H+1)^L paths that have length k: Binomial(L, H/(H+1))."""
    k = np.arange(depth + 1)
    p = heads / (heads + 1.0)
    return comb(depth, k) * p ** k * (1 - p) ** (depth - k)


def enumerate_paths(depth: int, heads: int, skip: bool) -> list[tuple[int, ...]]:
    """All paths (h_1, ..., h_L): h in 1..H is a head, h = 0 the skip (only when ``skip``)."""
    choices = range(0 if skip else 1, heads + 1)
    return list(product(choices, repeat=depth))


ARCHITECTURES = [  # (name, heads, layers), as in the official paths_counting notebook
    ("DistilBERT", 12, 6), ("MobileBERT", 4, 12), ("BERT-base", 12, 12), ("BERT-large", 16, 24),
    ("ViT-H", 16, 32), ("T5-3B", 32, 24), ("T5-11B", 128, 24), ("GPT-3", 96, 96), ("DeiT-T", 3, 12),
]


# ------------------------------------------------------------------------------ Noci et al.
def noci_mean_growth(alpha: float, value_scale: float, depth) -> np.ndarray:
    """E ||m_L||^2 / ||m_0||^2 = (1 + alpha^2 sigma_v^2)^L for uniform attention with skips.

    With P = J, X_{l+1} = X_l + alpha J X_l W_l splits into R_{l+1} = R_l (exactly) and
    m_{l+1} = (I + alpha W_l)^T m_l; for an isotropic W_l with E[W W^T] = sigma_v^2 I the cross term
    vanishes in expectation and each layer multiplies E||m||^2 by 1 + alpha^2 sigma_v^2.
    """
    return (1.0 + alpha ** 2 * value_scale ** 2) ** np.asarray(depth, dtype=float)


def noci_relative_residual(residual_sq, mean_sq, n_tokens: int, alpha: float, value_scale: float, depth):
    """Frobenius relative residual under uniform attention with E||m_L||^2 in place of ||m_L||^2:

        rho_F^2 = ||R||_F^2 / (||R||_F^2 + n ||m_0||^2 (1 + alpha^2 sigma_v^2)^L).
    """
    grow = noci_mean_growth(alpha, value_scale, depth)
    residual_sq = np.asarray(residual_sq, dtype=float)
    return np.sqrt(residual_sq / (residual_sq + n_tokens * np.asarray(mean_sq) * grow))


def noci_additive_growth(alpha: float, value_scale: float, depth) -> np.ndarray:
    """The rival of `noci_mean_growth` in which the branches add their variance without compounding
    (each branch sees the input's mean, not the grown stream): 1 + L alpha^2 sigma_v^2."""
    return 1.0 + np.asarray(depth, dtype=float) * alpha ** 2 * value_scale ** 2


def mean_lyapunov_exponent(d_model: int, alpha: float, value_scale: float, nodes: int = 60) -> float:
    """lambda = E log ||e_1 (I + alpha W)||^2, W = sum_h W_V,h W_O,h at `init_transformer`'s scales.

    Once attention is rank one (P = 1 s^T), a skip layer leaves the residual unchanged and maps the
    token mean m -> (I + alpha W)^T m (as in `noci_mean_growth`), so log ||m_L||^2 grows like lambda L
    for almost every network (Furstenberg-Kesten), not like L log(1 + alpha^2 sigma_v^2) (the log of
    the expectation, which exceeds lambda by Jensen).  W's law is invariant under rotations, so
    e_1 W = tau g with g ~ N(0, I_d) and tau^2 = sigma_v^2 chi2_d / d^2 (each W_V row has variance
    sigma_v^2 / d, W_O entries 1/(k h), k h = d); then ||e_1 (I + alpha W)||^2 =
    (1 + alpha tau g_1)^2 + alpha^2 tau^2 chi2_{d-1}, a three-dimensional integral done by Gauss
    quadrature (generalised Laguerre for the chi-squares, Hermite for g_1).
    """
    def chi2(dof):  # nodes and weights of the chi-squared law with ``dof`` degrees of freedom
        if dof == 0:
            return np.zeros(1), np.ones(1)
        y, w = roots_genlaguerre(nodes, dof / 2 - 1)
        return 2 * y, w / w.sum()

    U, wu = chi2(d_model)
    Q, wq = chi2(d_model - 1)
    g, wg = roots_hermitenorm(nodes)
    wg = wg / wg.sum()
    tau = np.sqrt(value_scale ** 2 * U / d_model ** 2)[:, None, None]
    f = np.log((1 + alpha * tau * g[None, :, None]) ** 2 + alpha ** 2 * tau ** 2 * Q[None, None, :])
    return float(np.einsum("u,g,q,ugq->", wu, wg, wq, f))


def skip_decay_rate(d_model: int, alpha: float, value_scale: float) -> float:
    """d log10 rho_F / dl of SAN + skip once attention is rank one: rho_F ~ ||R||_F / (sqrt(n) ||m_l||)
    with R frozen, so -lambda / (2 ln 10) decades per layer (`mean_lyapunov_exponent`)."""
    return -mean_lyapunov_exponent(d_model, alpha, value_scale) / (2 * math.log(10))


# ------------------------------------------------------------------------------ Geshkovski et al.
def cluster_energy(x: np.ndarray, beta) -> np.ndarray:
    """E_beta = 1/(2 beta n^2) sum_ij exp(beta <x_i, x_j>), x (..., n, d); beta broadcasts over (...)."""
    beta = np.asarray(beta, dtype=float)
    gram = np.einsum("...id,...jd->...ij", x, x)
    n = x.shape[-2]
    return np.exp(beta[..., None, None] * gram).sum((-1, -2)) / (2 * beta * n * n)


# ------------------------------------------------------------------------------ two-token toy
def two_token_recursion(x1, x2, kappa, depth: int, skip: bool, alpha: float = 1.0):
    """The exact recursion of a one-head, one-dimensional SAN on two tokens (derived in the chapter).

    Logits kappa x_i x_j, value map 1.  Token 1 puts weight p = sigmoid(kappa x1 (x2 - x1)) on
    token 2, token 2 puts q = sigmoid(kappa x2 (x1 - x2)) on token 1:

        (PX)_1 = x1 + p (x2 - x1),   (PX)_2 = x2 + q (x1 - x2),
        x_i <- (PX)_i                (no skip),
        x_i <- x_i + alpha (PX)_i    (skip).

    Hence delta = x1 - x2 obeys delta <- (1 - p - q) delta = (sigmoid(a + b) - sigmoid(a - b)) delta
    with a = kappa m delta, b = kappa delta^2 / 2.  Returns the states (..., depth + 1, 2).
    """
    x1, x2 = np.asarray(x1, dtype=float), np.asarray(x2, dtype=float)
    kappa = np.asarray(kappa, dtype=float)
    states = [np.stack([x1, x2], axis=-1)]
    for _ in range(depth):
        p = expit(kappa * x1 * (x2 - x1))
        q = expit(kappa * x2 * (x1 - x2))
        y1, y2 = x1 + p * (x2 - x1), x2 + q * (x1 - x2)
        if skip:
            x1, x2 = x1 + alpha * y1, x2 + alpha * y2
        else:
            x1, x2 = y1, y2
        states.append(np.stack([x1, x2], axis=-1))
    return np.stack(states, axis=-2)


def frozen_token_boundary(theta: np.ndarray, depth: int) -> np.ndarray:
    """Heuristic edge of the no-collapse region of the two-token SAN (tokens of opposite signs).

    For x1 x2 < 0 both attention weights to the other token are sigmoids of negative logits,
    p, q ~ exp(-kappa |x_i| |x1 - x2|); the token with the smaller |x_i| leaves its place after
    about 1 / max(p, q) layers.  Collapse within ``depth`` layers therefore needs
    kappa min(|x1|, |x2|) |x1 - x2| <~ log(depth): on the unit circle x = (cos theta, sin theta),
    kappa*(theta) = log(depth) / (min(|cos theta|, |sin theta|) |cos theta - sin theta|).
    An order-of-magnitude estimate, not an exact boundary; NaN where x1 x2 >= 0.
    """
    c, s = np.cos(theta), np.sin(theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = math.log(depth) / (np.minimum(np.abs(c), np.abs(s)) * np.abs(c - s))
    return np.where(c * s < 0, kappa, np.nan)


def two_token_relative_residual(states: np.ndarray) -> np.ndarray:
    """||res_mean(X)||_{1,inf} / ||X||_{1,inf} for X = (x1, x2)^T in R^{2 x 1}: |x1 - x2| / sqrt(2 (|x1| + |x2|) max|x_i|)."""
    x1, x2 = states[..., 0], states[..., 1]
    num = np.abs(x1 - x2) / math.sqrt(2.0)  # sqrt(col sum |d| * row max |d|/2)
    den = np.sqrt((np.abs(x1) + np.abs(x2)) * np.maximum(np.abs(x1), np.abs(x2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


# ------------------------------------------------------------------------------ predict
def predict(config) -> dict:
    """What the theory says at ``config``, without simulating (closed forms only)."""
    paths, noci = config.paths, config.noci
    return {
        "cubic_exponent": CUBIC_EXPONENT,
        "skip_exponent": SKIP_EXPONENT,
        "two_layer_exponent": two_layer_exponent(2),
        "depth_exponent": CUBIC_EXPONENT,
        "explicit_bound_tight": EXPLICIT_BOUND_TIGHT,
        "skip_decay_rate": skip_decay_rate(config.d_model, config.alpha, config.value_scale),
        "full_model_exponent": SKIP_EXPONENT if config.scan.skip else CUBIC_EXPONENT,
        "qk_gradient_exponent": QK_GRADIENT_EXPONENT,
        "alpha": config.alpha,
        "centring_norm": centring_norm(config.n_tokens),
        "path_counts_noskip": np.eye(paths.depth + 1, dtype=np.int64)[-1] * paths.heads ** paths.depth,
        "path_counts_skip": path_length_counts(paths.depth, paths.heads),
        "path_length_distribution": {name: path_length_distribution(L, H) for name, H, L in ARCHITECTURES},
        "noci_alphas": noci.alphas,
        "noci_mean_growth": np.array([noci_mean_growth(a, noci.value_scale, np.arange(noci.depth + 1))
                                      for a in noci.alphas]),
    }


# ------------------------------------------------------------------------------ where skips keep rank
def residual_band(contraction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two-sided band of ||res(X_l)||_F / ||res(X_0)||_F through a SAN with skips (our derivation).

    With res(Y) = (I - J) Y, row-stochastic P (so P J = J and (I - J) J = 0) and R = (I - J) X,

        R_(l+1) = R_l + alpha (I - J) P_l (I - J) R_l W_l,     W_l = W_V,l W_O,l,

    exactly: the token-uniform part of X never reaches the residual, and the residual moves only
    through the non-uniform part of the attention.  Hence, with k_l = alpha ||(I-J) P_l (I-J)||_2 ||W_l||_2,
    (1 - k_l) ||R_l||_F <= ||R_(l+1)||_F <= (1 + k_l) ||R_l||_F, and composed over depth
    prod (1 - k_l)_+ <= ||R_L||_F / ||R_0||_F <= prod (1 + k_l).  Uniform attention has k_l = 0
    (Claim 3.1's witness: R frozen).  contraction (..., L) -> (lower, upper), each (..., L + 1).
    """
    k = np.asarray(contraction, dtype=float)
    ones = np.ones(k.shape[:-1] + (1,))
    lower = np.concatenate([ones, np.cumprod(np.clip(1.0 - k, 0.0, None), axis=-1)], axis=-1)
    upper = np.concatenate([ones, np.cumprod(1.0 + k, axis=-1)], axis=-1)
    return lower, upper


# ------------------------------------------------------------------------------ the bound composed over depth
LOG10_E = math.log10(math.e)


def _log10_sum(terms: np.ndarray, axis: int = -1) -> np.ndarray:
    """log10 sum_h 10^terms_h along ``axis``, without under- or overflow (terms may be -inf or inf)."""
    top = np.max(terms, axis=axis, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        total = safe + np.log10(np.sum(10.0 ** (terms - safe), axis=axis, keepdims=True))
    return np.squeeze(np.where(np.isfinite(top), total, top), axis=axis)


def layer_constant_log10(log10_r, n_tokens, qk_norm, value_norm_1, value_norm_inf):
    """log10 c_l(r) of the one-layer map r -> c_l(r) r^3 that bounds a pure attention layer with H heads
    (our derivation, in the chapter):

        ||res(SA(X))||_{1,inf} <= c(r) r^3,   r = ||(I - J) X||_{1,inf},
        c(r) = 2 (1 - 1/n) sqrt(n) sqrt( sum_h 2 a_h e^{2 a_h r^2} ||W_h||_1 . sum_h 2 a_h e^{2 a_h r^2} ||W_h||_inf ),

    with a_h = ||W_Q,h W_K,h^T||_2 / sqrt(d_head) and W_h = W_V,h W_O,h.  It comes from
    `explicit_bound` (its softmax sandwich, per head) with eps_E <= a_h r^2 and e^{2x} - 1 <= 2x e^{2x};
    for H = 1 it is `explicit_bound` with those two estimates.  c(r) increases with r.
    log10_r (...), qk_norm, value_norm_1, value_norm_inf (..., H) -> (...).  Computed in log10 so that
    r down to 10^-1000 (the extended-precision runs) is no underflow."""
    lr = np.asarray(log10_r, dtype=float)[..., None]
    a = np.asarray(qk_norm, dtype=float)
    with np.errstate(over="ignore", divide="ignore"):
        r2 = 10.0 ** np.minimum(2.0 * lr, 300.0)  # r^2 (capped: beyond 1e300 the bound is vacuous anyway)
        head = np.log10(2.0 * a) + 2.0 * a * r2 * LOG10_E  # log10(2 a_h e^{2 a_h r^2}), (..., H)
        l1 = _log10_sum(head + np.log10(value_norm_1))
        linf = _log10_sum(head + np.log10(value_norm_inf))
    n = np.asarray(n_tokens, dtype=float)
    return np.log10(2.0 * (1.0 - 1.0 / n) * np.sqrt(n)) + 0.5 * (l1 + linf)


def composed_bound_log10(log10_r0, n_tokens, qk_norm, value_norm_1, value_norm_inf, power: float = 3.0):
    """log10 B_l, l = 0..L, of the bound composed over depth: B_0 = r_0, B_(l+1) = c_l(B_l) B_l^3.

    Since c_l(r) r^3 bounds layer l and increases with r, r_l <= B_l at every layer by induction, and
    unrolled  B_L = prod_l c_l(B_l)^(3^(L-1-l)) r_0^(3^L)  (the exponents of Dong et al.'s Thm 2.2;
    with one constant c >= every c_l, B_L <= c^((3^L - 1)/2) r_0^(3^L)).  ``power`` replaces the 3
    (a rival with a faster contraction, 4, must be violated by the measured residuals).
    log10_r0 (...), qk_norm etc. (..., L, H) -> (log10 B (..., L+1), log10 c (..., L))."""
    a = np.asarray(qk_norm, dtype=float)
    L = a.shape[-2]
    logB = [np.asarray(log10_r0, dtype=float)]
    logc = []
    for l in range(L):
        c = layer_constant_log10(logB[-1], n_tokens, a[..., l, :], np.asarray(value_norm_1)[..., l, :],
                                 np.asarray(value_norm_inf)[..., l, :])
        logc.append(c)
        logB.append(c + power * logB[-1])
    return np.stack(logB, -1), np.stack(logc, -1)


def paper_form_log10(log10_r0, log10_c, depth: int) -> np.ndarray:
    """log10 of Dong et al.'s form c^((3^L - 1)/2) r_0^(3^L) with one constant c per network
    (``log10_c`` (...), e.g. the largest c_l): an upper bound of `composed_bound_log10` when c >= every c_l."""
    L = np.arange(depth + 1)
    return (3.0 ** L - 1) / 2 * np.asarray(log10_c)[..., None] + 3.0 ** L * np.asarray(log10_r0)[..., None]
