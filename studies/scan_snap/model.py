"""The Y/Z reparametrised one-layer model of Scan and Snap (Tian et al. 2023, Sec. 3.1), as the
official ``Model2`` trains it, on a leading ensemble axis e (seeds x learning-rate grid).

With near-orthogonal embeddings U, the attention logits and the decoder are the M x M matrices

    Z = U W_Q W_K^T U^T / sqrt(d)        (row m: the logits query token m gives to every key)
    Y = U W_V^T U^T                      (decoder: logit of output l is sum_k u_k Y_kl)

and a sequence (contextual tokens x_1..x_{T-1}, query m = x_T, next token n) is mapped to

    b_t = softmax_t(z_{m, x_t})                      keys exclude the query itself
    v   = X^T b              (the attention-weighted token histogram, sum(v) = 1)
    u   = LN(v) = v / ||v||_2                        l2 normalisation, no mean subtraction
    alpha = softmax(Y^T u)   over all M outputs;     loss = -log alpha_n   (batch mean)

No positional encoding, no residual.  Because tokens are one-hot and positions carry no
information, b only depends on token identity, and v_k = N_k e^{z_mk} / sum_k' N_k' e^{z_mk'}
with N_k the count of token k in the sequence: `forward` uses these counts (exactly equal to the
per-position softmax).

Lemma 1 (gradient ascent on J = -loss, per sequence):

    dY/dt = eta_Y u (e_n - alpha)^T,
    dz_m/dt = eta_Z diag(v) P_v^perp Y (e_n - alpha) / ||v||_2 = eta_Z u * P_u^perp Y (e_n - alpha),

with P_u^perp = I - u u^T.  Since (e_n - alpha)^T 1 = 0 and u^T P_u^perp = 0, SGD (with or
without momentum or weight decay) keeps every row sum of Y and of Z at its initial value.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.attention import stable_softmax
from workbench.streams import Stream

from studies.scan_snap.data import SequenceClasses


@dataclass
class Forward:
    """The quantities Sec. 3 names, for a batch, per ensemble member."""

    v: Tensor
    """(e, B, M_c) attention-weighted token histogram X^T b_T."""
    u: Tensor
    """(e, B, M_c) its l2-normalised version LN(X^T b_T)."""
    logits: Tensor
    """(e, B, M) decoder logits Y^T u."""
    alpha: Tensor
    """(e, B, M) softmax over all M outputs."""
    loss: Tensor
    """(e,) batch-mean cross-entropy."""
    p_correct: Tensor
    """(e,) batch mean of alpha at the true next token."""


def forward(Y: Tensor, Z: Tensor, counts: Tensor, classes: Tensor, layout: SequenceClasses) -> Forward:
    """Model2's forward pass.  Y, Z (e, M, M); counts (e, B, M_c); classes (e, B) long."""
    Mc, Q = layout.n_context, layout.n_queries
    queries = layout.query_of_class.to(classes.device)[classes]  # (e, B) query index
    query_onehot = torch.nn.functional.one_hot(queries, Q).to(Y)  # (e, B, Q)
    labels = layout.next_token(classes)[..., None]  # (e, B, 1) token id of the next token
    z_rows = Z[:, Mc:Mc + Q, :Mc]  # (e, Q, M_c) logits of the query tokens on contextual keys
    # softmax over positions == N_l e^{z_ml} / sum_l' N_l' e^{z_ml'}: one exp per query row, not per sequence
    w = torch.exp(z_rows - z_rows.amax(-1, keepdim=True))  # (e, Q, M_c)
    nw = counts * torch.einsum("ebq,eqk->ebk", query_onehot, w)  # (e, B, M_c)
    v = nw / nw.sum(-1, keepdim=True)  # (e, B, M_c)
    u = v / v.norm(dim=-1, keepdim=True)  # (e, B, M_c)
    logits = torch.einsum("ebk,ekl->ebl", u, Y[:, :Mc, :])  # (e, B, M)
    top = logits.amax(-1, keepdim=True)
    ex = torch.exp(logits - top)  # (e, B, M), shared by the softmax and the log-normaliser
    total = ex.sum(-1, keepdim=True)
    alpha = ex / total  # (e, B, M)
    log_norm = (top + total.log())[..., 0]  # (e, B)
    loss = (log_norm - logits.gather(-1, labels)[..., 0]).mean(dim=-1)  # (e,)
    p_correct = alpha.gather(-1, labels)[..., 0].mean(dim=-1)  # (e,)
    return Forward(v, u, logits, alpha, loss, p_correct)


def lemma1_gradients(Y: Tensor, Z: Tensor, counts: Tensor, classes: Tensor, layout: SequenceClasses,
                     fwd: Forward | None = None) -> tuple[Forward, dict[str, Tensor]]:
    """Closed-form gradients of the batch-mean loss (Lemma 1 with the sign of descent).

    grad_Y = -mean_b u_b (e_{n_b} - alpha_b)^T on the contextual rows,
    grad_{z_m} = -mean_{b: query m} u_b * P_{u_b}^perp Y (e_{n_b} - alpha_b) on the contextual keys;
    every other entry of Y and Z has zero gradient.
    """
    fwd = fwd if fwd is not None else forward(Y, Z, counts, classes, layout)
    Mc, Q, B = layout.n_context, layout.n_queries, counts.shape[1]
    labels = layout.next_token(classes)[..., None]  # (e, B, 1)
    residual = (-fwd.alpha).scatter(-1, labels, 1.0 - fwd.alpha.gather(-1, labels))  # (e, B, M): e_n - alpha
    grad_Y = torch.zeros_like(Y)
    grad_Y[:, :Mc, :] = -torch.einsum("ebk,ebl->ekl", fwd.u, residual) / B  # (e, M_c, M)
    back = torch.einsum("ekl,ebl->ebk", Y[:, :Mc, :], residual)  # (e, B, M_c): Y (e_n - alpha)
    projected = back - fwd.u * (fwd.u * back).sum(-1, keepdim=True)  # P_u^perp Y (e_n - alpha)
    rows = fwd.u * projected  # (e, B, M_c)
    queries = layout.query_of_class.to(classes.device)[classes]
    query_onehot = torch.nn.functional.one_hot(queries, Q).to(Y)  # (e, B, Q)
    grad_Z = torch.zeros_like(Z)
    grad_Z[:, Mc:Mc + Q, :Mc] = -torch.einsum("ebq,ebk->eqk", query_onehot, rows) / B  # (e, Q, M_c)
    return fwd, {"Y": grad_Y, "Z": grad_Z}


def init_params(layout: SequenceClasses, init: str, stream: Stream, members, dtype: torch.dtype = torch.float64,
                device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Y(0), Z(0) of shape (E, M, M) for the member keys ``members`` (``Stream`` conventions).

    ``zero``: the paper's Y(0) = Z(0) = 0.  ``random``: PyTorch's default nn.Linear init that
    Model2 uses without ``zero_init``, U(-1/sqrt(M), 1/sqrt(M)) entrywise, from
    ``stream.child("init")`` (one (2, M, M) draw per member: Z, then Y), on ``device``.
    """
    M = layout.vocab
    E = members if isinstance(members, int) else len(members)
    if init == "zero":
        Y = torch.zeros(E, M, M, dtype=dtype, device=device)
        return {"Y": Y, "Z": Y.clone()}
    u = stream.child("init").uniform((2, M, M), members=members, device=device)  # (E, 2, M, M) float64
    w = (u * 2 - 1) * M ** -0.5
    return {"Y": w[:, 1].to(dtype).contiguous(), "Z": w[:, 0].to(dtype).contiguous()}


# ------------------------------------------------------------------------- readouts of Z
# On the device, for the trainers' observers.  `theory.class_attention` / `theory.distinct_entropy`
# are the same formulas in NumPy for the ODE solutions; each feeds stored arrays, so both stay.
def attention_of_classes(z_rows: Tensor, layout: SequenceClasses) -> Tensor:
    """c_{l|n} = P(l|n) e^{z_{psi(n) l}} / sum_l' P(l'|n) e^{z_{psi(n) l'}} (Lemma 2).

    z_rows (..., Q, M_c) -> c (..., K, M_c)."""
    P = layout.probabilities(z_rows.dtype).to(z_rows.device)  # (K, M_c)
    z = z_rows[..., layout.query_of_class.to(z_rows.device), :]  # (..., K, M_c)
    return stable_softmax(z + P.log(), dim=-1)


def distinct_entropy(c: Tensor, layout: SequenceClasses) -> Tensor:
    """Fig. 6's measure as read in the spec: natural-log entropy of c_n restricted to class n's
    distinct tokens and renormalised, averaged over classes.  c (..., K, M_c) -> (...)."""
    mask = layout.distinct_mask().to(c.device)  # (K, M_c)
    d = torch.where(mask, c, torch.zeros_like(c))
    d = d / d.sum(-1, keepdim=True)
    ent = -(torch.where(d > 0, d * d.log(), torch.zeros_like(d))).sum(-1)  # (..., K)
    return ent.mean(-1)

