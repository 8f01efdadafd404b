"""Learning curves predicted from the spectrum of a kernel on the data distribution (derived for
this study; the risk formula is that of Bordelon, Canatar & Pehlevan, ICML 2020, and Canatar,
Bordelon & Pehlevan, Nat. Commun. 2021).

The omniscient risk of kernel ridge regression.  With eigenvalues eta_rho of the kernel operator
on the data distribution, a target of power v_rho^2 in mode rho (sum v^2 = E y^2 = 1), n training
points and ridge lambda (the system (K + lambda I) a = y), kappa solves

    kappa = lambda + sum_rho kappa eta_rho / (n eta_rho + kappa),

and the test error (relative, no label noise) is

    E_g = 1 / (1 - gamma) sum_rho v_rho^2 kappa^2 / (n eta_rho + kappa)^2,
    gamma = sum_rho n eta_rho^2 / (n eta_rho + kappa)^2.

Modes enter through (eigenvalue, multiplicity, power) triples: a degenerate block needs only the
total power it holds.  An unpenalised intercept removes the constant mode (it is never counted).

The exact spectrum of the infinite-head RFA kernel (chapter, eq. rf-rfa-spectrum).  With
h(a, b) = kappa_1((1 + a)(1 + b) / 4) (1 + b) the kernel is (1/N^2) sum_{i,j} h(<x_0, x_0'>, <x_i, x_j'>).
Expanding h(a, b) = sum_{k,l} c_kl P_k(a) P_l(b) in Gegenbauer polynomials (c_kl = B_k B_l
E[h P_k P_l] over independent a, b with the density of <x, x'> on S^{d-1}) and each P_k by the
addition theorem gives the eigenfunctions

    psi_{kl,ab}(x_0, X) = Y_ka(x_0) (1/N) sum_i Y_lb(x_i),       ||psi||^2 = 1/N (l >= 1), 1 (l = 0),

mutually orthogonal under the data distribution, so block (k, l) has the eigenvalue
c_kl / (B_k B_l) * ||psi||^2 with multiplicity B_k B_l.  Every target of the study lies in the
blocks (k, k): ``geg_k`` holds power 1 in block (k, k), ``pow3`` the powers B_k E[F P_k]^2 of its
profile F in blocks (1, 1) and (3, 3), and ``sep11`` power 1 in block (1, 1) (the same block as
geg1: RFA is predicted to learn geg1 and sep11 identically).  Blocks beyond ``kmax`` enter only
through their trace (they add to kappa as a ridge: n eta << kappa there).

The exact spectrum of the infinite-width RFMLP kernel (chapter, eq. rf-rfmlp-spectrum).
K = kappa_1(t), t = (1 + sum_{c=0}^N t_c) / (N + 2), t_c = <x_c, x_c'> independent over the N + 1
spheres (query and keys alike).  The eigenfunctions are the products prod_c Y_{l_c}(x_c), with
eigenvalue E[kappa_1(t) prod_c P_{l_c}(t_c)] and multiplicity prod_c B_{l_c}.  With the Taylor
series kappa_1(t) = sum_p beta_p t^p and mu(r, l) = E[t^r P_l(t)] on S^{d-1}, the multinomial
theorem gives

    lambda(l_0..l_N) = sum_p beta_p p! / (N+2)^p [s^p] e^s prod_c g_{l_c}(s),   g_l(s) = sum_r mu(r, l) s^r / r!,

which depends only on the multiset of degrees.  geg_k holds power 1 in the class {k, k} (degree k
on the query and on one key), so RFMLP must resolve a block of dimension ~ (N+1) N B_k^2 / 2, not
B_k^2: the origin of its sample-complexity gap to RFA (Fu et al.'s claim 1, in this reconstruction).

`empirical_spectrum` (a Nystrom estimate from the Gram matrix of fresh points) is kept as the
rival of the exact spectra: with n_s points it overstates how much of a target the top modes hold.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import optimize, special

from studies.random_features import model as rf


def sphere_quadrature(d: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Jacobi nodes and weights (summing to 1) for u = <x, x'>, density ~ (1 - u^2)^((d-3)/2)."""
    a = (d - 3) / 2
    u, w = special.roots_jacobi(nodes, a, a)
    return u, w / w.sum()


def _h_rfa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    rho = torch.from_numpy((1 + a) * (1 + b) / 4)
    return rf.kappa1(rho).numpy() * (1 + b)


def rfa_trace(d: int, N: int, nodes: int = 400) -> float:
    """E[K_RFA(x, x)] = h(1, 1) / N + (1 - 1/N) E_b h(1, b): the sum of all eigenvalues."""
    u, w = sphere_quadrature(d, nodes)
    return float(_h_rfa(np.ones(1), np.ones(1))[0] / N + (1 - 1 / N) * np.sum(w * _h_rfa(np.ones_like(u), u)))


def rfa_blocks(d: int, N: int, kmax: int, nodes: int = 200) -> dict[str, np.ndarray]:
    """The exact spectrum of K_RFA, blocks (k, l) with k, l <= kmax: ``k``, ``l``, ``eig``, ``mult``
    (the (0, 0) block, the constant, is left out: the intercept), and ``tail``, the trace beyond."""
    u, w = sphere_quadrature(d, nodes)
    A, B = np.meshgrid(u, u, indexing="ij")
    H = _h_rfa(A, B) * w[:, None] * w[None, :]
    P = np.stack([rf.gegenbauer(k, d, torch.from_numpy(u)).numpy() for k in range(kmax + 1)])   # (k, node)
    dims = np.array([rf.gegenbauer_dim(d, k) for k in range(kmax + 1)], dtype=float)
    E = P @ H @ P.T                                                 # (k, l): E[h P_k P_l]
    ks, ls, eig, mult = [], [], [], []
    total = 0.0
    for k in range(kmax + 1):
        for l in range(kmax + 1):
            lam = E[k, l] / (1.0 if l == 0 else N)                  # c_kl / (B_k B_l) ||psi||^2
            m = dims[k] * dims[l]
            total += lam * m
            if k == 0 and l == 0:
                continue
            ks.append(k), ls.append(l), eig.append(lam), mult.append(m)
    tail = max(0.0, rfa_trace(d, N) - total)
    return {"k": np.array(ks), "l": np.array(ls), "eig": np.array(eig), "mult": np.array(mult), "tail": np.array(tail)}


def target_block_powers(target: str, d: int, kmax: int, nodes: int = 200) -> dict[tuple[int, int], float]:
    """The power of a target of the study in each block (k, l) of the RFA spectrum (unit total)."""
    if target == "sep11":
        return {(1, 1): 1.0}
    u, w = sphere_quadrature(d, nodes)
    F = rf.zonal_profile(target, d, u)
    out = {}
    for k in range(1, kmax + 1):
        p = rf.gegenbauer_dim(d, k) * float(np.sum(w * F * rf.gegenbauer(k, d, torch.from_numpy(u)).numpy())) ** 2
        if p > 1e-14:
            out[(k, k)] = p
    return out


def block_powers(blocks: dict[str, np.ndarray], powers: dict[tuple[int, int], float]) -> np.ndarray:
    """The target powers aligned with ``blocks`` (zero outside the target's blocks)."""
    return np.array([powers.get((int(k), int(l)), 0.0) for k, l in zip(blocks["k"], blocks["l"])])


def spectral_risk(eig: np.ndarray, mult: np.ndarray, power: np.ndarray, n: float, ridge: float,
                  tail: float = 0.0) -> float:
    """The omniscient relative test error of kernel ridge regression (Bordelon, Canatar & Pehlevan
    2020, eqs. of the module docstring; chapter eq. rf-risk), without label noise.

    eig (R,), mult (R,), power (R,): the eigenvalues eta_rho of the kernel operator on the data
    distribution, their multiplicities, and the target power each degenerate block holds in all
    (sum of power = E y^2 for a relative error); n: training points; ridge: the absolute ridge of
    (K + ridge I) a = y; tail: the trace of modes left out, which acts as an added ridge (exact
    when n eta << kappa for all of them).  Modes with eig <= 0 are dropped.  kappa is found by
    Brent's method on a log scale.  Kernel- and study-agnostic (a candidate for workbench/); the
    tests check one mode against its closed form, multiplicities against repeated modes, and the
    tail against the ridge."""
    eig, mult, power = (np.asarray(v, dtype=float) for v in (eig, mult, power))
    keep = eig > 0
    eig, mult, power = eig[keep], mult[keep], power[keep]
    lam = ridge + tail

    def f(log_k):
        k = math.exp(log_k)
        return k - lam - np.sum(mult * k * eig / (n * eig + k))

    hi = math.log(lam + float(np.sum(mult * eig)) + 1e-300)
    lo = math.log(max(lam, 1e-300) * 1e-6 + 1e-300)
    while f(lo) > 0:
        lo -= 10
    kappa = math.exp(optimize.brentq(f, lo, hi + 1e-12, xtol=1e-12, rtol=1e-12))
    gamma = float(np.sum(mult * n * eig ** 2 / (n * eig + kappa) ** 2))
    return float(np.sum(power * kappa ** 2 / (n * eig + kappa) ** 2) / (1 - gamma))


def best_risk(eig, mult, power, n: float, grid, scale: float, tail: float = 0.0) -> tuple[float, int]:
    """The smallest `spectral_risk` over the ridge grid lambda * scale (scale = E K(x, x), the
    tr(K)/n of the fits) and its index: the prediction for a lambda chosen on validation."""
    risks = [spectral_risk(eig, mult, power, n, lam * scale, tail) for lam in grid]
    j = int(np.argmin(risks))
    return risks[j], j


def rfa_predicted_curves(d: int, N: int, sizes, grid, kmax: int, targets=rf.TARGETS) -> np.ndarray:
    """(K, T) predicted relative test error of kernel ridge with K_RFA (best lambda of the grid)."""
    blocks = rfa_blocks(d, N, kmax)
    scale = rfa_trace(d, N)
    out = np.zeros((len(sizes), len(targets)))
    for t, target in enumerate(targets):
        power = block_powers(blocks, target_block_powers(target, d, kmax))
        for i, n in enumerate(sizes):
            out[i, t] = best_risk(blocks["eig"], blocks["mult"], power, n, grid, scale, float(blocks["tail"]))[0]
    return out


def kappa1_taylor(p_max: int) -> np.ndarray:
    """Taylor coefficients beta_p of kappa_1 at 0: 1/(2 pi), 1/4, then
    beta_{2k+2} = binom(2k, k) / 4^k / ((2k+1)(2k+2) 2 pi) (kappa_1'' = 1 / (2 pi sqrt(1 - rho^2)))."""
    beta = np.zeros(p_max + 1)
    beta[0], beta[1] = 1 / (2 * math.pi), 0.25
    for k in range(0, (p_max - 2) // 2 + 1):
        beta[2 * k + 2] = math.comb(2 * k, k) / 4 ** k / ((2 * k + 1) * (2 * k + 2) * 2 * math.pi)
    return beta


def _degree_classes(max_total: int, max_parts: int):
    """Multisets of positive degrees (non-increasing tuples) with sum <= max_total, at most max_parts parts."""
    out = []

    def rec(prefix, remaining, cap):
        if prefix:
            out.append(tuple(prefix))
        if len(prefix) == max_parts:
            return
        for v in range(min(cap, remaining), 0, -1):
            rec(prefix + [v], remaining - v, v)

    rec([], max_total, max_total)
    return out


def rfmlp_eigenvalue(degrees: tuple[int, ...], d: int, N: int, p_max: int = 48, nodes: int = 80) -> float:
    """lambda of the class ``degrees`` (positive degrees on some of the N+1 spheres, 0 elsewhere)."""
    u, w = sphere_quadrature(d, nodes)
    beta = kappa1_taylor(p_max)
    fact = np.array([math.factorial(r) for r in range(p_max + 1)], dtype=float)
    powers = u[None, :] ** np.arange(p_max + 1)[:, None]                         # (r, node)

    def g(l):
        Pl = rf.gegenbauer(l, d, torch.from_numpy(u)).numpy()
        return (powers @ (w * Pl)) / fact                                         # mu(r, l) / r!

    poly = 1 / fact                                                               # e^s (the constant slot)
    for l in list(degrees) + [0] * (N + 1 - len(degrees)):
        poly = np.convolve(poly, g(l))[:p_max + 1]
    return float(np.sum(beta * fact * poly / (N + 2.0) ** np.arange(p_max + 1)))


def rfmlp_blocks(d: int, N: int, max_total: int) -> dict:
    """The exact spectrum of K_RFMLP grouped by degree class (total degree <= max_total; the constant
    left out): ``classes`` (list of tuples), ``eig``, ``mult``, and ``tail`` (the trace beyond)."""
    classes = _degree_classes(max_total, N + 1)
    eig, mult = [], []
    for c in classes:
        counts = {v: c.count(v) for v in set(c)}
        arrangements = math.factorial(N + 1) // math.factorial(N + 1 - len(c))
        for v in counts.values():
            arrangements //= math.factorial(v)
        eig.append(rfmlp_eigenvalue(c, d, N))
        mult.append(arrangements * math.prod(rf.gegenbauer_dim(d, v) for v in c))
    eig, mult = np.array(eig), np.array(mult, dtype=float)
    const = rfmlp_eigenvalue((), d, N)
    tail = max(0.0, 0.5 - const - float(np.sum(eig * mult)))                      # trace kappa_1(1) = 1/2
    return {"classes": classes, "eig": eig, "mult": mult, "tail": np.array(tail)}


def rfmlp_target_powers(blocks: dict, target: str, d: int) -> np.ndarray:
    """The powers of a target in the classes of `rfmlp_blocks` ({k, k}: the (k, k) blocks of RFA)."""
    rfa_like = target_block_powers(target, d, 6)
    return np.array([rfa_like.get((c[0], c[0]), 0.0) if len(c) == 2 and c[0] == c[1] else 0.0 for c in blocks["classes"]])


def rfmlp_predicted_curves(d: int, N: int, sizes, grid, max_total: int, targets=rf.TARGETS) -> np.ndarray:
    """(K, T) predicted relative test error of kernel ridge with K_RFMLP (best lambda of the grid)."""
    b = rfmlp_blocks(d, N, max_total)
    out = np.zeros((len(sizes), len(targets)))
    for t, target in enumerate(targets):
        power = rfmlp_target_powers(b, target, d)
        for i, n in enumerate(sizes):
            out[i, t] = best_risk(b["eig"], b["mult"], power, n, grid, 0.5, float(b["tail"]))[0]
    return out


def empirical_spectrum(K: torch.Tensor, Y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Nystrom estimate of the spectrum of a kernel from its Gram matrix K (n_s, n_s) on fresh points
    with targets Y (n_s, T): eigenvalues (n_s,) of H K H / n_s (H centres: the intercept removes the
    constant) and target powers (n_s, T), (u_rho . (y - ybar))^2 / n_s, normalised to sum 1."""
    n = K.shape[0]
    Kc = K - K.mean(0, keepdim=True) - K.mean(1, keepdim=True) + K.mean()
    eta, U = torch.linalg.eigh(Kc / n)
    Yc = Y - Y.mean(0, keepdim=True)
    power = (U.T @ Yc) ** 2 / n                                       # (n_s, T)
    power = power / power.sum(0, keepdim=True)
    return eta.clamp_min(0).cpu().numpy(), power.cpu().numpy()


# ------------------------------------------------------------- BRFA: the zonal (invariant) sector
def pair_rotation_average(d: int, alpha: float, kmax: int, nodes_u: int = 32, nodes_ab: int = 40
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The BRFA pair kernel averaged over rotations, kappa_inv(u, u') on Gauss-Jacobi nodes of u
    (chapter, eq. rf-brfa-invariant): returns the nodes u (U,), weights (U,), kappa_inv (U, U).

    The pair kernel is h = F(alpha u, alpha u'; (1 + a)(1 + b) / 4) (1 + b) with u = <x_0, x_i>,
    u' = <x_0', x_j'>, a = <x_0, x_0'>, b = <x_i, x_j'>.  Expanding h in P_k(a) P_l(b) at fixed
    (u, u') and averaging over a rotation R of (x_0', x_j') with Schur orthogonality,
    E_R[P_k(<x_0, R x_0'>) P_l(<x_i, R x_j'>)] = delta_kl P_k(u) P_k(u') / B_k, so

        kappa_inv(u, u') = sum_{k <= kmax} B_k P_k(u) P_k(u') E_{a,b}[h P_k(a) P_k(b)]

    with a, b independent (density of <x, x'> on S^{d-1}).  At alpha = 0 it is the diagonal of the
    RFA blocks, sum_k c_kk P_k(u) P_k(u') / B_k (the tests check it, and a Monte-Carlo rotation
    average at alpha > 0).  The default 32 x 40 nodes give the top zonal eigenvalues of
    `brfa_zonal_spectrum` to a relative 1e-8 of 40 x 60 nodes (d = N = 8, alpha = sqrt 8)."""
    u, wu = sphere_quadrature(d, nodes_u)
    a, wa = sphere_quadrature(d, nodes_ab)
    A, B = np.meshgrid(a, a, indexing="ij")
    rho = torch.from_numpy((1 + A) * (1 + B) / 4)                                   # (a, b)
    s = torch.from_numpy(alpha * u)
    F = rf.relu_moment_biased(s[:, None, None, None], s[None, :, None, None], rho[None, None])   # (u, u', a, b)
    H = F.numpy() * ((1 + B) * wa[:, None] * wa[None, :])[None, None]
    Pa = np.stack([rf.gegenbauer(k, d, torch.from_numpy(a)).numpy() for k in range(kmax + 1)])  # (k, a)
    Pu = np.stack([rf.gegenbauer(k, d, torch.from_numpy(u)).numpy() for k in range(kmax + 1)])  # (k, u)
    dims = np.array([rf.gegenbauer_dim(d, k) for k in range(kmax + 1)], dtype=float)
    Ekk = np.einsum("ka,uvab,kb->kuv", Pa, H, Pa)                                   # (k, u, u'): E[h P_k P_k]
    return u, wu, np.einsum("k,ku,kv,kuv->uv", dims, Pu, Pu, Ekk)


def zonal_basis(d: int, degree: int, u: np.ndarray) -> np.ndarray:
    """e_r(u) = sqrt(B_r) P_r(u), r = 0..degree, orthonormal under the density of u: (r, node)."""
    return np.stack([math.sqrt(rf.gegenbauer_dim(d, r)) * rf.gegenbauer(r, d, torch.from_numpy(np.asarray(u))).numpy()
                     for r in range(degree + 1)])


def brfa_zonal_spectrum(d: int, N: int, alpha: float, kmax: int, degree: int = 24, nodes_u: int = 32,
                        nodes_ab: int = 40) -> dict[str, np.ndarray]:
    """The exact spectrum of K_BRFA on the zonal sector, the functions (1/N) sum_i f(<x_0, x_i>)
    (every zonal target of the study lies there): ``eig`` (degree,) and ``vec`` (degree, degree),
    the eigenvectors in the basis e_1..e_degree, with the constant left out (the intercept), and
    ``trace``, the trace of the sector including the constant.

    With kappa_inv = sum_rs A_rs e_r(u) e_s(u') (`pair_rotation_average`), the functions
    E_r = (1/N) sum_i e_r(u_i) are orthogonal with ||E_r||^2 = 1/N (r >= 1), so the operator is
    A_rs / N on r, s >= 1.  Its trace E K_inv(x, x) is (1/N) sum_r A_rr + (1 - 1/N) A_00."""
    u, wu, kin = pair_rotation_average(d, alpha, kmax, nodes_u, nodes_ab)
    e = zonal_basis(d, degree, u) * wu                                              # (r, node)
    A = e @ kin @ e.T                                                               # (r, s)
    eig, vec = np.linalg.eigh(A[1:, 1:] / N)
    return {"eig": np.clip(eig, 0.0, None), "vec": vec, "trace": np.array(np.trace(A) / N + (1 - 1 / N) * A[0, 0])}


def zonal_target_powers(target: str, d: int, vec: np.ndarray, nodes: int = 200) -> np.ndarray:
    """The powers of a zonal target in the eigenvectors ``vec`` (r, mode) of `brfa_zonal_spectrum`:
    (U^T v)^2, v_r = E[F e_r] the coefficients of its profile F (the sqrt(N) of the target makes
    the functions E_r orthonormal)."""
    u, w = sphere_quadrature(d, nodes)
    v = zonal_basis(d, vec.shape[0], u)[1:] @ (w * rf.zonal_profile(target, d, u))
    return (vec.T @ v) ** 2


def brfa_trace(d: int, N: int, alpha: float, nodes: int = 40) -> float:
    """E[K_BRFA(x, x)] = (2/N) E S_2(alpha u) + (1 - 1/N) E[F(alpha u_i, alpha u_j; (1+b)/2) (1+b)],
    where S_2(t) = F(t, t; 1) and, with x_0 fixed, b = u_i u_j + sqrt((1-u_i^2)(1-u_j^2)) c, c the
    inner product of two uniform points of S^{d-2} (needs d >= 3)."""
    if d < 3:
        raise ValueError(f"random-features: brfa_trace needs d >= 3, got d={d}")
    u, wu = sphere_quadrature(d, nodes)
    c, wc = sphere_quadrature(d - 1, nodes)
    s = torch.from_numpy(alpha * u)
    diag = float(np.sum(wu * rf.relu_moment_biased(s, s, torch.ones_like(s)).numpy()) * 2)
    Ui, Uj, C = np.meshgrid(u, u, c, indexing="ij")
    b = Ui * Uj + np.sqrt((1 - Ui ** 2) * (1 - Uj ** 2)) * C
    F = rf.relu_moment_biased(torch.from_numpy(alpha * Ui), torch.from_numpy(alpha * Uj), torch.from_numpy((1 + b) / 2)).numpy()
    cross = float(np.einsum("i,j,k,ijk->", wu, wu, wc, F * (1 + b)))
    return diag / N + (1 - 1 / N) * cross


def rfa_complement(d: int, N: int, kmax: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The RFA spectrum outside the zonal sector: every block (k, l) with its multiplicity, less
    the one zonal function of each diagonal block (k, k); returns eig, mult, tail."""
    b = rfa_blocks(d, N, kmax)
    return b["eig"], b["mult"] - (b["k"] == b["l"]), float(b["tail"])


def brfa_predicted_curves(d: int, N: int, alpha: float, sizes, grid, kmax: int,
                          targets=("geg1", "geg2", "geg3", "pow3")) -> tuple[np.ndarray, np.ndarray]:
    """(2, K, T) predicted relative test error of kernel ridge with K_BRFA (best lambda of the grid)
    on the zonal targets, and the two complement scales (2,).

    The zonal sector is exact (`brfa_zonal_spectrum`); the rest of the BRFA spectrum is not
    computed, and is replaced by the RFA complement (`rfa_complement`) scaled by s: row 0 with
    s = 1 (the bias changes only the zonal sector), row 1 with s = its exact trace over RFA's
    (tr K_BRFA - tr K_inv) / (tr K_RFA - tr K_RFA,inv) (the bias scales the rest uniformly).  The
    two rows bracket the prediction (chapter, "The BRFA spectrum").  At alpha = 0 both rows are
    the exact RFA curves."""
    z = brfa_zonal_spectrum(d, N, alpha, kmax)
    trace = brfa_trace(d, N, alpha)
    ceig, cmult, ctail = rfa_complement(d, N, kmax)
    rest_rfa = float(np.sum(ceig * cmult)) + ctail                                  # tr K_RFA - tr K_RFA,inv
    scales = np.array([1.0, (trace - float(z["trace"])) / rest_rfa])
    out = np.zeros((2, len(sizes), len(targets)))
    for j, s in enumerate(scales):
        eig = np.concatenate([z["eig"], s * ceig])
        mult = np.concatenate([np.ones_like(z["eig"]), cmult])
        for t, target in enumerate(targets):
            power = np.concatenate([zonal_target_powers(target, d, z["vec"]), np.zeros_like(ceig)])
            for i, n in enumerate(sizes):
                out[j, i, t] = best_risk(eig, mult, power, n, grid, trace, s * ctail)[0]
    return out, scales
