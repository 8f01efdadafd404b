"""Figures of the random-feature attention study: pure functions of a record."""
from __future__ import annotations

import math

import matplotlib.ticker
import numpy as np

from studies.random_features import favor as fv
from studies.random_features import model as rf
from studies.random_features.simulate import (AlphaSweep, FavorAttention, FavorEstimates, FavorMSweep, HeadsSweep,
                                              KernelLimit, LearnSweep, NKeysSweep, SpectralCurves)
from workbench.phases import load
from workbench.plotting import new_figure, seed_band
from workbench.record import Record

MODEL_LABEL = {"rfa": "RFA", "brfa": "BRFA", "brfa_pm": "BRFA±", "rfmlp": "RFMLP"}
MODEL_COLOR = {"rfa": "C0", "brfa": "C1", "brfa_pm": "C2", "rfmlp": "C3"}
KIND_COLOR = {"trig": "C3", "pos": "C0", "hyp": "C2", "orf": "C4"}


def _log_ticks(ax, values) -> None:
    """Plain tick labels at the sweep values of a log axis (no crowded minor labels)."""
    ax.set_xticks(list(values))
    ax.set_xticklabels([f"{v:g}" for v in values], fontsize=7)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def learning_curves(rec: Record):
    """Relative test error against n (log-log), one panel per target, one line per model."""
    cfg, learn, heads = rec.config, load(rec, "learn", LearnSweep), load(rec, "heads", HeadsSweep)
    sizes = np.array(cfg.n_sizes)
    fig, axes = new_figure(len(rf.TARGETS), 1, width=2.6, height=2.6, sharey=True)
    for t, target in enumerate(rf.TARGETS):
        ax = axes[0, t]
        for mi, model in enumerate(rf.MODELS):
            lw = 2.2 if (model == cfg.model and target == cfg.target) else 1.2
            seed_band(ax, sizes, learn.test_mse[mi, :, :, t], label=MODEL_LABEL[model],
                      color=MODEL_COLOR[model], log=True, marker="o", ms=3, lw=lw)
        for im, model in enumerate(heads.models):
            ax.plot([cfg.heads.n_train], [heads.krr_test_mse[im, :, t].mean()], "*", color=MODEL_COLOR[str(model)], ms=9,
                    mec="k", label=f"{MODEL_LABEL[str(model)]}, M=∞ (KRR)" if t == 0 else None)
        ax.set_xscale("log"), ax.set_yscale("log")
        _log_ticks(ax, sizes)
        ax.set_title(target + (" (headline)" if target == cfg.target else ""))
        ax.set_xlabel("training samples n")
    axes[0, 0].set_ylabel("relative test MSE")
    axes[0, -1].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"every model with an unpenalised intercept; d={cfg.d}, N={cfg.n_keys}, M={cfg.n_heads} (P={cfg.n_params}); "
                 f"band: min-max over {cfg.n_seeds} seed(s)")
    return fig


def error_vs_n_keys(rec: Record):
    """geg1 and sep11 error against N at n = n_train: RFA flat, RFMLP rising (and its kernel limit)."""
    cfg, s = rec.config, load(rec, "nkeys", NKeysSweep)
    grid = s.grid
    fig, axes = new_figure(2, 1, width=3.4, height=2.8, sharey=True)
    for ax, target in zip(axes[0], ("geg1", "sep11")):
        t = rf.TARGETS.index(target)
        for im, model in enumerate(("rfa", "rfmlp")):
            seed_band(ax, grid, s.test_mse[im, :, :, t].T, label=f"{MODEL_LABEL[model]}, M={cfg.n_heads}",
                      color=MODEL_COLOR[model], marker="o", ms=3)
        seed_band(ax, grid, s.krr_rfmlp_test_mse[:, :, t].T, label="RFMLP, P=∞ (KRR)", color=MODEL_COLOR["rfmlp"],
                  ls="--", marker="s", ms=3)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length N"), ax.set_title(f"{target}, n={cfg.n_train}")
    axes[0, 0].set_ylabel("relative test MSE")
    axes[0, 0].legend(fontsize=7)
    return fig


def alpha_tradeoff(rec: Record):
    """Error against the bias strength alpha for BRFA and BRFA± on three targets."""
    cfg, sweep = rec.config, load(rec, "alpha", AlphaSweep)
    alphas = sweep.alpha
    targets = ("geg1", "geg2", "sep11")
    fig, axes = new_figure(len(targets), 1, width=2.9, height=2.7, sharey=True)
    for t_ax, (ax, target) in enumerate(zip(axes[0], targets)):
        t = rf.TARGETS.index(target)
        for im, model in enumerate(("brfa", "brfa_pm")):
            seed_band(ax, alphas, sweep.test_mse[im, :, :, t].T, label=MODEL_LABEL[model], color=MODEL_COLOR[model],
                      marker="o", ms=3)
        ax.axvline(math.sqrt(cfg.d), color="0.6", ls=":", lw=1)
        ax.set_title(target), ax.set_xlabel("bias α (dotted: √d)")
    axes[0, 0].set_ylabel(f"relative test MSE (n={cfg.n_train})")
    axes[0, 0].legend(fontsize=7)
    return fig


def heads_limit(rec: Record):
    """Error against the number of heads M for RFA, BRFA, RFMLP, with each M = infinity kernel-ridge limit."""
    cfg, h = rec.config, load(rec, "heads", HeadsSweep)
    grid = h.grid
    fig, axes = new_figure(2, 1, width=3.6, height=2.9)
    ax = axes[0, 0]
    for im, model in enumerate(h.models):
        model = str(model)
        for target, ls in (("geg1", "-"), ("geg2", "--")):
            t = rf.TARGETS.index(target)
            seed_band(ax, grid, h.test_mse[im, :, :, t].T, label=f"{MODEL_LABEL[model]}, {target}", color=MODEL_COLOR[model],
                      log=True, marker="o", ms=3, ls=ls)
            ax.plot([grid[-1] * 1.6], [h.krr_test_mse[im, :, t].mean()], "*", color=MODEL_COLOR[model], ms=8)
    ax.set_xscale("log"), ax.set_yscale("log")
    _log_ticks(ax, grid)
    ax.set_xlabel("heads M (RFMLP: M(d+1) features); stars: M=∞"), ax.set_ylabel("relative test MSE")
    ax.set_title(f"n={cfg.heads.n_train}, intercept")
    ax.legend(fontsize=6)
    ax = axes[0, 1]
    for model, target in (("rfa", "geg1"), ("brfa", "geg2")):
        im, k = [str(m) for m in h.models].index(model), rf.TARGETS.index(target)
        excess = h.test_mse[im, :, :, k].mean(1) - h.krr_test_mse[im, :, k].mean()
        ax.plot(grid, np.where(excess > 0, excess, np.nan), "o-", ms=3, color=MODEL_COLOR[model], label=f"{MODEL_LABEL[model]}, {target}")
        ax.plot(grid, excess[0] * (grid / grid[0]) ** -0.5, ":", color=MODEL_COLOR[model], lw=1)
        ax.plot(grid, excess[0] * (grid / grid[0]) ** -1.0, "--", color=MODEL_COLOR[model], lw=1)
    ax.set_xscale("log"), ax.set_yscale("log")
    _log_ticks(ax, grid)
    ax.set_title("dotted: M^-1/2 (bound); dashed: M^-1", fontsize=8)
    ax.set_xlabel("heads M"), ax.set_ylabel("error - kernel-limit error"), ax.legend(fontsize=7)
    return fig


def spectral_curves(rec: Record):
    """Kernel ridge (M = infinity) learning curves against the curves predicted from the exact spectra."""
    cfg, sc = rec.config, load(rec, "spectral", SpectralCurves)
    sizes = sc.sizes
    fig, axes = new_figure(len(rf.TARGETS), 1, width=2.6, height=2.6, sharey=True)
    for t, target in enumerate(rf.TARGETS):
        ax = axes[0, t]
        for im, model in enumerate(sc.models):
            model = str(model)
            seed_band(ax, sizes, sc.test_mse[im, :, :, t], label=f"{MODEL_LABEL[model]} KRR: measured", color=MODEL_COLOR[model],
                      log=True, marker="o", ms=3, ls="none")
            ax.plot(sizes, sc.predicted[im, :, t], "-", color=MODEL_COLOR[model], lw=1.2,
                    label=f"{MODEL_LABEL[model]}: from its spectrum")
        ax.plot(sizes, sc.predicted_empirical[:, t], ":", color=MODEL_COLOR["rfmlp"], lw=1,
                label=f"RFMLP: Nyström spectrum ({int(sizes[-1])} pts)")
        ax.set_xscale("log"), ax.set_yscale("log")
        _log_ticks(ax, sizes)
        ax.set_title(target), ax.set_xlabel("training samples n")
    axes[0, 0].set_ylabel("relative test MSE (M = ∞)")
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.suptitle(f"kernel ridge with the exact kernels, intercept, λ on validation; d={cfg.d}, N={cfg.n_keys}; "
                 f"{cfg.n_seeds} seed(s), {cfg.spectral.n_eval} test points")
    return fig


def brfa_ratio(rec: Record):
    """Kernel ridge with the RFA and BRFA kernels against their predicted curves (BRFA: the bracket
    of its two complements), with the error levels eps of the ratio checks."""
    from studies.random_features.checks import BIAS_RATIO_CASES

    cfg, h = rec.config, load(rec, "heads", HeadsSweep)
    models = [str(m) for m in h.models]
    targets = [t for t in rf.TARGETS if t != "sep11"]
    fig, axes = new_figure(len(targets), 1, width=2.6, height=2.6, sharey=True)
    keep = h.pred_sizes <= 4 * h.krr_sizes[-1]
    ps = h.pred_sizes[keep]
    for ax, target in zip(axes[0], targets):
        t = rf.TARGETS.index(target)
        for model in ("rfa", "brfa"):
            seed_band(ax, h.krr_sizes, h.krr_curve[models.index(model), :, :, t], color=MODEL_COLOR[model], log=True,
                      marker="o", ms=3, ls="none", label=f"{MODEL_LABEL[model]} KRR: measured")
        ax.plot(ps, h.pred_rfa[keep, t], "-", color=MODEL_COLOR["rfa"], lw=1.2, label="RFA: from its spectrum")
        if np.all(np.isfinite(h.pred_brfa[:, keep, t])):
            ax.fill_between(ps, h.pred_brfa[0, keep, t], h.pred_brfa[1, keep, t], color=MODEL_COLOR["brfa"], alpha=0.3, lw=0,
                            label="BRFA: zonal spectrum (bracket)")
        for tg, j in BIAS_RATIO_CASES:
            if tg == target:
                k = list(h.pred_sizes).index(int(h.krr_sizes[j]))
                ax.axhline(math.sqrt(h.pred_brfa[0, k, t] * h.pred_brfa[1, k, t]), color="0.5", lw=0.8, ls=":")
        ax.axvline(h.krr_sizes[-1], color="0.7", lw=0.6)
        ax.set_xscale("log"), ax.set_yscale("log")
        _log_ticks(ax, [int(v) for v in h.krr_sizes] + [int(ps[-1])])
        ax.set_title(target), ax.set_xlabel("training samples n")
    axes[0, 0].set_ylabel("relative test MSE (M = ∞)")
    axes[0, targets.index("geg3")].legend(fontsize=6, loc="lower left")   # geg3 stays near 1: room below
    fig.suptitle(f"BRFA (alpha={cfg.bias_alpha:.2f}) against RFA: kernel ridge, intercept, d={cfg.d}, N={cfg.n_keys}, "
                 f"{cfg.n_seeds} seed(s)\ndotted: the eps of the ratio checks; grey line: the largest measured n")
    return fig


def kernel_limit(rec: Record):
    """Monte-Carlo Gram entries against the closed-form kernels."""
    cfg, k = rec.config, load(rec, "kernel", KernelLimit)
    fig, axes = new_figure(3, 1, width=3.0, height=2.8)
    for ax, name, gram in zip(axes[0], ("rfa", "rfmlp", "brfa"), (k.rfa, k.rfmlp, k.brfa)):
        f, mc, se = gram.formula.ravel(), gram.mc.ravel(), gram.se.ravel()
        ax.errorbar(f, mc, yerr=2 * se, fmt="o", ms=3, lw=1)
        lo, hi = f.min(), f.max()
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel("closed-form kernel"), ax.set_ylabel(f"Monte Carlo, {cfg.kernel.heads} heads")
        ax.set_title(f"{MODEL_LABEL[name]} (bars: 2 SE)")
    return fig


def favor_mse_angle(rec: Record):
    """Relative MSE (MSE / SM^2) against the angle between x and y, closed form and Monte Carlo."""
    cfg, f = rec.config, load(rec, "favor", FavorEstimates)
    idx = f.family("angle")
    theta = np.linspace(0, math.pi, len(idx))
    fine = np.linspace(0, math.pi, 200)
    e1, e2 = np.eye(cfg.favor.d)[0], np.eye(cfg.favor.d)[1]
    xs = np.tile(e1, (len(fine), 1))
    ys = np.cos(fine)[:, None] * e1 + np.sin(fine)[:, None] * e2
    sm_fine = fv.softmax_kernel(xs, ys)
    sm = f.sm[idx]
    fig, axes = new_figure(1, 1, width=4.6, height=3.2)
    ax = axes[0, 0]
    m, d = cfg.favor.m, cfg.favor.d
    curves = {"trig": fv.mse_iid("trig", xs, ys, m), "pos": fv.mse_iid("pos", xs, ys, m), "hyp": fv.mse_iid("hyp", xs, ys, m),
              "orf": np.array([fv.mse_orf_positive(x, y, m, d) for x, y in zip(xs, ys)])}
    labels = {"trig": "trigonometric", "pos": "positive", "hyp": "hyperbolic", "orf": "positive, orthogonal"}
    floor = 1e-8
    for kind, curve in curves.items():
        ax.plot(fine, np.maximum(curve / sm_fine ** 2, floor), color=KIND_COLOR[kind], label=labels[kind])
        measured = f.orf["pos"].mse if kind == "orf" else f.iid[kind].mse
        ax.plot(theta, np.maximum(measured[idx] / sm ** 2, floor), "o", color=KIND_COLOR[kind], ms=4)
    ax.set_yscale("log")
    ax.set_xlabel("angle between x and y (|x| = |y| = 1)"), ax.set_ylabel("MSE / SM²")
    ax.set_title(f"lines: closed forms; dots: {cfg.favor.draws} draws\n(d={d}, m={m})")
    ax.legend(fontsize=7)
    return fig


def favor_mse_vs_m(rec: Record):
    """MSE of positive features against m, i.i.d. and orthogonal, closed forms and Monte Carlo."""
    cfg, s = rec.config, load(rec, "favor_m", FavorMSweep)
    grid = s.grid
    fig, axes = new_figure(1, 1, width=4.0, height=3.0)
    ax = axes[0, 0]
    for kind, label, color, mc in (("iid", "i.i.d.", "C0", s.iid), ("orf", "orthogonal (blocks of d)", "C4", s.orf)):
        ax.plot(grid, s.pred[kind], color=color, label=f"{label}: closed form")
        ax.errorbar(grid, mc.mse, yerr=2 * mc.se_mse, fmt="o", color=color, ms=4)
    ax.axvline(cfg.favor_m.d, color="0.6", ls=":", lw=1)
    ax.set_xscale("log", base=2), ax.set_yscale("log")
    ax.set_xlabel("features m (dotted: m = d)"), ax.set_ylabel("MSE of exp(x.y)")
    ax.set_title(f"|x|=|y|=0.6, cos 0.3\n{cfg.favor_m.draws} draws per dot (bars: 2 SE)")
    ax.legend(fontsize=7)
    return fig


def orf_pitfall(rec: Record):
    """Relative bias of orthogonal positive features against the alignment of z = x + y with e_1."""
    cfg, f = rec.config, load(rec, "favor", FavorEstimates)
    idx = f.family("align")
    phi = np.linspace(0, math.pi, len(idx))
    sm = f.sm[idx]
    fig, axes = new_figure(1, 1, width=4.8, height=3.3)
    ax = axes[0, 0]
    m, d = cfg.favor.m, cfg.favor.d
    rows = ((f.orf_unfixed["pos"], "QR without sign fix (official default)", "C3"),
            (f.orf_sqrtd["pos"], "rows of norm √d (scaling=1)", "C1"),
            (f.orf["pos"], "sign-fixed QR, χ_d norms", "C0"))
    for est, label, color in rows:
        ax.errorbar(phi, est.mean[idx] / sm - 1, yerr=2 * est.se_mean[idx] / sm,
                    fmt="o-", color=color, ms=4, lw=1, label=f"{label}: measured")
    ax.axhline(float(fv.bias_fixed_norms(1.0, d)), color="C1", ls="--", lw=1, label="√d norms: Bessel formula")
    ax.axhline(0.0, color="C0", ls="--", lw=1)
    ends = np.array([0.0, math.pi])
    ax.plot(ends, fv.bias_unfixed_qr(np.cos(ends), m, d), "k*", ms=10, label="unfixed QR, z = ±e₁: derived")
    ax.set_xlabel("angle between z = x + y and e₁ (|z| = 1, z in the e₁-e₂ plane)")
    ax.set_ylabel("relative bias of the estimate")
    ax.set_title(f"{cfg.favor.draws} draws (d={d}, m={m}); bars 2 SE")
    ax.legend(fontsize=6.5)
    return fig


def attention(rec: Record):
    """Exact softmax attention against one FAVOR+ draw, and the output MSE against m."""
    cfg, a = rec.config, load(rec, "attn", FavorAttention)
    fig, axes = new_figure(3, 1, width=3.0, height=2.8)
    vmax = max(a.A_exact.max(), a.A_favor.max())
    for ax, A, title in ((axes[0, 0], a.A_exact, "exact softmax attention"),
                         (axes[0, 1], a.A_favor, f"FAVOR+, one draw, m={cfg.attn.m} (ORF)")):
        im = ax.imshow(A, vmin=0, vmax=vmax, cmap="viridis")
        ax.set_title(title), ax.set_xlabel("key j"), ax.set_ylabel("query l"), ax.grid(False)
    fig.colorbar(im, ax=axes[0, 1], shrink=0.8, label="attention weight")
    ax = axes[0, 2]
    grid = a.grid
    ax.plot(grid, a.pred["iid"], "k-", label="delta method (i.i.d.)")
    ok = a.pred["iid2"] > 0.5 * a.pred["iid"]          # the series is useful where |M_2|/m^2 < M_1/(2m)
    ax.plot(grid[ok], a.pred["iid2"][ok], "k--", label="to second order")
    for kind, color, mc in (("iid", "C0", a.iid), ("orf", "C4", a.orf)):
        ax.errorbar(grid, mc.mse, yerr=2 * mc.se_mse, fmt="o", color=color, ms=4, label=kind)
    ax.set_xscale("log", base=2), ax.set_yscale("log")
    ax.set_xlabel("features m"), ax.set_ylabel("output MSE"), ax.set_title(f"L={cfg.attn.length} tokens")
    ax.legend(fontsize=7)
    return fig


def trained_favor(rec: Record):
    """FAVOR+ at the queries and keys of the trained softmax head: the spread of q'.k' and
    |q'+k'|^2, and measured against predicted MSE per pair for the three estimators."""
    from studies.random_features.simulate import TrainedFavor
    cfg, t = rec.config, load(rec, "trained", TrainedFavor)
    fig, axes = new_figure(3, 1, width=3.0, height=2.8)
    ax = axes[0, 0]
    ax.plot(t.loss, "k-")
    ax.set_yscale("log"), ax.set_xlabel("GD step"), ax.set_ylabel("training MSE"), ax.set_title("trained softmax head")
    ax = axes[0, 1]
    qk, z2 = np.sum(t.q * t.k, -1), np.sum((t.q + t.k) ** 2, -1)
    qk_iso, z2_iso = np.sum(t.q_iso * t.k_iso, -1), np.sum((t.q_iso + t.k_iso) ** 2, -1)
    ax.scatter(qk, z2, s=10, color="C3", label="trained q', k'")
    ax.scatter(qk_iso, z2_iso, s=10, color="0.6", marker="x", label="isotropic, same norms")
    ax.set_xlabel("q'.k' (logit)"), ax.set_ylabel("|q'+k'|^2"), ax.set_title("the pairs"), ax.legend(fontsize=7)
    ax = axes[0, 2]
    for i, (name, color) in enumerate(zip(t.estimators, ("C0", "C1", "C4"))):
        ax.scatter(t.pred[i] / t.sm ** 2, t.mse[i] / t.sm ** 2, s=10, color=color, label=str(name))
    lo = min(np.nanmin(t.mse / t.sm ** 2), np.nanmin(t.pred / t.sm ** 2))
    hi = max(np.nanmax(t.mse / t.sm ** 2), np.nanmax(t.pred / t.sm ** 2))
    ax.plot([lo, hi], [lo, hi], "k:", lw=1, label="measured = closed form")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel("closed-form MSE / SM^2"), ax.set_ylabel("Monte-Carlo MSE / SM^2")
    ax.set_title(f"m={cfg.trained.m}, {cfg.trained.draws} draws"), ax.legend(fontsize=6.5)
    return fig


def figures(record: Record) -> dict:
    return {
        "learning_curves": learning_curves(record),
        "error_vs_n_keys": error_vs_n_keys(record),
        "alpha_tradeoff": alpha_tradeoff(record),
        "heads_limit": heads_limit(record),
        "spectral_curves": spectral_curves(record),
        "brfa_ratio": brfa_ratio(record),
        "kernel_limit": kernel_limit(record),
        "favor_mse_angle": favor_mse_angle(record),
        "favor_mse_vs_m": favor_mse_vs_m(record),
        "orf_pitfall": orf_pitfall(record),
        "attention": attention(record),
        "trained_favor": trained_favor(record),
    }
