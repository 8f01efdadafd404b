"""The models of head-rank.

Part A (Bhojanapalli et al. 2020, rows = queries): one softmax head of size d_h on tokens X (n, d),

    L = X W_Q W_K^T X^T,   Q = softmax_row(L) (masked to j <= i when causal),           (A.1)

fitted to a row-stochastic target P by minimising the mean KL(P_i || Q_i) (`head_kl_and_grad`,
float64 numpy, for scipy's L-BFGS-B: one small problem per member).

Part B (Amsel, Yehudai & Bruna 2024, as coded in `attention-formers` ``models.py``): keys
x_1..x_N and a query y on S^{d-1}; H heads of rank r,

    g(X, y) = sum_h O_h sum_i a_hi x_i,   a_h = softmax_i((Q_h^T y) . (K_h^T x_i)),          (B.1)

with Q_h, K_h (d, r) and O_h (d, d); the target is the nearest key x_{i*}, i* = argmax_i <x_i, y>,
and the loss E|g - f|^2.  The official code divides the logits by sqrt(r); we do not (expressivity
is unchanged; it only rescales the effective step per rank, spec pitfall 7).  The tagged depth-2
model (spec 1.2) appends a position tag tau = (+1, -1) to the keys and runs two such layers on a
residual query stream z^0 = [y; 0], z^1 = z^0 + layer_1(z^0); its output is the first d coordinates
of the summed layer updates.  Everything in Part B carries a leading ensemble axis e.
"""
from __future__ import annotations

import numpy as np
import torch

from studies.head_rank.theory import log_softmax_rows


# ============================================================================== Part A
def head_kl_and_grad(theta: np.ndarray, X: np.ndarray, logP: np.ndarray, d_h: int,
                     mask: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Mean stable KL of (A.1) and its gradient in theta = [W_Q.ravel(), W_K.ravel()].

    dKL_i/dL_ij = Q_ij - P_ij, so with G = (Q - P)/n: dW_Q = X^T G X W_K, dW_K = X^T G^T X W_Q.
    Q - P is computed as P expm1(u), u = log Q - log P, exact near the optimum."""
    n, d = X.shape
    WQ = theta[: d * d_h].reshape(d, d_h)
    WK = theta[d * d_h:].reshape(d, d_h)
    XQ, XK = X @ WQ, X @ WK                                    # (n, d_h) each
    L = XQ @ XK.T                                              # (n, n) logits
    logQ = log_softmax_rows(L, mask)
    with np.errstate(invalid="ignore"):                        # -inf - -inf on masked entries
        u = logQ - logP
    P = np.exp(logP)
    if mask is not None:
        u = np.where(mask, u, 0.0)
        P = np.where(mask, P, 0.0)
    kl = float((P * (np.expm1(u) - u)).sum() / n)
    G = P * np.expm1(u) / n                                     # (Q - P) / n, zero where masked
    gWQ = X.T @ (G @ XK)                                       # (d, d_h)
    gWK = X.T @ (G.T @ XQ)
    return kl, np.concatenate([gWQ.ravel(), gWK.ravel()])


def head_kl(W: np.ndarray, X: np.ndarray, logP: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean stable KL of the head with W = W_Q W_K^T (any W: the construction)."""
    from studies.head_rank.theory import stable_kl

    return float(stable_kl(logP, log_softmax_rows(X @ W @ X.T, mask), mask).mean())


# ============================================================================== Part B
def nearest_target(X: torch.Tensor, y: torch.Tensor, coords: int | None = None) -> torch.Tensor:
    """x_{i*}, i* = argmax_i <x_i, y> (on the first ``coords`` coordinates: the rank-r control).
    X (..., N, d), y (..., d) -> (..., d)."""
    Xc, yc = (X, y) if coords is None else (X[..., :coords], y[..., :coords])
    i_star = torch.einsum("...nd,...d->...n", Xc, yc).argmax(-1)     # (...)
    return torch.take_along_dim(X, i_star[..., None, None], dim=-2).squeeze(-2)


def heads_output(Q: torch.Tensor, K: torch.Tensor, O: torch.Tensor, keys: torch.Tensor, query: torch.Tensor,
                 hard: bool = False) -> torch.Tensor:
    """sum_h O_h sum_i a_hi x_i of (B.1), through the rank-r circuit W_h = Q_h K_h^T.

    Q, K (e, H, D, r); O (e, H, D_out, D); keys (e, M, N, D); query (e, M, D) -> (e, M, D_out)."""
    if keys.shape[-2] == 2 and not hard:
        return _two_keys_output(Q, K, O, keys, query)
    W = Q @ K.transpose(-1, -2)                                # (e, H, D, D), rank <= r
    yW = query[:, None] @ W                                    # (e, 1, M, D) x (e, H, D, D) -> (e, H, M, D)
    logits = (yW[:, :, :, None, :] * keys[:, None]).sum(-1)    # (e, H, M, N): y^T W_h x_i
    if hard:
        a = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(keys.dtype)
    else:
        a = torch.softmax(logits, dim=-1)
    v = (a[..., None] * keys[:, None]).sum(-2)                 # (e, H, M, D): sum_i a_hi x_i
    return (v @ O.transpose(-1, -2)).sum(1)                    # (e, H, M, D_out) summed over heads


def _two_keys_output(Q, K, O, keys, query):
    """(B.1) at N = 2, the same map written with the pair structure (spec 1.2): with m = (x_1+x_2)/2,
    delta = (x_1-x_2)/2 and u = 2 delta, a_h1 - a_h2 = tanh(s_h / 2), s_h = (Q_h^T y).(K_h^T u), so

        g = (sum_h O_h) m + sum_h tanh(s_h / 2) O_h delta.

    Only rank-r products appear (no (H, M, N, D) tensor): ~5x faster on the CPU than the general path."""
    e, H, D, r = Q.shape
    m = (keys[..., 0, :] + keys[..., 1, :]) / 2                # (e, M, D)
    delta = (keys[..., 0, :] - keys[..., 1, :]) / 2            # (e, M, D)
    yQ = query @ Q.permute(0, 2, 1, 3).reshape(e, D, H * r)    # (e, M, H r)
    uK = (2 * delta) @ K.permute(0, 2, 1, 3).reshape(e, D, H * r)
    t = torch.tanh((yQ * uK).reshape(*yQ.shape[:-1], H, r).sum(-1) / 2)   # (e, M, H)
    O_flat = O.permute(0, 1, 3, 2).reshape(e, H * D, O.shape[-2])         # (e, H D, D_out): [h, j] -> O_h[:, j]
    td = (t[..., None] * delta[..., None, :]).reshape(*t.shape[:-1], H * D)  # (e, M, H D)
    return m @ O.sum(1).transpose(-1, -2) + td @ O_flat         # (e, M, D_out)


def heads_output_general(Q, K, O, keys, query, hard: bool = False):
    """(B.1) for any N (the reference path; `heads_output` takes the N = 2 shortcut)."""
    W = Q @ K.transpose(-1, -2)
    yW = query[:, None] @ W
    logits = (yW[:, :, :, None, :] * keys[:, None]).sum(-1)
    a = (torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(keys.dtype) if hard
         else torch.softmax(logits, dim=-1))
    v = (a[..., None] * keys[:, None]).sum(-2)
    return (v @ O.transpose(-1, -2)).sum(1)


def tag_keys(X: torch.Tensor) -> torch.Tensor:
    """[x_i; tau_i] with tau = (+1, -1, ...) alternating: (e, M, N, d) -> (e, M, N, d + 1)."""
    N = X.shape[-2]
    tau = torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in range(N)], dtype=X.dtype, device=X.device)
    return torch.cat([X, tau.expand(*X.shape[:-1])[..., None]], dim=-1)


def tagged_output(layers: list[dict[str, torch.Tensor]], X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The tagged model: residual query stream through ``layers`` (each {Q, K, O} over D = d + 1);
    the output is the first d coordinates of the summed updates.  (e, M, N, d), (e, M, d) -> (e, M, d)."""
    keys = tag_keys(X)                                         # (e, M, N, d+1)
    z = torch.cat([y, torch.zeros_like(y[..., :1])], dim=-1)   # (e, M, d+1)
    total = torch.zeros_like(z)
    for layer in layers:
        update = heads_output(layer["Q"], layer["K"], layer["O"], keys, z)
        z = z + update
        total = total + update
    return total[..., : X.shape[-1]]


def squared_error(g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """|g - f|^2 per sample: (e, M, d) -> (e, M)."""
    return ((g - f) ** 2).sum(-1)


def depth_construction(d: int, eps: float, beta: float, dtype=torch.float64, device="cpu") -> list[dict[str, torch.Tensor]]:
    """The depth-2 construction of spec 1.2 (ensemble of one): layer 1 has d rank-1 heads
    Q_j = e_j, K_j = eps e_j, O_j = e_{d+1} e_{d+1}^T writing sum_j tanh(eps y_j u_j / 2) ~ (eps/2) y.u
    into the scratch coordinate; layer 2 has one rank-1 head Q = e_{d+1}, K = beta e_{d+1}, O = the
    copy of the first d coordinates, whose logit gap ~ eps beta y.u selects x_{i*}."""
    D = d + 1
    eye = torch.eye(D, dtype=dtype, device=device)
    Q1 = eye[:d, :, None].clone()                              # (d heads, D, 1)
    K1 = eps * eye[:d, :, None].clone()
    O1 = torch.zeros(d, D, D, dtype=dtype, device=device)
    O1[:, d, d] = 1.0
    Q2 = eye[d:, :, None].clone()                              # (1, D, 1)
    K2 = beta * eye[d:, :, None].clone()
    O2 = torch.zeros(1, D, D, dtype=dtype, device=device)
    O2[0, :d, :d] = torch.eye(d, dtype=dtype, device=device)
    return [{"Q": Q1[None], "K": K1[None], "O": O1[None]}, {"Q": Q2[None], "K": K2[None], "O": O2[None]}]
