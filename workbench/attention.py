"""Attention building blocks with an explicit leading ensemble axis.

Every tensor carries the ensemble axis ``e`` first, so an ensemble of E independent models (seeds,
hyperparameter grids) is one batched tensor program, and member i is exactly the model you would
get with E=1 (see ``tests/test_attention.py``).  Inputs may carry sample axes after it,
X (e, ..., i, d): member e's weights are shared by all of its samples, without being repeated
(``...`` in the einsums; with no sample axis the products are the ones of X (e, i, d)).  Index
letters used in the einsums:

    e  ensemble member        h  head            i  query token    j  key token
    d  model feature          k  query/key feature                 v  value feature
    ...  sample axes of the input (none, one or more)

The blocks return the quantities the theory talks about (attention patterns, hidden states)
instead of stashing them on modules.  A transformer layer, following Dong et al. (2021) Sec. 2
and Noci et al. (2022), is

    Z   = LN(X) if norm == "pre" else X
    A   = sum_h P_h Z W_V,h W_O,h,         P_h = softmax_rows(Z W_Q,h (Z W_K,h)^T * qk_scale)
    X'  = X + alpha * A  if skip else A
    X'  = LN(X') if norm == "post"
    and the same pattern for the MLP sublayer (ReLU, width ``mlp_ratio * d``) when ``mlp``.

LayerNorm here has no affine parameters (an affine map per feature is a right multiplication,
which the rank-collapse argument absorbs into W).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from workbench.streams import IndexLike, Stream


# ----------------------------------------------------------------------------- primitives
def stable_softmax(logits: Tensor, dim: int = -1) -> Tensor:
    """Softmax with the row maximum subtracted first (exact in float64 for any logit scale)."""
    shifted = logits - logits.amax(dim=dim, keepdim=True).detach()
    weights = shifted.exp()
    return weights / weights.sum(dim=dim, keepdim=True)


def attention_pattern(queries: Tensor, keys: Tensor, scale: float, mask: Tensor | None = None) -> Tensor:
    """Row-stochastic attention pattern P = softmax(scale * Q K^T).

    queries (e, ..., h, i, k), keys (e, ..., h, j, k) -> P (e, ..., h, i, j).  ``mask``
    (broadcastable to P) is True where attention is allowed.
    """
    logits = scale * torch.einsum("e...hik,e...hjk->e...hij", queries, keys)  # (e, ..., h, i, j)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return stable_softmax(logits, dim=-1)


def multi_head_attention(X: Tensor, W_Q: Tensor, W_K: Tensor, W_V: Tensor, W_O: Tensor,
                         scale: float | None = None, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Sum over heads of P_h X W_V,h W_O,h.

    X (e, ..., i, d); W_Q, W_K (e, h, d, k); W_V (e, h, d, v); W_O (e, h, v, d), shared by the
    sample axes ``...`` of X.  Returns output (e, ..., i, d) and patterns P (e, ..., h, i, j).
    ``scale`` defaults to 1/sqrt(k).
    """
    d_k = W_Q.shape[-1]
    scale = 1.0 / math.sqrt(d_k) if scale is None else scale
    Q = torch.einsum("e...id,ehdk->e...hik", X, W_Q)  # (e, ..., h, i, k)
    K = torch.einsum("e...jd,ehdk->e...hjk", X, W_K)  # (e, ..., h, j, k)
    V = torch.einsum("e...jd,ehdv->e...hjv", X, W_V)  # (e, ..., h, j, v)
    P = attention_pattern(Q, K, scale, mask)  # (e, ..., h, i, j)
    heads = torch.einsum("e...hij,e...hjv->e...hiv", P, V)  # (e, ..., h, i, v)
    out = torch.einsum("e...hiv,ehvd->e...id", heads, W_O)  # (e, ..., i, d)
    return out, P


def layer_norm(X: Tensor, eps: float = 1e-12) -> Tensor:
    """Per-token LayerNorm without affine parameters, over the last (feature) axis."""
    mean = X.mean(dim=-1, keepdim=True)
    centred = X - mean
    var = centred.pow(2).mean(dim=-1, keepdim=True)
    return centred / torch.sqrt(var + eps)


def mlp(X: Tensor, W_in: Tensor, W_out: Tensor) -> Tensor:
    """Two-layer ReLU MLP applied per token: X (e, ..., i, d), W_in (e, d, f), W_out (e, f, d)."""
    hidden = torch.relu(torch.einsum("e...id,edf->e...if", X, W_in))  # (e, ..., i, f)
    return torch.einsum("e...if,efd->e...id", hidden, W_out)  # (e, ..., i, d)


# ----------------------------------------------------------------------------- transformer
@dataclass(frozen=True)
class TransformerSpec:
    """Architecture of a stack of attention layers (no biases: they only add rank-one terms)."""

    depth: int
    d_model: int
    n_heads: int = 1
    d_head: int | None = None
    """Query/key/value width per head; defaults to d_model // n_heads (at least 1)."""
    skip: bool = False
    branch_scale: float = 1.0
    """alpha: the residual branch is scaled by it when ``skip`` (Noci et al. use 1/sqrt(L))."""
    mlp: bool = False
    mlp_ratio: int = 4
    norm: Literal["none", "pre", "post"] = "none"
    tied: bool = False
    """One set of layer weights shared by every layer (ALBERT, recurrent use)."""
    qk_scale: float | None = None
    """Logit scale; defaults to 1/sqrt(d_head)."""
    ln_eps: float = 1e-12

    @property
    def head_dim(self) -> int:
        return self.d_head or max(1, self.d_model // self.n_heads)

    @property
    def n_weight_layers(self) -> int:
        return 1 if self.tied else self.depth


@dataclass
class TransformerOutput:
    output: Tensor
    """(e, ..., i, d): the final hidden state."""
    hidden: list[Tensor]
    """depth + 1 tensors (e, ..., i, d): the input and the output of every layer."""
    patterns: list[Tensor]
    """depth tensors (e, ..., h, i, j): every layer's attention patterns."""


def init_transformer(spec: TransformerSpec, stream: Stream, members: IndexLike, *, qk_std: float = 1.0,
                     value_std: float = 1.0, dtype: torch.dtype = torch.float64,
                     device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Gaussian initialisation of an ensemble, drawn from ``stream`` (`workbench.streams`) in one
    call per weight tensor on ``device``.

    W_Q, W_K ~ N(0, qk_std^2 / d);  W_V ~ N(0, value_std^2 / d);  W_O ~ N(0, 1 / (d_head * h)),
    so with value_std = 1 the value map sum_h W_V,h W_O,h is norm-preserving on average (for
    h = 1 this is the N(0, 1/d) of Dong et al.'s set-up); the MLP uses He init.
    Shapes: W_Q, W_K (e, l, h, d, k), W_V (e, l, h, d, v), W_O (e, l, h, v, d),
    W_in (e, l, d, f), W_out (e, l, f, d), with l = 1 when tied.

    ``members`` is a count M (members 0..M-1) or a sequence of member indices; member i's weights
    are ``stream.child(name).child(i)``'s draw, so they are the same in any ensemble and alone.
    Each tensor is one flat draw in layer-major order, so the first L layers of a deeper stack are
    the weights of the L-layer stack (a longer draw extends a shorter one), and adding the MLP
    does not change the attention weights.
    """
    d, h, k, n_l = spec.d_model, spec.n_heads, spec.head_dim, spec.n_weight_layers
    f = spec.mlp_ratio * d
    shapes = {"W_Q": ((n_l, h, d, k), qk_std / math.sqrt(d)), "W_K": ((n_l, h, d, k), qk_std / math.sqrt(d)),
              "W_V": ((n_l, h, d, k), value_std / math.sqrt(d)), "W_O": ((n_l, h, k, d), 1.0 / math.sqrt(k * h))}
    if spec.mlp:
        shapes["W_in"] = ((n_l, d, f), math.sqrt(2.0 / d))
        shapes["W_out"] = ((n_l, f, d), math.sqrt(1.0 / f))
    return {name: stream.child(name).normal(shape, members=members, device=device, dtype=dtype) * std
            for name, (shape, std) in shapes.items()}


def transformer_forward(X: Tensor, params: dict[str, Tensor], spec: TransformerSpec,
                        mask: Tensor | None = None) -> TransformerOutput:
    """Run the stack on X (e, ..., i, d), the weights of member e shared by its samples ``...``;
    return the output, every hidden state and every pattern (shapes in `TransformerOutput`)."""
    if X.dim() < 3 or X.shape[-1] != spec.d_model:
        raise ValueError(f"transformer_forward: X must be (ensemble, ..., tokens, d_model={spec.d_model}), "
                         f"got shape {tuple(X.shape)}")
    hidden, patterns = [X], []
    alpha = spec.branch_scale if spec.skip else 1.0
    for layer in range(spec.depth):
        w = 0 if spec.tied else layer
        Z = layer_norm(X, spec.ln_eps) if spec.norm == "pre" else X
        A, P = multi_head_attention(Z, params["W_Q"][:, w], params["W_K"][:, w], params["W_V"][:, w],
                                    params["W_O"][:, w], spec.qk_scale, mask)
        X = X + alpha * A if spec.skip else A
        if spec.norm == "post":
            X = layer_norm(X, spec.ln_eps)
        if spec.mlp:
            Z = layer_norm(X, spec.ln_eps) if spec.norm == "pre" else X
            M = mlp(Z, params["W_in"][:, w], params["W_out"][:, w])
            X = X + alpha * M if spec.skip else M
            if spec.norm == "post":
                X = layer_norm(X, spec.ln_eps)
        hidden.append(X)
        patterns.append(P)
    return TransformerOutput(X, hidden, patterns)
