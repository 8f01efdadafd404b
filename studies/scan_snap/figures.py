"""Figures of the Scan and Snap study, pure functions of a record."""
from __future__ import annotations

import math

import numpy as np

from workbench.plotting import new_figure, seed_band

from studies.scan_snap import theory
from studies.scan_snap.data import SequenceClasses


def _layout(cfg) -> SequenceClasses:
    return SequenceClasses(cfg.n_common, cfg.n_queries, cfg.next_per_query, cfg.n_distinct)


def figures(record) -> dict:
    cfg, A = record.config, record.arrays
    layout = _layout(cfg)
    K, M = layout.n_classes, layout.vocab
    S = cfg.n_seeds
    psi = A["layout.query_of_class"].astype(int)
    common = A["layout.common_mask"].astype(bool)
    d0 = np.nonzero(A["layout.distinct_mask"][0])[0]
    c0 = np.nonzero(common)[0]
    order = np.concatenate([c0, d0])  # class 0's tokens: common | distinct
    t = A["r1.t"]
    figs = {}

    # 1. c_n heatmaps over iterations, smallest and largest eta_Y (seed 0, class 0), Fig. 4 style.
    z = A["sgd.z"]  # (n_steps, e, Q, M_c), member = pair * S + seed
    pairs = [0, len(cfg.eta_y_factors) - 1]
    iters = [s for s in (0, 2, 4, 6, 8, 10) if s <= cfg.steps] + [cfg.steps]
    fig, axes = new_figure(len(pairs), 1, width=3.6, height=3.0)
    for ax, j in zip(axes[0], pairs):
        c = theory.class_attention(z[iters, j * S], layout)[:, 0, order]  # (iters, tokens)
        im = ax.imshow(c, aspect="auto", cmap="viridis", vmin=0)
        ax.set_yticks(range(len(iters)), [str(i) for i in iters])
        ax.axvline(len(c0) - 0.5, color="w", lw=1)
        ax.set_xlabel("token (common | distinct, P increasing)")
        ax.set_ylabel("SGD iteration")
        ax.set_title(f"c_l|n, eta_Y={cfg.eta_y * cfg.eta_y_factors[j]:g}, eta_Z={cfg.eta_z:g}")
        ax.grid(False)
        fig.colorbar(im, ax=ax, shrink=0.8)
    figs["heatmaps"] = fig

    # 2. z_ml(t): SGD (median, min-max band over seeds) vs R1 (solid) vs R2 (dashed) vs R1m (dotted).
    fig, axes = new_figure(1, 1, width=6.0, height=3.6)
    ax = axes[0, 0]
    steps = A["sgd.steps"].astype(float)
    tokens = [(c0[0], "common"), (d0[0], "rarest distinct"), (d0[len(d0) // 2], "middle distinct"), (d0[-1], "top distinct")]
    r1_i = int(np.nonzero(A["r1.group"] == 0)[0][0])
    r2_i = int(np.nonzero(A["r2.group"] == 0)[0][0])
    for k, (l, label) in enumerate(tokens):
        color = f"C{k}"
        seed_band(ax, steps[1:], A["sgd.z"][1:, :S, psi[0], l].T, color=color, label=f"{label}: SGD T={cfg.seq_len}")
        ax.plot(t[1:], A["r1.z"][1:, r1_i, psi[0], l], color=color, lw=1.2)
        ax.plot(t[1:], A["r2.z"][1:, r2_i, psi[0], l], color=color, lw=1.2, ls="--")
        ax.plot(t[1:], A["r1m.z"][1:, r1_i, psi[0], l], color=color, lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("t (SGD steps)")
    ax.set_ylabel("z_ml")
    ax.set_title(f"class 0, eta_Y={cfg.eta_y:g}, eta_Z={cfg.eta_z:g}\nSGD (band over seeds), R1 (solid), R2 (dashed), R1m (dotted)")
    ax.legend(fontsize=7, ncol=2)
    figs["logits_vs_time"] = fig

    # 3. R2's scan: distinct c_l|n(t) with their peaks.
    fig, axes = new_figure(1, 1, width=5.0, height=3.2)
    ax = axes[0, 0]
    c = theory.class_attention(A["r2.z"][:, r2_i], layout)[:, 0, :]  # (n_t, M_c)
    for k, l in enumerate(d0):
        line, = ax.plot(t[1:], c[1:, l], color=f"C{k % 10}", lw=1)
        i = int(np.argmax(c[:, l]))
        if i < len(t) - 1:
            ax.plot(t[i], c[i, l], "o", color=line.get_color(), ms=3)
    ax.set_xscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("c_l|n (distinct tokens of class 0)")
    ax.set_title(f"R2: scan then snap (eta_Y={A['r2.eta_y'][r2_i]:g}, eta_Z={A['r2.eta_z'][r2_i]:g})\ndots: peaks of c_l|n")
    figs["r2_scan"] = fig

    # 4. p(correct) and ||dz/dt|| against eta_Y t: collapse, with 2 K ln M.
    fig, axes = new_figure(2, 1, width=3.8, height=3.0)
    snap = np.nonzero(A["r1.group"] == 1)[0]
    for k, i in enumerate(snap):
        ey = A["r1.eta_y"][i]
        axes[0, 0].plot(ey * t[1:], A["r1.p_correct"][1:, i], color=f"C{k}", label=f"R1 eta_Y={ey:g}")
        axes[0, 1].plot(ey * t[1:], A["r1.zdot_norm"][1:, i].mean(-1) / A["r1.eta_z"][i], color=f"C{k}")
    pc = A["sgd.p_correct"].reshape(len(steps), -1, S).mean(-1)
    for j, f in enumerate(cfg.eta_y_factors):
        ey = cfg.eta_y * f
        axes[0, 0].plot(ey * steps[1:], pc[1:, j], "x", ms=3, color="k", alpha=0.3 + 0.7 * j / max(1, len(cfg.eta_y_factors) - 1),
                        label=f"SGD eta_Y={ey:g}")
    mark = 2 * K * math.log(M)
    orth = float(theory.snap_time_orthogonal(M, K, 1.0))
    for ax in axes[0]:
        ax.axvline(mark, color="0.3", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("eta_Y t")
    axes[0, 0].axvline(orth, color="0.6", ls=":", lw=1)
    axes[0, 0].set_ylabel("mean p(correct)")
    axes[0, 0].set_title("decoder snap\ndashed: 2K ln M; dotted: orthogonal t_1/2")
    axes[0, 0].legend(fontsize=6)
    axes[0, 1].set_ylabel("||dz_m/dt|| / eta_Z")
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_title("attention speed (R1)\npeaks near t_0 = 2K ln M / eta_Y")
    figs["snap_collapse"] = fig

    # 5. Fig. 6: entropy vs eta_Y/eta_Z per eta_Z; SGD (paper protocol) and R2 at t = steps.
    nq = len(cfg.sweep_queries)
    fig, axes = new_figure(nq, 1, width=3.6, height=3.0)
    ratios = np.asarray(cfg.lr_ratios)
    nr, nz = len(ratios), len(cfg.sweep_eta_z)
    for ax, q in zip(axes[0], cfg.sweep_queries):
        H = A[f"sweep{q}.entropy"][-1].reshape(nz, nr, S)
        H2 = A[f"r2_sweep{q}.entropy"][np.searchsorted(t, cfg.steps)].reshape(nz, nr)
        for k, ez in enumerate(cfg.sweep_eta_z):
            ax.errorbar(ratios, H[k].mean(-1), yerr=H[k].std(-1), color=f"C{k}", marker="o", ms=3, capsize=2,
                        label=f"SGD eta_Z={ez:g}")
            ax.plot(ratios, H2[k], color=f"C{k}", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("eta_Y / eta_Z")
        ax.set_ylabel("entropy of c_n on distinct tokens")
        ax.set_title(f"num_last={q}: SGD (mean +- sd, {S} seeds)\nR2 at t={cfg.steps} (dashed)")
        ax.legend(fontsize=6)
    figs["entropy_vs_ratio"] = fig

    # 6. B_n(t) of Eq. 129 for the paper's parameter sets.
    fig, axes = new_figure(2, 1, width=3.8, height=3.0)
    tb = A["bn.t"]
    for j, label in enumerate(record.info.get("bn_labels", [])):
        ax = axes[0, 0] if label.startswith("Fig. 3") else axes[0, 1]
        line, = ax.plot(tb, A[f"bn.exact{j}"], label=label)
        ax.plot(tb, A[f"bn.scanning{j}"], color=line.get_color(), ls=":", lw=0.8)
        ax.plot(tb, A[f"bn.snapping{j}"], color=line.get_color(), ls="--", lw=0.8)
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel("B_n(t) (C_0 = 1)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=6)
    axes[0, 0].set_title("B_n(t), Eq. 129\ndotted: O(ln t); dashed: O(ln ln t)")
    figs["snap_bound"] = fig

    # 7. JoMA: toy entropy (gated vs uniform) and the attention + MLP entropy by activation.
    fig, axes = new_figure(2, 1, width=3.8, height=3.0)
    H = A["joma_toy.entropy"]
    k = np.arange(len(H))
    seed_band(axes[0, 0], k, H.T, label="b = softmax(v^2/tau)")
    seed_band(axes[0, 0], k, A["joma_toy.uniform_entropy"].T, label="uniform gating")
    axes[0, 0].set_xlabel("step")
    axes[0, 0].set_ylabel("H(b)")
    axes[0, 0].set_title("JoMA toy: sparse, then dense")
    axes[0, 0].legend(fontsize=7)
    acts = A["mlp.activation"]
    for a, name in enumerate(("linear", "relu", "silu")):
        sel = acts == a
        if sel.any():
            seed_band(axes[0, 1], np.arange(len(A["mlp.entropy"])), A["mlp.entropy"][:, sel].T, label=f"{name} MLP")
    axes[0, 1].set_xscale("symlog", linthresh=10)
    axes[0, 1].set_xlabel("GD step")
    axes[0, 1].set_ylabel("distinct-token entropy of c_n")
    axes[0, 1].set_title("exp attention -> MLP -> decoder")
    axes[0, 1].legend(fontsize=7)
    figs["joma"] = fig
    return figs
