"""The in-context linear regression data model, seeded prompt samplers and the evaluation set.

Data model (Wu et al. 2024; Zhang, Frei & Bartlett 2023; He et al. 2025, Sec. 2):

    x_i, x_q ~ N(0, Sigma)  (i = 1..N),   beta ~ N(0, psi^2 I_d),
    y_i = beta^T x_i + eps_i,  y_q = beta^T x_q + eps_q,   eps ~ N(0, sigma^2).

A prompt is the context (X, y) of N pairs plus the query x_q; its target y_q *includes* the noise,
so every risk below contains sigma^2 (He et al.'s convention).  Sigma is the identity ("iso") or
the AR(rho) Toeplitz matrix Sigma_ij = rho^|i-j| ("ar", He et al.'s ``generate_covariance_matrix``).

Randomness comes only from `workbench.streams.Stream`: ``stream(seed, name, *keys)`` names one
sub-experiment ("train", "eval", "mc", ...) and its integer keys (training program, length,
chunk, ...); members and steps are the draws' ``members=`` and ``step=`` axes.  So the training
batch of member (seed index s, step t) is the same whatever else runs beside it, whether drawn
alone, in a block of steps or in the whole ensemble, and a chunk of the evaluation set is the same
whatever order chunks are processed in.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.streams import Stream

EXPERIMENT = "icl-regression"
"""Prefix of every stream name of the study: ``icl-regression/<sub-experiment>``."""


def stream(seed: int, name: str, *keys) -> Stream:
    """The stream of one sub-experiment: ``Stream(seed, "icl-regression/<name>", *keys)``."""
    return Stream(seed, f"{EXPERIMENT}/{name}", *keys)


def covariance(d: int, kind: str, rho: float, dtype=torch.float64) -> Tensor:
    """Sigma (d, d): the identity for ``kind='iso'``, Sigma_ij = rho^|i-j| for ``kind='ar'``."""
    if kind == "iso":
        return torch.eye(d, dtype=dtype)
    if kind == "ar":
        idx = torch.arange(d, dtype=dtype)
        return torch.as_tensor(rho, dtype=dtype) ** (idx[:, None] - idx[None, :]).abs()
    raise ValueError(f"unknown covariance kind {kind!r}")


@dataclass
class Prompts:
    """A batch of prompts (leading batch axes ``...``)."""

    X: Tensor
    """(..., N, d) context covariates."""
    y: Tensor
    """(..., N) context labels."""
    x_q: Tensor
    """(..., d) query covariate."""
    y_q: Tensor
    """(...) query target (with noise)."""
    beta: Tensor
    """(..., d) the task vector of each prompt."""

    def to(self, device, dtype) -> "Prompts":
        return Prompts(*(t.to(device=device, dtype=dtype) for t in (self.X, self.y, self.x_q, self.y_q, self.beta)))


def draw_standard(source: Stream, n: int, N: int, d: int, *, members=None, step=None, device=None,
                  dtype=torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """The standard-normal draws behind ``n`` prompts of length ``N``, in one draw of ``source``:
    covariates z (..., n, N+1, d) (context and query together), tasks (..., n, d), noises
    (..., n, N+1), with the draw's leading (member, step) axes ``...`` (`Stream.normal`).  Each prompt
    owns a contiguous run of (N+1) d + d + N + 1 numbers, so the first n' prompts of a larger draw
    are the n' prompts of a smaller one."""
    per = (N + 1) * d + d + (N + 1)
    w = source.normal((n, per), members=members, step=step, device=device, dtype=dtype)
    lead = w.shape[:-1]
    z = w[..., : (N + 1) * d].reshape(*lead, N + 1, d)
    b = w[..., (N + 1) * d: (N + 1) * d + d]
    e = w[..., (N + 1) * d + d:]
    return z, b, e


def assemble(z: Tensor, b: Tensor, e: Tensor, sigma_chol: Tensor | None, psi2: float, sigma2: float) -> Prompts:
    """Prompts from standard draws (any leading axes): x = L z (L = chol Sigma; ``None`` for the
    identity, which is then skipped exactly), beta = psi b, eps = sigma e.

    Prompts built from the same draws with different Sigma share their randomness (common random
    numbers), which is how isotropic and AR members of one seed see matching batches."""
    N = z.shape[-2] - 1
    x = z if sigma_chol is None else z @ sigma_chol.to(z).T          # (..., N+1, d), rows ~ N(0, Sigma)
    beta = b * psi2 ** 0.5                                            # (..., d)
    y = (x @ beta[..., None])[..., 0] + e * sigma2 ** 0.5             # (..., N+1)
    return Prompts(X=x[..., :N, :], y=y[..., :N], x_q=x[..., N, :], y_q=y[..., N], beta=beta)


def sample_prompts(source: Stream, n: int, N: int, sigma_chol: Tensor, psi2: float, sigma2: float, *,
                   device=None, dtype=torch.float64) -> Prompts:
    """``n`` prompts of context length ``N`` drawn from ``source`` on ``device``
    (``sigma_chol`` is the Cholesky factor of Sigma)."""
    z, b, e = draw_standard(source, n, N, sigma_chol.shape[-1], device=device, dtype=dtype)
    return assemble(z, b, e, sigma_chol.to(device=z.device), psi2, sigma2)


@dataclass
class MultiTaskPrompts:
    """A batch of multi-task prompts (leading batch axes ``...``, K tasks): the tokens carry every
    task's label, z_l = (x_l; y_l,1 .. y_l,K)."""

    Z: Tensor
    """(..., N, d + K) context tokens."""
    x_q: Tensor
    """(..., d) query covariate."""
    y_q: Tensor
    """(..., K) noiseless query targets beta_k^T x_q[S_k]."""


def draw_multitask(source: Stream, n: int, N: int, d: int, supports: tuple[tuple[int, ...], ...], sigma2: float, *,
                   members=None, step=None, device=None, dtype=torch.float64) -> MultiTaskPrompts:
    """``n`` multi-task prompts of length ``N`` in one draw of ``source`` (He et al.'s multi-task set-up,
    their code ``XintianPan/ICL_linear``, ``icl_linear_multitask.ipynb``): x_l, x_q ~ N(0, I_d); task k
    reads the coordinates ``supports[k]`` with its own beta_k ~ N(0, I_|S_k|) (unscaled);
    y_l,k = beta_k^T x_l[S_k] + sigma eps_l,k in the context, the query target noiseless.  Each prompt owns a
    contiguous run of (N+1) d + sum_k |S_k| + K N standard normals, so the first n' prompts of a larger
    draw are those of a smaller one."""
    K, widths = len(supports), [len(S) for S in supports]
    per = (N + 1) * d + sum(widths) + K * N
    w = source.normal((n, per), members=members, step=step, device=device, dtype=dtype)
    lead = w.shape[:-1]
    x = w[..., : (N + 1) * d].reshape(*lead, N + 1, d)
    at = (N + 1) * d
    noise = w[..., at + sum(widths):].reshape(*lead, K, N)
    labels = []
    for k, S in enumerate(supports):
        beta = w[..., at: at + widths[k]]                                   # (..., |S_k|)
        at += widths[k]
        labels.append((x[..., list(S)] @ beta[..., None])[..., 0])         # (..., N+1)
    y = torch.stack(labels, -1)                                             # (..., N+1, K)
    y_ctx = y[..., :N, :] + sigma2 ** 0.5 * noise.transpose(-1, -2)
    return MultiTaskPrompts(Z=torch.cat([x[..., :N, :], y_ctx], -1), x_q=x[..., N, :], y_q=y[..., N, :])


def eval_chunks(n_prompts: int, chunk: int) -> list[int]:
    """Sizes of the evaluation chunks (all ``chunk`` but the last)."""
    sizes = [chunk] * (n_prompts // chunk)
    if n_prompts % chunk:
        sizes.append(n_prompts % chunk)
    return sizes


COV_TAGS = {"iso": 0, "ar": 1}
"""Integer tags of the covariances in a record's arrays ."""
INIT_TAGS = {"zfb": 0, "random": 1}
"""Integer tags of the LSA initialisations in a record's arrays ."""
