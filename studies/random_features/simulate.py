"""The sub-experiments of one run, one function per phase, each returning a typed result (see
`studies.random_features.config` for which fields drive each).

`run` is the list of phases; `workbench.phases.run_phases` owns threads, autograd, progress and
timing and stores each result as ``<phase>.<field>``.  The learning sweep's head bank, data and
fits are handed to the sweeps around the primary point in memory (TRANSIENT fields: never stored,
freed when the run ends).

Every random draw comes from its own CPU generator ``config.generator(i)`` with

    i = stream * 10^9 + sub * 10^4 + member,

so member s of an ensemble depends only on ``seed + s`` (a standalone run with ``seed + s`` and
``n_seeds = 1`` reproduces it), and the streams never overlap.  The integer seeds are stored in the
record (``*.seed`` arrays).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from workbench.phases import TRANSIENT, Phase, run_phases
from workbench.record import Record

from studies.random_features import favor as fv
from studies.random_features import model as rf
from studies.random_features import ridge
from studies.random_features.config import Config

# stream ids
LEARN_DATA, HEADS, MLP, NKEYS_DATA, KERNEL, FAVOR = 1, 2, 3, 4, 5, 6
ATTN_TOKEN_SCALE = 0.3
"""Queries and keys of the attention comparison are N(0, 0.3^2 I): logits of order 0.1 and
|q' + k'|^2 of order 0.7, where the delta-method prediction is accurate at moderate m."""
ATTN_VALUE_DIM = 4
DRAW_CHUNK = 10_000
"""Feature draws per chunk of the FAVOR+ Monte Carlo."""


def stream_index(stream: int, sub: int, member: int) -> int:
    return stream * 10 ** 9 + sub * 10 ** 4 + member


def generator(cfg: Config, stream: int, sub: int, member: int = 0) -> torch.Generator:
    return cfg.generator(stream_index(stream, sub, member))


def seed_of(cfg: Config, stream: int, sub: int, member: int = 0) -> int:
    return cfg.seed + stream_index(stream, sub, member)


def chunk_rows(M: int, N: int, d: int, budget: int = 1 << 22) -> int:
    """Rows per feature chunk so that the (rows, M, N) score tensor stays below ``budget`` numbers."""
    return max(16, budget // max(1, M * N * (d + 1)))


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# ------------------------------------------------------------------------------------- data
def sphere_data(cfg: Config, stream: int, sub: int, n: int, N: int) -> tuple[Tensor, Tensor]:
    """Per-member inputs stacked on the ensemble axis: x0 (e, n, d), X (e, n, N, d), on the device."""
    x0s, Xs = [], []
    for s in range(cfg.n_seeds):
        g = generator(cfg, stream, sub, s)
        x0s.append(rf.sample_sphere((n,), cfg.d, g, cfg.torch_dtype))
        Xs.append(rf.sample_sphere((n, N), cfg.d, g, cfg.torch_dtype))
    dev = cfg.torch_device
    return torch.stack(x0s).to(dev), torch.stack(Xs).to(dev)


def targets(x0: Tensor, X: Tensor) -> Tensor:
    """Every target of `model.TARGETS`: (..., T)."""
    return torch.stack([rf.target_values(t, x0, X) for t in rf.TARGETS], dim=-1)


def split(cfg: Config, stream: int, sub0: int, n_train: int, N: int) -> dict[str, Tensor]:
    """Train / validation / test inputs and targets from three sub-streams (sub0, sub0+1, sub0+2)."""
    out: dict[str, Tensor] = {}
    for name, sub, n in (("train", sub0, n_train), ("val", sub0 + 1, cfg.n_val), ("test", sub0 + 2, cfg.n_test)):
        x0, X = sphere_data(cfg, stream, sub, n, N)
        out[f"{name}.x0"], out[f"{name}.X"], out[f"{name}.y"] = x0, X, targets(x0, X)
    return out


def data_seeds(cfg: Config, stream: int, sub0: int) -> np.ndarray:
    """(3, e) integer seeds of the train / validation / test draws."""
    return np.array([[seed_of(cfg, stream, sub0 + k, s) for s in range(cfg.n_seeds)] for k in range(3)])


def first_rows(data: dict[str, Tensor], n_train: int, n_eval: int | None = None) -> dict[str, Tensor]:
    """The first n_train training points (and the first n_eval validation/test points) of ``data``."""
    return {k: v[:, :n_train] if k.startswith("train") else (v if n_eval is None else v[:, :n_eval])
            for k, v in data.items()}


# ----------------------------------------------------------------------------------- models
def head_bank(cfg: Config) -> Tensor:
    """Gaussian parts of the attention heads per member, (e, n_bank, d+1, d+1), covering both
    ``n_heads`` and the largest M of the heads sweep (models use the first M heads)."""
    G = [rf.gaussian_heads(cfg.n_bank, cfg.d, generator(cfg, HEADS, 0, s), cfg.torch_dtype) for s in range(cfg.n_seeds)]
    return torch.stack(G).to(cfg.torch_device)


def mlp_bank(cfg: Config, N: int) -> Tensor:
    """RFMLP weights per member for sequence length N: (e, P, d(N+1)+1)."""
    W = [rf.draw_mlp_weights(cfg.n_params, cfg.d, N, generator(cfg, MLP, N, s), cfg.torch_dtype) for s in range(cfg.n_seeds)]
    return torch.stack(W).to(cfg.torch_device)


def feature_fn(model: str, G: Tensor, alpha: float, Wmlp: Tensor | None, M: int) -> Callable[[Tensor, Tensor], Tensor]:
    if model == "rfmlp":
        return rf.feature_map("rfmlp", Wmlp)
    return rf.feature_map(model, rf.biased_heads(model, G[:, :M], alpha))


def with_intercept(f: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """The features of ``f`` plus one constant feature (an intercept, which the models lack)."""
    return lambda x0, X: torch.cat([f(x0, X), torch.ones(*x0.shape[:-1], 1, dtype=x0.dtype, device=x0.device)], dim=-1)


def fit(cfg: Config, f, data: dict[str, Tensor], n_sizes, M: int, N: int) -> ridge.RidgeFit:
    """Ridge on the features ``f`` for every training size in ``n_sizes``, lambda chosen on validation."""
    chunk = chunk_rows(M, N, cfg.d)
    Phi_val = ridge.features_chunked(f, data["val.x0"], data["val.X"], chunk)
    Phi_test = ridge.features_chunked(f, data["test.x0"], data["test.X"], chunk)
    return ridge.ridge_path(f, data["train.x0"], data["train.X"], data["train.y"], n_sizes, Phi_val,
                            data["val.y"], Phi_test, data["test.y"], cfg.ridge_grid, chunk)


def krr_test_mse(kernel, data: dict[str, Tensor], s: int, grid) -> tuple[np.ndarray, np.ndarray]:
    """Kernel ridge regression of member s with ``kernel``: test error at the validated lambda (T,), and that lambda's index (T,)."""
    kern = lambda a, b: rf.kernel_matrix(kernel, data[f"{a}.x0"][s], data[f"{a}.X"][s], data[f"{b}.x0"][s], data[f"{b}.X"][s])
    _, test, choice = ridge.kernel_ridge(kern("train", "train"), data["train.y"][s], kern("val", "train"),
                                         data["val.y"][s], kern("test", "train"), data["test.y"][s], grid)
    return _np(test.gather(0, choice[None]).squeeze(0)), _np(choice)


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
    """(e, P, d(N+1)+1) frozen first-layer weights of RFMLP."""
    data_seed: np.ndarray
    """(3, e) seeds of the train / validation / test draws."""
    heads_seed: np.ndarray
    """(e,) seeds of the head bank."""
    mlp_seed: np.ndarray
    """(e,) seeds of the RFMLP weights."""
    bank: Tensor | None = field(default=None, metadata=TRANSIENT)
    """G on the device, for the sweeps around the primary point."""
    data: dict[str, Tensor] | None = field(default=None, metadata=TRANSIENT)
    """The inputs and targets on the device (``train.x0``, ``val.X``, ``test.y``, ...)."""
    fits: dict[str, ridge.RidgeFit] | None = field(default=None, metadata=TRANSIENT)
    """Each model's ridge fits."""


def learn(cfg: Config) -> LearnSweep:
    """Every model on every target at N = n_keys, for the training sizes ``cfg.n_sizes``."""
    G = head_bank(cfg)
    data = split(cfg, LEARN_DATA, 0, max(cfg.n_sizes), cfg.n_keys)
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
        test_x0=_np(data["test.x0"]), test_X=_np(data["test.X"]), G=_np(G), W_mlp=_np(Wmlp),
        data_seed=data_seeds(cfg, LEARN_DATA, 0),
        heads_seed=np.array([seed_of(cfg, HEADS, 0, s) for s in range(cfg.n_seeds)]),
        mlp_seed=np.array([seed_of(cfg, MLP, cfg.n_keys, s) for s in range(cfg.n_seeds)]),
        bank=G, data=data, fits=fits)


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
    data_seed: np.ndarray
    """(N, 3, e) seeds of the train / validation / test draws at each N."""


def nkeys(cfg: Config, learn: LearnSweep) -> NKeysSweep:
    grid = cfg.nkeys.grid
    mse = np.zeros((2, len(grid), cfg.n_seeds, len(rf.TARGETS)))
    krr = np.zeros((len(grid), cfg.n_seeds, len(rf.TARGETS)))
    seeds = []
    for iN, N in enumerate(grid):
        if N == cfg.n_keys:   # the learning sweep's point
            data = first_rows(learn.data, cfg.n_train)
            for im, model in enumerate(("rfa", "rfmlp")):
                mse[im, iN] = _np(learn.fits[model].test_mse[:, cfg.k_train])
            seeds.append(data_seeds(cfg, LEARN_DATA, 0))
        else:
            data = split(cfg, NKEYS_DATA, 3 * N, cfg.n_train, N)
            Wmlp = mlp_bank(cfg, N)
            for im, model in enumerate(("rfa", "rfmlp")):
                res = fit(cfg, feature_fn(model, learn.bank, 0.0, Wmlp, cfg.n_heads), data, [cfg.n_train], cfg.n_heads, N)
                mse[im, iN] = _np(res.test_mse[:, 0])
            seeds.append(data_seeds(cfg, NKEYS_DATA, 3 * N))
        for s in range(cfg.n_seeds):
            krr[iN, s] = krr_test_mse(rf.rfmlp_kernel, data, s, cfg.ridge_grid)[0]
    return NKeysSweep(grid=np.array(grid), test_mse=mse, krr_rfmlp_test_mse=krr, data_seed=np.stack(seeds))


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


@dataclass(kw_only=True)
class InterceptFit:
    """BRFA and BRFA+- with one extra constant feature at n = n_train (an extension), beside the
    mean-feature residual that bounds their M, n -> infinity risk on zonal targets."""

    test_mse: np.ndarray
    """(2 models [brfa, brfa_pm], e, T) relative test error."""
    bound: np.ndarray
    """(2, T) the mean-feature residual (1 for the non-zonal sep11, where no bound is derived)."""


def intercept(cfg: Config, learn: LearnSweep) -> InterceptFit:
    data = first_rows(learn.data, cfg.n_train)
    mse = np.zeros((2, cfg.n_seeds, len(rf.TARGETS)))
    bound = np.ones((2, len(rf.TARGETS)))
    for im, model in enumerate(("brfa", "brfa_pm")):
        f = with_intercept(feature_fn(model, learn.bank, cfg.bias_alpha, None, cfg.n_heads))
        mse[im] = _np(fit(cfg, f, data, [cfg.n_train], cfg.n_heads, cfg.n_keys).test_mse[:, 0])
        for t, target in enumerate(rf.TARGETS):
            if target != "sep11":
                bound[im, t] = rf.mean_feature_residual(target, cfg.d, cfg.bias_alpha, model)
    return InterceptFit(test_mse=mse, bound=bound)


@dataclass(kw_only=True)
class HeadsSweep:
    """RFA with M in heads.grid and M = infinity (kernel ridge with the arc-cos kernel), n = heads.n_train."""

    grid: np.ndarray
    """(M,) head counts."""
    test_mse: np.ndarray
    """(M, e, T) relative test error."""
    krr_test_mse: np.ndarray
    """(e, T) kernel ridge with the RFA kernel (M = infinity)."""
    krr_lambda_choice: np.ndarray
    """(e, T) index of its validated lambda."""


def heads(cfg: Config, learn: LearnSweep) -> HeadsSweep:
    c = cfg.heads
    data = first_rows(learn.data, c.n_train, c.n_eval)
    mse = np.zeros((len(c.grid), cfg.n_seeds, len(rf.TARGETS)))
    for iM, M in enumerate(c.grid):
        res = fit(cfg, feature_fn("rfa", learn.bank, 0.0, None, M), data, [c.n_train], M, cfg.n_keys)
        mse[iM] = _np(res.test_mse[:, 0])
    krr = np.zeros((cfg.n_seeds, len(rf.TARGETS)))
    choice = np.zeros((cfg.n_seeds, len(rf.TARGETS)), dtype=np.int64)
    for s in range(cfg.n_seeds):
        krr[s], choice[s] = krr_test_mse(rf.rfa_kernel, data, s, cfg.ridge_grid)
    return HeadsSweep(grid=np.array(c.grid), test_mse=mse, krr_test_mse=krr, krr_lambda_choice=choice)


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
    seed: np.ndarray
    """(3,) seeds of the inputs, the RFA heads and the RFMLP weights."""
    rfa: Gram
    rfmlp: Gram


def kernel(cfg: Config) -> KernelLimit:
    c = cfg.kernel
    dt, dev, N, S, Mk = cfg.torch_dtype, cfg.torch_device, c.n_keys, c.sets, c.heads
    g = generator(cfg, KERNEL, 0)
    x0 = rf.sample_sphere((S,), c.d, g, dt).to(dev)
    X = rf.sample_sphere((S, N), c.d, g, dt).to(dev)
    G = rf.gaussian_heads(Mk, c.d, generator(cfg, KERNEL, 1), dt).to(dev)
    phi = rf.attention_features(x0[None], X[None], G[None])[0].reshape(S, Mk, c.d + 1)     # (set, m, b)
    contrib = torch.einsum("pmb,qmb->mpq", phi, phi)                                        # (m, set, set)
    Wm = rf.draw_mlp_weights(Mk, c.d, N, generator(cfg, KERNEL, 2), dt).to(dev)
    psi = rf.mlp_features(x0[None], X[None], Wm[None])[0]                                    # (set, p)
    contrib_mlp = torch.einsum("pk,qk->kpq", psi, psi)                                      # (p, set, set)
    gram = lambda contributions, formula: Gram(formula=_np(formula), mc=_np(contributions.mean(0)),
                                               se=_np(contributions.std(0) / math.sqrt(contributions.shape[0])))
    return KernelLimit(x0=_np(x0), X=_np(X), seed=np.array([seed_of(cfg, KERNEL, k) for k in range(3)]),
                       rfa=gram(contrib, rf.rfa_kernel(x0, X, x0, X)), rfmlp=gram(contrib_mlp, rf.rfmlp_kernel(x0, X, x0, X)))


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
    seed: np.ndarray
    """(2,) seeds of the i.i.d. and orthogonal draws."""
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
    g_iid, g_orf = generator(cfg, FAVOR, 0), generator(cfg, FAVOR, 1)
    for start in range(0, R, DRAW_CHUNK):
        r = min(DRAW_CHUNK, R - start)
        om = fv.iid_features(r, m, d, g_iid, dt).to(dev)
        dirs_fixed, dirs_unfixed = fv.orthogonal_directions(r, m, d, g_orf, dt)
        chi = fv.chi_norms(r, m, d, g_orf, dt)
        banks = {"iid": om, "orf": (dirs_fixed * chi).to(dev), "orf_unfixed": (dirs_unfixed * chi).to(dev),
                 "orf_sqrtd": (dirs_fixed * math.sqrt(d)).to(dev)}
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
    return FavorEstimates(settings=np.array(names), x=xs, y=ys, sm=_np(truth),
                          seed=np.array([seed_of(cfg, FAVOR, 0), seed_of(cfg, FAVOR, 1)]), pred=pred, **moments)


def m_sweep_draws(cfg: Config, kind: str, k: int, m: int, d: int, draws: int) -> Iterator[Tensor]:
    """The feature draws at the k-th m of an m sweep, in chunks (r, m, d) on the device: i.i.d.
    from stream (FAVOR, 10 + k), orthogonal (sign-fixed, chi_d norms) from (FAVOR, 100 + k).  The
    kernel and the attention sweeps read the same streams (common random numbers)."""
    dt = cfg.torch_dtype
    gen = generator(cfg, FAVOR, (10 if kind == "iid" else 100) + k)
    for start in range(0, draws, DRAW_CHUNK):
        r = min(DRAW_CHUNK, draws - start)
        om = fv.iid_features(r, m, d, gen, dt) if kind == "iid" else fv.orthogonal_features(r, m, d, gen, dtype=dt)
        yield om.to(cfg.torch_device)


def m_sweep_seeds(cfg: Config, n: int) -> np.ndarray:
    """(n, 2) seeds of the i.i.d. and orthogonal draws of an m sweep over n values of m."""
    return np.array([[seed_of(cfg, FAVOR, 10 + k), seed_of(cfg, FAVOR, 100 + k)] for k in range(n)])


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
    seed: np.ndarray
    """(m, 2) seeds of the i.i.d. and orthogonal draws."""


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
    return FavorMSweep(grid=np.array(c.grid), pred=pred, seed=m_sweep_seeds(cfg, nm), **out)


def attention_tokens(cfg: Config) -> tuple[Tensor, Tensor, Tensor]:
    """Q, K (L, d) ~ N(0, 0.3^2 I) and V (L, 4) ~ N(0, I) of the attention comparison, on the CPU."""
    c, dt = cfg.attn, cfg.torch_dtype
    g = generator(cfg, FAVOR, 200)
    Q = ATTN_TOKEN_SCALE * torch.randn(c.length, c.d, generator=g, dtype=dt)
    K = ATTN_TOKEN_SCALE * torch.randn(c.length, c.d, generator=g, dtype=dt)
    V = torch.randn(c.length, ATTN_VALUE_DIM, generator=g, dtype=dt)
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
    """``iid``: the delta-method MSE, (m,)."""
    A_exact: np.ndarray
    """(L, L) the exact attention matrix."""
    A_favor: np.ndarray
    """(L, L) the FAVOR+ attention matrix of one orthogonal draw with attn.m features."""
    one_draw: np.ndarray
    """(L, v) that draw's outputs."""
    seed: np.ndarray
    """(2,) seeds of the tokens and of the single draw."""
    draw_seed: np.ndarray
    """(m, 2) seeds of the i.i.d. and orthogonal draws of the sweep."""


def attn(cfg: Config) -> FavorAttention:
    c = cfg.attn
    d, dt, dev = c.d, cfg.torch_dtype, cfg.torch_device
    Q, K, V = (t.to(dev) for t in attention_tokens(cfg))
    exact = fv.softmax_attention(Q, K, V)
    nm = len(c.grid)
    out = {kind: MonteCarloMSE(mse=np.zeros(nm), se_mse=np.zeros(nm)) for kind in ("iid", "orf")}
    pred = np.zeros(nm)
    for k, m in enumerate(c.grid):
        for kind in ("iid", "orf"):
            errs = [(fv.favor_attention(Q, K, V, om) - exact).pow(2).sum(-1).mean(-1)     # (r,)
                    for om in m_sweep_draws(cfg, kind, k, m, d, c.draws)]
            err = torch.cat(errs)
            out[kind].mse[k] = float(err.mean())
            out[kind].se_mse[k] = float(err.std() / math.sqrt(err.numel()))
        pred[k] = fv.favor_attention_mse(Q, K, V, m)
    # one draw at m = attn.m, for the side-by-side picture
    om = fv.orthogonal_features(1, c.m, d, generator(cfg, FAVOR, 500), dtype=dt).to(dev)
    q, kk = Q / d ** 0.25, K / d ** 0.25
    A_hat = fv.phi_positive(q, om[0]) @ fv.phi_positive(kk, om[0]).T
    return FavorAttention(
        grid=np.array(c.grid), Q=_np(Q), K=_np(K), V=_np(V), exact=_np(exact), pred={"iid": pred},
        A_exact=_np(torch.softmax(q @ kk.T, dim=-1)), A_favor=_np(A_hat / A_hat.sum(-1, keepdim=True)),
        one_draw=_np(fv.favor_attention(Q, K, V, om)[0]),
        seed=np.array([seed_of(cfg, FAVOR, s) for s in (200, 500)]), draw_seed=m_sweep_seeds(cfg, nm), **out)


# ------------------------------------------------------------------------------------- phases
PHASES = (
    Phase("learn", learn),                                  # the primary experiment
    Phase("headline", headline, needs=("learn",)),
    Phase("nkeys", nkeys, needs=("learn",)),
    Phase("alpha", alpha, needs=("learn",)),
    Phase("intercept", intercept, needs=("learn",)),
    Phase("heads", heads, needs=("learn",)),
    Phase("kernel", kernel, inputs=lambda cfg: cfg.kernel),
    Phase("favor", favor, inputs=lambda cfg: cfg.favor),
    Phase("favor_m", favor_m, inputs=lambda cfg: cfg.favor_m),
    Phase("attn", attn, inputs=lambda cfg: cfg.attn),
)


def run(config: Config, *, progress: bool = True) -> Record:
    """Every phase at ``config``; deterministic given the config."""
    from studies.random_features import NAME

    return run_phases(NAME, config, PHASES, progress=progress)
