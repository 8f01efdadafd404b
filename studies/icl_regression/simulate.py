"""The sub-experiments of the study: one function per phase, each returning a typed result.

`run` is the list of phases; `workbench.phases.run_phases` owns threads, autograd, progress and
timing and stores each result as ``<phase>.<field>`` (see `config` for which fields drive which
phase).  Arrays are numpy on the CPU; scalars are stored as arrays of shape (1,).  Every random
draw is a `workbench.streams.Stream` draw (`data.stream`: named by sub-experiment, keyed by
program, length and chunk, with members and steps as the draws' axes), made on the config's device.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from workbench.phases import Phase, run_phases
from workbench.record import Record
from workbench.runtime import Prefetcher
from workbench.train import Adam, GD, Scheduled, TrainResult, cosine_schedule, log_steps, train

from studies.icl_regression import data as dt
from studies.icl_regression import model as md
from studies.icl_regression import theory as th
from studies.icl_regression.config import Config

EXP_SOFTMAX, EXP_MIXED, EXP_SMALL_N, EXP_LONG_N = "fixed-length", "mixed-lengths", "small-n", "long-n"
"""Stream keys of the four softmax training programs (fixed N, mixed lengths, small N, long N)."""
BLOCK_NUMBERS = 1 << 24
"""Training batches are drawn a block of steps at a time, as many steps as keep one block's member
prompts under this many numbers (128 MB in float64), at least one step."""
EVAL_CHUNK = 2000
"""Prompts per chunk of the evaluation set."""


# ------------------------------------------------------------------------------- theory
@dataclass
class TheoryCurves:
    """Closed-form curves against the context length N, and He et al.'s one-head pattern family."""

    N: np.ndarray
    """(n,) context lengths of the curves, log-spaced from d + 2 to max(test_lengths)."""
    gd_star: np.ndarray
    """(n,) R*_GD(N), the optimal one-step GD risk."""
    dgd_star: np.ndarray
    """(n,) R*_DGD(N), the optimal debiased-GD risk."""
    ols: np.ndarray
    """(n,) the OLS risk."""
    ridge_N: np.ndarray
    """(r,) lengths of the ridge (Bayes) risks: test_lengths and N."""
    ridge: np.ndarray
    """(r,) Bayes risk by Monte Carlo over Wishart draws."""
    ridge_se: np.ndarray
    """(r,) its standard error."""
    one_head_omega: np.ndarray
    """(60,) logit scales omega of the one-head pattern KQ = omega diag(I, 0)."""
    one_head_risk: np.ndarray
    """(60,) best risk over mu of that pattern, averaged over min(eval_prompts, 20000) covariates."""
    one_head_small: np.ndarray
    """(len(small_n.lengths),) the family's best risk (over the same omega grid) at each short length."""


ONE_HEAD_OMEGAS = torch.linspace(0.02, 1.2, 60, dtype=torch.float64)
"""The logit scales omega over which He et al.'s one-head pattern family is minimised."""


def one_head_family(X: Tensor, x_q: Tensor, psi2: float, sigma2: float) -> Tensor:
    """Best risk over mu of the one-head pattern at every omega of `ONE_HEAD_OMEGAS` (`theory.single_head_pattern_risk`,
    ten omegas at a time), averaged over the covariates X (n, N, d), x_q (n, d) -> (60,)."""
    return torch.cat([th.single_head_pattern_risk(om, X, x_q, psi2, sigma2)[0] for om in ONE_HEAD_OMEGAS.split(10)])


def theory_curves(cfg: Config) -> TheoryCurves:
    """Closed-form curves vs context length, ridge by Wishart Monte Carlo, the one-head family."""
    dtype = torch.float64
    S = cfg.sigma_main
    B = cfg.psi2 * torch.eye(cfg.d, dtype=dtype)
    grid = np.unique(np.round(np.geomspace(cfg.d + 2, max(cfg.test_lengths), 40)).astype(int))
    gd = np.array([float(th.gd_optimal_risk(S, B, cfg.sigma2, n)) for n in grid])
    dgd = np.array([float(th.dgd_optimal_risk(S, B, cfg.sigma2, n)) for n in grid])
    ols = np.array([th.ols_risk(cfg.d, int(n), cfg.sigma2) for n in grid])
    ridge_lengths = np.array(sorted(set(cfg.test_lengths) | {cfg.n_context}))
    ridge = [th.ridge_risk_mc(S, cfg.psi2, cfg.sigma2, int(n), cfg.mc.wishart_draws,
                              dt.stream(cfg.seed, "wishart", cfg.cov, int(n)), device=cfg.torch_device)
             for n in ridge_lengths]
    # He et al.'s one-head pattern family (KQ = omega diag(I, 0), OV = mu e): best risk vs omega
    n_cov = min(cfg.eval_prompts, 20000)
    z, _, _ = dt.draw_standard(dt.stream(cfg.seed, "one-head-family"), n_cov, cfg.n_context, cfg.d, dtype=dtype)
    x = z @ torch.linalg.cholesky(S).T
    one_head = one_head_family(x[:, :-1], x[:, -1], cfg.psi2, cfg.sigma2)
    small = []
    for L in cfg.small_n.lengths:
        zs, _, _ = dt.draw_standard(dt.stream(cfg.seed, "one-head-family", L), n_cov, L, cfg.d, dtype=dtype)
        xs = zs @ torch.linalg.cholesky(S).T
        small.append(float(one_head_family(xs[:, :-1], xs[:, -1], cfg.psi2, cfg.sigma2).min()))
    return TheoryCurves(
        one_head_small=np.array(small), N=grid, gd_star=gd, dgd_star=dgd, ols=ols, ridge_N=ridge_lengths, ridge=np.array([r[0] for r in ridge]),
        ridge_se=np.array([r[1] for r in ridge]), one_head_omega=ONE_HEAD_OMEGAS.numpy(), one_head_risk=one_head.numpy())


# ------------------------------------------------------------------ Monte Carlo checks
@dataclass
class MonteCarlo:
    """A1: the full-LSA closed form against Monte Carlo; A3: GD*, DGD*, OLS and ridge against Monte Carlo.
    Means and standard errors are over ``mc.prompts`` prompts; scalars have shape (1,)."""

    lsa_closed: np.ndarray
    """(3,) closed-form full-LSA risk of three random (p, K, Sigma, B)."""
    lsa_mc: np.ndarray
    """(3,) their Monte Carlo estimates."""
    lsa_se: np.ndarray
    """(3,) standard errors of the estimates."""
    lsa_d: np.ndarray
    """(1,) dimension of the A1 sets, min(d, 3)."""
    lsa_N: np.ndarray
    """(1,) context length of the A1 sets, min(n_context, 8)."""
    gd: np.ndarray
    """(1,) risk of one-step GD at Gamma* on Sigma_main."""
    gd_se: np.ndarray
    """(1,)"""
    dgd: np.ndarray
    """(1,) risk of debiased GD at Gamma_D*."""
    dgd_se: np.ndarray
    """(1,)"""
    ols: np.ndarray
    """(1,) risk of OLS."""
    ols_se: np.ndarray
    """(1,)"""
    ridge: np.ndarray
    """(1,) risk of the ridge (posterior-mean) predictor."""
    ridge_se: np.ndarray
    """(1,)"""
    ridge_wishart: np.ndarray
    """(1,) the Bayes risk's Wishart Monte Carlo (its closed form up to one expectation)."""
    ridge_wishart_se: np.ndarray
    """(1,)"""


def _random_spd(d: int, source, n: int, floor: float) -> Tensor:
    """``n`` random SPD matrices A A^T / d + floor I (members 0..n-1 of ``source``), (n, d, d)."""
    A = source.normal((d, d), members=n)
    return A @ A.transpose(-1, -2) / d + floor * torch.eye(d, dtype=torch.float64)


def monte_carlo(cfg: Config) -> MonteCarlo:
    """A1 and A3 by Monte Carlo.

    Each prompt contributes its risk conditional on the context and task, sigma^2 + (w - beta)^T
    Sigma (w - beta) for the linear predictor yhat = x_q^T w (the query integrated analytically).
    """
    dtype, device = cfg.torch_dtype, cfg.torch_device
    out: dict[str, np.ndarray] = {}
    # --- A1: three random LSA parameter sets, each with its own random Sigma and B
    d1, N1, n_sets = min(cfg.d, 3), min(cfg.n_context, 8), 3
    g = dt.stream(cfg.seed, "mc-lsa-parameters")
    Sig = _random_spd(d1, g.child("Sigma"), n_sets, 0.3)
    Bm = _random_spd(d1, g.child("B"), n_sets, 0.2)
    p = 0.5 * g.child("p").normal(d1 + 1, members=n_sets)
    K = 0.5 / math.sqrt(d1) * g.child("K").normal((d1 + 1, d1), members=n_sets)
    closed = th.lsa_population_risk(p, K, Sig, Bm, cfg.sigma2, N1)
    sums = torch.zeros(n_sets, dtype=torch.float64)
    sq = torch.zeros(n_sets, dtype=torch.float64)
    Ls, LBs = torch.linalg.cholesky(Sig), torch.linalg.cholesky(Bm)
    sizes = dt.eval_chunks(cfg.mc.prompts, 20000)
    for c, n in enumerate(sizes):
        # the query is integrated analytically, so draw_standard's N1 + 1 rows give N1 context rows
        z, bz, ez = dt.draw_standard(dt.stream(cfg.seed, "mc-lsa", c), n, N1 - 1, d1, members=n_sets,
                                     device=device, dtype=dtype)
        x = z @ Ls.to(device, dtype).transpose(-1, -2)[:, None]                      # (s, n, N, d)
        beta = bz @ LBs.to(device, dtype).transpose(-1, -2)                          # (s, n, d)
        y = torch.einsum("snld,snd->snl", x, beta) + ez * cfg.sigma2 ** 0.5
        Zt = torch.cat([x, y[..., None]], -1)                                         # (s, n, N, d+1)
        Shat = torch.einsum("snli,snlj->snij", Zt, Zt) / N1                           # (s, n, d+1, d+1)
        w = torch.einsum("sij,snjk,sk->sni", K.to(device, dtype).transpose(-1, -2), Shat, p.to(device, dtype)) - beta
        r = cfg.sigma2 + torch.einsum("sni,sij,snj->sn", w, Sig.to(device, dtype), w)
        sums += r.sum(-1).double().cpu()
        sq += r.pow(2).sum(-1).double().cpu()
    n_tot = float(cfg.mc.prompts)
    mean = sums / n_tot
    se = torch.sqrt((sq / n_tot - mean ** 2) / (n_tot - 1))
    out.update({"lsa_closed": closed.numpy(), "lsa_mc": mean.numpy(), "lsa_se": se.numpy(),
                "lsa_d": np.array([d1]), "lsa_N": np.array([N1])})

    # --- A3: optimal one-step GD, debiased GD, OLS and ridge at the main setting
    S = cfg.sigma_main
    B = cfg.psi2 * torch.eye(cfg.d, dtype=torch.float64)
    N, d = cfg.n_context, cfg.d
    G_gd = th.gamma_star(S, B, cfg.sigma2, N).to(device, dtype)
    G_dgd = th.gamma_dgd_star(S, B, cfg.sigma2, N).to(device, dtype)
    L = torch.linalg.cholesky(S)
    Sd = S.to(device, dtype)
    lam = cfg.sigma2 / cfg.psi2
    names = ("gd", "dgd", "ols", "ridge")
    acc = {k: [0.0, 0.0] for k in names}
    for c, n in enumerate(sizes):
        P = dt.sample_prompts(dt.stream(cfg.seed, "mc-estimators", c), n, N, L, cfg.psi2, cfg.sigma2,
                              device=device, dtype=dtype)
        s = torch.einsum("nld,nl->nd", P.X, P.y) / N                                   # (n, d)
        s_c = torch.einsum("nld,nl->nd", P.X, P.y - P.y.mean(-1, keepdim=True)) / N    # centred
        XtX = torch.einsum("nli,nlj->nij", P.X, P.X)                                  # (n, d, d)
        eye = torch.eye(d, dtype=dtype, device=device)
        ws = {
            "gd": s @ G_gd.T,
            "dgd": s_c @ G_dgd.T,
            "ols": torch.linalg.solve(XtX, N * s),
            "ridge": torch.linalg.solve(XtX + lam * eye, N * s),
        }
        for k, w in ws.items():
            dw = w - P.beta
            r = cfg.sigma2 + torch.einsum("ni,ij,nj->n", dw, Sd, dw)
            acc[k][0] += float(r.sum())
            acc[k][1] += float(r.pow(2).sum())
    for k in names:
        m = acc[k][0] / n_tot
        out[k] = np.array([m])
        out[f"{k}_se"] = np.array([math.sqrt(max(acc[k][1] / n_tot - m * m, 0.0) / (n_tot - 1))])
    # the ridge closed form is itself a Monte Carlo average, over Wishart draws of X^T X
    rm, rse = th.ridge_risk_mc(S, cfg.psi2, cfg.sigma2, N, cfg.mc.wishart_draws,
                               dt.stream(cfg.seed, "mc-wishart", cfg.cov, N), device=device)
    out["ridge_wishart"], out["ridge_wishart_se"] = np.array([rm]), np.array([rse])
    return MonteCarlo(**out)


# ------------------------------------------------------------------------ LSA, exact GD
@dataclass
class LSATraining:
    """Exact GD on the LSA population risk; members e = `Config.lsa_members`, t observed steps."""

    cov: np.ndarray
    """(e,) covariance tag of each member (`data.COV_TAGS`)."""
    init: np.ndarray
    """(e,) initialisation tag of each member (`data.INIT_TAGS`)."""
    seed_index: np.ndarray
    """(e,) seed index of each member."""
    steps: np.ndarray
    """(t,) the observed GD steps."""
    gap: np.ndarray
    """(t, e) R(p, K) - R* along training."""
    gamma_err: np.ndarray
    """(t, e) ||Gamma - Gamma*||_F / ||Gamma*||_F along training."""
    Gamma_traj: np.ndarray
    """(t, e, d, d) Gamma = p_y K_x^T + k_y p_x^T along training."""
    p: np.ndarray
    """(e, d+1) trained p."""
    K: np.ndarray
    """(e, d+1, d) trained K."""
    R_star: np.ndarray
    """(e,) R*_GD(N) of each member's Sigma."""
    Gamma_star: np.ndarray
    """(e, d, d) Gamma* of each member's Sigma."""
    grad_norm: np.ndarray
    """(e,) norm of the final gradient."""
    eval_p: np.ndarray
    """(d+1,) p of the model evaluated at every test length: (Sigma_main, lsa.init, seed 0)."""
    eval_K: np.ndarray
    """(d+1, d) its K."""


def lsa_inits(cfg: Config, members: list[tuple[str, str, int]], device, dtype) -> tuple[Tensor, Tensor]:
    """Initial (p (e, d+1), K (e, d+1, d)) of LSA members (covariance, init, seed index): stream
    "lsa-init" keyed by (covariance, init), the seed indices as its members, one draw per group."""
    p = torch.zeros((len(members), cfg.d + 1), dtype=dtype, device=device)
    K = torch.zeros((len(members), cfg.d + 1, cfg.d), dtype=dtype, device=device)
    for c, i in dict.fromkeys((c, i) for c, i, _ in members):
        idx = [k for k, m in enumerate(members) if m[:2] == (c, i)]
        p[idx], K[idx] = md.lsa_init(cfg.d, i, dt.covariance(cfg.d, c, cfg.rho), dt.stream(cfg.seed, "lsa-init", c, i),
                                     [members[k][2] for k in idx], device=device, dtype=dtype)
    return p, K


def lsa_training(cfg: Config, progress: bool = False) -> LSATraining:
    """Exact full-batch GD on the closed-form population risk of the full LSA, one batched program
    over Sigma in {I, AR(rho)} x init in {zfb, random} x seeds."""
    dtype, device = cfg.torch_dtype, cfg.torch_device
    members = cfg.lsa_members
    d = cfg.d
    sig = {"iso": dt.covariance(d, "iso", cfg.rho), "ar": dt.covariance(d, "ar", cfg.rho)}
    p0, K0 = lsa_inits(cfg, members, device, dtype)
    Sig = torch.stack([sig[c] for c, _, _ in members]).to(device, dtype)            # (e, d, d)
    B = (cfg.psi2 * torch.eye(d, dtype=dtype, device=device)).expand_as(Sig)
    risk = th.LSARisk(Sig, B, cfg.sigma2, cfg.n_context)
    R_star = th.gd_optimal_risk(Sig, B, cfg.sigma2, cfg.n_context)                 # (e,)
    G_star = th.gamma_star(Sig, B, cfg.sigma2, cfg.n_context)                       # (e, d, d)
    params = {"p": p0, "K": K0}
    observers = {
        "gap": lambda q: risk(q["p"], q["K"]) - R_star,
        "Gamma": lambda q: th.lsa_gamma(q["p"], q["K"]),
    }
    result = train(params, lambda q, step: risk(q["p"], q["K"]), GD(cfg.lsa.lr), cfg.lsa.steps,
                   observers=observers, observe_at=log_steps(cfg.lsa.steps, 60), underflow="ignore",
                   progress=progress, desc="LSA exact GD")
    q = {k: v.clone().requires_grad_(True) for k, v in result.params.items()}
    grads = torch.autograd.grad(risk(q["p"], q["K"]).sum(), [q["p"], q["K"]])
    grad_norm = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads))
    Gam = result.trajectory["Gamma"]                                                 # (t, e, d, d)
    gamma_err = torch.linalg.norm(Gam - G_star, dim=(-2, -1)) / torch.linalg.norm(G_star, dim=(-2, -1))
    main = members.index((cfg.cov, cfg.lsa.init, 0))   # the model used for length generalisation
    p, K = result.params["p"].cpu().numpy(), result.params["K"].cpu().numpy()
    return LSATraining(
        cov=np.array([dt.COV_TAGS[c] for c, _, _ in members]), init=np.array([dt.INIT_TAGS[i] for _, i, _ in members]),
        seed_index=np.array([s for _, _, s in members]), steps=result.steps,
        gap=result.trajectory["gap"].cpu().numpy(), gamma_err=gamma_err.cpu().numpy(), Gamma_traj=Gam.cpu().numpy(),
        p=p, K=K, R_star=R_star.cpu().numpy(), Gamma_star=G_star.cpu().numpy(),
        grad_norm=grad_norm.detach().cpu().numpy(), eval_p=p[main], eval_K=K[main])


# ------------------------------------------------------------------ the random-init AR stall
@dataclass
class Stall:
    """The random-init LSA on AR(rho) covariates after exact GD (``lsa.steps`` at ``lsa.lr``) from
    ``stall.seeds`` initialisations, and the exact float64 Hessian of the population risk at the end
    point of each (parameters (p, K) flattened: d+1 + (d+1) d of them)."""

    gd_excess: np.ndarray
    """(e,) R(p, K) - R* after the exact GD."""
    gd_grad_norm: np.ndarray
    """(e,) norm of the gradient there (not 0 at a stall: GD creeps along a shallow valley)."""
    excess: np.ndarray
    """(e,) R - R* at the critical point that Newton's method reaches from the GD end point of a stalled
    member (excess above ``stall.stalled_excess``); the GD end point itself for the others."""
    grad_norm: np.ndarray
    """(e,) norm of the gradient there (1e-12 or below when Newton converged)."""
    hessian_eigs: np.ndarray
    """(e, P) eigenvalues of the Hessian at that critical point, ascending."""
    scale_direction_curvature: np.ndarray
    """(e,) the Hessian's Rayleigh quotient along the scale symmetry (p, K) -> (c p, K / c), i.e. along
    (p, -K) normalised: 0 at a critical point up to the gradient (the symmetry's flat direction)."""
    min_eig_vector_overlap: np.ndarray
    """(e,) |<v_min, u_scale>| of the lowest eigenvector with the unit scale direction."""
    escape_excess: np.ndarray
    """(e,) excess after `ESCAPE_STEPS` further GD steps (at min(lsa.lr, 1/lambda_max), a stable step) from
    the critical point of a stalled member moved by `KICK` along the lowest eigenvector away from the scale
    direction (the direction a saddle would be left by); the others are not kicked."""


NEWTON_STEPS = 20
"""Newton iterations from the GD end point to the nearby critical point of the LSA risk."""
ESCAPE_STEPS = 1000
"""GD steps after the kick."""
KICK = 1e-2
"""Size of the kick along the lowest non-symmetry eigenvector before GD is restarted."""


def stall_analysis(cfg: Config, progress: bool = False) -> Stall:
    """Exact GD from random inits on AR(rho) (a batched program), then the Hessian at each end point."""
    dtype, device = torch.float64, cfg.torch_device
    d = cfg.d
    members = [("ar", "random", s) for s in range(cfg.stall.seeds)]
    p0, K0 = lsa_inits(cfg, members, device, dtype)
    S = dt.covariance(d, "ar", cfg.rho).to(device, dtype)
    B = cfg.psi2 * torch.eye(d, dtype=dtype, device=device)
    risk = th.LSARisk(S, B, cfg.sigma2, cfg.n_context)
    R_star = float(th.gd_optimal_risk(S.cpu(), B.cpu(), cfg.sigma2, cfg.n_context))

    def descend(p, K, desc, steps=cfg.lsa.steps):
        res = train({"p": p, "K": K}, lambda q, step: risk(q["p"], q["K"]), GD(cfg.lsa.lr), steps,
                    observe_at=[0, steps], underflow="ignore", progress=progress, desc=desc)
        return res.params["p"], res.params["K"]

    p, K = (t.clone() for t in descend(p0, K0, "stall: exact GD"))
    n_p = (d + 1) + (d + 1) * d

    def flat_risk(theta):        # one member's risk as a function of its flattened (p, K)
        return risk(theta[: d + 1], theta[d + 1:].view(d + 1, d))

    def grad_hess(theta):
        with torch.enable_grad():
            th_ = theta.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(flat_risk(th_), th_)
        H = torch.autograd.functional.hessian(flat_risk, theta, vectorize=True)
        return g, (H + H.T) / 2

    with torch.no_grad():
        gd_excess = risk(p, K) - R_star
    stalled = gd_excess > cfg.stall.stalled_excess
    eigs, vecs, grads, gd_grads, curv, overlap = [], [], [], [], [], []
    for i in range(len(members)):
        theta = torch.cat([p[i], K[i].flatten()]).detach()
        g, H = grad_hess(theta)
        gd_grads.append(torch.linalg.norm(g))
        for _ in range(NEWTON_STEPS if stalled[i] else 0):   # Newton to the nearby critical point (saddle or minimum alike)
            w, V = torch.linalg.eigh(H)
            keep = w.abs() > 1e-10 * w.abs().max()           # drop the scale symmetry's null direction
            theta = theta - V[:, keep] @ ((V[:, keep].T @ g) / w[keep])
            g, H = grad_hess(theta)
            if torch.linalg.norm(g) < 1e-13:
                break
        p[i], K[i] = theta[: d + 1], theta[d + 1:].view(d + 1, d)
        w, V = torch.linalg.eigh(H)
        eigs.append(w)
        u_ = torch.cat([p[i], -K[i].flatten()])
        off = (V.T @ u_).abs() / torch.linalg.norm(u_) < 0.5     # eigenvectors away from the scale direction
        vecs.append(V[:, int(torch.nonzero(off)[0])] * float(stalled[i]))   # only the stalled members are kicked
        u = u_ / torch.linalg.norm(u_)
        grads.append(torch.linalg.norm(g))
        curv.append(u @ H @ u)
        overlap.append((V[:, 0] @ u).abs())
    V0 = torch.stack(vecs)
    lam_max = torch.stack(eigs)[:, -1]
    # a stable step for the restart: GD at lr is at its edge of stability when lr lam_max ~ 2
    lr_escape = min(cfg.lsa.lr, 1.0 / float(lam_max.max()))
    res = train({"p": p + KICK * V0[:, : d + 1], "K": K + KICK * V0[:, d + 1:].view(-1, d + 1, d)},
                lambda q, step: risk(q["p"], q["K"]), GD(lr_escape), ESCAPE_STEPS, observe_at=[0, ESCAPE_STEPS],
                underflow="ignore", progress=progress, desc="stall: kicked GD")
    pe, Ke = res.params["p"], res.params["K"]
    with torch.no_grad():
        excess, escape = risk(p, K) - R_star, risk(pe, Ke) - R_star
    assert V0.shape[1] == n_p
    return Stall(gd_excess=gd_excess.cpu().numpy(), gd_grad_norm=torch.stack(gd_grads).cpu().numpy(),
                 excess=excess.cpu().numpy(), grad_norm=torch.stack(grads).cpu().numpy(),
                 hessian_eigs=torch.stack(eigs).cpu().numpy(), scale_direction_curvature=torch.stack(curv).cpu().numpy(),
                 min_eig_vector_overlap=torch.stack(overlap).cpu().numpy(), escape_excess=escape.cpu().numpy())


# ------------------------------------------------------------ softmax attention (online Adam)
@dataclass
class SoftmaxTraining:
    """Multi-head softmax attention trained online with Adam; e members (heads padded to h = their
    largest count and masked), t observed steps, D = d + 1."""

    cov: np.ndarray
    """(e,) covariance tag of each member (`data.COV_TAGS`)."""
    heads: np.ndarray
    """(e,) head count of each member."""
    seed_index: np.ndarray
    """(e,) seed index of each member."""
    mask: np.ndarray
    """(e, h) 1 for a member's real heads, 0 for padding."""
    steps: np.ndarray
    """(t,) the observed Adam steps."""
    KQ_traj: np.ndarray
    """(t, e, h, D, D) circuits KQ_h = K_h^T Q_h / sqrt(D) along training."""
    OV_traj: np.ndarray
    """(t, e, h, D) circuits OV_h = O_h V_h along training."""
    loss_traj: np.ndarray
    """(t, e) the batch loss along training."""
    KQ: np.ndarray
    """(e, h, D, D) trained KQ_h."""
    OV: np.ndarray
    """(e, h, D) trained OV_h."""
    length: np.ndarray
    """(e,) training context length of each member (0 for a mixture of lengths)."""
    trained_steps: np.ndarray
    """(e,) Adam steps each member trained: the program's steps, more for a member that had not split
    then (`train_softmax`'s split protocol; the trajectories cover the program's steps only)."""

    def where(self, cov: str, heads: int | None = None) -> np.ndarray:
        """(e,) bool: the members on covariance ``cov`` (with ``heads`` heads, if given)."""
        sel = self.cov == dt.COV_TAGS[cov]
        return sel if heads is None else sel & (self.heads == heads)


def _member_block(cfg: Config, members: list[tuple[str, int, int]], length: int, n: int, steps: list[int], exp: str,
                  chol: dict[str, Tensor | None]) -> tuple[Tensor, Tensor, Tensor]:
    """Training prompts (Z (e, t, n, length, d+1), x_q (e, t, n, d), y_q (e, t, n)) of every member at
    the given steps, in one draw on the device.

    Stream "train" keyed by the program ``exp`` and the length; its members are the seed indices:
    the members of one seed share their standard draws (the same batch for every head count, and
    the same standard normals behind their isotropic and AR prompts)."""
    dtype, device = cfg.torch_dtype, cfg.torch_device
    seeds = sorted({s for _, _, s in members})
    z, b, e = dt.draw_standard(dt.stream(cfg.seed, "train", exp, length), n, length, cfg.d, members=seeds, step=steps,
                               device=device, dtype=dtype)
    row = {s: k for k, s in enumerate(seeds)}
    out = [[], [], []]
    groups: dict[str, list[int]] = {}
    for k, (c, _, _) in enumerate(members):
        groups.setdefault(c, []).append(k)
    order = []
    for c, idx in groups.items():
        sel = torch.tensor([row[members[k][2]] for k in idx], device=device)
        P = dt.assemble(z[sel], b[sel], e[sel], chol[c], cfg.psi2, cfg.sigma2)
        out[0].append(torch.cat([P.X, P.y[..., None]], -1))
        out[1].append(P.x_q)
        out[2].append(P.y_q)
        order += idx
    if len(groups) == 1:
        return out[0][0], out[1][0], out[2][0]
    inv = torch.argsort(torch.tensor(order, device=device))
    return tuple(torch.cat(o)[inv] for o in out)


def softmax_inits(cfg: Config, members: list[tuple[str, int, int]], h_max: int) -> dict[str, Tensor]:
    """Initial weights of softmax members (covariance, heads, seed index): stream "softmax-init" keyed
    by (covariance, heads), the seed indices as its members, one draw per group.  They depend on
    (covariance, heads, seed index) only, not on the sub-experiment: the mixed-length and small-N
    members start from exactly the weights of the matching fixed-length members."""
    groups = []
    for c, H in dict.fromkeys((c, H) for c, H, _ in members):
        idx = [k for k, m in enumerate(members) if m[:2] == (c, H)]
        groups.append((dt.stream(cfg.seed, "softmax-init", c, H), H, idx, [members[k][2] for k in idx]))
    return padded_inits(cfg, groups, len(members), cfg.d, h_max)


def padded_inits(cfg: Config, groups, n_members: int, d: int, h_max: int, outputs: int = 1) -> dict[str, Tensor]:
    """Initial weights (`model.softmax_init`) of ``n_members`` members, heads padded to ``h_max``: for each
    (source, heads, rows, seed indices) of ``groups``, one draw of those seed indices of ``source`` fills those rows."""
    dtype, device = cfg.torch_dtype, cfg.torch_device
    D = d + outputs
    out = {"Q": torch.zeros((n_members, h_max, D, D), dtype=dtype, device=device)}
    out["K"], out["V"] = torch.zeros_like(out["Q"]), torch.zeros_like(out["Q"])
    out["O"] = torch.zeros((n_members, h_max, *(() if outputs == 1 else (outputs,)), D), dtype=dtype, device=device)
    for source, H, rows, seeds in groups:
        w = md.softmax_init(d, H, h_max, source, seeds, outputs=outputs, device=device, dtype=dtype)
        for name in out:
            out[name][rows] = w[name]
    return out


def head_mask(heads, h_max: int, cfg: Config) -> Tensor:
    """(e, h_max) 1 for each member's real heads (``heads`` its head counts), 0 for the padding."""
    return torch.tensor([[1.0 if h < H else 0.0 for h in range(h_max)] for H in heads], dtype=cfg.torch_dtype,
                        device=cfg.torch_device)


SPLIT_ZERO_SUM = 0.5
"""The split detector: a member with >= 2 heads has split into a zero-sum pair when |sum mu| / sum |mu| <= this.
Heads that cannot cancel the mean label (one head, or every mu_h of one sign) have exactly 1; the trained
zero-sum pair has ~0 (He et al.'s pattern); 0.5 is the midpoint."""


def _adam_range(cfg: Config, members: list[tuple[str, int, int]], lengths: tuple[int, ...], exp: str,
                params: dict[str, Tensor], mask: Tensor, opt: Adam, first: int, steps: int, batch_size: int,
                observe_at, progress: bool, desc: str, schedule: Callable[[int], float]) -> TrainResult:
    """``steps`` Adam updates of ``members`` from absolute step ``first`` (their batches are the steps
    first .. first + steps of their stream, so a run continued in pieces sees the batches of one run);
    the rate of absolute step t is schedule(t)."""
    dtype, device = cfg.torch_dtype, cfg.torch_device
    chol = {"iso": None, "ar": torch.linalg.cholesky(dt.covariance(cfg.d, "ar", cfg.rho, dtype)).to(device)}
    per_step = len(members) * batch_size * (max(lengths) + 1) * (cfg.d + 1)
    block = max(1, min(steps + 1, BLOCK_NUMBERS // per_step))
    n_blocks = -(-(steps + 1) // block)

    def make(j: int):   # block j: steps first + j*block .. ; a function of j alone, so it can be drawn ahead
        in_block = range(first + j * block, first + min((j + 1) * block, steps + 1))
        parts = {}
        for li, L in enumerate(lengths):
            at = [t for t in in_block if t % len(lengths) == li]
            if at:
                parts[L] = (at[0], len(lengths), _member_block(cfg, members, L, batch_size, at, exp, chol))
        return parts

    current: dict = {}
    observers = {"KQ": lambda q: md.circuits(q)[0], "OV": lambda q: md.circuits(q)[1]}
    with Prefetcher(make, stop=n_blocks) as blocks:
        def loss_fn(q, step):
            t = first + step
            if current.get("j") != step // block:
                current["j"], current["parts"] = step // block, blocks(step // block)
            start, stride, data = current["parts"][lengths[t % len(lengths)]]
            k = (t - start) // stride
            KQ, OV = md.circuits(q)
            return md.softmax_loss(KQ, OV, mask, data[0][:, k], data[1][:, k], data[2][:, k])

        return train(params, loss_fn, Scheduled(opt, lambda t: schedule(first + t)), steps, observers=observers, observe_at=observe_at, progress=progress,
                     desc=desc)


def train_softmax(cfg: Config, members: list[tuple[str, int, int]], lengths: tuple[int, ...], exp: str, *,
                  steps: int, lr: float, batch_size: int, n_observe: int, progress: bool = False,
                  desc: str = "softmax attention", split_extra: int | None = None,
                  lr_floor: float = 1.0) -> tuple[TrainResult, Tensor, np.ndarray]:
    """Online Adam on fresh seeded batches for an ensemble of multi-head softmax models, then the split
    protocol.

    ``members`` are (covariance, heads, seed index); heads are padded to the largest count with a
    mask, returned with the `TrainResult`.  With several ``lengths`` (the mixed-length extension)
    the context length cycles through them step by step (step t uses lengths[t mod len(lengths)]),
    so every length gets the same weight in the averaged objective and each step is one batch of
    one length.  Batches are drawn on the device a block of steps at a time (`BLOCK_NUMBERS`), the
    next block in a background thread while the current one trains.

    The split protocol (``split_extra``, ``split_chunk``): after ``steps`` updates, a member with >= 2
    heads that has not split (`SPLIT_ZERO_SUM`) trains on, alone with the other unsplit members and
    with its own Adam state, in chunks of ``split_chunk`` steps until it splits or has trained
    ``split_extra`` more steps (``cfg.split_extra`` unless given).  With ``lr_floor`` < 1 the rate decays by
    a cosine from ``lr`` to ``lr * lr_floor`` over the program's steps and stays there during the split protocol.  Each member's course depends on its own batches and state only, so
    member i is still its standalone run.  Returns (result, mask, trained steps per member (e,)); the
    trajectory covers the first ``steps`` updates, ``result.params`` are every member's final weights.
    """
    dtype, device = cfg.torch_dtype, cfg.torch_device
    h_max = max(H for _, H, _ in members)
    params = softmax_inits(cfg, members, h_max)
    mask = head_mask([H for _, H, _ in members], h_max, cfg)
    opt = Adam(lr)
    schedule = cosine_schedule(lr, steps, lr_floor)   # lr_floor 1: lr * 1.0 at every step, a constant rate
    result = _adam_range(cfg, members, lengths, exp, params, mask, opt, 0, steps, batch_size,
                         log_steps(steps, n_observe), progress, desc, schedule)
    trained = np.full(len(members), steps)
    final = {k: v.clone() for k, v in result.params.items()}

    def unsplit(q: dict[str, Tensor], m: Tensor, heads: np.ndarray) -> np.ndarray:
        zs = md.zero_sum(md.circuits(q)[1].cpu().numpy(), m.cpu().numpy())
        return (heads >= 2) & ~(zs <= SPLIT_ZERO_SUM)

    heads = np.array([H for _, H, _ in members])
    todo = np.flatnonzero(unsplit(final, mask, heads))
    done, cap = 0, cfg.split_extra if split_extra is None else split_extra
    while todo.size and done < cap:
        chunk = min(cfg.split_chunk, cap - done)
        idx = torch.as_tensor(todo, device=device)
        sub = Adam(lr, state={k: (m[idx].clone(), v[idx].clone()) for k, (m, v) in opt.state.items()}, t=opt.t)
        res = _adam_range(cfg, [members[i] for i in todo], lengths, exp, {k: v[idx] for k, v in final.items()},
                          mask[idx], sub, steps + done, chunk, batch_size, [], progress, f"{desc}: until split",
                          schedule)
        for k in final:
            final[k][idx] = res.params[k]
        for k, (m, v) in sub.state.items():
            opt.state[k][0][idx], opt.state[k][1][idx] = m, v
        opt.t = sub.t
        done += chunk
        trained[todo] = steps + done
        todo = todo[unsplit({k: v[idx] for k, v in final.items()}, mask[idx], heads[todo])]
    result.params = final
    return result, mask, trained


def _softmax_result(members: list[tuple[str, int, int]], result: TrainResult, mask: Tensor, length: int,
                    trained: np.ndarray) -> SoftmaxTraining:
    KQ, OV = md.circuits(result.params)
    return SoftmaxTraining(length=np.full(len(members), length),
        cov=np.array([dt.COV_TAGS[c] for c, _, _ in members]), heads=np.array([H for _, H, _ in members]),
        seed_index=np.array([s for _, _, s in members]), mask=mask.cpu().numpy(), steps=result.steps,
        KQ_traj=result.trajectory["KQ"].cpu().numpy(), OV_traj=result.trajectory["OV"].cpu().numpy(),
        loss_traj=result.trajectory["loss"].cpu().numpy(), KQ=KQ.cpu().numpy(), OV=OV.cpu().numpy(),
        trained_steps=trained)


def softmax_training(cfg: Config, progress: bool = False) -> SoftmaxTraining:
    """The primary experiment: every `Config.softmax_members` member trained at the context length N."""
    members = cfg.softmax_members
    result, mask, trained = train_softmax(cfg, members, (cfg.n_context,), EXP_SOFTMAX, steps=cfg.steps, lr=cfg.lr,
                                          batch_size=cfg.batch_size, n_observe=cfg.n_observe, progress=progress,
                                          desc="softmax attention")
    return _softmax_result(members, result, mask, cfg.n_context, trained)


def mixed_training(cfg: Config, progress: bool = False) -> SoftmaxTraining:
    """The extension: the pair-head members trained on lengths uniform on ``mixed.lengths``."""
    members, m = cfg.mixed_members, cfg.mixed
    result, mask, trained = train_softmax(cfg, members, m.lengths, EXP_MIXED, steps=m.steps, lr=m.lr,
                                          batch_size=m.batch_size, n_observe=m.n_observe, progress=progress,
                                          desc="mixed lengths")
    return _softmax_result(members, result, mask, 0, trained)


def _per_length_training(cfg: Config, members: list[tuple[str, int, int]], sub, exp: str, progress: bool,
                         desc: str, split_extra: int | None = None) -> SoftmaxTraining:
    """``members`` trained at each length of ``sub.lengths`` (one program per length, stream key ``exp``),
    concatenated length-major along the member axis."""
    parts = []
    for L in sub.lengths:
        result, mask, trained = train_softmax(cfg, members, (L,), exp, steps=sub.steps, lr=sub.lr,
                                              batch_size=sub.batch_size, n_observe=sub.n_observe, progress=progress,
                                              desc=f"{desc} = {L}", split_extra=split_extra, lr_floor=sub.lr_floor)
        parts.append(_softmax_result(members, result, mask, L, trained))
    axis = {"KQ_traj": 1, "OV_traj": 1, "loss_traj": 1}
    return SoftmaxTraining(**{f.name: (parts[0].steps if f.name == "steps" else
                                       np.concatenate([getattr(p, f.name) for p in parts], axis.get(f.name, 0)))
                              for f in dataclasses.fields(SoftmaxTraining)})


def small_n_training(cfg: Config, progress: bool = False) -> SoftmaxTraining:
    """The discriminating regime: the pair-head members trained at each short length of ``small_n.lengths``
    (one program per length; initial weights as the primary pair members of the same seed index, batches
    of their own stream), concatenated length-major along the member axis."""
    return _per_length_training(cfg, cfg.small_n_members, cfg.small_n, EXP_SMALL_N, progress, "small N")


def long_n_training(cfg: Config, progress: bool = False) -> SoftmaxTraining:
    """He et al.'s lengths: the small-N program at each length of ``long_n.lengths`` (stream key "long-n",
    the primary pair members' initial weights, split cap ``long_n.split_extra``)."""
    return _per_length_training(cfg, cfg.long_n_members, cfg.long_n, EXP_LONG_N, progress, "long N",
                                split_extra=cfg.long_n.split_extra)


# --------------------------------------------------------------------------- evaluation
@dataclass
class Risk:
    """Risk E(yhat - y_q)^2 on the evaluation set and its standard error, per test length."""

    risk: np.ndarray
    """(members, lengths), or (lengths,) for a single model."""
    risk_se: np.ndarray
    """The same shape: standard errors over the ``eval_prompts`` prompts."""


@dataclass
class Evaluation:
    """Every trained model on the fixed seeded evaluation set, at every test length."""

    softmax: Risk
    """(e, lengths): the softmax members, each on its own covariance's prompts."""
    mixed: Risk
    """(n_seeds, lengths): the mixed-length members."""
    lsa_norm_M: Risk
    """(lengths,): the evaluated LSA (`LSATraining.eval_p`, ``eval_K``) normalised by the current 1/M."""
    lsa_fixed: Risk
    """(lengths,): the same LSA with the training normalisation 1/N kept."""
    small_n: Risk
    """(len(small_n.lengths) * small_n.seeds, 1): the small-N members at their training lengths, on
    ``small_n.eval_prompts`` prompts per length."""
    long_n: Risk
    """(len(long_n.lengths) * long_n.seeds, 1): the long-N members at their training lengths, on
    ``long_n.eval_prompts`` prompts per length."""
    seed: np.ndarray
    """(1,) the config seed the evaluation set derives from."""
    test_lengths: np.ndarray
    """(lengths,) the test lengths M."""


def evaluation(cfg: Config, *, lsa: LSATraining, softmax: SoftmaxTraining, mixed: SoftmaxTraining,
               small_n: SoftmaxTraining, long_n: SoftmaxTraining, progress: bool = False) -> Evaluation:
    """The trained LSA, softmax, mixed-length, small-N and long-N models on the fixed evaluation set (`risks`)."""
    device = cfg.torch_device

    def on_device(x: np.ndarray) -> Tensor:
        return torch.as_tensor(x, device=device)

    KQ, OV, mask = on_device(softmax.KQ), on_device(softmax.OV), on_device(softmax.mask)
    KQm, OVm, mask_m = on_device(mixed.KQ), on_device(mixed.OV), on_device(mixed.mask)
    p, K = on_device(lsa.eval_p)[None], on_device(lsa.eval_K)[None]
    members = cfg.softmax_members
    models, covs, member_index = {}, {}, {}
    for c in ("iso", "ar"):
        idx = [i for i, m in enumerate(members) if m[0] == c]
        if idx:
            sel = torch.tensor(idx, device=device)
            models[f"softmax_{c}"] = (lambda Z, xq, M, sel=sel: md.softmax_predict_shared(KQ[sel], OV[sel], mask[sel], Z, xq))
            covs[f"softmax_{c}"] = c
            member_index[c] = idx
    models["mixed"] = lambda Z, xq, M: md.softmax_predict_shared(KQm, OVm, mask_m, Z, xq)
    models["lsa_norm_M"] = lambda Z, xq, M: md.lsa_predict_shared(p, K, Z, xq, 1.0 / M)
    models["lsa_fixed"] = lambda Z, xq, M: md.lsa_predict_shared(p, K, Z, xq, 1.0 / cfg.n_context)
    covs["mixed"] = covs["lsa_norm_M"] = covs["lsa_fixed"] = cfg.cov
    ev = risks(cfg, models, covs, progress)

    L = len(cfg.test_lengths)
    risk, risk_se = np.zeros((len(members), L)), np.zeros((len(members), L))
    for c, idx in member_index.items():
        risk[idx], risk_se[idx] = ev[f"softmax_{c}"]
    lsa_risk = {name: Risk(ev[name][0][0], ev[name][1][0]) for name in ("lsa_norm_M", "lsa_fixed")}
    per_length = {}
    for name, t, sub in (("small_n", small_n, cfg.small_n), ("long_n", long_n, cfg.long_n)):
        KQs, OVs, mask_s = on_device(t.KQ), on_device(t.OV), on_device(t.mask)
        r, r_se = np.zeros((len(t.length), 1)), np.zeros((len(t.length), 1))
        for L in sub.lengths:
            idx = np.flatnonzero(t.length == L)
            sel = torch.as_tensor(idx, device=device)
            ev_s = risks(cfg, {name: lambda Z, xq, M: md.softmax_predict_shared(KQs[sel], OVs[sel], mask_s[sel], Z, xq)},
                         {name: cfg.cov}, progress, lengths=(L,), n_prompts=sub.eval_prompts)
            r[idx], r_se[idx] = ev_s[name]
        per_length[name] = Risk(r, r_se)
    return Evaluation(softmax=Risk(risk, risk_se), mixed=Risk(*ev["mixed"]), **lsa_risk, **per_length,
                      seed=np.array([cfg.seed]), test_lengths=np.array(cfg.test_lengths))


def risks(cfg: Config, models: dict[str, Callable[[Tensor, Tensor, int], Tensor]], covs: dict[str, str],
          progress: bool = False, *, lengths: tuple[int, ...] | None = None,
          n_prompts: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Risk and its standard error (each (e, lengths)) of every model on the fixed evaluation set.  ``lengths`` and ``n_prompts`` default to
    ``cfg.test_lengths`` and ``cfg.eval_prompts``.

    Each prompt contributes (yhat - beta^T x_q)^2 + sigma^2, its squared error averaged over the
    query's label noise (which yhat does not see); this is the risk E(yhat - y_q)^2 with a smaller
    variance than the raw squared error.

    The evaluation set: ``eval_prompts`` prompts per test length M, in chunks drawn from the stream
    "eval" keyed by (M, chunk), so every model sees the same prompts and a smaller set is the first
    chunks of a larger one; the isotropic and AR prompts share their standard draws.  ``models[name](Z, x_q, M)`` returns predictions (e, b) for shared prompts
    Z (b, M, d+1), x_q (b, d); ``covs[name]`` names the covariance its prompts use.
    """
    dtype, device = cfg.torch_dtype, cfg.torch_device
    lengths = tuple(cfg.test_lengths if lengths is None else lengths)
    n_tot = float(cfg.eval_prompts if n_prompts is None else n_prompts)
    sizes = dt.eval_chunks(int(n_tot), EVAL_CHUNK)
    iterator = [(c, li, M) for c in ("iso", "ar") if c in covs.values() for li, M in enumerate(lengths)]
    if progress:
        from workbench.progress import progress_bar
        iterator = progress_bar(iterator, desc="evaluate", leave=False)
    acc: dict[tuple[str, int], list[Tensor]] = {}
    for c, li, M in iterator:
        chol = torch.linalg.cholesky(dt.covariance(cfg.d, c, cfg.rho, dtype))
        for k, n in enumerate(sizes):
            P = dt.sample_prompts(dt.stream(cfg.seed, "eval", M, k), n, M, chol, cfg.psi2, cfg.sigma2,
                                  device=device, dtype=dtype)
            Z = torch.cat([P.X, P.y[..., None]], -1)
            f_q = (P.x_q * P.beta).sum(-1)                                           # noiseless query target
            for name, fn in models.items():
                if covs[name] != c:
                    continue
                with torch.no_grad():
                    # E over the query noise: (yhat - beta^T x_q)^2 + sigma^2 (the target's noise integrated)
                    err = (fn(Z, P.x_q, M) - f_q).pow(2) + cfg.sigma2                  # (e, b)
                a = acc.setdefault((name, li), [torch.zeros(err.shape[0], dtype=torch.float64),
                                                torch.zeros(err.shape[0], dtype=torch.float64)])
                a[0] += err.sum(-1).double().cpu()
                a[1] += err.pow(2).sum(-1).double().cpu()
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in models:
        means, ses = [], []
        for li in range(len(lengths)):
            s1, s2 = acc[(name, li)]
            m = s1 / n_tot
            means.append(m)
            ses.append(torch.sqrt(torch.clamp(s2 / n_tot - m ** 2, min=0) / (n_tot - 1)))
        out[name] = (torch.stack(means, -1).numpy(), torch.stack(ses, -1).numpy())     # (e, lengths)
    return out


# ------------------------------------------------------------------------------ pool
@dataclass
class TaskPool:
    """The finite task-pool Gamma model: P = pool.draws pools per size T (sizes `PoolConfig.sizes`)."""

    T: np.ndarray
    """(n_T,) pool sizes."""
    risk_new: np.ndarray
    """(P, n_T) R_N(Gamma_T) on new tasks beta ~ N(0, psi^2 I)."""
    risk_pool: np.ndarray
    """(P, n_T) risk of Gamma_T on its own pool's tasks."""
    risk_pool_gamma_star: np.ndarray
    """(P, n_T) risk of Gamma* on the pool's tasks."""
    rank: np.ndarray
    """(P, n_T) rank of Gamma_T."""
    R_star: np.ndarray
    """(1,) R*_GD(N)."""


def task_pool(cfg: Config) -> TaskPool:
    """The finite task-pool Gamma model: Gamma_T = Bhat Sigma Ghat^{-1} for pools of T Gaussian tasks."""
    dtype = torch.float64
    S = cfg.sigma_main
    B = cfg.psi2 * torch.eye(cfg.d, dtype=dtype)
    R_star = float(th.gd_optimal_risk(S, B, cfg.sigma2, cfg.n_context))
    G_star = th.gamma_star(S, B, cfg.sigma2, cfg.n_context)
    Ts = cfg.pool.sizes
    new, pool, pool_star, rank = [], [], [], []
    for T in Ts:
        betas = dt.stream(cfg.seed, "pool", int(T)).normal((int(T), cfg.d), members=cfg.pool.draws) * cfg.psi2 ** 0.5
        Gamma_T, Bhat = th.pool_gamma(betas, S, cfg.sigma2, cfg.n_context)
        new.append(th.gd_risk(Gamma_T, S, B, cfg.sigma2, cfg.n_context))
        pool.append(th.gd_risk(Gamma_T, S, Bhat, cfg.sigma2, cfg.n_context))
        pool_star.append(th.gd_risk(G_star, S, Bhat, cfg.sigma2, cfg.n_context))
        rank.append(torch.linalg.matrix_rank(Gamma_T))
    return TaskPool(T=Ts, risk_new=torch.stack(new, -1).numpy(), risk_pool=torch.stack(pool, -1).numpy(),
                    risk_pool_gamma_star=torch.stack(pool_star, -1).numpy(), rank=torch.stack(rank, -1).numpy(),
                    R_star=np.array([R_star]))


# ------------------------------------------------ Wu et al.: one-pass SGD pretraining
WU_SPECTRA = ("iso", "power")
"""The two covariance spectra of the Wu et al. sub-experiment: H = I and lambda_i = i^-decay."""
WU_BLOCK_NUMBERS = 1 << 22
"""SGD prompts are drawn a block of steps at a time, at most this many standard normals per block."""


@dataclass
class WuPretraining:
    """One-pass SGD pretraining of the Gamma model (Wu et al. 2024), spectra s in `WU_SPECTRA`,
    m = ``wu.members`` runs per task count; risks are the exact closed form R_M of the trained Gamma."""

    T: np.ndarray
    """(n_T,) numbers of pretraining tasks (= SGD steps, one fresh task each)."""
    excess: np.ndarray
    """(2, m, n_T) R_N(Gamma_T) - R_N(Gamma*) of every run, per spectrum."""
    R_star: np.ndarray
    """(2,) R_N(Gamma*) per spectrum."""
    eta0: np.ndarray
    """(2,) the base step eta_0 per spectrum."""
    saturation: np.ndarray
    """(2, n_T) eta_0 K a_min (`theory.sgd_saturation`) per spectrum and T."""
    lengths: np.ndarray
    """(n_M,) inference lengths M."""
    risk_M: np.ndarray
    """(2, m, n_M) R_M(Gamma_T) of the runs at the largest T."""
    risk_M_star: np.ndarray
    """(2, n_M) R_M(Gamma*_N): the pretraining optimum used at length M."""
    ridge_M: np.ndarray
    """(2, n_M) the Bayes risk (optimally tuned ridge, lambda = sigma^2 / psi^2) at length M, Wishart MC."""
    ridge_M_se: np.ndarray
    """(2, n_M) its standard error."""
    dims: np.ndarray
    """(n_d,) dimensions of the power-law sweep."""
    excess_dims: np.ndarray
    """(m, n_d) excess of the power-law runs at T = dim_tasks, per dimension."""
    excess_dims_iso: np.ndarray
    """(m, n_d) the same for H = I (psi^2 = 1/d): the contrast whose excess grows with the parameter count."""
    mc_risk: np.ndarray
    """(2, 2) Monte Carlo risk of run 0's Gamma_T (largest T) at M = N and M = max(lengths), per spectrum."""
    mc_se: np.ndarray
    """(2, 2) its standard error."""
    mc_closed: np.ndarray
    """(2, 2) the closed form R_M(Gamma_T) there."""
    pool_sizes: np.ndarray
    """(n_P,) sizes P of the task pools of the multi-pass runs (``wu.pool_sizes``)."""
    pool_excess: np.ndarray
    """(m, n_P) excess R_N(Gamma) - R_N(Gamma*) of SGD run for max_tasks steps over a pool of P tasks (H = I),
    the run's covariates and noises those of the fresh-task run at T = max_tasks (same stream and member)."""
    pool_opt_excess: np.ndarray
    """(m, n_P) R_N(Gamma_P) - R_N(Gamma*) of each run's own pool optimum (`theory.pool_gamma`, exact)."""


def wu_setting(w, spectrum: str, d: int | None = None) -> tuple[Tensor, Tensor]:
    """(H, B) of the Wu sub-experiment: H diagonal with spectrum ``spectrum`` and B = I / tr H (d, d)."""
    lam = th.power_spectrum(w.d if d is None else d, 0.0 if spectrum == "iso" else w.decay)
    return torch.diag(lam), torch.eye(len(lam), dtype=torch.float64) / float(lam.sum())


def sgd_pretrain(w, spectrum: str, d: int, T: int, source, *, device=None,
                 members: int | list[int] | None = None, pool: Tensor | None = None) -> Tensor:
    """One-pass SGD on the Gamma model: T steps, each on one fresh prompt of a fresh task, from Gamma = 0.

    Step t draws x_1..x_N, x_q ~ N(0, H), beta ~ N(0, B), noise ~ N(0, sigma^2), forms s = X^T y / N and
    the residual r = x_q^T Gamma s - y_q, and moves Gamma <- Gamma - eta_t r x_q s^T (the gradient of
    (1/2) r^2), with eta_t of `theory.sgd_schedule`.  ``members`` runs side by side (stream members);
    returns Gamma_T (m, d, d) in float64 on ``device`` (``members``: a count, or the stream's member indices).

    With a ``pool`` of tasks (m, P, d), step t uses task t mod P of the run's own pool instead of a fresh
    one (prompts stay fresh): T steps are T / P passes over P tasks."""
    H, B = wu_setting(w, spectrum, d)
    m = w.members if members is None else members
    n_runs = m if isinstance(m, int) else len(m)
    N, dtype = w.n_context, torch.float64
    eta = th.sgd_schedule(T, th.sgd_base_step(H, B, w.sigma2, N, w.lr_scale))
    root_h = torch.sqrt(torch.diagonal(H)).to(device, dtype)                     # (d,)
    psi = math.sqrt(float(B[0, 0]))
    Gamma = torch.zeros((n_runs, d, d), dtype=dtype, device=device)
    per = (N + 1) * d + d + (N + 1)
    block = max(1, min(T, WU_BLOCK_NUMBERS // (n_runs * per)))
    for start in range(0, T, block):
        steps = list(range(start, min(start + block, T)))
        z, b, e = dt.draw_standard(source, 1, N, d, members=m, step=steps, device=device, dtype=dtype)
        x = z[:, :, 0] * root_h                                                  # (m, t, N+1, d)
        beta = b[:, :, 0] * psi if pool is None else pool[:, [t % pool.shape[1] for t in steps]]   # (m, t, d)
        y = torch.einsum("mtnd,mtd->mtn", x, beta) + e[:, :, 0] * math.sqrt(w.sigma2)   # (m, t, N+1)
        s = torch.einsum("mtnd,mtn->mtd", x[:, :, :N], y[:, :, :N]) / N         # (m, t, d)
        xq, yq = x[:, :, N], y[:, :, N]                                          # (m, t, d), (m, t)
        for k, t in enumerate(steps):
            r = torch.einsum("mi,mij,mj->m", xq[:, k], Gamma, s[:, k]) - yq[:, k]   # (m,)
            Gamma -= float(eta[t]) * r[:, None, None] * xq[:, k, :, None] * s[:, k, None, :]
    return Gamma


def wu_pretraining(cfg: Config, progress: bool = False) -> WuPretraining:
    """Wu et al.'s experiment: excess vs T for two spectra, the dimension sweep, and the comparison
    with the optimally tuned ridge at every inference length."""
    w, device = cfg.wu, cfg.torch_device
    Ts = w.tasks
    M_all = list(w.lengths)
    out: dict[str, list] = {k: [] for k in ("excess", "R_star", "eta0", "saturation", "risk_M", "risk_M_star",
                                             "ridge_M", "ridge_M_se", "mc_risk", "mc_se", "mc_closed")}
    work = [(sp, int(T)) for sp in WU_SPECTRA for T in Ts]
    if progress:
        from workbench.progress import progress_bar
        work = progress_bar(work, desc="Wu: one-pass SGD", leave=False)
    finals: dict[str, Tensor] = {}
    excess: dict[str, list] = {sp: [] for sp in WU_SPECTRA}
    for sp, T in work:
        H, B = wu_setting(w, sp)
        G_T = sgd_pretrain(w, sp, w.d, T, dt.stream(cfg.seed, "wu-sgd", sp, w.d, T), device=device).cpu()
        R_star = th.gd_optimal_risk(H, B, w.sigma2, w.n_context)
        excess[sp].append(th.gd_risk(G_T, H, B, w.sigma2, w.n_context) - R_star)
        if T == Ts[-1]:
            finals[sp] = G_T
    for k, sp in enumerate(WU_SPECTRA):
        H, B = wu_setting(w, sp)
        G_star = th.gamma_star(H, B, w.sigma2, w.n_context)
        out["excess"].append(torch.stack(excess[sp], -1).numpy())
        out["R_star"].append(float(th.gd_optimal_risk(H, B, w.sigma2, w.n_context)))
        out["eta0"].append(th.sgd_base_step(H, B, w.sigma2, w.n_context, w.lr_scale))
        out["saturation"].append([th.sgd_saturation(H, B, w.sigma2, w.n_context, w.lr_scale, int(T)) for T in Ts])
        out["risk_M"].append(torch.stack([th.gd_risk(finals[sp], H, B, w.sigma2, M) for M in M_all], -1).numpy())
        out["risk_M_star"].append([float(th.gd_risk(G_star, H, B, w.sigma2, M)) for M in M_all])
        ridge = [th.ridge_risk_mc(H, float(B[0, 0]), w.sigma2, M, w.ridge_draws, dt.stream(cfg.seed, "wu-ridge", sp, M),
                                  device=device) for M in M_all]
        out["ridge_M"].append([r[0] for r in ridge])
        out["ridge_M_se"].append([r[1] for r in ridge])
        # Monte Carlo of run 0's trained Gamma at M = N and the longest M (the query integrated analytically)
        mc, se, closed = [], [], []
        for M in (w.n_context, M_all[-1]):
            acc, acc2, n_tot = 0.0, 0.0, 0
            for c, n in enumerate(dt.eval_chunks(w.mc_prompts, 20000)):
                P = dt.sample_prompts(dt.stream(cfg.seed, "wu-mc", sp, M, c), n, M, torch.sqrt(H),
                                      float(B[0, 0]), w.sigma2, device=device)
                wv = torch.einsum("ij,nj->ni", finals[sp][0].to(P.X), torch.einsum("nld,nl->nd", P.X, P.y) / M) - P.beta
                r = w.sigma2 + torch.einsum("ni,ij,nj->n", wv, H.to(wv), wv)
                acc, acc2, n_tot = acc + float(r.sum()), acc2 + float(r.pow(2).sum()), n_tot + n
            mean = acc / n_tot
            mc.append(mean)
            se.append(math.sqrt(max(acc2 / n_tot - mean ** 2, 0.0) / (n_tot - 1)))
            closed.append(float(th.gd_risk(finals[sp][0], H, B, w.sigma2, M)))
        out["mc_risk"].append(mc)
        out["mc_se"].append(se)
        out["mc_closed"].append(closed)
    # a pool of P tasks, seen max_tasks / P times: the same steps as the largest fresh-task run, fewer tasks
    H, B = wu_setting(w, "iso")
    R_star = th.gd_optimal_risk(H, B, w.sigma2, w.n_context)
    S = int(Ts[-1])
    pool_ex, pool_opt = [], []
    for P in w.pool_sizes:
        pool = dt.stream(cfg.seed, "wu-pool-tasks", P).normal((P, w.d), members=w.members, device=device) * float(B[0, 0]) ** 0.5
        G = sgd_pretrain(w, "iso", w.d, S, dt.stream(cfg.seed, "wu-sgd", "iso", w.d, S), device=device, pool=pool).cpu()
        pool_ex.append(th.gd_risk(G, H, B, w.sigma2, w.n_context) - R_star)
        pool_opt.append(th.gd_risk(th.pool_gamma(pool.cpu(), H, w.sigma2, w.n_context)[0], H, B, w.sigma2, w.n_context)
                        - R_star)
    dims, dims_iso = [], []
    for dd in w.dims:
        for sp, acc in (("power", dims), ("iso", dims_iso)):
            H, B = wu_setting(w, sp, dd)
            G_T = sgd_pretrain(w, sp, dd, w.dim_tasks, dt.stream(cfg.seed, "wu-sgd-dims", sp, dd, w.dim_tasks),
                               device=device).cpu()
            acc.append(th.gd_risk(G_T, H, B, w.sigma2, w.n_context) - th.gd_optimal_risk(H, B, w.sigma2, w.n_context))
    return WuPretraining(
        pool_sizes=np.asarray(w.pool_sizes), pool_excess=torch.stack(pool_ex, -1).numpy(),
        pool_opt_excess=torch.stack(pool_opt, -1).numpy(),
        T=np.asarray(Ts), lengths=np.asarray(M_all), dims=np.asarray(w.dims),
        excess_dims=torch.stack(dims, -1).numpy(), excess_dims_iso=torch.stack(dims_iso, -1).numpy(),
        **{k: np.asarray(v, dtype=float) for k, v in out.items()})


# ------------------------------------------------------------- He et al.'s multi-task regression
@dataclass
class MultiTask:
    """He et al.'s multi-task regression: e = len(multitask.members) softmax members (heads padded to
    h = max(multitask.heads) and masked), K tasks, D = d + K token features, t observed steps."""

    heads: np.ndarray
    """(e,) head count of each member."""
    seed_index: np.ndarray
    """(e,) seed index of each member."""
    mask: np.ndarray
    """(e, h) 1 for a member's real heads."""
    steps: np.ndarray
    """(t,) the observed Adam steps."""
    loss_traj: np.ndarray
    """(t, e) batch loss (mean over prompts and tasks) along training."""
    KQ_traj: np.ndarray
    """(t, e, h, D, D) KQ_h along training."""
    OV_traj: np.ndarray
    """(t, e, h, K, D) OV_h (one row per output) along training."""
    KQ: np.ndarray
    """(e, h, D, D) trained KQ_h."""
    OV: np.ndarray
    """(e, h, K, D) trained OV_h."""
    risk: np.ndarray
    """(e, K) per-task risk E(yhat_k - beta_k^T x_q[S_k])^2 on the fixed evaluation set."""
    risk_se: np.ndarray
    """(e, K) its standard error."""
    one_head_risk: np.ndarray
    """(K,) He et al.'s one-head pattern (KQ = omega on S_k, OV = mu e_{y_k}) per task, its best risk
    over the omega grid of the theory phase (``family_prompts`` covariate draws)."""
    one_head_omega: np.ndarray
    """(K,) the omega of that best risk."""


def multitask_training(cfg: Config, progress: bool = False) -> MultiTask:
    """He et al.'s multi-task set-up (`config.MultiTaskConfig`): every member trained online by Adam with a
    cosine-decayed rate on fresh batches (stream "multitask-train", its members the seed indices: every
    head count of one seed sees the same batches), from PyTorch-default weights (stream "multitask-init"
    keyed by the head count), then evaluated on the fixed set (stream "multitask-eval" keyed by chunk)."""
    m = cfg.multitask
    dtype, device = cfg.torch_dtype, cfg.torch_device
    d, K, L, sup = m.d, m.n_tasks, m.n_context, m.supports
    members = m.members
    h_max = max(H for H, _ in members)
    groups = []
    for H in m.heads:
        idx = [i for i, (h, _) in enumerate(members) if h == H]
        groups.append((dt.stream(cfg.seed, "multitask-init", H), H, idx, [members[i][1] for i in idx]))
    params = padded_inits(cfg, groups, len(members), d, h_max, outputs=K)
    mask = head_mask([H for H, _ in members], h_max, cfg)
    seeds = sorted({s for _, s in members})
    rows = torch.tensor([seeds.index(s) for _, s in members], device=device)
    per_step = len(seeds) * m.batch_size * ((L + 1) * d + K * (m.task_dim + L))
    block = max(1, min(m.steps + 1, BLOCK_NUMBERS // per_step))
    source = dt.stream(cfg.seed, "multitask-train")

    def make(j: int) -> dt.MultiTaskPrompts:
        at = list(range(j * block, min((j + 1) * block, m.steps + 1)))
        return dt.draw_multitask(source, m.batch_size, L, d, sup, m.sigma2, members=seeds, step=at,
                                 device=device, dtype=dtype)

    current: dict = {}
    with Prefetcher(make, stop=-(-(m.steps + 1) // block)) as blocks:
        def loss_fn(q, step):
            if current.get("j") != step // block:
                current["j"], current["data"] = step // block, blocks(step // block)
            P, k = current["data"], step % block
            KQ, OV = md.circuits(q)
            return md.softmax_loss(KQ, OV, mask, P.Z[rows, k], P.x_q[rows, k], P.y_q[rows, k])

        schedule = cosine_schedule(m.lr, m.steps, m.lr_floor)
        observers = {"KQ": lambda q: md.circuits(q)[0], "OV": lambda q: md.circuits(q)[1]}
        result = train(params, loss_fn, Scheduled(Adam(m.lr), schedule), m.steps, observers=observers,
                       observe_at=log_steps(m.steps, m.n_observe), progress=progress, desc="multi-task")
    KQ, OV = md.circuits(result.params)
    # the fixed evaluation set: noiseless query targets, so each squared error is the risk's own term
    s1 = torch.zeros((len(members), K), dtype=torch.float64)
    s2 = torch.zeros_like(s1)
    for c, n in enumerate(dt.eval_chunks(m.eval_prompts, EVAL_CHUNK)):
        P = dt.draw_multitask(dt.stream(cfg.seed, "multitask-eval", c), n, L, d, sup, m.sigma2, device=device, dtype=dtype)
        with torch.no_grad():
            err = (md.softmax_predict_shared(KQ, OV, mask, P.Z, P.x_q) - P.y_q).pow(2).double().cpu()   # (e, b, K)
        s1 += err.sum(1)
        s2 += err.pow(2).sum(1)
    risk = s1 / m.eval_prompts
    risk_se = torch.sqrt(torch.clamp(s2 / m.eval_prompts - risk ** 2, min=0) / (m.eval_prompts - 1))
    # the no-sharing rival's single head: He et al.'s one-head pattern on the task's own coordinates
    z, _, _ = dt.draw_standard(dt.stream(cfg.seed, "multitask-family"), m.family_prompts, L, d, dtype=torch.float64)
    best, best_omega = [], []
    for S in sup:
        x = z[..., list(S)]
        r = one_head_family(x[:, :-1], x[:, -1], 1.0, m.sigma2) - m.sigma2     # noiseless query
        best.append(float(r.min()))
        best_omega.append(float(ONE_HEAD_OMEGAS[int(r.argmin())]))
    return MultiTask(heads=np.array([H for H, _ in members]), seed_index=np.array([s for _, s in members]),
                     mask=mask.cpu().numpy(), steps=result.steps, loss_traj=result.trajectory["loss"].cpu().numpy(),
                     KQ_traj=result.trajectory["KQ"].cpu().numpy(),
                     OV_traj=result.trajectory["OV"].cpu().numpy(), KQ=KQ.cpu().numpy(), OV=OV.cpu().numpy(),
                     risk=risk.numpy(), risk_se=risk_se.numpy(), one_head_risk=np.array(best),
                     one_head_omega=np.array(best_omega))


# ------------------------------------------------------------------------------ phases
PHASES = (
    Phase("theory", theory_curves),
    Phase("mc", monte_carlo),
    Phase("lsa", lsa_training, grad=True),
    Phase("stall", stall_analysis, grad=True),
    Phase("softmax", softmax_training, grad=True),
    Phase("mixed", mixed_training, grad=True),
    Phase("small_n", small_n_training, grad=True),
    Phase("long_n", long_n_training, grad=True),
    Phase("eval", evaluation, needs=("lsa", "softmax", "mixed", "small_n", "long_n")),
    Phase("pool", task_pool),
    Phase("wu", wu_pretraining),
    Phase("multitask", multitask_training, grad=True),
)


def run(config: Config, *, progress: bool = True) -> Record:
    """Every phase at ``config``; deterministic given the config (which carries the seed and device)."""
    from studies.icl_regression import NAME

    return run_phases(NAME, config, PHASES, progress=progress)
