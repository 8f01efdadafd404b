"""The svm-bias kernel for ``workbench bench``: normalised GD on W for a random instance.

This is the training call of the width sweep (`simulate.sweep`, at the primary width d = 10):
`training.train_attention` by NGD with the sweep's step (lr 0.5) and loss (logistic), the
closed-form cancellation-free gradient and the per-member underflow guard, recording W and the
loss at `training.observation_steps`, for ``STEPS`` steps.  Member i has its own
``local_converge`` instance (n = 6 sequences, T = 8 tokens) and its own W0 ~ N(0, init_std^2),
both drawn beforehand for the whole ensemble from the sweep's streams at d = 10 (one call per
array, on the run's device), so only the training is timed.
"""
from __future__ import annotations

import torch

from workbench.runtime import single_thread

from studies.svm_bias.config import Config
from studies.svm_bias.instances import random_instance
from studies.svm_bias.simulate import stream
from studies.svm_bias.training import init_params, observation_steps, train_attention

STEPS = 200
"""NGD steps of the timed training."""
ATOL = 1e-10
"""Absolute tolerance of member i against run i.  ||W|| grows to ~40 in 200 steps and the
normalised steps carry the last-bit differences between a batched and a single matrix product
forward, so entries that pass near 0 differ by up to ~3e-13 (measured at M = 64; the largest
entries by ~1e-14 relative); 1e-10 is ~2e-12 of the largest entry, far below any real mismatch."""


def _step_flops(n: int, T: int, d: int) -> float:
    """Floating-point operations of one member's step: the closed-form risk and gradient
    (logits X W z: 2 n d^2 + 2 n T d; softmax and loss terms ~ 12 n T; sum_t dlogit x_t: 2 n T d;
    the (d x d) outer-product sum: 2 n d^2), the guard's max and the NGD update (~ 6 d^2)."""
    return float(4 * n * d * d + 4 * n * T * d + 12 * n * T + 6 * d * d)


def bench_case(members: int, device: str):
    """``STEPS`` NGD steps on ``members`` independent (instance, initialisation) pairs."""
    from workbench.bench import KernelCase

    cfg = Config(device=str(device))
    sw, d = cfg.sweep, cfg.d
    dev, dt = cfg.torch_device, cfg.torch_dtype
    s = stream(cfg, "sweep", d)
    inst = random_instance(s.child("instances"), members, sw.n, sw.T, d, device=dev).to(device=dev, dtype=dt)
    W0 = init_params("W", s.child("init"), members, d, d, sw.init_std, dtype=dt, device=dev)["W"]
    observe = observation_steps(STEPS)

    def kernel(instance, W: torch.Tensor) -> dict[str, torch.Tensor]:
        with single_thread(dev):
            run = train_attention(instance, {"W": W}, optimizer="ngd", lr=sw.lr, steps=STEPS,
                                  loss=sw.loss, grad_floor=cfg.grad_floor, observe_at=observe)
        return {"W": run.W, "W_traj": run.W_traj.transpose(0, 1), "loss": run.loss.T,
                "frozen_at": run.frozen_at.to(dt)}

    return KernelCase(
        f"NGD on W, {STEPS} steps",
        lambda: kernel(inst, W0),
        lambda i: kernel(inst.member(i), W0[i:i + 1]),
        flops=members * (STEPS + 1) * _step_flops(sw.n, sw.T, d),  # the last step evaluates the loss only
        atol=ATOL,
    )
