"""Random-feature attention: what a single multi-head attention layer with frozen random query-key
matrices learns (Fu et al., NeurIPS 2023), and random features that approximate softmax attention
(FAVOR+, Choromanski et al., ICLR 2021).

>>> from studies import random_features as rfa                              # doctest: +SKIP
>>> rec = rfa.run(rfa.Config.smoke())                                        # doctest: +SKIP
>>> [c.name for c in rfa.checks(rec) if not c.passed]                        # doctest: +SKIP

Modules: `model` (features, targets, infinite-head kernels), `ridge` (closed-form ridge and kernel
ridge), `favor` (FAVOR+ estimators, closed-form MSEs, pitfalls), `simulate` (the sub-experiments),
`checks`, `figures`.  The config docstring lists the sub-experiments and how they derive from it.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from studies.random_features import favor as fv
from studies.random_features import model as rf
from studies.random_features import simulate as sim
from studies.random_features.checks import checks
from studies.random_features.config import Config
from studies.random_features.figures import figures
from workbench.record import Record, keep_on_failure
from workbench.runtime import single_thread as single_threaded_blas
from studies.random_features.bench import bench_case

NAME = "random-features"
TITLE = "Random-feature attention: learning with frozen random heads, and FAVOR+"
REFERENCES = ["fu2023single", "choromanski2021rethinking", "peng2021random", "rahimi2007random", "cho2009kernel"]


def run(config: Config, *, device: str | None = None, progress: bool = True) -> Record:
    """Run every sub-experiment of ``config`` (see `config`) and return the record.

    On the CPU the run uses one BLAS thread (see `single_threaded_blas`)."""
    if device is not None:
        config = config.replace(device=device)
    with single_threaded_blas(config.torch_device):
        return _run(config, progress)


def _run(config: Config, progress: bool) -> Record:
    steps = (len(rf.MODELS) + len(config.n_keys_grid) + len(config.alpha_factors) + len(config.heads_grid) + 1
             + 1 + 2 + 2)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc=NAME, leave=False)
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def tick(label: str) -> None:
        now = time.perf_counter()
        timings[label] = round(now - clock[0], 3)
        clock[0] = now
        if bar is not None:
            bar.set_postfix_str(label)
            bar.update(1)

    record = Record(study=NAME, config=config)
    try:
        with keep_on_failure(record, "learn"):
            G = sim.head_bank(config)
            arrays, data, fits = sim.learn_sweep(config, G, tick)
        record.add(**arrays)
        for name, sweep in (("nkeys", lambda: sim.nkeys_sweep(config, G, data, fits, tick)),
                            ("alpha", lambda: sim.alpha_sweep(config, G, data, fits, tick)),
                            ("intercept", lambda: sim.intercept_sweep(config, G, data, tick)),
                            ("heads", lambda: sim.heads_sweep(config, G, data, tick))):
            with keep_on_failure(record, name):  # a failure keeps the finished sweeps' arrays
                record.add(**sweep())
        del data, fits
        with keep_on_failure(record, "kernel"):
            record.add(**sim.kernel_check(config, tick))
        with keep_on_failure(record, "favor"):
            favor_arrays, setting_names = sim.favor_estimators(config, tick)
            record.add(**favor_arrays)
            record.add(**sim.favor_m_sweep(config, tick))
    finally:
        if bar is not None:
            bar.close()
    record.add(**{"learn.models": np.array(rf.MODELS), "learn.targets": np.array(rf.TARGETS),
                  "favor.settings": np.array(setting_names)})
    # the headline experiment picked by config.model and config.target (a view of the learn sweep)
    im, it = rf.MODELS.index(config.model), rf.TARGETS.index(config.target)
    record.add(**{"headline.test_mse": record["learn.test_mse"][im, :, :, it],          # (e, K) against learn.n_sizes
                  "headline.test_pred": record["learn.test_pred"][im, :, :, it],        # (e, n_test) at n_train
                  "headline.y_test": record["learn.y_test"][:, :, it]})
    record.info.update({"timings_s": timings, "n_params": config.n_params, "torch_threads_during_run": torch.get_num_threads(),
                        "headline": {"model": config.model, "target": config.target}})
    return record


def predict(config: Config) -> dict:
    """Closed-form theory, without any training: FAVOR+ MSEs and biases at the study's settings,
    harmonic-block dimensions, and the delta-method MSE of FAVOR+ attention."""
    d, m = config.favor_d, config.favor_m
    names, xs, ys = sim.favor_settings(d)
    out = {
        "favor.settings": names,
        "favor.sm": fv.softmax_kernel(xs, ys),
        "favor.mse.iid.pos": fv.mse_iid("pos", xs, ys, m),
        "favor.mse.iid.trig": fv.mse_iid("trig", xs, ys, m),
        "favor.mse.iid.hyp": fv.mse_iid("hyp", xs, ys, m),
        "favor.mse.orf.pos": np.array([fv.mse_orf_positive(a, b, m, d) for a, b in zip(xs, ys)]),
        "favor.orf_bound": np.array([fv.orf_theorem_bound(a, b, m, d) for a, b in zip(xs, ys)]),
        "favor.bias_unfixed_qr": fv.bias_unfixed_qr((xs + ys)[:, 0], m, d),
        "favor.bias_sqrt_d_norms": fv.bias_fixed_norms(np.linalg.norm(xs + ys, axis=-1), d),
        "favor_m.mse.iid": np.array([float(fv.mse_iid("pos", xs[0], ys[0], k)) for k in config.favor_m_grid]),
        "favor_m.mse.orf": np.array([fv.mse_orf_positive(xs[0], ys[0], k, d) for k in config.favor_m_grid]),
        "gegenbauer_dims": {k: rf.gegenbauer_dim(config.d, k) for k in (1, 2, 3)},
        "harmonic_block_2_2": rf.gegenbauer_dim(config.d, 2) ** 2,
        "n_params": config.n_params,
    }
    g = sim.generator(config, sim.FAVOR, 200)
    Q = sim.ATTN_TOKEN_SCALE * torch.randn(config.attn_len, d, generator=g, dtype=torch.float64)
    K = sim.ATTN_TOKEN_SCALE * torch.randn(config.attn_len, d, generator=g, dtype=torch.float64)
    V = torch.randn(config.attn_len, sim.ATTN_VALUE_DIM, generator=g, dtype=torch.float64)
    out["attn.mse.iid"] = np.array([fv.favor_attention_mse(Q, K, V, k) for k in config.favor_m_grid])
    return out


__all__ = ["NAME", "TITLE", "REFERENCES", "Config", "run", "predict", "checks", "figures"]
