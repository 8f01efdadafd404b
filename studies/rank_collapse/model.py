"""The models of the rank-collapse study, on the shared `workbench.attention` blocks.

Dong, Cordonnier & Loukas (2021) compare four networks built from the same attention layers
(their Fig. 2): a pure self-attention network (SAN), SAN + MLP, SAN + skip connections, and the
full transformer.  Here all four share one set of weights per seed (`init_weights`), drawn with
``init_transformer``'s convention

    W_Q, W_K ~ N(0, s^2 / d),  W_V ~ N(0, sigma_v^2 / d),  W_O ~ N(0, 1 / (d_head H)),

so that sum_h W_V,h W_O,h is norm-preserving in expectation when sigma_v = 1, and the QK scale
s (the ``qk_scale`` sweep) sets the logit size.  The ensemble axis is (QK scale, seed) flattened
scale-major: member ``j * n_seeds + i`` is seed i at scale s_j.

Also here: the pure SAN in extended precision (`san_forward_extended`, mpmath), the exact path decomposition (Dong et al. Thm 2.1 and Claim 3.1), gradients of a
linear loss with respect to the query/key weights (Noci et al. 2022), and the sphere dynamics of
Geshkovski et al. (2023).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from mpmath import mp
from torch import Tensor

from workbench.attention import TransformerSpec, init_transformer, transformer_forward
from workbench.streams import Stream

from studies.rank_collapse.norms import (composite_norm, norm_l1, norm_linf, relative_residual, relative_residual_fro,
                                         residual_mean, residual_norm)
from studies.rank_collapse.theory import enumerate_paths

EXPERIMENTS = ("sweep", "scan", "bound", "composed", "paths", "noci", "cluster", "grad", "precision", "regime")
"""The experiment names of the study's random streams: experiment ``x`` draws from
``Stream(cfg.seed, "rank-collapse/x")`` and its children (``"X"``, ``"weights"``, ...), member i
of every ensemble from the member-i sub-stream (`workbench.streams`)."""


def experiment_stream(seed: int, experiment: str) -> Stream:
    """The root stream of one of the study's experiments (`EXPERIMENTS`)."""
    if experiment not in EXPERIMENTS:
        raise KeyError(f"unknown rank-collapse experiment {experiment!r}; known: {EXPERIMENTS}")
    return Stream(seed, f"rank-collapse/{experiment}")


# ----------------------------------------------------------------------------- architectures
def variant_specs(depth: int, d_model: int, n_heads: int, *, alpha: float, skip: bool, mlp: bool,
                  norm: str) -> dict[str, TransformerSpec]:
    """The four Fig. 2 networks.  The ablations have no normalisation (the pure forms of the
    theorems); ``full`` is the configured architecture (``skip``, ``mlp``, ``norm``, alpha)."""
    base = TransformerSpec(depth=depth, d_model=d_model, n_heads=n_heads, branch_scale=alpha)
    return {
        "SAN": base,
        "SAN+MLP": replace(base, mlp=True),
        "SAN+skip": replace(base, skip=True),
        "full": replace(base, skip=skip, mlp=mlp, norm=norm),
    }


def init_weights(spec: TransformerSpec, stream: Stream, members, *, value_scale: float,
                 dtype: torch.dtype, device: torch.device | str) -> dict[str, Tensor]:
    """``init_transformer`` with MLP weights always drawn (from their own sub-streams, so every
    variant sees the same attention weights) and unit QK scale; `at_scales` applies s."""
    spec = replace(spec, mlp=True)
    return init_transformer(spec, stream, members, qk_std=1.0, value_std=value_scale, dtype=dtype, device=device)


def uniform_attention_weights(spec: TransformerSpec, stream: Stream, members, *, value_scale: float,
                              dtype: torch.dtype, device: torch.device | str) -> dict[str, Tensor]:
    """``init_transformer(spec, stream, members, qk_std=0, value_std=value_scale)`` without drawing
    the query/key weights it would multiply by 0: W_V and W_O are the same draws (the same
    sub-streams and scales), W_Q = W_K = 0, so P = J at every layer (uniform attention)."""
    d, h, k, n_l = spec.d_model, spec.n_heads, spec.head_dim, spec.n_weight_layers
    zeros = torch.zeros((len(members) if not isinstance(members, int) else members, n_l, h, d, k), dtype=dtype,
                        device=device)
    return {"W_Q": zeros, "W_K": zeros.clone(),
            "W_V": stream.child("W_V").normal((n_l, h, d, k), members=members, device=device, dtype=dtype)
            * (value_scale / math.sqrt(d)),
            "W_O": stream.child("W_O").normal((n_l, h, k, d), members=members, device=device, dtype=dtype)
            * (1.0 / math.sqrt(k * h))}


def at_scales(params: dict[str, Tensor], scales: Tensor) -> dict[str, Tensor]:
    """Ensemble over (scale, member): W_Q, W_K of member i multiplied by s_j for every s_j.

    params: tensors (m, ...); scales (S,) -> tensors (S * m, ...), scale-major.
    """
    out = {}
    for name, W in params.items():
        tiled = W.unsqueeze(0).expand(len(scales), *W.shape)  # (S, m, ...)
        if name in ("W_Q", "W_K"):
            tiled = tiled * scales.reshape(-1, *([1] * W.dim())).to(W)
        out[name] = tiled.reshape(-1, *W.shape[1:])
    return out


def slice_layers(params: dict[str, Tensor], depth: int) -> dict[str, Tensor]:
    """The first ``depth`` layers of every weight tensor (e, l, ...)."""
    return {k: v[:, :depth] for k, v in params.items()}


def tile_members(X: Tensor, times: int) -> Tensor:
    """(m, ...) -> (times * m, ...), repeating the whole block ``times`` times (scale-major)."""
    return X.unsqueeze(0).expand(times, *X.shape).reshape(-1, *X.shape[1:])


# ----------------------------------------------------------------------------- inputs and trajectories
def layer_trajectory(X: Tensor, params: dict[str, Tensor], spec: TransformerSpec) -> dict[str, Tensor]:
    """Run the stack; return relative residuals (composite and Frobenius), absolute residual and
    norm for every hidden state, each (e, L + 1).

    The same numbers as `norms.relative_residual`, `relative_residual_fro`, `residual_norm` and
    `composite_norm` of the stacked hidden states (bit for bit: the same operations in the same
    order), with the centring and each absolute value taken once instead of once per statistic
    (they are most of the sweep's memory traffic)."""
    hidden = torch.stack(transformer_forward(X, params, spec).hidden, dim=1)  # (e, L+1, n, d)
    res = residual_mean(hidden)

    def composite(M: Tensor) -> Tensor:  # norms.composite_norm, one abs for both sums
        A = M.abs()
        return torch.sqrt(A.sum(dim=-2).amax(dim=-1) * A.sum(dim=-1).amax(dim=-1))

    residual, norm = composite(res), composite(hidden)
    return {
        "rho": residual / norm,
        "rho_fro": res.flatten(-2).norm(dim=-1) / hidden.flatten(-2).norm(dim=-1),
        "residual": residual,
        "norm": norm,
    }


def rank_one_plus(x: Tensor, R0: Tensor, eps: Tensor) -> Tensor:
    """X = 1 x^T + eps R0 for every eps: x (m, d), R0 (m, n, d), eps (E,) -> (m * E, n, d) member-major."""
    X = x[:, None, None, :] + eps[None, :, None, None] * R0[:, None]  # (m, E, n, d)
    return X.reshape(-1, *R0.shape[1:])


def centred_unit(R: Tensor) -> Tensor:
    """Mean-centre over tokens and scale to ||R||_{1,inf} = 1, (m, n, d)."""
    R = residual_mean(R)
    return R / composite_norm(R)[:, None, None]


# ----------------------------------------------------------------------------- extended precision
def san_forward_extended(X: np.ndarray, params: dict[str, np.ndarray], digits: int) -> np.ndarray:
    """log10 rho_l of the pure SAN (``transformer_forward`` without skip, MLP or norm) computed in
    ``digits``-digit arithmetic, for l = 0..L.

    X (n, d) and the weights of one network, W_Q, W_K, W_V (L, h, d, k) and W_O (L, h, k, d), are
    float64 and converted exactly; every product, softmax and norm is then taken in mpmath at
    ``digits`` digits, so rho_l is exact down to about 10^-digits where float64 stops at 1e-16
    (a residual that rounds to exactly 0 is reported at that floor, -digits).
    The same operations as `workbench.attention.multi_head_attention`: logits Q K^T / sqrt(k),
    row softmax (shifted by the row maximum, which does not change it), sum over heads of P X W_V W_O.
    """
    return san_residuals_extended(X, params, digits)[0]


def san_residuals_extended(X: np.ndarray, params: dict[str, np.ndarray], digits: int) -> tuple[np.ndarray, np.ndarray]:
    """`san_forward_extended`'s pass returning (log10 rho_l, log10 ||res(X_l)||_{1,inf}), each (L+1,):
    the relative residual and the absolute one (what the bounds of Thm 2.2/2.3 bound); both at the
    floor -digits where the residual rounds to exactly 0."""
    with mp.workdps(digits):
        exact = np.vectorize(mp.mpf, otypes=[object])
        exp = np.vectorize(mp.exp, otypes=[object])

        def log10_norms(H):  # log10 of ||res(H)||_{1,inf} / ||H||_{1,inf} and of ||res(H)||_{1,inf}
            R = H - H.sum(axis=0) / H.shape[0]
            comp = lambda M: mp.sqrt(max(np.abs(M).sum(axis=0)) * max(np.abs(M).sum(axis=1)))
            res = comp(R)
            if res == 0:  # rows equal to every digit: the floor
                return -float(digits), -float(digits)
            return float(mp.log10(res / comp(H))), float(mp.log10(res))

        H = exact(X)  # (n, d) object array of mpf
        weights = {k: exact(v) for k, v in params.items()}
        L, heads, _, k = params["W_Q"].shape
        scale = 1 / mp.sqrt(k)
        out = [log10_norms(H)]
        for l in range(L):
            new = 0
            for h in range(heads):
                Q, K = H.dot(weights["W_Q"][l, h]), H.dot(weights["W_K"][l, h])  # (n, k)
                logits = Q.dot(K.T) * scale  # (n, n)
                E = exp(logits - logits.max(axis=1)[:, None])
                P = E / E.sum(axis=1)[:, None]  # row-stochastic (n, n)
                new = new + P.dot(H.dot(weights["W_V"][l, h])).dot(weights["W_O"][l, h])  # (n, d)
            H = new
            out.append(log10_norms(H))
    rho, residual = np.array(out, dtype=float).T
    return rho, residual


def layer_norms(params: dict[str, Tensor]) -> dict[str, Tensor]:
    """The weight norms of the composed bound (`theory.layer_constant_log10`), per layer and head:
    a = ||W_Q W_K^T||_2 / sqrt(d_head) and ||W_V W_O||_1, ||W_V W_O||_inf, each (e, L, H)."""
    k = params["W_Q"].shape[-1]
    A = torch.einsum("elhdk,elhfk->elhdf", params["W_Q"], params["W_K"]) / math.sqrt(k)  # (e, L, H, d, d)
    W = torch.einsum("elhdv,elhvf->elhdf", params["W_V"], params["W_O"])  # (e, L, H, d, d)
    return {"qk_norm": torch.linalg.matrix_norm(A, ord=2), "value_norm_1": norm_l1(W), "value_norm_inf": norm_linf(W)}


# ----------------------------------------------------------------------------- paths
def value_maps(params: dict[str, Tensor], layer: int) -> Tensor:
    """W_h = W_V,h W_O,h of one layer: (e, h, d, d)."""
    return torch.einsum("ehdv,ehvc->ehdc", params["W_V"][:, layer], params["W_O"][:, layer])


def path_decomposition(X: Tensor, params: dict[str, Tensor], spec: TransformerSpec,
                       patterns: list[Tensor]) -> dict[str, Tensor]:
    """Sum over every path of P_path X W_path (Dong et al. Thm 2.1; Claim 3.1 with skips).

    A path is (h_1, ..., h_L) with h = 1..H a head and h = 0 the skip (P_0 = I, W_0 = I); the
    head terms carry alpha when ``spec.skip``.  ``patterns`` are the forward pass's (e, H, n, n),
    so the decomposition is exact for this input.  Returns the total (e, n, d), the sums by path
    length (e, L + 1, n, d), the relative residual of every single path term (e, paths) and the
    path lengths (paths,).
    """
    e, n, d = X.shape
    L, H = spec.depth, spec.n_heads
    alpha = spec.branch_scale if spec.skip else 1.0
    eye_n = torch.eye(n, dtype=X.dtype, device=X.device).expand(e, n, n)
    eye_d = torch.eye(d, dtype=X.dtype, device=X.device).expand(e, d, d)
    W = [alpha * value_maps(params, l) for l in range(L)]  # L x (e, H, d, d)
    paths = enumerate_paths(L, H, spec.skip)
    by_length = X.new_zeros(e, L + 1, n, d)
    rho, lengths = [], []
    for path in paths:
        P_path, W_path = eye_n, eye_d
        for l, h in enumerate(path):
            if h > 0:
                P_path = torch.einsum("eij,ejk->eik", patterns[l][:, h - 1], P_path)  # P^l ... P^1
                W_path = torch.einsum("ecd,edf->ecf", W_path, W[l][:, h - 1])  # W^1 ... W^l
        term = torch.einsum("eij,ejd,edf->eif", P_path, X, W_path)  # (e, n, d)
        k = sum(1 for h in path if h > 0)
        by_length[:, k] += term
        rho.append(relative_residual(term))
        lengths.append(k)
    return {
        "total": by_length.sum(dim=1),
        "by_length": by_length,
        "path_rho": torch.stack(rho, dim=1),
        "path_lengths": torch.tensor(lengths),
    }


# ----------------------------------------------------------------------------- gradients
def qk_value_gradients(X: Tensor, G: Tensor, params: dict[str, Tensor], spec: TransformerSpec) -> dict[str, Tensor]:
    """Gradients of the linear read-out loss <G, f(X)> for each member; Frobenius norms per layer.

    Returns ``{"W_Q": (e, L), "W_K": (e, L), "W_V": (e, L)}``.  Members do not share parameters,
    so the gradient of the summed loss is each member's own gradient.
    """
    leaves = {k: v.detach().clone().requires_grad_(k in ("W_Q", "W_K", "W_V")) for k, v in params.items()}
    out = transformer_forward(X, leaves, spec).output  # (e, n, d)
    loss = (G * out).sum()
    names = ("W_Q", "W_K", "W_V")
    grads = torch.autograd.grad(loss, [leaves[k] for k in names])
    return {k: g.flatten(2).norm(dim=-1) for k, g in zip(names, grads)}  # (e, L) from (e, L, h*d*k)


# ----------------------------------------------------------------------------- sphere dynamics
def sphere_velocity(x: Tensor, beta: Tensor) -> Tensor:
    """Geshkovski et al. (SA) on the sphere: dx_i/dt = P_perp(x_i) sum_j softmax_j(beta <x_i,x_j>) x_j.

    x (e, n, d), beta (e,) -> (e, n, d).
    """
    logits = beta[:, None, None] * torch.einsum("eid,ejd->eij", x, x)  # (e, i, j)
    P = torch.softmax(logits, dim=-1)
    pull = torch.einsum("eij,ejd->eid", P, x)  # (e, i, d)
    return pull - (pull * x).sum(-1, keepdim=True) * x


def sphere_energy(x: Tensor, beta: Tensor) -> Tensor:
    """E_beta = 1/(2 beta n^2) sum_ij exp(beta <x_i, x_j>), (e, n, d) -> (e,)."""
    n = x.shape[1]
    gram = torch.einsum("eid,ejd->eij", x, x)
    return torch.exp(beta[:, None, None] * gram).sum((1, 2)) / (2 * beta * n * n)


def min_cosine(x: Tensor) -> Tensor:
    """Smallest pairwise cosine <x_i, x_j> of unit tokens, (e, n, d) -> (e,)."""
    return torch.einsum("eid,ejd->eij", x, x).amin(dim=(1, 2))


def sphere_flow(x0: Tensor, beta: Tensor, step: float, n_steps: int) -> dict[str, Tensor]:
    """Euler steps x <- normalise(x + h v(x)); record E_beta and the min cosine at every step."""
    x = x0 / x0.norm(dim=-1, keepdim=True)
    energy, cosine = [sphere_energy(x, beta)], [min_cosine(x)]
    for _ in range(n_steps):
        x = x + step * sphere_velocity(x, beta)
        x = x / x.norm(dim=-1, keepdim=True)
        energy.append(sphere_energy(x, beta))
        cosine.append(min_cosine(x))
    return {"final": x, "energy": torch.stack(energy, 1), "min_cosine": torch.stack(cosine, 1)}


def count_clusters(x: Tensor, threshold: float = 0.999) -> Tensor:
    """Connected components of the graph cos(x_i, x_j) > threshold, (e, n, d) -> (e,) ints."""
    close = torch.einsum("eid,ejd->eij", x, x) > threshold  # (e, n, n)
    reach = close.clone()
    for _ in range(x.shape[1].bit_length() + 1):  # transitive closure by repeated squaring
        reach = (reach.to(x.dtype) @ reach.to(x.dtype)) > 0
    # a component is counted once, at its smallest index
    first = torch.argmax(reach.to(torch.int64), dim=-1)  # (e, n): smallest j reachable from i
    idx = torch.arange(x.shape[1], device=x.device)
    return (first == idx).sum(-1)
