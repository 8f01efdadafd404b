"""Closed-form ridge regression on random features, and kernel ridge regression (the M -> infinity
limit), with the regulariser chosen on a validation split.

Ridge on features Phi (n, P) with targets Y (n, T):

    v(lambda) = (G + lambda (tr G / P) I)^{-1} Phi^T Y / n,       G = Phi^T Phi / n,

solved by Cholesky in float64 (the lambda scale tr G / P makes the grid invariant to the feature
scale).  Kernel ridge regression on a Gram matrix K (n, n) uses the same scale,
``alpha = (K + lambda (tr K / n) I)^{-1} Y``.  Errors are relative: mean squared error divided by
the mean of y^2 on the same split (targets have mean 0), so predicting 0 scores 1.

Training sets are nested (the first n rows), so one pass over the largest one serves every n: sizes
n <= P are solved in the equivalent dual form ``V = Phi^T (Phi Phi^T + lambda tr(Phi Phi^T)/P I)^{-1} Y``
(an n x n Cholesky), larger ones from the P x P Gram matrix accumulated over chunks of rows, so
memory stays at O(P^2 + chunk P).  Everything carries a leading ensemble axis ``e``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

FeatureFn = Callable[[Tensor, Tensor], Tensor]


def features_chunked(feature_fn: FeatureFn, x0: Tensor, X: Tensor, chunk: int) -> Tensor:
    """Phi for all rows, computed ``chunk`` rows at a time: x0 (e, n, d), X (e, n, N, d) -> (e, n, P)."""
    return torch.cat([feature_fn(x0[:, s:s + chunk], X[:, s:s + chunk]) for s in range(0, x0.shape[1], chunk)], dim=1)


def relative_mse(pred: Tensor, y: Tensor) -> Tensor:
    """mean((pred - y)^2) / mean(y^2) over the sample axis (-2): (..., n, T) -> (..., T)."""
    return (pred - y).pow(2).mean(dim=-2) / y.pow(2).mean(dim=-2)


@dataclass
class RidgeFit:
    """Ridge fits over a lambda grid, with lambda chosen per (member, size, target) on validation."""

    val_mse: Tensor
    """(e, K, L, T) relative validation error for every lambda."""
    test_mse_grid: Tensor
    """(e, K, L, T) relative test error for every lambda (the oracle choice is its minimum)."""
    choice: Tensor
    """(e, K, T) index of the lambda with the smallest validation error."""
    test_mse: Tensor
    """(e, K, T) relative test error at the chosen lambda."""
    weights: Tensor
    """(e, K, P, T) fitted value weights at the chosen lambda."""
    test_pred: Tensor
    """(e, K, n_test, T) test predictions at the chosen lambda."""


def _solve_primal(G: Tensor, B: Tensor, grid: Sequence[float]) -> tuple[Tensor, Tensor]:
    """(G + lambda (tr G / P) I) V = B for every lambda: G (e, P, P), B (e, P, T) -> V (L, e, P, T), ok (L, e)."""
    P = G.shape[-1]
    eye = torch.eye(P, dtype=G.dtype, device=G.device)
    scale = G.diagonal(dim1=-2, dim2=-1).sum(-1) / P                             # (e,)
    Vs, oks = [], []
    for lam in grid:
        L, info = torch.linalg.cholesky_ex(G + lam * scale[:, None, None] * eye)   # (e, P, P)
        Vs.append(_cholesky_solve(L, B))
        oks.append(info == 0)
    return torch.stack(Vs), torch.stack(oks)


def _solve_dual(Phi: Tensor, Y: Tensor, grid: Sequence[float]) -> tuple[Tensor, Tensor]:
    """The same ridge solutions through the n x n system (cheaper when n < P):

    V = Phi^T (Phi Phi^T + lambda tr(Phi Phi^T) / P I)^{-1} Y, identical to the primal solution.
    Phi (e, n, P), Y (e, n, T) -> V (L, e, P, T), ok (L, e).
    """
    e, n, P = Phi.shape
    K = Phi @ Phi.transpose(1, 2)                                                # (e, n, n)
    eye = torch.eye(n, dtype=K.dtype, device=K.device)
    scale = K.diagonal(dim1=-2, dim2=-1).sum(-1) / P                             # (e,)
    Vs, oks = [], []
    for lam in grid:
        L, info = torch.linalg.cholesky_ex(K + lam * scale[:, None, None] * eye)
        Vs.append(Phi.transpose(1, 2) @ _cholesky_solve(L, Y))
        oks.append(info == 0)
    return torch.stack(Vs), torch.stack(oks)


def _cholesky_solve(L: Tensor, B: Tensor) -> Tensor:
    """(L L^T)^{-1} B by two triangular solves (faster than torch.cholesky_solve on CPU)."""
    return torch.linalg.solve_triangular(L.transpose(-1, -2), torch.linalg.solve_triangular(L, B, upper=False), upper=True)


def ridge_path(feature_fn: FeatureFn, x0: Tensor, X: Tensor, Y: Tensor, n_sizes: Sequence[int],
               Phi_val: Tensor, Y_val: Tensor, Phi_test: Tensor, Y_test: Tensor, grid: Sequence[float],
               chunk: int) -> RidgeFit:
    """Ridge on the first n rows of the training set for every n in ``n_sizes``, every lambda.

    x0 (e, n_max, d), X (e, n_max, N, d), Y (e, n_max, T); Phi_val (e, n_v, P), Phi_test (e, n_t, P).
    Sizes n <= P are solved in the dual (n x n) form, larger ones from the P x P Gram matrix
    accumulated chunk by chunk (the first rows are shared, so one pass serves every size).
    """
    P = Phi_val.shape[-1]
    small = [n for n in n_sizes if n <= P]
    n_head = max(small, default=0)
    Phi_head = features_chunked(feature_fn, x0[:, :n_head], X[:, :n_head], chunk) if n_head else None
    G = B = None
    done = 0
    results = []
    for n in n_sizes:
        if n <= P:
            V, ok = _solve_dual(Phi_head[:, :n], Y[:, :n], grid)
        else:
            if G is None:
                G = Phi_head.transpose(1, 2) @ Phi_head if Phi_head is not None else 0
                B = Phi_head.transpose(1, 2) @ Y[:, :n_head] if Phi_head is not None else 0
                done = n_head
            for s in range(done, n, chunk):
                stop = min(s + chunk, n)
                phi = feature_fn(x0[:, s:stop], X[:, s:stop])                    # (e, c, P)
                G = G + phi.transpose(1, 2) @ phi
                B = B + phi.transpose(1, 2) @ Y[:, s:stop]
            done = n
            V, ok = _solve_primal(G / n, B / n, grid)
        results.append((V, ok))
    V = torch.stack([r[0] for r in results], dim=2)                              # (L, e, K, P, T)
    ok = torch.stack([r[1] for r in results], dim=2)[..., None]                  # (L, e, K, 1)
    pv = torch.einsum("enp,lekpt->leknt", Phi_val, V)                            # (L, e, K, n_v, T)
    pt = torch.einsum("enp,lekpt->leknt", Phi_test, V)
    val_mse = torch.where(ok, relative_mse(pv, Y_val[None, :, None]), torch.inf).permute(1, 2, 0, 3)   # (e, K, L, T)
    test_grid = torch.where(ok, relative_mse(pt, Y_test[None, :, None]), torch.inf).permute(1, 2, 0, 3)
    choice = val_mse.argmin(dim=2)                                               # (e, K, T)
    W = V.permute(1, 2, 0, 3, 4)                                                 # (e, K, L, P, T)
    Pt = pt.permute(1, 2, 0, 3, 4)                                               # (e, K, L, n_t, T)
    idx = choice[:, :, None, None, :]
    return RidgeFit(
        val_mse=val_mse, test_mse_grid=test_grid, choice=choice,
        test_mse=test_grid.gather(2, choice[:, :, None, :]).squeeze(2),
        weights=W.gather(2, idx.expand(-1, -1, 1, W.shape[3], -1)).squeeze(2),
        test_pred=Pt.gather(2, idx.expand(-1, -1, 1, Pt.shape[3], -1)).squeeze(2),
    )


def kernel_ridge(K_train: Tensor, Y_train: Tensor, K_val: Tensor, Y_val: Tensor, K_test: Tensor,
                 Y_test: Tensor, grid: Sequence[float]) -> tuple[Tensor, Tensor, Tensor]:
    """Kernel ridge regression over a lambda grid: returns (val_mse (L, T), test_mse (L, T), choice (T)).

    K_train (n, n), K_val (n_v, n), K_test (n_t, n); the regulariser is lambda tr(K) / n.
    """
    n = K_train.shape[0]
    eye = torch.eye(n, dtype=K_train.dtype, device=K_train.device)
    scale = K_train.diagonal().sum() / n
    vals, tests = [], []
    for lam in grid:
        L, info = torch.linalg.cholesky_ex(K_train + lam * scale * eye)
        coef = _cholesky_solve(L, Y_train)                                  # (n, T)
        if int(info) != 0:
            vals.append(torch.full((Y_train.shape[1],), torch.inf, dtype=K_train.dtype, device=K_train.device))
            tests.append(torch.full((Y_train.shape[1],), torch.inf, dtype=K_train.dtype, device=K_train.device))
            continue
        vals.append(relative_mse(K_val @ coef, Y_val))
        tests.append(relative_mse(K_test @ coef, Y_test))
    val_mse, test_mse = torch.stack(vals), torch.stack(tests)                    # (L, T)
    return val_mse, test_mse, val_mse.argmin(dim=0)
