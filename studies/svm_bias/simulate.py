"""``run(config)``: the primary run and the battery of sub-experiments, stored with prefixes.

See `studies.svm_bias.config` for which fields drive which sub-experiment.  Every array a check
or a figure needs is stored in the record under ``<prefix>.<name>``: the instances (X, Z, Y, v),
the initial and final parameters, W trajectories at log- and linearly spaced steps, and every
SVM solution that was solved (so a third party can re-solve the SVMs from the instances and
re-measure the correlations and efficiencies without rerunning anything).

Random streams: sub-experiment stream s, member i uses the generator seeded
``seed + STREAMS[s] + i`` (widths of the sweep add 10_000 per width index), drawn on the CPU.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from workbench.attention import member_generators
from workbench.record import Record, keep_on_failure

from studies.svm_bias.instances import (Instance, instance_dims, make_instance, mmts_single_instance,
                                        random_instance, equal_scores_instance, toy_instance)
from studies.svm_bias.model import empirical_risk, risk_gradient_W, selected_tokens
from studies.svm_bias.svm import (NORMS, InfeasibleSVMError, SVMSolution, att_svm, att_svm_ldp)
from studies.svm_bias.theory import MMTS_STARTS, predicted_norm, toy_solutions
from studies.svm_bias.training import TrainedRun, init_params, train_attention
from workbench.runtime import single_thread

STREAMS = {"main": 0, "main_init": 100_000, "norms_init": 200_000, "equal": 300_000,
           "equal_init": 400_000, "sweep": 500_000, "sweep_init": 600_000, "alpha": 700_000,
           "toy_init": 800_000}
SWEEP_STRIDE = 10_000


def _gens(cfg, stream: str, e: int, extra: int = 0) -> list[torch.Generator]:
    return member_generators(cfg.seed + STREAMS[stream] + extra, e)


# ------------------------------------------------------------------------------ SVM solving
class SVMCache:
    """Solves Att-SVM once per (instance, alpha, norm); counts solves."""

    def __init__(self) -> None:
        self._cache: dict[tuple, SVMSolution | InfeasibleSVMError] = {}
        self.problems: dict = {}            # compiled cvxpy problems, owned by this run
        self.solves = 0
        self.seconds = 0.0

    def solve(self, X: np.ndarray, Z: np.ndarray, alpha: np.ndarray, norm: str) -> SVMSolution:
        key = (X.tobytes(), Z.tobytes(), tuple(int(a) for a in alpha), norm)
        if key not in self._cache:
            start = time.perf_counter()
            try:
                self._cache[key] = att_svm(X, Z, alpha, norm, problems=self.problems)
            except InfeasibleSVMError as err:
                self._cache[key] = err
            self.solves += 1
            self.seconds += time.perf_counter() - start
        out = self._cache[key]
        if isinstance(out, InfeasibleSVMError):
            raise out
        return out


def solve_members(prefix: str, inst: Instance, alpha: np.ndarray, norms: Sequence[str], cache: SVMCache,
                  *, ldp: bool = False) -> dict[str, np.ndarray]:
    """Att-SVM(alpha_e) of every member in each norm.  An infeasible SVM is recorded explicitly
    (``feasible`` False, NaN solution); any other solver failure raises.

    Arrays: ``alpha`` (e, n), ``opt`` (e, n), ``feasible`` (e,), ``svm_<norm>`` (e, d, d),
    ``svm_<norm>_value`` (e,), ``support`` (e, n, T) of the Frobenius SVM, and with ``ldp`` the
    scipy cross-check ``svm_fro_ldp`` (e, d, d)."""
    X, Z = inst.X.detach().cpu().double().numpy(), inst.Z.detach().cpu().double().numpy()
    e, n, T, d = X.shape
    out: dict[str, np.ndarray] = {"alpha": alpha.astype(np.int64), "opt": inst.opt.cpu().numpy().astype(np.int64),
                                  "feasible": np.ones(e, dtype=bool), "support": np.zeros((e, n, T), dtype=bool)}
    for norm in norms:
        out[f"svm_{norm}"] = np.full((e, d, d), np.nan)
        out[f"svm_{norm}_value"] = np.full(e, np.nan)
    if ldp:
        out["svm_fro_ldp"] = np.full((e, d, d), np.nan)
    for i in range(e):
        try:
            for norm in norms:
                sol = cache.solve(X[i], Z[i], alpha[i], norm)
                out[f"svm_{norm}"][i] = sol.W
                out[f"svm_{norm}_value"][i] = sol.value
                if norm == "fro":
                    out["support"][i] = sol.support
            if ldp:
                out["svm_fro_ldp"][i] = att_svm_ldp(X[i], Z[i], alpha[i])[0]
        except InfeasibleSVMError:
            out["feasible"][i] = False
            for norm in norms:
                out[f"svm_{norm}"][i] = np.nan
                out[f"svm_{norm}_value"][i] = np.nan
    return {f"{prefix}.{k}": v for k, v in out.items()}


def final_alpha(inst: Instance, W: torch.Tensor) -> np.ndarray:
    """alpha = argmax of the final softmax (e, n), as in the official code (spec pitfall 2)."""
    return selected_tokens(inst.X, W, inst.Z).cpu().numpy()


def _store_run(rec: Record, prefix: str, run: TrainedRun, *, trajectory: bool = True) -> None:
    arrays = {f"{prefix}.W": run.W, f"{prefix}.frozen_at": run.frozen_at, f"{prefix}.loss": run.loss,
              f"{prefix}.steps": run.steps}
    if trajectory:
        arrays[f"{prefix}.W_traj"] = run.W_traj
    if "K" in run.params:
        arrays[f"{prefix}.K"], arrays[f"{prefix}.Q"] = run.params["K"], run.params["Q"]
    rec.add(**arrays)


def _device(inst: Instance, cfg) -> Instance:
    return inst.to(device=cfg.torch_device, dtype=cfg.torch_dtype)


# ---------------------------------------------------------------------------- sub-experiments
def run_main(cfg, rec: Record, cache: SVMCache, progress: bool) -> None:
    """The primary run: exactly the config's fields (check A3)."""
    n, T, d = instance_dims(cfg.instance, cfg.n, cfg.T, cfg.d)
    inst = make_instance(cfg.instance, _gens(cfg, "main", cfg.n_seeds), n=cfg.n, T=cfg.T, d=cfg.d,
                         angle_deg=cfg.angle_deg, dtype=torch.float64)
    init = init_params(cfg.param, _gens(cfg, "main_init", cfg.n_seeds), d, cfg.rank_m, cfg.init_scale,
                       dtype=cfg.torch_dtype, device=cfg.torch_device)
    run = train_attention(_device(inst, cfg), init, optimizer=cfg.optimizer, lr=cfg.lr, steps=cfg.steps,
                          loss=cfg.loss, ngd_per=cfg.ngd_per, grad_floor=cfg.grad_floor,
                          progress=progress, desc="main")
    rec.add(**inst.arrays("main"))
    _store_run(rec, "main", run)
    norms = tuple(dict.fromkeys(("fro", predicted_norm(cfg.param, cfg.optimizer))))
    rec.add(**solve_members("main", inst, final_alpha(inst, run.W.cpu().double()), norms, cache, ldp=True))


def run_toy(cfg, rec: Record, cache: SVMCache, progress: bool) -> None:
    """The two-sequence toy: W by NGD (A1), (K, Q) by per-factor NGD (A2), W by plain GD (A6)."""
    inst = toy_instance(cfg.angle_deg, 1)
    dev = _device(inst, cfg)
    zeros = {"W": torch.zeros((1, 2, 2), dtype=cfg.torch_dtype, device=cfg.torch_device)}
    common = dict(loss=cfg.loss, grad_floor=cfg.grad_floor, progress=progress)
    ngd = train_attention(dev, zeros, optimizer="ngd", lr=cfg.lr, steps=cfg.steps, desc="toy W", **common)
    kq_init = init_params("KQ", _gens(cfg, "toy_init", 1), 2,
                          cfg.rank_m, cfg.kq_init, dtype=cfg.torch_dtype, device=cfg.torch_device)
    kq = train_attention(dev, kq_init, optimizer="ngd", lr=cfg.kq_lr, steps=cfg.steps, ngd_per=cfg.ngd_per,
                         desc="toy KQ", **common)
    gd = train_attention(dev, zeros, optimizer="gd", lr=cfg.gd_lr, steps=cfg.gd_steps, desc="toy GD", **common)
    rec.add(**inst.arrays("toy"))
    _store_run(rec, "toy.ngd", ngd)
    _store_run(rec, "toy.kq", kq)
    _store_run(rec, "toy.gd", gd)
    rec.add(**solve_members("toy", inst, inst.opt.numpy(), NORMS, cache, ldp=True))


def run_norms(cfg, rec: Record, cache: SVMCache, progress: bool) -> None:
    """Random instances under W-NGD, (K,Q)-NGD, W-spectral (A5, extension), plain GD (A6) and the
    naive forward pass (precision horizon)."""
    e = cfg.norm_seeds
    inst = random_instance(_gens(cfg, "main", e), cfg.n, cfg.T, cfg.d)
    dev = _device(inst, cfg)
    zeros = {"W": torch.zeros((e, cfg.d, cfg.d), dtype=cfg.torch_dtype, device=cfg.torch_device)}
    kq_init = init_params("KQ", _gens(cfg, "norms_init", e), cfg.d, cfg.rank_m, cfg.kq_init,
                          dtype=cfg.torch_dtype, device=cfg.torch_device)
    common = dict(loss=cfg.loss, grad_floor=cfg.grad_floor, progress=progress)
    runs = {
        "ngd": train_attention(dev, zeros, optimizer="ngd", lr=cfg.lr, steps=cfg.steps, desc="norms W-NGD", **common),
        "kq": train_attention(dev, kq_init, optimizer="ngd", lr=cfg.kq_lr, steps=cfg.steps, ngd_per=cfg.ngd_per,
                              desc="norms KQ-NGD", **common),
        "spectral": train_attention(dev, zeros, optimizer="spectral", lr=cfg.lr, steps=cfg.steps,
                                    desc="norms spectral", **common),
    }
    rec.add(**inst.arrays("norms"))
    for name, run in runs.items():
        _store_run(rec, f"norms.{name}", run)
        rec.add(**solve_members(f"norms.{name}", inst, final_alpha(inst, run.W.cpu().double()), NORMS, cache,
                                ldp=name == "ngd"))
    gd = train_attention(dev, zeros, optimizer="gd", lr=cfg.gd_lr, steps=cfg.gd_steps, desc="norms GD", **common)
    _store_run(rec, "norms.gd", gd)
    rec.add(**solve_members("norms.gd", inst, final_alpha(inst, gd.W.cpu().double()), ("fro",), cache))
    k = min(4, e)
    sub = Instance(dev.X[:k], dev.Z[:k], dev.Y[:k], dev.v[:k])
    naive = train_attention(sub, {"W": zeros["W"][:k]}, optimizer="ngd", lr=cfg.lr, steps=cfg.steps,
                            forward="naive", desc="norms naive", **common)
    _store_run(rec, "norms.naive", naive)


def run_equal(cfg, rec: Record, cache: SVMCache, progress: bool) -> None:
    """Equal non-opt scores from random initialisations: orthonormal queries (A4) and random
    queries (the free-rider check)."""
    e = cfg.n_inits
    for pre, queries in (("equal", "orthonormal"), ("equal_rq", "random")):
        inst = equal_scores_instance(_gens(cfg, "equal", e), cfg.n, cfg.T, cfg.d, queries=queries)
        init = init_params("W", _gens(cfg, "equal_init", e), cfg.d, cfg.rank_m, cfg.init_std,
                           dtype=cfg.torch_dtype, device=cfg.torch_device)
        run = train_attention(_device(inst, cfg), init, optimizer="ngd", lr=cfg.lr, steps=cfg.steps, loss=cfg.loss,
                              grad_floor=cfg.grad_floor, progress=progress, desc=f"equal scores ({queries})")
        rec.add(**inst.arrays(pre), **{f"{pre}.W0": init["W"]})
        _store_run(rec, pre, run, trajectory=False)
        alpha = final_alpha(inst, run.W.cpu().double())
        rec.add(**solve_members(pre, inst, alpha, ("fro",), cache))
    # free riders: for a run whose alpha misses opt somewhere, the SVM of the sequences that did pick opt
    X, Z, opt = inst.X.numpy(), inst.Z.numpy(), inst.opt.numpy()
    others = alpha == opt                                                   # (e, n)
    W_others = np.full((e, cfg.d, cfg.d), np.nan)
    for i in np.nonzero(~others.all(axis=1))[0]:
        keep = others[i]
        if keep.any():
            try:
                W_others[i] = cache.solve(X[i][keep], Z[i][keep], opt[i][keep], "fro").W
            except InfeasibleSVMError:
                pass
    rec.add(**{"equal_rq.others_mask": others, "equal_rq.svm_others": W_others})


def run_sweep(cfg, rec: Record, cache: SVMCache, progress: bool) -> None:
    """Global/local fractions and SVM rank/feasibility across widths (A7, fractions figure)."""
    e, R = cfg.n_inits, cfg.rank_instances
    for j, d in enumerate(cfg.sweep_d):
        pre = f"sweep.d{d}"
        inst = random_instance(_gens(cfg, "sweep", e, SWEEP_STRIDE * j), cfg.n, cfg.T, d)
        init = init_params("W", _gens(cfg, "sweep_init", e, SWEEP_STRIDE * j), d, cfg.rank_m, cfg.init_std,
                           dtype=cfg.torch_dtype, device=cfg.torch_device)
        run = train_attention(_device(inst, cfg), init, optimizer="ngd", lr=cfg.lr, steps=cfg.steps, loss=cfg.loss,
                              grad_floor=cfg.grad_floor, progress=progress, desc=f"sweep d={d}")
        rec.add(**inst.arrays(pre), **{f"{pre}.W0": init["W"]})
        _store_run(rec, pre, run, trajectory=False)
        rec.add(**solve_members(pre, inst, final_alpha(inst, run.W.cpu().double()), ("fro",), cache))
        # the SVM rank study, alpha = opt, and the feasibility of a uniformly random alpha
        X, Z = inst.X[:R].numpy(), inst.Z[:R].numpy()
        opt = inst.opt[:R].numpy()
        alpha_rand = np.stack([torch.randint(0, cfg.T, (cfg.n,), generator=g).numpy()
                               for g in _gens(cfg, "alpha", R, SWEEP_STRIDE * j)])
        W_ldp, W_nuc = np.full((R, d, d), np.nan), np.full((R, d, d), np.nan)
        feas_opt, feas_rand = np.zeros(R, dtype=bool), np.zeros(R, dtype=bool)
        for r in range(R):
            try:
                W_ldp[r] = att_svm_ldp(X[r], Z[r], opt[r])[0]
                W_nuc[r] = cache.solve(X[r], Z[r], opt[r], "nuc").W
                feas_opt[r] = True
            except InfeasibleSVMError:
                pass
            try:
                cache.solve(X[r], Z[r], alpha_rand[r], "fro")
                feas_rand[r] = True
            except InfeasibleSVMError:
                pass
        rec.add(**{f"{pre}.rank_fro_W": W_ldp, f"{pre}.rank_nuc_W": W_nuc, f"{pre}.rank_feasible": feas_opt,
                   f"{pre}.alpha_random": alpha_rand, f"{pre}.random_feasible": feas_rand})


def run_mmts(cfg, rec: Record, cache: SVMCache, progress: bool) -> None:
    """The MMTS single-input example from the six prompts p0 = (0, c) (A8)."""
    e = len(MMTS_STARTS)
    inst = mmts_single_instance(e)
    W0 = torch.zeros((e, 2, 2), dtype=torch.float64)
    W0[:, 1, 0] = torch.tensor(MMTS_STARTS, dtype=torch.float64)           # first column p0 = (0, c)
    run = train_attention(_device(inst, cfg), {"W": W0.to(cfg.torch_device, cfg.torch_dtype)}, optimizer="ngd",
                          lr=cfg.mmts_lr, steps=cfg.steps, loss=cfg.loss, grad_floor=cfg.grad_floor,
                          progress=progress, desc="mmts")
    rec.add(**inst.arrays("mmts"), **{"mmts.W0": W0, "mmts.starts": np.asarray(MMTS_STARTS)})
    _store_run(rec, "mmts", run)
    X, Z = inst.X[0].numpy(), inst.Z[0].numpy()
    rec.add(**{"mmts.svm_global": cache.solve(X, Z, np.array([0]), "fro").W,
               "mmts.svm_local": cache.solve(X, Z, np.array([1]), "fro").W,
               "mmts.svm_local_support": cache.solve(X, Z, np.array([1]), "fro").support})


def run_horizon(cfg, rec: Record) -> None:
    """Gradients along the ray m W^mm / margin of the toy: naive autograd vs cancellation-free."""
    inst = _device(toy_instance(cfg.angle_deg, 1), cfg)
    W_mm = torch.as_tensor(toy_solutions(cfg.angle_deg)["W_fro"], dtype=cfg.torch_dtype, device=cfg.torch_device)
    margins = np.unique(np.concatenate([np.arange(0.5, 60.0, 0.25), np.linspace(60.0, 700.0, 65)]))
    gamma = inst.gamma
    rel_naive, rel_autograd, cos_stable, g_stable_norm = [], [], [], []
    for m in margins:
        W = (float(m) * W_mm)[None]                                         # support margins are exactly m
        _, g_stable = risk_gradient_W(W, inst.X, inst.Z, gamma, cfg.loss)
        grads = {}
        for forward in ("naive", "stable"):
            Wr = W.clone().requires_grad_(True)
            (grads[forward],) = torch.autograd.grad(empirical_risk({"W": Wr}, inst.X, inst.Z, gamma, cfg.loss,
                                                                   forward).sum(), Wr)
        scale = g_stable.abs().max()                                        # avoid underflow in the norms
        if scale > 0:
            ref = (g_stable / scale).norm()
            rel_naive.append(float((grads["naive"] / scale - g_stable / scale).norm() / ref))
            rel_autograd.append(float((grads["stable"] / scale - g_stable / scale).norm() / ref))
            cos_stable.append(float(-(g_stable / scale * W_mm).sum() / (ref * W_mm.norm())))
        else:
            rel_naive.append(np.nan), rel_autograd.append(np.nan), cos_stable.append(np.nan)
        g_stable_norm.append(float(scale * ref) if scale > 0 else 0.0)
    rec.add(**{"horizon.margin": margins, "horizon.rel_error_naive": np.array(rel_naive),
               "horizon.rel_error_stable_autograd": np.array(rel_autograd),
               "horizon.cos_stable": np.array(cos_stable), "horizon.grad_norm": np.array(g_stable_norm)})


def run(config, *, device=None, progress: bool = True) -> Record:
    """Run the primary run and (``suite=True``) the battery; return the record."""
    if device is not None:
        config = config.replace(device=device)
    rec = Record(study="svm-bias", config=config)
    cache = SVMCache()
    timings = {}
    parts = [("main", lambda: run_main(config, rec, cache, progress))]
    if config.suite:
        parts += [("toy", lambda: run_toy(config, rec, cache, progress)),
                  ("norms", lambda: run_norms(config, rec, cache, progress)),
                  ("equal", lambda: run_equal(config, rec, cache, progress)),
                  ("sweep", lambda: run_sweep(config, rec, cache, progress)),
                  ("mmts", lambda: run_mmts(config, rec, cache, progress)),
                  ("horizon", lambda: run_horizon(config, rec))]
    with single_thread(config.torch_device):
        for name, part in parts:
            start = time.perf_counter()
            with keep_on_failure(rec, name):  # a failure keeps the finished parts' arrays
                part()
            timings[name] = round(time.perf_counter() - start, 3)
    rec.info.update({"seconds": timings, "svm_solves": cache.solves, "svm_seconds": round(cache.seconds, 3)})
    return rec
