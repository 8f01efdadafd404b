"""The one-layer attention model of TF-SVM and its training loss, on an ensemble axis.

Tarzanagh, Li, Thrampoulidis & Oymak, *Transformers as Support Vector Machines* (2023), Sec. 2:

    s_i(W) = softmax(X_i W z_i) in the simplex,      f_W(X_i, z_i) = v^T X_i^T s_i(W),
    L(W)   = (1/n) sum_i  loss(Y_i f_W(X_i, z_i)),   W = K Q^T in the (K, Q) parametrisation,

the chapter's equation (sb-model); `margins_stable` is its equation (sb-stable).

Writing gamma_it = Y_i v^T x_it (the token *scores*), the signed output is the softmax average of
the scores, Y_i f_i = sum_t s_it gamma_it <= max_t gamma_it, which is why the loss can only reach
its infimum as ||W|| -> infinity with all softmax mass on the optimal token.

Two forward passes are provided:

- `margins_stable`: the cancellation-free form of spec pitfall 4,
      Y_i f_i = gamma_ir + sum_t s_it (gamma_it - gamma_ir),   r = argmax_t (X_i W z_i)_t (detached),
  whose autograd backward pass s_it (h_it - sum_tau s_tau h_tau) with h_ir = 0 never subtracts two
  numbers close to each other, so gradients stay accurate until exp() underflows (margin ~ 700);
- `margins_naive`: the textbook sum_t s_it gamma_it, whose backward pass computes
  gamma_iopt - sum_tau s_tau gamma_tau, which is pure rounding error once the off-token softmax
  mass drops below float64 eps (margin ~ 36).  Kept only to demonstrate that precision horizon.

Index letters: e ensemble member, i (written n in shapes) sequence, t token, a/b feature, m rank.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from workbench.attention import stable_softmax

LOSSES = ("logistic", "exp", "correlation")
Loss = Literal["logistic", "exp", "correlation"]


# --------------------------------------------------------------------------------- the model
def attention_logits(X: Tensor, W: Tensor, Z: Tensor) -> Tensor:
    """(X_i W z_i)_t: X (e, n, T, d), W (e, d, d), Z (e, n, d) -> (e, n, T)."""
    Wz = torch.matmul(Z, W.transpose(-1, -2))                     # (e, n, d): rows (W z_i)^T
    return torch.matmul(X, Wz.unsqueeze(-1)).squeeze(-1)          # (e, n, T)


def token_scores(X: Tensor, Y: Tensor, v: Tensor) -> Tensor:
    """gamma_it = Y_i v^T x_it: (e, n, T)."""
    return Y[..., None] * torch.einsum("enta,ea->ent", X, v)


def margins_stable(logits: Tensor, gamma: Tensor) -> Tensor:
    """Y_i f_i = gamma_ir + sum_t s_it (gamma_it - gamma_ir), r = argmax logits (detached): (e, n)."""
    r = logits.detach().argmax(dim=-1, keepdim=True)              # (e, n, 1)
    gamma_r = gamma.gather(-1, r)                                 # (e, n, 1)
    s = stable_softmax(logits, dim=-1)                            # (e, n, T)
    return gamma_r[..., 0] + (s * (gamma - gamma_r)).sum(dim=-1)


def margins_naive(logits: Tensor, gamma: Tensor) -> Tensor:
    """Y_i f_i = sum_t s_it gamma_it with torch.softmax: (e, n).  Loses the gradient at margin ~36."""
    return (torch.softmax(logits, dim=-1) * gamma).sum(dim=-1)


def loss_fn(u: Tensor, kind: Loss) -> Tensor:
    """The decreasing loss of the signed output u: logistic log(1+e^-u), exponential e^-u, or
    correlation -u."""
    if kind == "logistic":
        return torch.nn.functional.softplus(-u)
    if kind == "exp":
        return torch.exp(-u)
    if kind == "correlation":
        return -u
    raise ValueError(f"unknown loss {kind!r}; choose one of {LOSSES}")


def loss_derivative(u: Tensor, kind: Loss) -> Tensor:
    """loss'(u) (negative): -1/(1+e^u), -e^-u or -1."""
    if kind == "logistic":
        return -torch.sigmoid(-u)
    if kind == "exp":
        return -torch.exp(-u)
    if kind == "correlation":
        return -torch.ones_like(u)
    raise ValueError(f"unknown loss {kind!r}; choose one of {LOSSES}")


def weight(params: dict[str, Tensor]) -> Tensor:
    """W (e, d, d) from either parametrisation: params {'W'} or {'K', 'Q'} with W = K Q^T."""
    if "W" in params:
        return params["W"]
    return torch.einsum("eam,ebm->eab", params["K"], params["Q"])  # (e, d, m) x (e, d, m)


def empirical_risk(params: dict[str, Tensor], X: Tensor, Z: Tensor, gamma: Tensor, kind: Loss,
                   forward: Literal["stable", "naive"] = "stable") -> Tensor:
    """L = (1/n) sum_i loss(Y_i f_i) per member: (e,)."""
    logits = attention_logits(X, weight(params), Z)
    u = margins_stable(logits, gamma) if forward == "stable" else margins_naive(logits, gamma)
    return loss_fn(u, kind).mean(dim=-1)


def risk_gradient_W(W: Tensor, X: Tensor, Z: Tensor, gamma: Tensor, kind: Loss,
                    scaled: bool = False) -> tuple[Tensor, Tensor]:
    """Closed-form (risk, dL/dW), cancellation-free; the oracle the autograd paths are tested against.

        dL/dW = (1/n) sum_i loss'(u_i) sum_t s_it (h_it - sum_tau s_iτ h_iτ) x_it z_i^T,
        h_it = gamma_it - gamma_ir  (r the argmax token, so h_ir = 0).

    Every term carries an off-token softmax weight s_it = e^{delta_it} / sum_tau e^{delta_iτ},
    delta_it = logit_it - logit_ir <= 0 (the argmax token's own term carries sum_t s_it h_it), so the
    gradient shrinks like e^{-margin} and underflows once margins pass ~700: the float64 horizon.
    ``scaled=True`` returns instead e^{-c} dL/dW with c = max_{i, t != r} delta_it per member,
    computing each weight as e^{delta_it - c} so the largest is 1: the same direction, no horizon
    (terms more than e^{-745} below the largest still vanish, as they should).  Only for optimisers
    that see the gradient's direction alone (normalised and spectral descent).
    """
    logits = attention_logits(X, W, Z)                            # (e, n, T)
    r = logits.argmax(dim=-1, keepdim=True)                       # (e, n, 1)
    gamma_r = gamma.gather(-1, r)                                 # (e, n, 1)
    h = gamma - gamma_r                                           # (e, n, T), 0 at r
    delta = logits - logits.gather(-1, r)                         # (e, n, T), 0 at r
    w = delta.exp()                                               # (e, n, T), 1 at r
    total = w.sum(dim=-1, keepdim=True)                           # (e, n, 1), in [1, T]
    s = w / total                                                 # softmax
    mean_h = (s * h).sum(dim=-1, keepdim=True)                    # (e, n, 1), a sum of small terms
    u = (gamma_r + mean_h).squeeze(-1)                            # (e, n) = Y_i f_i
    # dL_i/dlogit_it = loss'(u_i) (s_it (h_it - mean_h_i) - [t = r] s_ir mean_h_i), h_ir = 0; the
    # off-token weights (every term's small factor) computed as e^{delta_it - shift}
    off = delta.scatter(-1, r, -torch.inf)                        # off-token log-weights, -inf at r
    shift = off.amax(dim=(-2, -1), keepdim=True) if scaled else 0.0   # (e, 1, 1) the largest, or none
    s_off = (off - shift).exp() / total                           # e^{-shift} s_it off r, 0 at r
    mean_off = (s_off * h).sum(dim=-1, keepdim=True)              # e^{-shift} mean_h
    s_at_r = torch.zeros_like(s).scatter(-1, r, s.gather(-1, r))  # s_ir at r, 0 elsewhere
    slope = loss_derivative(u, kind).unsqueeze(-1)                # (e, n, 1)
    dlogit = slope * (s_off * (h - mean_h) - s_at_r * mean_off)   # (e, n, T)
    c = torch.matmul(dlogit.unsqueeze(-2), X).squeeze(-2)         # (e, n, d): sum_t dlogit_it x_it
    grad = torch.matmul(c.transpose(-1, -2), Z) / X.shape[1]      # (e, d, d): (1/n) sum_i c_i z_i^T
    return loss_fn(u, kind).mean(dim=-1), grad


def selected_tokens(X: Tensor, W: Tensor, Z: Tensor) -> Tensor:
    """alpha_i = argmax_t s_it(W): (e, n)."""
    return attention_logits(X, W, Z).argmax(dim=-1)
