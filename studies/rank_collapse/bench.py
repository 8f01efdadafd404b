"""The rank-collapse kernel for ``workbench bench``: the depth sweep's forward passes.

`simulate.depth_sweep` runs the four Fig. 2 networks (SAN, SAN+MLP, SAN+skip, full) of Dong et
al. (2021) over the ensemble (QK scale, seed) and reduces every hidden state to its relative
residual (`model.layer_trajectory`).  Here that is one call per variant on ``members`` members at
the spec's sizes n = 16 tokens, d = 32, depth L = 12, one head: member j is (scale
qk_scale[j // n_seeds], seed j % n_seeds) of `model.at_scales`' scale-major order, the first
``members`` of ceil(members / S) seeds x S scales.  Weights and inputs are drawn beforehand (from
the sweep's streams, one call per tensor), so only the forward passes are timed.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from workbench.attention import TransformerSpec
from workbench.runtime import single_thread

from studies.rank_collapse.config import Config
from studies.rank_collapse.model import (at_scales, init_weights, layer_trajectory, experiment_stream,
                                         tile_members, variant_specs)

N_TOKENS, D_MODEL, DEPTH = 16, 32, 12
"""The spec's sizes (n, d, L) of the timed forward pass."""


def _forward_flops(spec: TransformerSpec, n: int) -> float:
    """Multiply-adds x 2 of one member's forward pass through ``spec`` (matrix products only, plus
    a small allowance for softmax, LayerNorm, residual adds and the residual statistics)."""
    d, h, k = spec.d_model, spec.n_heads, spec.head_dim
    attn = h * (3 * 2 * n * d * k + 2 * 2 * n * n * k + 2 * n * k * d) + 5 * h * n * n
    mlp = 2 * 2 * n * d * (spec.mlp_ratio * d) + n * spec.mlp_ratio * d if spec.mlp else 0
    norms = (2 if spec.mlp else 1) * 8 * n * d if spec.norm != "none" else 0
    adds = (2 if spec.mlp else 1) * 2 * n * d if spec.skip else 0
    stats = 12 * n * d  # centring and the two composite norms of the layer's output
    return float(spec.depth * (attn + mlp + norms + adds + stats))


def bench_case(members: int, device: str):
    """All four Fig. 2 variants at depth 12 on ``members`` (scale, seed) members."""
    from workbench.bench import KernelCase

    base_cfg = Config.smoke()
    S = len(base_cfg.qk_scale)
    seeds = math.ceil(members / S)
    cfg = base_cfg.replace(n_seeds=seeds, n_tokens=N_TOKENS, d_model=D_MODEL, depth=DEPTH, device=str(device))
    dev, dt = cfg.torch_device, cfg.torch_dtype
    st = experiment_stream(cfg.seed, "sweep")
    X0 = st.child("X").normal((N_TOKENS, D_MODEL), members=seeds, device=dev, dtype=dt)
    weights = init_weights(TransformerSpec(depth=DEPTH, d_model=D_MODEL, n_heads=cfg.n_heads), st.child("weights"), seeds,
                           value_scale=cfg.value_scale, dtype=dt, device=dev)
    params = {k: v[:members].contiguous() for k, v in at_scales(weights, torch.tensor(cfg.qk_scale, dtype=dt)).items()}
    X = tile_members(X0, S)[:members].contiguous()
    specs = variant_specs(DEPTH, D_MODEL, cfg.n_heads, alpha=cfg.alpha, skip=cfg.skip, mlp=cfg.mlp, norm=cfg.norm)

    def kernel(X: Tensor, p: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {}
        with single_thread(dev), torch.no_grad():
            for name, spec in specs.items():
                for key, value in layer_trajectory(X, p, spec).items():  # each (e, L + 1)
                    out[f"{key}_{name}"] = value
        return out

    flops = members * sum(_forward_flops(spec, N_TOKENS) for spec in specs.values())
    return KernelCase(
        "depth-12 forward, 4 variants",
        lambda: kernel(X, params),
        lambda i: kernel(X[i:i + 1], {k: v[i:i + 1] for k, v in params.items()}),
        flops=flops,
    )
