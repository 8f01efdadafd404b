"""The experiments of the rank-collapse study: one function per phase, each returning a typed result.

Every ensemble (QK scales x seeds, input scales, trials) is one batched tensor program; see
`studies.rank_collapse.model` for the networks and the scale-major member order.  `run` is the
list of phases; `workbench.phases.run_phases` owns threads, autograd, progress and timing, and
stores each result as ``<phase>.<field>[.<key>]`` in the record.  Every result holds the inputs
and the sampled weights its measurements are computed from, so a record can be re-verified from its
arrays alone: the witness and the depth-scaling runs reuse the sweep's saved weights, the two-token
weights are sqrt(kappa) and 1, the sphere model has none, and only the Noci Monte Carlo's networks
and the regime map's are not saved (see `Noci`, `Regime`: the regime map's are redrawn from their
stream, bit for bit, by the record test).

Randomness: every draw is a `workbench.streams.Stream` draw, experiment ``x`` from
``model.experiment_stream(cfg.seed, x)`` and its named children, member i from member i's
sub-stream, so member i of an ensemble is member i of any larger one.

Shapes: N seeds, S QK scales, n tokens, d width, h heads, k = d / h, L layers, E input scales.
Weights follow `workbench.attention.init_transformer`: W_Q, W_K, W_V (N, L, h, d, k), W_O
(N, L, h, k, d), W_in (N, L, d, 4d), W_out (N, L, 4d, d).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from workbench.attention import TransformerSpec, init_transformer, transformer_forward
from workbench.errors import DivergenceError
from workbench.phases import Phase, flatten, run_phases
from workbench.record import Record

from studies.rank_collapse.config import Config
from studies.rank_collapse.model import (at_scales, centred_unit, count_clusters, init_weights, layer_trajectory,
                                         layer_norms, path_decomposition, qk_value_gradients, rank_one_plus,
                                         san_forward_extended, san_residuals_extended,
                                         slice_layers, sphere_flow, experiment_stream, tile_members,
                                         uniform_attention_weights, value_maps,
                                         variant_specs)
from studies.rank_collapse.trained import Trained, trained_models
from studies.rank_collapse.norms import (composite_norm, relative_residual, residual_argmin, residual_mean,
                                         residual_norm)

VARIANT_KEYS = {"SAN": "san", "SAN+MLP": "san_mlp", "SAN+skip": "san_skip", "full": "full"}
"""Record key of each Fig. 2 variant."""
SCAN_KEYS = {"SA": "sa", "SA multi-head": "sa_multihead", "SA+MLP": "sa_mlp", "SA+LN": "sa_ln",
             "SA+skip": "sa_skip", "full": "full"}
"""Record key of each variant of the one-layer scan."""
ATTENTION = ("W_Q", "W_K", "W_V", "W_O")


# ----------------------------------------------------------------------------- results
@dataclass
class Sweep:
    """The depth sweep (Dong et al. Fig. 2): the four variants on shared weights for every (s, seed)."""

    X: np.ndarray
    """(N, n, d) inputs X_0, one per seed, shared by every scale and variant."""
    qk_scale: np.ndarray
    """(S,) the QK scales s."""
    weights: dict[str, np.ndarray]
    """The sampled weights at unit QK scale, `weight_depth` layers (the sweep uses the first
    ``depth``); member (s_j, seed i) has W_Q, W_K multiplied by s_j (`model.at_scales`)."""
    rho: dict[str, np.ndarray]
    """Variant -> (S, N, L+1) relative residual rho_l = ||res(X_l)||_{1,inf} / ||X_l||_{1,inf}."""
    rho_fro: dict[str, np.ndarray]
    """Variant -> (S, N, L+1) the Frobenius relative residual."""
    residual: dict[str, np.ndarray]
    """Variant -> (S, N, L+1) the absolute residual ||res(X_l)||_{1,inf}."""
    norm: dict[str, np.ndarray]
    """Variant -> (S, N, L+1) ||X_l||_{1,inf}."""
    rho_argmin: dict[str, np.ndarray]
    """'san', 'full' -> (S, N, A) the relative argmin residual at ``argmin_layers``."""
    argmin_layers: np.ndarray
    """(A,) the layers of ``rho_argmin``."""


@dataclass
class Witness:
    """Claim 3.1's witness: W_Q = W_K = 0 (uniform attention) with skips, the sweep's W_V rescaled."""

    value_scale: np.ndarray
    """(W,) the sigma_v values; W_V is the sweep's times sigma_v / value_scale."""
    residual_drift: np.ndarray
    """(W, N) max |res(X_L) - res(X_0)|."""
    max_abs: np.ndarray
    """(W, N) max |X_L|."""
    rho_skip: np.ndarray
    """(W, N, L+1) rho_l with skips."""
    rho_san_layer1: np.ndarray
    """(W, N) rho_1 of the same uniform attention without skips."""


@dataclass
class Scaling:
    """Depth scaling (Noci et al.): alpha = 1 over ``weight_depth`` layers against alpha = 1/sqrt(L) at each L."""

    depths: np.ndarray
    """(D,) the depths L of the 1/sqrt(L) runs."""
    rho: dict[str, np.ndarray]
    """'{san_skip,full_skip}_alpha1' -> (S, N, L_w+1) and '..._invsqrt' -> (S, N, D) (rho at the last layer)."""
    rho_fro: dict[str, np.ndarray]
    """The same for the Frobenius relative residual."""


@dataclass
class TwoLayerScan:
    """Two composed SA layers at X = 1 x^T + eps R0 (expected slope 9)."""

    eps: np.ndarray
    """(E2,) input scales."""
    weights: dict[str, np.ndarray]
    """The two layers' attention weights at unit QK scale, (N, 2, ...)."""
    input_residual: np.ndarray
    """(S, N, E2) ||res(X)||_{1,inf}."""
    output_residual: np.ndarray
    """(S, N, E2) ||res(f(X))||_{1,inf}."""
    output_norm: np.ndarray
    """(S, N, E2) ||f(X)||_{1,inf}."""


@dataclass
class Scan:
    """The cubic law: output residual against input residual for X = 1 x^T + eps R0, one layer."""

    x: np.ndarray
    """(N, d) the token-uniform part."""
    R0: np.ndarray
    """(N, n, d) the centred residual direction."""
    eps: np.ndarray
    """(E,) input scales."""
    weights: dict[str, np.ndarray]
    """The single-head layer at unit QK scale, (N, 1, ...): every variant but the multi-head one."""
    weights_multihead: dict[str, np.ndarray]
    """The multi-head layer's attention weights at unit QK scale, (N, 1, heads, ...)."""
    input_residual: np.ndarray
    """(S, N, E) ||res(X)||_{1,inf}."""
    output_residual: dict[str, np.ndarray]
    """Variant -> (S, N, E) ||res(f(X))||_{1,inf}."""
    output_norm: dict[str, np.ndarray]
    """Variant -> (S, N, E) ||f(X)||_{1,inf}."""
    two_layer: TwoLayerScan
    """The two-layer scan on the same x and R0."""


@dataclass
class Precision:
    """The pure SAN in extended precision (`model.san_forward_extended`) beside the same networks in float64."""

    X: np.ndarray
    """(R, n, d) inputs X_0, one per network."""
    weights: dict[str, np.ndarray]
    """The attention weights as run (QK scale applied), (R, L, 1, ...)."""
    log10_rho: np.ndarray
    """(R, L+1) log10 rho_l at ``precision.digits`` digits."""
    rho_float64: np.ndarray
    """(R, L+1) rho_l of the same networks through `transformer_forward` in float64."""


@dataclass
class Bound:
    """Random single-head layers and the ingredients of `theory.explicit_bound`; one entry per trial."""

    n: np.ndarray
    """(T,) tokens n of the trial."""
    d: np.ndarray
    """(T,) width d."""
    qk_scale: np.ndarray
    """(T,) s, log-uniform in [1/4, 4]."""
    value_scale: np.ndarray
    """(T,) sigma_v, log-uniform in [1/4, 4]."""
    eps: np.ndarray
    """(T,) input residual scale, log-uniform in [1e-3, 1]."""
    measured: np.ndarray
    """(T,) ||res(SA(X))||_{1,inf}."""
    max_logit_deviation: np.ndarray
    """(T,) eps_E = max_ij |(R A R^T)_ij|."""
    residual_norm: np.ndarray
    """(T,) ||R||_{1,inf} of the centred input."""
    value_norm: np.ndarray
    """(T,) ||W_V W_O||_{1,inf}."""
    A_spectral: np.ndarray
    """(T,) ||A||_2 of A = W_Q W_K^T / sqrt(d)."""
    max_row_sq: np.ndarray
    """(T,) max_i ||R_i||^2."""
    X: dict[str, np.ndarray]
    """'n{n}_d{d}' -> (trials, n, d) the inputs of that group."""
    weights: dict[str, dict[str, np.ndarray]]
    """'n{n}_d{d}' -> the layers as run (s and sigma_v applied), (trials, 1, 1, d, d) each."""


@dataclass
class Composed:
    """Pure SANs on X = 1 x^T + eps R0 in extended precision, and the weight norms of the composed
    bound (`theory.composed_bound_log10`); keys 'h<H>' (one per head count), R networks, E input scales."""

    eps: np.ndarray
    """(E,) input residuals ||res(X_0)||_{1,inf} (R0 is centred with unit composite norm)."""
    X: dict[str, np.ndarray]
    """(R, E, n, d) the inputs."""
    weights: dict[str, dict[str, np.ndarray]]
    """The networks as run (s and sigma_v applied), (R, L, H, ...)."""
    log10_residual: dict[str, np.ndarray]
    """(R, E, L+1) log10 ||res(X_l)||_{1,inf} at ``composed.digits`` digits (-digits where it rounds to 0)."""
    log10_rho: dict[str, np.ndarray]
    """(R, E, L+1) log10 rho_l = log10(||res(X_l)||_{1,inf} / ||X_l||_{1,inf}) (-digits at the floor)."""
    qk_norm: dict[str, np.ndarray]
    """(R, L, H) a = ||W_Q W_K^T||_2 / sqrt(d_head) of every layer and head (float64)."""
    value_norm_1: dict[str, np.ndarray]
    """(R, L, H) ||W_V W_O||_1."""
    value_norm_inf: dict[str, np.ndarray]
    """(R, L, H) ||W_V W_O||_inf."""


@dataclass
class Paths:
    """The exact path decomposition (Thm 2.1 without skips, Claim 3.1 with), keyed 'noskip' / 'skip'."""

    X: np.ndarray
    """(N, n, d) inputs."""
    weights: dict[str, np.ndarray]
    """The layers at QK scale 1, (N, L, H, ...)."""
    rel_error: dict[str, np.ndarray]
    """(N,) max |sum over paths - forward| / max |forward|."""
    count: dict[str, np.ndarray]
    """(L+1,) number of paths of each length."""
    lengths: dict[str, np.ndarray]
    """(P,) length of each path."""
    rho: dict[str, np.ndarray]
    """(N, P) relative residual of each single path term."""
    length_residual: dict[str, np.ndarray]
    """(N, L+1) ||res||_{1,inf} of the sum of the paths of each length."""
    output_rho: dict[str, np.ndarray]
    """(N,) rho of the forward output."""


@dataclass
class Gradients:
    """|dL/dW| (Frobenius, per layer) of L = <G, f(X)> near and at a collapsed input X = 1 x^T."""

    x: np.ndarray
    """(N, d) the token-uniform part."""
    R0: np.ndarray
    """(N, n, d) the centred residual direction."""
    G: np.ndarray
    """(N, n, d) the read-out of the loss."""
    eps: np.ndarray
    """(E+1,) input scales, 0 first."""
    weights_one: dict[str, np.ndarray]
    """The single SA layer's attention weights at unit QK scale, (N, 1, ...)."""
    weights_deep: dict[str, np.ndarray]
    """The full model's weights at unit QK scale, (N, grad.depth, ...)."""
    one: dict[str, np.ndarray]
    """'W_Q', 'W_K', 'W_V' -> (S, N, E+1) one SA layer at X = 1 x^T + eps R0."""
    deep_collapsed: dict[str, np.ndarray]
    """'W_Q', 'W_K', 'W_V' -> (S, N, grad.depth) the full model at X = 1 x^T, per layer."""
    deep_generic: dict[str, np.ndarray]
    """The same at X = 1 x^T + R0."""


@dataclass
class Noci:
    """Uniform attention with skips (Noci et al.): the token mean's growth over independent networks.

    The networks are not saved: their W_V and W_O (W_Q = W_K = 0) are 2 L d^2 numbers each, 196 kB at
    the default sizes, so 196 MB at quick's 1000 networks and 2 GB at paper's 10^4.  What the checks
    read is the per-network trajectory below: the Monte Carlo's samples.
    """

    alphas: np.ndarray
    """(2,) the branch scales 1 and 1/sqrt(L)."""
    mean_ratio: np.ndarray
    """(2, samples, L+1) ||m_l||^2 / ||m_0||^2 of the token mean m_l."""
    residual_drift: np.ndarray
    """(2, samples) max |res(X_L) - res(X_0)| / max |X_L|."""


@dataclass
class Regime:
    """SAN+skip (no MLP, no LayerNorm) over the grid (alpha, sigma_v, s) x seeds, every layer.

    Shapes (A, V, S, N, L+1) or (A, V, S, N, L): A alphas, V value scales, S QK scales, N seeds.
    Cell (a, v, s) uses seed i's unit-scale weights with W_Q, W_K times s and W_V times sigma_v
    (drawn from the stream ``rank-collapse/regime``, child ``"weights"``; they are not saved: the
    stream redraws them bit for bit from the config, see the record test)."""

    X: np.ndarray
    """(N, n, d) inputs X_0."""
    residual: np.ndarray
    """(A, V, S, N, L+1) ||res(X_l)||_F of SAN+skip."""
    rho_fro: np.ndarray
    """(A, V, S, N, L+1) ||res(X_l)||_F / ||X_l||_F of SAN+skip."""
    san_residual: np.ndarray
    """(A, V, S, N, L+1) ||res(X_l)||_F of the same layers without the skip (alpha = 1, the pure SAN)."""
    contraction: np.ndarray
    """(A, V, S, N, L) k_l = alpha ||(I-J) P_l (I-J)||_2 ||W_V,l W_O,l||_2 of SAN+skip's layer l: the
    residual obeys (1 - k_l) ||R_l||_F <= ||R_(l+1)||_F <= (1 + k_l) ||R_l||_F (`theory.residual_band`)."""


@dataclass
class Clustering:
    """The Geshkovski et al. sphere dynamics for every (beta, seed); it has no weights."""

    x0: np.ndarray
    """(N, n, d) the unit starting tokens."""
    final: np.ndarray
    """(B, N, n, d) the tokens at time T."""
    time: np.ndarray
    """(steps+1,) the times."""
    energy: np.ndarray
    """(B, N, steps+1) E_beta along the flow."""
    min_cosine: np.ndarray
    """(B, N, steps+1) the smallest pairwise cosine."""
    count: np.ndarray
    """(B, N) clusters at time T (cosine > 0.999 components)."""


@dataclass
class TwoToken:
    """The two-token, one-dimensional SAN over the (theta, kappa) grid; W_Q = W_K = sqrt(kappa), W_V = W_O = 1."""

    theta: np.ndarray
    """(G,) token directions: X = (cos theta, sin theta)^T."""
    kappa: np.ndarray
    """(G,) logit strengths."""
    states: dict[str, np.ndarray]
    """'noskip', 'skip' -> (G, G, L+1, 2) the two tokens at every layer."""


# ----------------------------------------------------------------------------- helpers
def _np(value: Tensor | dict[str, Tensor]):
    """A tensor (or a dict of them) as numpy on the CPU."""
    if isinstance(value, dict):
        return {k: _np(v) for k, v in value.items()}
    return value.detach().cpu().numpy()


def _tensors(arrays: dict[str, np.ndarray], cfg: Config) -> dict[str, Tensor]:
    """Saved weights back on the run's device (the same bits)."""
    return {k: torch.from_numpy(v).to(cfg.torch_device) for k, v in arrays.items()}


def _finite(phase: str, result):
    """``result``, or a `DivergenceError` keeping it: every float of this study is finite in a healthy
    run, and a NaN or inf means the forward pass overflowed (a weight scale too large for the depth),
    which is a failed run, not a failed check."""
    bad = [k.partition(".")[2] for k, v in flatten(phase, result).items()
           if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if bad:
        raise DivergenceError(f"non-finite values (overflow in the forward pass) in {bad[:6]}"
                              + (f" and {len(bad) - 6} more" if len(bad) > 6 else ""), partial=result)
    return result


def _sweep_specs(cfg: Config, depth: int) -> dict[str, TransformerSpec]:
    return variant_specs(depth, cfg.d_model, cfg.n_heads, alpha=cfg.alpha, skip=cfg.skip, mlp=cfg.mlp, norm=cfg.norm)


# ----------------------------------------------------------------------------- Fig. 2 analogue
def depth_sweep(cfg: Config) -> Sweep:
    """Relative residual per layer of the four variants for every (QK scale, seed)."""
    dev, dt = cfg.torch_device, cfg.torch_dtype
    N, S, n, d = cfg.n_seeds, len(cfg.qk_scale), cfg.n_tokens, cfg.d_model
    st = experiment_stream(cfg.seed, "sweep")
    X0 = st.child("X").normal((n, d), members=N, device=dev, dtype=dt)  # (N, n, d)
    base = init_weights(TransformerSpec(depth=cfg.weight_depth, d_model=d, n_heads=cfg.n_heads), st.child("weights"), N,
                        value_scale=cfg.value_scale, dtype=dt, device=dev)
    scales = torch.tensor(cfg.qk_scale, dtype=dt, device=dev)
    params = slice_layers(at_scales(base, scales), cfg.depth)  # (S*N, L, ...)
    X = tile_members(X0, S)  # (S*N, n, d)

    traj: dict[str, dict[str, np.ndarray]] = {"rho": {}, "rho_fro": {}, "residual": {}, "norm": {}}
    rho_argmin = {}
    for name, spec in _sweep_specs(cfg, cfg.depth).items():
        key = VARIANT_KEYS[name]
        for quantity, value in layer_trajectory(X, params, spec).items():
            traj[quantity][key] = _np(value.reshape(S, N, -1))
        if name in ("SAN", "full"):
            # the argmin residual (an iterative minimisation) at a few layers only: it is costly
            hidden = torch.stack(transformer_forward(X, params, spec).hidden, 1)
            H_sel = hidden[:, cfg.argmin_layers]  # (S*N, layers, n, d)
            rho_argmin[key] = _np((composite_norm(residual_argmin(H_sel)) / composite_norm(H_sel)).reshape(S, N, -1))
    return _finite("sweep", Sweep(X=_np(X0), qk_scale=_np(scales), weights=_np(base), **traj, rho_argmin=rho_argmin,
                                  argmin_layers=np.array(cfg.argmin_layers, dtype=np.int64)))


def uniform_witness(cfg: Config, sweep: Sweep) -> Witness:
    """Claim 3.1's witness on the sweep's inputs and weights: with W_Q = W_K = 0 and skips the
    residual never changes; without skips one layer makes the input rank one."""
    dt, N = cfg.torch_dtype, cfg.n_seeds
    X0, base = torch.from_numpy(sweep.X).to(cfg.torch_device), _tensors(sweep.weights, cfg)
    W = torch.tensor(cfg.witness_value_scales, dtype=dt, device=cfg.torch_device)
    witness = {k: tile_members(v[:, :cfg.depth], len(W)) for k, v in base.items()}  # (W*N, L, ...)
    witness["W_Q"], witness["W_K"] = torch.zeros_like(witness["W_Q"]), torch.zeros_like(witness["W_K"])
    witness["W_V"] = witness["W_V"] * (W / cfg.value_scale).repeat_interleave(N).reshape(-1, 1, 1, 1, 1)
    Xw = tile_members(X0, len(W))
    specs = _sweep_specs(cfg, cfg.depth)
    hidden = transformer_forward(Xw, witness, specs["SAN+skip"]).hidden
    drift = (residual_mean(hidden[-1]) - residual_mean(Xw)).abs().amax(dim=(1, 2))
    san_one = transformer_forward(Xw, slice_layers(witness, 1), replace(specs["SAN"], depth=1)).output
    return _finite("witness", Witness(
        value_scale=_np(W),
        residual_drift=_np(drift.reshape(len(W), N)),
        max_abs=_np(hidden[-1].abs().amax(dim=(1, 2)).reshape(len(W), N)),
        rho_skip=_np(relative_residual(torch.stack(hidden, 1)).reshape(len(W), N, -1)),
        rho_san_layer1=_np(relative_residual(san_one).reshape(len(W), N))))


def depth_scaling(cfg: Config, sweep: Sweep) -> Scaling:
    """Noci et al.'s depth scaling on the sweep's inputs and weights: SAN+skip and the full model
    with skips, alpha = 1 over every drawn layer and alpha = 1/sqrt(L) at each of ``scaling_depths``."""
    dev, dt = cfg.torch_device, cfg.torch_dtype
    N, S = cfg.n_seeds, len(cfg.qk_scale)
    X0, base = torch.from_numpy(sweep.X).to(dev), _tensors(sweep.weights, cfg)
    params = at_scales(base, torch.tensor(cfg.qk_scale, dtype=dt, device=dev))  # (S*N, L_w, ...)
    X = tile_members(X0, S)
    specs = _sweep_specs(cfg, cfg.depth)
    rho, rho_fro = {}, {}
    for key, spec in (("san_skip", specs["SAN+skip"]), ("full_skip", replace(specs["full"], skip=True))):
        traj = layer_trajectory(X, params, replace(spec, depth=cfg.weight_depth, branch_scale=1.0))
        rho[f"{key}_alpha1"] = _np(traj["rho"].reshape(S, N, -1))
        rho_fro[f"{key}_alpha1"] = _np(traj["rho_fro"].reshape(S, N, -1))
        last, last_fro = [], []
        for L in cfg.scaling_depths:
            traj = layer_trajectory(X, slice_layers(params, L), replace(spec, depth=L, branch_scale=1 / math.sqrt(L)))
            last.append(traj["rho"][:, -1])
            last_fro.append(traj["rho_fro"][:, -1])
        rho[f"{key}_invsqrt"] = _np(torch.stack(last, -1).reshape(S, N, -1))
        rho_fro[f"{key}_invsqrt"] = _np(torch.stack(last_fro, -1).reshape(S, N, -1))
    return _finite("scaling", Scaling(depths=np.array(cfg.scaling_depths, dtype=np.int64), rho=rho, rho_fro=rho_fro))


# ----------------------------------------------------------------------------- cubic law
def cubic_scan(cfg: Config) -> Scan:
    """Output residual against input residual for X = 1 x^T + eps R0 (one and two layers).

    Members (QK scale, seed, eps); every variant of one seed sees the same x, R0 and (for the
    one-head variants) the same layer weights.
    """
    sc, dev, dt = cfg.scan, cfg.torch_device, cfg.torch_dtype
    N, S, n, d = cfg.n_seeds, len(sc.qk_scale), sc.n_tokens, sc.d_model
    st = experiment_stream(cfg.seed, "scan")
    x = st.child("x").normal((d,), members=N, device=dev, dtype=dt)  # (N, d)
    R0 = residual_mean(st.child("R0").normal((n, d), members=N, device=dev, dtype=dt))  # (N, n, d): centred N(0, 1) entries
    one = init_weights(TransformerSpec(depth=1, d_model=d, n_heads=sc.n_heads), st.child("one"), N,
                       value_scale=sc.value_scale, dtype=dt, device=dev)
    multi = init_weights(TransformerSpec(depth=1, d_model=d, n_heads=sc.heads), st.child("multi"), N,
                         value_scale=sc.value_scale, dtype=dt, device=dev)
    two = init_weights(TransformerSpec(depth=2, d_model=d, n_heads=sc.n_heads), st.child("two"), N,
                       value_scale=sc.value_scale, dtype=dt, device=dev)
    scales = torch.tensor(sc.qk_scale, dtype=dt, device=dev)

    def members(params, eps):
        """(S*N*E, ...) params and inputs, ordered (scale, seed, eps)."""
        E = len(eps)
        p = {k: v.repeat_interleave(E, 0) for k, v in at_scales(params, scales).items()}
        X = tile_members(rank_one_plus(x, R0, eps), S)
        return p, X

    eps = torch.tensor(sc.epsilons, dtype=dt, device=dev)
    specs = variant_specs(1, d, sc.n_heads, alpha=sc.branch_scale, skip=sc.skip, mlp=sc.mlp, norm=sc.norm)
    scan_specs = {
        "SA": specs["SAN"], "SA multi-head": replace(specs["SAN"], n_heads=sc.heads),
        "SA+MLP": specs["SAN+MLP"], "SA+LN": replace(specs["SAN"], norm="post"),
        "SA+skip": specs["SAN+skip"], "full": specs["full"],
    }
    p_one, X = members(one, eps)
    p_multi, _ = members(multi, eps)
    output_residual, output_norm = {}, {}
    for name, spec in scan_specs.items():
        y = transformer_forward(X, p_multi if name == "SA multi-head" else p_one, spec).output
        output_residual[SCAN_KEYS[name]] = _np(residual_norm(y).reshape(S, N, -1))
        output_norm[SCAN_KEYS[name]] = _np(composite_norm(y).reshape(S, N, -1))

    eps2 = torch.tensor(sc.epsilons_two_layer, dtype=dt, device=dev)
    p_two, X2 = members(two, eps2)
    y2 = transformer_forward(X2, p_two, replace(specs["SAN"], depth=2)).output
    two_layer = TwoLayerScan(eps=_np(eps2), weights=_np({k: two[k] for k in ATTENTION}),
                             input_residual=_np(residual_norm(X2).reshape(S, N, -1)),
                             output_residual=_np(residual_norm(y2).reshape(S, N, -1)),
                             output_norm=_np(composite_norm(y2).reshape(S, N, -1)))
    return _finite("scan", Scan(
        x=_np(x), R0=_np(R0), eps=_np(eps), weights=_np(one), weights_multihead=_np({k: multi[k] for k in ATTENTION}),
        input_residual=_np(residual_norm(X).reshape(S, N, -1)), output_residual=output_residual,
        output_norm=output_norm, two_layer=two_layer))


# ----------------------------------------------------------------------------- extended precision
def extended_precision(cfg: Config) -> Precision:
    """The pure SAN at ``precision.digits`` digits, so that rho_l can be followed through the
    cubic steps 10^-5 -> 10^-15 -> 10^-45 -> ... that float64 (floor 1e-16) cuts off after one."""
    pc, dt = cfg.precision, cfg.torch_dtype
    n, d = pc.n_tokens, pc.d_model
    st = experiment_stream(cfg.seed, "precision")
    X = st.child("X").normal((n, d), members=pc.runs, dtype=dt)  # (R, n, d), on the CPU: mpmath reads it there
    spec = TransformerSpec(depth=pc.depth, d_model=d, n_heads=1)
    p = init_transformer(spec, st.child("weights"), pc.runs, qk_std=pc.qk_scale, value_std=pc.value_scale, dtype=dt)
    hidden = torch.stack(transformer_forward(X, p, spec).hidden, 1)  # (R, L+1, n, d)
    X_np, weights = _np(X), _np(p)
    log10_rho = np.stack([san_forward_extended(X_np[r], {k: v[r] for k, v in weights.items()}, pc.digits)
                          for r in range(pc.runs)])
    return _finite("precision", Precision(X=X_np, weights=weights, log10_rho=log10_rho,
                                          rho_float64=_np(relative_residual(hidden))))


# ----------------------------------------------------------------------------- explicit bound
def bound_trials(cfg: Config) -> Bound:
    """One random single-head layer per trial, at random s in [1/4, 4], sigma_v in [1/4, 4] and
    input residual eps in [1e-3, 1] (log-uniform), for every (n, d) pair; the measured residual
    and the ingredients of `theory.explicit_bound`."""
    dev, dt = cfg.torch_device, cfg.torch_dtype
    T = cfg.bound.trials
    cols: dict[str, list[Tensor]] = {k: [] for k in (
        "n", "d", "qk_scale", "value_scale", "eps", "measured", "max_logit_deviation", "residual_norm",
        "value_norm", "A_spectral", "max_row_sq")}
    inputs, weights = {}, {}
    for group, (n, d) in enumerate(cfg.bound.groups):
        st = experiment_stream(cfg.seed, "bound").child(f"n{n}_d{d}")
        u = st.child("u").uniform((3,), members=T, device=dev, dtype=dt)  # (T, 3)
        s = 0.25 * 16.0 ** u[:, 0]
        sigma_v = 0.25 * 16.0 ** u[:, 1]
        eps = 10.0 ** (-3.0 + 3.0 * u[:, 2])
        x = st.child("x").normal((d,), members=T, device=dev, dtype=dt)
        R0 = centred_unit(st.child("R0").normal((n, d), members=T, device=dev, dtype=dt))
        spec = TransformerSpec(depth=1, d_model=d, n_heads=1)
        p = init_transformer(spec, st.child("weights"), T, qk_std=1.0, value_std=1.0, dtype=dt, device=dev)
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
        inputs[f"n{n}_d{d}"], weights[f"n{n}_d{d}"] = _np(X), _np(p)
    return _finite("bound", Bound(**{k: _np(torch.cat([c.to(dev) for c in v])) for k, v in cols.items()},
                                  X=inputs, weights=weights))


# ----------------------------------------------------------------------------- the bound composed over depth
def composed_bound_runs(cfg: Config) -> Composed:
    """Pure SANs with ``composed.heads`` heads on X = 1 x^T + eps R0, every layer's absolute residual at
    ``composed.digits`` digits (`model.san_residuals_extended`), and the weight norms the composed bound
    is computed from (`model.layer_norms`)."""
    cc, dt = cfg.composed, cfg.torch_dtype
    n, d, R = cc.n_tokens, cc.d_model, cc.runs
    eps = torch.tensor(cc.epsilons, dtype=dt)
    out: dict[str, dict] = {k: {} for k in ("X", "weights", "log10_residual", "log10_rho", "qk_norm", "value_norm_1",
                                             "value_norm_inf")}
    for H in cc.heads:
        key = f"h{H}"
        st = experiment_stream(cfg.seed, "composed").child(key)
        x = st.child("x").normal((d,), members=R, dtype=dt)  # (R, d), on the CPU: mpmath reads it there
        R0 = centred_unit(st.child("R0").normal((n, d), members=R, dtype=dt))  # (R, n, d)
        X = rank_one_plus(x, R0, eps).reshape(R, len(eps), n, d)  # (R, E, n, d)
        spec = TransformerSpec(depth=cc.depth, d_model=d, n_heads=H)
        p = init_transformer(spec, st.child("weights"), R, qk_std=cc.qk_scale, value_std=cc.value_scale, dtype=dt)
        X_np, w = _np(X), _np(p)
        passes = [[san_residuals_extended(X_np[r, e], {k: v[r] for k, v in w.items()}, cc.digits) for e in range(len(eps))]
                  for r in range(R)]
        out["X"][key], out["weights"][key] = X_np, w
        out["log10_rho"][key] = np.array([[rho for rho, _ in row] for row in passes])  # (R, E, L+1)
        out["log10_residual"][key] = np.array([[res for _, res in row] for row in passes])
        for name, v in layer_norms(p).items():
            out[name][key] = _np(v)
    return _finite("composed", Composed(eps=_np(eps), **out))


# ----------------------------------------------------------------------------- paths
def path_experiment(cfg: Config) -> Paths:
    """The exact path decomposition without and with skips (s = 1)."""
    pc, dev, dt = cfg.paths, cfg.torch_device, cfg.torch_dtype
    st = experiment_stream(cfg.seed, "paths")
    X = st.child("X").normal((pc.n_tokens, pc.d_model), members=cfg.n_seeds, device=dev, dtype=dt)
    spec = TransformerSpec(depth=pc.depth, d_model=pc.d_model, n_heads=pc.heads, branch_scale=pc.branch_scale)
    params = init_transformer(spec, st.child("weights"), cfg.n_seeds, qk_std=1.0, value_std=pc.value_scale, dtype=dt,
                              device=dev)
    out: dict[str, dict[str, np.ndarray]] = {k: {} for k in (
        "rel_error", "count", "lengths", "rho", "length_residual", "output_rho")}
    for key, skip in (("noskip", False), ("skip", True)):
        s = replace(spec, skip=skip)
        fwd = transformer_forward(X, params, s)
        dec = path_decomposition(X, params, s, fwd.patterns)
        err = (dec["total"] - fwd.output).abs().amax(dim=(1, 2)) / fwd.output.abs().amax(dim=(1, 2))
        out["rel_error"][key] = _np(err)
        out["count"][key] = _np(torch.bincount(dec["path_lengths"], minlength=pc.depth + 1))
        out["lengths"][key] = _np(dec["path_lengths"])
        out["rho"][key] = _np(dec["path_rho"])
        out["length_residual"][key] = _np(residual_norm(dec["by_length"]))  # (N, L+1)
        out["output_rho"][key] = _np(relative_residual(fwd.output))
    return _finite("paths", Paths(X=_np(X), weights=_np(params), **out))


# ----------------------------------------------------------------------------- gradients
def gradient_experiment(cfg: Config) -> Gradients:
    """|dL/dW_Q|, |dL/dW_K|, |dL/dW_V| for L = <G, f(X)> at X = 1 x^T + eps R0 (one SA layer,
    eps in {0} + the grid) and at X = 1 x^T through the full model (every layer)."""
    gc, dev, dt = cfg.grad, cfg.torch_device, cfg.torch_dtype
    N, S, n, d = cfg.n_seeds, len(gc.qk_scale), gc.n_tokens, gc.d_model
    st = experiment_stream(cfg.seed, "grad")
    x = st.child("x").normal((d,), members=N, device=dev, dtype=dt)
    R0 = residual_mean(st.child("R0").normal((n, d), members=N, device=dev, dtype=dt))  # centred N(0, 1) entries
    G = st.child("G").normal((n, d), members=N, device=dev, dtype=dt)
    one = init_weights(TransformerSpec(depth=1, d_model=d, n_heads=gc.n_heads), st.child("one"), N,
                       value_scale=gc.value_scale, dtype=dt, device=dev)
    deep = init_weights(TransformerSpec(depth=gc.depth, d_model=d, n_heads=gc.n_heads), st.child("deep"), N,
                        value_scale=gc.value_scale, dtype=dt, device=dev)
    scales = torch.tensor(gc.qk_scale, dtype=dt, device=dev)
    eps = torch.tensor((0.0,) + gc.epsilons, dtype=dt, device=dev)
    E = len(eps)

    p = {k: v.repeat_interleave(E, 0) for k, v in at_scales(one, scales).items()}
    X = tile_members(rank_one_plus(x, R0, eps), S)
    Gm = tile_members(G.repeat_interleave(E, 0), S)
    spec = TransformerSpec(depth=1, d_model=d, n_heads=gc.n_heads)
    grad_one = {k: _np(v[:, 0].reshape(S, N, E)) for k, v in qk_value_gradients(X, Gm, p, spec).items()}

    full = variant_specs(gc.depth, d, gc.n_heads, alpha=gc.branch_scale, skip=gc.skip, mlp=gc.mlp, norm=gc.norm)["full"]
    pd = at_scales(deep, scales)
    deep_grads = {}
    for key, Xd in (("collapsed", x[:, None, :].expand(N, n, d)), ("generic", x[:, None, :] + R0)):
        grads = qk_value_gradients(tile_members(Xd, S), tile_members(G, S), pd, full)
        deep_grads[key] = {k: _np(v.reshape(S, N, -1)) for k, v in grads.items()}
    return _finite("grad", Gradients(
        x=_np(x), R0=_np(R0), G=_np(G), eps=_np(eps), weights_one=_np({k: one[k] for k in ATTENTION}),
        weights_deep=_np(deep), one=grad_one, deep_collapsed=deep_grads["collapsed"],
        deep_generic=deep_grads["generic"]))


# ----------------------------------------------------------------------------- Noci et al.
def noci_monte_carlo(cfg: Config, chunk: int = 500) -> Noci:
    """||m_l||^2 / ||m_0||^2 under uniform attention with skips, alpha in {1, 1/sqrt(L)}, for
    ``noci.samples`` independent networks (drawn in chunks to bound memory; each member has its
    own sub-stream, so chunking does not change the numbers)."""
    nc, dev, dt = cfg.noci, cfg.torch_device, cfg.torch_dtype
    alphas = nc.alphas
    spec = TransformerSpec(depth=nc.depth, d_model=nc.d_model, n_heads=nc.n_heads, skip=True)
    st = experiment_stream(cfg.seed, "noci")
    ratio = {a: [] for a in alphas}
    drift = {a: [] for a in alphas}
    for start in range(0, nc.samples, chunk):
        members = range(start, min(start + chunk, nc.samples))
        X = st.child("X").normal((nc.n_tokens, nc.d_model), members=members, device=dev, dtype=dt)
        p = uniform_attention_weights(spec, st.child("weights"), members, value_scale=nc.value_scale, dtype=dt,
                                      device=dev)
        m0 = X.mean(dim=1).pow(2).sum(-1)  # (m,)
        for a in alphas:
            hidden = torch.stack(transformer_forward(X, p, replace(spec, branch_scale=a)).hidden, 1)  # (m, L+1, n, d)
            ratio[a].append(hidden.mean(dim=2).pow(2).sum(-1) / m0[:, None])
            drift[a].append((residual_mean(hidden[:, -1]) - residual_mean(X)).abs().amax(dim=(1, 2))
                            / hidden[:, -1].abs().amax(dim=(1, 2)))
    return _finite("noci", Noci(
        alphas=_np(torch.tensor(alphas, dtype=dt)),
        mean_ratio=_np(torch.stack([torch.cat(ratio[a]) for a in alphas])),  # (2, samples, L+1)
        residual_drift=_np(torch.stack([torch.cat(drift[a]) for a in alphas]))))  # (2, samples)


# ----------------------------------------------------------------------------- where skips keep rank
def regime_map(cfg: Config) -> Regime:
    """SAN+skip over (alpha, sigma_v, s): the Frobenius residual and relative residual through depth,
    and the per-layer factors k_l of the two-sided residual band (`theory.residual_band`), with the
    pure SAN on the same weights beside it."""
    rc, dev, dt = cfg.regime, cfg.torch_device, cfg.torch_dtype
    N, n, d, L = rc.seeds, rc.n_tokens, rc.d_model, rc.depth
    st = experiment_stream(cfg.seed, "regime")
    X = st.child("X").normal((n, d), members=N, device=dev, dtype=dt)  # (N, n, d)
    spec = TransformerSpec(depth=L, d_model=d, n_heads=1)
    unit = init_transformer(spec, st.child("weights"), N, qk_std=1.0, value_std=1.0, dtype=dt, device=dev)
    centre = torch.eye(n, dtype=dt, device=dev) - torch.full((n, n), 1.0 / n, dtype=dt, device=dev)
    out = {k: [] for k in ("residual", "rho_fro", "san_residual", "contraction")}
    for alpha in rc.alphas:
        for sigma in rc.value_scales:
            for s in rc.qk_scales:
                p = dict(unit)
                p["W_Q"], p["W_K"], p["W_V"] = unit["W_Q"] * s, unit["W_K"] * s, unit["W_V"] * sigma
                fwd = transformer_forward(X, p, replace(spec, skip=True, branch_scale=alpha))
                H = torch.stack(fwd.hidden, 1)  # (N, L+1, n, d)
                res = residual_mean(H).flatten(-2).norm(dim=-1)
                P = torch.stack(fwd.patterns, 1)[:, :, 0]  # (N, L, n, n), one head
                a = torch.linalg.matrix_norm(centre @ P @ centre, ord=2)  # (N, L)
                w = torch.linalg.matrix_norm(torch.einsum("eldv,elvc->eldc", p["W_V"][:, :, 0], p["W_O"][:, :, 0]), ord=2)
                san = torch.stack(transformer_forward(X, p, spec).hidden, 1)
                out["residual"].append(res)
                out["rho_fro"].append(res / H.flatten(-2).norm(dim=-1))
                out["san_residual"].append(residual_mean(san).flatten(-2).norm(dim=-1))
                out["contraction"].append(alpha * a * w)
    shape = (len(rc.alphas), len(rc.value_scales), len(rc.qk_scales), N)
    return _finite("regime", Regime(X=_np(X), **{k: _np(torch.stack(v).reshape(*shape, -1)) for k, v in out.items()}))


# ----------------------------------------------------------------------------- Geshkovski et al.
def clustering(cfg: Config) -> Clustering:
    """Sphere dynamics (SA) for every (beta, seed) from uniform random starts."""
    cc, dev, dt = cfg.cluster, cfg.torch_device, cfg.torch_dtype
    N, B = cfg.n_seeds, len(cc.betas)
    st = experiment_stream(cfg.seed, "cluster")
    x0 = st.child("x0").normal((cc.tokens, cc.dim), members=N, device=dev, dtype=dt)
    x0 = x0 / x0.norm(dim=-1, keepdim=True)
    beta = torch.tensor(cc.betas, dtype=dt, device=dev).repeat_interleave(N)
    flow = sphere_flow(tile_members(x0, B), beta, cc.step, cc.n_steps)
    return _finite("cluster", Clustering(
        x0=_np(x0),
        final=_np(flow["final"].reshape(B, N, *x0.shape[1:])),
        time=_np(torch.arange(cc.n_steps + 1, dtype=dt) * cc.step),
        energy=_np(flow["energy"].reshape(B, N, -1)),
        min_cosine=_np(flow["min_cosine"].reshape(B, N, -1)),
        count=_np(count_clusters(flow["final"]).reshape(B, N))))


# ----------------------------------------------------------------------------- two-token toy
def two_token(cfg: Config) -> TwoToken:
    """The two-token, one-dimensional SAN through the general ``transformer_forward``:
    X = (cos theta, sin theta)^T, W_Q = W_K = sqrt(kappa), W_V = W_O = 1 (logits kappa x_i x_j)."""
    tc, dev, dt = cfg.toy, cfg.torch_device, cfg.torch_dtype
    theta, kappa = tc.theta, tc.kappa
    th, ka = np.meshgrid(theta, kappa, indexing="ij")  # (G_theta, G_kappa)
    X = torch.tensor(np.stack([np.cos(th), np.sin(th)], -1).reshape(-1, 2, 1), dtype=dt, device=dev)
    root = torch.tensor(np.sqrt(ka).reshape(-1), dtype=dt, device=dev).reshape(-1, 1, 1, 1, 1)
    one = torch.ones_like(root)
    params = {"W_Q": root, "W_K": root, "W_V": one, "W_O": one}  # (e, l=1, h=1, 1, 1)
    states = {}
    for key, skip in (("noskip", False), ("skip", True)):
        spec = TransformerSpec(depth=tc.depth, d_model=1, n_heads=1, skip=skip, branch_scale=1.0, tied=True)
        hidden = torch.stack(transformer_forward(X, params, spec).hidden, 1)  # (e, L+1, 2, 1)
        states[key] = _np(hidden[..., 0].reshape(len(theta), len(kappa), tc.depth + 1, 2))
    return _finite("toy", TwoToken(theta=theta, kappa=kappa, states=states))


# ----------------------------------------------------------------------------- the run
PHASES = (
    Phase("sweep", depth_sweep),
    Phase("witness", uniform_witness, needs=("sweep",)),
    Phase("scaling", depth_scaling, needs=("sweep",)),
    Phase("scan", cubic_scan, inputs=lambda cfg: cfg.scan),
    Phase("precision", extended_precision, inputs=lambda cfg: cfg.precision),
    Phase("bound", bound_trials, inputs=lambda cfg: cfg.bound),
    Phase("composed", composed_bound_runs, inputs=lambda cfg: cfg.composed),
    Phase("paths", path_experiment, inputs=lambda cfg: cfg.paths),
    Phase("grad", gradient_experiment, grad=True, inputs=lambda cfg: cfg.grad),
    Phase("noci", noci_monte_carlo, inputs=lambda cfg: cfg.noci),
    Phase("regime", regime_map, inputs=lambda cfg: cfg.regime),
    Phase("trained", trained_models, grad=True, inputs=lambda cfg: cfg.trained),
    Phase("cluster", clustering, inputs=lambda cfg: cfg.cluster),
    Phase("toy", two_token, inputs=lambda cfg: cfg.toy),
)


def run(config: Config, *, progress: bool = True) -> Record:
    """Every experiment of the study at ``config``; deterministic given the config."""
    from studies.rank_collapse import NAME

    return run_phases(NAME, config, PHASES, progress=progress)
