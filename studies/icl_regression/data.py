"""The in-context linear regression data model, seeded prompt samplers and the evaluation set.

Data model (Wu et al. 2023; Zhang, Frei & Bartlett 2023; He et al. 2025, Sec. 2):

    x_i, x_q ~ N(0, Sigma)  (i = 1..N),   beta ~ N(0, psi^2 I_d),
    y_i = beta^T x_i + eps_i,  y_q = beta^T x_q + eps_q,   eps ~ N(0, sigma^2).

A prompt is the context (X, y) of N pairs plus the query x_q; its target y_q *includes* the noise,
so every risk below contains sigma^2 (He et al.'s convention).  Sigma is the identity ("iso") or
the AR(rho) Toeplitz matrix Sigma_ij = rho^|i-j| ("ar", He et al.'s ``generate_covariance_matrix``).

Randomness is an argument.  Every draw comes from a CPU `torch.Generator` seeded by
`derived_seed(*keys)`: a hash (numpy ``SeedSequence``) of integer keys such as
(config seed, stream tag, member seed, step).  So the training batch of member (seed s, step t) is
the same whatever else runs beside it, and a chunk of the evaluation set is the same whatever order
chunks are processed in.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from workbench.runtime import derived_generator, derived_seed  # noqa: F401  (re-exported)

# Stream tags: the second key of every derived seed, so no two uses of randomness collide.
STREAM_EVAL = 1
STREAM_TRAIN = 2
STREAM_INIT = 3
STREAM_MC = 4
STREAM_POOL = 5
STREAM_LSA_INIT = 6
STREAM_WISHART = 7
STREAM_RANDOM_LSA = 8


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


def draw_standard(n: int, N: int, d: int, generator: torch.Generator, dtype=torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """The standard-normal draws behind ``n`` prompts of length ``N``, in a fixed order:
    covariates z (n, N+1, d) (context and query together), tasks (n, d), noises (n, N+1)."""
    z = torch.randn((n, N + 1, d), generator=generator, dtype=dtype)
    b = torch.randn((n, d), generator=generator, dtype=dtype)
    e = torch.randn((n, N + 1), generator=generator, dtype=dtype)
    return z, b, e


def assemble(z: Tensor, b: Tensor, e: Tensor, sigma_chol: Tensor, psi2: float, sigma2: float) -> Prompts:
    """Prompts from standard draws: x = L z (L = chol Sigma), beta = psi b, eps = sigma e.

    Prompts built from the same draws with different Sigma share their randomness (common random
    numbers), which is how isotropic and AR members of one seed see matching batches."""
    N = z.shape[-2] - 1
    x = z @ sigma_chol.to(z).T                                        # (n, N+1, d), rows ~ N(0, Sigma)
    beta = b * psi2 ** 0.5                                            # (n, d)
    y = torch.einsum("nld,nd->nl", x, beta) + e * sigma2 ** 0.5        # (n, N+1)
    return Prompts(X=x[:, :N], y=y[:, :N], x_q=x[:, N], y_q=y[:, N], beta=beta)


def sample_prompts(n: int, N: int, sigma_chol: Tensor, psi2: float, sigma2: float,
                   generator: torch.Generator, dtype=torch.float64) -> Prompts:
    """``n`` prompts of context length ``N`` drawn on the CPU with ``generator``
    (``sigma_chol`` is the Cholesky factor of Sigma)."""
    z, b, e = draw_standard(n, N, sigma_chol.shape[-1], generator, dtype)
    return assemble(z, b, e, sigma_chol, psi2, sigma2)


def eval_chunks(n_prompts: int, chunk: int) -> list[int]:
    """Sizes of the evaluation chunks (all ``chunk`` but the last)."""
    sizes = [chunk] * (n_prompts // chunk)
    if n_prompts % chunk:
        sizes.append(n_prompts % chunk)
    return sizes


def eval_chunk_seed(seed: int, cov_tag: int, length: int, chunk_index: int) -> int:
    """The seed of one chunk of the fixed evaluation set (config seed, covariance, length, chunk)."""
    return derived_seed(seed, STREAM_EVAL, cov_tag, length, chunk_index)


COV_TAGS = {"iso": 0, "ar": 1}
"""Integer tags of the covariances in a record's arrays (and in the evaluation-set seeds)."""
INIT_TAGS = {"zfb": 0, "random": 1}
"""Integer tags of the LSA initialisations in a record's arrays (and in their seeds)."""
