"""The sub-experiments of the study; `run_all` chains them into one `Record`.

Scalars are stored as arrays of shape (1,) (a record's arrays keep that shape through a save and
load).  Every sub-experiment stores its arrays under a prefix (see `config` for how each derives from the
config fields).  Random draws are made on the CPU from generators derived from
(config seed, stream, ...) (`data.derived_generator`) and moved to the config's device.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from workbench.train import Adam, GD, log_steps, train
from workbench.runtime import Prefetcher

from . import data as dt
from . import models as md
from . import theory as th
from .config import Config

EXP_SOFTMAX, EXP_MIXED = 0, 1
INIT_TAGS = {"zfb": 0, "random": 1}
EVAL_CHUNK = 2000


def sigma_main(cfg: Config, dtype=torch.float64) -> Tensor:
    return dt.covariance(cfg.d, cfg.cov, cfg.rho, dtype)


def pair_heads(cfg: Config) -> int:
    """The smallest head count >= 2: the 'pair of heads' model of He et al."""
    return min(h for h in cfg.n_heads if h >= 2)


# --------------------------------------------------------------------------- members
def softmax_members(cfg: Config) -> list[tuple[str, int, int]]:
    """(covariance, heads, seed index) of every softmax member, in ensemble order."""
    members = [(cfg.cov, H, s) for s in range(cfg.n_seeds) for H in cfg.n_heads]
    if cfg.cov == "iso":
        members += [("ar", pair_heads(cfg), s) for s in range(cfg.aniso_seeds)]
    return members


def lsa_members(cfg: Config) -> list[tuple[str, str, int]]:
    """(covariance, init, seed index) of every LSA member."""
    return [(c, i, s) for c in ("iso", "ar") for i in ("zfb", "random") for s in range(cfg.n_seeds)]


# ------------------------------------------------------------------------------- theory
def run_theory(cfg: Config) -> dict[str, np.ndarray]:
    """Closed-form curves vs context length, ridge by Wishart Monte Carlo, the one-head family."""
    dtype = torch.float64
    S = sigma_main(cfg, dtype)
    B = cfg.psi2 * torch.eye(cfg.d, dtype=dtype)
    grid = np.unique(np.round(np.geomspace(cfg.d + 2, max(cfg.test_lengths), 40)).astype(int))
    gd = np.array([float(th.gd_optimal_risk(S, B, cfg.sigma2, n)) for n in grid])
    dgd = np.array([float(th.dgd_optimal_risk(S, B, cfg.sigma2, n)) for n in grid])
    ols = np.array([th.ols_risk(cfg.d, int(n), cfg.sigma2) for n in grid])
    ridge_lengths = np.array(sorted(set(cfg.test_lengths) | {cfg.n_context}))
    ridge = [th.ridge_risk_mc(S, cfg.psi2, cfg.sigma2, int(n), max(cfg.mc_prompts // 4, 1000),
                              dt.derived_seed(cfg.seed, dt.STREAM_WISHART, int(n))) for n in ridge_lengths]
    # He et al.'s one-head pattern family (KQ = omega diag(I, 0), OV = mu e): best risk vs omega
    g = dt.derived_generator(cfg.seed, dt.STREAM_MC, 99)
    n_cov = min(cfg.eval_prompts, 20000)
    z, _, _ = dt.draw_standard(n_cov, cfg.n_context, cfg.d, g, dtype)
    x = z @ torch.linalg.cholesky(S).T
    omegas = torch.linspace(0.02, 1.2, 60, dtype=dtype)
    one_head = torch.cat([th.single_head_pattern_risk(om, x[:, :-1], x[:, -1], cfg.psi2, cfg.sigma2)[0]
                          for om in omegas.split(10)])
    return {
        "theory.N": grid, "theory.gd_star": gd, "theory.dgd_star": dgd, "theory.ols": ols,
        "theory.ridge_N": ridge_lengths, "theory.ridge": np.array([r[0] for r in ridge]),
        "theory.ridge_se": np.array([r[1] for r in ridge]),
        "theory.one_head_omega": omegas.numpy(), "theory.one_head_risk": one_head.numpy(),
    }


# ------------------------------------------------------------------ Monte Carlo checks
def _random_spd(d: int, g: torch.Generator, floor: float, dtype) -> Tensor:
    A = torch.randn((d, d), generator=g, dtype=dtype)
    return A @ A.T / d + floor * torch.eye(d, dtype=dtype)


def run_mc(cfg: Config, progress: bool = False) -> dict[str, np.ndarray]:
    """A1: the full-LSA closed form against Monte Carlo; A3: GD*, DGD*, OLS, ridge against Monte Carlo.

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
    sizes = dt.eval_chunks(cfg.mc_prompts, 20000)
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
    n_tot = float(cfg.mc_prompts)
    mean = sums / n_tot
    se = torch.sqrt((sq / n_tot - mean ** 2) / (n_tot - 1))
    out.update({"mc.lsa_closed": closed.numpy(), "mc.lsa_mc": mean.numpy(), "mc.lsa_se": se.numpy(),
                "mc.lsa_d": np.array([d1]), "mc.lsa_N": np.array([N1])})

    # --- A3: optimal one-step GD, debiased GD, OLS and ridge at the main setting
    S = sigma_main(cfg, torch.float64)
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
        out[f"mc.{k}"] = np.array([m])
        out[f"mc.{k}_se"] = np.array([math.sqrt(max(acc[k][1] / n_tot - m * m, 0.0) / (n_tot - 1))])
    # the ridge closed form is itself a Monte Carlo average, over Wishart draws of X^T X
    rm, rse = th.ridge_risk_mc(S, cfg.psi2, cfg.sigma2, N, max(cfg.mc_prompts // 4, 1000),
                               dt.derived_seed(cfg.seed, dt.STREAM_WISHART, 0, N))
    out["mc.ridge_wishart"], out["mc.ridge_wishart_se"] = np.array([rm]), np.array([rse])
    return out


# ------------------------------------------------------------------------ LSA, exact GD
def run_lsa(cfg: Config, progress: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Tensor]]:
    """Exact full-batch GD on the closed-form population risk of the full LSA, one batched program
    over Sigma in {I, AR(rho)} x init in {zfb, random} x seeds."""
    dtype, device = cfg.torch_dtype, cfg.torch_device
    members = lsa_members(cfg)
    d = cfg.d
    sig = {"iso": dt.covariance(d, "iso", cfg.rho), "ar": dt.covariance(d, "ar", cfg.rho)}
    inits = [md.lsa_init(d, i, sig[c], dt.derived_generator(cfg.seed, dt.STREAM_LSA_INIT, dt.COV_TAGS[c], INIT_TAGS[i], s))
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
    result = train(params, lambda q, step: risk(q["p"], q["K"]), GD(cfg.lsa_lr), cfg.lsa_steps,
                   observers=observers, observe_at=log_steps(cfg.lsa_steps, 60), underflow="ignore",
                   progress=progress, desc="LSA exact GD")
    q = {k: v.clone().requires_grad_(True) for k, v in result.params.items()}
    grads = torch.autograd.grad(risk(q["p"], q["K"]).sum(), [q["p"], q["K"]])
    grad_norm = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads))
    Gam = result.trajectory["Gamma"]                                                 # (t, e, d, d)
    gamma_err = torch.linalg.norm(Gam - G_star, dim=(-2, -1)) / torch.linalg.norm(G_star, dim=(-2, -1))
    arrays = {
        "lsa.cov": np.array([dt.COV_TAGS[c] for c, _, _ in members]),
        "lsa.init": np.array([INIT_TAGS[i] for _, i, _ in members]),
        "lsa.seed_index": np.array([s for _, _, s in members]),
        "lsa.steps": result.steps, "lsa.gap": result.trajectory["gap"].cpu().numpy(),
        "lsa.gamma_err": gamma_err.cpu().numpy(), "lsa.Gamma_traj": Gam.cpu().numpy(),
        "lsa.p": result.params["p"].cpu().numpy(), "lsa.K": result.params["K"].cpu().numpy(),
        "lsa.R_star": R_star.cpu().numpy(), "lsa.Gamma_star": G_star.cpu().numpy(),
        "lsa.grad_norm": grad_norm.detach().cpu().numpy(),
    }
    # the model used for length generalisation: (Sigma_main, init, seed 0)
    main = members.index((cfg.cov, cfg.init, 0))
    return arrays, {"p": result.params["p"][main:main + 1], "K": result.params["K"][main:main + 1]}


# ------------------------------------------------------------ softmax attention (online Adam)
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


def train_softmax(cfg: Config, members: list[tuple[str, int, int]], lengths: tuple[int, ...], exp: int,
                  progress: bool, desc: str):
    """Online Adam on fresh seeded batches for an ensemble of multi-head softmax models.

    ``members`` are (covariance, heads, seed index); heads are padded to the largest count with a
    mask.  With several ``lengths`` (the mixed-length extension) the context length cycles through
    them step by step (step t uses lengths[t mod len(lengths)]), so every length gets the same
    weight in the averaged objective and each step is one batch of one length.
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
        return _member_batch(cfg, keys, lengths[step % len(lengths)], cfg.batch_size, step, exp, chol)

    observe = log_steps(cfg.steps, cfg.n_observe)
    observers = {"KQ": lambda q: md.circuits(q)[0], "OV": lambda q: md.circuits(q)[1]}
    with Prefetcher(batch, stop=cfg.steps + 1) as batches:
        def loss_fn(q, step):
            KQ, OV = md.circuits(q)
            Z, x_q, y_q = batches(step)
            return (md.softmax_predict(KQ, OV, mask, Z, x_q) - y_q).pow(2).mean(-1)

        result = train(params, loss_fn, Adam(cfg.lr), cfg.steps, observers=observers, observe_at=observe,
                       progress=progress, desc=desc)
    return result, mask


# --------------------------------------------------------------------------- evaluation
def evaluate(cfg: Config, models: dict[str, Callable[[Tensor, Tensor, int], Tensor]], covs: dict[str, str],
             progress: bool = False) -> dict[str, np.ndarray]:
    """Risk and its standard error of every model on the fixed evaluation set.

    Each prompt contributes (yhat - beta^T x_q)^2 + sigma^2, its squared error averaged over the
    query's label noise (which yhat does not see); this is the risk E(yhat - y_q)^2 with a smaller
    variance than the raw squared error.

    The evaluation set: ``eval_prompts`` prompts per test length M and covariance, in chunks whose
    seeds are (config seed, covariance, M, chunk) (`data.eval_chunk_seed`), so every model sees the
    same prompts.  ``models[name](Z, x_q, M)`` returns predictions (e, b) for shared prompts
    Z (b, M, d+1), x_q (b, d); ``covs[name]`` names the covariance its prompts use.
    """
    dtype, device = cfg.torch_dtype, cfg.torch_device
    sizes = dt.eval_chunks(cfg.eval_prompts, EVAL_CHUNK)
    out: dict[str, np.ndarray] = {}
    seeds = np.zeros((2, len(cfg.test_lengths), len(sizes)), dtype=np.int64)
    iterator = [(c, li, M) for c in ("iso", "ar") if c in covs.values() for li, M in enumerate(cfg.test_lengths)]
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
    n_tot = float(cfg.eval_prompts)
    for name in models:
        means, ses = [], []
        for li in range(len(cfg.test_lengths)):
            s1, s2 = acc[(name, li)]
            m = s1 / n_tot
            means.append(m)
            ses.append(torch.sqrt(torch.clamp(s2 / n_tot - m ** 2, min=0) / (n_tot - 1)))
        out[f"{name}.risk"] = torch.stack(means, -1).numpy()        # (e, lengths)
        out[f"{name}.risk_se"] = torch.stack(ses, -1).numpy()
    out["eval.chunk_seeds"] = seeds
    return out


# ------------------------------------------------------------------------------ pool
def run_pool(cfg: Config) -> dict[str, np.ndarray]:
    """The finite task-pool Gamma model: Gamma_T = Bhat Sigma Ghat^{-1} for pools of T Gaussian tasks."""
    dtype = torch.float64
    S = sigma_main(cfg, dtype)
    B = cfg.psi2 * torch.eye(cfg.d, dtype=dtype)
    R_star = float(th.gd_optimal_risk(S, B, cfg.sigma2, cfg.n_context))
    G_star = th.gamma_star(S, B, cfg.sigma2, cfg.n_context)
    Ts = 2 ** np.arange(int(math.log2(cfg.n_tasks_pool)) + 1)
    new, pool, pool_star, rank = [], [], [], []
    for T in Ts:
        g = dt.derived_generator(cfg.seed, dt.STREAM_POOL, int(T))
        betas = torch.randn((cfg.pool_draws, int(T), cfg.d), generator=g, dtype=dtype) * cfg.psi2 ** 0.5
        Gamma_T, Bhat = th.pool_gamma(betas, S, cfg.sigma2, cfg.n_context)
        new.append(th.gd_risk(Gamma_T, S, B, cfg.sigma2, cfg.n_context))
        pool.append(th.gd_risk(Gamma_T, S, Bhat, cfg.sigma2, cfg.n_context))
        pool_star.append(th.gd_risk(G_star, S, Bhat, cfg.sigma2, cfg.n_context))
        rank.append(torch.linalg.matrix_rank(Gamma_T))
    return {"pool.T": Ts, "pool.risk_new": torch.stack(new, -1).numpy(), "pool.risk_pool": torch.stack(pool, -1).numpy(),
            "pool.risk_pool_gamma_star": torch.stack(pool_star, -1).numpy(), "pool.rank": torch.stack(rank, -1).numpy(),
            "pool.R_star": np.array([R_star])}
