"""The icl-regression kernel for ``workbench bench``: online Adam on multi-head softmax attention.

This is `simulate.train_softmax`, the study's expensive training (He et al. 2025): every member
draws a fresh seeded batch of ``batch_size`` prompts of length ``n_context`` at every step (from
the stream "train" with the member's seed index as its member key, a block of steps per draw, on
the run's device), predicts the queries
with `model.softmax_predict` and takes one Adam step on (Q, K, V, O).  For the bench, member i is
(Sigma_main, H_i, seed index i) with H_i cycling through the config's head counts (1, 2, 3), so
every member has its own data stream (no shared draws, unlike `Config.softmax_members`, where the head
counts of one seed share their batches) and the batched run pads heads to 3 with a mask.  The
standalone run i has H_i heads; its outputs are zero-padded to 3 heads (a masked head gets exactly
zero gradient and stays at its zero initialisation, see `model`).

Sizes: the quick preset's d = 5, N = 40, batch 256, lr 3e-3, for ``STEPS`` steps; at M = 512 the
largest tensors (prompts and attention patterns of one step) are about 250 MB each.

The CPU bound.  Every member-step draws 256 prompts x ((N+1) d + d + N+1) = 256 x 251 = 64,256
normals, and the standalone member draws the same numbers from the same stream, so the loop and the
ensemble pay the same drawing cost; batching removes only the rest (Python, kernel launches, the
small forward/backward/Adam).  Measured on one thread of the shared 2-core machine, timing one
member-step's draw (``simulate._member_block``) against one forward+backward: drawing is 85-94% of
a member-step (Philox normals at 8.4 M/s on an idle core, 7.7 ms per member-step; the
rest 1-3 ms), so speedup <= (t_draw + t_rest) / t_draw ~ 1.1-1.4x on the CPU, whatever the
batching: 20x would need a drawn normal below ~2 ns, 60x faster than Philox in int64 torch ops
on a CPU core.  On a GPU the draw is one kernel for the whole ensemble and block of steps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from workbench.runtime import single_thread

from studies.icl_regression import model as md
from studies.icl_regression.config import Config
from studies.icl_regression.simulate import EXP_SOFTMAX, train_softmax

STEPS = 10
"""Adam steps of the timed training."""


def _flops(cfg: Config, heads: list[int], steps: int) -> float:
    """Floating-point operations of the batched call (matrix products, x 3 for forward + backward,
    plus the data assembly x = L z and y = x beta of every batch).  Padded heads are counted: the
    batched program computes them."""
    D, b, n, d = cfg.d + 1, cfg.batch_size, cfg.n_context, cfg.d
    h = max(heads)
    e = len(heads)
    circuits = h * (2 * D ** 3 + 2 * D * D)                     # K^T Q and O V
    predict = b * h * (2 * D * d + 2 * n * D + 5 * n + 2 * n * D + 2 * D)  # u, logits, softmax, P Z, read-out
    data = b * (n + 1) * (2 * d * d + 2 * d + 1)                 # x = L z, y = x beta + noise
    adam = 4 * h * (3 * D * D + D) * 4                           # moments and update of Q, K, V, O
    return float(e * (steps + 1) * (3 * (circuits + predict) + data + adam))


def bench_case(members: int, device: str):
    """``STEPS`` Adam steps of ``members`` softmax-attention models on their own fresh batches."""
    from workbench.bench import KernelCase

    cfg = Config.quick().replace(steps=STEPS, n_observe=STEPS + 1, device=str(device))
    dev = cfg.torch_device
    H = cfg.n_heads
    members_list = [(cfg.cov, H[i % len(H)], i) for i in range(members)]
    h_max = max(H[i % len(H)] for i in range(members))

    def kernel(ms: list[tuple[str, int, int]]) -> dict[str, torch.Tensor]:
        with single_thread(dev):
            # the fixed-step program only (split_extra=0): the split protocol's per-member tail is a loop by design
            result, _, _ = train_softmax(cfg, ms, (cfg.n_context,), EXP_SOFTMAX, steps=cfg.steps, lr=cfg.lr,
                                         batch_size=cfg.batch_size, n_observe=cfg.n_observe, desc="bench",
                                         split_extra=0)
        out = {k: F.pad(v, (0, 0) * (v.ndim - 2) + (0, h_max - v.shape[1])) for k, v in result.params.items()}
        KQ, OV = md.circuits(out)
        return {**out, "KQ": KQ, "OV": OV, "loss": result.trajectory["loss"].T}

    return KernelCase(
        f"softmax Adam, {STEPS} steps",
        lambda: kernel(members_list),
        lambda i: kernel(members_list[i:i + 1]),
        flops=_flops(cfg, [h for _, h, _ in members_list], STEPS),
    )


LSA_STEPS = 200
"""Exact GD steps of the population-loss kernel."""


def lsa_bench_case(members: int, device: str):
    """``LSA_STEPS`` steps of exact full-batch GD on the closed-form population risk of linear
    self-attention (`simulate.lsa_training`'s kernel): member i starts from its own random init."""
    from workbench.bench import KernelCase
    from workbench.train import GD, train

    from studies.icl_regression import data as dt
    from studies.icl_regression import theory as th

    cfg = Config.quick().replace(device=str(device))
    dev, dtype, d = cfg.torch_device, cfg.torch_dtype, cfg.d
    Sigma = dt.covariance(d, "iso", cfg.rho)
    # member i: seed index 1000 + i of the random-init isotropic LSA stream, all members in one draw
    p0, K0 = md.lsa_init(d, "random", Sigma, dt.stream(cfg.seed, "lsa-init", "iso", "random"),
                         [1000 + i for i in range(members)], device=dev, dtype=dtype)

    def kernel(sl: slice) -> dict[str, torch.Tensor]:
        e = p0[sl].shape[0]
        Sig = Sigma.to(dev, dtype).expand(e, d, d)
        risk = th.LSARisk(Sig, cfg.psi2 * torch.eye(d, dtype=dtype, device=dev).expand(e, d, d), cfg.sigma2, cfg.n_context)
        with single_thread(dev):
            res = train({"p": p0[sl], "K": K0[sl]}, lambda q, step: risk(q["p"], q["K"]), GD(cfg.lsa.lr), LSA_STEPS,
                        observe_at=[0, LSA_STEPS], underflow="ignore")
        return {"p": res.params["p"], "K": res.params["K"], "loss": res.trajectory["loss"].T}

    # per step and member (`theory.LSARisk.__call__`): Omega = K Sigma K^T, two products of
    # (d+1)-sized matrices (~4 (d+1)^3), three matrix-vector products and ~8 elementwise
    # reductions (~14 (d+1)^2); the backward pass costs about twice the forward
    flops = members * LSA_STEPS * 3 * (4 * (d + 1) ** 3 + 14 * (d + 1) ** 2)
    return KernelCase(f"LSA exact GD, {LSA_STEPS} steps", lambda: kernel(slice(None)),
                      lambda i: kernel(slice(i, i + 1)), flops=float(flops))


def bench_cases(members: int, device: str):
    """Both training kernels of the study: online softmax Adam and exact population-loss GD."""
    return [bench_case(members, device), lsa_bench_case(members, device)]
