"""The figures of induction-heads: pure functions of the record; they display nothing."""
from __future__ import annotations

import importlib
import math

import numpy as np

from workbench.phases import load
from workbench.plotting import new_figure

from studies.induction_heads import theory
from studies.induction_heads.simulate import Bayes, Reduced, Transformer

ck = importlib.import_module("studies.induction_heads.checks")


def figures(record) -> dict:
    return {"loss_curves": loss_curves(record), "per_position": per_position(record), "scores": scores(record),
            "attention": attention(record), "escape_law": escape_law(record), "sink_prior": sink_prior(record),
            "ablation": ablation(record)}


def loss_curves(record):
    """F1: TF test loss against step, a line per seed, with the ln k, Laplace(1), 1-layer and Bayes levels."""
    cfg, tr = record.config, load(record, "transformer", Transformer)
    fig, axes = new_figure(1, width=5.0, height=3.4)
    ax = axes[0, 0]
    st = np.maximum(tr.two.steps, 1)
    for i, L in enumerate(tr.one.loss):
        ax.plot(st, L, color="0.6", lw=1, label="1 layer" if i == 0 else None)
    for i, L in enumerate(tr.two.loss):
        ax.plot(st, L, color=f"C{i}", lw=1.2, label=f"2 layers, seed {i}")
    for level, name, style in ((math.log(cfg.k), "uniform ln k", ":"), (tr.laplace_t.mean(), "Laplace(1)", "--"),
                               (tr.bayes_t.mean(), "Bayes", "-")):
        ax.axhline(level, color="k", ls=style, lw=0.8, label=name)
    ax.set_xscale("log")
    lo, hi = tr.bayes_t.mean(), math.log(cfg.k)
    ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.15 * (hi - lo))
    ax.set(xlabel="Adam step", ylabel="test loss (CE vs true row)", title=f"k = {cfg.k}, T = {cfg.n_tokens}, alpha = {cfg.alpha:g}")
    ax.legend(fontsize=6, loc="lower left")
    return fig


def per_position(record):
    """F2: exact per-position risks (k = 2, DP) and the TF's per-position loss at plateau and end."""
    cfg, b, tr = record.config, load(record, "bayes", Bayes), load(record, "transformer", Transformer)
    fig, axes = new_figure(2, width=4.0, height=3.2)
    ax = axes[0, 0]
    t = np.arange(1, len(b.bayes) + 1)
    for arr, name, style in ((b.uniform, "uniform", ":"), (b.laplace_1, "Laplace(1)", "--"),
                             (b.opt_uni_cur, "opt_uni_cur", "-."), (b.bayes, "Bayes", "-")):
        ax.plot(t, arr, style, label=f"{name} (mean {arr.mean():.4f})")
    ax.set_xscale("log")
    ax.set(xlabel="position t", ylabel="exact risk", title=f"exact DP, k = 2, alpha = {cfg.alpha:g}, x_1 uniform")
    ax.legend(fontsize=6)
    ax = axes[0, 1]
    s = ck.transformer_summary(tr)
    t = np.arange(1, len(tr.bayes_t) + 1)
    ax.plot(t, tr.laplace_t, "k--", lw=0.8, label="Laplace(1), test set")
    ax.plot(t, tr.bayes_t, "k-", lw=0.8, label="Bayes, test set")
    ax.plot(t, tr.one.loss_t[:, -1].mean(0), color="0.6", label="1 layer, end")
    ax.plot(t, tr.two.loss_t[np.arange(len(s["plateau_idx"])), s["plateau_idx"]].mean(0), "C1", label="2 layers, plateau")
    ax.plot(t, tr.two.loss_t[:, -1].mean(0), "C0", label="2 layers, end")
    ax.set_xscale("log")
    ax.set(xlabel="position t", ylabel="test loss", title=f"TF, k = {cfg.k}, T = {cfg.n_tokens} (seed mean)")
    ax.legend(fontsize=6)
    return fig


def scores(record):
    """F3: loss, previous-token score and induction score on one axis, per seed, max-slope marks."""
    tr = load(record, "transformer", Transformer)
    s = ck.transformer_summary(tr)
    fig, axes = new_figure(3, width=3.2, height=2.8)
    st = tr.two.steps
    for ax, arr, name, tm in ((axes[0, 0], tr.two.loss, "test loss", s["t_loss"]),
                              (axes[0, 1], tr.two.prev_score, "layer-1 previous-token mass", s["t_prev"]),
                              (axes[0, 2], tr.two.induction, "layer-2 induction mass", s["t_ind"])):
        for i, y in enumerate(arr):
            ax.plot(st, y, color=f"C{i}", lw=1)
            ax.axvline(tm[i], color=f"C{i}", ls=":", lw=0.8)
        ax.set(xlabel="Adam step", ylabel=name)
    axes[0, 2].axhline(float(np.mean(tr.chance[1:])), color="k", ls="--", lw=0.8, label="chance")
    axes[0, 2].legend(fontsize=6)
    axes[0, 0].set_title("dotted: max-slope step per seed", fontsize=7)
    return fig


def attention(record):
    """F4: both layers' attention on test sequence 0 at init, plateau, mid-transition and end (seed 0);
    the induction-matching keys (x_{s-1} = x_t) are dotted in layer 2."""
    cfg, tr = record.config, load(record, "transformer", Transformer)
    s = ck.transformer_summary(tr)
    steps = tr.two.steps
    mid = int(np.argmin(np.abs(steps - s["t_ind"][0])))
    idx = [0, int(s["plateau_idx"][0]), mid, len(steps) - 1]
    fig, axes = new_figure(4, 2, width=2.3, height=2.3)
    x = tr.test_x[0]
    T = len(x) - 1
    prev = np.concatenate([[-1, -2], x[:-2]])
    match = (prev[None, :] == np.concatenate([[-3], x[:-1]])[:, None]) & (np.arange(T + 1)[None] <= np.arange(T + 1)[:, None])
    for j, i in enumerate(idx):
        for layer in range(2):
            ax = axes[layer, j]
            ax.imshow(tr.two.attn[0, i, layer], cmap="viridis", vmin=0, vmax=1)
            if layer == 1:
                yy, xx = np.nonzero(match)
                ax.scatter(xx, yy, s=1, c="w", marker=".")
            ax.set(title=f"layer {layer + 1}, step {steps[i]}", xlabel="key s", ylabel="query t")
            ax.title.set_fontsize(7)
    return fig


def escape_law(record):
    """F5: RM escape times against the closed-form clock (n = 2) and against sigma^-2 (n = 4)."""
    cfg, red = record.config, load(record, "reduced", Reduced)
    r = cfg.reduced
    g = red.plateau[-1, 3]
    t, tau, slope, icpt, rms, rms_s, ok = ck.escape_fit(red, g, r.eta)
    fig, axes = new_figure(2, width=3.8, height=3.2)
    ax = axes[0, 0]
    for j, sg in enumerate(sorted(set(red.escape_sigma.tolist()))):
        m = red.escape_sigma == sg
        ax.plot(tau[m], t[m], "o", ms=3, color=f"C{j}", label=f"sigma = {sg:g}")
    grid = np.linspace(tau[ok].min(), tau[ok].max(), 10)
    ax.plot(grid, grid + np.mean(t[ok] - tau[ok]), "k-", lw=0.8, label="theory, slope 1 + transit")
    ax.set(xlabel="ln(4/(q0+k0)^2) / (2 ln(1+eta|g|))", ylabel="t_mid (GD steps)",
           title=f"n = 2: slope {slope:.3f}, rms {rms:.2f}")
    ax.legend(fontsize=6)
    ax = axes[0, 1]
    L_plat, bay = red.plateau[-1, 0], red.plateau[-1, 6]
    tq = ck.crossing(red.quartic.loss, 0.5 * (L_plat + bay))
    sig = red.quartic_sigma
    ax.plot(sig ** -2, tq, "o", label="RM, 4 factors")
    gx = np.linspace(0, (sig ** -2).max() * 1.05, 10)
    ax.plot(gx, gx / (2 * r.eta * abs(g)), "k-", lw=0.8, label="1/(2 eta|g| sigma^2)")
    ax.plot(sig ** -2, theory.escape_time(g, r.eta, 2 * sig), "x", color="C3", label="two-factor log law")
    ax.set(xlabel="sigma^-2", ylabel="t_mid (GD steps)", title="n = 4: a power law")
    ax.legend(fontsize=6)
    return fig


def sink_prior(record):
    """F6: the learned sink offset b - w against ln(k alpha), with the T1 optimum at beta = 8."""
    cfg, red = record.config, load(record, "reduced", Reduced)
    k = cfg.reduced.k
    th_end = red.sink.theta[-1]
    off = th_end[:, 2] - th_end[:, 3:].prod(-1)
    fig, axes = new_figure(1, width=3.8, height=3.2)
    ax = axes[0, 0]
    x = np.log(k * red.sink_alpha)
    ax.plot(x, off, "o", label=f"trained RM ({cfg.reduced.alpha_steps} GD steps)")
    ax.plot(np.log(k * red.alphas), red.ideal_offset[:, 0], "s", mfc="none", label="best offset, ideal head beta = 8")
    g = np.linspace(x.min() - 0.2, x.max() + 0.2, 10)
    ax.plot(g, g, "k-", lw=0.8, label="ln(k alpha)")
    ax.set(xlabel="ln(k alpha)", ylabel="sink logit - match logit", title=f"k = {k}, T = {cfg.reduced.n_tokens}")
    ax.legend(fontsize=6)
    return fig


def ablation(record):
    """F7: final test losses: 2-layer, layer-1 and layer-2 mean ablations, 1-layer, with the levels."""
    tr = load(record, "transformer", Transformer)
    fig, axes = new_figure(1, width=4.2, height=3.2)
    ax = axes[0, 0]
    groups = [("2 layers", tr.two.loss[:, -1]), ("ablate L1 head", tr.two.ablate1), ("ablate L2 head", tr.two.ablate2),
              ("1 layer", tr.one.loss[:, -1])]
    for j, (name, vals) in enumerate(groups):
        ax.bar(j, np.mean(vals), color=f"C{j}", alpha=0.6)
        ax.plot(np.full(len(vals), j), vals, "k.", ms=4)
    ax.axhline(tr.laplace_t.mean(), color="k", ls="--", lw=0.8, label="Laplace(1)")
    ax.axhline(tr.bayes_t.mean(), color="k", lw=0.8, label="Bayes")
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=7)
    lo = tr.bayes_t.mean()
    ax.set_ylim(lo - 0.05, max(max(np.max(v) for _, v in groups), tr.laplace_t.mean()) + 0.03)
    ax.set(ylabel="final test loss", title="mean ablation of each head's output")
    ax.legend(fontsize=6)
    return fig
