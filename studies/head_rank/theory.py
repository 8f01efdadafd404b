"""What the theory predicts for head-rank, without training.

Part A (one softmax head of size d_h; Bhojanapalli et al. 2020 made exact in the spec, section 1.1).
With row-stochastic P, A = log P and J = I - 11^T/n:

- Theorem A: with rank X = n, P = softmax(X W X^T) for some rank-d_h W iff rank(AJ) <= d_h; the
  construction is W = X^+ AJ (X^+)^T (`construction`).  Generic threshold d_h = n - 1.
- Theorem B: any logits L of rank <= k have mean KL >= p_min T_k^2 / (n (2 + T_k)), with T_k^2 the
  tail sum_{j>k} sigma_j(AJ)^2 (`certificate`); the truncated SVD (AJ)_k is the matching explicit
  upper bound (`svd_upper_bound`).  The same bound with T = |AJ - Pi_X AJ Pi_JX|_F holds for any
  d_h when d < n (`narrow_certificate`), and on every fully visible block of a causal mask
  (`causal_certificate`).

Part B (Amsel, Yehudai & Bruna 2024, nearest-neighbour target; closed forms derived in the spec,
section 1.2, checked here): the exact N = 2 error of the full-rank head beta I (`full_rank_error`)
and its asymptote C_inf(d)/beta (`c_infinity`); the random-feature (rank-1 hardmax) kernel C, pick
probabilities b and the optimal MSE 1 - b^T C^{-1} b (`random_feature_mse`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import integrate, special

LN2_MINUS_HALF = math.log(2.0) - 0.5
"""int_0^inf sigmoid(-z)^2 dz (sympy-checked in the tests)."""


# ============================================================================== Part A
def stable_kl(logP: np.ndarray, logQ: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """KL(P_i || Q_i) per row as sum_j P_ij (expm1(u_ij) - u_ij), u = log Q - log P.

    Exact because sum_j P_ij e^{u_ij} = sum_j Q_ij = 1, and every term is >= 0 in floating point,
    so it never goes negative and resolves KL down to ~1e-32 (the naive sum P (log P - log Q)
    cancels to +-1e-16).  ``mask``: the visible entries (causal); others are ignored."""
    with np.errstate(invalid="ignore"):                        # -inf - -inf on masked entries
        u = logQ - logP
        terms = np.exp(logP) * (np.expm1(u) - u)
    if mask is not None:
        terms = np.where(mask, terms, 0.0)
    return terms.sum(-1)


def naive_kl(logP: np.ndarray, logQ: np.ndarray) -> np.ndarray:
    """sum_j P_ij (log P_ij - log Q_ij): the textbook formula (rounding makes it negative near 0)."""
    return (np.exp(logP) * (logP - logQ)).sum(-1)


def log_softmax_rows(L: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Row-wise log softmax; masked entries get -inf."""
    if mask is not None:
        L = np.where(mask, L, -np.inf)
    m = L.max(-1, keepdims=True)
    return L - m - np.log(np.exp(L - m).sum(-1, keepdims=True))


def centring(n: int) -> np.ndarray:
    """J = I - 11^T / n."""
    return np.eye(n) - np.ones((n, n)) / n


def centred_singular_values(logP: np.ndarray) -> np.ndarray:
    """sigma(AJ), descending."""
    return np.linalg.svd(logP @ centring(logP.shape[-1]), compute_uv=False)


def tail(sv: np.ndarray, k: int) -> float:
    """T_k = (sum_{j>k} sigma_j^2)^{1/2}."""
    return float(np.sqrt(np.sum(sv[k:] ** 2)))


def kl_lower_bound(p_min: float, T: float, n: int) -> float:
    """Theorem B's bound p_min T^2 / (n (2 + T))."""
    return p_min * T ** 2 / (n * (2.0 + T))


def certificate(logP: np.ndarray, k: int) -> float:
    """Theorem B: every logit matrix of rank <= k has mean KL >= this (full P, no mask)."""
    n = logP.shape[-1]
    return kl_lower_bound(float(np.exp(logP).min()), tail(centred_singular_values(logP), k), n)


def svd_upper_bound(logP: np.ndarray, k: int) -> float:
    """Mean KL of the truncated-SVD logits (AJ)_k: an explicit rank-k head (with rank X = n)."""
    AJ = logP @ centring(logP.shape[-1])
    U, s, Vt = np.linalg.svd(AJ)
    L = (U[:, :k] * s[:k]) @ Vt[:k]
    return float(stable_kl(logP, log_softmax_rows(L)).mean())


def uncentred_truncation(logP: np.ndarray, k: int) -> float:
    """Mean KL of the rank-k truncated SVD of log P itself (no row shift): what one gets when the
    shift freedom of softmax is not used, the view under which the threshold would be n."""
    U, s, Vt = np.linalg.svd(logP)
    L = (U[:, :k] * s[:k]) @ Vt[:k]
    return float(stable_kl(logP, log_softmax_rows(L)).mean())


def construction(X: np.ndarray, logP: np.ndarray) -> np.ndarray:
    """Theorem A (<=): W = X^+ AJ (X^+)^T, so that X W X^T = AJ (needs rank X = n)."""
    Xp = np.linalg.pinv(X)                                            # (d, n)
    return Xp @ (logP @ centring(logP.shape[-1])) @ Xp.T              # (d, d)


def causal_mask(n: int) -> np.ndarray:
    """Key j visible to query i iff j <= i."""
    return np.tril(np.ones((n, n), dtype=bool))


def causal_certificate(logP: np.ndarray, k: int) -> tuple[float, int]:
    """Theorem B on the fully visible blocks rows p..n x columns 1..p (1-indexed) of a causal P:
    (the largest certificate over p, its p).  The centred block has generic rank min(n-p+1, p-1),
    at most floor(n/2)."""
    n = logP.shape[-1]
    mask = causal_mask(n)
    p_min = float(np.exp(logP[mask]).min())
    best, where = 0.0, 0
    for p in range(2, n + 1):
        block = logP[p - 1:, :p]                                      # (n-p+1, p), all visible
        sv = np.linalg.svd(block @ centring(p), compute_uv=False)
        lb = kl_lower_bound(p_min, tail(sv, k), n)
        if lb > best:
            best, where = lb, p
    return best, where


def causal_block_rank(n: int) -> int:
    """max_p min(n-p+1, p-1) = floor(n/2): the generic rank the blocks certify."""
    return max(min(n - p + 1, p - 1) for p in range(2, n + 1))


def narrow_certificate(X: np.ndarray, logP: np.ndarray) -> float:
    """d < n: X W X^T J has columns in col(X) and rows in col(JX), so any head (any d_h) has mean KL
    >= p_min T^2 / (n (2 + T)) with T = |AJ - Pi_X AJ Pi_JX|_F."""
    n = logP.shape[-1]
    J = centring(n)
    AJ = logP @ J

    def proj(M):
        Q, R = np.linalg.qr(M)
        r = int(np.sum(np.abs(np.diag(R)) > 1e-12 * max(1.0, np.abs(R).max())))
        return Q[:, :r] @ Q[:, :r].T

    T = float(np.linalg.norm(AJ - proj(X) @ AJ @ proj(J @ X)))
    return kl_lower_bound(float(np.exp(logP).min()), T, n)


# ============================================================================== Part B
def sphere_inner_density(d: int, s):
    """f_d(s): density of <x, y> for independent uniform x, y on S^{d-1}."""
    c = math.exp(special.gammaln(d / 2) - special.gammaln((d - 1) / 2)) / math.sqrt(math.pi)
    return c * (1.0 - np.asarray(s) ** 2) ** ((d - 3) / 2)


def _panel_nodes(top: float, alpha: float, n: int = 16, levels: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of int_0^top g(x) (top - x)^alpha dx for g smooth on (0, top] with a
    feature at scale 1/beta near 0: geometric Gauss-Legendre panels [top 2^-(k+1), top 2^-k]
    (k = 1..levels, then [0, top 2^-levels]) and Gauss-Jacobi(alpha, 0) on [top/2, top], where the
    endpoint factor (top - x)^alpha lives (it is included in the weights everywhere)."""
    xl, wl = special.roots_legendre(n)
    xs, ws = [], []
    edges = [0.0] + [top * 2.0 ** -k for k in range(levels, 0, -1)]
    for a, b in zip(edges[:-1], edges[1:]):
        x = a + (b - a) * (xl + 1) / 2
        xs.append(x)
        ws.append(wl * (b - a) / 2 * (top - x) ** alpha)
    xj, wj = special.roots_jacobi(n, alpha, 0.0)                      # weight (1 - z)^alpha on [-1, 1]
    half = top / 2
    xs.append(half + half * (xj + 1) / 2)                             # z -> x in [top/2, top]
    ws.append(wj * (half / 2) ** (alpha + 1))                         # (top - x) = (half/2)(1 - z)
    return np.concatenate(xs), np.concatenate(ws)


@lru_cache(maxsize=16)
def _error_nodes(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Quadrature of the pair (r, s), r = |x_1 - x_2| in [0, 2] and |s| = |<y, u/|u|>| in [0, 1].

    s has density 2 f_d(s) = 2 c_d (1 - s)^alpha (1 + s)^alpha on [0, 1], alpha = (d-3)/2; r has
    density c_d r^(d-2) (1 - r^2/4)^alpha on [0, 2] (t = 1 - r^2/2 ~ f_d), so both endpoint factors
    go into the Jacobi weights and the rest is smooth (r^(d-2) is a polynomial)."""
    alpha = (d - 3) / 2
    c = float(sphere_inner_density(d, 0.0))
    s, ws = _panel_nodes(1.0, alpha)
    ws = ws * 2 * c * (1 + s) ** alpha
    r, wr = _panel_nodes(2.0, alpha)
    wr = wr * c * r ** (d - 2) * ((2 + r) / 4) ** alpha               # (1 - r^2/4)^a = (2-r)^a (2+r)^a / 4^a
    return r, wr, s, ws


def full_rank_error(beta: float, d: int) -> float:
    """err(beta) = E[|u|^2 sigmoid(-beta |u| |s|)^2] = E_{t,s}[2(1-t) sigmoid(-beta sqrt(2(1-t)) |s|)^2],
    t, s i.i.d. ~ f_d: the exact N = 2 squared error of the head W = beta I, O = I on the
    nearest-neighbour target (spec 1.2), by tensor-product quadrature (`_error_nodes`)."""
    r, wr, s, ws = _error_nodes(d)
    sig = special.expit(-beta * r[:, None] * s[None, :]) ** 2         # (R, S)
    return float(wr @ (r[:, None] ** 2 * sig) @ ws)


def mean_distance(d: int) -> float:
    """E|x_1 - x_2| = E sqrt(2(1-t)), t ~ f_d."""
    g = lambda t: sphere_inner_density(d, t) * math.sqrt(2.0 * (1.0 - t))
    return integrate.quad(g, -1.0, 1.0, epsabs=1e-14, epsrel=1e-12)[0]


def c_infinity(d: int) -> float:
    """lim beta err(beta) = 2 f_d(0) (ln 2 - 1/2) E|x_1 - x_2|."""
    return 2.0 * float(sphere_inner_density(d, 0.0)) * LN2_MINUS_HALF * mean_distance(d)


@lru_cache(maxsize=16)
def pick_probability_table(d: int, n_grid: int = 401, n_rho: int = 80, n_phi: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """(c grid, b(c)): b = P(a rank-1 hardmax head with cos(q, k) = c picks the target)
    = 1/2 + (1/pi) E_y[sign(q.y) arcsin(k.y)], as a 2-D integral over the disk marginal of y
    (density (d-2) rho (1-rho^2)^((d-4)/2) in radius, uniform angle), for d >= 3."""
    if d < 3:
        raise ValueError("the disk marginal needs d >= 3")
    gamma = (d - 4) / 2
    # radius rho in [0, 1] with weight rho (1 - rho)^gamma: Gauss-Jacobi(gamma, 1) on x = 2 rho - 1
    x, w = special.roots_jacobi(n_rho, gamma, 1.0)
    rho = (x + 1) / 2
    w_rho = w * (1 + rho) ** gamma                                    # the (1 + rho)^gamma left over
    w_rho = w_rho / w_rho.sum()                                       # normalised radial law
    # angle: sign(cos phi) arcsin(rho cos(phi - phi0)) over the circle = twice the half circle |phi| < pi/2
    xp, wp = special.roots_legendre(n_phi)
    phi = xp * math.pi / 2
    c = np.linspace(-1.0, 1.0, n_grid)
    phi0 = np.arccos(c)                                               # (G,)
    arg = rho[None, :, None] * np.cos(phi[None, None, :] - phi0[:, None, None])   # (G, R, P)
    inner = (np.arcsin(np.clip(arg, -1, 1)) * wp * (math.pi / 2)).sum(-1) * 2 / (2 * math.pi)  # (G, R)
    expect = inner @ w_rho                                            # (G,)
    return c, 0.5 + expect / math.pi


def random_feature_kernel(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """C_ij = E[g_i . g_j] = 1/2 + (2/pi^2) arcsin(q_i.q_j) arcsin(k_i.k_j) for rank-1 hardmax heads
    with O = I (g_h = m + sign(y.q_h k_h.u) delta): q, k (..., H, d) unit vectors."""
    qq = np.clip(np.einsum("...hd,...gd->...hg", q, q), -1, 1)
    kk = np.clip(np.einsum("...hd,...gd->...hg", k, k), -1, 1)
    return 0.5 + 2.0 / math.pi ** 2 * np.arcsin(qq) * np.arcsin(kk)


def random_feature_mse(q: np.ndarray, k: np.ndarray, d: int) -> np.ndarray:
    """min_a E|sum_h a_h g_h - f|^2 = 1 - b^T C^{-1} b per draw: q, k (draws, H, d)."""
    grid, table = pick_probability_table(d)
    b = np.interp(np.einsum("...hd,...hd->...h", q, k), grid, table)  # (draws, H)
    C = random_feature_kernel(q, k)                                   # (draws, H, H)
    # C is a Gram matrix (PSD); a pseudo-inverse solve is exact where it is singular
    sol = np.stack([np.linalg.lstsq(Ci, bi, rcond=1e-13)[0] for Ci, bi in zip(C, b)])
    return 1.0 - np.einsum("nh,nh->n", b, sol)


def predict(config) -> dict:
    """The theory's numbers at ``config`` (no fitting, no training)."""
    d = config.nn.d
    return {
        "generic_threshold": {n: n - 1 for n in config.n_values},
        "lrb_threshold": {n: n for n in config.n_values},
        "causal_threshold": {n: n // 2 for n in config.causal_n},
        "c_infinity": c_infinity(d),
        "full_rank_error": {b: full_rank_error(b, d) for b in config.nn.betas},
    }
