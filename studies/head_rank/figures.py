"""The figures of head-rank (spec section 4, F1-F7): pure functions of the record; they display nothing."""
from __future__ import annotations

import numpy as np
import torch

from workbench.phases import load
from workbench.plotting import new_figure
from workbench.streams import Stream

from studies.head_rank import theory as th
from studies.head_rank.checks import FIT_ZERO
from studies.head_rank.simulate import Depth, Features, Fits, FullRank, Trained, config_key

FLOOR = 1e-33
"""Fits at the threshold reach ~1e-30; values below FLOOR are drawn at FLOOR."""


def figures(record) -> dict:
    out = {"F1_threshold_staircase": threshold_staircase(record), "F2_singular_values": singular_values(record),
           "F3_fixed_width": fixed_width(record), "F4_more_heads": more_heads(record),
           "F5_full_rank_error": full_rank_error(record), "F6_depth": depth(record)}
    out["F7_phase_diagram"] = phase_diagram(record)
    return out


def _floor(v):
    return np.maximum(np.asarray(v, dtype=float), FLOOR)


def threshold_staircase(record):
    """F1: best mean KL vs d_h, with the [certificate, SVD] band and the threshold n-1 (causal: floor(n/2))."""
    fits = load(record, "threshold", dict[str, Fits])
    causal = load(record, "causal", dict[str, Fits])
    fig, axes = new_figure(2 if causal else 1, width=4.2, height=3.3, sharey=True)
    ax = axes[0, 0]
    for j, (key, f) in enumerate(fits.items()):
        n, c = int(key[1:]), f"C{j}"
        h = f.head_sizes
        below = h <= n - 2                                  # at n-1 both bounds are rounding (~1e-33)
        ax.fill_between(h[below], np.median(f.lower, 0)[below], np.median(f.upper, 0)[below], color=c, alpha=0.18,
                        lw=0)
        for i in range(f.best.shape[0]):
            ax.plot(h + 0.06 * (i - 1), _floor(f.best[i]), "o", ms=3.5, color=c, label=f"n = {n}" if i == 0 else None)
        ax.axvline(n - 1 + 0.03 * j, color=c, ls="--", lw=1)
    ax.axhline(FIT_ZERO, color="0.5", ls=":", lw=1)
    ax.set(yscale="log", xlabel="head size $d_h$", ylabel="best mean KL (restarts)", ylim=(FLOOR / 3, 1.0),
           title="bidirectional: band [certificate, SVD], dashed n-1")
    ax.legend(fontsize=7, loc="lower left")
    if causal:
        ax = axes[0, 1]
        for j, (key, f) in enumerate(causal.items()):
            n, c = int(key[1:]), f"C{j + 3}"
            for i in range(f.best.shape[0]):
                ax.plot(f.head_sizes + 0.06 * (i - 1), _floor(f.best[i]), "o", ms=3.5, color=c,
                        label=f"n = {n} fit" if i == 0 else None)
            pos = f.lower.min(0) > 1e-20                     # the certificates above rounding
            ax.plot(f.head_sizes[pos], f.lower.min(0)[pos], "v", color=c, ms=5, mfc="none",
                    label=f"n = {n} block certificate")
            ax.axvline(n // 2 + 0.03 * j, color=c, ls="--", lw=1)
        ax.axhline(FIT_ZERO, color="0.5", ls=":", lw=1)
        ax.set(xlabel="head size $d_h$", title="causal mask: dashed floor(n/2)")
        ax.legend(fontsize=7, loc="lower left")
    return fig


def singular_values(record):
    """F2: sigma_j(AJ) per instance: the last is zero (the row-shift freedom), the rest generic."""
    fits = load(record, "threshold", dict[str, Fits])
    fig, axes = new_figure(width=4.0, height=3.0)
    ax = axes[0, 0]
    for j, (key, f) in enumerate(fits.items()):
        n = int(key[1:])
        for i in range(f.singular_values.shape[0]):
            ax.plot(np.arange(1, n + 1), np.maximum(f.singular_values[i], 1e-18), "o-", ms=3, lw=0.8, color=f"C{j}",
                    label=f"n = {n}" if i == 0 else None)
    ax.axhline(np.finfo(float).eps, color="0.5", ls=":", lw=1, label="float64 eps")
    ax.set(yscale="log", xlabel="index j", ylabel=r"$\sigma_j(AJ)$", title="log P, rows centred: rank n-1")
    ax.legend(fontsize=7)
    return fig


def _runs(record) -> dict[str, Trained]:
    return load(record, "heads", dict[str, Trained])


def fixed_width(record):
    """F3: train and test error vs r at fixed H r = d, seeds as dots, with err(beta_eff) of the full-rank run."""
    cfg, runs = record.config, _runs(record)
    nn = cfg.nn
    fig, axes = new_figure(width=4.0, height=3.2)
    ax = axes[0, 0]
    grid = nn.fixed_width_grid
    rs = np.array([r for _, r in grid])
    for which, c, m in (("train_error", "C0", "o"), ("test_error", "C1", "s")):
        vals = np.array([getattr(runs[config_key(H, r, False)], which) for H, r in grid])   # (G, E)
        for e in range(vals.shape[1]):
            ax.plot(rs, vals[:, e], m, color=c, ms=3, alpha=0.5)
        ax.plot(rs, np.median(vals, 1), "-", color=c, label=which.replace("_", " ") + " (median)")
    full = runs[config_key(1, nn.d, False)]
    if nn.n_keys == 2:
        beff = float(np.median(np.abs(full.beta_eff)))
        ax.axhline(th.full_rank_error(beff, nn.d), color="k", ls="--", lw=1,
                   label=rf"err($\beta_{{eff}}$ = {beff:.1f}), quadrature")
    ax.set(xscale="log", yscale="log", xlabel="rank r (H = d / r heads)", ylabel=r"$E|g - f|^2$",
           title=f"H r = d = {nn.d}, N = {nn.n_keys}, {nn.steps} steps")
    ax.set_xticks(rs, [str(r) for r in rs])
    ax.legend(fontsize=7)
    return fig


def more_heads(record):
    """F4: train error vs H at r = 1, 2, the random-feature hardmax curve (exact) and the full-rank head."""
    cfg, runs, f = record.config, _runs(record), load(record, "features", Features)
    nn = cfg.nn
    fig, axes = new_figure(width=4.2, height=3.2)
    ax = axes[0, 0]
    for r, c in ((1, "C0"), (2, "C2")):
        Hs = sorted({H for (H, rr, ctrl) in [(t.heads, t.rank, t.control) for t in runs.values()] if rr == r and not ctrl})
        if not Hs:
            continue
        vals = np.array([runs[config_key(H, r, False)].train_error for H in Hs])
        for e in range(vals.shape[1]):
            ax.plot(Hs, vals[:, e], "o", color=c, ms=3, alpha=0.5)
        ax.plot(Hs, np.median(vals, 1), "-", color=c, label=f"trained rank {r} (d = {nn.d}, train)")
    ax.plot(f.heads, f.mse.mean(0), "k.-", label=f"random features, hardmax rank 1 (d = {cfg.rf.d}, exact)")
    ax.axhline(np.median(runs[config_key(1, nn.d, False)].train_error), color="C3", ls="--",
               label=f"one full-rank head (d = {nn.d}, train)")
    full = float(np.median(runs[config_key(1, nn.d, False)].train_error))
    ax.set(xscale="log", yscale="log", xlabel="heads H", ylabel=r"$E|g - f|^2$", title=f"N = {nn.n_keys}",
           ylim=(full / 8, 1.2))
    ax.legend(fontsize=6.5, loc="lower left")
    return fig


def full_rank_error(record):
    """F5: err(beta) of the head beta I: quadrature, Monte Carlo and the C_inf / beta asymptote."""
    r = load(record, "full_rank", FullRank)
    fig, axes = new_figure(width=4.0, height=3.2)
    ax = axes[0, 0]
    for j, d in enumerate(r.curve_dims):
        c = f"C{j}"
        ax.plot(r.curve_betas, r.curve_quadrature[j], "-", color=c, label=f"d = {int(d)} quadrature")
        ax.errorbar(r.curve_betas, r.curve_mc[j], yerr=2 * r.curve_mc_se[j], fmt="o", ms=3, color=c)
        ax.plot(r.curve_betas, r.curve_c_infinity[j] / r.curve_betas, ":", color=c, lw=1)
    ax.set(xscale="log", yscale="log", xlabel=r"$\beta$", ylabel=r"err($\beta$)",
           title="N = 2: dots MC (2 s.e.), dotted $C_\\infty/\\beta$")
    ax.legend(fontsize=7)
    return fig


def depth(record):
    """F6: tagged depth-2 [d, 1] vs depth-1 training curves; the construction against err(eps beta)."""
    cfg, dp = record.config, load(record, "depth", Depth)
    fig, axes = new_figure(2, width=3.8, height=3.0)
    ax = axes[0, 0]
    if len(dp.names):
        for j, name in enumerate(dp.names):
            med = np.median(dp.curves[j], axis=1)
            ax.plot(np.maximum(dp.curve_steps, 1), med, color=f"C{j}", label=f"{name} (median)")
            ax.fill_between(np.maximum(dp.curve_steps, 1), dp.curves[j].min(1), dp.curves[j].max(1), color=f"C{j}",
                            alpha=0.2, lw=0)
        ax.set(xscale="log", yscale="log", xlabel="Adam step", ylabel="train error",
               title=f"all rank 1, d = {cfg.nn.d}, N = 2")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "not trained at this preset", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax = axes[0, 1]
    eb = dp.eps * dp.beta
    grid = np.logspace(np.log10(eb.min()) - 1, np.log10(eb.max()) + 0.5, 30)
    ax.plot(grid, [th.full_rank_error(float(b), cfg.nn.d) for b in grid], "k-", label=r"full rank err($\epsilon\beta$)")
    ax.errorbar(eb, dp.construction_error, yerr=2 * dp.construction_se, fmt="o", color="C3",
                label="depth-2 construction (test, 2 s.e.)")
    for e, b, y in zip(dp.eps, dp.beta, dp.construction_error):
        ax.annotate(f"({e:g}, {b:g})", (e * b, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlabel=r"$\epsilon\beta$", ylabel="test error", title="construction")
    ax.legend(fontsize=7)
    return fig


def bootstrap_ci(values: np.ndarray, stream: Stream, draws: int = 2000, level: float = 0.9) -> tuple[float, float]:
    """Percentile bootstrap interval of the median over seeds."""
    E = values.shape[0]
    idx = stream.integers(0, E, (draws, E)).numpy()
    meds = np.median(values[idx], axis=1)
    return float(np.quantile(meds, (1 - level) / 2)), float(np.quantile(meds, (1 + level) / 2))


def phase_diagram(record):
    """F7: median train error over (H, r), with a 90% bootstrap interval over seeds; rings mark
    error <= 2 err(beta_eff) of the full-rank run."""
    cfg, runs = record.config, _runs(record)
    nn = cfg.nn
    pts = [(t.heads, t.rank, t) for t in runs.values() if not t.control]
    full = runs[config_key(1, nn.d, False)]
    bar = 2 * th.full_rank_error(float(np.median(np.abs(full.beta_eff))), nn.d) if nn.n_keys == 2 else np.nan
    fig, axes = new_figure(width=5.6, height=3.8)
    ax = axes[0, 0]
    meds = np.array([np.median(t.train_error) for _, _, t in pts])
    sc = ax.scatter([H for H, _, _ in pts], [r for _, r, _ in pts], c=np.log10(meds), s=120, cmap="viridis")
    for (H, r, t), m in zip(pts, meds):
        lo, hi = bootstrap_ci(t.train_error, Stream(cfg.seed, "head-rank/bootstrap", H, r))
        ax.annotate(f"{m:.3f}\n[{lo:.3f},\n {hi:.3f}]", (H, r), fontsize=5.5, xytext=(-12, 9), textcoords="offset points")
        if m <= bar:
            ax.scatter([H], [r], s=260, facecolors="none", edgecolors="r")
    fig.colorbar(sc, ax=ax, label="log10 median train error")
    Hs, rs = sorted({H for H, _, _ in pts}), sorted({r for _, r, _ in pts})
    ax.set(xscale="log", yscale="log", xlabel="heads H", ylabel="rank r", ylim=(min(rs) / 1.4, max(rs) * 1.8),
           xlim=(min(Hs) / 1.5, max(Hs) * 1.5))
    ax.set_xticks(Hs, [str(h) for h in Hs])
    ax.set_yticks(rs, [str(r) for r in rs])
    ax.minorticks_off()
    ax.set(title=f"d = {nn.d}, {cfg.n_seeds} seeds; ring: <= 2 err($\\beta_{{eff}}$)")
    return fig
