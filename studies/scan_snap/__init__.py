"""Scan and Snap: how one softmax attention layer learns which tokens to attend to
(Tian, Wang, Chen, Du, NeurIPS 2023, arXiv 2305.16380), with JoMA's MLP extension
(Tian et al., ICLR 2024, arXiv 2310.00535).

The claim: trained by SGD on sequence classes, the attention logits of distinct tokens rise and
those of common tokens fall (Theorem 2); distinct tokens are ranked by their co-occurrence
P(l|n) and attention first scans (low-frequency tokens drop out in order, Theorem 3) then snaps,
freezing once the decoder has learned, at t_0 ~ 2 K ln M / eta_Y, into a sparse but not one-hot
pattern whose sparsity grows with eta_Z and falls with eta_Y / eta_Z (Theorem 4).

``run(config)`` executes the sub-experiments listed in `studies.scan_snap.config` (SGD runs,
the R1 / R1m / R2 ODEs, the Fig. 6 sweep, the JoMA extension) and stores each one's arrays
under its prefix (``sgd.z``, ``r1.z``, ``sweep1.entropy``, ...).
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from workbench.attention import member_generators
from workbench.errors import TrainingError
from workbench.record import Record, keep_finished

from studies.scan_snap import joma, theory
from studies.scan_snap.checks import LR_CHECK_TIMES, checks
from studies.scan_snap.config import Config
from studies.scan_snap.data import SequenceClasses
from studies.scan_snap.figures import figures
from studies.scan_snap.model import forward, init_params, lemma1_gradients
from studies.scan_snap.simulate import train_sgd
from studies.scan_snap.bench import bench_case
from workbench.runtime import single_thread

NAME = "scan-snap"
TITLE = "Scan and Snap: sparse attention from SGD dynamics (with JoMA's MLP extension)"
REFERENCES = ["tian2023scan", "tian2024joma"]

# Independent random streams of the sub-experiments: seed + STREAM * k + s for seed index s.
STREAM = 100_003
STREAMS = {"sgd": 0, "sgd_long": 1, "grad": 2, "joma_toy": 3, "mlp": 4, "sweep": 10}
BN_PARAMETER_SETS = (
    # (label, K, M, eta_Y, eta_Z): Fig. 3 (K = 10, M = 1000, eta_Z = 0.5) and Fig. 9 panels.
    ("Fig. 3, eta_Y=0.5", 10, 1000, 0.5, 0.5), ("Fig. 3, eta_Y=1", 10, 1000, 1.0, 0.5),
    ("Fig. 3, eta_Y=2", 10, 1000, 2.0, 0.5), ("Fig. 3, eta_Y=5", 10, 1000, 5.0, 0.5),
    ("Fig. 9, nu=10, M=100", 10, 100, 10.0, 1.0), ("Fig. 9, nu=1, M=1e4", 10, 10_000, 1.0, 1.0),
)


def layout_of(config: Config) -> SequenceClasses:
    return SequenceClasses(config.n_common, config.n_queries, config.next_per_query, config.n_distinct)


def sweep_layout(config: Config, n_queries: int) -> SequenceClasses:
    return SequenceClasses(config.n_common, n_queries, config.sweep_next_per_query, config.n_distinct)


def generators(config: Config, stream: str, offset: int = 0) -> list[torch.Generator]:
    return member_generators(config.seed + STREAM * (STREAMS[stream] + offset), config.n_seeds)


def ode_times(config: Config) -> np.ndarray:
    """0, every integer step up to ``steps``, log-spaced points from 0.01 to ode_t_max, and the
    check times."""
    decades = math.log10(config.ode_t_max) + 2
    logs = np.logspace(-2, math.log10(config.ode_t_max), int(round(decades * config.ode_points_per_decade)) + 1)
    extra = [t for t in LR_CHECK_TIMES + (10.0, 10_000.0) if t <= config.ode_t_max]
    t = np.unique(np.concatenate([[0.0], np.arange(1, config.steps + 1, dtype=np.float64), logs, extra]))
    return t[t <= config.ode_t_max]


def ode_members(config: Config) -> dict[str, np.ndarray]:
    """The (eta_Y, eta_Z) pairs integrated by R1/R1m (groups 0-2) and R2 (groups 0-3).

    group 0: eta_Y = eta_y * factor, eta_Z = eta_z (the SGD pairs); group 1: the snap grid
    eta_Y in snap_eta_y with eta_Z = min(eta_z, eta_Y); group 2: eta_Y = r eta_z, eta_Z = eta_z;
    group 3: every sweep_eta_z x lr_ratios pair.
    """
    pairs, groups = [], []
    for f in config.eta_y_factors:
        pairs.append((config.eta_y * f, config.eta_z)); groups.append(0)
    for ey in config.snap_eta_y:
        pairs.append((ey, min(config.eta_z, ey))); groups.append(1)
    for r in config.lr_ratios:
        pairs.append((config.eta_z * r, config.eta_z)); groups.append(2)
    for ez in config.sweep_eta_z:
        for r in config.lr_ratios:
            pairs.append((ez * r, ez)); groups.append(3)
    pairs = np.asarray(pairs, dtype=np.float64)
    return {"eta_y": pairs[:, 0], "eta_z": pairs[:, 1], "group": np.asarray(groups, dtype=np.int64)}


def sweep_members(config: Config) -> dict[str, np.ndarray]:
    """The Fig. 6 grid: eta_Z in sweep_eta_z (slow axis) x eta_Y/eta_Z in lr_ratios (fast axis)."""
    ez = np.repeat(np.asarray(config.sweep_eta_z, dtype=np.float64), len(config.lr_ratios))
    ratio = np.tile(np.asarray(config.lr_ratios, dtype=np.float64), len(config.sweep_eta_z))
    return {"eta_y": ez * ratio, "eta_z": ez, "ratio": ratio}


def _sgd_members(eta_y: np.ndarray, eta_z: np.ndarray, n_seeds: int) -> tuple[torch.Tensor, ...]:
    """Members (pair g, seed s) flattened pair-major: member g * n_seeds + s."""
    ey = torch.as_tensor(np.repeat(eta_y, n_seeds), dtype=torch.float64)
    ez = torch.as_tensor(np.repeat(eta_z, n_seeds), dtype=torch.float64)
    seed = torch.arange(n_seeds).repeat(len(eta_y))
    return ey, ez, seed


# ---------------------------------------------------------------------------------- predict
def predict(config: Config) -> dict:
    """Closed-form theory (no training, no ODE): P(l|n), the initial common mass, t_0 and the
    orthogonal-class snap time for the main members, and B_n(t) for the paper's parameters."""
    layout = layout_of(config)
    P = layout.probabilities().numpy()
    K, M = layout.n_classes, layout.vocab
    eta_main = config.eta_y * np.asarray(config.eta_y_factors)
    t = np.logspace(-1, 5, 241)
    bn = {label: theory.snap_bound(t, ey, ez, Mv, Kv) for label, Kv, Mv, ey, ez in BN_PARAMETER_SETS}
    return {
        "P": P, "vocab": M, "n_classes": K,
        "initial_common_mass": float(P[0, layout.common_mask().numpy()].sum()),
        "t0_main": theory.snap_time_t0(M, K, eta_main),
        "snap_time_orthogonal_main": theory.snap_time_orthogonal(M, K, eta_main),
        "bn_t": t, "bn": bn,
    }


# -------------------------------------------------------------------------------------- run
def run(config: Config, *, device: str | torch.device | None = None, progress: bool = True) -> Record:
    """Run every sub-experiment of the config (see `studies.scan_snap.config`)."""
    dev = torch.device(device) if device is not None else config.torch_device
    vocab = max([layout_of(config).vocab] + [sweep_layout(config, q).vocab for q in config.sweep_queries])
    members = len(config.sweep_eta_z) * len(config.lr_ratios) * config.n_seeds
    small = members * config.batch_size * vocab < 2_000_000  # largest per-step tensor
    record = Record(study=NAME, config=config)
    stage = ["grad"]  # the stage running now (for a failure's message and its kept arrays)
    with single_thread(dev) if small else contextlib.nullcontext():
        try:
            return _run(config, dev, progress, record, stage)
        except TrainingError as err:  # keep the finished stages' arrays, name the failing one
            keep_finished(err, record, stage[0])
            raise


def _run(config: Config, dev: torch.device, progress: bool, record: Record, stage: list[str]) -> Record:
    dtype = config.torch_dtype
    layout = layout_of(config)
    stages = ["grad", "sgd", "sgd_long", "r1", "r1m", "r2"] + [f"sweep{q}" for q in config.sweep_queries] + ["joma"]
    bar = None
    if progress:
        from workbench.progress import progress_bar
        bar = progress_bar(total=len(stages), desc=NAME, leave=False)

    def advance(name: str) -> None:
        following = stages.index(name) + 1
        stage[0] = stages[following] if following < len(stages) else "bn"
        if bar is not None:
            bar.set_postfix_str(name)
            bar.update(1)

    def put(prefix: str, arrays: dict) -> None:
        record.add(**{f"{prefix}.{k}": v for k, v in arrays.items()})

    put("layout", {"P": layout.probabilities(), "common_mask": layout.common_mask(),
                   "distinct_mask": layout.distinct_mask(), "query_of_class": layout.query_of_class})

    # --- Lemma 1 versus autograd on one batch with random Y, Z (3x Model2's init scale).
    gens = member_generators(config.seed + STREAM * STREAMS["grad"], 2)
    p0 = init_params(layout, "random", gens)
    counts, classes = zip(*[layout.sample(16, config.seq_len, gg) for gg in gens])
    Y = (3 * p0["Y"]).to(device=dev, dtype=dtype)
    Z = (3 * p0["Z"]).to(device=dev, dtype=dtype)
    counts = torch.stack(counts).to(device=dev, dtype=dtype)
    classes = torch.stack(classes).to(dev)
    Yg, Zg = Y.clone().requires_grad_(True), Z.clone().requires_grad_(True)
    loss = forward(Yg, Zg, counts, classes, layout).loss
    auto_Y, auto_Z = torch.autograd.grad(loss.sum(), [Yg, Zg])
    _, closed = lemma1_gradients(Y, Z, counts, classes, layout)
    put("grad", {"Y": Y, "Z": Z, "counts": counts, "classes": classes, "autograd_Y": auto_Y, "autograd_Z": auto_Z,
                 "lemma1_Y": closed["Y"], "lemma1_Z": closed["Z"]})
    advance("grad")

    # --- SGD on the main layout at T = seq_len and T = seq_len_long.
    main_ey = config.eta_y * np.asarray(config.eta_y_factors, dtype=np.float64)
    main_ez = np.full_like(main_ey, config.eta_z)
    ey, ez, seed_idx = _sgd_members(main_ey, main_ez, config.n_seeds)
    for prefix, T in (("sgd", config.seq_len), ("sgd_long", config.seq_len_long)):
        out = train_sgd(layout, eta_y=ey, eta_z=ez, seed_of_member=seed_idx, generators=generators(config, prefix),
                        seq_len=T, batch_size=config.batch_size, steps=config.steps, momentum=config.momentum,
                        init=config.init, dtype=dtype, device=dev, progress=progress, desc=prefix)
        put(prefix, {**out, "eta_y": ey, "eta_z": ez, "seed_index": seed_idx, "seq_len": np.asarray(T)})
        advance(prefix)

    # --- The three ODEs on the main layout.
    mf = theory.MeanField.of(layout)
    t = ode_times(config)
    members = ode_members(config)
    mean_field = members["group"] <= 2
    for name in ("r1", "r1m"):
        sol = mf.solve_r1(members["eta_y"][mean_field], members["eta_z"][mean_field], t, modified=name == "r1m")
        put(name, {**sol, "eta_y": members["eta_y"][mean_field], "eta_z": members["eta_z"][mean_field],
                   "group": members["group"][mean_field]})
        advance(name)
    sol = mf.solve_r2(members["eta_y"], members["eta_z"], t)
    c = theory.class_attention(sol["z"], layout)
    put("r2", {**sol, **members, "entropy": theory.distinct_entropy(c, layout)})
    advance("r2")

    # --- The Fig. 6 sweep: SGD (paper protocol) and R2 on each Syn-Medium layout.
    grid = sweep_members(config)
    for i, q in enumerate(config.sweep_queries):
        lay = sweep_layout(config, q)
        ey, ez, seed_idx = _sgd_members(grid["eta_y"], grid["eta_z"], config.n_seeds)
        out = train_sgd(lay, eta_y=ey, eta_z=ez, seed_of_member=seed_idx, generators=generators(config, "sweep", i),
                        seq_len=config.seq_len, batch_size=config.batch_size, steps=config.steps,
                        momentum=config.sweep_momentum, init=config.sweep_init, dtype=dtype, device=dev,
                        progress=progress, desc=f"sweep{q}", z_trajectory=False)
        put(f"sweep{q}", {"eta_y": ey, "eta_z": ez, "seed_index": seed_idx, "ratio": np.repeat(grid["ratio"], config.n_seeds),
                          "steps": out["steps"], "loss": out["loss"], "p_correct": out["p_correct"],
                          "entropy": out["entropy"], "z_final": out["z"],
                          "Y_rowsum_drift": out["Y_rowsum_drift"], "Z_rowsum_drift": out["Z_rowsum_drift"],
                          "P": lay.probabilities()})
        mf_q = theory.MeanField.of(lay)
        sol = mf_q.solve_r2(grid["eta_y"], grid["eta_z"], t)
        c = theory.class_attention(sol["z"], lay)
        put(f"r2_sweep{q}", {"t": sol["t"], "eta_y": grid["eta_y"], "eta_z": grid["eta_z"], "ratio": grid["ratio"],
                             "entropy": theory.distinct_entropy(c, lay), "common_mass": theory.common_mass(c, lay)})
        advance(f"sweep{q}")

    # --- JoMA: the sparse-then-dense toy, and the attention + MLP study.
    mu = joma.toy_targets(generators(config, "joma_toy"))
    gated = joma.run_toy(mu, config.joma_steps, gating="softmax")
    uniform = joma.run_toy(mu, config.joma_steps, gating="uniform")
    put("joma_toy", {"mu": mu, "entropy": gated["entropy"], "v": gated["v"], "uniform_entropy": uniform["entropy"],
                     "uniform_v": uniform["v"], "uniform_v_closed_form": joma.toy_uniform_closed_form(mu, config.joma_steps)})
    acts = torch.arange(len(joma.ACTIVATIONS)).repeat_interleave(config.n_seeds)
    mlp_gens = member_generators(config.seed + STREAM * STREAMS["mlp"], len(acts))
    mlp = joma.run_mlp(layout, acts, mlp_gens, steps=config.mlp_steps, lr=config.mlp_lr, dtype=dtype, device=dev)
    mlp.pop("W1")
    put("mlp", {**mlp, "activation": acts})
    advance("joma")

    bn = predict(config)
    record.add(**{"bn.t": bn["bn_t"]})
    for j, (label, *_rest) in enumerate(BN_PARAMETER_SETS):
        for kind, curve in bn["bn"][label].items():
            record.add(**{f"bn.{kind}{j}": curve})
    record.info["bn_labels"] = [s[0] for s in BN_PARAMETER_SETS]
    record.info["ode_evaluations"] = {k: int(record.arrays[f"{k}.n_evaluations"]) for k in ("r1", "r1m", "r2")}
    if bar is not None:
        bar.close()
    return record


__all__ = ["NAME", "TITLE", "REFERENCES", "Config", "run", "predict", "checks", "figures"]
