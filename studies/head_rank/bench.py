"""The head-rank kernel for ``workbench bench``: Part B's Adam training of H heads of rank r.

This is `simulate.train_heads_one`'s inner loop (the study's only expensive computation apart from
Part A's scipy fits, which run one tiny problem at a time on the CPU): member i trains on its own
fixed sample (stream keyed by i) from its own init, so member i alone equals member i of the batch.
Sizes: the quick preset's d = 6, N = 2, M = 2048 train samples, at (H, r) = (2, 3), ``STEPS`` steps.
"""
from __future__ import annotations

import torch

from workbench.runtime import single_thread

from studies.head_rank import model as md
from studies.head_rank.config import Config
from studies.head_rank.simulate import adam, config_key, init_heads, stream, train_sample

STEPS = 20
"""Adam steps of the timed training."""
H, R = 2, 3


def bench_case(members: int, device: str):
    """``STEPS`` full-batch Adam steps of ``members`` (H=2, r=3) models on their own samples."""
    from workbench.bench import KernelCase

    cfg = Config.quick().replace(device=str(device))
    dev, d, M = cfg.torch_device, cfg.nn.d, cfg.nn.train_samples

    def kernel(idx: list[int]) -> dict[str, torch.Tensor]:
        with single_thread(dev):
            X, y = train_sample(cfg, idx)
            f = md.nearest_target(X, y)
            p0 = init_heads(stream(cfg, "bench", config_key(H, R, False)).child("init"), idx, H, d, R, d, dev)
            loss = lambda p: md.squared_error(md.heads_output(p["Q"], p["K"], p["O"], X, y), f).mean(-1)
            p, _, curve = adam(p0, loss, STEPS, cfg.nn.lr)
        return {**p, "loss": torch.as_tensor(curve).T}

    # per member and step: logits 2 M N H r d (+ keys), reads 2 M H N d, output 2 M H d d; x 3 fwd+bwd
    flops = 3.0 * members * (STEPS + 1) * M * H * (2 * d * R * (1 + cfg.nn.n_keys) + 2 * R * cfg.nn.n_keys
                                                   + 2 * cfg.nn.n_keys * d + 2 * d * d)
    return KernelCase(f"Adam, (H, r) = ({H}, {R}), {STEPS} steps", lambda: kernel(list(range(members))),
                      lambda i: kernel([i]), flops=flops)
