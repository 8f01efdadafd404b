"""The experiments of the rank-collapse study.  Each function returns named arrays (torch tensors
or numpy) that go into the record; every ensemble (QK scales x seeds, input scales, trials) is one
batched tensor program.  See `studies.rank_collapse.model` for the networks and the conventions."""
from __future__ import annotations

import math
from dataclasses import replace
from itertools import product

import numpy as np
import torch
from torch import Tensor

from workbench.attention import TransformerSpec, init_transformer, transformer_forward
from workbench.linalg import composite_norm, residual_argmin, residual_mean

from studies.rank_collapse.config import Config
from studies.rank_collapse.model import (at_scales, centred_unit, count_clusters, init_weights,
                                         layer_trajectory, path_decomposition, qk_value_gradients,
                                         rank_one_plus, relative_residual, residual_norm, slice_layers,
                                         sphere_flow, stream_generators, tile_members, value_maps,
                                         variant_specs)

VARIANT_KEYS = {"SAN": "san", "SAN+MLP": "san_mlp", "SAN+skip": "san_skip", "full": "full"}
"""Array-name suffix of each Fig. 2 variant."""
SCAN_VARIANTS = ("SA", "SA multi-head", "SA+MLP", "SA+LN", "SA+skip", "full")
SCAN_KEYS = {"SA": "sa", "SA multi-head": "sa_multihead", "SA+MLP": "sa_mlp", "SA+LN": "sa_ln",
             "SA+skip": "sa_skip", "full": "full"}


def argmin_residual_layers(depth: int) -> list[int]:
    """Layers at which the sweep also records the argmin residual of `workbench.linalg`."""
    return sorted({l for l in (0, 1, 2, 3, 4, 6, 8, 12, 24, depth) if l <= depth})


def _randn(generators, shape, dtype) -> Tensor:
    """One draw of ``shape`` per member generator, stacked: (m, *shape), on the CPU."""
    return torch.stack([torch.randn(shape, generator=g, dtype=dtype) for g in generators])


# ----------------------------------------------------------------------------- Fig. 2 analogue
def depth_sweep(cfg: Config) -> dict[str, Tensor]:
    """Relative residual per layer of the four variants for every (QK scale, seed); the
    uniform-attention witness; and the alpha = 1/sqrt(L) depth-scaling runs (same weights)."""
    dev, dt = cfg.torch_device, cfg.torch_dtype
    N, S, n, d = cfg.n_seeds, len(cfg.qk_scale), cfg.n_tokens, cfg.d_model
    L_max = max(cfg.depth, max(cfg.scaling_depths))
    gens = stream_generators(cfg.seed, "sweep", N)
    X0 = _randn(gens, (n, d), dt).to(dev)  # (N, n, d): drawn first, so it does not depend on depth
    base = init_weights(TransformerSpec(depth=L_max, d_model=d, n_heads=cfg.n_heads), gens,
                        value_scale=cfg.value_scale, dtype=dt, device=dev)
    scales = torch.tensor(cfg.qk_scale, dtype=dt, device=dev)
    params = at_scales(base, scales)  # (S*N, L_max, ...)
    X = tile_members(X0, S)  # (S*N, n, d)
    out: dict[str, Tensor] = {"sweep_X": X0, "qk_scale": scales}

    specs = variant_specs(cfg.depth, d, cfg.n_heads, alpha=cfg.alpha, skip=cfg.skip, mlp=cfg.mlp, norm=cfg.norm)
    argmin_layers = argmin_residual_layers(cfg.depth)
    for name, spec in specs.items():
        traj = layer_trajectory(X, slice_layers(params, cfg.depth), spec)
        for key, value in traj.items():
            out[f"sweep_{key}_{VARIANT_KEYS[name]}"] = value.reshape(S, N, -1)
        if name in ("SAN", "full"):
            # the argmin residual (an iterative minimisation) at a few layers only: it is costly
            hidden = torch.stack(transformer_forward(X, slice_layers(params, cfg.depth), spec).hidden, 1)
            H_sel = hidden[:, argmin_layers]  # (S*N, layers, n, d)
            out[f"sweep_rho_argmin_{VARIANT_KEYS[name]}"] = (
                composite_norm(residual_argmin(H_sel)) / composite_norm(H_sel)).reshape(S, N, -1)
    out["sweep_argmin_layers"] = torch.tensor(argmin_layers)

    # Claim 3.1 witness: W_Q = W_K = 0 (uniform attention), skip, the sweep's W_V rescaled.
    W = torch.tensor(cfg.witness_value_scales, dtype=dt, device=dev)
    witness = {k: tile_members(v[:, :cfg.depth], len(W)) for k, v in base.items()}
    witness["W_Q"], witness["W_K"] = torch.zeros_like(witness["W_Q"]), torch.zeros_like(witness["W_K"])
    witness["W_V"] = witness["W_V"] * (W / cfg.value_scale).repeat_interleave(N).reshape(-1, 1, 1, 1, 1)
    Xw = tile_members(X0, len(W))
    skip_spec = specs["SAN+skip"]
    hidden = transformer_forward(Xw, witness, skip_spec).hidden
    drift = (residual_mean(hidden[-1]) - residual_mean(Xw)).abs().amax(dim=(1, 2))
    out["witness_value_scale"] = W
    out["witness_residual_drift"] = drift.reshape(len(W), N)  # max |res(X_L) - res(X_0)|
    out["witness_max_abs"] = hidden[-1].abs().amax(dim=(1, 2)).reshape(len(W), N)  # max |X_L|
    out["witness_rho_skip"] = relative_residual(torch.stack(hidden, 1)).reshape(len(W), N, -1)
    san_one = transformer_forward(Xw, slice_layers(witness, 1), replace(specs["SAN"], depth=1)).output
    out["witness_rho_san_layer1"] = relative_residual(san_one).reshape(len(W), N)

    # Depth scaling (Noci et al.): alpha = 1 over L_max layers vs alpha = 1/sqrt(L) at each L.
    full_skip = replace(specs["full"], skip=True)
    for key, spec in (("san_skip", specs["SAN+skip"]), ("full_skip", full_skip)):
        traj = layer_trajectory(X, params, replace(spec, depth=L_max, branch_scale=1.0))
        out[f"scaling_rho_{key}_alpha1"] = traj["rho"].reshape(S, N, -1)
        out[f"scaling_rho_fro_{key}_alpha1"] = traj["rho_fro"].reshape(S, N, -1)
        rho, rho_fro = [], []
        for L in cfg.scaling_depths:
            traj = layer_trajectory(X, slice_layers(params, L), replace(spec, depth=L, branch_scale=1 / math.sqrt(L)))
            rho.append(traj["rho"][:, -1])
            rho_fro.append(traj["rho_fro"][:, -1])
        out[f"scaling_rho_{key}_invsqrt"] = torch.stack(rho, -1).reshape(S, N, -1)
        out[f"scaling_rho_fro_{key}_invsqrt"] = torch.stack(rho_fro, -1).reshape(S, N, -1)
    out["scaling_depths"] = torch.tensor(cfg.scaling_depths)
    return out


# ----------------------------------------------------------------------------- cubic law
def cubic_scan(cfg: Config) -> dict[str, Tensor]:
    """Output residual against input residual for X = 1 x^T + eps R0 (one and two layers).

    Members (QK scale, seed, eps); every variant of one seed sees the same x, R0 and (for the
    one-head variants) the same layer weights.
    """
    dev, dt = cfg.torch_device, cfg.torch_dtype
    N, S, n, d = cfg.n_seeds, len(cfg.qk_scale), cfg.n_tokens, cfg.d_model
    gens = stream_generators(cfg.seed, "scan", N)
    x = torch.stack([torch.randn(d, generator=g, dtype=dt) for g in gens]).to(dev)  # (N, d)
    R0 = residual_mean(_randn(gens, (n, d), dt).to(dev))  # (N, n, d): centred N(0, 1) entries
    one = init_weights(TransformerSpec(depth=1, d_model=d, n_heads=cfg.n_heads), gens,
                       value_scale=cfg.value_scale, dtype=dt, device=dev)
    multi = init_weights(TransformerSpec(depth=1, d_model=d, n_heads=cfg.scan_heads), gens,
                         value_scale=cfg.value_scale, dtype=dt, device=dev)
    two = init_weights(TransformerSpec(depth=2, d_model=d, n_heads=cfg.n_heads), gens,
                       value_scale=cfg.value_scale, dtype=dt, device=dev)
    scales = torch.tensor(cfg.qk_scale, dtype=dt, device=dev)

    def members(params, eps):
        """(S*N*E, ...) params and inputs, ordered (scale, seed, eps)."""
        E = len(eps)
        p = {k: v.repeat_interleave(E, 0) for k, v in at_scales(params, scales).items()}
        X = tile_members(rank_one_plus(x, R0, eps), S)
        return p, X

    eps = torch.tensor(cfg.epsilons, dtype=dt, device=dev)
    specs = variant_specs(1, d, cfg.n_heads, alpha=cfg.alpha, skip=cfg.skip, mlp=cfg.mlp, norm=cfg.norm)
    scan_specs = {
        "SA": specs["SAN"], "SA multi-head": replace(specs["SAN"], n_heads=cfg.scan_heads),
        "SA+MLP": specs["SAN+MLP"], "SA+LN": replace(specs["SAN"], norm="post"),
        "SA+skip": specs["SAN+skip"], "full": specs["full"],
    }
    out: dict[str, Tensor] = {"scan_x": x, "scan_R0": R0, "scan_eps": eps}
    p_one, X = members(one, eps)
    p_multi, _ = members(multi, eps)
    out["scan_input_residual"] = residual_norm(X).reshape(S, N, -1)
    for name, spec in scan_specs.items():
        p = p_multi if name == "SA multi-head" else p_one
        y = transformer_forward(X, p, spec).output
        out[f"scan_output_residual_{SCAN_KEYS[name]}"] = residual_norm(y).reshape(S, N, -1)
        out[f"scan_output_norm_{SCAN_KEYS[name]}"] = composite_norm(y).reshape(S, N, -1)

    eps2 = torch.tensor(cfg.epsilons_two_layer, dtype=dt, device=dev)
    p_two, X2 = members(two, eps2)
    y2 = transformer_forward(X2, p_two, replace(specs["SAN"], depth=2)).output
    out["scan2_eps"] = eps2
    out["scan2_input_residual"] = residual_norm(X2).reshape(S, N, -1)
    out["scan2_output_residual"] = residual_norm(y2).reshape(S, N, -1)
    out["scan2_output_norm"] = composite_norm(y2).reshape(S, N, -1)
    return out


# ----------------------------------------------------------------------------- explicit bound
def bound_trials(cfg: Config) -> dict[str, Tensor]:
    """One random single-head layer per trial, at random s in [1/4, 4], sigma_v in [1/4, 4] and
    input residual eps in [1e-3, 1] (log-uniform), for every (n, d) pair; the measured residual
    and the ingredients of `theory.explicit_bound`."""
    dev, dt = cfg.torch_device, cfg.torch_dtype
    T = cfg.bound_trials
    cols: dict[str, list[Tensor]] = {k: [] for k in (
        "n", "d", "qk_scale", "value_scale", "eps", "measured", "max_logit_deviation", "residual_norm",
        "value_norm", "A_spectral", "max_row_sq")}
    for group, (n, d) in enumerate(product(cfg.bound_tokens, cfg.bound_widths)):
        gens = stream_generators(cfg.seed + group * T, "bound", T)
        u = torch.stack([torch.rand(3, generator=g, dtype=dt) for g in gens]).to(dev)  # (T, 3)
        s = 0.25 * 16.0 ** u[:, 0]
        sigma_v = 0.25 * 16.0 ** u[:, 1]
        eps = 10.0 ** (-3.0 + 3.0 * u[:, 2])
        x = torch.stack([torch.randn(d, generator=g, dtype=dt) for g in gens]).to(dev)
        R0 = centred_unit(_randn(gens, (n, d), dt).to(dev))
        spec = TransformerSpec(depth=1, d_model=d, n_heads=1)
        p = init_transformer(spec, gens, qk_std=1.0, value_std=1.0, dtype=dt, device=dev)
        p["W_Q"] = p["W_Q"] * s.reshape(-1, 1, 1, 1, 1)
        p["W_K"] = p["W_K"] * s.reshape(-1, 1, 1, 1, 1)
        p["W_V"] = p["W_V"] * sigma_v.reshape(-1, 1, 1, 1, 1)
        X = x[:, None, :] + eps[:, None, None] * R0  # (T, n, d)
        y = transformer_forward(X, p, spec).output
        R = residual_mean(X)
        A = torch.einsum("edk,efk->edf", p["W_Q"][:, 0, 0], p["W_K"][:, 0, 0]) / math.sqrt(spec.head_dim)
        E = torch.einsum("eid,edf,ejf->eij", R, A, R)  # the non-row-constant logit part
        W = value_maps(p, 0)[:, 0]  # (T, d, d)
        cols["n"].append(torch.full((T,), n, dtype=dt))
        cols["d"].append(torch.full((T,), d, dtype=dt))
        cols["qk_scale"].append(s)
        cols["value_scale"].append(sigma_v)
        cols["eps"].append(eps)
        cols["measured"].append(residual_norm(y))
        cols["max_logit_deviation"].append(E.abs().amax(dim=(1, 2)))
        cols["residual_norm"].append(composite_norm(R))
        cols["value_norm"].append(composite_norm(W))
        cols["A_spectral"].append(torch.linalg.matrix_norm(A, ord=2))
        cols["max_row_sq"].append(R.pow(2).sum(-1).amax(-1))
    return {f"bound_{k}": torch.cat([c.to(dev) for c in v]) for k, v in cols.items()}


# ----------------------------------------------------------------------------- paths
def path_experiment(cfg: Config) -> dict[str, Tensor]:
    """The exact path decomposition without and with skips (s = 1, alpha = the config's)."""
    dev, dt = cfg.torch_device, cfg.torch_dtype
    N, n, d = cfg.n_seeds, cfg.n_tokens, cfg.d_model
    gens = stream_generators(cfg.seed, "paths", N)
    X = _randn(gens, (n, d), dt).to(dev)
    spec = TransformerSpec(depth=cfg.path_depth, d_model=d, n_heads=cfg.path_heads, branch_scale=cfg.alpha)
    params = init_transformer(spec, gens, qk_std=1.0, value_std=cfg.value_scale, dtype=dt, device=dev)
    out: dict[str, Tensor] = {"paths_X": X}
    for key, skip in (("noskip", False), ("skip", True)):
        s = replace(spec, skip=skip)
        fwd = transformer_forward(X, params, s)
        dec = path_decomposition(X, params, s, fwd.patterns)
        err = (dec["total"] - fwd.output).abs().amax(dim=(1, 2)) / fwd.output.abs().amax(dim=(1, 2))
        lengths = dec["path_lengths"]
        out[f"paths_rel_error_{key}"] = err
        out[f"paths_count_{key}"] = torch.bincount(lengths, minlength=cfg.path_depth + 1)
        out[f"paths_lengths_{key}"] = lengths
        out[f"paths_rho_{key}"] = dec["path_rho"]
        out[f"paths_length_residual_{key}"] = residual_norm(dec["by_length"])  # (N, L+1)
        out[f"paths_output_rho_{key}"] = relative_residual(fwd.output)
    return out


# ----------------------------------------------------------------------------- gradients
def gradient_experiment(cfg: Config) -> dict[str, Tensor]:
    """|dL/dW_Q|, |dL/dW_K|, |dL/dW_V| for L = <G, f(X)> at X = 1 x^T + eps R0 (one SA layer,
    eps in {0} + the scan grid) and at X = 1 x^T through the full model (every layer)."""
    dev, dt = cfg.torch_device, cfg.torch_dtype
    N, S, n, d = cfg.n_seeds, len(cfg.qk_scale), cfg.n_tokens, cfg.d_model
    gens = stream_generators(cfg.seed, "grad", N)
    x = torch.stack([torch.randn(d, generator=g, dtype=dt) for g in gens]).to(dev)
    R0 = residual_mean(_randn(gens, (n, d), dt).to(dev))  # centred N(0, 1) entries
    G = _randn(gens, (n, d), dt).to(dev)
    one = init_weights(TransformerSpec(depth=1, d_model=d, n_heads=cfg.n_heads), gens,
                       value_scale=cfg.value_scale, dtype=dt, device=dev)
    deep = init_weights(TransformerSpec(depth=cfg.grad_depth, d_model=d, n_heads=cfg.n_heads), gens,
                        value_scale=cfg.value_scale, dtype=dt, device=dev)
    scales = torch.tensor(cfg.qk_scale, dtype=dt, device=dev)
    eps = torch.tensor((0.0,) + cfg.epsilons, dtype=dt, device=dev)
    E = len(eps)
    out: dict[str, Tensor] = {"grad_eps": eps}

    p = {k: v.repeat_interleave(E, 0) for k, v in at_scales(one, scales).items()}
    X = tile_members(rank_one_plus(x, R0, eps), S)
    Gm = tile_members(G.repeat_interleave(E, 0), S)
    spec = TransformerSpec(depth=1, d_model=d, n_heads=cfg.n_heads)
    for k, v in qk_value_gradients(X, Gm, p, spec).items():
        out[f"grad_one_{k}"] = v[:, 0].reshape(S, N, E)

    full = variant_specs(cfg.grad_depth, d, cfg.n_heads, alpha=cfg.alpha, skip=cfg.skip, mlp=cfg.mlp, norm=cfg.norm)["full"]
    pd = at_scales(deep, scales)
    for key, Xd in (("collapsed", x[:, None, :].expand(N, n, d)), ("generic", x[:, None, :] + R0)):
        grads = qk_value_gradients(tile_members(Xd, S), tile_members(G, S), pd, full)
        for k, v in grads.items():
            out[f"grad_deep_{key}_{k}"] = v.reshape(S, N, -1)
    return out


# ----------------------------------------------------------------------------- Noci et al.
def noci_monte_carlo(cfg: Config, chunk: int = 500) -> dict[str, Tensor]:
    """||m_l||^2 / ||m_0||^2 under uniform attention with skips, alpha in {1, 1/sqrt(L)}, for
    ``noci_samples`` independent networks (drawn in chunks to bound memory; each member has its
    own generator, so chunking does not change the numbers)."""
    dev, dt = cfg.torch_device, cfg.torch_dtype
    L, n, d = cfg.noci_depth, cfg.n_tokens, cfg.d_model
    alphas = (1.0, 1.0 / math.sqrt(L))
    spec = TransformerSpec(depth=L, d_model=d, n_heads=cfg.n_heads, skip=True)
    gens = stream_generators(cfg.seed, "noci", cfg.noci_samples)
    ratio = {a: [] for a in alphas}
    drift = {a: [] for a in alphas}
    for start in range(0, cfg.noci_samples, chunk):
        g = gens[start:start + chunk]
        X = _randn(g, (n, d), dt).to(dev)
        p = init_transformer(spec, g, qk_std=0.0, value_std=cfg.value_scale, dtype=dt, device=dev)
        m0 = X.mean(dim=1).pow(2).sum(-1)  # (m,)
        for a in alphas:
            hidden = torch.stack(transformer_forward(X, p, replace(spec, branch_scale=a)).hidden, 1)  # (m, L+1, n, d)
            ratio[a].append(hidden.mean(dim=2).pow(2).sum(-1) / m0[:, None])
            drift[a].append((residual_mean(hidden[:, -1]) - residual_mean(X)).abs().amax(dim=(1, 2))
                            / hidden[:, -1].abs().amax(dim=(1, 2)))
    return {
        "noci_alphas": torch.tensor(alphas, dtype=dt),
        "noci_mean_ratio": torch.stack([torch.cat(ratio[a]) for a in alphas]),  # (2, samples, L+1)
        "noci_residual_drift": torch.stack([torch.cat(drift[a]) for a in alphas]),  # (2, samples)
    }


# ----------------------------------------------------------------------------- Geshkovski et al.
def clustering(cfg: Config, progress=None) -> dict[str, Tensor]:
    """Sphere dynamics (SA) for every (beta, seed) from uniform random starts."""
    dev, dt = cfg.torch_device, cfg.torch_dtype
    N, B = cfg.n_seeds, len(cfg.cluster_betas)
    gens = stream_generators(cfg.seed, "cluster", N)
    x0 = _randn(gens, (cfg.cluster_tokens, cfg.cluster_dim), dt).to(dev)
    x0 = x0 / x0.norm(dim=-1, keepdim=True)
    beta = torch.tensor(cfg.cluster_betas, dtype=dt, device=dev).repeat_interleave(N)
    n_steps = int(round(cfg.cluster_time / cfg.cluster_step))
    flow = sphere_flow(tile_members(x0, B), beta, cfg.cluster_step, n_steps, progress)
    return {
        "cluster_x0": x0,
        "cluster_final": flow["final"].reshape(B, N, *x0.shape[1:]),
        "cluster_time": torch.arange(n_steps + 1, dtype=dt) * cfg.cluster_step,
        "cluster_energy": flow["energy"].reshape(B, N, -1),
        "cluster_min_cosine": flow["min_cosine"].reshape(B, N, -1),
        "cluster_count": count_clusters(flow["final"]).reshape(B, N),
    }


# ----------------------------------------------------------------------------- two-token toy
def toy_grid(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """theta in (0, pi) (token directions (cos theta, sin theta)) and kappa (logit strength)."""
    G = cfg.toy_grid
    theta = np.pi * (np.arange(G) + 0.5) / G
    kappa = np.logspace(-1, 2.5, G)
    return theta, kappa


def two_token(cfg: Config) -> dict[str, Tensor]:
    """The two-token, one-dimensional SAN through the general ``transformer_forward``:
    X = (cos theta, sin theta)^T, W_Q = W_K = sqrt(kappa), W_V = W_O = 1 (logits kappa x_i x_j)."""
    dev, dt = cfg.torch_device, cfg.torch_dtype
    theta, kappa = toy_grid(cfg)
    th, ka = np.meshgrid(theta, kappa, indexing="ij")  # (G_theta, G_kappa)
    X = torch.tensor(np.stack([np.cos(th), np.sin(th)], -1).reshape(-1, 2, 1), dtype=dt, device=dev)
    root = torch.tensor(np.sqrt(ka).reshape(-1), dtype=dt, device=dev).reshape(-1, 1, 1, 1, 1)
    one = torch.ones_like(root)
    params = {"W_Q": root, "W_K": root, "W_V": one, "W_O": one}  # (e, l=1, h=1, 1, 1)
    out: dict[str, Tensor] = {"toy_theta": torch.tensor(theta), "toy_kappa": torch.tensor(kappa)}
    for key, skip in (("noskip", False), ("skip", True)):
        spec = TransformerSpec(depth=cfg.toy_depth, d_model=1, n_heads=1, skip=skip, branch_scale=1.0, tied=True)
        hidden = torch.stack(transformer_forward(X, params, spec).hidden, 1)  # (e, L+1, 2, 1)
        out[f"toy_states_{key}"] = hidden[..., 0].reshape(len(theta), len(kappa), cfg.toy_depth + 1, 2)
    return out
