"""The sub-experiments of one run (see `studies.random_features.config` for how each derives from
the config).  Every random draw comes from its own CPU generator ``config.generator(i)`` with

    i = stream * 10^9 + sub * 10^4 + member,

so member s of an ensemble depends only on ``seed + s`` (a standalone run with ``seed + s`` and
``n_seeds = 1`` reproduces it), and the streams never overlap.  The integer seeds are stored in the
record (``*.seed`` arrays).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from studies.random_features import favor as fv
from studies.random_features import model as rf
from studies.random_features import ridge
from studies.random_features.config import Config

# stream ids
LEARN_DATA, HEADS, MLP, NKEYS_DATA, KERNEL, FAVOR = 1, 2, 3, 4, 5, 6
ATTN_MODELS = ("rfa", "brfa", "brfa_pm")
ATTN_TOKEN_SCALE = 0.3
"""Queries and keys of the attention comparison are N(0, 0.3^2 I): logits of order 0.1 and
|q' + k'|^2 of order 0.7, where the delta-method prediction is accurate at moderate m."""
ATTN_VALUE_DIM = 4


def stream_index(stream: int, sub: int, member: int) -> int:
    return stream * 10 ** 9 + sub * 10 ** 4 + member


def generator(cfg: Config, stream: int, sub: int, member: int = 0) -> torch.Generator:
    return cfg.generator(stream_index(stream, sub, member))


def seed_of(cfg: Config, stream: int, sub: int, member: int = 0) -> int:
    return cfg.seed + stream_index(stream, sub, member)


def chunk_rows(M: int, N: int, d: int, budget: int = 1 << 22) -> int:
    """Rows per feature chunk so that the (rows, M, N) score tensor stays below ``budget`` numbers."""
    return max(16, budget // max(1, M * N * (d + 1)))


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


# ----------------------------------------------------------------------------------- models
def head_bank(cfg: Config) -> Tensor:
    """Gaussian parts of the attention heads per member, (e, M_all, d+1, d+1), M_all covering
    both ``n_heads`` and the largest M of ``heads_grid`` (models use the first M heads)."""
    M_all = max(cfg.n_heads, max(cfg.heads_grid))
    G = [rf.gaussian_heads(M_all, cfg.d, generator(cfg, HEADS, 0, s), cfg.torch_dtype) for s in range(cfg.n_seeds)]
    return torch.stack(G).to(cfg.torch_device)


def mlp_bank(cfg: Config, N: int) -> Tensor:
    """RFMLP weights per member for sequence length N: (e, P, d(N+1)+1)."""
    W = [rf.draw_mlp_weights(cfg.n_params, cfg.d, N, generator(cfg, MLP, N, s), cfg.torch_dtype) for s in range(cfg.n_seeds)]
    return torch.stack(W).to(cfg.torch_device)


def feature_fn(model: str, G: Tensor, alpha: float, Wmlp: Tensor | None, M: int) -> Callable[[Tensor, Tensor], Tensor]:
    if model == "rfmlp":
        return rf.feature_map("rfmlp", Wmlp)
    return rf.feature_map(model, rf.biased_heads(model, G[:, :M], alpha))


def fit(cfg: Config, f, data: dict[str, Tensor], n_sizes, M: int, N: int, n_eval: int | None = None) -> ridge.RidgeFit:
    chunk = chunk_rows(M, N, cfg.d)
    ne = n_eval
    Phi_val = ridge.features_chunked(f, data["val.x0"][:, :ne], data["val.X"][:, :ne], chunk)
    Phi_test = ridge.features_chunked(f, data["test.x0"][:, :ne], data["test.X"][:, :ne], chunk)
    return ridge.ridge_path(f, data["train.x0"], data["train.X"], data["train.y"], n_sizes, Phi_val,
                            data["val.y"][:, :ne], Phi_test, data["test.y"][:, :ne], cfg.ridge_grid, chunk)


# ----------------------------------------------------------------------------- experiments
def learn_sweep(cfg: Config, G: Tensor, tick) -> tuple[dict[str, np.ndarray], dict[str, Tensor], dict]:
    """Every model on every target at N = n_keys, for the training sizes ``cfg.n_sizes``."""
    data = split(cfg, LEARN_DATA, 0, max(cfg.n_sizes), cfg.n_keys)
    Wmlp = mlp_bank(cfg, cfg.n_keys)
    k_train = cfg.n_factors.index(1.0)
    fits = {}
    for model in rf.MODELS:
        fits[model] = fit(cfg, feature_fn(model, G, cfg.bias_alpha, Wmlp, cfg.n_heads), data, cfg.n_sizes, cfg.n_heads, cfg.n_keys)
        tick(f"learn {model}")
    stack = lambda attr: torch.stack([getattr(fits[m], attr) for m in rf.MODELS])
    arrays = {
        "learn.n_sizes": np.array(cfg.n_sizes),
        "learn.test_mse": stack("test_mse"),                    # (model, e, K, T)
        "learn.val_mse_grid": stack("val_mse"),                 # (model, e, K, L, T)
        "learn.test_mse_grid": stack("test_mse_grid"),          # (model, e, K, L, T)
        "learn.lambda_choice": stack("choice"),                 # (model, e, K, T)
        "learn.weights": stack("weights")[:, :, k_train],       # (model, e, P, T) at n_train
        "learn.test_pred": stack("test_pred")[:, :, k_train],   # (model, e, n_test, T) at n_train
        "learn.y_test": data["test.y"],
        "learn.train_x0": data["train.x0"], "learn.train_X": data["train.X"],
        "learn.val_x0": data["val.x0"], "learn.val_X": data["val.X"],
        "learn.test_x0": data["test.x0"], "learn.test_X": data["test.X"],
        "learn.data_seed": data_seeds(cfg, LEARN_DATA, 0),
        "learn.heads_seed": np.array([seed_of(cfg, HEADS, 0, s) for s in range(cfg.n_seeds)]),
        "learn.mlp_seed": np.array([seed_of(cfg, MLP, cfg.n_keys, s) for s in range(cfg.n_seeds)]),
    }
    return arrays, data, fits


def nkeys_sweep(cfg: Config, G: Tensor, main_data, main_fits, tick) -> dict[str, np.ndarray]:
    """RFA and RFMLP at n = n_train for every N, plus kernel ridge with the RFMLP kernel."""
    k_train = cfg.n_factors.index(1.0)
    mse = np.zeros((2, len(cfg.n_keys_grid), cfg.n_seeds, len(rf.TARGETS)))
    krr = np.zeros((len(cfg.n_keys_grid), cfg.n_seeds, len(rf.TARGETS)))
    seeds = []
    for iN, N in enumerate(cfg.n_keys_grid):
        if N == cfg.n_keys:
            data = {k: v[:, :cfg.n_train] if k.startswith("train") else v for k, v in main_data.items()}
            for im, model in enumerate(("rfa", "rfmlp")):
                mse[im, iN] = main_fits[model].test_mse[:, k_train].cpu().numpy()
            seeds.append(data_seeds(cfg, LEARN_DATA, 0))
        else:
            data = split(cfg, NKEYS_DATA, 3 * N, cfg.n_train, N)
            Wmlp = mlp_bank(cfg, N)
            for im, model in enumerate(("rfa", "rfmlp")):
                res = fit(cfg, feature_fn(model, G, 0.0, Wmlp, cfg.n_heads), data, [cfg.n_train], cfg.n_heads, N)
                mse[im, iN] = res.test_mse[:, 0].cpu().numpy()
            seeds.append(data_seeds(cfg, NKEYS_DATA, 3 * N))
        for s in range(cfg.n_seeds):
            kern = lambda a, b: rf.kernel_matrix(rf.rfmlp_kernel, data[f"{a}.x0"][s], data[f"{a}.X"][s],
                                                 data[f"{b}.x0"][s], data[f"{b}.X"][s])
            _, test, choice = ridge.kernel_ridge(kern("train", "train"), data["train.y"][s], kern("val", "train"),
                                                 data["val.y"][s], kern("test", "train"), data["test.y"][s], cfg.ridge_grid)
            krr[iN, s] = test.gather(0, choice[None]).squeeze(0).cpu().numpy()
        tick(f"N = {N}")
    return {"nkeys.grid": np.array(cfg.n_keys_grid), "nkeys.test_mse": mse, "nkeys.krr_rfmlp_test_mse": krr,
            "nkeys.data_seed": np.stack(seeds)}


def alpha_sweep(cfg: Config, G: Tensor, main_data, main_fits, tick) -> dict[str, np.ndarray]:
    """BRFA and BRFA+- at n = n_train with alpha = f * bias_alpha for f in alpha_factors."""
    k_train = cfg.n_factors.index(1.0)
    data = {k: v[:, :cfg.n_train] if k.startswith("train") else v for k, v in main_data.items()}
    mse = np.zeros((2, len(cfg.alpha_factors), cfg.n_seeds, len(rf.TARGETS)))
    for ia, f in enumerate(cfg.alpha_factors):
        for im, model in enumerate(("brfa", "brfa_pm")):
            if f == 0.0:      # zero mean: exactly the RFA heads
                res = main_fits["rfa"].test_mse[:, k_train]
            elif f == 1.0:    # the learn sweep's model
                res = main_fits[model].test_mse[:, k_train]
            else:
                res = fit(cfg, feature_fn(model, G, f * cfg.bias_alpha, None, cfg.n_heads), data, [cfg.n_train],
                          cfg.n_heads, cfg.n_keys).test_mse[:, 0]
            mse[im, ia] = res.cpu().numpy()
        tick(f"alpha = {f:g} bias_alpha")
    return {"alpha.factors": np.array(cfg.alpha_factors), "alpha.alpha": np.array(cfg.alpha_factors) * cfg.bias_alpha,
            "alpha.test_mse": mse}


def with_intercept(f: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """The features of ``f`` plus one constant feature (an intercept, which the models lack)."""
    return lambda x0, X: torch.cat([f(x0, X), torch.ones(*x0.shape[:-1], 1, dtype=x0.dtype, device=x0.device)], dim=-1)


def intercept_sweep(cfg: Config, G: Tensor, main_data, tick) -> dict[str, np.ndarray]:
    """BRFA and BRFA+- with one extra constant feature at n = n_train (an extension), beside the
    mean-feature residual that bounds their M, n -> infinity risk on zonal targets."""
    data = {k: v[:, :cfg.n_train] if k.startswith("train") else v for k, v in main_data.items()}
    mse = np.zeros((2, cfg.n_seeds, len(rf.TARGETS)))
    bound = np.ones((2, len(rf.TARGETS)))
    for im, model in enumerate(("brfa", "brfa_pm")):
        f = with_intercept(feature_fn(model, G, cfg.bias_alpha, None, cfg.n_heads))
        mse[im] = fit(cfg, f, data, [cfg.n_train], cfg.n_heads, cfg.n_keys).test_mse[:, 0].cpu().numpy()
        for t, target in enumerate(rf.TARGETS):
            if target != "sep11":
                bound[im, t] = rf.mean_feature_residual(target, cfg.d, cfg.bias_alpha, model)
        tick(f"{model} + intercept")
    return {"intercept.test_mse": mse, "intercept.bound": bound}


def heads_sweep(cfg: Config, G: Tensor, main_data, tick) -> dict[str, np.ndarray]:
    """RFA with M in heads_grid and M = infinity (kernel ridge with the arc-cos kernel), n = krr_n."""
    data = {k: v[:, :cfg.krr_n] if k.startswith("train") else v[:, :cfg.krr_eval] for k, v in main_data.items()}
    mse = np.zeros((len(cfg.heads_grid), cfg.n_seeds, len(rf.TARGETS)))
    for iM, M in enumerate(cfg.heads_grid):
        res = fit(cfg, feature_fn("rfa", G, 0.0, None, M), data, [cfg.krr_n], M, cfg.n_keys)
        mse[iM] = res.test_mse[:, 0].cpu().numpy()
        tick(f"M = {M}")
    krr = np.zeros((cfg.n_seeds, len(rf.TARGETS)))
    choice = np.zeros((cfg.n_seeds, len(rf.TARGETS)), dtype=np.int64)
    for s in range(cfg.n_seeds):
        kern = lambda a, b: rf.kernel_matrix(rf.rfa_kernel, data[f"{a}.x0"][s], data[f"{a}.X"][s],
                                             data[f"{b}.x0"][s], data[f"{b}.X"][s])
        _, test, ch = ridge.kernel_ridge(kern("train", "train"), data["train.y"][s], kern("val", "train"),
                                         data["val.y"][s], kern("test", "train"), data["test.y"][s], cfg.ridge_grid)
        krr[s] = test.gather(0, ch[None]).squeeze(0).cpu().numpy()
        choice[s] = ch.cpu().numpy()
    tick("M = infinity (kernel ridge)")
    return {"heads.grid": np.array(cfg.heads_grid), "heads.test_mse": mse, "heads.krr_test_mse": krr,
            "heads.krr_lambda_choice": choice}


def kernel_check(cfg: Config, tick) -> dict[str, np.ndarray]:
    """Monte-Carlo Gram matrices (kernel_heads heads / features) against the closed-form kernels."""
    dt, dev, N, S, Mk = cfg.torch_dtype, cfg.torch_device, cfg.n_keys, cfg.kernel_sets, cfg.kernel_heads
    g = generator(cfg, KERNEL, 0)
    x0 = rf.sample_sphere((S,), cfg.d, g, dt).to(dev)
    X = rf.sample_sphere((S, N), cfg.d, g, dt).to(dev)
    G = rf.gaussian_heads(Mk, cfg.d, generator(cfg, KERNEL, 1), dt).to(dev)
    phi = rf.attention_features(x0[None], X[None], G[None])[0].reshape(S, Mk, cfg.d + 1)     # (set, m, b)
    contrib = torch.einsum("pmb,qmb->mpq", phi, phi)                                          # (m, set, set)
    Wm = rf.draw_mlp_weights(Mk, cfg.d, N, generator(cfg, KERNEL, 2), dt).to(dev)
    psi = rf.mlp_features(x0[None], X[None], Wm[None])[0]                                      # (set, p)
    contrib_mlp = torch.einsum("pk,qk->kpq", psi, psi)                                        # (p, set, set)
    out = {"kernel.x0": x0, "kernel.X": X,
           "kernel.seed": np.array([seed_of(cfg, KERNEL, k) for k in range(3)])}
    for name, c, formula in (("rfa", contrib, rf.rfa_kernel(x0, X, x0, X)), ("rfmlp", contrib_mlp, rf.rfmlp_kernel(x0, X, x0, X))):
        out[f"kernel.{name}.formula"] = formula
        out[f"kernel.{name}.mc"] = c.mean(0)
        out[f"kernel.{name}.se"] = c.std(0) / math.sqrt(c.shape[0])
    tick("kernel limit")
    return {k: v.cpu().numpy() if isinstance(v, Tensor) else v for k, v in out.items()}


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


def favor_estimators(cfg: Config, tick) -> tuple[dict[str, np.ndarray], list[str]]:
    """i.i.d. (trig, positive, hyperbolic) and orthogonal (sign-fixed, unfixed QR, sqrt(d) norms)
    estimates from favor_draws draws of favor_m features, accumulated in chunks of draws.  The
    orthogonal variants share one QR per draw (common random numbers).  Settings an estimator does
    not visit are NaN in the record."""
    d, m, R, dt, dev = cfg.favor_d, cfg.favor_m, cfg.favor_draws, cfg.torch_dtype, cfg.torch_device
    names, xs, ys = favor_settings(d)
    x, y = torch.tensor(xs, dtype=dt, device=dev), torch.tensor(ys, dtype=dt, device=dev)
    truth = torch.exp((x * y).sum(-1))
    align = [i for i, n in enumerate(names) if n.startswith("align_") or n == "e1"]
    other = [i for i, n in enumerate(names) if not n.startswith("align_")]
    subsets = {k: other for k in GROUP_KERNEL}
    subsets.update({k: sorted(set(align) | set(subsets.get(k, []))) for k in GROUP_PITFALL})
    acc = {k: MomentAccumulator(truth[idx]) for k, idx in subsets.items()}
    g_iid, g_orf = generator(cfg, FAVOR, 0), generator(cfg, FAVOR, 1)
    chunk = 10_000
    for start in range(0, R, chunk):
        r = min(chunk, R - start)
        om = fv.iid_features(r, m, d, g_iid, dt).to(dev)
        dirs_fixed, dirs_unfixed = fv.orthogonal_directions(r, m, d, g_orf, dt)
        chi = fv.chi_norms(r, m, d, g_orf, dt)
        banks = {"iid": om, "orf": (dirs_fixed * chi).to(dev), "orf_unfixed": (dirs_unfixed * chi).to(dev),
                 "orf_sqrtd": (dirs_fixed * math.sqrt(d)).to(dev)}
        for key, idx in subsets.items():
            bank, kind = key.split(".")
            acc[key].add(fv.estimates(kind, x[idx], y[idx], banks[bank]))
    out: dict[str, np.ndarray] = {"favor.x": xs, "favor.y": ys, "favor.sm": truth.cpu().numpy(),
                                  "favor.seed": np.array([seed_of(cfg, FAVOR, 0), seed_of(cfg, FAVOR, 1)])}
    for key, a in acc.items():
        for stat, v in a.summary().items():
            full = np.full(len(names), np.nan)
            full[subsets[key]] = v.cpu().numpy()
            out[f"favor.{key}.{stat}"] = full
    # closed forms beside the measurements
    for kind in ("pos", "trig", "hyp"):
        out[f"favor.pred.iid.{kind}"] = fv.mse_iid(kind, xs, ys, m)
        out[f"favor.pred.iid.{kind}.mc_se"] = fv.mc_mse_se(kind, xs, ys, m, R)
    out["favor.pred.orf.pos"] = np.array([fv.mse_orf_positive(a, b, m, d) for a, b in zip(xs, ys)])
    out["favor.pred.orf_bound"] = np.array([fv.orf_theorem_bound(a, b, m, d) for a, b in zip(xs, ys)])
    out["favor.pred.bias_unfixed"] = fv.bias_unfixed_qr((xs + ys)[:, 0], m, d)
    out["favor.pred.bias_sqrtd"] = fv.bias_fixed_norms(np.linalg.norm(xs + ys, axis=-1), d)
    tick("FAVOR+ estimators")
    return out, names


def favor_m_sweep(cfg: Config, tick) -> dict[str, np.ndarray]:
    """For every m in favor_m_grid, i.i.d. and orthogonal positive features (mc_draws draws each):
    the MSE of the kernel estimate at the ``a1`` setting, and exact softmax attention against
    FAVOR+ attention on a sequence of attn_len tokens (the same draws serve both)."""
    d, L, dt, dev, R = cfg.favor_d, cfg.attn_len, cfg.torch_dtype, cfg.torch_device, cfg.mc_draws
    _, xs, ys = favor_settings(d)
    x, y = torch.tensor(xs[:1], dtype=dt, device=dev), torch.tensor(ys[:1], dtype=dt, device=dev)
    truth = torch.exp((x * y).sum(-1))
    g = generator(cfg, FAVOR, 200)
    Q = (ATTN_TOKEN_SCALE * torch.randn(L, d, generator=g, dtype=dt)).to(dev)
    K = (ATTN_TOKEN_SCALE * torch.randn(L, d, generator=g, dtype=dt)).to(dev)
    V = torch.randn(L, ATTN_VALUE_DIM, generator=g, dtype=dt).to(dev)
    exact = fv.softmax_attention(Q, K, V)
    nm = len(cfg.favor_m_grid)
    keys = [f"{p}.{kind}.{s}" for p in ("favor_m", "attn") for kind in ("iid", "orf") for s in ("mse", "se_mse")]
    out = {k: np.zeros(nm) for k in keys + ["favor_m.pred.iid", "favor_m.pred.orf", "attn.pred.iid"]}
    for k, m in enumerate(cfg.favor_m_grid):
        for kind, gen in (("iid", generator(cfg, FAVOR, 10 + k)), ("orf", generator(cfg, FAVOR, 100 + k))):
            acc = MomentAccumulator(truth)
            errs = []
            for start in range(0, R, 10_000):
                r = min(10_000, R - start)
                om = fv.iid_features(r, m, d, gen, dt) if kind == "iid" else fv.orthogonal_features(r, m, d, gen, dtype=dt)
                om = om.to(dev)
                acc.add(fv.estimates("pos", x, y, om))
                approx = fv.favor_attention(Q, K, V, om)                             # (r, l, v)
                errs.append((approx - exact).pow(2).sum(-1).mean(-1))                # (r,)
            summ = acc.summary()
            err = torch.cat(errs)
            out[f"favor_m.{kind}.mse"][k] = float(summ["mse"][0])
            out[f"favor_m.{kind}.se_mse"][k] = float(summ["se_mse"][0])
            out[f"attn.{kind}.mse"][k] = float(err.mean())
            out[f"attn.{kind}.se_mse"][k] = float(err.std() / math.sqrt(err.numel()))
        out["favor_m.pred.iid"][k] = float(fv.mse_iid("pos", xs[0], ys[0], m))
        out["favor_m.pred.orf"][k] = fv.mse_orf_positive(xs[0], ys[0], m, d)
        out["attn.pred.iid"][k] = fv.favor_attention_mse(Q, K, V, m)
    # one draw at m = favor_m, for the side-by-side picture
    om = fv.orthogonal_features(1, cfg.favor_m, d, generator(cfg, FAVOR, 500), dtype=dt).to(dev)
    q, kk = Q / d ** 0.25, K / d ** 0.25
    A_hat = fv.phi_positive(q, om[0]) @ fv.phi_positive(kk, om[0]).T
    out.update({"favor_m.grid": np.array(cfg.favor_m_grid), "attn.Q": Q, "attn.K": K, "attn.V": V,
                "attn.exact": exact, "attn.A_exact": torch.softmax(q @ kk.T, dim=-1),
                "attn.A_favor": A_hat / A_hat.sum(-1, keepdim=True), "attn.one_draw": fv.favor_attention(Q, K, V, om)[0],
                "favor_m.seed": np.array([[seed_of(cfg, FAVOR, 10 + k), seed_of(cfg, FAVOR, 100 + k)] for k in range(nm)]),
                "attn.seed": np.array([seed_of(cfg, FAVOR, s) for s in (200, 500)])})
    tick("FAVOR+ MSE vs m and attention")
    return {k: v.cpu().numpy() if isinstance(v, Tensor) else v for k, v in out.items()}
