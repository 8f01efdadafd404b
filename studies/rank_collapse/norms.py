"""The norms and token-uniformity residuals of Dong, Cordonnier & Loukas (2021), Sec. 2.

Every function accepts a leading batch of matrices (..., n, d): n tokens (rows), d features.

||X||_1 is the largest absolute column sum, ||X||_inf the largest absolute row sum, and the composite
||X||_{1,inf} = sqrt(||X||_1 ||X||_inf) (not a norm: the triangle inequality fails; it is
submultiplicative and bounds the spectral norm).  The residual of X is what is left after removing a
rank-one, token-uniform part 1 x^T: with the token mean (`residual_mean`, what every check uses), or
with the x that minimises the composite norm (`residual_argmin`, the paper's definition).
"""
from __future__ import annotations

import torch
from torch import Tensor


def norm_l1(X: Tensor) -> Tensor:
    """Largest absolute column sum, (..., n, d) -> (...)."""
    return X.abs().sum(dim=-2).amax(dim=-1)


def norm_linf(X: Tensor) -> Tensor:
    """Largest absolute row sum, (..., n, d) -> (...)."""
    return X.abs().sum(dim=-1).amax(dim=-1)


def composite_norm(X: Tensor) -> Tensor:
    """||X||_{1,inf} = sqrt(||X||_1 ||X||_inf), (..., n, d) -> (...)."""
    return torch.sqrt(norm_l1(X) * norm_linf(X))


def residual_mean(X: Tensor) -> Tensor:
    """res(X) = X - 1 mean(X)^T: the residual after removing the token mean (the paper's Fig. 2)."""
    return X - X.mean(dim=-2, keepdim=True)


def residual_argmin(X: Tensor, iters: int = 200) -> Tensor:
    """res(X) = X - 1 x^T with x = argmin_x ||X - 1 x^T||_{1,inf}, approximately.

    ||X - 1x^T||_1 decouples over columns (a weighted median problem) while ||.||_inf couples them;
    we start from the better of the column-wise median (optimal for ||.||_1, a 2-approximation at
    worst for ||.||_inf) and the mean, refined by normalised subgradient steps.  This is an
    approximation from above: on random matrices it lands within 3.2% of the exact minimum
    (``tests/test_rank_collapse.py`` compares it with an exact AM-GM + linear-programming solve).
    """
    mid = (X.shape[-2] - 1) // 2  # torch.median's lower median, via sort: CUDA's median-with-indices
    x = X.sort(dim=-2).values[..., mid:mid + 1, :]  # has no deterministic kernel   (..., 1, d)
    best = composite_norm(X - x)
    mean = X.mean(dim=-2, keepdim=True)
    # the mean is sometimes better for the row-sum part; keep the better start per matrix
    better = composite_norm(X - mean) < best
    x = torch.where(better[..., None, None], mean, x)
    best = torch.minimum(best, composite_norm(X - mean))
    step = best[..., None, None] / (X.shape[-1] * 10 + 1e-300)
    for _ in range(iters):
        x_req = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():  # the subgradient steps must work inside torch.no_grad() too
            val = composite_norm(X.detach() - x_req)
            (grad,) = torch.autograd.grad(val.sum(), x_req)
        candidate = x - step * grad / (grad.flatten(-2).norm(dim=-1)[..., None, None] + 1e-300)
        cval = composite_norm(X - candidate)
        improved = cval < best
        x = torch.where(improved[..., None, None], candidate.detach(), x)
        best = torch.where(improved, cval, best)
        step = torch.where(improved[..., None, None], step, step * 0.7)
    return X - x


def residual_norm(H: Tensor) -> Tensor:
    """Absolute ||res_mean(H)||_{1,inf} (what the theorems bound), (..., n, d) -> (...)."""
    return composite_norm(residual_mean(H))


def relative_residual(H: Tensor) -> Tensor:
    """rho = ||res_mean(H)||_{1,inf} / ||H||_{1,inf} (Dong et al. Fig. 2), (..., n, d) -> (...)."""
    return composite_norm(residual_mean(H)) / composite_norm(H)


def relative_residual_fro(H: Tensor) -> Tensor:
    """rho_F = ||res_mean(H)||_F / ||H||_F (the cosine-similarity view of Noci et al.), (..., n, d) -> (...)."""
    return residual_mean(H).flatten(-2).norm(dim=-1) / H.flatten(-2).norm(dim=-1)
