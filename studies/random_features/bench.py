"""The random-features kernel for ``workbench bench``: random-feature attention + ridge path.

This is `simulate.fit`, the call every sweep of the study makes: the features
phi_m(x_0, X) = (1/N) sum_i relu(x~_0^T W_m x~_i) x~_i of the headline model (BRFA, W_m = alpha
diag(I, 0) + G_m) for the training, validation and test inputs, then closed-form ridge for every
training size and every lambda of the grid (dual n x n solves for n <= P, the accumulated P x P
Gram matrix above), lambda chosen on validation, all five targets.  Member s is seed s: its own
Gaussian heads G (`simulate.head_bank`) and its own data (`simulate.split`), drawn beforehand, so
only the feature computation and the fits are timed.

Sizes: d = 8, N = 8 as in the spec, but M = 16 heads (P = 144 features) and n = 128 / 256
training points (one dual and one primal solve), 128 validation and 128 test points, so that
M = 512 members fit in a few hundred MB.
"""
from __future__ import annotations

import torch

from workbench.runtime import single_thread

from studies.random_features import simulate as sim
from studies.random_features.config import Config, HeadsConfig

SIZES = dict(n_heads=16, n_train=256, n_val=128, n_test=128, n_factors=(0.5, 1.0),
             heads=HeadsConfig(grid=(16,), n_train=128, n_eval=128))
"""Config fields of the timed fit (the rest are the defaults: d = N = 8, BRFA, 7 ridge values)."""


def _flops(cfg: Config) -> float:
    """Floating-point operations of one member's fit (products and Cholesky factorisations)."""
    d1, M, N, P, T, L = cfg.d + 1, cfg.n_heads, cfg.n_keys, cfg.n_params, 5, len(cfg.ridge_grid)
    rows = max(cfg.n_sizes) + cfg.n_val + cfg.n_test
    features = rows * M * (2 * d1 * d1 + 2 * N * d1 + 2 * N * d1 + N)   # x~_0^T W, scores, relu, phi
    total = features
    for n in cfg.n_sizes:
        if n <= P:   # dual: Phi Phi^T, L Cholesky + triangular solves, Phi^T (.)
            total += 2 * n * n * P + L * (n ** 3 / 3 + 2 * n * n * T + 2 * n * P * T)
        else:        # primal: the Gram matrix and Phi^T Y (once, up to the largest n), Cholesky + solves
            total += L * (P ** 3 / 3 + 2 * P * P * T)
    total += 2 * max(cfg.n_sizes) * P * (P + T)
    total += 2 * (cfg.n_val + cfg.n_test) * P * T * L * len(cfg.n_sizes)  # validation and test predictions
    return float(total)


def bench_case(members: int, device: str):
    """The BRFA feature computation and ridge path of ``members`` seeds."""
    from workbench.bench import KernelCase

    cfg = Config(n_seeds=members, device=str(device), **SIZES)
    G = sim.head_bank(cfg)                                       # (e, M, d+1, d+1)
    data = sim.split(cfg, sim.LEARN_DATA, 0, max(cfg.n_sizes), cfg.n_keys)

    def kernel(sel: slice) -> dict[str, torch.Tensor]:
        with single_thread(cfg.torch_device):
            part = {k: v[sel] for k, v in data.items()}
            f = sim.feature_fn(cfg.model, G[sel], cfg.bias_alpha, None, cfg.n_heads)
            res = sim.fit(cfg, f, part, cfg.n_sizes, cfg.n_heads, cfg.n_keys)
        return {"weights": res.weights, "test_pred": res.test_pred, "val_mse": res.val_mse,
                "test_mse": res.test_mse, "choice": res.choice.to(torch.float64)}

    return KernelCase(
        f"{cfg.model} features + ridge path",
        lambda: kernel(slice(0, members)),
        lambda i: kernel(slice(i, i + 1)),
        flops=members * _flops(cfg),
    )
