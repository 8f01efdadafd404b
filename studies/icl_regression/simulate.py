"""The sub-experiments of the study: one function per phase, each returning a typed result.

`run` is the list of phases; `workbench.phases.run_phases` owns threads, autograd, progress and
timing and stores each result as ``<phase>.<field>`` (see `config` for which fields drive which
phase).  Arrays are numpy on the CPU; scalars are stored as arrays of shape (1,).  Random draws are
made on the CPU from generators derived from (config seed, stream, ...) (`data.derived_generator`)
and moved to the config's device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from workbench.phases import Phase, run_phases
from workbench.record import Record
from workbench.runtime import Prefetcher
from workbench.train import Adam, GD, TrainResult, log_steps, train

from studies.icl_regression import data as dt
from studies.icl_regression import model as md
from studies.icl_regression import theory as th
from studies.icl_regression.config import Config

EXP_SOFTMAX, EXP_MIXED, EXP_SMALL_N = 0, 1, 2
"""Stream keys of the three softmax training programs (fixed N, mixed lengths, small N)."""
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
                              dt.derived_seed(cfg.seed, dt.STREAM_WISHART, int(n))) for n in ridge_lengths]
    # He et al.'s one-head pattern family (KQ = omega diag(I, 0), OV = mu e): best risk vs omega
    g = dt.derived_generator(cfg.seed, dt.STREAM_MC, 99)
    n_cov = min(cfg.eval_prompts, 20000)
    z, _, _ = dt.draw_standard(n_cov, cfg.n_context, cfg.d, g, dtype)
    x = z @ torch.linalg.cholesky(S).T
    omegas = torch.linspace(0.02, 1.2, 60, dtype=dtype)
    one_head = torch.cat([th.single_head_pattern_risk(om, x[:, :-1], x[:, -1], cfg.psi2, cfg.sigma2)[0]
                          for om in omegas.split(10)])
    return TheoryCurves(
        N=grid, gd_star=gd, dgd_star=dgd, ols=ols, ridge_N=ridge_lengths, ridge=np.array([r[0] for r in ridge]),
        ridge_se=np.array([r[1] for r in ridge]), one_head_omega=omegas.numpy(), one_head_risk=one_head.numpy())


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


def _random_spd(d: int, g: torch.Generator, floor: float, dtype) -> Tensor:
    A = torch.randn((d, d), generator=g, dtype=dtype)
    return A @ A.T / d + floor * torch.eye(d, dtype=dtype)


def monte_carlo(cfg: Config) -> MonteCarlo:
    """A1 and A3 by Monte Carlo.

    Each prompt contributes its risk conditional on the context and task, sigma^2 + (w - beta)^T
    Sigma (w - beta) for the linear predictor yhat = x_q^T w (the query integrated analytically).
    """
    dtype, device = cfg.torch_dtype, cfg.torch_device
    out: dict[str, np.ndarray] = {}
    # --- A1: three random LSA parameter sets, each with its own random Sigma and B
    d1, N1, n_sets = min(cfg.d, 3), min(cfg.n_context, 8), 3
    g = dt.derived_generator(cfg.seed, dt.STREAM_RANDOM_LSA)
    Sig = torch.stack([_random_spd(d1, g, 0.3, torch.float64) for _ in range(n_sets)])
    Bm = torch.stack([_random_spd(d1, g, 0.2, torch.float64) for _ in range(n_sets)])
    p = 0.5 * torch.randn((n_sets, d1 + 1), generator=g, dtype=torch.float64)
    K = 0.5 / math.sqrt(d1) * torch.randn((n_sets, d1 + 1, d1), generator=g, dtype=torch.float64)
    closed = th.lsa_population_risk(p, K, Sig, Bm, cfg.sigma2, N1)
    sums = torch.zeros(n_sets, dtype=torch.float64)
    sq = torch.zeros(n_sets, dtype=torch.float64)
    Ls, LBs = torch.linalg.cholesky(Sig), torch.linalg.cholesky(Bm)
    sizes = dt.eval_chunks(cfg.mc.prompts, 20000)
    for c, n in enumerate(sizes):
        gc = dt.derived_generator(cfg.seed, dt.STREAM_MC, 1, c)
        z = torch.randn((n_sets, n, N1, d1), generator=gc, dtype=dtype)
        bz = torch.randn((n_sets, n, d1), generator=gc, dtype=dtype)
        ez = torch.randn((n_sets, n, N1), generator=gc, dtype=dtype)
        x = z.to(device) @ Ls.to(device, dtype).transpose(-1, -2)[:, None]          # (s, n, N, d)
        beta = bz.to(device) @ LBs.to(device, dtype).transpose(-1, -2)               # (s, n, d)
        y = torch.einsum("snld,snd->snl", x, beta) + ez.to(device) * cfg.sigma2 ** 0.5
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
        P = dt.sample_prompts(n, N, L, cfg.psi2, cfg.sigma2, dt.derived_generator(cfg.seed, dt.STREAM_MC, 2, c), dtype)
        P = P.to(device, dtype)
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
                               dt.derived_seed(cfg.seed, dt.STREAM_WISHART, 0, N))
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


def lsa_training(cfg: Config, progress: bool = False) -> LSATraining:
    """Exact full-batch GD on the closed-form population risk of the full LSA, one batched program
    over Sigma in {I, AR(rho)} x init in {zfb, random} x seeds."""
    dtype, device = cfg.torch_dtype, cfg.torch_device
    members = cfg.lsa_members
    d = cfg.d
    sig = {"iso": dt.covariance(d, "iso", cfg.rho), "ar": dt.covariance(d, "ar", cfg.rho)}
    inits = [md.lsa_init(d, i, sig[c], dt.derived_generator(cfg.seed, dt.STREAM_LSA_INIT, dt.COV_TAGS[c], dt.INIT_TAGS[i], s))
             for c, i, s in members]
    Sig = torch.stack([sig[c] for c, _, _ in members]).to(device, dtype)            # (e, d, d)
    B = (cfg.psi2 * torch.eye(d, dtype=dtype, device=device)).expand_as(Sig)
    risk = th.LSARisk(Sig, B, cfg.sigma2, cfg.n_context)
    R_star = th.gd_optimal_risk(Sig, B, cfg.sigma2, cfg.n_context)                 # (e,)
    G_star = th.gamma_star(Sig, B, cfg.sigma2, cfg.n_context)                       # (e, d, d)
    params = {"p": torch.stack([a for a, _ in inits]).to(device, dtype),
              "K": torch.stack([b for _, b in inits]).to(device, dtype)}
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

    def where(self, cov: str, heads: int | None = None) -> np.ndarray:
        """(e,) bool: the members on covariance ``cov`` (with ``heads`` heads, if given)."""
        sel = self.cov == dt.COV_TAGS[cov]
        return sel if heads is None else sel & (self.heads == heads)


def _member_batch(cfg: Config, keys: list[tuple[int, str]], length: int, n: int, step: int, exp: int,
                  chol: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Training prompts (Z (e, n, length, d+1), x_q (e, n, d), y_q (e, n)) of every member.

    Member m with key (seed index s, covariance c) draws from the generator (seed, TRAIN, exp, s,
    step): members of one seed share their standard draws (the same batch for every head count,
    and the same standard normals behind their isotropic and AR prompts)."""
    dtype, device = cfg.torch_dtype, cfg.torch_device
    draws: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
    built: dict[tuple[int, str], tuple[Tensor, Tensor, Tensor]] = {}
    for s, c in keys:
        if (s, c) in built:
            continue
        if s not in draws:
            draws[s] = dt.draw_standard(n, length, cfg.d, dt.derived_generator(cfg.seed, dt.STREAM_TRAIN, exp, s, step), dtype)
        P = dt.assemble(*draws[s], chol[c], cfg.psi2, cfg.sigma2)
        built[(s, c)] = (torch.cat([P.X, P.y[..., None]], -1), P.x_q, P.y_q)
    return tuple(torch.stack([built[k][i] for k in keys]).to(device) for i in range(3))


def train_softmax(cfg: Config, members: list[tuple[str, int, int]], lengths: tuple[int, ...], exp: int, *,
                  steps: int, lr: float, batch_size: int, n_observe: int, progress: bool = False,
                  desc: str = "softmax attention") -> tuple[TrainResult, Tensor]:
    """Online Adam on fresh seeded batches for an ensemble of multi-head softmax models.

    ``members`` are (covariance, heads, seed index); heads are padded to the largest count with a
    mask, returned with the `TrainResult`.  With several ``lengths`` (the mixed-length extension)
    the context length cycles through them step by step (step t uses lengths[t mod len(lengths)]),
    so every length gets the same weight in the averaged objective and each step is one batch of
    one length.
    """
    dtype, device = cfg.torch_dtype, cfg.torch_device
    h_max = max(H for _, H, _ in members)
    chol = {c: torch.linalg.cholesky(dt.covariance(cfg.d, c, cfg.rho, dtype)) for c in ("iso", "ar")}
    # Initial weights depend on (covariance, heads, seed index) only, not on the sub-experiment: the
    # mixed-length members start from exactly the weights of the matching fixed-length members, so
    # the two differ only in the lengths they are trained on.
    inits = [md.softmax_init(cfg.d, H, h_max, dt.derived_generator(cfg.seed, dt.STREAM_INIT, dt.COV_TAGS[c], s, H), dtype)
             for c, H, s in members]
    params = {k: torch.stack([m[k] for m in inits]).to(device) for k in inits[0]}
    mask = torch.tensor([[1.0 if h < H else 0.0 for h in range(h_max)] for _, H, _ in members], dtype=dtype, device=device)
    keys = [(s, c) for c, _, s in members]

    def batch(step: int):   # a function of the step alone, so it can be drawn a step ahead
        return _member_batch(cfg, keys, lengths[step % len(lengths)], batch_size, step, exp, chol)

    observers = {"KQ": lambda q: md.circuits(q)[0], "OV": lambda q: md.circuits(q)[1]}
    with Prefetcher(batch, stop=steps + 1) as batches:
        def loss_fn(q, step):
            KQ, OV = md.circuits(q)
            return md.softmax_loss(KQ, OV, mask, *batches(step))

        result = train(params, loss_fn, Adam(lr), steps, observers=observers, observe_at=log_steps(steps, n_observe),
                       progress=progress, desc=desc)
    return result, mask


def _softmax_result(members: list[tuple[str, int, int]], result: TrainResult, mask: Tensor) -> SoftmaxTraining:
    KQ, OV = md.circuits(result.params)
    return SoftmaxTraining(
        cov=np.array([dt.COV_TAGS[c] for c, _, _ in members]), heads=np.array([H for _, H, _ in members]),
        seed_index=np.array([s for _, _, s in members]), mask=mask.cpu().numpy(), steps=result.steps,
        KQ_traj=result.trajectory["KQ"].cpu().numpy(), OV_traj=result.trajectory["OV"].cpu().numpy(),
        loss_traj=result.trajectory["loss"].cpu().numpy(), KQ=KQ.cpu().numpy(), OV=OV.cpu().numpy())


def softmax_training(cfg: Config, progress: bool = False) -> SoftmaxTraining:
    """The primary experiment: every `Config.softmax_members` member trained at the context length N."""
    members = cfg.softmax_members
    result, mask = train_softmax(cfg, members, (cfg.n_context,), EXP_SOFTMAX, steps=cfg.steps, lr=cfg.lr,
                                 batch_size=cfg.batch_size, n_observe=cfg.n_observe, progress=progress,
                                 desc="softmax attention")
    return _softmax_result(members, result, mask)


def mixed_training(cfg: Config, progress: bool = False) -> SoftmaxTraining:
    """The extension: the pair-head members trained on lengths uniform on ``mixed.lengths``."""
    members, m = cfg.mixed_members, cfg.mixed
    result, mask = train_softmax(cfg, members, m.lengths, EXP_MIXED, steps=m.steps, lr=m.lr, batch_size=m.batch_size,
                                 n_observe=m.n_observe, progress=progress, desc="mixed lengths")
    return _softmax_result(members, result, mask)


def small_n_training(cfg: Config, progress: bool = False) -> SoftmaxTraining:
    """The discriminating regime: the pair-head members trained at the short length ``small_n.n_context``
    (initial weights as the primary pair members of the same seed index, batches of their own stream)."""
    members, m = cfg.small_n_members, cfg.small_n
    result, mask = train_softmax(cfg, members, (m.n_context,), EXP_SMALL_N, steps=m.steps, lr=m.lr,
                                 batch_size=m.batch_size, n_observe=m.n_observe, progress=progress, desc="small N")
    return _softmax_result(members, result, mask)


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
    """(small_n.seeds, 1): the small-N members at their training length, on ``small_n.eval_prompts`` prompts."""
    seed: np.ndarray
    """(1,) the config seed the evaluation set derives from."""
    chunk_seeds: np.ndarray
    """(2, lengths, chunks) seed of every chunk, per covariance tag (0 where unused)."""
    test_lengths: np.ndarray
    """(lengths,) the test lengths M."""
    small_n_chunk_seeds: np.ndarray
    """(2, 1, chunks) seed of every chunk of the small-N evaluation (the same seeds as the primary
    evaluation's at that length, chunk for chunk)."""


def evaluation(cfg: Config, *, lsa: LSATraining, softmax: SoftmaxTraining, mixed: SoftmaxTraining,
               small_n: SoftmaxTraining, progress: bool = False) -> Evaluation:
    """The trained LSA, softmax, mixed-length and small-N models on the fixed evaluation set (`risks`)."""
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
    ev, chunk_seeds = risks(cfg, models, covs, progress)

    L = len(cfg.test_lengths)
    risk, risk_se = np.zeros((len(members), L)), np.zeros((len(members), L))
    for c, idx in member_index.items():
        risk[idx], risk_se[idx] = ev[f"softmax_{c}"]
    lsa_risk = {name: Risk(ev[name][0][0], ev[name][1][0]) for name in ("lsa_norm_M", "lsa_fixed")}
    KQs, OVs, mask_s = on_device(small_n.KQ), on_device(small_n.OV), on_device(small_n.mask)
    ev_s, small_seeds = risks(cfg, {"small_n": lambda Z, xq, M: md.softmax_predict_shared(KQs, OVs, mask_s, Z, xq)},
                              {"small_n": cfg.cov}, progress, lengths=(cfg.small_n.n_context,),
                              n_prompts=cfg.small_n.eval_prompts)
    return Evaluation(softmax=Risk(risk, risk_se), mixed=Risk(*ev["mixed"]), **lsa_risk, small_n=Risk(*ev_s["small_n"]),
                      seed=np.array([cfg.seed]), chunk_seeds=chunk_seeds, test_lengths=np.array(cfg.test_lengths),
                      small_n_chunk_seeds=small_seeds)


def risks(cfg: Config, models: dict[str, Callable[[Tensor, Tensor, int], Tensor]], covs: dict[str, str],
          progress: bool = False, *, lengths: tuple[int, ...] | None = None,
          n_prompts: int | None = None) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Risk and its standard error (each (e, lengths)) of every model on the fixed evaluation set,
    and the chunk seeds (2, lengths, chunks).  ``lengths`` and ``n_prompts`` default to
    ``cfg.test_lengths`` and ``cfg.eval_prompts``.

    Each prompt contributes (yhat - beta^T x_q)^2 + sigma^2, its squared error averaged over the
    query's label noise (which yhat does not see); this is the risk E(yhat - y_q)^2 with a smaller
    variance than the raw squared error.

    The evaluation set: ``eval_prompts`` prompts per test length M and covariance, in chunks whose
    seeds are (config seed, covariance, M, chunk) (`data.eval_chunk_seed`), so every model sees the
    same prompts.  ``models[name](Z, x_q, M)`` returns predictions (e, b) for shared prompts
    Z (b, M, d+1), x_q (b, d); ``covs[name]`` names the covariance its prompts use.
    """
    dtype, device = cfg.torch_dtype, cfg.torch_device
    lengths = tuple(cfg.test_lengths if lengths is None else lengths)
    n_tot = float(cfg.eval_prompts if n_prompts is None else n_prompts)
    sizes = dt.eval_chunks(int(n_tot), EVAL_CHUNK)
    seeds = np.zeros((2, len(lengths), len(sizes)), dtype=np.int64)
    iterator = [(c, li, M) for c in ("iso", "ar") if c in covs.values() for li, M in enumerate(lengths)]
    if progress:
        from workbench.progress import progress_bar
        iterator = progress_bar(iterator, desc="evaluate", leave=False)
    acc: dict[tuple[str, int], list[Tensor]] = {}
    for c, li, M in iterator:
        chol = torch.linalg.cholesky(dt.covariance(cfg.d, c, cfg.rho, dtype))
        for k, n in enumerate(sizes):
            seed = dt.eval_chunk_seed(cfg.seed, dt.COV_TAGS[c], M, k)
            seeds[dt.COV_TAGS[c], li, k] = seed
            g = torch.Generator(device="cpu")
            g.manual_seed(seed)
            P = dt.sample_prompts(n, M, chol, cfg.psi2, cfg.sigma2, g, dtype).to(device, dtype)
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
    return out, seeds


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
        g = dt.derived_generator(cfg.seed, dt.STREAM_POOL, int(T))
        betas = torch.randn((cfg.pool.draws, int(T), cfg.d), generator=g, dtype=dtype) * cfg.psi2 ** 0.5
        Gamma_T, Bhat = th.pool_gamma(betas, S, cfg.sigma2, cfg.n_context)
        new.append(th.gd_risk(Gamma_T, S, B, cfg.sigma2, cfg.n_context))
        pool.append(th.gd_risk(Gamma_T, S, Bhat, cfg.sigma2, cfg.n_context))
        pool_star.append(th.gd_risk(G_star, S, Bhat, cfg.sigma2, cfg.n_context))
        rank.append(torch.linalg.matrix_rank(Gamma_T))
    return TaskPool(T=Ts, risk_new=torch.stack(new, -1).numpy(), risk_pool=torch.stack(pool, -1).numpy(),
                    risk_pool_gamma_star=torch.stack(pool_star, -1).numpy(), rank=torch.stack(rank, -1).numpy(),
                    R_star=np.array([R_star]))


# ------------------------------------------------------------------------------ phases
PHASES = (
    Phase("theory", theory_curves),
    Phase("mc", monte_carlo),
    Phase("lsa", lsa_training, grad=True),
    Phase("softmax", softmax_training, grad=True),
    Phase("mixed", mixed_training, grad=True),
    Phase("small_n", small_n_training, grad=True),
    Phase("eval", evaluation, needs=("lsa", "softmax", "mixed", "small_n")),
    Phase("pool", task_pool),
)


def run(config: Config, *, progress: bool = True) -> Record:
    """Every phase at ``config``; deterministic given the config (which carries the seed and device)."""
    from studies.icl_regression import NAME

    return run_phases(NAME, config, PHASES, progress=progress)
