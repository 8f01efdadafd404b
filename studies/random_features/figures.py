"""Figures of the random-feature attention study: pure functions of a record."""
from __future__ import annotations

import math

import matplotlib.ticker
import numpy as np

from studies.random_features import favor as fv
from studies.random_features import model as rf
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
    cfg, a = rec.config, rec.arrays
    sizes = np.array(cfg.n_sizes)
    fig, axes = new_figure(len(rf.TARGETS), 1, width=2.6, height=2.6, sharey=True)
    for t, target in enumerate(rf.TARGETS):
        ax = axes[0, t]
        for mi, model in enumerate(rf.MODELS):
            lw = 2.2 if (model == cfg.model and target == cfg.target) else 1.2
            seed_band(ax, sizes, a["learn.test_mse"][mi, :, :, t], label=MODEL_LABEL[model],
                      color=MODEL_COLOR[model], log=True, marker="o", ms=3, lw=lw)
        ax.plot([cfg.krr_n], [a["heads.krr_test_mse"][:, t].mean()], "*", color="k", ms=8,
                label="RFA, M=∞ (KRR)" if t == 0 else None)
        ax.set_xscale("log"), ax.set_yscale("log")
        _log_ticks(ax, sizes)
        ax.set_title(target + (" (headline)" if target == cfg.target else ""))
        ax.set_xlabel("training samples n")
    axes[0, 0].set_ylabel("relative test MSE")
    axes[0, -1].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"d={cfg.d}, N={cfg.n_keys}, M={cfg.n_heads} (P={cfg.n_params}); band: min-max over {cfg.n_seeds} seed(s)")
    return fig


def error_vs_n_keys(rec: Record):
    """geg1 and sep11 error against N at n = n_train: RFA flat, RFMLP rising (and its kernel limit)."""
    cfg, a = rec.config, rec.arrays
    grid = a["nkeys.grid"]
    fig, axes = new_figure(2, 1, width=3.4, height=2.8, sharey=True)
    for ax, target in zip(axes[0], ("geg1", "sep11")):
        t = rf.TARGETS.index(target)
        for im, model in enumerate(("rfa", "rfmlp")):
            seed_band(ax, grid, a["nkeys.test_mse"][im, :, :, t].T, label=f"{MODEL_LABEL[model]}, M={cfg.n_heads}",
                      color=MODEL_COLOR[model], marker="o", ms=3)
        seed_band(ax, grid, a["nkeys.krr_rfmlp_test_mse"][:, :, t].T, label="RFMLP, P=∞ (KRR)", color=MODEL_COLOR["rfmlp"],
                  ls="--", marker="s", ms=3)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length N"), ax.set_title(f"{target}, n={cfg.n_train}")
    axes[0, 0].set_ylabel("relative test MSE")
    axes[0, 0].legend(fontsize=7)
    return fig


def alpha_tradeoff(rec: Record):
    """Error against the bias strength alpha for BRFA and BRFA± on three targets."""
    cfg, a = rec.config, rec.arrays
    alphas = a["alpha.alpha"]
    targets = ("geg1", "geg2", "sep11")
    fig, axes = new_figure(len(targets), 1, width=2.9, height=2.7, sharey=True)
    for t_ax, (ax, target) in enumerate(zip(axes[0], targets)):
        t = rf.TARGETS.index(target)
        for im, model in enumerate(("brfa", "brfa_pm")):
            seed_band(ax, alphas, a["alpha.test_mse"][im, :, :, t].T, label=MODEL_LABEL[model], color=MODEL_COLOR[model],
                      marker="o", ms=3)
        for im, model in enumerate(("brfa", "brfa_pm")):
            vals = a["intercept.test_mse"][im, :, t]
            ax.errorbar([cfg.bias_alpha], [vals.mean()], yerr=[[vals.mean() - vals.min()], [vals.max() - vals.mean()]],
                        fmt="D", mfc="none", color=MODEL_COLOR[model], ms=6,
                        label=f"{MODEL_LABEL[model]} + intercept" if t_ax == 0 else None)
        ax.axvline(math.sqrt(cfg.d), color="0.6", ls=":", lw=1)
        ax.set_title(target), ax.set_xlabel("bias α (dotted: √d)")
    axes[0, 0].set_ylabel(f"relative test MSE (n={cfg.n_train})")
    axes[0, 0].legend(fontsize=7)
    return fig


def heads_limit(rec: Record):
    """RFA error against the number of heads M, with the M = infinity kernel-ridge limit."""
    cfg, a = rec.config, rec.arrays
    grid = a["heads.grid"]
    fig, axes = new_figure(2, 1, width=3.4, height=2.8)
    ax = axes[0, 0]
    for t, target in enumerate(rf.TARGETS):
        line = seed_band(ax, grid, a["heads.test_mse"][:, :, t].T, label=target, log=True, marker="o", ms=3)
        ax.axhline(a["heads.krr_test_mse"][:, t].mean(), color=line.get_color(), ls="--", lw=1)
    ax.set_xscale("log"), ax.set_yscale("log")
    _log_ticks(ax, grid)
    ax.set_xlabel("heads M"), ax.set_ylabel("relative test MSE")
    ax.set_title(f"RFA, n={cfg.krr_n}; dashed: M=∞ (kernel ridge)")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    for t, target in enumerate(("geg1", "sep11")):
        k = rf.TARGETS.index(target)
        excess = a["heads.test_mse"][:, :, k].mean(1) - a["heads.krr_test_mse"][:, k].mean()
        ax.plot(grid, np.where(excess > 0, excess, np.nan), "o-", ms=3, label=target)
    ax.plot(grid, excess[0] * (grid / grid[0]) ** -0.5, ":", color="0.5", label="M^-1/2 (bound)")
    ax.plot(grid, excess[0] * (grid / grid[0]) ** -1.0, "--", color="0.5", label="M^-1")
    ax.set_xscale("log"), ax.set_yscale("log")
    _log_ticks(ax, grid)
    ax.set_xlabel("heads M"), ax.set_ylabel("error - kernel-limit error"), ax.legend(fontsize=7)
    return fig


def kernel_limit(rec: Record):
    """Monte-Carlo Gram entries against the closed-form kernels."""
    cfg, a = rec.config, rec.arrays
    fig, axes = new_figure(2, 1, width=3.0, height=2.8)
    for ax, name in zip(axes[0], ("rfa", "rfmlp")):
        f, mc, se = (a[f"kernel.{name}.{k}"].ravel() for k in ("formula", "mc", "se"))
        ax.errorbar(f, mc, yerr=2 * se, fmt="o", ms=3, lw=1)
        lo, hi = f.min(), f.max()
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel("closed-form kernel"), ax.set_ylabel(f"Monte Carlo, {cfg.kernel_heads} heads")
        ax.set_title(f"{MODEL_LABEL[name]} (bars: 2 SE)")
    return fig


def favor_mse_angle(rec: Record):
    """Relative MSE (MSE / SM^2) against the angle between x and y, closed form and Monte Carlo."""
    cfg, a = rec.config, rec.arrays
    names = [str(s) for s in a["favor.settings"]]
    idx = [k for k, n in enumerate(names) if n.startswith("angle_")]
    theta = np.linspace(0, math.pi, len(idx))
    fine = np.linspace(0, math.pi, 200)
    e1, e2 = np.eye(cfg.favor_d)[0], np.eye(cfg.favor_d)[1]
    xs = np.tile(e1, (len(fine), 1))
    ys = np.cos(fine)[:, None] * e1 + np.sin(fine)[:, None] * e2
    sm_fine = fv.softmax_kernel(xs, ys)
    sm = a["favor.sm"][idx]
    fig, axes = new_figure(1, 1, width=4.6, height=3.2)
    ax = axes[0, 0]
    m, d = cfg.favor_m, cfg.favor_d
    curves = {"trig": fv.mse_iid("trig", xs, ys, m), "pos": fv.mse_iid("pos", xs, ys, m), "hyp": fv.mse_iid("hyp", xs, ys, m),
              "orf": np.array([fv.mse_orf_positive(x, y, m, d) for x, y in zip(xs, ys)])}
    labels = {"trig": "trigonometric", "pos": "positive", "hyp": "hyperbolic", "orf": "positive, orthogonal"}
    floor = 1e-8
    for kind, curve in curves.items():
        ax.plot(fine, np.maximum(curve / sm_fine ** 2, floor), color=KIND_COLOR[kind], label=labels[kind])
        key = "favor.orf.pos.mse" if kind == "orf" else f"favor.iid.{kind}.mse"
        ax.plot(theta, np.maximum(a[key][idx] / sm ** 2, floor), "o", color=KIND_COLOR[kind], ms=4)
    ax.set_yscale("log")
    ax.set_xlabel("angle between x and y (|x| = |y| = 1)"), ax.set_ylabel("MSE / SM²")
    ax.set_title(f"lines: closed forms; dots: {cfg.favor_draws} draws\n(d={d}, m={m})")
    ax.legend(fontsize=7)
    return fig


def favor_mse_vs_m(rec: Record):
    """MSE of positive features against m, i.i.d. and orthogonal, closed forms and Monte Carlo."""
    cfg, a = rec.config, rec.arrays
    grid = a["favor_m.grid"]
    fig, axes = new_figure(1, 1, width=4.0, height=3.0)
    ax = axes[0, 0]
    for kind, label, color in (("iid", "i.i.d.", "C0"), ("orf", "orthogonal (blocks of d)", "C4")):
        ax.plot(grid, a[f"favor_m.pred.{kind}"], color=color, label=f"{label}: closed form")
        ax.errorbar(grid, a[f"favor_m.{kind}.mse"], yerr=2 * a[f"favor_m.{kind}.se_mse"], fmt="o", color=color, ms=4)
    ax.axvline(cfg.favor_d, color="0.6", ls=":", lw=1)
    ax.set_xscale("log", base=2), ax.set_yscale("log")
    ax.set_xlabel("features m (dotted: m = d)"), ax.set_ylabel("MSE of exp(x.y)")
    ax.set_title(f"|x|=|y|=0.6, cos 0.3; {cfg.mc_draws} draws per dot (2 SE)")
    ax.legend(fontsize=7)
    return fig


def orf_pitfall(rec: Record):
    """Relative bias of orthogonal positive features against the alignment of z = x + y with e_1."""
    cfg, a = rec.config, rec.arrays
    names = [str(s) for s in a["favor.settings"]]
    idx = [k for k, n in enumerate(names) if n.startswith("align_")]
    phi = np.linspace(0, math.pi, len(idx))
    sm = a["favor.sm"][idx]
    fig, axes = new_figure(1, 1, width=4.8, height=3.3)
    ax = axes[0, 0]
    m, d = cfg.favor_m, cfg.favor_d
    rows = (("orf_unfixed", "QR without sign fix (official default)", "C3"),
            ("orf_sqrtd", "rows of norm √d (scaling=1)", "C1"),
            ("orf", "sign-fixed QR, χ_d norms", "C0"))
    for key, label, color in rows:
        ax.errorbar(phi, a[f"favor.{key}.pos.mean"][idx] / sm - 1, yerr=2 * a[f"favor.{key}.pos.se_mean"][idx] / sm,
                    fmt="o-", color=color, ms=4, lw=1, label=f"{label}: measured")
    ax.axhline(float(fv.bias_fixed_norms(1.0, d)), color="C1", ls="--", lw=1, label="√d norms: Bessel formula")
    ax.axhline(0.0, color="C0", ls="--", lw=1)
    ends = np.array([0.0, math.pi])
    ax.plot(ends, fv.bias_unfixed_qr(np.cos(ends), m, d), "k*", ms=10, label="unfixed QR, z = ±e₁: derived")
    ax.set_xlabel("angle between z = x + y and e₁ (|z| = 1, z in the e₁-e₂ plane)")
    ax.set_ylabel("relative bias of the estimate")
    ax.set_title(f"{cfg.favor_draws} draws (d={d}, m={m}); bars 2 SE")
    ax.legend(fontsize=6.5)
    return fig


def attention(rec: Record):
    """Exact softmax attention against one FAVOR+ draw, and the output MSE against m."""
    cfg, a = rec.config, rec.arrays
    fig, axes = new_figure(3, 1, width=3.0, height=2.8)
    vmax = max(a["attn.A_exact"].max(), a["attn.A_favor"].max())
    for ax, key, title in ((axes[0, 0], "attn.A_exact", "exact softmax attention"),
                           (axes[0, 1], "attn.A_favor", f"FAVOR+, one draw, m={cfg.favor_m} (ORF)")):
        im = ax.imshow(a[key], vmin=0, vmax=vmax, cmap="viridis")
        ax.set_title(title), ax.set_xlabel("key j"), ax.set_ylabel("query l"), ax.grid(False)
    fig.colorbar(im, ax=axes[0, 1], shrink=0.8)
    ax = axes[0, 2]
    grid = a["favor_m.grid"]
    ax.plot(grid, a["attn.pred.iid"], "k-", label="delta method (i.i.d.)")
    for kind, color in (("iid", "C0"), ("orf", "C4")):
        ax.errorbar(grid, a[f"attn.{kind}.mse"], yerr=2 * a[f"attn.{kind}.se_mse"], fmt="o", color=color, ms=4, label=kind)
    ax.set_xscale("log", base=2), ax.set_yscale("log")
    ax.set_xlabel("features m"), ax.set_ylabel("output MSE"), ax.set_title(f"L={cfg.attn_len} tokens")
    ax.legend(fontsize=7)
    return fig


def figures(record: Record) -> dict:
    return {
        "learning_curves": learning_curves(record),
        "error_vs_n_keys": error_vs_n_keys(record),
        "alpha_tradeoff": alpha_tradeoff(record),
        "heads_limit": heads_limit(record),
        "kernel_limit": kernel_limit(record),
        "favor_mse_angle": favor_mse_angle(record),
        "favor_mse_vs_m": favor_mse_vs_m(record),
        "orf_pitfall": orf_pitfall(record),
        "attention": attention(record),
    }
