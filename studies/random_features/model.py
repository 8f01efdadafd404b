"""Random-feature attention (Part 1): the model, the targets and the infinite-head kernels.

Reference: Fu, Guo, Bai, Mei, "What can a Single Attention Layer Learn? A Study Through the Random
Features Lens", NeurIPS 2023 (arXiv 2307.11353).  Only the abstract of that paper could be read for
this study; the model below is the reconstruction of ``/work/shared/specs/random_features.md`` §1
(self-consistent, and the one the experiments use), not a transcription of the paper's equations.

Setting.  A query ``x_0`` and keys ``X = (x_1, ..., x_N)``, all i.i.d. uniform on the sphere
S^{d-1}, augmented to ``x~ = [x; 1]`` (so ``||x~||^2 = 2``).  With ``M`` heads,

    f_RFA(x_0, X; V) = sum_m (1/N) sum_i relu(x~_0^T W_m x~_i) <v_m, x~_i>,

where ``W_m`` (d+1, d+1) has i.i.d. N(0, 1/4) entries and is frozen (so each score is N(0, 1)) and
the values ``v_m`` are trained.  The model is linear in ``V`` through the features

    phi_m(x_0, X) = (1/N) sum_i relu(x~_0^T W_m x~_i) x~_i           (d+1 numbers per head),

which are invariant under any permutation of the keys (a mean over i).  Variants:

- ``brfa``: ``W_m = W_0 + G_m`` with ``W_0 = alpha diag(I_d, 0)`` (a non-zero mean), so the score is
  ``alpha <x_0, x_i> + N(0, 1)``;
- ``brfa_pm`` (an extension, not in any anchor paper): half the heads have mean ``+alpha``, half
  ``-alpha``;
- ``rfmlp``: a two-layer random-feature ReLU network on the concatenation
  ``z = [x_0; x_1; ...; x_N; 1]`` with ``P = M (d+1)`` features ``relu(<w_k, z>)``,
  ``w_k ~ N(0, I / (N+2))`` (so each pre-activation is N(0, 1)); it is not permutation invariant.

The infinite-head kernel (derived in the chapter, checked against Monte Carlo by check A8): with
``rho_ij = (1 + <x_0, x_0'>)(1 + <x_i, x_j'>) / 4``,

    K_RFA = (1/N^2) sum_{i,j} kappa_1(rho_ij) <x~_i, x~_j'>,
    kappa_1(rho) = (sqrt(1 - rho^2) + (pi - arccos rho) rho) / (2 pi),

and ``K_RFMLP = kappa_1(<z, z'> / (N + 2))``.

Shapes: ``e`` ensemble member (seed), ``n`` sample, ``i``/``j`` key, ``m`` head, ``a``/``b``
augmented coordinate (d+1), ``c`` coordinate of the concatenated MLP input.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from scipy import special
from torch import Tensor

from workbench.streams import Stream

MODELS = ("rfa", "brfa", "brfa_pm", "rfmlp")
TARGETS = ("geg1", "geg2", "geg3", "pow3", "sep11")


# ------------------------------------------------------------------------------------ data
def to_sphere(g: Tensor) -> Tensor:
    """Standard Gaussians (..., d) normalised onto S^{d-1}: uniform points on the sphere."""
    return g / g.norm(dim=-1, keepdim=True)


def sample_sphere(st: Stream, shape: tuple[int, ...], d: int, *, members=None, device=None, dtype=torch.float64) -> Tensor:
    """Uniform points on S^{d-1} from the stream ``st``: shape ``(*lead, *shape, d)``."""
    return to_sphere(st.normal((*shape, d), members=members, device=device, dtype=dtype))


def augment(x: Tensor) -> Tensor:
    """``x~ = [x; 1]``: (..., d) -> (..., d+1)."""
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)


# ------------------------------------------------------------------------------- Gegenbauer
def gegenbauer_dim(d: int, k: int) -> int:
    """B(d, k): the dimension of the degree-k spherical harmonics on S^{d-1}."""
    if k == 0:
        return 1
    return (2 * k + d - 2) * math.comb(k + d - 3, d - 2) // k


def gegenbauer(k: int, d: int, t: Tensor) -> Tensor:
    """Gegenbauer polynomial P_k^{(d)}(t) normalised by P_k(1) = 1 (three-term recurrence).

    With x, x' uniform on S^{d-1}, E[P_k(<x, x'>) P_l(<x, x'>)] = delta_kl / B(d, k).
    """
    p_prev, p = torch.ones_like(t), t.clone()
    if k == 0:
        return p_prev
    for j in range(1, k):
        p_prev, p = p, ((2 * j + d - 2) * t * p - j * p_prev) / (j + d - 2)
    return p


def sphere_moment(d: int, power: int) -> float:
    """E[u^power] for u = <x, x'> with x, x' uniform on S^{d-1} (0 for odd powers)."""
    if power % 2:
        return 0.0
    out = 1.0
    for r in range(power // 2):
        out *= (2 * r + 1) / (d + 2 * r)
    return out


def target_values(target: str, x0: Tensor, X: Tensor) -> Tensor:
    """The regression targets, each with mean 0 and variance 1.  x0 (..., d), X (..., N, d) -> (...).

    - ``geg_k``: sqrt(N) (1/N) sum_i sqrt(B(d,k)) P_k(<x_0, x_i>)  (zonal, degree k);
    - ``pow3``: sqrt(N) (1/N) sum_i u_i^3 / sqrt(E u^6), u_i = <x_0, x_i>  (centred power: E u^3 = 0);
    - ``sep11``: sqrt(N) (1/N) sum_i d <e_1, x_0> <e_2, x_i>  (non-zonal control; by the rotation
      invariance of the data and of every model, e_1, e_2 stand for any orthonormal pair).

    The N key terms are uncorrelated (each has mean 0 given x_0), so the sqrt(N) makes Var = 1.
    """
    d, N = x0.shape[-1], X.shape[-2]
    u = torch.einsum("...d,...id->...i", x0, X)  # (..., N)
    if target.startswith("geg"):
        k = int(target[3:])
        F = math.sqrt(gegenbauer_dim(d, k)) * gegenbauer(k, d, u)
    elif target == "pow3":
        F = u ** 3 / math.sqrt(sphere_moment(d, 6))
    elif target == "sep11":
        F = d * x0[..., 0:1] * X[..., :, 1]
    else:
        raise ValueError(f"unknown target {target!r}")
    return F.sum(dim=-1) / math.sqrt(N)


# -------------------------------------------------------------------------------- features
def gaussian_heads(st: Stream, M: int, d: int, *, members=None, device=None, dtype=torch.float64) -> Tensor:
    """The Gaussian part G_m of M query-key matrices: (*lead, M, d+1, d+1), i.i.d. N(0, 1/4) entries."""
    return 0.5 * st.normal((M, d + 1, d + 1), members=members, device=device, dtype=dtype)


def head_signs(model: str, M: int, dtype=torch.float64) -> Tensor:
    """s_m in W_m = s_m W_0 + G_m: 0 for ``rfa``, 1 for ``brfa``, +1 then -1 (halves) for ``brfa_pm``."""
    if model == "rfa":
        return torch.zeros(M, dtype=dtype)
    sign = torch.ones(M, dtype=dtype)
    if model == "brfa_pm":
        sign[M // 2:] = -1.0
    elif model != "brfa":
        raise ValueError(f"not an attention model: {model!r}")
    return sign


def biased_heads(model: str, G: Tensor, alpha: float) -> Tensor:
    """W_m = s_m alpha diag(I_d, 0) + G_m for the heads G (..., M, d+1, d+1) of ``model``.

    The models share their Gaussian parts, so they differ only by the mean (common random numbers).
    """
    d = G.shape[-1] - 1
    W0 = torch.zeros(d + 1, d + 1, dtype=G.dtype, device=G.device)
    W0[:d, :d] = alpha * torch.eye(d, dtype=G.dtype, device=G.device)
    sign = head_signs(model, G.shape[-3], dtype=G.dtype).to(G.device)
    return G + sign[:, None, None] * W0


def draw_mlp_weights(st: Stream, P: int, d: int, N: int, *, members=None, device=None, dtype=torch.float64) -> Tensor:
    """RFMLP first-layer weights (*lead, P, d(N+1)+1), i.i.d. N(0, 1/(N+2)) (so <w, z> ~ N(0, 1))."""
    return st.normal((P, d * (N + 1) + 1), members=members, device=device, dtype=dtype) / math.sqrt(N + 2)


def attention_features(x0: Tensor, X: Tensor, W: Tensor) -> Tensor:
    """phi(x_0, X) = [(1/N) sum_i relu(x~_0^T W_m x~_i) x~_i]_m (chapter, eq. rf-model), flattened to (e, n, M (d+1)).

    x0 (e, n, d), X (e, n, N, d), W (e, M, d+1, d+1): member e's inputs meet member e's heads.
    """
    q, k = augment(x0), augment(X)                                 # (e, n, a), (e, n, i, b)
    A = torch.einsum("ena,emab->enmb", q, W)                       # (e, n, m, b): x~_0^T W_m
    scores = torch.einsum("enmb,enib->enmi", A, k)                 # (e, n, m, i): the attention scores
    phi = torch.einsum("enmi,enib->enmb", scores.clamp_min(0), k) / X.shape[-2]  # (e, n, m, b)
    return phi.flatten(-2)


def mlp_features(x0: Tensor, X: Tensor, Wmlp: Tensor) -> Tensor:
    """relu(<w_k, z>) with z = [x_0; x_1; ...; x_N; 1]: x0 (e, n, d), X (e, n, N, d), Wmlp (e, P, c)
    -> (e, n, P)."""
    z = torch.cat([x0, X.flatten(-2), torch.ones_like(x0[..., :1])], dim=-1)  # (e, n, c)
    return torch.einsum("enc,epc->enp", z, Wmlp).clamp_min(0)


def feature_map(model: str, weights: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """The feature function (x0, X) -> Phi of a model with its frozen random weights."""
    if model == "rfmlp":
        return lambda x0, X: mlp_features(x0, X, weights)
    return lambda x0, X: attention_features(x0, X, weights)


# --------------------------------------------------------------------------------- kernels
def kappa1(rho: Tensor) -> Tensor:
    """E[relu(g) relu(g')] for unit-variance jointly Gaussian g, g' with correlation rho
    (the degree-1 arc-cosine kernel of Cho & Saul): (sqrt(1-rho^2) + (pi - arccos rho) rho) / 2 pi."""
    rho = rho.clamp(-1.0, 1.0)
    return (torch.sqrt(1 - rho * rho) + (math.pi - torch.arccos(rho)) * rho) / (2 * math.pi)


def rfa_kernel(x0: Tensor, X: Tensor, y0: Tensor, Y: Tensor) -> Tensor:
    """The M -> infinity limit of (1/M) phi(x_0, X) . phi(y_0, Y) for unbiased RFA.

    x0 (n, d), X (n, N, d), y0 (n', d), Y (n', N', d) -> (n, n').  Derivation: chapter, eq. rf-kernel.
    Written in place because the (n, n', i, j) temporaries dominate the cost of kernel ridge.
    """
    a = x0 @ y0.T                                                  # (n, n'): <x_0, y_0>
    t = torch.einsum("nid,pjd->npij", X, Y).add_(1)                # (n, n', i, j): <x~_i, y~_j> = 1 + <x_i, y_j>
    rho = t * ((1 + a) / 4)[:, :, None, None]                      # correlation of the two scores
    rho.clamp_(-1.0, 1.0)
    out = torch.sqrt((1 - rho) * (1 + rho))                        # sqrt(1 - rho^2)
    out.add_(rho.mul_(torch.arccos(rho).neg_().add_(math.pi)))     # + (pi - arccos rho) rho
    return out.mul_(t).mean(dim=(-1, -2)) / (2 * math.pi)


def rfmlp_kernel(x0: Tensor, X: Tensor, y0: Tensor, Y: Tensor) -> Tensor:
    """The P -> infinity limit of (1/P) phi(z) . phi(z') for RFMLP: kappa_1(<z, z'> / (N+2))."""
    N = X.shape[-2]
    zz = 1 + x0 @ y0.T + torch.einsum("nid,pid->np", X, Y)        # (n, n') = <z, z'>
    return kappa1(zz / (N + 2))


def kappa1_linear(rho: Tensor) -> Tensor:
    """The linear part of kappa_1 at rho = 0, 1/(2 pi) + rho/4 (kappa_1'(0) = Pr(s > 0, s' > 0) = 1/4 at
    rho = 0): the Gaussian-equivalent kernel, which drops the rho^2/(4 pi) + ... of the ReLU."""
    return 1 / (2 * math.pi) + rho / 4


def linearised_kernel(model: str, x0: Tensor, X: Tensor, y0: Tensor, Y: Tensor) -> Tensor:
    """`rfa_kernel` or `rfmlp_kernel` with kappa_1 replaced by `kappa1_linear`: the rival hypothesis
    of the kernel checks (small inputs only: no chunking).  Shapes as in `rfa_kernel`."""
    if model == "rfa":
        a = x0 @ y0.T                                              # (n, n')
        t = torch.einsum("nid,pjd->npij", X, Y) + 1                # (n, n', i, j): <x~_i, y~_j>
        rho = t * ((1 + a) / 4)[:, :, None, None]
        return (kappa1_linear(rho) * t).mean(dim=(-1, -2))
    if model == "rfmlp":
        N = X.shape[-2]
        zz = 1 + x0 @ y0.T + torch.einsum("nid,pid->np", X, Y)
        return kappa1_linear(zz / (N + 2))
    raise ValueError(f"no closed-form kernel for model {model!r} (only rfa and rfmlp)")


BIAS_NODES = 8
"""Gauss-Legendre nodes of the one-dimensional integral in `relu_moment_biased` (absolute error
< 5e-6 for |a|, |b| <= 9 and every rho, against 64 nodes; the tests check it)."""


def relu_moment_biased(a: Tensor, b: Tensor, rho: Tensor, nodes: int = BIAS_NODES) -> Tensor:
    """F(a, b; rho) = E[relu(a + g) relu(b + g')] for standard normals g, g' with correlation rho.

    Price's theorem gives dF/drho = Phi_2(a, b; rho) and d Phi_2 / drho = phi_2(a, b; rho), so

        F = S(a) S(b) + rho Phi(a) Phi(b) + int_0^rho (rho - t) phi_2(a, b; t) dt,

    S(t) = t Phi(t) + phi(t) (chapter, eq. rf-brfa-kernel).  With t = rho (1 - w^2) the integral is
    rho^2 int_0^1 2 w^3 phi_2(a, b; rho (1 - w^2)) dw, whose integrand is smooth even at rho = 1
    (Gauss-Legendre on w).  At a = b = 0 it is kappa_1(rho).  Broadcasting tensors.
    """
    w, wt = np.polynomial.legendre.leggauss(nodes)
    w, wt = (w + 1) / 2, wt / 2                                      # nodes on [0, 1]
    ndtr = lambda x: 0.5 * torch.erfc(-x / math.sqrt(2))
    pdf = lambda x: torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    out = (a * ndtr(a) + pdf(a)) * (b * ndtr(b) + pdf(b)) + rho * ndtr(a) * ndtr(b)
    q = a * a + b * b
    ab = a * b
    integral = torch.zeros_like(out)
    for wk, ck in zip(w.tolist(), wt.tolist()):
        t = rho * (1 - wk * wk)
        one_t2 = (1 - t * t).clamp_min(1e-300)
        integral = integral + (2 * ck * wk ** 3) * torch.exp(-(q - 2 * t * ab) / (2 * one_t2)) / torch.sqrt(one_t2)
    return out + rho * rho * integral / (2 * math.pi)


def brfa_kernel(x0: Tensor, X: Tensor, y0: Tensor, Y: Tensor, alpha: float, signs: tuple[float, ...] = (1.0,)) -> Tensor:
    """The M -> infinity limit of (1/M) phi . phi' for biased heads W_m = s alpha diag(I, 0) + G_m,
    averaged over the head signs s in ``signs`` ((1,) is BRFA, (1, -1) BRFA+-).

    The score of key i is s alpha u_i + g_i with u_i = <x_0, x_i> and Cov(g_i, g'_j) = rho_ij, so
    K = (1/N^2) sum_{i,j} F(s alpha u_i, s alpha u'_j; rho_ij) <x~_i, x~'_j> (`relu_moment_biased`).
    Shapes as in `rfa_kernel`.
    """
    a = x0 @ y0.T                                                  # (n, n')
    t = torch.einsum("nid,pjd->npij", X, Y).add_(1)                # <x~_i, y~_j>
    rho = (t * ((1 + a) / 4)[:, :, None, None]).clamp_(-1.0, 1.0)
    u = torch.einsum("nd,nid->ni", x0, X)[:, None, :, None]        # (n, 1, i, 1)
    v = torch.einsum("pd,pjd->pj", y0, Y)[None, :, None, :]        # (1, n', 1, j)
    out = sum(relu_moment_biased(s * alpha * u, s * alpha * v, rho) for s in signs) / len(signs)
    return (out * t).mean(dim=(-1, -2))


def model_kernel(model: str, alpha: float = 0.0) -> Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]:
    """The closed-form infinite-width kernel of ``model`` (rfa, brfa, brfa_pm with mean alpha; rfmlp)."""
    if model == "rfa":
        return rfa_kernel
    if model == "rfmlp":
        return rfmlp_kernel
    if model == "brfa":
        return lambda x0, X, y0, Y: brfa_kernel(x0, X, y0, Y, alpha)
    if model == "brfa_pm":
        return lambda x0, X, y0, Y: brfa_kernel(x0, X, y0, Y, alpha, (1.0, -1.0))
    raise ValueError(f"no closed-form kernel for model {model!r}")


def kernel_matrix(kernel, x0: Tensor, X: Tensor, y0: Tensor, Y: Tensor, chunk_elems: int = 1_000_000) -> Tensor:
    """``kernel`` evaluated block-wise over rows so that the (n, n', N, N) temporaries stay bounded."""
    per_row = max(1, y0.shape[0] * X.shape[-2] * Y.shape[-2])
    rows = max(1, chunk_elems // per_row)
    return torch.cat([kernel(x0[s:s + rows], X[s:s + rows], y0, Y) for s in range(0, x0.shape[0], rows)], dim=0)


# ---------------------------------------------------------------- the mean feature of a bias
def smoothed_relu(t: np.ndarray) -> np.ndarray:
    """S(t) = E[relu(t + g)], g ~ N(0, 1): t Phi(t) + phi(t).  Odd part: S(t) - S(-t) = t."""
    return t * special.ndtr(t) + np.exp(-t * t / 2) / math.sqrt(2 * math.pi)


def zonal_profile(target: str, d: int, u: np.ndarray) -> np.ndarray:
    """F(u) of a zonal target (the summand of `target_values` as a function of u = <x_0, x_i>)."""
    if target.startswith("geg"):
        k = int(target[3:])
        return math.sqrt(gegenbauer_dim(d, k)) * gegenbauer(k, d, torch.from_numpy(u)).numpy()
    if target == "pow3":
        return u ** 3 / math.sqrt(sphere_moment(d, 6))
    raise ValueError(f"{target!r} is not zonal")


def mean_feature_residual(target: str, d: int, alpha: float, model: str, nodes: int = 200) -> float:
    """Relative error of the best fit of a zonal target by an intercept plus the mean features of
    infinitely many biased heads: 1 - R^2 of F(u) on span{1, S(alpha u)} (``brfa``) or
    span{1, S(alpha u), S(-alpha u)} (``brfa_pm``), u = <x_0, x_i> (derived in the chapter, eq. rf-mean-feature).

    As M -> infinity the average of the heads' constant-coordinate features tends to
    (1/N) sum_i S(s alpha u_i) for each sign s, so (with an intercept) the M, n -> infinity risk of
    the model is at most this number.  Gauss-Jacobi quadrature against the density of u,
    proportional to (1 - u^2)^((d-3)/2).
    """
    a = (d - 3) / 2
    u, w = special.roots_jacobi(nodes, a, a)
    w = w / w.sum()
    F = zonal_profile(target, d, u)
    cols = [np.ones_like(u), smoothed_relu(alpha * u)]
    if model == "brfa_pm":
        cols.append(smoothed_relu(-alpha * u))
    elif model != "brfa":
        raise ValueError(f"mean_feature_residual: biased models only, got {model!r}")
    B = np.stack(cols, axis=1)                                     # (nodes, basis)
    gram = B.T @ (w[:, None] * B)
    coef = np.linalg.lstsq(gram, B.T @ (w * F), rcond=None)[0]
    resid = F - B @ coef
    return float(np.sum(w * resid ** 2) / np.sum(w * F ** 2))
