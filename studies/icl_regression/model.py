"""The two models: single-layer linear self-attention (LSA) and He et al.'s multi-head softmax attention.

Both carry a leading ensemble axis ``e``.  Index letters: e member, h head, b prompt, n context
token, i/j token feature (d+1 of them: x then y).  Equation labels are the chapter's
(book/icl_regression.md).

**LSA** (Zhang, Frei & Bartlett 2023; Ahn et al. 2023; Wu et al. 2024), chapter eq. (icl-lsa-blocks):
    yhat = e_{d+1}^T W^PV (1/N sum_i z_i z_i^T) W^KQ z_q = p^T Shat K x_q,
with p = (p_x; p_y) the last row of W^PV and K = (K_x; k_y^T) the first d columns of W^KQ (the
other blocks never reach the prediction, because z_q = (x_q; 0)).  It is trained by exact
full-batch GD on its closed-form population risk (`theory.LSARisk`, eq. icl-lsa-risk): no sampling.

**Multi-head softmax attention** (He et al. 2025, Sec. 2; their code ``XintianPan/ICL_linear``):
    yhat = sum_h O_h V_h sum_l z_l softmax_l(z_l^T K_h^T Q_h z_q / sqrt(d+1)),
with Q_h, K_h, V_h in R^{(d+1)x(d+1)}, O_h in R^{1x(d+1)}; no bias, residual, MLP, LayerNorm or
positions, and the query attends only to the N context tokens.  Only the per-head circuits
KQ_h = K_h^T Q_h / sqrt(d+1) and OV_h = O_h V_h enter the prediction, so the forward pass forms them
first (cost e h b n (d+1) instead of e h b n (d+1)^2); the gradients are those of the (Q, K, V, O)
parametrisation, which is the one Adam sees.  The training loss is the squared error
(yhat - y_q)^2 averaged over a fresh batch (`softmax_loss`).

Head counts vary across ensemble members: every member carries ``h_max`` heads and a 0/1 head mask
(e, h_max).  A masked head's output is multiplied by 0, so its parameters get exactly zero gradient
and Adam leaves them at 0 (they are initialised to 0 too): member i is the same model, bit for bit
in exact arithmetic, as a standalone run with its own head count.

**Reading the trained circuits** (He et al. 2025, Sec. 4; chapter eq. icl-softmax-expansion):
`head_statistics`, `effective_gamma` and `zero_sum` take saved circuits (numpy arrays of a record).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from workbench.streams import Stream


# ---------------------------------------------------------------------------------- LSA
def lsa_init(d: int, kind: str, Sigma: Tensor, source: Stream, members, *, device=None,
             dtype=torch.float64) -> tuple[Tensor, Tensor]:
    """LSA initialisations (p (m, d+1), K (m, d+1, d)) of the ``members`` of ``source``, in one draw.

    ``zfb``: Zhang-Frei-Bartlett-type, p_x = k_y = 0, p_y = 0.1, K_x = 0.1 Theta Theta^T / ||Theta Theta^T Sigma||_F
    with Theta a standard Gaussian d x d matrix; it lies on the invariant manifold p_x = k_y = 0.
    ``random``: every entry of p ~ N(0, 0.1^2), of K ~ N(0, 0.1^2 / d).
    """
    Sigma = Sigma.to(device=device, dtype=dtype)
    if kind == "zfb":
        Theta = source.normal((d, d), members=members, device=device, dtype=dtype)
        TT = Theta @ Theta.transpose(-1, -2)
        m = TT.shape[0]
        K = torch.zeros((m, d + 1, d), dtype=dtype, device=TT.device)
        K[:, :d] = 0.1 * TT / torch.linalg.norm(TT @ Sigma, dim=(-2, -1))[:, None, None]
        p = torch.zeros((m, d + 1), dtype=dtype, device=TT.device)
        p[:, d] = 0.1
        return p, K
    if kind == "random":
        w = source.normal((d + 1) * (d + 1), members=members, device=device, dtype=dtype)
        p = 0.1 * w[:, : d + 1]
        K = 0.1 / math.sqrt(d) * w[:, d + 1:].reshape(-1, d + 1, d)
        return p, K
    raise ValueError(f"unknown LSA init {kind!r}")


def lsa_predict_shared(p: Tensor, K: Tensor, Z: Tensor, x_q: Tensor, scale: float) -> Tensor:
    """LSA predictions scale * sum_n (z_n^T p)(z_n^T K x_q) of every member on shared prompts.

    p (e, d+1), K (e, d+1, d); Z (b, M, d+1), x_q (b, d) -> (e, b).  ``scale`` = 1/M normalises by
    the current context; 1/N_train freezes the training normalisation.
    """
    zp = torch.einsum("bni,ei->ebn", Z, p)                                  # (e, b, M)
    zK = torch.einsum("bni,eij,bj->ebn", Z, K, x_q)                         # (e, b, M)
    return scale * (zp * zK).sum(-1)


# ------------------------------------------------------------------------ softmax attention
def softmax_init(d: int, n_heads: int, h_max: int, source: Stream, members, *, outputs: int = 1, device=None,
                 dtype=torch.float64) -> dict[str, Tensor]:
    """PyTorch-default ``nn.Linear`` initialisation (as in He et al.'s code) of the ``members`` of
    ``source``, in one draw: Q, K, V of shape (m, h_max, D, D) and O of shape (m, h_max, D) for one
    output, (m, h_max, outputs, D) for several (the multi-task model), with D = d + outputs tokens
    features (x, then one label per output).

    Q, K, V of every head are rows of a Linear(D, D H): U(-1/sqrt(D), 1/sqrt(D)); O is a
    Linear(D H, outputs): U(-1/sqrt(D H), 1/sqrt(D H)).  Heads n_heads..h_max-1 are zero padding.
    Each real head takes a contiguous run of 3 D^2 + outputs D uniforms in the order Q, K, V, O.
    """
    D = d + outputs
    u = 2 * source.uniform((n_heads, 3 * D * D + outputs * D), members=members, device=device, dtype=dtype) - 1
    m = u.shape[0]
    real = {
        "Q": u[..., : D * D].reshape(m, n_heads, D, D) / math.sqrt(D),
        "K": u[..., D * D: 2 * D * D].reshape(m, n_heads, D, D) / math.sqrt(D),
        "V": u[..., 2 * D * D: 3 * D * D].reshape(m, n_heads, D, D) / math.sqrt(D),
        "O": u[..., 3 * D * D:] / math.sqrt(D * n_heads),
    }
    if outputs > 1:
        real["O"] = real["O"].reshape(m, n_heads, outputs, D)
    return {name: torch.cat([w, w.new_zeros((m, h_max - n_heads, *w.shape[2:]))], 1) for name, w in real.items()}


def circuits(params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Per-head circuits KQ_h = K_h^T Q_h / sqrt(D) (e, h, D, D) and OV_h = O_h V_h: (e, h, D) for one
    output, (e, h, outputs, D) for several."""
    D = params["Q"].shape[-1]
    KQ = torch.einsum("ehki,ehkj->ehij", params["K"], params["Q"]) / math.sqrt(D)
    if params["O"].ndim == 4:
        return KQ, torch.einsum("ehck,ehkj->ehcj", params["O"], params["V"])
    OV = torch.einsum("ehk,ehkj->ehj", params["O"], params["V"])
    return KQ, OV


def _readout(attended: Tensor, OV: Tensor, head_mask: Tensor, lead: str) -> Tensor:
    """sum_h OV_h attended_h with masked heads dropped: attended (``lead`` axes, h, D), ``lead`` "eb"
    or "be" -> (e, b) for one output (OV (e, h, D)), (e, b, outputs) for several (OV (e, h, outputs, D))."""
    if OV.ndim == 4:
        return torch.einsum(f"{lead}hi,ehci->ebc", attended, OV * head_mask[..., None, None])
    return torch.einsum(f"{lead}hi,ehi->eb", attended, OV * head_mask[..., None])


def softmax_predict(KQ: Tensor, OV: Tensor, head_mask: Tensor, Z: Tensor, x_q: Tensor) -> Tensor:
    """yhat (e, b) of multi-head softmax attention from its circuits, each member on its own prompts.

    KQ (e, h, d+1, d+1), OV (e, h, d+1), head_mask (e, h); Z (e, b, n, d+1) context tokens (x; y),
    x_q (e, b, d).  The per-prompt products are batched matrix products over (e b).
    """
    e, b, n, D = Z.shape
    h = KQ.shape[1]
    u = torch.einsum("ehij,ebj->ebhi", KQ[..., :, : x_q.shape[-1]], x_q)  # KQ z_q with z_q = (x_q; 0): (e, b, h, D)
    Zf = Z.reshape(e * b, n, D)
    logits = torch.bmm(u.reshape(e * b, h, D), Zf.transpose(1, 2))       # z_n^T KQ_h z_q: (e b, h, n)
    P = torch.softmax(logits, dim=-1)                                    # attention of the query: (e b, h, n)
    attended = torch.bmm(P, Zf).view(e, b, h, D)                         # sum_n P_hn z_n: (e, b, h, D)
    return _readout(attended, OV, head_mask, "eb")


def softmax_predict_shared(KQ: Tensor, OV: Tensor, head_mask: Tensor, Z: Tensor, x_q: Tensor) -> Tensor:
    """As `softmax_predict`, every member on the same prompts Z (b, n, d+1), x_q (b, d) -> (e, b).

    Batched over prompts, with members and heads side by side, so the prompts are never copied."""
    b, n, D = Z.shape
    e, h = KQ.shape[:2]
    u = torch.einsum("ehij,bj->behi", KQ[..., :, : x_q.shape[-1]], x_q).reshape(b, e * h, D)  # (b, e h, D)
    logits = torch.bmm(u, Z.transpose(1, 2))                            # (b, e h, n)
    P = torch.softmax(logits, dim=-1)
    attended = torch.bmm(P, Z).view(b, e, h, D)                          # (b, e, h, D)
    return _readout(attended, OV, head_mask, "be")


def softmax_loss(KQ: Tensor, OV: Tensor, head_mask: Tensor, Z: Tensor, x_q: Tensor, y_q: Tensor) -> Tensor:
    """The training loss of every member: mean over its batch (and outputs) of (yhat - y_q)^2, (e,)."""
    return (softmax_predict(KQ, OV, head_mask, Z, x_q) - y_q).pow(2).flatten(1).mean(-1)


# ------------------------------------------------------------- reading the trained circuits
def head_statistics(KQ: np.ndarray, OV: np.ndarray) -> dict[str, np.ndarray]:
    """He et al.'s emergent-pattern statistics per head, KQ (..., h, d+1, d+1), OV (..., h, d+1) -> (..., h):

    omega = mean diagonal of KQ_xx, mu = OV_{d+1} (the y entry), the diagonal ratio
    ||diag KQ_xx|| / ||KQ_xx||_F, the diagonal spread Var(diag)/mean^2 and the OV last-entry ratio
    |OV_{d+1}| / ||OV|| (NaN for a masked, all-zero head).
    """
    d = KQ.shape[-1] - 1
    A = KQ[..., :d, :d]
    diag = np.diagonal(A, axis1=-2, axis2=-1)
    omega = diag.mean(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "omega": omega, "mu": OV[..., d],
            "diag_ratio": np.linalg.norm(diag, axis=-1) / np.linalg.norm(A, axis=(-2, -1)),
            "diag_spread": diag.var(-1) / omega ** 2,
            "ov_ratio": np.abs(OV[..., d]) / np.linalg.norm(OV, axis=-1),
        }


def effective_gamma(KQ: np.ndarray, OV: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Gamma_eff = sum_h mu_h KQ_h,xx^T, (..., h, d+1, d+1) -> (..., d, d): the preconditioner of the
    first-order expansion yhat ~ (sum_h mu_h) ybar + x_q^T Gamma_eff (1/N) sum_l (y_l - ybar) x_l
    (small logits; eq. icl-softmax-expansion)."""
    d = KQ.shape[-1] - 1
    mu = OV[..., d] * mask                                                 # (..., h)
    return np.einsum("...h,...hji->...ij", mu, KQ[..., :d, :d])


def _cancellation(mu: np.ndarray) -> np.ndarray:
    """|sum_h mu_h| / sum_h |mu_h| over the last (head) axis."""
    return np.abs(mu.sum(-1)) / np.abs(mu).sum(-1)


def zero_sum(OV: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """|sum_h mu_h| / sum_h |mu_h| per member: 0 when the heads cancel the mean label exactly."""
    return _cancellation(OV[..., -1] * mask)


def task_weights(OV: np.ndarray, d: int) -> np.ndarray:
    """mu_hk = OV_h[k, d + k], the weight head h gives task k's label in output k: (..., h, K, D) -> (..., h, K)."""
    K = OV.shape[-2]
    return np.stack([OV[..., k, d + k] for k in range(K)], -1)


def task_share(mu: np.ndarray) -> np.ndarray:
    """Per head, its second-largest |mu_hk| over tasks divided by its largest: 0 for a head that serves one
    task, 1 for one that serves two equally (..., h, K) -> (..., h)."""
    a = np.sort(np.abs(mu), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return a[..., -2] / a[..., -1]


def task_zero_sum(mu: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """max over tasks of |sum_h mu_hk| / sum_h |mu_hk| (the debiasing of every task): (e, h, K) -> (e,)."""
    return _cancellation(np.swapaxes(mu * mask[..., None], -1, -2)).max(-1)
