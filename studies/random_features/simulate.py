"""The sub-experiments of one run, one function per phase, each returning a typed result (see
`studies.random_features.config` for which fields drive each).

`run` is the list of phases; `workbench.phases.run_phases` owns threads, autograd, progress and
timing and stores each result as ``<phase>.<field>``.  The learning sweep's head bank, data and
fits are handed to the sweeps around the primary point in memory (TRANSIENT fields: never stored,
freed when the run ends).

Every random draw comes from a keyed `workbench.streams.Stream`: one experiment name per
sub-experiment (``random-features/<name>``, see `stream`), the member (seed index s of the
ensemble) as the stream's member index, and the split, sequence length N or Monte-Carlo draw as
keys.  A whole ensemble is drawn in one call on the run's device, and member s of an ensemble is
bit-identical to member s of a larger ensemble and to ``members=[s]`` alone (the tests check it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from workbench.attention import stable_softmax
from workbench.phases import TRANSIENT, Phase, run_phases
from workbench.record import Record
from workbench.streams import Stream

from studies.random_features import favor as fv
from studies.random_features import model as rf
from studies.random_features import ridge
from studies.random_features.config import Config

STREAM_PREFIX = "random-features/"
ATTN_TOKEN_SCALE = 0.3
"""Queries and keys of the attention comparison are N(0, 0.3^2 I): logits of order 0.1 and
|q' + k'|^2 of order 0.7, where the delta-method prediction is accurate at moderate m."""
ATTN_VALUE_DIM = 4
DRAW_CHUNK = 10_000
"""Feature draws per chunk of the FAVOR+ Monte Carlo."""


def stream(cfg: Config, name: str, *keys) -> Stream:
    """The stream of sub-experiment ``name`` (``learn-data``, ``heads``, ``mlp``, ``kernel``,
    ``favor``, ``favor_m``, ``attn``) with integer or string ``keys``."""
    return Stream(cfg.seed, STREAM_PREFIX + name, *keys)


def ensemble(cfg: Config, members=None) -> list[int]:
    """The member indices of a draw: 0..n_seeds-1 unless given."""
    return list(range(cfg.n_seeds)) if members is None else list(members)


def chunk_rows(M: int, N: int, d: int, budget: int = 1 << 22) -> int:
    """Rows per feature chunk so that the (rows, M, N) score tensor stays below ``budget`` numbers."""
    return max(16, budget // max(1, M * N * (d + 1)))


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# ------------------------------------------------------------------------------------- data
def sphere_data(cfg: Config, st: Stream, n: int, N: int, members=None) -> tuple[Tensor, Tensor]:
    """Inputs of every member in one draw each: x0 (e, n, d), X (e, n, N, d), on the device."""
    mem, dev, dt = ensemble(cfg, members), cfg.torch_device, cfg.torch_dtype
    x0 = rf.to_sphere(st.child("x0").normal((n, cfg.d), members=mem, device=dev, dtype=dt))
    X = rf.to_sphere(st.child("X").normal((n, N, cfg.d), members=mem, device=dev, dtype=dt))
    return x0, X


def targets(x0: Tensor, X: Tensor) -> Tensor:
    """Every target of `model.TARGETS`: (..., T)."""
    return torch.stack([rf.target_values(t, x0, X) for t in rf.TARGETS], dim=-1)


def data_stream(cfg: Config, N: int) -> Stream:
    """The data of the learning sweep (N = n_keys) and of the N sweep (other N): one stream per N."""
    return stream(cfg, "learn-data", N)


def split(cfg: Config, N: int, n_train: int, members=None) -> dict[str, Tensor]:
    """Train / validation / test inputs and targets, from the sub-streams ``train``, ``val``, ``test``
    of `data_stream` (nested: the first rows of a larger draw are the smaller draw)."""
    out: dict[str, Tensor] = {}
    st = data_stream(cfg, N)
    for name, n in (("train", n_train), ("val", cfg.n_val), ("test", cfg.n_test)):
        x0, X = sphere_data(cfg, st.child(name), n, N, members)
        out[f"{name}.x0"], out[f"{name}.X"], out[f"{name}.y"] = x0, X, targets(x0, X)
    return out


def first_rows(data: dict[str, Tensor], n_train: int, n_eval: int | None = None) -> dict[str, Tensor]:
    """The first n_train training points (and the first n_eval validation/test points) of ``data``."""
    return {k: v[:, :n_train] if k.startswith("train") else (v if n_eval is None else v[:, :n_eval])
            for k, v in data.items()}


# ----------------------------------------------------------------------------------- models
def head_bank(cfg: Config, members=None) -> Tensor:
    """Gaussian parts of the attention heads per member, (e, n_bank, d+1, d+1) i.i.d. N(0, 1/4), covering
    both ``n_heads`` and the largest M of the heads sweep (models use the first M heads: nested)."""
    return rf.gaussian_heads(stream(cfg, "heads"), cfg.n_bank, cfg.d, members=ensemble(cfg, members),
                             device=cfg.torch_device, dtype=cfg.torch_dtype)


def mlp_bank(cfg: Config, N: int, members=None) -> Tensor:
    """RFMLP weights per member for sequence length N: (e, n_bank (d+1), d(N+1)+1), i.i.d. N(0, 1/(N+2));
    the models use the first P rows (nested widths)."""
    return rf.draw_mlp_weights(stream(cfg, "mlp", N), cfg.n_bank * (cfg.d + 1), cfg.d, N, members=ensemble(cfg, members),
                               device=cfg.torch_device, dtype=cfg.torch_dtype)


def feature_fn(model: str, G: Tensor, alpha: float, Wmlp: Tensor | None, M: int) -> Callable[[Tensor, Tensor], Tensor]:
    """The features of ``model`` with M heads (RFMLP: P = M (d+1) features, the same parameter count)."""
    if model == "rfmlp":
        return rf.feature_map("rfmlp", Wmlp[:, :M * (G.shape[-1])])
    return rf.feature_map(model, rf.biased_heads(model, G[:, :M], alpha))


def fit(cfg: Config, f, data: dict[str, Tensor], n_sizes, M: int, N: int) -> ridge.RidgeFit:
    """Ridge on the features ``f`` for every training size in ``n_sizes``, lambda chosen on validation."""
    chunk = chunk_rows(M, N, cfg.d)
    Phi_val = ridge.features_chunked(f, data["val.x0"], data["val.X"], chunk)
    Phi_test = ridge.features_chunked(f, data["test.x0"], data["test.X"], chunk)
    return ridge.ridge_path(f, data["train.x0"], data["train.X"], data["train.y"], n_sizes, Phi_val,
                            data["val.y"], Phi_test, data["test.y"], cfg.ridge_grid, chunk)


def krr_member(kernel, data: dict[str, Tensor], s: int, grid, sizes=None) -> tuple[np.ndarray, np.ndarray]:
    """Kernel ridge regression (with an intercept) of member s with ``kernel`` on the first n training
    points for n in ``sizes``: test error at the validated lambda (K, T) and that lambda's index (K, T)."""
    kern = lambda a, b: rf.kernel_matrix(kernel, data[f"{a}.x0"][s], data[f"{a}.X"][s], data[f"{b}.x0"][s], data[f"{b}.X"][s])
    _, test, choice = ridge.kernel_ridge(kern("train", "train"), data["train.y"][s], kern("val", "train"),
                                         data["val.y"][s], kern("test", "train"), data["test.y"][s], grid, sizes)
    return _np(test.gather(1, choice[:, None]).squeeze(1)), _np(choice)


def krr_test_mse(kernel, data: dict[str, Tensor], s: int, grid) -> tuple[np.ndarray, np.ndarray]:
    """`krr_member` on the whole training set: (T,), (T,)."""
    test, choice = krr_member(kernel, data, s, grid)
    return test[0], choice[0]


# ------------------------------------------------------------------------ the learning sweep
@dataclass(kw_only=True)
class LearnSweep:
    """Every model on every target at N = n_keys, for the training sizes ``config.n_sizes``."""

    models: np.ndarray
    """(4,) the model names, the first axis of the errors (`model.MODELS`)."""
    targets: np.ndarray
    """(5,) the target names, the last axis T of the errors (`model.TARGETS`)."""
    n_sizes: np.ndarray
    """(K,) training sizes."""
    test_mse: np.ndarray
    """(model, e, K, T) relative test error at the validated lambda."""
    val_mse_grid: np.ndarray
    """(model, e, K, L, T) relative validation error for every lambda."""
    test_mse_grid: np.ndarray
    """(model, e, K, L, T) relative test error for every lambda."""
    lambda_choice: np.ndarray
    """(model, e, K, T) index of the validated lambda."""
    weights: np.ndarray
    """(model, e, P, T) fitted value weights at n = n_train (the only trained parameters)."""
    test_pred: np.ndarray
    """(model, e, n_test, T) test predictions at n = n_train."""
    y_test: np.ndarray
    """(e, n_test, T) test targets."""
    train_x0: np.ndarray
    """(e, n_max, d) training queries."""
    train_X: np.ndarray
    """(e, n_max, N, d) training keys."""
    val_x0: np.ndarray
    """(e, n_val, d)."""
    val_X: np.ndarray
    """(e, n_val, N, d)."""
    test_x0: np.ndarray
    """(e, n_test, d)."""
    test_X: np.ndarray
    """(e, n_test, N, d)."""
    G: np.ndarray
    """(e, n_bank, d+1, d+1) frozen Gaussian parts G_m of the query-key matrices (W_m = s_m W_0 + G_m);
    the models use the first n_heads, the heads sweep the first M."""
    W_mlp: np.ndarray
    """(e, P, d(N+1)+1) frozen first-layer weights of RFMLP (the first P rows of the bank)."""
    intercept: np.ndarray
    """(model, e, T) the fitted (unpenalised) intercepts at n = n_train."""
    bank: Tensor | None = field(default=None, metadata=TRANSIENT)
    """G on the device, for the sweeps around the primary point."""
    mlp: Tensor | None = field(default=None, metadata=TRANSIENT)
    """The RFMLP weight bank on the device (n_bank (d+1) rows)."""
    data: dict[str, Tensor] | None = field(default=None, metadata=TRANSIENT)
    """The inputs and targets on the device (``train.x0``, ``val.X``, ``test.y``, ...)."""
    fits: dict[str, ridge.RidgeFit] | None = field(default=None, metadata=TRANSIENT)
    """Each model's ridge fits."""


def learn(cfg: Config) -> LearnSweep:
    """Every model on every target at N = n_keys, for the training sizes ``cfg.n_sizes``."""
    G = head_bank(cfg)
    data = split(cfg, cfg.n_keys, max(cfg.n_sizes))
    Wmlp = mlp_bank(cfg, cfg.n_keys)
    fits = {model: fit(cfg, feature_fn(model, G, cfg.bias_alpha, Wmlp, cfg.n_heads), data, cfg.n_sizes, cfg.n_heads, cfg.n_keys)
            for model in rf.MODELS}
    stack = lambda attr: torch.stack([getattr(fits[m], attr) for m in rf.MODELS])
    k = cfg.k_train
    return LearnSweep(
        models=np.array(rf.MODELS), targets=np.array(rf.TARGETS), n_sizes=np.array(cfg.n_sizes),
        test_mse=_np(stack("test_mse")), val_mse_grid=_np(stack("val_mse")), test_mse_grid=_np(stack("test_mse_grid")),
        lambda_choice=_np(stack("choice")), weights=_np(stack("weights")[:, :, k]), test_pred=_np(stack("test_pred")[:, :, k]),
        y_test=_np(data["test.y"]),
        train_x0=_np(data["train.x0"]), train_X=_np(data["train.X"]), val_x0=_np(data["val.x0"]), val_X=_np(data["val.X"]),
        test_x0=_np(data["test.x0"]), test_X=_np(data["test.X"]), G=_np(G), W_mlp=_np(Wmlp[:, :cfg.n_params]),
        intercept=_np(stack("intercept")[:, :, k]), bank=G, mlp=Wmlp, data=data, fits=fits)


@dataclass(kw_only=True)
class Headline:
    """The learning curve and test predictions of ``config.model`` on ``config.target`` (a view of `LearnSweep`)."""

    model: str
    target: str
    test_mse: np.ndarray
    """(e, K) relative test error against `LearnSweep.n_sizes`."""
    test_pred: np.ndarray
    """(e, n_test) test predictions at n = n_train."""
    y_test: np.ndarray
    """(e, n_test) test targets."""


def headline(cfg: Config, learn: LearnSweep) -> Headline:
    im, it = rf.MODELS.index(cfg.model), rf.TARGETS.index(cfg.target)
    return Headline(model=cfg.model, target=cfg.target, test_mse=learn.test_mse[im, :, :, it],
                    test_pred=learn.test_pred[im, :, :, it], y_test=learn.y_test[:, :, it])


# ------------------------------------------------------------------ sweeps around the primary point
@dataclass(kw_only=True)
class NKeysSweep:
    """RFA and RFMLP at n = n_train for every N, plus kernel ridge with the RFMLP kernel."""

    grid: np.ndarray
    """(N,) sequence lengths."""
    test_mse: np.ndarray
    """(2 models [rfa, rfmlp], N, e, T) relative test error."""
    krr_rfmlp_test_mse: np.ndarray
    """(N, e, T) kernel ridge with the RFMLP kernel (P = infinity)."""


def nkeys(cfg: Config, learn: LearnSweep) -> NKeysSweep:
    grid = cfg.nkeys.grid
    mse = np.zeros((2, len(grid), cfg.n_seeds, len(rf.TARGETS)))
    krr = np.zeros((len(grid), cfg.n_seeds, len(rf.TARGETS)))
    for iN, N in enumerate(grid):
        if N == cfg.n_keys:   # the learning sweep's point
            data = first_rows(learn.data, cfg.n_train)
            for im, model in enumerate(("rfa", "rfmlp")):
                mse[im, iN] = _np(learn.fits[model].test_mse[:, cfg.k_train])
        else:
            data = split(cfg, N, cfg.n_train)
            Wmlp = mlp_bank(cfg, N)
            for im, model in enumerate(("rfa", "rfmlp")):
                res = fit(cfg, feature_fn(model, learn.bank, 0.0, Wmlp, cfg.n_heads), data, [cfg.n_train], cfg.n_heads, N)
                mse[im, iN] = _np(res.test_mse[:, 0])
        for s in range(cfg.n_seeds):
            krr[iN, s] = krr_test_mse(rf.rfmlp_kernel, data, s, cfg.ridge_grid)[0]
    return NKeysSweep(grid=np.array(grid), test_mse=mse, krr_rfmlp_test_mse=krr)


@dataclass(kw_only=True)
class AlphaSweep:
    """BRFA and BRFA+- at n = n_train with alpha = f * bias_alpha for f in alpha.factors."""

    factors: np.ndarray
    """(A,) multiples of bias_alpha."""
    alpha: np.ndarray
    """(A,) the bias strengths alpha."""
    test_mse: np.ndarray
    """(2 models [brfa, brfa_pm], A, e, T) relative test error."""


def alpha(cfg: Config, learn: LearnSweep) -> AlphaSweep:
    factors = cfg.alpha.factors
    data = first_rows(learn.data, cfg.n_train)
    mse = np.zeros((2, len(factors), cfg.n_seeds, len(rf.TARGETS)))
    for ia, f in enumerate(factors):
        for im, model in enumerate(("brfa", "brfa_pm")):
            if f == 0.0:      # zero mean: exactly the RFA heads
                res = learn.fits["rfa"].test_mse[:, cfg.k_train]
            elif f == 1.0:    # the learning sweep's model
                res = learn.fits[model].test_mse[:, cfg.k_train]
            else:
                res = fit(cfg, feature_fn(model, learn.bank, f * cfg.bias_alpha, None, cfg.n_heads), data, [cfg.n_train],
                          cfg.n_heads, cfg.n_keys).test_mse[:, 0]
            mse[im, ia] = _np(res)
    return AlphaSweep(factors=np.array(factors), alpha=np.array(factors) * cfg.bias_alpha, test_mse=mse)


HEADS_MODELS = ("rfa", "brfa", "rfmlp")
"""The models of the M -> infinity sweep, each against kernel ridge with its closed-form kernel."""


@dataclass(kw_only=True)
class HeadsSweep:
    """RFA, BRFA and RFMLP with M in heads.grid (RFMLP: M (d+1) features) and M = infinity (kernel
    ridge with each model's closed-form kernel), n = heads.n_train, all with an intercept."""

    models: np.ndarray
    """(3,) `HEADS_MODELS`."""
    grid: np.ndarray
    """(M,) head counts."""
    test_mse: np.ndarray
    """(model, M, e, T) relative test error at the validated lambda."""
    test_mse_grid: np.ndarray
    """(model, M, e, L, T) relative test error for every lambda (RFMLP's best width and lambda)."""
    krr_test_mse: np.ndarray
    """(model, e, T) kernel ridge with the model's kernel (M = infinity)."""
    krr_lambda_choice: np.ndarray
    """(model, e, T) index of its validated lambda."""
    krr_sizes: np.ndarray
    """(K,) the kernel-ridge training sizes `Config.krr_curve_sizes` (the first rows; the last is n_train)."""
    krr_curve: np.ndarray
    """(model, e, K, T) kernel ridge with each model's kernel at every size (the last is krr_test_mse)."""
    pred_sizes: np.ndarray
    """(K2,) the sizes of the predicted curves: krr_sizes, then n_train 2^(j/2) out to 32 n_train (where
    RFA's predicted crossing of a BRFA error may lie)."""
    pred_rfa: np.ndarray
    """(K2, T) kernel ridge with K_RFA, predicted from its exact spectrum (`spectrum.rfa_predicted_curves`)."""
    pred_brfa: np.ndarray
    """(2, K2, T) kernel ridge with K_BRFA, predicted from its exact zonal spectrum with the two complements
    of `spectrum.brfa_predicted_curves` (rows: scale 1, trace scale); NaN on the non-zonal sep11."""
    brfa_complement_scales: np.ndarray
    """(2,) the scales of the RFA complement in the two BRFA predictions."""


def predicted_size_grid(cfg: Config) -> tuple[int, ...]:
    """`HeadsSweep.pred_sizes`: the kernel-ridge sizes, then heads.n_train 2^(j/2) for j = 1..10."""
    c = cfg.heads
    return cfg.krr_curve_sizes + tuple(int(round(c.n_train * 2 ** (j / 2))) for j in range(1, 11))


def predicted_kernel_curves(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The theory of the BRFA/RFA ratio, without training: sizes (K2,), RFA (K2, T), BRFA (2, K2, T), scales (2,)."""
    from studies.random_features import spectrum as sp

    sizes = predicted_size_grid(cfg)
    rfa = sp.rfa_predicted_curves(cfg.d, cfg.n_keys, sizes, cfg.ridge_grid, cfg.spectral.kmax)
    brfa = np.full((2, len(sizes), len(rf.TARGETS)), np.nan)
    scales = np.full(2, np.nan)
    if cfg.d >= 3:                                         # the trace quadrature needs S^{d-2}
        zonal = [t for t in rf.TARGETS if t != "sep11"]
        curves, scales = sp.brfa_predicted_curves(cfg.d, cfg.n_keys, cfg.bias_alpha, sizes, cfg.ridge_grid,
                                                  cfg.spectral.kmax, zonal)
        brfa[:, :, [rf.TARGETS.index(t) for t in zonal]] = curves
    return np.array(sizes), rfa, brfa, scales


def heads(cfg: Config, learn: LearnSweep) -> HeadsSweep:
    c = cfg.heads
    data = first_rows(learn.data, c.n_train, c.n_eval)
    nm, L, T = len(HEADS_MODELS), len(cfg.ridge_grid), len(rf.TARGETS)
    sizes = list(cfg.krr_curve_sizes)
    mse = np.zeros((nm, len(c.grid), cfg.n_seeds, T))
    grid_mse = np.zeros((nm, len(c.grid), cfg.n_seeds, L, T))
    curve = np.zeros((nm, cfg.n_seeds, len(sizes), T))
    choice = np.zeros((nm, cfg.n_seeds, len(sizes), T), dtype=np.int64)
    for im, model in enumerate(HEADS_MODELS):
        for iM, M in enumerate(c.grid):
            res = fit(cfg, feature_fn(model, learn.bank, cfg.bias_alpha, learn.mlp, M), data, [c.n_train], M, cfg.n_keys)
            mse[im, iM], grid_mse[im, iM] = _np(res.test_mse[:, 0]), _np(res.test_mse_grid[:, 0])
        kernel = rf.model_kernel(model, cfg.bias_alpha)
        for s in range(cfg.n_seeds):
            curve[im, s], choice[im, s] = krr_member(kernel, data, s, cfg.ridge_grid, sizes)
    pred_sizes, pred_rfa, pred_brfa, scales = predicted_kernel_curves(cfg)
    return HeadsSweep(models=np.array(HEADS_MODELS), grid=np.array(c.grid), test_mse=mse, test_mse_grid=grid_mse,
                      krr_test_mse=curve[:, :, -1], krr_lambda_choice=choice[:, :, -1], krr_sizes=np.array(sizes),
                      krr_curve=curve, pred_sizes=pred_sizes, pred_rfa=pred_rfa, pred_brfa=pred_brfa,
                      brfa_complement_scales=scales)


# ------------------------------------------------------------------- the kernel's spectrum
SPECTRAL_MODELS = ("rfa", "rfmlp")
"""Kernels with an exact spectrum: the learning curves of their kernel ridge regression are predicted."""


@dataclass(kw_only=True)
class SpectralCurves:
    """Kernel ridge regression (M = infinity) with the RFA and RFMLP kernels at n in spectral.sizes,
    against the omniscient risk computed from each kernel's exact spectrum (`spectrum`)."""

    models: np.ndarray
    """(2,) `SPECTRAL_MODELS`."""
    sizes: np.ndarray
    """(K,) training sizes."""
    test_mse: np.ndarray
    """(model, e, K, T) measured relative test error at the validated lambda."""
    lambda_choice: np.ndarray
    """(model, e, K, T) index of the validated lambda."""
    predicted: np.ndarray
    """(model, K, T) the predicted relative test error (best lambda of the grid)."""
    predicted_empirical: np.ndarray
    """(K, T) the RFMLP prediction from a Nystrom spectrum of n_max fresh points (the rival method)."""


def spectral(cfg: Config, learn: LearnSweep) -> SpectralCurves:
    from studies.random_features import spectrum as sp

    c = cfg.spectral
    data = first_rows(learn.data, max(c.sizes), c.n_eval)
    T, K = len(rf.TARGETS), len(c.sizes)
    mse = np.zeros((len(SPECTRAL_MODELS), cfg.n_seeds, K, T))
    choice = np.zeros((len(SPECTRAL_MODELS), cfg.n_seeds, K, T), dtype=np.int64)
    for im, model in enumerate(SPECTRAL_MODELS):
        for s in range(cfg.n_seeds):
            mse[im, s], choice[im, s] = krr_member(rf.model_kernel(model), data, s, cfg.ridge_grid, c.sizes)
    pred = np.stack([sp.rfa_predicted_curves(cfg.d, cfg.n_keys, c.sizes, cfg.ridge_grid, c.kmax),
                     sp.rfmlp_predicted_curves(cfg.d, cfg.n_keys, c.sizes, cfg.ridge_grid, c.max_total)])
    # the rival: the spectrum estimated from a Gram matrix of n_max fresh points (stream "spectrum")
    st = stream(cfg, "spectrum")
    n_s = max(c.sizes)
    x0 = rf.sample_sphere(st.child("x0"), (n_s,), cfg.d, device=cfg.torch_device, dtype=cfg.torch_dtype)
    X = rf.sample_sphere(st.child("X"), (n_s, cfg.n_keys), cfg.d, device=cfg.torch_device, dtype=cfg.torch_dtype)
    eta, power = sp.empirical_spectrum(rf.kernel_matrix(rf.rfmlp_kernel, x0, X, x0, X), targets(x0, X))
    emp = np.array([[sp.best_risk(eta, np.ones_like(eta), power[:, t], n, cfg.ridge_grid, 0.5)[0] for t in range(T)]
                    for n in c.sizes])
    return SpectralCurves(models=np.array(SPECTRAL_MODELS), sizes=np.array(c.sizes), test_mse=mse,
                          lambda_choice=choice, predicted=pred, predicted_empirical=emp)


# ---------------------------------------------------------------------------- the kernel limit
@dataclass(kw_only=True)
class Gram:
    """A Monte-Carlo Gram matrix against its closed form, (set, set) each."""

    formula: np.ndarray
    mc: np.ndarray
    se: np.ndarray
    """Standard error of each Monte-Carlo entry."""


@dataclass(kw_only=True)
class KernelLimit:
    """Monte-Carlo Gram matrices (kernel.heads heads / features) against the closed-form kernels."""

    x0: np.ndarray
    """(set, d) queries."""
    X: np.ndarray
    """(set, N, d) keys."""
    rfa: Gram
    rfmlp: Gram
    brfa: Gram
    """BRFA with mean bias_alpha (the same Gaussian heads as RFA)."""


def kernel(cfg: Config) -> KernelLimit:
    c = cfg.kernel
    dt, dev, N, S, Mk = cfg.torch_dtype, cfg.torch_device, c.n_keys, c.sets, c.heads
    st = stream(cfg, "kernel")
    x0 = rf.sample_sphere(st.child("x0"), (S,), c.d, device=dev, dtype=dt)
    X = rf.sample_sphere(st.child("X"), (S, N), c.d, device=dev, dtype=dt)
    G = rf.gaussian_heads(st.child("heads"), Mk, c.d, device=dev, dtype=dt)
    phi = rf.attention_features(x0[None], X[None], G[None])[0].reshape(S, Mk, c.d + 1)     # (set, m, b)
    contrib = torch.einsum("pmb,qmb->mpq", phi, phi)                                        # (m, set, set)
    Wm = rf.draw_mlp_weights(st.child("mlp"), Mk, c.d, N, device=dev, dtype=dt)
    psi = rf.mlp_features(x0[None], X[None], Wm[None])[0]                                    # (set, p)
    contrib_mlp = torch.einsum("pk,qk->kpq", psi, psi)                                      # (p, set, set)
    Wb = rf.biased_heads("brfa", G[None], cfg.bias_alpha)
    phib = rf.attention_features(x0[None], X[None], Wb)[0].reshape(S, Mk, c.d + 1)
    contrib_b = torch.einsum("pmb,qmb->mpq", phib, phib)
    gram = lambda contributions, formula: Gram(formula=_np(formula), mc=_np(contributions.mean(0)),
                                               se=_np(contributions.std(0) / math.sqrt(contributions.shape[0])))
    return KernelLimit(x0=_np(x0), X=_np(X), rfa=gram(contrib, rf.rfa_kernel(x0, X, x0, X)),
                       rfmlp=gram(contrib_mlp, rf.rfmlp_kernel(x0, X, x0, X)),
                       brfa=gram(contrib_b, rf.brfa_kernel(x0, X, x0, X, cfg.bias_alpha)))


# ------------------------------------------------------------------------------------ FAVOR+
def favor_settings(d: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The (x, y) pairs of the FAVOR+ experiments: names, x (S, d), y (S, d).

    ``a1``: |x| = |y| = 0.6, cos 0.3 (closed-form MSE and ORF checks); ``id_pos``: y = -x;
    ``id_trig``: y = x; ``a3``: |x| = |y| = 1, cos -0.9 (SM small); ``e1``: x = y = e_1 / 2
    (z = e_1, the worst case of the unfixed QR); ``angle_k``: |x| = |y| = 1 at angles 0..pi;
    ``align_k``: x = y = z / 2 with |z| = 1 at angle 0..pi from e_1.
    """
    e1, e2 = np.eye(d)[0], np.eye(d)[1]
    names, xs, ys = [], [], []

    def add(name, x, y):
        names.append(name), xs.append(x), ys.append(y)

    def pair(r, c):
        return r * e1, r * (c * e1 + math.sqrt(max(0.0, 1 - c * c)) * e2)

    add("a1", *pair(0.6, 0.3))
    add("id_pos", 0.6 * e1, -0.6 * e1)
    add("id_trig", 0.6 * e1, 0.6 * e1)
    add("a3", *pair(1.0, -0.9))
    add("e1", 0.5 * e1, 0.5 * e1)
    for k, th in enumerate(np.linspace(0, math.pi, 9)):
        add(f"angle_{k}", *pair(1.0, math.cos(th)))
    for k, ph in enumerate(np.linspace(0, math.pi, 9)):
        z = math.cos(ph) * e1 + math.sin(ph) * e2
        add(f"align_{k}", z / 2, z / 2)
    return names, np.array(xs), np.array(ys)


class MomentAccumulator:
    """Running sums of err = est - truth (1st, 2nd, 4th powers) and of est, over chunks of draws."""

    def __init__(self, truth: Tensor):
        self.truth = truth
        self.n = 0
        self.s1 = self.s2 = self.s4 = torch.zeros_like(truth)
        self.max_rel = torch.zeros_like(truth)

    def add(self, est: Tensor) -> None:            # est (R, S)
        err = est - self.truth
        self.n += est.shape[0]
        self.s1 = self.s1 + err.sum(0)
        self.s2 = self.s2 + err.pow(2).sum(0)
        self.s4 = self.s4 + err.pow(4).sum(0)
        self.max_rel = torch.maximum(self.max_rel, (err.abs() / self.truth.abs()).amax(0))

    def summary(self) -> dict[str, Tensor]:
        n = self.n
        mean_err, mse = self.s1 / n, self.s2 / n
        return {"mean": self.truth + mean_err, "mse": mse,
                "se_mean": torch.sqrt((mse - mean_err ** 2).clamp_min(0) / n),
                "se_mse": torch.sqrt((self.s4 / n - mse ** 2).clamp_min(0) / n),
                "max_rel_err": self.max_rel}


GROUP_KERNEL = ("iid.pos", "iid.trig", "iid.hyp", "orf.pos")
"""Estimators evaluated on the closed-form and angle settings."""
GROUP_PITFALL = ("orf.pos", "orf_unfixed.pos", "orf_sqrtd.pos")
"""Estimators evaluated on the alignment settings (the official code's pitfalls)."""


@dataclass(kw_only=True)
class Moments:
    """Monte-Carlo moments of one estimator, (S,) over the settings (NaN where it was not evaluated)."""

    mean: np.ndarray
    mse: np.ndarray
    se_mean: np.ndarray
    se_mse: np.ndarray
    max_rel_err: np.ndarray
    """Largest |estimate - SM| / SM over the draws."""


@dataclass(kw_only=True)
class FavorClosedForms:
    """The closed forms beside the measurements, (S,) over the settings."""

    iid: dict[str, np.ndarray]
    """MSE of the i.i.d. estimators: ``pos``, ``trig``, ``hyp``."""
    iid_mc_se: dict[str, np.ndarray]
    """Standard error of the Monte-Carlo MSE of each i.i.d. estimator at favor.draws draws."""
    orf: dict[str, np.ndarray]
    """``pos``: exact MSE of orthogonal positive features."""
    orf_bound: np.ndarray
    """The Performers bound on the orthogonal MSE."""
    bias_unfixed: np.ndarray
    """Relative bias without the QR sign fix (z along e_1)."""
    bias_sqrtd: np.ndarray
    """Relative bias with every feature norm sqrt(d)."""


@dataclass(kw_only=True)
class FavorEstimates:
    """i.i.d. and orthogonal estimates of SM(x, y) = exp(x.y) at the settings of `favor_settings`."""

    settings: np.ndarray
    """(S,) setting names."""
    x: np.ndarray
    """(S, d)."""
    y: np.ndarray
    """(S, d)."""
    sm: np.ndarray
    """(S,) SM(x, y)."""
    iid: dict[str, Moments]
    """``pos``, ``trig``, ``hyp`` with i.i.d. features."""
    orf: dict[str, Moments]
    """``pos`` with sign-fixed orthogonal features and chi_d norms."""
    orf_unfixed: dict[str, Moments]
    """``pos`` without the QR sign fix (the official default)."""
    orf_sqrtd: dict[str, Moments]
    """``pos`` with every norm sqrt(d) (the official ``scaling=1``)."""
    pred: FavorClosedForms

    def index(self, name: str) -> int:
        return [str(s) for s in self.settings].index(name)

    def family(self, prefix: str) -> list[int]:
        """The indices of the settings ``<prefix>_k`` (``angle`` or ``align``)."""
        return [k for k, n in enumerate(self.settings) if str(n).startswith(prefix + "_")]


def favor(cfg: Config) -> FavorEstimates:
    """i.i.d. (trig, positive, hyperbolic) and orthogonal (sign-fixed, unfixed QR, sqrt(d) norms)
    estimates from favor.draws draws of favor.m features, accumulated in chunks of draws.  The
    orthogonal variants share one QR per draw (common random numbers)."""
    c = cfg.favor
    d, m, R, dt, dev = c.d, c.m, c.draws, cfg.torch_dtype, cfg.torch_device
    names, xs, ys = favor_settings(d)
    x, y = torch.tensor(xs, dtype=dt, device=dev), torch.tensor(ys, dtype=dt, device=dev)
    truth = torch.exp((x * y).sum(-1))
    align = [i for i, n in enumerate(names) if n.startswith("align_") or n == "e1"]
    other = [i for i, n in enumerate(names) if not n.startswith("align_")]
    subsets = {k: other for k in GROUP_KERNEL}
    subsets.update({k: sorted(set(align) | set(subsets.get(k, []))) for k in GROUP_PITFALL})
    acc = {k: MomentAccumulator(truth[idx]) for k, idx in subsets.items()}
    st = stream(cfg, "favor")
    for start in range(0, R, DRAW_CHUNK):
        draws = range(start, min(start + DRAW_CHUNK, R))        # draw r is member r of its stream
        om = fv.iid_features(st.child("iid"), draws, m, d, device=dev, dtype=dt)
        dirs_fixed, dirs_unfixed = fv.orthogonal_directions(st.child("orf"), draws, m, d, device=dev, dtype=dt)
        chi = fv.chi_norms(st.child("orf"), draws, m, d, device=dev, dtype=dt)
        banks = {"iid": om, "orf": dirs_fixed * chi, "orf_unfixed": dirs_unfixed * chi,
                 "orf_sqrtd": dirs_fixed * math.sqrt(d)}
        for key, idx in subsets.items():
            bank, kind = key.split(".")
            acc[key].add(fv.estimates(kind, x[idx], y[idx], banks[bank]))
    moments: dict[str, dict[str, Moments]] = {"iid": {}, "orf": {}, "orf_unfixed": {}, "orf_sqrtd": {}}
    for key, a in acc.items():
        bank, kind = key.split(".")
        stats = {}
        for stat, v in a.summary().items():
            full = np.full(len(names), np.nan)
            full[subsets[key]] = _np(v)
            stats[stat] = full
        moments[bank][kind] = Moments(**stats)
    pairs = list(zip(xs, ys))
    pred = FavorClosedForms(
        iid={kind: fv.mse_iid(kind, xs, ys, m) for kind in ("pos", "trig", "hyp")},
        iid_mc_se={kind: fv.mc_mse_se(kind, xs, ys, m, R) for kind in ("pos", "trig", "hyp")},
        orf={"pos": np.array([fv.mse_orf_positive(a, b, m, d) for a, b in pairs])},
        orf_bound=np.array([fv.orf_theorem_bound(a, b, m, d) for a, b in pairs]),
        bias_unfixed=fv.bias_unfixed_qr((xs + ys)[:, 0], m, d),
        bias_sqrtd=fv.bias_fixed_norms(np.linalg.norm(xs + ys, axis=-1), d))
    return FavorEstimates(settings=np.array(names), x=xs, y=ys, sm=_np(truth), pred=pred, **moments)


def m_sweep_draws(cfg: Config, kind: str, k: int, m: int, d: int, draws: int) -> Iterator[Tensor]:
    """The feature draws at the k-th m of an m sweep, in chunks (r, m, d) on the device, from the
    stream ``favor_m`` with keys (kind, k): i.i.d. or orthogonal (sign-fixed, chi_d norms).  The
    kernel and the attention sweeps read the same streams (common random numbers)."""
    dt, dev = cfg.torch_dtype, cfg.torch_device
    st = stream(cfg, "favor_m", kind, k)
    for start in range(0, draws, DRAW_CHUNK):
        idx = range(start, min(start + DRAW_CHUNK, draws))
        yield (fv.iid_features(st, idx, m, d, device=dev, dtype=dt) if kind == "iid"
               else fv.orthogonal_features(st, idx, m, d, device=dev, dtype=dt))


@dataclass(kw_only=True)
class MonteCarloMSE:
    """Monte-Carlo MSE against m, (m,) each."""

    mse: np.ndarray
    se_mse: np.ndarray


@dataclass(kw_only=True)
class FavorMSweep:
    """The MSE of the positive estimate of SM at the ``a1`` setting against m, i.i.d. and orthogonal."""

    grid: np.ndarray
    """(m,) feature counts."""
    iid: MonteCarloMSE
    orf: MonteCarloMSE
    pred: dict[str, np.ndarray]
    """``iid``, ``orf``: the closed forms, (m,)."""


def favor_m(cfg: Config) -> FavorMSweep:
    c = cfg.favor_m
    d, dt, dev = c.d, cfg.torch_dtype, cfg.torch_device
    _, xs, ys = favor_settings(d)
    x, y = torch.tensor(xs[:1], dtype=dt, device=dev), torch.tensor(ys[:1], dtype=dt, device=dev)
    truth = torch.exp((x * y).sum(-1))
    nm = len(c.grid)
    out = {kind: MonteCarloMSE(mse=np.zeros(nm), se_mse=np.zeros(nm)) for kind in ("iid", "orf")}
    pred = {"iid": np.zeros(nm), "orf": np.zeros(nm)}
    for k, m in enumerate(c.grid):
        for kind in ("iid", "orf"):
            acc = MomentAccumulator(truth)
            for om in m_sweep_draws(cfg, kind, k, m, d, c.draws):
                acc.add(fv.estimates("pos", x, y, om))
            summ = acc.summary()
            out[kind].mse[k] = float(summ["mse"][0])
            out[kind].se_mse[k] = float(summ["se_mse"][0])
        pred["iid"][k] = float(fv.mse_iid("pos", xs[0], ys[0], m))
        pred["orf"][k] = fv.mse_orf_positive(xs[0], ys[0], m, d)
    return FavorMSweep(grid=np.array(c.grid), pred=pred, **out)


def attention_tokens(cfg: Config) -> tuple[Tensor, Tensor, Tensor]:
    """Q, K (L, d) ~ N(0, 0.3^2 I) and V (L, 4) ~ N(0, I) of the attention comparison, on the CPU."""
    c, dt = cfg.attn, cfg.torch_dtype
    st = stream(cfg, "attn", "tokens")
    Q = ATTN_TOKEN_SCALE * st.child("q").normal((c.length, c.d), dtype=dt)
    K = ATTN_TOKEN_SCALE * st.child("k").normal((c.length, c.d), dtype=dt)
    V = st.child("v").normal((c.length, ATTN_VALUE_DIM), dtype=dt)
    return Q, K, V


@dataclass(kw_only=True)
class FavorAttention:
    """Exact softmax attention against FAVOR+ attention (positive features) for every m."""

    grid: np.ndarray
    """(m,) feature counts."""
    Q: np.ndarray
    """(L, d) queries."""
    K: np.ndarray
    """(L, d) keys."""
    V: np.ndarray
    """(L, v) values."""
    exact: np.ndarray
    """(L, v) exact softmax attention outputs."""
    iid: MonteCarloMSE
    """Output MSE (summed over v, mean over queries) with i.i.d. features."""
    orf: MonteCarloMSE
    """The same with orthogonal features."""
    pred: dict[str, np.ndarray]
    """``iid``: the delta-method MSE M_1 / m, (m,); ``iid2``: to second order, M_1 / m + M_2 / m^2."""
    A_exact: np.ndarray
    """(L, L) the exact attention matrix."""
    A_favor: np.ndarray
    """(L, L) the FAVOR+ attention matrix of one orthogonal draw with attn.m features."""
    one_draw: np.ndarray
    """(L, v) that draw's outputs."""


def attn(cfg: Config) -> FavorAttention:
    c = cfg.attn
    d, dt, dev = c.d, cfg.torch_dtype, cfg.torch_device
    Q, K, V = (t.to(dev) for t in attention_tokens(cfg))
    exact = fv.softmax_attention(Q, K, V)
    nm = len(c.grid)
    out = {kind: MonteCarloMSE(mse=np.zeros(nm), se_mse=np.zeros(nm)) for kind in ("iid", "orf")}
    pred, pred2 = np.zeros(nm), np.zeros(nm)
    M1, M2 = fv.attention_mse_coefficients(Q, K, V)
    for k, m in enumerate(c.grid):
        for kind in ("iid", "orf"):
            errs = [(fv.favor_attention(Q, K, V, om) - exact).pow(2).sum(-1).mean(-1)     # (r,)
                    for om in m_sweep_draws(cfg, kind, k, m, d, c.draws)]
            err = torch.cat(errs)
            out[kind].mse[k] = float(err.mean())
            out[kind].se_mse[k] = float(err.std() / math.sqrt(err.numel()))
        pred[k] = fv.favor_attention_mse(Q, K, V, m)
        pred2[k] = M1 / m + M2 / m ** 2
    # one draw at m = attn.m, for the side-by-side picture
    om = fv.orthogonal_features(stream(cfg, "attn", "one-draw"), 1, c.m, d, device=dev, dtype=dt)
    q, kk = Q / d ** 0.25, K / d ** 0.25
    A_hat = fv.phi_positive(q, om[0]) @ fv.phi_positive(kk, om[0]).T
    return FavorAttention(
        grid=np.array(c.grid), Q=_np(Q), K=_np(K), V=_np(V), exact=_np(exact), pred={"iid": pred, "iid2": pred2},
        A_exact=_np(torch.softmax(q @ kk.T, dim=-1)), A_favor=_np(A_hat / A_hat.sum(-1, keepdim=True)),
        one_draw=_np(fv.favor_attention(Q, K, V, om)[0]), **out)


# ------------------------------------------------------------- FAVOR+ at a trained softmax head
TRAINED_TOKEN_SCALE = 2.0
"""Tokens of the trained head's task are N(0, (2^2/d) I): |x| about 2."""
TRAINED_ESTIMATORS = ("iid.pos", "iid.trig", "orf.pos")
"""The estimators compared at the trained queries and keys: positive and trigonometric with i.i.d.
features, positive with orthogonal (sign-fixed, chi_d) features."""


def trained_task(cfg: Config, split: str, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """In-context linear regression: keys x_j (n, L, d), labels y_j = beta.x_j + noise (n, L), query
    x_0 (n, d), target beta.x_0 (n,), from the stream ``trained`` / split (CPU)."""
    c, dt = cfg.trained, cfg.torch_dtype
    st = stream(cfg, "trained", split)
    s = TRAINED_TOKEN_SCALE / math.sqrt(c.d)
    X = s * st.child("X").normal((n, c.length, c.d), dtype=dt)
    x0 = s * st.child("x0").normal((n, c.d), dtype=dt)
    beta = st.child("beta").normal((n, c.d), dtype=dt)
    y = (X @ beta[:, :, None]).squeeze(-1) + c.noise * st.child("noise").normal((n, c.length), dtype=dt)
    return x0, X, y, (x0 * beta).sum(-1)


def head_output(WQ: Tensor, WK: Tensor, x0: Tensor, X: Tensor, y: Tensor) -> Tensor:
    """One softmax head: sum_j softmax_j(q.k_j / sqrt(d)) y_j, q = W_Q x_0, k_j = W_K x_j."""
    d = WQ.shape[0]
    logits = (X @ WK.T @ (WQ @ x0[:, :, None])).squeeze(-1) / math.sqrt(d)
    return (stable_softmax(logits) * y).sum(-1)


@dataclass(kw_only=True)
class TrainedFavor:
    """FAVOR+ estimates of SM(q', k') = exp(q.k / sqrt d) at the query-key pairs of a trained softmax
    head (q' = q / d^{1/4}), and at isotropic pairs of the same norms (the rival)."""

    loss: np.ndarray
    """(steps + 1,) training loss (MSE) along full-batch GD."""
    W_Q: np.ndarray
    """(d, d) trained query matrix."""
    W_K: np.ndarray
    """(d, d) trained key matrix."""
    q: np.ndarray
    """(P, d) scaled queries q' of the P = n_eval L pairs (each query repeated over its L keys)."""
    k: np.ndarray
    """(P, d) scaled keys k'."""
    q_iso: np.ndarray
    """(P, d) the rival: q' with its norm kept and a uniform random direction."""
    k_iso: np.ndarray
    """(P, d) the same for k'."""
    sm: np.ndarray
    """(P,) SM(q', k')."""
    estimators: np.ndarray
    """(3,) `TRAINED_ESTIMATORS`."""
    mse: np.ndarray
    """(3, P) Monte-Carlo MSE of each estimator at each pair."""
    se_mse: np.ndarray
    """(3, P) its empirical standard error."""
    pred: np.ndarray
    """(3, P) the closed-form MSE at the trained pairs (Lemma 2; the exact ORF series)."""
    pred_se: np.ndarray
    """(3, P) the theoretical SE of the MC MSE at trained.draws draws (i.i.d. estimators; NaN for ORF)."""
    pred_iso: np.ndarray
    """(3, P) the closed-form MSE at the isotropic pairs."""


def trained(cfg: Config) -> TrainedFavor:
    """Train W_Q, W_K of one softmax head by full-batch GD, then estimate exp(q'.k') at its pairs."""
    c, dt = cfg.trained, cfg.torch_dtype
    x0, X, y, t = trained_task(cfg, "train", c.n_seq)
    st = stream(cfg, "trained", "init")
    WQ = (st.child("W_Q").normal((c.d, c.d), dtype=dt) / math.sqrt(c.d)).requires_grad_()
    WK = (st.child("W_K").normal((c.d, c.d), dtype=dt) / math.sqrt(c.d)).requires_grad_()
    losses = []
    for step in range(c.steps + 1):
        loss = (head_output(WQ, WK, x0, X, y) - t).pow(2).mean()
        losses.append(float(loss.detach()))
        if step == c.steps:
            break
        gQ, gK = torch.autograd.grad(loss, (WQ, WK))
        with torch.no_grad():
            WQ -= c.lr * gQ
            WK -= c.lr * gK
    WQ, WK = WQ.detach(), WK.detach()
    e0, eX, _, _ = trained_task(cfg, "eval", c.n_eval)
    qs = (e0 @ WQ.T) / c.d ** 0.25                                           # (e, d)
    ks = (eX @ WK.T) / c.d ** 0.25                                           # (e, L, d)
    q = qs[:, None, :].expand(-1, c.length, -1).reshape(-1, c.d)
    k = ks.reshape(-1, c.d)
    iso = stream(cfg, "trained", "iso")
    unit = lambda z: z / z.norm(dim=-1, keepdim=True)
    q_iso = q.norm(dim=-1, keepdim=True) * unit(iso.child("q").normal(tuple(q.shape), dtype=dt))
    k_iso = k.norm(dim=-1, keepdim=True) * unit(iso.child("k").normal(tuple(k.shape), dtype=dt))
    dev = cfg.torch_device
    qd, kd = q.to(dev), k.to(dev)
    truth = torch.exp((qd * kd).sum(-1))
    acc = {key: MomentAccumulator(truth) for key in TRAINED_ESTIMATORS}
    fst = stream(cfg, "trained", "features")
    for start in range(0, c.draws, DRAW_CHUNK):
        draws = range(start, min(start + DRAW_CHUNK, c.draws))
        banks = {"iid": fv.iid_features(fst.child("iid"), draws, c.m, c.d, device=dev, dtype=dt),
                 "orf": fv.orthogonal_features(fst.child("orf"), draws, c.m, c.d, device=dev, dtype=dt)}
        for key in TRAINED_ESTIMATORS:
            bank, kind = key.split(".")
            acc[key].add(fv.estimates(kind, qd, kd, banks[bank]))
    summ = [acc[key].summary() for key in TRAINED_ESTIMATORS]
    qn, kn, qi, ki = _np(q), _np(k), _np(q_iso), _np(k_iso)

    def closed(a, b):
        orf = np.array([fv.mse_orf_positive(u, v, c.m, c.d) for u, v in zip(a, b)])
        return np.stack([fv.mse_iid("pos", a, b, c.m), fv.mse_iid("trig", a, b, c.m), orf])

    pred_se = np.stack([fv.mc_mse_se("pos", qn, kn, c.m, c.draws), fv.mc_mse_se("trig", qn, kn, c.m, c.draws),
                        np.full(len(qn), np.nan)])
    return TrainedFavor(loss=np.array(losses), W_Q=_np(WQ), W_K=_np(WK), q=qn, k=kn, q_iso=qi, k_iso=ki,
                        sm=_np(truth), estimators=np.array(TRAINED_ESTIMATORS),
                        mse=np.stack([_np(s_["mse"]) for s_ in summ]), se_mse=np.stack([_np(s_["se_mse"]) for s_ in summ]),
                        pred=closed(qn, kn), pred_se=pred_se, pred_iso=closed(qi, ki))


# ------------------------------------------------------------------------------------- phases
PHASES = (
    Phase("learn", learn),                                  # the primary experiment
    Phase("headline", headline, needs=("learn",)),
    Phase("nkeys", nkeys, needs=("learn",)),
    Phase("alpha", alpha, needs=("learn",)),
    Phase("heads", heads, needs=("learn",)),
    Phase("spectral", spectral, needs=("learn",)),
    Phase("kernel", kernel, inputs=lambda cfg: cfg.kernel),
    Phase("favor", favor, inputs=lambda cfg: cfg.favor),
    Phase("favor_m", favor_m, inputs=lambda cfg: cfg.favor_m),
    Phase("attn", attn, inputs=lambda cfg: cfg.attn),
    Phase("trained", trained, inputs=lambda cfg: cfg.trained, grad=True),
)


def run(config: Config, *, progress: bool = True) -> Record:
    """Every phase at ``config``; deterministic given the config."""
    from studies.random_features import NAME

    return run_phases(NAME, config, PHASES, progress=progress)
