"""In-context linear regression: linear attention learns one step of preconditioned GD; softmax
heads pair up into a zero-sum debiased GD and generalise across context lengths.

References: He et al. (2025) for multi-head softmax attention; Zhang, Frei & Bartlett (2023),
Ahn et al. (2023), von Oswald et al. (2023) and Wu et al. (2024) for linear self-attention and the
Gamma model; Garg et al. (2022) and Raventos et al. (2023) for the setting and task diversity.

    from studies import icl_regression as icl
    rec = icl.run(icl.Config.quick())
    icl.checks(rec), icl.figures(rec)

See `config` for how one config drives the sub-experiments and the array prefixes they write.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from workbench.record import Record, keep_on_failure

from . import data, models, simulate, theory
from .checks import checks
from .config import Config
from .figures import figures
from .predict import predict
from workbench.runtime import single_thread as _single_thread
from studies.icl_regression.bench import bench_case, bench_cases

NAME = "icl-regression"
TITLE = "In-context linear regression: linear attention as preconditioned GD, softmax heads as debiased GD"
REFERENCES = ["he2025incontext", "wu2024many", "zhang2023trained", "ahn2023transformers",
              "vonoswald2023transformers", "garg2022what", "raventos2023pretraining"]


def run(config: Config, *, device: str | None = None, progress: bool = True) -> Record:
    """Run every sub-experiment of ``config`` and return the record (deterministic given the config)."""
    cfg = config if device is None else config.replace(device=device)
    with _single_thread(cfg.torch_device):
        return _run(cfg, progress)


def _run(cfg: Config, progress: bool) -> Record:
    dev = cfg.torch_device
    record = Record(study=NAME, config=cfg)
    timings: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        start = time.perf_counter()
        with keep_on_failure(record, name):  # a failure keeps the arrays of the phases before it
            out = fn(*args, **kwargs)
        timings[name] = round(time.perf_counter() - start, 2)
        return out

    record.add(**timed("theory", simulate.run_theory, cfg))
    record.add(**timed("mc", simulate.run_mc, cfg, progress))
    lsa_arrays, lsa_main = timed("lsa", simulate.run_lsa, cfg, progress)
    record.add(**lsa_arrays)

    members = simulate.softmax_members(cfg)
    soft, soft_mask = timed("softmax", simulate.train_softmax, cfg, members, (cfg.n_context,), simulate.EXP_SOFTMAX,
                            progress, "softmax attention")
    mixed_members = [(cfg.cov, simulate.pair_heads(cfg), s) for s in range(cfg.n_seeds)]
    mixed, mixed_mask = timed("mixed", simulate.train_softmax, cfg, mixed_members, cfg.mixed_lengths, simulate.EXP_MIXED,
                              progress, "mixed lengths")

    # ---- evaluation on the fixed seeded evaluation set
    KQ, OV = models.circuits(soft.params)
    KQm, OVm = models.circuits(mixed.params)
    p, K = lsa_main["p"], lsa_main["K"]
    eval_models, eval_covs, member_index = {}, {}, {}
    for c in ("iso", "ar"):
        idx = [i for i, m in enumerate(members) if m[0] == c]
        if idx:
            sel = torch.tensor(idx, device=dev)
            eval_models[f"softmax_{c}"] = (lambda Z, xq, M, sel=sel: models.softmax_predict_shared(
                KQ[sel], OV[sel], soft_mask[sel], Z, xq))
            eval_covs[f"softmax_{c}"] = c
            member_index[c] = idx
    eval_models["mixed"] = lambda Z, xq, M: models.softmax_predict_shared(KQm, OVm, mixed_mask, Z, xq)
    eval_covs["mixed"] = cfg.cov

    eval_models["lsa_norm_M"] = lambda Z, xq, M: models.lsa_predict_shared(p, K, Z, xq, 1.0 / M)
    eval_models["lsa_fixed"] = lambda Z, xq, M: models.lsa_predict_shared(p, K, Z, xq, 1.0 / cfg.n_context)
    eval_covs["lsa_norm_M"] = eval_covs["lsa_fixed"] = cfg.cov
    ev = timed("evaluate", simulate.evaluate, cfg, eval_models, eval_covs, progress)

    n_mem = len(members)
    L = len(cfg.test_lengths)
    risk = np.zeros((n_mem, L))
    risk_se = np.zeros((n_mem, L))
    for c, idx in member_index.items():
        risk[idx] = ev[f"softmax_{c}.risk"]
        risk_se[idx] = ev[f"softmax_{c}.risk_se"]
    record.add(**{
        "softmax.cov": np.array([data.COV_TAGS[c] for c, _, _ in members]),
        "softmax.heads": np.array([H for _, H, _ in members]),
        "softmax.seed_index": np.array([s for _, _, s in members]),
        "softmax.mask": soft_mask, "softmax.steps": soft.steps,
        "softmax.KQ_traj": soft.trajectory["KQ"], "softmax.OV_traj": soft.trajectory["OV"],
        "softmax.loss_traj": soft.trajectory["loss"], "softmax.KQ": KQ, "softmax.OV": OV,
        "softmax.risk": risk, "softmax.risk_se": risk_se,
        "mixed.heads": np.array([H for _, H, _ in mixed_members]), "mixed.mask": mixed_mask,
        "mixed.steps": mixed.steps, "mixed.KQ_traj": mixed.trajectory["KQ"], "mixed.OV_traj": mixed.trajectory["OV"],
        "mixed.loss_traj": mixed.trajectory["loss"], "mixed.KQ": KQm, "mixed.OV": OVm,
        "mixed.risk": ev["mixed.risk"], "mixed.risk_se": ev["mixed.risk_se"],
        "lsa.eval_risk_norm_M": ev["lsa_norm_M.risk"][0], "lsa.eval_risk_norm_M_se": ev["lsa_norm_M.risk_se"][0],
        "lsa.eval_risk_fixed": ev["lsa_fixed.risk"][0], "lsa.eval_risk_fixed_se": ev["lsa_fixed.risk_se"][0],
        "lsa.eval_p": p[0], "lsa.eval_K": K[0],
        "eval.seed": np.array([cfg.seed]), "eval.chunk_seeds": ev["eval.chunk_seeds"],
        "eval.test_lengths": np.array(cfg.test_lengths),
    })
    record.add(**timed("pool", simulate.run_pool, cfg))
    record.info["timings_s"] = timings
    return record


__all__ = ["NAME", "TITLE", "REFERENCES", "Config", "run", "predict", "checks", "figures",
           "data", "models", "simulate", "theory"]
