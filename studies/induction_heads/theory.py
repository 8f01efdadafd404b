"""What the theory predicts for induction-heads, without training.

Bayes predictor (Dirichlet-multinomial conjugacy; exact for a uniform first token, rows independent a
posteriori):  q_j = (n_{x_t j} + alpha) / (m + k alpha),  m = n_{x_t .}.
Laplace(beta) "unigram" family: (c_j + beta) / (t + k beta), c_j = occurrences of j in x_{1:t}
(Edelman et al. 2024's unigram strategy is beta = 1).

Exact per-position risks.  The Bayes predictive is the exact law of x_{t+1} given the prefix, so the
counts form a Markov chain with transition probabilities q and a dynamic program over
(x_t, n_00, n_01, n_10) (n_11 = t - 1 - the rest) gives every risk at k = 2 exactly
(`risk_curves_k2`).  c is a function of the state: c_j = n_{j.} + [x_t = j] (every occurrence but
the last has an outgoing transition), so Laplace and the best functions of c ("opt_uni") or of
(c, x_t) ("opt_uni_cur") are exact too.  For any k and small T, `population` enumerates all k^T
prefixes with their Dirichlet-multinomial weights (1/k) prod_i B(alpha + n_i.)/B(alpha).

The plateau (T3), the escape rate g (T4) and the alignment derivatives (T2) of the minimal model are
computed here from the exact population loss of `model.mm_forward`.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from studies.induction_heads import model as md


def _entropy(q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(q > 0, q * np.log(q), 0.0).sum(-1)


def risk_curves_k2(alpha: float, T: int, betas=(1.0,)) -> dict[str, np.ndarray]:
    """Exact per-position risks (t = 1..T) at k = 2, x_1 uniform: Bayes, Laplace(beta) for each beta,
    opt_uni, opt_uni_cur and uniform (ln 2).  Dynamic program over (x_t, n00, n01, n10)."""
    n = T + 1
    pr = np.zeros((2, n, n, n))
    pr[0, 0, 0, 0] = pr[1, 0, 0, 0] = 0.5                                  # t = 1: no transitions yet
    out = {"bayes": np.zeros(T), "opt_uni": np.zeros(T), "opt_uni_cur": np.zeros(T), "uniform": np.full(T, math.log(2))}
    for beta in betas:
        out[f"laplace_{beta:g}"] = np.zeros(T)
    for t in range(1, T + 1):
        s = t                                                              # counts range over 0..t-1
        P = pr[:, :s, :s, :s]
        a, b, c = np.meshgrid(np.arange(s), np.arange(s), np.arange(s), indexing="ij")
        d = t - 1 - a - b - c                                              # n11
        valid = d >= 0
        # q0 = prob of next token 0 given state
        q0 = np.stack([(a + alpha) / (a + b + 2 * alpha), (c + alpha) / (c + np.maximum(d, 0) + 2 * alpha)])
        q0 = np.where(valid[None], q0, 0.5)
        P = np.where(valid[None], P, 0.0)
        q = np.stack([q0, 1 - q0], -1)                                     # (2, s, s, s, 2)
        out["bayes"][t - 1] = float((P * _entropy(q)).sum())
        c0 = np.where(valid[None], np.stack([a + b + 1, a + b]), 0)        # occurrences of 0, for x_t = 0 / 1
        for beta in betas:
            r0 = (c0 + beta) / (t + 2 * beta)
            ce = -(q[..., 0] * np.log(r0) + q[..., 1] * np.log1p(-r0))
            out[f"laplace_{beta:g}"][t - 1] = float((P * ce).sum())
        for key, groups in (("opt_uni", c0), ("opt_uni_cur", c0 + (t + 1) * np.array([0, 1])[:, None, None, None])):
            M = np.zeros((2 * (t + 1) + 2, 2))
            np.add.at(M, groups.ravel(), (P[..., None] * q).reshape(-1, 2))
            tot = M.sum(-1, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[key][t - 1] = float(-np.where(M > 0, M * np.log(M / tot), 0.0).sum())
        if t == T:
            break
        new = np.zeros_like(pr)
        Pq = P[..., None] * q                                              # (2, s, s, s, 2)
        new[0, 1:s + 1, :s, :s] += Pq[0, ..., 0]                           # 0 -> 0: n00 + 1
        new[1, :s, 1:s + 1, :s] += Pq[0, ..., 1]                           # 0 -> 1: n01 + 1
        new[0, :s, :s, 1:s + 1] += Pq[1, ..., 0]                           # 1 -> 0: n10 + 1
        new[1, :s, :s, :s] += Pq[1, ..., 1]                                # 1 -> 1: n11 + 1 (implicit)
        pr = new
    return out


def closed_forms(k: int, alpha: float, beta: float = 1.0) -> dict[str, float]:
    """R_1^Bayes = ln k, R_2^Bayes = (1/k) H(rep) + (1 - 1/k) ln k, R_1^Laplace(beta)."""
    rep = np.array([(1 + alpha) / (1 + k * alpha)] + [alpha / (1 + k * alpha)] * (k - 1))
    return {"bayes_1": math.log(k), "bayes_2": float(_entropy(rep) / k + (1 - 1 / k) * math.log(k)),
            "laplace_1": float(-(1 / k) * math.log((1 + beta) / (1 + k * beta))
                               - ((k - 1) / k) * math.log(beta / (1 + k * beta)))}


# ------------------------------------------------------------------------------ predictors on data
def transition_counts(x: torch.Tensor, k: int) -> torch.Tensor:
    """(..., T, k, k): n_ij inside x_{1:t} for each t (transitions s -> s+1 with s + 1 <= t)."""
    pair = torch.nn.functional.one_hot(x[..., :-1] * k + x[..., 1:], k * k).to(torch.float64)   # (..., T-1, k^2)
    zero = torch.zeros_like(pair[..., :1, :])
    return torch.cat([zero, pair.cumsum(-2)], -2).reshape(*x.shape, k, k)


def bayes_predictive(x: torch.Tensor, k: int, alpha: float) -> torch.Tensor:
    """(..., T, k) Bayes predictive q_t = (n_{x_t .} + alpha)/(m + k alpha) at each position."""
    n = transition_counts(x, k)                                            # (..., T, k, k)
    row = torch.gather(n, -2, x[..., None, None].expand(*x.shape, 1, k)).squeeze(-2)   # (..., T, k)
    return (row + alpha) / (row.sum(-1, keepdim=True) + k * alpha)


def laplace_predictive(x: torch.Tensor, k: int, beta: float) -> torch.Tensor:
    """(..., T, k) (c_j + beta)/(t + k beta), c_j counting x_1..x_t."""
    c = torch.nn.functional.one_hot(x, k).to(torch.float64).cumsum(-2)
    t = torch.arange(1, x.shape[-1] + 1, dtype=torch.float64, device=x.device)[:, None]
    return (c + beta) / (t + k * beta)


def population(k: int, T: int, alpha: float, device=None):
    """All k^T prefixes x (N, T), their probabilities (N,) and Bayes targets (N, T, k)."""
    x = torch.tensor(list(itertools.product(range(k), repeat=T)), dtype=torch.int64, device=device)
    n = transition_counts(x, k)[:, -1]                                     # (N, k, k)
    la = torch.lgamma(torch.tensor(alpha, dtype=torch.float64))
    lw = (torch.lgamma(n + alpha).sum(-1) - k * la + math.lgamma(k * alpha)
          - torch.lgamma(n.sum(-1) + k * alpha)).sum(-1) - math.log(k)
    return x, torch.exp(lw), bayes_predictive(x, k, alpha)


def prefix_population(k: int, T: int, alpha: float, device=None):
    """The distinct prefixes x_1..x_t (t = 1..T) with x_1 = 0, their weights k P(x_{1:t}) / T (label
    symmetry: every model of the RM family is invariant under relabelling the states, so x_1 = 0
    stands for all k first tokens) and their Bayes targets: (features of `model.rm_features`,
    weights (Nq,), targets (Nq, k))."""
    x, w, Q = population(k, T, alpha, device=device)
    keep = x[:, 0] == 0
    x, w, Q = x[keep], w[keep] * k, Q[keep]
    prefixes, weights, targets = [], [], []
    for t in range(1, T + 1):
        X, inv = torch.unique(x[:, :t], dim=0, return_inverse=True)
        W = torch.zeros(X.shape[0], dtype=torch.float64).index_add_(0, inv, w)
        first = torch.zeros(X.shape[0], dtype=torch.int64).scatter_(0, inv, torch.arange(x.shape[0]))
        prefixes.append(X); weights.append(W / T); targets.append(Q[first, t - 1])
    return md.rm_features(prefixes, k), torch.cat(weights), torch.cat(targets)


def rm_prefix_loss(theta: torch.Tensor, ppop) -> torch.Tensor:
    """(e,) exact population loss of the RM on the prefix population (weights (e|1, Nq), targets (e|1, Nq, k))."""
    f, W, Q = ppop
    logq, _ = md.rm_forward(theta, f)
    return (W * -(Q * logq).sum(-1)).sum(-1)


def population_risk(logq: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-position population cross-entropy (..., T)."""
    return (weights[..., None] * -(targets * logq).sum(-1)).sum(-2)


# ------------------------------------------------------------------------------ the minimal model
def rm_loss(theta: torch.Tensor, pop, k: int) -> torch.Tensor:
    x, w, Q = pop
    v, Wp, Ws = md.rm_to_mm(theta, k, x.shape[1])
    logq, _, _ = md.mm_forward(v, Wp, Ws, x, k)
    return md.population_loss(logq, w, Q)


def plateau(k: int, T: int, alpha: float, ppop=None) -> dict[str, float]:
    """T3/T4/T2 at W_prev = 0: L*_plat and (gamma*, b*) by Newton on the two plateau parameters, the
    escape rate g = dL/dw, dL/dp, d2L/dp2 (exactly 0: S does not depend on layer 1) and d2L/dp dw."""
    ppop = ppop or prefix_population(k, T, alpha)

    def loss(p, gamma, b, w):
        return rm_prefix_loss(torch.stack([p, gamma, b, w])[None], ppop)[0]

    z = torch.zeros((), dtype=torch.float64)
    plat = lambda gb: loss(z, gb[0], gb[1], z)
    gb = torch.zeros(2, dtype=torch.float64)
    for _ in range(40):
        step = torch.linalg.solve(torch.autograd.functional.hessian(plat, gb),
                                  torch.autograd.functional.jacobian(plat, gb))
        gb = gb - step
        if float(step.abs().max()) < 1e-15:
            break
    f = lambda pw: loss(pw[0], gb[0], gb[1], pw[1])
    pw = torch.zeros(2, dtype=torch.float64)
    grad = torch.autograd.functional.jacobian(f, pw)
    H = torch.autograd.functional.hessian(f, pw)
    return {"L_plat": float(plat(gb)), "gamma": float(gb[0]), "b": float(gb[1]), "g": float(grad[1]),
            "dL_dp": float(grad[0]), "d2L_dp2": float(H[0, 0]), "d2L_dpdw": float(H[0, 1]),
            "grad_norm": float(torch.autograd.functional.jacobian(plat, gb).abs().max())}


def best_laplace(pop, k: int) -> tuple[float, float]:
    """(beta, risk) of the best Laplace(beta) on the enumerated population (golden section on ln beta)."""
    x, w, Q = pop

    def risk(lb):
        return float(population_risk(torch.log(laplace_predictive(x, k, math.exp(lb))), w, Q).mean())

    lo, hi = -3.0, 4.0
    for _ in range(80):
        m1, m2 = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
        if risk(m1) < risk(m2):
            hi = m2
        else:
            lo = m1
    return math.exp((lo + hi) / 2), risk((lo + hi) / 2)


def ideal_theta(k: int, alpha: float, beta: float, offset: float | None = None) -> torch.Tensor:
    """T1's head: v_1 = 60 (layer 1 on the previous token), W_prev = beta (I|0), W_self = 0 but for
    the BOS logit beta + offset (default ln(k alpha))."""
    off = math.log(k * alpha) if offset is None else offset
    return torch.tensor([[60.0, 0.0, beta + off, beta]], dtype=torch.float64)


def ideal_head_loss(pop, k: int, alpha: float, beta: float, offset: float | None = None) -> float:
    """T1 through the full MM forward: the loss tends to Bayes as beta -> infinity."""
    x, w, Q = pop
    v, Wp, Ws = md.rm_to_mm(ideal_theta(k, alpha, beta, offset), k, x.shape[1])
    logq, _, _ = md.mm_forward(v, Wp, Ws, x, k)
    return float(md.population_loss(logq, w, Q)[0])


def escape_time(g: float, eta: float, s0, transit: float = 0.0):
    """T4 in discrete GD: s = q + kappa grows by (1 + eta|g|) per step, w ~ s^2/4, so the time for w to
    reach O(1) is ln(4/s0^2) / (2 ln(1 + eta |g|)) plus the O(1) transit."""
    return np.log(4.0 / np.asarray(s0, dtype=float) ** 2) / (2 * math.log1p(eta * abs(g))) + transit


def quartic_time(g: float, eta: float, sigma):
    """T5, n = 4 balanced factors at sigma: dx/dt = eta|g| x^3, blow-up at 1/(2 eta |g| sigma^2)."""
    return 1.0 / (2 * eta * abs(g) * np.asarray(sigma, dtype=float) ** 2)


def predict(config) -> dict:
    """The theory's numbers at ``config`` (exact DP at k = 2 and the reduced model's plateau)."""
    r = config.reduced
    curves = risk_curves_k2(config.alpha, config.dp_tokens)
    pl = plateau(r.k, r.n_tokens, 1.0)
    return {"bayes_mean_k2": float(curves["bayes"].mean()), "laplace1_mean_k2": float(curves["laplace_1"].mean()),
            "opt_uni_cur_mean_k2": float(curves["opt_uni_cur"].mean()), **{f"rm_{a}": b for a, b in pl.items()}}
