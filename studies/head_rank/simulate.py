"""The sub-experiments of head-rank: one function per phase, each returning a typed result.

Random streams: every draw is ``Stream(cfg.seed, "head-rank/<experiment>", *keys)`` with the purpose
as a string child ("G", "X", "init", "train", "test") and the length n, head size, configuration
name or member as keys; a whole ensemble (instances, restarts or Part B seeds) is drawn in one call.

Optimisers.  Part A fits each (instance, head size, restart) alone with scipy's L-BFGS-B (float64,
analytic gradient): L-BFGS couples the members of a summed ensemble loss through its shared line
search and curvature pairs (spec pitfall 3), and these problems are tiny (2 d d_h parameters, at
most 80 at the quick preset), so one problem per call is both exact and cheap; the restarts are the
ensemble and are drawn together.  Part A is numpy on the CPU whatever ``device`` says.  Part B uses
Adam (betas (0.9, 0.95), 5% warm-up, cosine to lr/10, full batch), which is exactly
member-separable, on one batched tensor program per (H, r, target) configuration on the run's
device, the n_seeds members on the leading axis (member i alone gives the same numbers: a test).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from workbench.phases import Phase, run_phases
from workbench.record import Record
from workbench.runtime import single_thread
from workbench.streams import Stream

from studies.head_rank import model as md
from studies.head_rank import theory as th
from studies.head_rank.config import Config

LBFGS_OPTIONS = {"ftol": 1e-30, "gtol": 1e-14, "maxcor": 30}
"""scipy L-BFGS-B tolerances (spec 4): the fit stops on the iteration cap or a stalled line search."""


def stream(cfg: Config, experiment: str, *keys) -> Stream:
    return Stream(cfg.seed, f"head-rank/{experiment}", *keys)


# ============================================================================== Part A
@dataclass(kw_only=True)
class Fits:
    """Part A at one n: instances, fits per head size, bounds, construction."""

    logP: np.ndarray
    """(I, n, n) log of the targets (masked entries -inf for the causal mask)."""
    X: np.ndarray
    """(I, n, d) tokens."""
    head_sizes: np.ndarray
    """(K,) the d_h fitted."""
    fits: np.ndarray
    """(I, K, R) mean stable KL of every restart."""
    iterations: np.ndarray
    """(I, K, R) L-BFGS iterations used."""
    lower: np.ndarray
    """(I, K) Theorem B's certificate (block certificate when causal; bi-subspace when narrow)."""
    upper: np.ndarray
    """(I, K) truncated-SVD bound (NaN where none is computed: causal, narrow)."""
    uncentred: np.ndarray
    """(I, K) mean KL of the truncated SVD of log P itself (no row shift)."""
    singular_values: np.ndarray
    """(I, n) sigma(AJ) (full P), or of the best block (causal)."""
    construction_kl: np.ndarray
    """(I,) stable mean KL of the Theorem A construction W = X^+ AJ X^+T (NaN where undefined)."""
    construction_naive_kl: np.ndarray
    """(I,) the same with the naive KL formula (negative where rounding wins)."""

    @property
    def best(self) -> np.ndarray:
        """(I, K) best fit over restarts."""
        return self.fits.min(-1)


def instances(cfg: Config, experiment: str, n: int, d: int, causal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(log P (I, n, n), X (I, n, d)): P = softmax(sigma G) (masked to j <= i when causal)."""
    s = stream(cfg, experiment, n, d)
    G = s.child("G").normal((n, n), members=cfg.instances, dtype=torch.float64).numpy()
    X = s.child("X").normal((n, d), members=cfg.instances, dtype=torch.float64).numpy()
    mask = th.causal_mask(n) if causal else None
    return th.log_softmax_rows(cfg.logit_scale * G, mask), X


def fit_head(X: np.ndarray, logP: np.ndarray, d_h: int, theta0: np.ndarray, max_iter: int,
             mask: np.ndarray | None = None) -> tuple[float, int]:
    """(best mean KL, iterations) of one L-BFGS-B run from theta0."""
    res = minimize(md.head_kl_and_grad, theta0, args=(X, logP, d_h, mask), jac=True, method="L-BFGS-B",
                   options={**LBFGS_OPTIONS, "maxiter": max_iter, "maxfun": 2 * max_iter})
    kl, _ = md.head_kl_and_grad(res.x, X, logP, d_h, mask)
    return float(kl), int(res.nit)


def fit_all(cfg: Config, experiment: str, n: int, d: int, head_sizes: list[int], causal: bool = False) -> Fits:
    with single_thread("cpu"):  # Part A is numpy on the CPU whatever the run's device
        return _fit_all(cfg, experiment, n, d, head_sizes, causal)


def _fit_all(cfg: Config, experiment: str, n: int, d: int, head_sizes: list[int], causal: bool) -> Fits:
    logP, X = instances(cfg, experiment, n, d, causal)
    mask = th.causal_mask(n) if causal else None
    I, K, R = cfg.instances, len(head_sizes), cfg.restarts
    fits = np.full((I, K, R), np.nan)
    its = np.zeros((I, K, R), dtype=np.int64)
    lower, upper, unc = np.zeros((I, K)), np.full((I, K), np.nan), np.full((I, K), np.nan)
    sv = np.zeros((I, n))
    c_kl, c_naive = np.full(I, np.nan), np.full(I, np.nan)
    for k, d_h in enumerate(head_sizes):
        # restarts of all instances in one draw: (I, R, 2 d d_h), scale 1/sqrt(d) per entry
        theta0 = stream(cfg, experiment, n, d).child("init", d_h).normal(
            (R, 2 * d * d_h), members=I, dtype=torch.float64).numpy() / math.sqrt(d)
        for i in range(I):
            for r in range(R):
                fits[i, k, r], its[i, k, r] = fit_head(X[i], logP[i], d_h, theta0[i, r], cfg.max_iter, mask)
            if causal:
                lower[i, k] = th.causal_certificate(logP[i], d_h)[0]
            elif d < n:
                lower[i, k] = th.narrow_certificate(X[i], logP[i])
            else:
                lower[i, k] = th.certificate(logP[i], d_h)
                upper[i, k] = th.svd_upper_bound(logP[i], d_h)
                unc[i, k] = th.uncentred_truncation(logP[i], d_h)
    for i in range(I):
        if causal:
            _, p = th.causal_certificate(logP[i], max(n // 2 - 1, 0))
            block = logP[i][p - 1:, :p] if p else logP[i][:, :1]
            s = np.linalg.svd(block @ th.centring(block.shape[1]), compute_uv=False)
            sv[i, : s.size] = s
        else:
            sv[i] = th.centred_singular_values(logP[i])
            if d >= n:
                W = th.construction(X[i], logP[i])
                logQ = th.log_softmax_rows(X[i] @ W @ X[i].T)
                c_kl[i] = float(th.stable_kl(logP[i], logQ).mean())
                c_naive[i] = float(th.naive_kl(logP[i], logQ).mean())
    return Fits(logP=logP, X=X, head_sizes=np.asarray(head_sizes), fits=fits, iterations=its, lower=lower,
                upper=upper, uncentred=unc, singular_values=sv, construction_kl=c_kl, construction_naive_kl=c_naive)


def threshold(cfg: Config, progress: bool = False) -> dict[str, Fits]:
    """A1-A3: every n of n_values with rank X = n (d >= n)."""
    return {f"n{n}": fit_all(cfg, "threshold", n, cfg.d, cfg.head_sizes(n)) for n in cfg.n_values}


def causal(cfg: Config, progress: bool = False) -> dict[str, Fits]:
    """A4: the causal mask."""
    return {f"n{n}": fit_all(cfg, "causal", n, cfg.d, cfg.causal_head_sizes(n), causal=True) for n in cfg.causal_n}


def narrow(cfg: Config, progress: bool = False) -> dict[str, Fits]:
    """A5: d < n, head sizes d .. n-1 (and below): no head size is enough."""
    if not cfg.narrow_n:
        return {}
    n, d = cfg.narrow_n, cfg.narrow_d
    sizes = sorted({d, n - 1})
    return {f"n{n}": fit_all(cfg, "narrow", n, d, sizes)}


# ============================================================================== Part B data
def sphere(s: Stream, shape: tuple[int, ...], members=None, device="cpu") -> torch.Tensor:
    """Uniform points on S^{d-1} (last axis of ``shape``), normalised Gaussians."""
    z = s.normal(shape, members=members, device=device, dtype=torch.float64)
    return z / z.norm(dim=-1, keepdim=True)


def test_sample(cfg: Config, d: int, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(X (1, M, N, d), y (1, M, d)): the fixed test sample shared by every member."""
    s = stream(cfg, "test", d, cfg.nn.n_keys)
    X = sphere(s.child("X"), (samples, cfg.nn.n_keys, d), device=cfg.torch_device)[None]
    y = sphere(s.child("y"), (samples, d), device=cfg.torch_device)[None]
    return X, y


def train_sample(cfg: Config, members=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(X (E, M, N, d), y (E, M, d)): member e's own fixed training sample (``members``: n_seeds by
    default, or a list of member indices)."""
    nn, E = cfg.nn, cfg.n_seeds if members is None else members
    s = stream(cfg, "train", nn.d, nn.n_keys)
    X = sphere(s.child("X"), (nn.train_samples, nn.n_keys, nn.d), members=E, device=cfg.torch_device)
    y = sphere(s.child("y"), (nn.train_samples, nn.d), members=E, device=cfg.torch_device)
    return X, y


# ============================================================================== B1: full rank
@dataclass(kw_only=True)
class FullRank:
    """The head beta I, O = I, on test samples against the exact quadrature."""

    betas: np.ndarray
    """(B,) the checked betas."""
    mc: np.ndarray
    """(B,) Monte Carlo error on the test sample (N = n_keys, d = nn.d)."""
    mc_se: np.ndarray
    """(B,) its standard error."""
    quadrature: np.ndarray
    """(B,) err(beta) by quadrature (N = 2)."""
    c_infinity: float
    """C_inf(d)."""
    beta_err_1000: float
    """1000 err(1000) by quadrature."""
    curve_betas: np.ndarray
    """(G,) the figure's beta grid."""
    curve_dims: np.ndarray
    """(D,) the figure's dimensions."""
    curve_quadrature: np.ndarray
    """(D, G) err(beta) by quadrature."""
    curve_mc: np.ndarray
    """(D, G) Monte Carlo (same test size, N = 2)."""
    curve_mc_se: np.ndarray
    """(D, G)."""
    curve_c_infinity: np.ndarray
    """(D,)."""


def full_rank_mc(X: torch.Tensor, y: torch.Tensor, beta: float) -> tuple[float, float]:
    """(mean, s.e.) of |g - f|^2 for W = beta I, O = I on a sample (1, M, N, d)."""
    d = X.shape[-1]
    eye = torch.eye(d, dtype=X.dtype, device=X.device)
    g = md.heads_output((beta * eye)[None, None], eye[None, None], eye[None, None], X, y)
    err = md.squared_error(g, md.nearest_target(X, y)).flatten().cpu().numpy()
    return float(err.mean()), float(err.std(ddof=1) / math.sqrt(err.size))


def full_rank(cfg: Config) -> FullRank:
    nn = cfg.nn
    X, y = test_sample(cfg, nn.d, nn.test_samples)
    mc = np.array([full_rank_mc(X, y, b) for b in nn.betas])
    quad = np.array([th.full_rank_error(b, nn.d) if nn.n_keys == 2 else np.nan for b in nn.betas])
    grid = np.logspace(-1, 3, 13)
    dims = np.asarray(nn.mc_dims)
    cq = np.array([[th.full_rank_error(b, int(dd)) for b in grid] for dd in dims])
    cm, cs = np.zeros_like(cq), np.zeros_like(cq)
    for j, dd in enumerate(dims):
        s = stream(cfg, "curve", int(dd))
        Xc = sphere(s.child("X"), (nn.test_samples, 2, int(dd)), device=cfg.torch_device)[None]
        yc = sphere(s.child("y"), (nn.test_samples, int(dd)), device=cfg.torch_device)[None]
        for g, b in enumerate(grid):
            cm[j, g], cs[j, g] = full_rank_mc(Xc, yc, float(b))
    return FullRank(betas=np.asarray(nn.betas), mc=mc[:, 0], mc_se=mc[:, 1], quadrature=quad,
                    c_infinity=th.c_infinity(nn.d), beta_err_1000=1000 * th.full_rank_error(1000.0, nn.d),
                    curve_betas=grid, curve_dims=dims, curve_quadrature=cq, curve_mc=cm, curve_mc_se=cs,
                    curve_c_infinity=np.array([th.c_infinity(int(dd)) for dd in dims]))


# ============================================================================== B4: random features
@dataclass(kw_only=True)
class Features:
    heads: np.ndarray
    """(K,) head counts H."""
    mse: np.ndarray
    """(draws, K) optimal MSE 1 - b^T C^{-1} b of H random rank-1 hardmax heads."""
    pick_c: np.ndarray
    """(G,) cos(q, k) grid of the pick-probability table."""
    pick_b: np.ndarray
    """(G,) b(c)."""
    hardmax_mc: np.ndarray
    """(3,) [MSE by Monte Carlo of the fitted combination at the smallest H, its s.e., exact value]."""


def random_features(cfg: Config) -> Features:
    rf = cfg.rf
    d = rf.d
    mse = np.zeros((rf.draws, len(rf.heads)))
    for j, H in enumerate(rf.heads):
        s = stream(cfg, "features", d, H)
        q = sphere(s.child("q"), (H, d), members=rf.draws)                        # (draws, H, d)
        c = 2 * s.child("cos").uniform((H,), members=rf.draws, dtype=torch.float64) - 1   # (draws, H)
        w = s.child("w").normal((H, d), members=rf.draws, dtype=torch.float64)
        w = w - (w * q).sum(-1, keepdim=True) * q
        w = w / w.norm(dim=-1, keepdim=True)
        k = c[..., None] * q + torch.sqrt(1 - c ** 2)[..., None] * w
        mse[:, j] = th.random_feature_mse(q.numpy(), k.numpy(), d)
    grid, table = th.pick_probability_table(d)
    # Monte Carlo of the closed form at the smallest H, draw 0: the hardmax heads, O_h = a_h I
    H0 = rf.heads[0]
    s = stream(cfg, "features", d, H0)
    q = sphere(s.child("q"), (H0, d), members=1)[0]
    c = 2 * s.child("cos").uniform((H0,), members=1, dtype=torch.float64)[0] - 1
    w = s.child("w").normal((H0, d), members=1, dtype=torch.float64)[0]
    w = w - (w * q).sum(-1, keepdim=True) * q
    w = w / w.norm(dim=-1, keepdim=True)
    k = c[:, None] * q + torch.sqrt(1 - c ** 2)[:, None] * w
    b = np.interp((q * k).sum(-1).numpy(), grid, table)
    a = np.linalg.lstsq(th.random_feature_kernel(q.numpy(), k.numpy()), b, rcond=1e-13)[0]
    X, y = test_sample(cfg, d, 65536)
    eye = torch.eye(d, dtype=torch.float64)
    O = torch.as_tensor(a)[:, None, None] * eye                                   # (H, d, d)
    g = md.heads_output(q[None, :, :, None], k[None, :, :, None], O[None], X, y, hard=True)
    err = md.squared_error(g, md.nearest_target(X, y)).flatten().numpy()
    exact = float(th.random_feature_mse(q.numpy()[None], k.numpy()[None], d)[0])
    return Features(heads=np.asarray(rf.heads), mse=mse, pick_c=grid, pick_b=table,
                    hardmax_mc=np.array([err.mean(), err.std(ddof=1) / math.sqrt(err.size), exact]))


# ============================================================================== training
def lr_schedule(step: int, steps: int, lr: float) -> float:
    """5% linear warm-up, then cosine from lr to lr/10."""
    warm = max(1, steps // 20)
    if step < warm:
        return lr * (step + 1) / warm
    frac = (step - warm) / max(1, steps - warm)
    return lr / 10 + (lr - lr / 10) * 0.5 * (1 + math.cos(math.pi * frac))


def adam(params: dict[str, torch.Tensor], loss_fn, steps: int, lr: float, n_curve: int = 40,
         betas=(0.9, 0.95), eps=1e-8) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    """Full-batch Adam on an ensemble: loss_fn(params) -> (e,) losses; members never interact
    (the gradient of the summed loss is each member's own).  Returns (params, curve steps, (S, e) losses)."""
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    v2 = {k: torch.zeros_like(v) for k, v in params.items()}
    at = set(np.unique(np.round(np.logspace(0, math.log10(steps), n_curve)).astype(int)).tolist()) | {0, steps}
    curve_steps, curve = [], []
    b1, b2 = betas
    for t in range(steps + 1):
        with torch.enable_grad():
            loss = loss_fn(params)                                 # (e,)
            if t in at:
                curve_steps.append(t)
                curve.append(loss.detach().cpu().numpy().copy())
            if t == steps:
                break
            grads = torch.autograd.grad(loss.sum(), list(params.values()))
        rate = lr_schedule(t, steps, lr)
        with torch.no_grad():
            for (name, p), g in zip(params.items(), grads):
                m[name].mul_(b1).add_(g, alpha=1 - b1)
                v2[name].mul_(b2).addcmul_(g, g, value=1 - b2)
                p.sub_(rate * (m[name] / (1 - b1 ** (t + 1))) / ((v2[name] / (1 - b2 ** (t + 1))).sqrt() + eps))
    return {k: v.detach() for k, v in params.items()}, np.asarray(curve_steps), np.stack(curve)


def init_heads(s: Stream, E: int, H: int, D: int, r: int, D_out: int, device) -> dict[str, torch.Tensor]:
    """Xavier-uniform init as torch's MultiheadAttention: U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    def u(name, shape, a):
        return (2 * s.child(name).uniform(shape, members=E, device=device, dtype=torch.float64) - 1) * a
    return {"Q": u("Q", (H, D, r), math.sqrt(6 / (D + r))), "K": u("K", (H, D, r), math.sqrt(6 / (D + r))),
            "O": u("O", (H, D_out, D), math.sqrt(6 / (D + D_out)))}


@dataclass(kw_only=True)
class Trained:
    """One (H, r, target) configuration, n_seeds members."""

    heads: int
    rank: int
    control: bool
    """True: trained on the rank-r control target x_{argmax <P_r x_i, P_r y>}."""
    train_error: np.ndarray
    """(E,) final full-batch train error."""
    test_error: np.ndarray
    """(E,) test error."""
    curve_steps: np.ndarray
    curve: np.ndarray
    """(S, E) training loss."""
    beta_eff: np.ndarray
    """(E,) tr(Q K^T)/d summed over heads (the full-rank head's effective beta)."""
    Q: np.ndarray
    K: np.ndarray
    O: np.ndarray


def config_key(H: int, r: int, control: bool) -> str:
    return f"H{H}_r{r}" + ("_control" if control else "")


def heads_configurations(cfg: Config) -> list[tuple[int, int, bool]]:
    nn = cfg.nn
    grid = list(nn.fixed_width_grid)
    grid += [(H, 1) for H in nn.heads_r1] + [(H, 2) for H in nn.heads_r2]
    out = list(dict.fromkeys((H, r, False) for H, r in grid))
    out += [(nn.d // r, r, True) for r in nn.control_ranks if nn.d % r == 0]
    return out


def train_heads_one(cfg: Config, H: int, r: int, control: bool, X, y, Xt, yt) -> Trained:
    nn, E = cfg.nn, cfg.n_seeds
    coords = r if control else None
    f, ft = md.nearest_target(X, y, coords), md.nearest_target(Xt, yt, coords)
    p0 = init_heads(stream(cfg, "heads", config_key(H, r, control)).child("init"), E, H, nn.d, r, nn.d, cfg.torch_device)
    loss = lambda p: md.squared_error(md.heads_output(p["Q"], p["K"], p["O"], X, y), f).mean(-1)
    p, steps, curve = adam(p0, loss, nn.steps, nn.lr)
    test = torch.stack([md.squared_error(md.heads_output(p["Q"][e:e + 1], p["K"][e:e + 1], p["O"][e:e + 1], Xt, yt),
                                         ft).mean() for e in range(E)])
    beta = torch.einsum("ehdr,ehdr->e", p["Q"], p["K"]) / nn.d
    return Trained(heads=H, rank=r, control=control, train_error=loss(p).cpu().numpy(), test_error=test.cpu().numpy(),
                   curve_steps=steps, curve=curve, beta_eff=beta.cpu().numpy(), Q=p["Q"].cpu().numpy(),
                   K=p["K"].cpu().numpy(), O=p["O"].cpu().numpy())


def heads(cfg: Config, progress: bool = False) -> dict[str, Trained]:
    """B2-B4: every (H, r, target) configuration, n_seeds members each."""
    X, y = train_sample(cfg)
    Xt, yt = test_sample(cfg, cfg.nn.d, cfg.nn.test_samples)
    return {config_key(H, r, c): train_heads_one(cfg, H, r, c, X, y, Xt, yt) for H, r, c in heads_configurations(cfg)}


# ============================================================================== B5: depth
@dataclass(kw_only=True)
class Depth:
    eps: np.ndarray
    beta: np.ndarray
    construction_error: np.ndarray
    """(C,) test error of the depth-2 construction at (eps, beta)."""
    construction_se: np.ndarray
    full_rank_at_eps_beta: np.ndarray
    """(C,) err(eps beta) of the full-rank head by quadrature."""
    names: np.ndarray
    """(3,) 'depth2_[d,1]', 'depth1_[d+1]', 'depth1_[2d+2]' (empty when not trained)."""
    train_error: np.ndarray
    """(3, E)."""
    test_error: np.ndarray
    """(3, E)."""
    curve_steps: np.ndarray
    curves: np.ndarray
    """(3, S, E)."""


def depth(cfg: Config, progress: bool = False) -> Depth:
    nn, dp, E = cfg.nn, cfg.depth, cfg.n_seeds
    d = nn.d
    Xt, yt = test_sample(cfg, d, nn.test_samples)
    ft = md.nearest_target(Xt, yt)
    ce, cs = [], []
    for eps, beta in zip(dp.eps, dp.beta):
        layers = md.depth_construction(d, eps, beta, device=cfg.torch_device)
        err = md.squared_error(md.tagged_output(layers, Xt, yt), ft).flatten().cpu().numpy()
        ce.append(err.mean())
        cs.append(err.std(ddof=1) / math.sqrt(err.size))
    full = np.array([th.full_rank_error(e * b, d) for e, b in zip(dp.eps, dp.beta)])
    names, tr, te, curves, steps = [], [], [], [], np.zeros(0, dtype=np.int64)
    if dp.train:
        X, y = train_sample(cfg)
        f = md.nearest_target(X, y)
        D = d + 1
        for name, widths in ((f"depth2_[{d},1]", (d, 1)), (f"depth1_[{d + 1}]", (d + 1,)),
                             (f"depth1_[{2 * d + 2}]", (2 * d + 2,))):
            s = stream(cfg, "depth", name)
            p0 = {}
            for li, H in enumerate(widths):
                for k, v in init_heads(s.child("layer", li), E, H, D, 1, D, cfg.torch_device).items():
                    p0[f"{k}{li}"] = v
            n_layers = len(widths)

            def out(p, X_, y_, n_layers=n_layers):
                layers = [{k: p[f"{k}{li}"] for k in "QKO"} for li in range(n_layers)]
                return md.tagged_output(layers, X_, y_)

            loss = lambda p, out=out: md.squared_error(out(p, X, y), f).mean(-1)
            p, steps, curve = adam(p0, loss, dp.steps, nn.lr)
            test = torch.stack([md.squared_error(out({k: v[e:e + 1] for k, v in p.items()}, Xt, yt), ft).mean()
                                for e in range(E)])
            names.append(name)
            tr.append(loss(p).cpu().numpy())
            te.append(test.cpu().numpy())
            curves.append(curve)
    return Depth(eps=np.asarray(dp.eps), beta=np.asarray(dp.beta), construction_error=np.asarray(ce),
                 construction_se=np.asarray(cs), full_rank_at_eps_beta=full, names=np.asarray(names, dtype=str),
                 train_error=np.asarray(tr).reshape(len(names), E), test_error=np.asarray(te).reshape(len(names), E),
                 curve_steps=steps, curves=np.asarray(curves).reshape(len(names), len(steps), E))


PHASES = (
    Phase("threshold", threshold, inputs=lambda c: (c.n_values, c.d, c.instances, c.logit_scale, c.restarts,
                                                   c.max_iter, c.all_head_sizes)),
    Phase("causal", causal, inputs=lambda c: (c.causal_n, c.d, c.instances, c.logit_scale, c.restarts, c.max_iter,
                                             c.all_head_sizes)),
    Phase("narrow", narrow, inputs=lambda c: (c.narrow_n, c.narrow_d, c.instances, c.logit_scale, c.restarts,
                                             c.max_iter)),
    Phase("full_rank", full_rank, inputs=lambda c: c.nn),
    Phase("features", random_features, inputs=lambda c: c.rf),
    Phase("heads", heads, grad=True, inputs=lambda c: c.nn),
    Phase("depth", depth, grad=True, inputs=lambda c: (c.nn, c.depth)),
)


def run(config: Config, *, progress: bool = True) -> Record:
    """Every phase at ``config``; deterministic given the config."""
    from studies.head_rank import NAME

    return run_phases(NAME, config, PHASES, progress=progress)
