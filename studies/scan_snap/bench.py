"""The scan-snap kernel for ``workbench bench``: SGD on the Y/Z model with per-member seeds.

This is `sgd.train_sgd`, the training behind the ``sgd`` runs and the Fig. 6 sweep: every
step, a fresh batch of ``batch_size`` sequences of length T per member (its token counts, drawn
directly from their multinomial law by `data.CountSampler`, for all members and a block of steps
in one call on the device), the closed-form Lemma-1 gradients are taken for every member at
once, two-rate SGD updates Y and Z, and the observers (distinct-token entropy, row-sum drifts,
||Y||, the query rows of Z) are recorded after every step.  Member i has its own seed (member key i of the bench's
stream: its own initialisation and data) and the learning-rate pair eta_Y = eta_y * eta_y_factors[i mod 3],
eta_Z = eta_z of the main runs.  Sizes: the main Syn-Small layout (C = 10, Q = 2, D = 10, M = 34
tokens), T = 128, batch 128, random initialisation, for ``STEPS`` steps.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from workbench.runtime import single_thread
from workbench.streams import Stream

from studies.scan_snap.config import Config
from studies.scan_snap.data import SequenceClasses
from studies.scan_snap.sgd import train_sgd

STEPS = 20
"""SGD steps of the timed training."""


def _flops(layout: SequenceClasses, batch: int, steps: int, seq_len: int) -> float:
    """Floating-point operations per member: per step the forward pass (z rows, softmax over M_c,
    the normalisation, the decoder logits u Y: 2 B M_c M, the softmax over M, the loss), the
    closed-form gradients (two B M_c M products and the projection), the SGD update (~ 2 M^2 per
    matrix) and the observers (the class attention and entropy, the row sums, ||Y||)."""
    Mc, M, Q, K = layout.n_context, layout.vocab, layout.n_queries, layout.n_classes
    forward = batch * (2 * Q * Mc + 8 * Mc + 2 * Mc * M + 8 * M)
    backward = batch * (2 * Mc * M + 2 * Mc * M + 6 * Mc + 2 * Q * Mc) + 2 * M
    update = 2 * 2 * M * M
    observe = 10 * K * Mc + 2 * 2 * M * M + 2 * M * M
    support = layout.n_common + layout.n_distinct
    sample = batch * (support - 1) * (150 + 4 * math.ceil(math.log2(seq_len)))  # Philox per uniform + the binomial search
    return float(steps * (forward + backward + update + sample) + (steps + 1) * observe + forward)


def bench_case(members: int, device: str):
    """``STEPS`` SGD steps of ``members`` (seed, learning-rate pair) members."""
    from workbench.bench import KernelCase

    cfg = Config.quick().replace(n_seeds=members, steps=STEPS, device=str(device))
    layout = cfg.layout
    factors = np.asarray(cfg.eta_y_factors, dtype=np.float64)
    eta_y = torch.as_tensor(cfg.eta_y * factors[np.arange(members) % len(factors)])
    eta_z = torch.full((members,), cfg.eta_z, dtype=torch.float64)
    stream = Stream(cfg.seed, "scan-snap", "bench")

    def kernel(start: int, stop: int) -> dict[str, torch.Tensor]:
        e = stop - start
        with single_thread(cfg.torch_device):
            out = train_sgd(layout, eta_y=eta_y[start:stop], eta_z=eta_z[start:stop], seed_of_member=torch.arange(start, stop),
                            stream=stream, seq_len=cfg.seq_len,
                            batch_size=cfg.batch_size, steps=STEPS, momentum=cfg.momentum, init="random",
                            dtype=cfg.torch_dtype, device=cfg.torch_device)
        traj = ("loss", "p_correct", "entropy", "Y_rowsum_drift", "Z_rowsum_drift", "Y_norm", "z")
        result = {k: torch.from_numpy(np.ascontiguousarray(np.swapaxes(out[k], 0, 1))) for k in traj}
        result.update(Y=torch.from_numpy(out["Y"]), Z=torch.from_numpy(out["Z"]))
        return result

    return KernelCase(
        f"two-rate SGD, {STEPS} steps",
        lambda: kernel(0, members),
        lambda i: kernel(i, i + 1),
        flops=members * _flops(layout, cfg.batch_size, STEPS, cfg.seq_len),
    )
