"""The sub-experiments of induction-heads: one function per phase, each returning a typed result.

bayes        the exact per-position risk curves at k = 2 (dynamic program, `theory.risk_curves_k2`)
reduced      the reduced model (RM) and the minimal model (MM) trained by GD on the exact population
             loss (all k^T prefixes, Bayes soft targets): escape-law sweep over sigma x seeds, cold
             start, the quartic saddle, the alpha sweep of the sink, the full MM
transformer  the 2-layer attention-only transformer and its 1-layer control, trained online with
             Adam on fresh Dirichlet-Markov batches (soft targets: the true row P[x_t]); scored on a
             fixed test set against the Bayes and Laplace predictors on the same sequences
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from workbench.phases import Phase, run_phases
from workbench.progress import progress_bar
from workbench.record import Record
from workbench.streams import Stream

from studies.induction_heads import data
from studies.induction_heads import model as md
from studies.induction_heads import theory as th
from studies.induction_heads.config import Config


# ------------------------------------------------------------------------------------------ bayes
@dataclass
class Bayes:
    """Exact per-position risks at k = 2, alpha = cfg.alpha, T = cfg.dp_tokens, x_1 uniform."""

    bayes: np.ndarray
    laplace_1: np.ndarray
    opt_uni: np.ndarray
    opt_uni_cur: np.ndarray
    uniform: np.ndarray


def bayes(cfg: Config) -> Bayes:
    c = th.risk_curves_k2(cfg.alpha, cfg.dp_tokens)
    return Bayes(**{key: c[key] for key in ("bayes", "laplace_1", "opt_uni", "opt_uni_cur", "uniform")})


# ---------------------------------------------------------------------------------------- reduced
@dataclass
class Trajectory:
    """Exact population GD of RM members: per step (steps + 1, e)."""

    loss: np.ndarray
    theta: np.ndarray
    """(steps + 1, e, 3 + n) [p, gamma, b, factors]."""
    prev_score: np.ndarray
    """Layer-1 mass on the previous token, mean over positions t >= 2."""
    induction: np.ndarray
    """Layer-2 mass on keys whose previous token equals the query, population mean over t >= 2."""
    grad_max: np.ndarray
    """max |dL/dtheta| per step."""


@dataclass
class Reduced:
    """RM/MM on the exact population loss (k, T of cfg.reduced)."""

    plateau: np.ndarray
    """(len(alphas) + 1, 7): per alpha (and last: alpha = 1) [L_plat, gamma*, b*, g, d2L/dp2, d2L/dpdw, bayes]."""
    alphas: np.ndarray
    laplace_best: np.ndarray
    """[beta, risk] of the best Laplace(beta) at alpha = 1."""
    levels: np.ndarray
    """[bayes, laplace_1, opt_uni_cur, laplace(1/k)] population means at alpha = 1 (exact DP / enumeration)."""
    escape: Trajectory
    escape_sigma: np.ndarray
    escape_s0: np.ndarray
    """(e,) q_0 + kappa_0 of each escape member."""
    cold: Trajectory
    quartic: Trajectory
    quartic_sigma: np.ndarray
    sink: Trajectory
    sink_alpha: np.ndarray
    ideal_offset: np.ndarray
    """(len(alphas), 3): [best sink offset at beta = 8, ideal-head loss at ln(k alpha), loss at offset 0]."""
    identities: np.ndarray
    """[max |log q_uniform-attention - log Laplace(1/k)|, max |grad_v L| / max |grad_W L| at W_prev = 0,
    |fast RM loss - full MM loss| at random RM parameters]."""
    mm_loss: np.ndarray
    """(mm_steps + 1, seeds) the full MM's population loss."""


def _gd(theta0, ppop, eta: float, steps: int, desc: str, progress: bool) -> Trajectory:
    """GD on the exact population loss of the RM (`theory.rm_prefix_loss`), members on the ensemble
    axis (independent losses, so one backward of the sum gives every member's gradient).
    ``ppop`` = (features, weights (e|1, Nq), targets (e|1, Nq, k))."""
    f, W, Q = ppop
    T = f["M"].shape[1] - 1
    late = (f["t"] >= 2).to(W.dtype)
    theta = theta0.clone()
    hist = {n: [] for n in ("loss", "theta", "prev", "ind", "grad")}
    for step in progress_bar(range(steps + 1), desc=desc, disable=not progress):
        theta.requires_grad_(True)
        with torch.enable_grad():
            logq, A = md.rm_forward(theta, f)
            loss = (W * -(Q * logq).sum(-1)).sum(-1)                       # (e,)
            grad, = torch.autograd.grad(loss.sum(), theta)
        with torch.no_grad():
            ind = (W * late * (A * f["Pv"]).sum(-1)).sum(-1) / (W * late).sum(-1)
            for n, val in (("loss", loss), ("theta", theta), ("prev", md.rm_prev_score(theta, T)),
                           ("ind", ind), ("grad", grad.abs().amax(-1))):
                hist[n].append(val.detach().clone())
            theta = (theta - eta * grad).detach()
    st = lambda n: torch.stack(hist[n]).cpu().numpy()
    return Trajectory(st("loss"), st("theta"), st("prev"), st("ind"), st("grad"))


def reduced(cfg: Config, progress: bool = True) -> Reduced:
    r, dt, dev = cfg.reduced, cfg.torch_dtype, cfg.torch_device
    k, T = r.k, r.n_tokens
    alphas = sorted(set(r.alphas) | {1.0})
    pops = {a: th.population(k, T, a, device=dev) for a in alphas}         # all k^T sequences (full MM)
    ppops = {a: th.prefix_population(k, T, a, device=dev) for a in alphas}  # distinct prefixes (RM)
    plats = {}
    for a in alphas:
        pl = th.plateau(k, T, a, ppops[a])
        bay = float(th.population_risk(torch.log(pops[a][2]), pops[a][1], pops[a][2]).mean())
        plats[a] = [pl["L_plat"], pl["gamma"], pl["b"], pl["g"], pl["d2L_dp2"], pl["d2L_dpdw"], bay]
    x, w1, Q1 = pops[1.0]
    f1, W1, R1 = ppops[1.0]
    one = (f1, W1[None], R1[None])
    P1 = plats[1.0]

    def start(gamma_b, factors):                                          # (e, 3 + n)
        e = factors.shape[0]
        gb = torch.as_tensor(gamma_b, dtype=torch.float64).expand(e, 2)
        return torch.cat([torch.zeros(e, 1, dtype=torch.float64), gb, factors], -1).to(dev, dt)

    # escape sweep (T4, C6): the same seeds' directions at every sigma, warm (gamma*, b*)
    z = Stream(cfg.seed, "rm-escape").normal((2,), members=r.seeds, dtype=torch.float64)        # (seeds, 2)
    sig = torch.tensor(r.sigmas, dtype=torch.float64).repeat_interleave(r.seeds)
    fac = sig[:, None] * z.repeat(len(r.sigmas), 1)
    escape = _gd(start(P1[1:3], fac), one, r.eta, r.steps, "RM escape", progress)
    # cold start (T3, C3): gamma = b = 0
    zc = Stream(cfg.seed, "rm-cold").normal((2,), members=r.seeds, dtype=torch.float64)
    cold = _gd(start([0.0, 0.0], r.cold_sigma * zc), one, r.eta, r.steps, "RM cold", progress)
    # quartic saddle (T5, C7): w = q kappa mu nu, all at +sigma
    qs = torch.tensor(r.quartic_sigmas, dtype=torch.float64)[:, None].expand(-1, 4)
    quartic = _gd(start(P1[1:3], qs), one, r.eta, r.quartic_steps, "RM quartic", progress)
    # the sink across priors (C8): one member per alpha, warm at its own (gamma*, b*)
    za = Stream(cfg.seed, "rm-sink").normal((2,), members=1, dtype=torch.float64)
    th0 = torch.cat([start(plats[a][1:3], r.alpha_sigma * za) for a in r.alphas])
    sink = _gd(th0, (f1, torch.stack([ppops[a][1] for a in r.alphas]), torch.stack([ppops[a][2] for a in r.alphas])),
               r.eta, r.alpha_steps, "RM sink", progress)
    # T1: the best sink offset at beta = 8 (golden section), the loss at ln(k alpha) (full MM forward)
    # and at offset 0
    ideal = []
    for a in r.alphas:
        lo, hi = -2.0, 4.0
        fo = lambda o: float(th.rm_prefix_loss(th.ideal_theta(k, a, 8.0, o), (f1, ppops[a][1][None], ppops[a][2][None]))[0])
        for _ in range(60):
            m1, m2 = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
            lo, hi = (lo, m2) if fo(m1) < fo(m2) else (m1, hi)
        ideal.append([(lo + hi) / 2, th.ideal_head_loss(pops[a], k, a, 8.0), fo(0.0)])
    # identities: uniform layer-2 attention = Laplace(1/k); grad_v L = 0 at W_prev = 0 (random v, W_self);
    # the fast RM forward = the full MM forward at random RM parameters
    zi = Stream(cfg.seed, "mm-identity").normal((T + k * (k + 1) + 5,), members=1, dtype=torch.float64)[0]
    v = zi[:T][None].clone().requires_grad_(True)
    Ws = zi[T:T + k * (k + 1)].reshape(1, k, k + 1)
    lap = torch.log(th.laplace_predictive(x, k, 1.0 / k))
    with torch.enable_grad():
        logq_u, _, _ = md.mm_forward(v, torch.zeros_like(Ws), Ws, x, k, layer2_uniform=True)
        logq, _, _ = md.mm_forward(v, torch.zeros_like(Ws), Ws, x, k)
        gv, = torch.autograd.grad(md.population_loss(logq, w1, Q1).sum(), v)
        Wz = torch.zeros_like(Ws).requires_grad_(True)
        logq, _, _ = md.mm_forward(v.detach(), Wz, Ws, x, k)
        gW, = torch.autograd.grad(md.population_loss(logq, w1, Q1).sum(), Wz)
    theta_r = zi[-5:][None]
    fast_vs_full = abs(float(th.rm_prefix_loss(theta_r, one)[0]) - float(th.rm_loss(theta_r, pops[1.0], k)[0]))
    identities = [float((logq_u[0] - lap).abs().max()), float(gv.abs().max() / gW.abs().max()), fast_vs_full]
    mm_loss = _full_mm(cfg, (x, w1, Q1), progress)
    lap_k = float(th.population_risk(lap, w1, Q1).mean())
    lap_1 = float(th.population_risk(torch.log(th.laplace_predictive(x, k, 1.0)), w1, Q1).mean())
    ouc = float(th.risk_curves_k2(1.0, T)["opt_uni_cur"].mean()) if k == 2 else float("nan")
    beta, risk = th.best_laplace(pops[1.0], k)
    return Reduced(plateau=np.array([plats[a] for a in r.alphas] + [P1]), alphas=np.array(r.alphas),
                   laplace_best=np.array([beta, risk]), levels=np.array([P1[6], lap_1, ouc, lap_k]), escape=escape,
                   escape_sigma=sig.numpy(), escape_s0=fac.sum(-1).numpy(), cold=cold, quartic=quartic,
                   quartic_sigma=np.array(r.quartic_sigmas), sink=sink, sink_alpha=np.array(r.alphas),
                   ideal_offset=np.array(ideal), identities=np.array(identities), mm_loss=mm_loss)


def _full_mm(cfg: Config, pop, progress: bool) -> np.ndarray:
    r, dev, dt = cfg.reduced, cfg.torch_device, cfg.torch_dtype
    k, T = r.k, r.n_tokens
    x, w, Q = pop
    s = Stream(cfg.seed, "mm-full")
    e, rank = min(r.seeds, 2), 2
    params = {"v": torch.zeros(e, T, dtype=dt, device=dev),
              "Q": r.mm_sigma * s.child("Q").normal((k, rank), members=e, device=dev, dtype=dt),
              "K": r.mm_sigma * s.child("K").normal((k + 1, rank), members=e, device=dev, dtype=dt),
              "Ws": torch.zeros(e, k, k + 1, dtype=dt, device=dev)}
    out = []
    for step in progress_bar(range(r.mm_steps + 1), desc="MM full", disable=not progress):
        for p in params.values():
            p.requires_grad_(True)
        with torch.enable_grad():
            logq, _, _ = md.mm_forward(params["v"], params["Q"] @ params["K"].transpose(-1, -2), params["Ws"], x, k)
            loss = md.population_loss(logq, w[None], Q[None])
            grads = torch.autograd.grad(loss.sum(), list(params.values()))
        out.append(loss.detach())
        params = {n: (p - r.eta * g).detach() for (n, p), g in zip(params.items(), grads)}
    return torch.stack(out).cpu().numpy()


# ------------------------------------------------------------------------------------ transformer
@dataclass
class TFRun:
    """One depth's ensemble on the fixed test set, at the eval steps."""

    steps: np.ndarray
    loss: np.ndarray
    """(e, n_eval) test loss (cross-entropy against the true row P[x_t], mean over positions)."""
    loss_t: np.ndarray
    """(e, n_eval, T) per-position test loss."""
    prev_score: np.ndarray
    """(e, n_eval) layer-1 mass on the previous token, mean over positions t >= 2."""
    induction: np.ndarray
    """(e, n_eval) last layer's mass on keys s >= 2 with x_{s-1} = x_t, mean over t >= 2."""
    attn: np.ndarray
    """(e, n_eval, depth, T+1, T+1) attention of every layer on test sequence 0."""
    ablate1: np.ndarray
    """(e,) final test loss with layer 1's head output mean-ablated (per-position test mean)."""
    ablate2: np.ndarray
    """(e,) final test loss with the last layer's head output mean-ablated (nan for depth 1)."""


@dataclass
class Transformer:
    """The 2-layer TF and its 1-layer control, with the test set's reference levels."""

    two: TFRun
    one: TFRun
    bayes_t: np.ndarray
    """(T,) per-position Bayes loss on the test set (cross-entropy against P[x_t])."""
    laplace_t: np.ndarray
    """(T,) per-position Laplace(1) loss on the test set."""
    bayes_se: float
    """Standard error of the mean Laplace - Bayes difference on the test set."""
    chance: np.ndarray
    """(T,) fraction of keys that match the query's previous-token rule (induction chance)."""
    test_x: np.ndarray
    """(2, T+1) tokens of the first two test sequences."""


def _ce(P_row, logp):
    return -(P_row * logp).sum(-1)                                         # (..., T)


def _true_rows(P, x):
    """(..., T, k) P[x_t] for t = 1..T; P (..., n, k, k), x (..., n, T+1)."""
    k = P.shape[-1]
    idx = x[..., :-1, None].expand(*x[..., :-1].shape, k)                  # (..., n, T, k)
    return torch.gather(P, -2, idx)


CHUNK = 50
"""Training batches drawn per stream call (a block of steps; each step's batch is the same alone)."""


def train_tf(cfg: Config, depth: int, members, test, progress: bool, desc: str) -> TFRun:
    """Online Adam (betas 0.9, 0.999) on the TF of ``depth`` layers; ``members`` an int or a list of
    member indices (member i's init and batches come from streams keyed by i)."""
    dev, dt, k, T = cfg.torch_device, cfg.torch_dtype, cfg.k, cfg.n_tokens
    Pt, xt, rows_t = test
    idx = list(range(members)) if isinstance(members, int) else list(members)
    e = len(idx)
    params = md.tf_init(Stream(cfg.seed, f"tf-init-{depth}"), idx, k, T, cfg.d_model, depth, cfg.init_scale, dev, dt)
    m = {n: torch.zeros_like(p) for n, p in params.items()}
    s2 = {n: torch.zeros_like(p) for n, p in params.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    evals = cfg.eval_steps
    rec = {n: [] for n in ("loss", "loss_t", "prev", "ind", "attn")}
    xs_t = xt[None].expand(e, *xt.shape)                                   # (e, n, T+1)
    rows = rows_t[None].expand(e, *rows_t.shape)

    def evaluate(ablate=None):
        logits, attns, outs = md.tf_forward(params, xs_t[..., :-1], k, ablate=ablate)
        lt = _ce(rows, torch.log_softmax(logits, -1)).mean(1)              # (e, T)
        return lt, attns, outs

    for step in progress_bar(range(cfg.steps + 1), desc=desc, disable=not progress):
        if step in evals:
            with torch.no_grad():
                lt, attns, _ = evaluate()
                a1 = attns[0]
                prev = torch.diagonal(a1, -1, -2, -1)[..., 1:].mean((-1, -2))      # positions 2..T attend t-1
                mass, _ = md.induction_mass(attns[-1][:, :, 1:, :].reshape(e, -1, T, T + 1), xt[:, :-1])
                rec["loss"].append(lt.mean(-1)); rec["loss_t"].append(lt); rec["prev"].append(prev)
                rec["ind"].append(mass[..., 1:].mean((-1, -2))); rec["attn"].append(torch.stack([a[:, 0] for a in attns], 1))
        if step == cfg.steps:
            break
        if step % CHUNK == 0:
            block = list(range(step, min(step + CHUNK, cfg.steps)))
            Pb, xb = data.sample(cfg.seed, "tf-train", k, cfg.alpha, cfg.batch_size, T + 1, members=idx, step=block,
                                 device=dev, dtype=dt)                     # (e, S, B, k, k), (e, S, B, T+1)
        P, x = Pb[:, step % CHUNK], xb[:, step % CHUNK]                    # (e, B, k, k), (e, B, T+1)
        for p in params.values():
            p.requires_grad_(True)
        with torch.enable_grad():
            logits, _, _ = md.tf_forward(params, x[..., :-1], k)
            loss = _ce(_true_rows(P, x), torch.log_softmax(logits, -1)).mean((-1, -2))   # (e,)
            grads = torch.autograd.grad(loss.sum(), list(params.values()))
        with torch.no_grad():
            t = step + 1
            for (n, p), g in zip(list(params.items()), grads):
                m[n] = b1 * m[n] + (1 - b1) * g
                s2[n] = b2 * s2[n] + (1 - b2) * g * g
                params[n] = (p - cfg.lr * (m[n] / (1 - b1 ** t)) / (torch.sqrt(s2[n] / (1 - b2 ** t)) + eps)).detach()
    with torch.no_grad():
        _, _, outs = evaluate()
        ab1 = evaluate({0: outs[0].mean(1)})[0].mean(-1)
        ab2 = evaluate({depth - 1: outs[-1].mean(1)})[0].mean(-1) if depth > 1 else torch.full((e,), float("nan"))
    st = lambda a: torch.stack(a, 1).cpu().numpy()
    return TFRun(steps=np.array(evals), loss=st(rec["loss"]), loss_t=st(rec["loss_t"]), prev_score=st(rec["prev"]),
                 induction=st(rec["ind"]), attn=st(rec["attn"]), ablate1=ab1.cpu().numpy(), ablate2=ab2.cpu().numpy())


def transformer(cfg: Config, progress: bool = True) -> Transformer:
    dev, dt, k, T = cfg.torch_device, cfg.torch_dtype, cfg.k, cfg.n_tokens
    Pt, xt = data.sample(cfg.seed, "tf-test", k, cfg.alpha, cfg.test_size, T + 1, members=None, device=dev, dtype=dt)
    rows = _true_rows(Pt, xt)                                              # (n, T, k)
    bay = _ce(rows, torch.log(th.bayes_predictive(xt[:, :-1], k, cfg.alpha)))    # (n, T)
    lap = _ce(rows, torch.log(th.laplace_predictive(xt[:, :-1], k, 1.0)))
    _, chance = md.induction_mass(torch.zeros(1, cfg.test_size, T, T + 1, dtype=dt), xt[:, :-1].cpu())
    test = (Pt, xt, rows)
    two = train_tf(cfg, 2, cfg.n_seeds, test, progress, "TF 2 layers")
    one = train_tf(cfg, 1, cfg.one_layer_seeds, test, progress, "TF 1 layer")
    diff = (lap - bay).mean(-1)
    return Transformer(two=two, one=one, bayes_t=bay.mean(0).cpu().numpy(), laplace_t=lap.mean(0).cpu().numpy(),
                       bayes_se=float(diff.std() / math.sqrt(diff.numel())), chance=chance.mean(0).numpy(),
                       test_x=xt[:2].cpu().numpy())


PHASES = (Phase("bayes", bayes, inputs=lambda c: (c.alpha, c.dp_tokens)),
          Phase("reduced", reduced, grad=False, inputs=lambda c: c.reduced),
          Phase("transformer", transformer))


def run(config: Config, *, progress: bool = True) -> Record:
    """Every phase at ``config``; deterministic given the config."""
    from studies.induction_heads import NAME

    return run_phases(NAME, config, PHASES, progress=progress)
