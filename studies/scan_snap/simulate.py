"""The sub-experiments of Scan and Snap: one function per phase, each returning a typed result.

`run` is the list of phases; `workbench.phases.run_phases` owns device, threads, autograd, progress
and timing, and stores each result as ``<phase>.<field>`` in the record (``sgd.z``, ``r1.z``,
``sweep.1.entropy``, ``sweep.1.r2.entropy``, ``bn.exact.0``, ...).  Arrays are numpy on the CPU.

Shapes: e ensemble members (learning-rate pair-major, seed-minor: member g * n_seeds + s), n_t
output times (``steps + 1`` SGD steps, or the ODE's times ``config.ode_times``), K classes, Q query
tokens, M_c contextual tokens and M tokens of the phase's layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from workbench.errors import TrainingError
from workbench.phases import Phase, run_phases
from workbench.record import Record, to_numpy
from workbench.streams import Stream

from studies.scan_snap import joma, theory
from studies.scan_snap.config import Config
from studies.scan_snap.data import CountSampler
from studies.scan_snap.model import forward, init_params, lemma1_gradients
from studies.scan_snap.sgd import train_sgd

EXPERIMENT = "scan-snap"
"""Root name of the study's random streams: ``Stream(cfg.seed, EXPERIMENT, <phase>)``, one child
per sub-experiment (``sweep`` panels: ``.child(num_last)``), seed index s as the member key."""


def _stream(cfg: Config, phase: str, *keys) -> Stream:
    return Stream(cfg.seed, EXPERIMENT, phase, *keys)


def _members(eta_y: np.ndarray, eta_z: np.ndarray, n_seeds: int) -> tuple[torch.Tensor, ...]:
    """Members (pair g, seed s) flattened pair-major: member g * n_seeds + s."""
    ey = torch.as_tensor(np.repeat(eta_y, n_seeds), dtype=torch.float64)
    ez = torch.as_tensor(np.repeat(eta_z, n_seeds), dtype=torch.float64)
    seed = torch.arange(n_seeds).repeat(len(eta_y))
    return ey, ez, seed


# ------------------------------------------------------------------------------- layout
@dataclass
class Layout:
    """The main layout's class-conditional distributions and token sets."""

    P: np.ndarray
    """(K, M_c) P(l|n)."""
    common_mask: np.ndarray
    """(M_c,) bool: the common tokens."""
    distinct_mask: np.ndarray
    """(K, M_c) bool: the distinct tokens of each class."""
    query_of_class: np.ndarray
    """(K,) int: psi(n), the query index of class n."""


def layout(cfg: Config) -> Layout:
    lay = cfg.layout
    return Layout(P=to_numpy(lay.probabilities()), common_mask=to_numpy(lay.common_mask()),
                  distinct_mask=to_numpy(lay.distinct_mask()), query_of_class=to_numpy(lay.query_of_class))


# --------------------------------------------------------------------------------- grad
@dataclass
class GradientCheck:
    """Lemma 1's closed-form gradients against autograd on one batch (2 members, batch 16, T = seq_len)
    with random Y, Z at 3x Model2's init scale."""

    Y: np.ndarray
    """(2, M, M) decoder."""
    Z: np.ndarray
    """(2, M, M) attention logits."""
    counts: np.ndarray
    """(2, 16, M_c) token counts of the batch."""
    classes: np.ndarray
    """(2, 16) int class of each sequence."""
    autograd_Y: np.ndarray
    """(2, M, M) d loss / d Y by autograd."""
    autograd_Z: np.ndarray
    """(2, M, M) d loss / d Z by autograd."""
    lemma1_Y: np.ndarray
    """(2, M, M) Lemma 1's gradient of Y."""
    lemma1_Z: np.ndarray
    """(2, M, M) Lemma 1's gradient of Z."""


def grad(cfg: Config) -> GradientCheck:
    dev, dtype, lay = cfg.torch_device, cfg.torch_dtype, cfg.layout
    stream = _stream(cfg, "grad")
    p0 = init_params(lay, "random", stream, 2, dtype=dtype, device=dev)
    Y, Z = 3 * p0["Y"], 3 * p0["Z"]
    counts, classes = CountSampler(lay, cfg.seq_len, dev).draw(stream.child("batch"), 16, 2, 0)  # (2, 16, M_c)
    counts = counts.to(dtype)
    Yg, Zg = Y.clone().requires_grad_(True), Z.clone().requires_grad_(True)
    loss = forward(Yg, Zg, counts, classes, lay).loss
    auto_Y, auto_Z = torch.autograd.grad(loss.sum(), [Yg, Zg])
    _, closed = lemma1_gradients(Y, Z, counts, classes, lay)
    return GradientCheck(Y=to_numpy(Y), Z=to_numpy(Z), counts=to_numpy(counts), classes=to_numpy(classes),
                         autograd_Y=to_numpy(auto_Y), autograd_Z=to_numpy(auto_Z),
                         lemma1_Y=to_numpy(closed["Y"]), lemma1_Z=to_numpy(closed["Z"]))


# ---------------------------------------------------------------------------------- SGD
@dataclass
class SgdRun:
    """SGD on the main layout: every (eta_Y = eta_y * factor, eta_Z = eta_z) pair x n_seeds seeds,
    observed after every step (n_t = steps + 1)."""

    eta_y: np.ndarray
    """(e,) eta_Y of each member."""
    eta_z: np.ndarray
    """(e,) eta_Z of each member."""
    seed_index: np.ndarray
    """(e,) int seed index s of each member."""
    seq_len: int
    """T of the run's sequences."""
    steps: np.ndarray
    """(n_t,) int the observed steps 0..steps."""
    loss: np.ndarray
    """(n_t, e) batch loss at each step, before its update."""
    p_correct: np.ndarray
    """(n_t, e) batch mean of alpha at the true next token."""
    entropy: np.ndarray
    """(n_t, e) distinct-token entropy of c_n."""
    z: np.ndarray
    """(n_t, e, Q, M_c) the query rows of Z."""
    Y_rowsum_drift: np.ndarray
    """(n_t, e) largest change of a row sum of Y since initialisation."""
    Z_rowsum_drift: np.ndarray
    """(n_t, e) the same for Z."""
    Y_norm: np.ndarray
    """(n_t, e) ||Y||_F."""
    Y: np.ndarray
    """(e, M, M) the trained decoder."""
    Z: np.ndarray
    """(e, M, M) the trained attention logits."""


def _main_sgd(cfg: Config, stream: str, seq_len: int, progress: bool) -> SgdRun:
    ey, ez, seed_idx = _members(*cfg.main_eta, cfg.n_seeds)
    out = train_sgd(cfg.layout, eta_y=ey, eta_z=ez, seed_of_member=seed_idx,
                    stream=_stream(cfg, stream), seq_len=seq_len, batch_size=cfg.batch_size,
                    steps=cfg.steps, momentum=cfg.momentum, init=cfg.init, dtype=cfg.torch_dtype,
                    device=cfg.torch_device, progress=progress, desc=stream)
    return SgdRun(eta_y=to_numpy(ey), eta_z=to_numpy(ez), seed_index=to_numpy(seed_idx), seq_len=seq_len, **out)


def sgd(cfg: Config, *, progress: bool = False) -> SgdRun:
    """The main SGD run at T = seq_len."""
    return _main_sgd(cfg, "sgd", cfg.seq_len, progress)


def fig4(cfg: Config, *, progress: bool = False) -> SgdRun:
    """Fig. 4 under the paper's protocol: momentum ``heatmap.momentum``, ``heatmap.init`` init, the
    smallest and largest main eta_Y, seed 0, T = seq_len."""
    ey_all, ez_all = cfg.main_eta
    ey, ez, seed_idx = _members(ey_all[[0, -1]], ez_all[[0, -1]], 1)
    hm = cfg.heatmap
    out = train_sgd(cfg.layout, eta_y=ey, eta_z=ez, seed_of_member=seed_idx, stream=_stream(cfg, "fig4"),
                    seq_len=cfg.seq_len, batch_size=cfg.batch_size, steps=cfg.steps, momentum=hm.momentum,
                    init=hm.init, dtype=cfg.torch_dtype, device=cfg.torch_device, progress=progress, desc="fig4")
    return SgdRun(eta_y=to_numpy(ey), eta_z=to_numpy(ez), seed_index=to_numpy(seed_idx), seq_len=cfg.seq_len, **out)


def sgd_long(cfg: Config, *, progress: bool = False) -> SgdRun:
    """The main SGD run at T = seq_len_long (closer to the T -> infinity mean field R1)."""
    return _main_sgd(cfg, "sgd_long", cfg.seq_len_long, progress)


# --------------------------------------------------------------------------------- ODEs
@dataclass
class R1Run:
    """R1 (or R1m) on the main layout from Y = Z = 0, for the pairs of groups 0-2 of `Config.ode_members`."""

    t: np.ndarray
    """(n_t,) output times."""
    eta_y: np.ndarray
    """(e,) eta_Y of each pair."""
    eta_z: np.ndarray
    """(e,) eta_Z of each pair."""
    group: np.ndarray
    """(e,) int 0: main SGD pairs, 1: snap grid, 2: ratio grid."""
    z: np.ndarray
    """(n_t, e, Q, M_c) query rows of Z."""
    Y_final: np.ndarray
    """(e, M_c, M) the decoder at t_max on the contextual rows."""
    p_correct: np.ndarray
    """(n_t, e) class-mean alpha at the true next token."""
    zdot_norm: np.ndarray
    """(n_t, e, Q) ||dz_m/dt||."""
    n_evaluations: int
    """Right-hand-side evaluations of the integration."""


@dataclass
class R2Run:
    """R2, the paper's reduced dynamics, for every pair of `Config.ode_members` (groups 0-3)."""

    t: np.ndarray
    """(n_t,) output times."""
    eta_y: np.ndarray
    """(e,) eta_Y of each pair."""
    eta_z: np.ndarray
    """(e,) eta_Z of each pair."""
    group: np.ndarray
    """(e,) int 0-2 as R1 (same pairs, same order), 3: the sweep's grid (eta_Z slow, ratio fast)."""
    z: np.ndarray
    """(n_t, e, Q, M_c) query rows of Z."""
    gamma: np.ndarray
    """(n_t, e) Theorem 1's gamma(t)."""
    entropy: np.ndarray
    """(n_t, e) distinct-token entropy of c_n."""
    n_evaluations: int
    """Right-hand-side evaluations of the integration."""


def _r1(cfg: Config, modified: bool) -> R1Run:
    members = cfg.ode_members
    mean_field = members["group"] <= 2
    ey, ez = members["eta_y"][mean_field], members["eta_z"][mean_field]
    sol = theory.MeanField.of(cfg.layout).solve_r1(ey, ez, cfg.ode_times, modified=modified)
    return R1Run(eta_y=ey, eta_z=ez, group=members["group"][mean_field], **sol)


def r1(cfg: Config) -> R1Run:
    """R1, the exact long-sequence mean field."""
    return _r1(cfg, modified=False)


def r1m(cfg: Config) -> R1Run:
    """R1m, R1 with Lemma 3's modified decoder gradient."""
    return _r1(cfg, modified=True)


def r2(cfg: Config) -> R2Run:
    """R2, the reduced logit dynamics (Lemma 4, Eq. 10)."""
    members, lay = cfg.ode_members, cfg.layout
    sol = theory.MeanField.of(lay).solve_r2(members["eta_y"], members["eta_z"], cfg.ode_times)
    c = theory.class_attention(sol["z"], lay)
    return R2Run(**sol, **members, entropy=theory.distinct_entropy(c, lay))


@dataclass
class Assumption2Run:
    """R1 and R2 at the main runs' first (eta_Y, eta_Z) on a Syn-Small-like layout with
    ``ode.assumption2_common`` common tokens (the rest as the main layout), beside the main one."""

    n_common: int
    """C of this layout."""
    overlap: float
    """f_1.f_2 of classes 0 and 1 at t = 0 (Assumption 2 asks <= 1/K)."""
    t: np.ndarray
    """(n_t,) output times (`Config.ode_times`)."""
    P: np.ndarray
    """(K, M_c) P(l|n) of this layout."""
    r1_z: np.ndarray
    """(n_t, 1, Q, M_c) R1's query rows of Z."""
    r2_z: np.ndarray
    """(n_t, 1, Q, M_c) R2's query rows of Z."""


def assumption2(cfg: Config) -> Assumption2Run:
    """R1 and R2 on the layout that satisfies Assumption 2."""
    from studies.scan_snap.data import SequenceClasses

    lay = SequenceClasses(cfg.ode.assumption2_common, cfg.n_queries, cfg.next_per_query, cfg.n_distinct)
    ey, ez = (x[:1] for x in cfg.main_eta)
    mf = theory.MeanField.of(lay)
    P = to_numpy(lay.probabilities())
    f = P / np.linalg.norm(P, axis=1, keepdims=True)
    r1 = mf.solve_r1(ey, ez, cfg.ode_times)
    r2 = mf.solve_r2(ey, ez, cfg.ode_times)
    return Assumption2Run(n_common=lay.n_common, overlap=float(f[0] @ f[1]), t=r1["t"], P=P, r1_z=r1["z"], r2_z=r2["z"])


# -------------------------------------------------------------------------------- sweep
@dataclass
class R2Sweep:
    """R2 on one sweep layout over the sweep's (eta_Z, ratio) grid (one pair per grid cell)."""

    t: np.ndarray
    """(n_t,) output times."""
    eta_y: np.ndarray
    """(pairs,) eta_Y of each cell."""
    eta_z: np.ndarray
    """(pairs,) eta_Z of each cell (slow axis)."""
    ratio: np.ndarray
    """(pairs,) eta_Y / eta_Z of each cell (fast axis)."""
    entropy: np.ndarray
    """(n_t, pairs) distinct-token entropy of c_n."""
    common_mass: np.ndarray
    """(n_t, pairs) attention mass on common tokens."""


@dataclass
class SweepPanel:
    """Fig. 6 on one Syn-Medium layout: SGD under the paper's protocol over the grid x n_seeds seeds,
    and R2 on the same grid (n_t = sweep.steps + 1 for SGD)."""

    eta_y: np.ndarray
    """(e,) eta_Y of each member."""
    eta_z: np.ndarray
    """(e,) eta_Z of each member."""
    ratio: np.ndarray
    """(e,) eta_Y / eta_Z of each member."""
    seed_index: np.ndarray
    """(e,) int seed index of each member."""
    steps: np.ndarray
    """(n_t,) int the observed steps."""
    loss: np.ndarray
    """(n_t, e) batch loss."""
    p_correct: np.ndarray
    """(n_t, e) batch mean of alpha at the true next token."""
    entropy: np.ndarray
    """(n_t, e) distinct-token entropy of c_n."""
    Y_rowsum_drift: np.ndarray
    """(n_t, e) largest change of a row sum of Y since initialisation."""
    Z_rowsum_drift: np.ndarray
    """(n_t, e) the same for Z."""
    z_final: np.ndarray
    """(e, Q, M_c) the trained query rows of Z."""
    P: np.ndarray
    """(K, M_c) P(l|n) of the layout."""
    r2: R2Sweep
    """R2 on the same layout and grid."""


Sweep = dict[str, SweepPanel]
"""The ``sweep`` phase's result: one panel per entry of ``sweep.queries``, keyed ``str(Q)``."""


def sweep_panel(cfg: Config, n_queries: int, *, progress: bool = False) -> SweepPanel:
    """The Fig. 6 panel with ``n_queries`` query tokens (one of ``cfg.sweep.queries``)."""
    sw = cfg.sweep
    lay, grid = sw.layout(n_queries), sw.grid
    ey, ez, seed_idx = _members(grid["eta_y"], grid["eta_z"], cfg.sweep_seeds)
    out = train_sgd(lay, eta_y=ey, eta_z=ez, seed_of_member=seed_idx,
                    stream=_stream(cfg, "sweep", n_queries),
                    seq_len=sw.seq_len, batch_size=sw.batch_size, steps=sw.steps, momentum=sw.momentum,
                    init=sw.init, dtype=cfg.torch_dtype, device=cfg.torch_device, progress=progress,
                    desc=f"sweep{n_queries}", z_trajectory=False)
    sol = theory.MeanField.of(lay).solve_r2(grid["eta_y"], grid["eta_z"], cfg.ode_times)
    c = theory.class_attention(sol["z"], lay)
    r2_sweep = R2Sweep(t=sol["t"], eta_y=grid["eta_y"], eta_z=grid["eta_z"], ratio=grid["ratio"],
                       entropy=theory.distinct_entropy(c, lay), common_mass=theory.common_mass(c, lay))
    return SweepPanel(eta_y=to_numpy(ey), eta_z=to_numpy(ez), ratio=np.repeat(grid["ratio"], cfg.sweep_seeds),
                      seed_index=to_numpy(seed_idx), steps=out["steps"], loss=out["loss"], p_correct=out["p_correct"],
                      entropy=out["entropy"], Y_rowsum_drift=out["Y_rowsum_drift"],
                      Z_rowsum_drift=out["Z_rowsum_drift"], z_final=out["z"], P=to_numpy(lay.probabilities()),
                      r2=r2_sweep)


def sweep(cfg: Config, *, progress: bool = False) -> Sweep:
    """Every panel of ``cfg.sweep.queries``; a failing panel keeps the finished ones."""
    panels: Sweep = {}
    for q in cfg.sweep.queries:
        try:
            panels[str(q)] = sweep_panel(cfg, q, progress=progress)
        except TrainingError as err:
            err.partial = {**panels, str(q): err.partial}
            raise
    return panels


# --------------------------------------------------------------- population GD and the scan search
@dataclass
class PopulationRun:
    """Exact population GD at T = population.seq_len on the small layout, with SGD (same T), R1
    (T -> infinity) and R2 beside it, for eta_Y = r population.eta_z, r in population.lr_ratios."""

    n_common: int
    """C of the small layout."""
    n_distinct: int
    """D of the small layout."""
    seq_len: int
    """T of population GD and SGD."""
    n_states: int
    """Lumped count states summed over per gradient (all classes)."""
    eta_y: np.ndarray
    """(e,) eta_Y of each member (pair)."""
    eta_z: np.ndarray
    """(e,) eta_Z of each member."""
    steps: np.ndarray
    """(n_t,) int observed steps, every step 0..population.steps."""
    gd_z: np.ndarray
    """(n_t, e, Q, M_c) population GD's query rows of Z."""
    gd_loss: np.ndarray
    """(n_t, e) population loss."""
    gd_p_correct: np.ndarray
    """(n_t, e) population mean of alpha at the true next token."""
    sgd_z: np.ndarray
    """(n_t, e * n_seeds, Q, M_c) SGD's query rows of Z (member pair-major, seed-minor)."""
    r1_z: np.ndarray
    """(n_t, e, Q, M_c) R1 at t = steps."""
    r2_z: np.ndarray
    """(n_t, e, Q, M_c) R2 at t = steps."""
    long_steps: np.ndarray
    """(n_long,) int the steps observed in the long population-GD run (every step to ``steps``, then log-spaced)."""
    long_z: np.ndarray
    """(n_long, e, Q, M_c) population GD's query rows of Z to population.long_steps."""


def population(cfg: Config, *, progress: bool = False) -> PopulationRun:
    from studies.scan_snap.population import train_population_gd

    pc = cfg.population
    lay, dev, dtype = pc.layout, cfg.torch_device, cfg.torch_dtype
    ratios = np.asarray(pc.lr_ratios, dtype=np.float64)
    ey, ez = ratios * pc.eta_z, np.full(len(ratios), pc.eta_z)
    obs = np.arange(pc.steps + 1)
    late = np.unique(np.round(np.logspace(np.log10(max(pc.steps, 1)), np.log10(pc.long_steps), 120)).astype(np.int64))
    gd = train_population_gd(lay, pc.seq_len, eta_y=torch.as_tensor(ey), eta_z=torch.as_tensor(ez), steps=pc.long_steps,
                             observe_at=np.union1d(obs, late), dtype=dtype, device=dev, progress=progress, desc="population")
    first = gd["steps"] <= pc.steps
    sey, sez, seed_idx = _members(ey, ez, cfg.n_seeds)
    sgd_out = train_sgd(lay, eta_y=sey, eta_z=sez, seed_of_member=seed_idx, stream=_stream(cfg, "population"),
                        seq_len=pc.seq_len, batch_size=pc.batch_size, steps=pc.steps, momentum=0.0, init="zero",
                        dtype=dtype, device=dev, progress=progress, desc="population-sgd")
    mf, t = theory.MeanField.of(lay), obs.astype(np.float64)
    return PopulationRun(n_common=pc.n_common, n_distinct=pc.n_distinct, seq_len=pc.seq_len,
                         n_states=int(gd["n_states"]), eta_y=ey, eta_z=ez, steps=gd["steps"][first], gd_z=gd["z"][first],
                         gd_loss=gd["loss"][first], gd_p_correct=gd["p_correct"][first], sgd_z=sgd_out["z"],
                         long_steps=gd["steps"], long_z=gd["z"],
                         r1_z=mf.solve_r1(ey, ez, t)["z"], r2_z=mf.solve_r2(ey, ez, t)["z"])


@dataclass
class ScanGrid:
    """The scan search: R1 (the model at T -> infinity) and R2 on each layout of
    population.grid_common x grid_distinct (paired) over population.grid_ratios, eta_Z = 1,
    log-spaced t to population.grid_t_max; and the scan readout (`theory.model_scan`) of each cell."""

    n_common: np.ndarray
    """(layouts,) int C."""
    n_distinct: np.ndarray
    """(layouts,) int D."""
    ratio: np.ndarray
    """(ratios,) eta_Y / eta_Z."""
    t: np.ndarray
    """(n_t,) output times."""
    r1_peaks: np.ndarray
    """(layouts, ratios, K) distinct tokens that peaked and fell (R1)."""
    r2_peaks: np.ndarray
    """(layouts, ratios, K) the same in R2."""
    r1_scans: np.ndarray
    """(layouts, ratios, K) bool: the scan condition holds (R1)."""
    r2_scans: np.ndarray
    """(layouts, ratios, K) bool: the same in R2."""
    r1_tau: np.ndarray
    """(layouts, ratios, K) Kendall tau of the peaked tokens' peak times against P (R1; nan if < 2)."""
    r2_tau: np.ndarray
    """(layouts, ratios, K) the same in R2."""


def scan_grid(cfg: Config) -> ScanGrid:
    pc = cfg.population
    ratios = np.asarray(pc.grid_ratios, dtype=np.float64)
    t = np.concatenate([[0.0], np.logspace(-2, np.log10(pc.grid_t_max), int(round(30 * (np.log10(pc.grid_t_max) + 2))) + 1)])
    res = {k: [] for k in ("r1_peaks", "r2_peaks", "r1_scans", "r2_scans", "r1_tau", "r2_tau")}
    for lay in pc.grid_layouts:
        mf = theory.MeanField.of(lay)
        d_idx = [lay.distinct_tokens(n).numpy() for n in range(lay.n_classes)]
        for name, sol in (("r1", mf.solve_r1(ratios, np.ones_like(ratios), t)),
                          ("r2", mf.solve_r2(ratios, np.ones_like(ratios), t))):
            s = theory.model_scan(theory.class_attention(sol["z"], lay), t, d_idx)
            res[f"{name}_peaks"].append(s["peaks"]); res[f"{name}_scans"].append(s["scans"])
            res[f"{name}_tau"].append(s["tau"])
    return ScanGrid(n_common=np.asarray(pc.grid_common), n_distinct=np.asarray(pc.grid_distinct), ratio=ratios, t=t,
                    **{k: np.stack(v) for k, v in res.items()})


# --------------------------------------------------------------------------------- JoMA
@dataclass
class JomaToy:
    """JoMA's sparse-then-dense toy, one draw of targets mu per seed (e = n_seeds)."""

    mu: np.ndarray
    """(e, d) sorted targets."""
    entropy: np.ndarray
    """(toy_steps + 1, e) entropy of b = softmax(v^2 / tau) with self-gated components."""
    v: np.ndarray
    """(e, d) final v with self-gated components."""
    uniform_entropy: np.ndarray
    """(toy_steps + 1, e) the same with uniform gating b_j = 1/d."""
    uniform_v: np.ndarray
    """(e, d) final v with uniform gating."""
    uniform_v_closed_form: np.ndarray
    """(e, d) its closed form mu + (v0 - mu)(1 - eta/d)^steps."""


def joma_toy(cfg: Config) -> JomaToy:
    steps = cfg.joma.toy_steps
    mu = joma.toy_targets(_stream(cfg, "joma_toy"), cfg.n_seeds)
    gated = joma.run_toy(mu, steps, gating="softmax")
    uniform = joma.run_toy(mu, steps, gating="uniform")
    return JomaToy(mu=to_numpy(mu), entropy=to_numpy(gated["entropy"]), v=to_numpy(gated["v"]),
                   uniform_entropy=to_numpy(uniform["entropy"]), uniform_v=to_numpy(uniform["v"]),
                   uniform_v_closed_form=to_numpy(joma.toy_uniform_closed_form(mu, steps)))


@dataclass
class MlpRun:
    """Exp attention -> MLP -> decoder by GD on the main layout (T -> infinity), n_seeds seeds per
    activation (e = 3 n_seeds, activation-major); n_t = mlp_steps + 1."""

    activation: np.ndarray
    """(e,) int index into `joma.ACTIVATIONS` (linear, relu, silu)."""
    loss: np.ndarray
    """(n_t, e) class-mean loss."""
    entropy: np.ndarray
    """(n_t, e) distinct-token entropy of c_n."""
    invariant: np.ndarray
    """(n_t, e) largest |residual| of JoMA's invariant with the discretisation term."""
    invariant_continuous: np.ndarray
    """(n_t, e) the same without the discretisation term."""
    z: np.ndarray
    """(e, Q, M_c) trained query rows of Z."""
    W1: np.ndarray
    """(e, H, M_c) trained first MLP layer (H = 4 M)."""
    W1_init: np.ndarray
    """(e, H, M_c) its initialisation."""
    V: np.ndarray
    """(e, M, H) trained decoder."""


def mlp(cfg: Config) -> MlpRun:
    acts = torch.arange(len(joma.ACTIVATIONS)).repeat_interleave(cfg.n_seeds)
    seeds = torch.arange(cfg.n_seeds).repeat(len(joma.ACTIVATIONS))  # W1(0) shared by the activations of a seed
    out = joma.run_mlp(cfg.layout, acts, _stream(cfg, "mlp"), seeds.tolist(), steps=cfg.joma.mlp_steps,
                       lr=cfg.joma.mlp_lr, dtype=cfg.torch_dtype, device=cfg.torch_device)
    return MlpRun(activation=to_numpy(acts), **{k: to_numpy(v) for k, v in out.items()})


@dataclass
class AttnMlpRun:
    """The study's softmax attention -> l2 norm -> residual decoder + MLP, by GD on the main
    layout (T -> infinity): members are ratio-major, then activation, then seed
    (e = len(attn_lr_ratios) * 3 * n_seeds); n_t = attn_steps + 1."""

    lr_ratio: np.ndarray
    """(e,) eta_Z / attn_lr."""
    activation: np.ndarray
    """(e,) int index into `joma.ACTIVATIONS` (linear, relu, silu)."""
    seed: np.ndarray
    """(e,) int seed key of W1(0) (shared by the activations and ratios of a seed)."""
    loss: np.ndarray
    """(n_t, e) class-mean loss."""
    entropy: np.ndarray
    """(n_t, e) attention entropy of c_n over all contextual tokens, mean over classes."""
    distinct_entropy: np.ndarray
    """(n_t, e) Fig. 6's distinct-token entropy of c_n."""
    z: np.ndarray
    """(e, Q, M_c) trained query rows of Z."""


def attn_mlp(cfg: Config) -> AttnMlpRun:
    n_act, ratios = len(joma.ACTIVATIONS), cfg.joma.attn_lr_ratios
    per_ratio = n_act * cfg.n_seeds
    ratio = torch.tensor(ratios, dtype=torch.float64).repeat_interleave(per_ratio)  # (e,)
    acts = torch.arange(n_act).repeat_interleave(cfg.n_seeds).repeat(len(ratios))  # (e,)
    seeds = torch.arange(cfg.n_seeds).repeat(n_act * len(ratios))  # (e,)
    out = joma.run_attention_mlp(cfg.layout, acts, ratio, _stream(cfg, "attn_mlp"), seeds.tolist(),
                                 steps=cfg.joma.attn_steps, lr=cfg.joma.attn_lr, dtype=cfg.torch_dtype,
                                 device=cfg.torch_device)
    return AttnMlpRun(lr_ratio=to_numpy(ratio), activation=to_numpy(acts), seed=to_numpy(seeds),
                      **{k: to_numpy(v) for k, v in out.items()})


# --------------------------------------------------------------------------- the bound
@dataclass
class SnapBound:
    """B_n(t) of Eq. 129 for the paper's parameter sets (`theory.BN_PARAMETER_SETS`), keyed by
    the set's index ``str(j)``."""

    t: np.ndarray
    """(n_t,) times."""
    labels: tuple[str, ...]
    """(sets,) the figure each set comes from."""
    n_classes: np.ndarray
    """(sets,) int K."""
    vocab: np.ndarray
    """(sets,) int M."""
    eta_y: np.ndarray
    """(sets,) eta_Y."""
    eta_z: np.ndarray
    """(sets,) eta_Z."""
    exact: dict[str, np.ndarray]
    """str(j) -> (n_t,) B_n(t)."""
    scanning: dict[str, np.ndarray]
    """str(j) -> (n_t,) its O(ln t) scanning asymptote."""
    snapping: dict[str, np.ndarray]
    """str(j) -> (n_t,) its O(ln ln t) snapping asymptote."""


def bn(cfg: Config) -> SnapBound:
    pred = theory.predict(cfg)
    sets = theory.BN_PARAMETER_SETS
    curves = [pred["bn"][label] for label, *_ in sets]
    return SnapBound(t=pred["bn_t"], labels=tuple(s[0] for s in sets),
                     n_classes=np.array([s[1] for s in sets]), vocab=np.array([s[2] for s in sets]),
                     eta_y=np.array([s[3] for s in sets], dtype=np.float64),
                     eta_z=np.array([s[4] for s in sets], dtype=np.float64),
                     **{kind: {str(j): c[kind] for j, c in enumerate(curves)} for kind in ("exact", "scanning", "snapping")})


# ----------------------------------------------------------------------------------- run
PHASES = (
    Phase("layout", layout),
    Phase("grad", grad, grad=True),          # autograd is the reference Lemma 1 is checked against
    Phase("sgd", sgd),
    Phase("sgd_long", sgd_long),
    Phase("fig4", fig4),
    Phase("r1", r1),
    Phase("r1m", r1m),
    Phase("r2", r2),
    Phase("assumption2", assumption2),
    Phase("sweep", sweep),
    Phase("population", population),
    Phase("scan_grid", scan_grid),
    Phase("joma_toy", joma_toy, inputs=lambda cfg: cfg.joma),
    Phase("mlp", mlp, grad=True),            # GD through the MLP by autograd
    Phase("attn_mlp", attn_mlp, grad=True),  # the same through softmax attention and l2 norm
    Phase("bn", bn),
)


def run(config: Config, *, progress: bool = True) -> Record:
    """Every phase at ``config``; deterministic given the config (seed and device included)."""
    from studies.scan_snap import NAME

    return run_phases(NAME, config, PHASES, progress=progress)
