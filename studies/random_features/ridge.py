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
    intercept: Tensor
    """(e, K, T) the unpenalised intercept at the chosen lambda (ybar - mean(Phi) . v)."""
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
    """Ridge with an unpenalised intercept on the first n rows of the training set, for every n in
    ``n_sizes`` and every lambda.

    The intercept is exact and free: the features and targets are centred by their training means
    (mu, ybar) at each n, ridge is solved on the centred problem, and b = ybar - mu . v.
    x0 (e, n_max, d), X (e, n_max, N, d), Y (e, n_max, T); Phi_val (e, n_v, P), Phi_test (e, n_t, P).
    Sizes n <= P are solved in the dual (n x n) form, larger ones from the P x P Gram matrix
    accumulated chunk by chunk (raw sums, centred at each n: the first rows are shared, so one pass
    serves every size).
    """
    P = Phi_val.shape[-1]
    small = [n for n in n_sizes if n <= P]
    n_head = max(small, default=0)
    Phi_head = features_chunked(feature_fn, x0[:, :n_head], X[:, :n_head], chunk) if n_head else None
    G = B = S = SY = None
    done = 0
    results = []
    for n in n_sizes:
        if n <= P:
            mu, ybar = Phi_head[:, :n].mean(1, keepdim=True), Y[:, :n].mean(1, keepdim=True)   # (e, 1, P), (e, 1, T)
            V, ok = _solve_dual(Phi_head[:, :n] - mu, Y[:, :n] - ybar, grid)
        else:
            if G is None:
                if Phi_head is not None:
                    G, B = Phi_head.transpose(1, 2) @ Phi_head, Phi_head.transpose(1, 2) @ Y[:, :n_head]
                    S, SY = Phi_head.sum(1, keepdim=True), Y[:, :n_head].sum(1, keepdim=True)
                else:
                    G = B = S = SY = 0
                done = n_head
            for s in range(done, n, chunk):
                stop = min(s + chunk, n)
                phi = feature_fn(x0[:, s:stop], X[:, s:stop])                    # (e, c, P)
                G = G + phi.transpose(1, 2) @ phi
                B = B + phi.transpose(1, 2) @ Y[:, s:stop]
                S = S + phi.sum(1, keepdim=True)
                SY = SY + Y[:, s:stop].sum(1, keepdim=True)
            done = n
            mu, ybar = S / n, SY / n
            V, ok = _solve_primal(G / n - mu.transpose(1, 2) @ mu, B / n - mu.transpose(1, 2) @ ybar, grid)
        b = ybar[None] - mu[None] @ V                                            # (L, e, 1, T)
        results.append((V, b, ok))
    V = torch.stack([r[0] for r in results], dim=2)                              # (L, e, K, P, T)
    b = torch.stack([r[1] for r in results], dim=2)                              # (L, e, K, 1, T)
    ok = torch.stack([r[2] for r in results], dim=2)[..., None]                  # (L, e, K, 1)
    pv = torch.einsum("enp,lekpt->leknt", Phi_val, V) + b                        # (L, e, K, n_v, T)
    pt = torch.einsum("enp,lekpt->leknt", Phi_test, V) + b
    val_mse = torch.where(ok, relative_mse(pv, Y_val[None, :, None]), torch.inf).permute(1, 2, 0, 3)   # (e, K, L, T)
    test_grid = torch.where(ok, relative_mse(pt, Y_test[None, :, None]), torch.inf).permute(1, 2, 0, 3)
    choice = val_mse.argmin(dim=2)                                               # (e, K, T)
    W = V.permute(1, 2, 0, 3, 4)                                                 # (e, K, L, P, T)
    Bt = b[..., 0, :].permute(1, 2, 0, 3)                                        # (e, K, L, T)
    Pt = pt.permute(1, 2, 0, 3, 4)                                               # (e, K, L, n_t, T)
    idx = choice[:, :, None, None, :]
    return RidgeFit(
        val_mse=val_mse, test_mse_grid=test_grid, choice=choice,
        test_mse=test_grid.gather(2, choice[:, :, None, :]).squeeze(2),
        weights=W.gather(2, idx.expand(-1, -1, 1, W.shape[3], -1)).squeeze(2),
        intercept=Bt.gather(2, choice[:, :, None, :]).squeeze(2),
        test_pred=Pt.gather(2, idx.expand(-1, -1, 1, Pt.shape[3], -1)).squeeze(2),
    )


def kernel_ridge(K_train: Tensor, Y_train: Tensor, K_val: Tensor, Y_val: Tensor, K_test: Tensor,
                 Y_test: Tensor, grid: Sequence[float], sizes: Sequence[int] | None = None
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """Kernel ridge regression with an unpenalised intercept over a lambda grid, on the first n
    training points for every n in ``sizes`` (default: all): returns val_mse (K, L, T),
    test_mse (K, L, T), choice (K, T) (the validated lambda).

    K_train (n, n), K_val (n_v, n), K_test (n_t, n); the regulariser is lambda tr(K_n) / n.  The
    intercept b comes from the bordered system [[K + r I, 1], [1^T, 0]] [a; b] = [y; 0]:
    a = A^{-1} (y - b 1), b = 1^T A^{-1} y / 1^T A^{-1} 1 with A = K + r I (one Cholesky).
    """
    sizes = [K_train.shape[0]] if sizes is None else list(sizes)
    T = Y_train.shape[1]
    vals, tests = [], []
    for n in sizes:
        Kn, Yn = K_train[:n, :n], Y_train[:n]
        eye = torch.eye(n, dtype=Kn.dtype, device=Kn.device)
        ones = torch.ones(n, 1, dtype=Kn.dtype, device=Kn.device)
        scale = Kn.diagonal().sum() / n
        v_n, t_n = [], []
        for lam in grid:
            L, info = torch.linalg.cholesky_ex(Kn + lam * scale * eye)
            if int(info) != 0:
                v_n.append(torch.full((T,), torch.inf, dtype=Kn.dtype, device=Kn.device))
                t_n.append(torch.full((T,), torch.inf, dtype=Kn.dtype, device=Kn.device))
                continue
            sol = _cholesky_solve(L, torch.cat([Yn, ones], dim=1))              # (n, T+1): A^-1 y, A^-1 1
            b = sol[:, :T].sum(0) / sol[:, T].sum()                             # (T,)
            coef = sol[:, :T] - b * sol[:, T:]                                  # (n, T)
            v_n.append(relative_mse(K_val[:, :n] @ coef + b, Y_val))
            t_n.append(relative_mse(K_test[:, :n] @ coef + b, Y_test))
        vals.append(torch.stack(v_n)), tests.append(torch.stack(t_n))
    val_mse, test_mse = torch.stack(vals), torch.stack(tests)                    # (K, L, T)
    return val_mse, test_mse, val_mse.argmin(dim=1)
