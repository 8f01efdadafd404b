"""What the theory predicts for the random-feature attention study, without training.

The closed forms live beside the objects they describe: the infinite-head kernels and the
mean-feature residual of a bias in `model` (chapter, eqs. rf-kernel and rf-mean-feature), the
FAVOR+ MSEs, the orthogonal-feature series and the pitfall biases in `favor` (eqs. rf-mse,
rf-orf-pair, rf-qr-bias, rf-attn-mse).  `predict` evaluates them at a config's settings.
"""
from __future__ import annotations

import numpy as np

from studies.random_features import favor as fv
from studies.random_features import model as rf
from studies.random_features import spectrum as sp
from studies.random_features.config import Config
from studies.random_features.simulate import attention_tokens, favor_settings, predicted_kernel_curves


def attention_second_order(Q, K, V, grid) -> np.ndarray:
    """M_1 / m + M_2 / m^2 (`favor.attention_mse_coefficients`) for every m of ``grid``."""
    M1, M2 = fv.attention_mse_coefficients(Q, K, V)
    return np.array([M1 / m + M2 / m ** 2 for m in grid])


def predict(config: Config) -> dict:
    """Closed-form theory, without any training: FAVOR+ MSEs and biases at the study's settings,
    harmonic-block dimensions, the delta-method MSE of FAVOR+ attention (first and second order), the
    BRFA/RFA kernel-ridge curves of the heads sweep (`simulate.predicted_kernel_curves`), and the kernel-ridge
    learning curves (n in spectral.sizes, every target) predicted from the exact RFA and RFMLP spectra."""
    d, m = config.favor.d, config.favor.m
    names, xs, ys = favor_settings(d)
    _, xm, ym = favor_settings(config.favor_m.d)
    Q, K, V = attention_tokens(config)
    return {
        "favor.settings": names,
        "favor.sm": fv.softmax_kernel(xs, ys),
        "favor.mse.iid.pos": fv.mse_iid("pos", xs, ys, m),
        "favor.mse.iid.trig": fv.mse_iid("trig", xs, ys, m),
        "favor.mse.iid.hyp": fv.mse_iid("hyp", xs, ys, m),
        "favor.mse.orf.pos": np.array([fv.mse_orf_positive(a, b, m, d) for a, b in zip(xs, ys)]),
        "favor.orf_bound": np.array([fv.orf_theorem_bound(a, b, m, d) for a, b in zip(xs, ys)]),
        "favor.bias_unfixed_qr": fv.bias_unfixed_qr((xs + ys)[:, 0], m, d),
        "favor.bias_sqrt_d_norms": fv.bias_fixed_norms(np.linalg.norm(xs + ys, axis=-1), d),
        "favor_m.mse.iid": np.array([float(fv.mse_iid("pos", xm[0], ym[0], k)) for k in config.favor_m.grid]),
        "favor_m.mse.orf": np.array([fv.mse_orf_positive(xm[0], ym[0], k, config.favor_m.d) for k in config.favor_m.grid]),
        "attn.mse.iid": np.array([fv.favor_attention_mse(Q, K, V, k) for k in config.attn.grid]),
        "attn.mse.iid2": attention_second_order(Q, K, V, config.attn.grid),
        "spectral.rfa": sp.rfa_predicted_curves(config.d, config.n_keys, config.spectral.sizes, config.ridge_grid, config.spectral.kmax),
        "spectral.rfmlp": sp.rfmlp_predicted_curves(config.d, config.n_keys, config.spectral.sizes, config.ridge_grid,
                                                    config.spectral.max_total),
        "heads.pred": predicted_kernel_curves(config),
        "gegenbauer_dims": {k: rf.gegenbauer_dim(config.d, k) for k in (1, 2, 3)},
        "harmonic_block_2_2": rf.gegenbauer_dim(config.d, 2) ** 2,
        "n_params": config.n_params,
    }
