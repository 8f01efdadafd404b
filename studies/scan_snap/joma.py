"""Extension: JoMA (Tian, Wang, Chen, Du, ICLR 2024), the joint dynamics of MLP and attention.

1. The sparse-then-dense toy of the official ``joma/draw_figure_4.py``: each component v_j of a
   hidden unit's projection on the token embeddings is pulled towards a target mu_j, gated by
   the attention its own magnitude buys,

       v_j <- v_j + eta (mu_j - v_j) b_j,        b = softmax(v^2 / tau),

   so salient components (large mu_j) are learned first (attention sparsifies) and the rest
   catch up later (attention re-densifies).  The control with uniform gating b_j = 1/d has the
   closed form v_j(k) = mu_j + (v_j(0) - mu_j)(1 - eta/d)^k.

2. An MLP between the attention and the decoder, on the Scan & Snap classes in the long-sequence
   limit (full class average, gradient descent), in JoMA's setting: *exp* attention
   a_l = P(l|n) e^{z_ml} (no normalisation, no l2 norm, no residual), hidden units
   phi(W1 a), decoder V.  Because the attention output enters the loss only through the
   pre-activations W1 a, the gradients obey dL/dz_ml summed over queries m = sum_k W1_kl dL/dW1_kl,
   so with one learning rate for Z and W1 every GD step satisfies

       sum_m Delta z_ml = sum_k W1_kl Delta W1_kl
       =>  sum_m z_ml(t) - (1/2) sum_k [W1_kl(t)^2 - W1_kl(0)^2] + (1/2) sum_{s<t} sum_k Delta W1_kl(s)^2 = 0

   exactly (JoMA Theorem 1's invariant z = (1/2) sum_k v_k^2, plus the O(eta^2) discretisation
   term), for any activation phi.

3. The study's own model with an MLP after the attention (`run_attention_mlp`), the setting
   the issue asks for: the normalised softmax attention of Scan & Snap in the long-sequence
   limit (Lemma 2), c_n = softmax_l(z_{psi(n) l} + log P(l|n)), its l2 normalisation
   u_n = c_n / ||c_n||, and a decoder that sees u_n directly (the residual path, Y) and
   through a width-4M MLP (V phi(W1 u_n)):

       logits_n = Y^T u_n + V phi(W1 u_n),        loss = mean_n CE(logits_n, n),

   trained by full-batch GD on the K classes (the exact T -> inf population gradient), with
   Z at eta_Z = lr_ratio * lr and Y, W1, V at lr.  JoMA (abstract) predicts that with a
   nonlinear phi the attention first sparsifies and then re-densifies, and that with a linear
   phi it only sparsifies.  JoMA's own evidence for this is a multi-layer transformer on
   WikiText-2/103 (the official ``joma/draw_figure_6.py`` plots the mean row entropy of each
   layer's attention map against minibatches); its body text was not reachable, so no
   closed-form prediction for this model exists here and the comparison is an observation.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from workbench.errors import DivergenceError
from workbench.streams import Stream

from studies.scan_snap.data import SequenceClasses
from studies.scan_snap.model import attention_of_classes, distinct_entropy

TOY_DIM, TOY_TAU, TOY_ETA, TOY_V0, TOY_MU_RANGE = 10, 3.0, 0.02, 0.05, (1.0, 4.0)
"""The official script's toy: d = 10 components, tau = 3, eta = 0.02, v(0) = 0.05, mu ~ U[1, 4] sorted."""
ACTIVATIONS = ("linear", "relu", "silu")


def _activate(pre: Tensor, act: Tensor) -> Tensor:
    """phi(pre) per member: act (e, 1, 1) long indexes ACTIVATIONS."""
    return torch.where(act == 0, pre, torch.where(act == 1, torch.relu(pre), torch.nn.functional.silu(pre)))


def entropy(p: Tensor) -> Tensor:
    return -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(-1)


def toy_targets(stream: Stream, members) -> Tensor:
    """mu (e, d): sorted uniform draws in TOY_MU_RANGE, one row per member key (``Stream`` conventions)."""
    lo, hi = TOY_MU_RANGE
    return torch.sort(lo + (hi - lo) * stream.uniform((TOY_DIM,), members=members), dim=-1).values


def run_toy(mu: Tensor, steps: int, *, gating: str = "softmax") -> dict[str, Tensor]:
    """Euler steps of v_j <- v_j + eta (mu_j - v_j) b_j; returns the entropy of
    b = softmax(v^2/tau) (steps + 1, e) and the final v (e, d)."""
    v = torch.full_like(mu, TOY_V0)
    ents = []
    for k in range(steps + 1):
        b = torch.softmax(v ** 2 / TOY_TAU, dim=-1)  # (e, d)
        ents.append(entropy(b))
        if k == steps:
            break
        gate = b if gating == "softmax" else torch.full_like(b, 1.0 / b.shape[-1])
        v = v + TOY_ETA * (mu - v) * gate
    return {"entropy": torch.stack(ents), "v": v}


def toy_uniform_closed_form(mu: Tensor, steps: int) -> Tensor:
    """v(steps) under uniform gating: mu + (v0 - mu)(1 - eta/d)^steps."""
    return mu + (TOY_V0 - mu) * (1.0 - TOY_ETA / mu.shape[-1]) ** steps


def run_mlp(layout: SequenceClasses, activations: Tensor, stream: Stream, members, *, steps: int,
            lr: float, width_factor: int = 4, dtype: torch.dtype = torch.float64,
            device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """GD on exp attention -> MLP phi(W1 a) -> decoder V, averaged over the K classes (T -> inf).

    activations (e,) long indexes ACTIVATIONS; W1(0) ~ N(0, 1/M_c) is drawn from ``stream`` for the
    member keys ``members`` (e of them; a repeated key repeats the draw).
    Z(0) = 0 and V(0) = 0.  Returns per step (steps + 1, e): the loss, the distinct-token entropy
    of c_n (the normalised attention), the largest |invariant residual| and the largest
    |sum_m z_ml - (1/2) sum_k (W1_kl^2 - W1_kl(0)^2)| (the residual without the discretisation
    term); the final Z query rows ``z`` (e, Q, M_c), ``W1`` (e, H, M_c) with its initialisation
    ``W1_init``, and the decoder ``V`` (e, M, H).  A non-finite loss raises `DivergenceError`
    with the per-step arrays so far as its ``partial``.
    """
    K, Q, Mc, M = layout.n_classes, layout.n_queries, layout.n_context, layout.vocab
    H = width_factor * M
    e = len(activations)
    P = layout.probabilities(dtype).to(device)  # (K, M_c)
    psi = layout.query_of_class.to(device)
    labels = layout.next_token(torch.arange(K, device=device))  # (K,)
    label_onehot = torch.nn.functional.one_hot(labels, M).to(dtype)  # (K, M)
    W1 = stream.child("W1").normal((H, Mc), members=members, device=device) / math.sqrt(Mc)
    W1 = W1.to(dtype)  # (e, H, M_c)
    W1_0 = W1.clone()
    Z = torch.zeros(e, Q, Mc, dtype=dtype, device=device)
    V = torch.zeros(e, M, H, dtype=dtype, device=device)
    act = activations.to(device)[:, None, None]  # (e, 1, 1)
    step_sq = torch.zeros(e, H, Mc, dtype=dtype, device=device)  # sum_s Delta W1(s)^2
    out = {"loss": [], "entropy": [], "invariant": [], "invariant_continuous": []}
    for k in range(steps + 1):
        Z.requires_grad_(True); W1.requires_grad_(True); V.requires_grad_(True)
        a = P * torch.exp(Z[:, psi, :])  # (e, K, M_c) exp attention
        pre = torch.einsum("enl,ehl->enh", a, W1)  # (e, K, H)
        hidden = _activate(pre, act)
        logits = torch.einsum("enh,emh->enm", hidden, V)  # (e, K, M)
        loss = (torch.logsumexp(logits, -1) - (logits * label_onehot).sum(-1)).mean(-1)  # (e,)
        with torch.no_grad():
            inv_cont = Z.sum(1) - 0.5 * (W1 ** 2 - W1_0 ** 2).sum(1)  # (e, M_c)
            out["loss"].append(loss.detach())
            out["entropy"].append(distinct_entropy(attention_of_classes(Z.detach(), layout), layout))
            out["invariant_continuous"].append(inv_cont.abs().amax(-1))
            out["invariant"].append((inv_cont + 0.5 * step_sq.sum(1)).abs().amax(-1))
        if k == steps:
            break
        gZ, gW1, gV = torch.autograd.grad(loss.sum(), [Z, W1, V])
        with torch.no_grad():
            dW1 = -lr * gW1
            step_sq += dW1 ** 2
            Z = Z - lr * gZ
            W1 = W1 + dW1
            V = V - lr * gV
        if not torch.isfinite(loss).all():
            raise DivergenceError(f"attention + MLP study diverged at step {k}", step=k,
                                  partial={name: torch.stack(v) for name, v in out.items()})
    res = {name: torch.stack(v) for name, v in out.items()}
    res["z"] = Z.detach()
    res["W1"] = W1.detach()
    res["W1_init"] = W1_0
    res["V"] = V.detach()
    return res


def attention_entropy(c: Tensor) -> Tensor:
    """Mean over classes of the entropy of each class's attention row c_n over all contextual
    tokens (the quantity of JoMA's ``draw_figure_6.py``: the row entropy of the attention map,
    averaged).  c (..., K, M_c) -> (...)."""
    return entropy(c).mean(-1)


def run_attention_mlp(layout: SequenceClasses, activations: Tensor, lr_ratio: Tensor, stream: Stream, members, *,
                      steps: int, lr: float, width_factor: int = 4, dtype: torch.dtype = torch.float64,
                      device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """GD on softmax attention -> l2 norm -> (residual decoder Y) + MLP V phi(W1 u), T -> inf.

    activations (e,) long indexes ACTIVATIONS; lr_ratio (e,) is eta_Z / lr per member.
    W1(0) ~ N(0, 1/M_c) from ``stream.child("W1")`` for the member keys ``members`` (a repeated
    key repeats the draw); Y(0) = Z(0) = V(0) = 0.  Returns per step (steps + 1, e): ``loss``,
    ``entropy`` (`attention_entropy` of c_n) and ``distinct_entropy`` (Fig. 6's measure), and the
    final query rows ``z`` (e, Q, M_c).  A non-finite loss raises `DivergenceError`.
    """
    K, Q, Mc, M = layout.n_classes, layout.n_queries, layout.n_context, layout.vocab
    H = width_factor * M
    e = len(activations)
    if len(lr_ratio) != e:
        raise ValueError(f"scan-snap: lr_ratio has {len(lr_ratio)} members, activations {e}")
    logP = layout.probabilities(dtype).to(device).log()  # (K, M_c)
    psi = layout.query_of_class.to(device)
    labels = layout.next_token(torch.arange(K, device=device))  # (K,)
    label_onehot = torch.nn.functional.one_hot(labels, M).to(dtype)  # (K, M)
    W1 = stream.child("W1").normal((H, Mc), members=members, device=device).to(dtype) / math.sqrt(Mc)  # (e, H, M_c)
    Z = torch.zeros(e, Q, Mc, dtype=dtype, device=device)
    Y = torch.zeros(e, M, Mc, dtype=dtype, device=device)  # decoder on the residual path
    V = torch.zeros(e, M, H, dtype=dtype, device=device)   # decoder on the MLP path
    act = activations.to(device)[:, None, None]  # (e, 1, 1)
    lr_z = (lr * lr_ratio.to(device=device, dtype=dtype))[:, None, None]  # (e, 1, 1)
    out = {"loss": [], "entropy": [], "distinct_entropy": []}
    for k in range(steps + 1):
        Z.requires_grad_(True); W1.requires_grad_(True); Y.requires_grad_(True); V.requires_grad_(True)
        c = torch.softmax(Z[:, psi, :] + logP, dim=-1)  # (e, K, M_c) Lemma 2's attention
        u = c / c.norm(dim=-1, keepdim=True)  # (e, K, M_c)
        hidden = _activate(torch.einsum("enl,ehl->enh", u, W1), act)  # (e, K, H)
        logits = torch.einsum("enl,eml->enm", u, Y) + torch.einsum("enh,emh->enm", hidden, V)  # (e, K, M)
        loss = (torch.logsumexp(logits, -1) - (logits * label_onehot).sum(-1)).mean(-1)  # (e,)
        with torch.no_grad():
            out["loss"].append(loss.detach())
            out["entropy"].append(attention_entropy(c))
            out["distinct_entropy"].append(distinct_entropy(c, layout))
        if not torch.isfinite(loss).all():
            raise DivergenceError(f"attention + MLP (softmax) study diverged at step {k}", step=k,
                                  partial={name: torch.stack(v) for name, v in out.items()})
        if k == steps:
            break
        gZ, gW1, gY, gV = torch.autograd.grad(loss.sum(), [Z, W1, Y, V])
        with torch.no_grad():
            Z = Z - lr_z * gZ
            W1 = W1 - lr * gW1
            Y = Y - lr * gY
            V = V - lr * gV
    res = {name: torch.stack(v) for name, v in out.items()}
    res["z"] = Z.detach()
    return res
