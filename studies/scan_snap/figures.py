"""Figures of the Scan and Snap study: pure functions of a record's typed results; they display nothing."""
from __future__ import annotations

import math

import numpy as np

from workbench.phases import load
from workbench.plotting import new_figure, seed_band

from studies.scan_snap import joma, theory
from studies.scan_snap.simulate import (AttnMlpRun, Assumption2Run, JomaToy, Layout, MlpRun, PopulationRun, R1Run, R2Run, ScanGrid, SgdRun,
                                       SnapBound, Sweep)


def figures(record) -> dict:
    return {"heatmaps": heatmaps(record), "logits_vs_time": logits_vs_time(record), "r2_scan": r2_scan(record),
            "snap_collapse": snap_collapse(record), "entropy_vs_ratio": entropy_vs_ratio(record),
            "snap_bound": snap_bound(record), "population": population_figure(record),
            "scan_grid": scan_grid_figure(record), "joma": joma_figure(record),
            "attn_mlp": attn_mlp_figure(record)}


def _class0_tokens(record) -> tuple[np.ndarray, np.ndarray, int]:
    """Class 0's common and distinct tokens (P increasing) and its query index."""
    lay = load(record, "layout", Layout)
    return (np.nonzero(lay.common_mask.astype(bool))[0], np.nonzero(lay.distinct_mask[0])[0],
            int(lay.query_of_class[0]))


def _first_of_group(run, group: int) -> int:
    return int(np.nonzero(run.group == group)[0][0])


def heatmaps(record):
    """Fig. 4: c_n over SGD iterations, smallest and largest eta_Y (seed 0, class 0); top row the
    main runs' protocol (the theory's), bottom row the paper's (``fig4``: momentum, random init).
    Rows are iterations 0, 2, ..., 10 and then the last step: the axis gap is marked."""
    cfg, sgd, paper = record.config, load(record, "sgd", SgdRun), load(record, "fig4", SgdRun)
    c0, d0, _ = _class0_tokens(record)
    order = np.concatenate([c0, d0])  # class 0's tokens: common | distinct
    S, pairs = cfg.n_seeds, [0, len(cfg.eta_y_factors) - 1]
    early = [s for s in (0, 2, 4, 6, 8, 10) if s < cfg.steps]
    iters = early + [cfg.steps]
    protocols = [(sgd, [j * S for j in pairs], f"momentum {cfg.momentum:g}, {cfg.init} init"),
                 (paper, [0, 1], f"paper: momentum {cfg.heatmap.momentum:g}, {cfg.heatmap.init} init")]
    fig, axes = new_figure(len(pairs), 2, width=3.8, height=3.2)
    for row, (run, members, label) in enumerate(protocols):
        for col, (j, i) in enumerate(zip(pairs, members)):
            ax = axes[row, col]
            c = theory.class_attention(run.z[iters, i], cfg.layout)[:, 0, order]  # (iters, tokens)
            im = ax.imshow(c, aspect="auto", cmap="viridis", vmin=0)
            ax.set_yticks(range(len(iters)), [str(k) for k in early] + [f"{cfg.steps} (gap)"])
            ax.axhline(len(early) - 0.5, color="r", lw=1.5, ls="--")  # the jump from step 10 to the last step
            ax.axvline(len(c0) - 0.5, color="w", lw=1)
            ax.set_xlabel("token (common | distinct, P increasing)")
            ax.set_ylabel(f"SGD iteration (axis jumps {early[-1]} -> {cfg.steps})")
            ax.set_title(f"c_l|n, eta_Y={cfg.eta_y * cfg.eta_y_factors[j]:g}, eta_Z={cfg.eta_z:g}\n{label}", fontsize=8)
            ax.grid(False)
            fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def logits_vs_time(record):
    """z_ml(t): SGD (median, min-max band over seeds) vs R1 (solid) vs R2 (dashed) vs R1m (dotted)."""
    cfg, sgd = record.config, load(record, "sgd", SgdRun)
    r1, r1m, r2 = load(record, "r1", R1Run), load(record, "r1m", R1Run), load(record, "r2", R2Run)
    c0, d0, psi0 = _class0_tokens(record)
    S, t, steps = cfg.n_seeds, r1.t, sgd.steps.astype(float)
    r1_i, r2_i = _first_of_group(r1, 0), _first_of_group(r2, 0)
    fig, axes = new_figure(1, 1, width=6.0, height=3.6)
    ax = axes[0, 0]
    tokens = [(c0[0], "common"), (d0[0], "rarest distinct"), (d0[len(d0) // 2], "middle distinct"), (d0[-1], "top distinct")]
    for k, (l, label) in enumerate(tokens):
        color = f"C{k}"
        seed_band(ax, steps[1:], sgd.z[1:, :S, psi0, l].T, color=color, label=f"{label}: SGD T={cfg.seq_len}")
        ax.plot(t[1:], r1.z[1:, r1_i, psi0, l], color=color, lw=1.2)
        ax.plot(t[1:], r2.z[1:, r2_i, psi0, l], color=color, lw=1.2, ls="--")
        ax.plot(t[1:], r1m.z[1:, r1_i, psi0, l], color=color, lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("t (SGD steps)")
    ax.set_ylabel("z_ml")
    ax.set_title(f"class 0, eta_Y={cfg.eta_y:g}, eta_Z={cfg.eta_z:g}\nSGD (band over seeds), R1 (solid), R2 (dashed), R1m (dotted)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def r2_scan(record):
    """The scan, R1 against R2: distinct c_l|n(t) of class 0 with their peaks, on Syn-Small (top)
    and on the Syn-Small-like layout that satisfies Assumption 2 (bottom, phase ``assumption2``)."""
    from studies.scan_snap.data import SequenceClasses

    cfg, r1, r2, a2 = record.config, load(record, "r1", R1Run), load(record, "r2", R2Run), load(record, "assumption2", Assumption2Run)
    _, d0, _ = _class0_tokens(record)
    r1_i, r2_i = _first_of_group(r1, 0), _first_of_group(r2, 0)
    lay2 = SequenceClasses(a2.n_common, cfg.n_queries, cfg.next_per_query, cfg.n_distinct)
    d2 = np.nonzero(lay2.distinct_mask().numpy()[0])[0]
    P = cfg.layout.probabilities().numpy()
    f = P / np.linalg.norm(P, axis=1, keepdims=True)
    rows = [(f"Syn-Small, C={cfg.n_common} (f1.f2 = {float(f[0] @ f[1]):.2f})", cfg.layout, d0, r1.t, r1.z[:, r1_i], r2.z[:, r2_i]),
            (f"C={a2.n_common}: Assumption 2 holds (f1.f2 = {a2.overlap:.2f} <= 1/K)", lay2, d2, a2.t, a2.r1_z[:, 0], a2.r2_z[:, 0])]
    fig, axes = new_figure(2, 2, width=4.0, height=3.0, sharey="row")
    for row, (label, lay, d, t, z1, z2) in enumerate(rows):
        for col, (name, z) in enumerate((("R1 (the model's T -> inf flow)", z1), ("R2 (reduced equation)", z2))):
            ax = axes[row, col]
            c = theory.class_attention(z, lay)[:, 0, :]  # (n_t, M_c)
            peaks = 0
            for k, l in enumerate(d):
                line, = ax.plot(t[1:], c[1:, l], color=f"C{k % 10}", lw=1)
                i = int(np.argmax(c[:, l]))
                if i < len(t) - 1:
                    ax.plot(t[i], c[i, l], "o", color=line.get_color(), ms=3)
                    peaks += 1
            ax.set_xscale("log")
            ax.set_xlabel("t")
            ax.set_ylabel("c_l|n (distinct tokens of class 0)")
            ax.set_title(f"{name}: {peaks} of {len(d)} peak\n{label}", fontsize=8)
    fig.suptitle(f"eta_Y={r2.eta_y[r2_i]:g}, eta_Z={r2.eta_z[r2_i]:g}; dots: peaks of c_l|n (a token that rises then falls)", fontsize=9)
    return fig


def snap_collapse(record):
    """p(correct) and ||dz/dt|| against eta_Y t: collapse, with 2 K ln M."""
    cfg, r1, sgd = record.config, load(record, "r1", R1Run), load(record, "sgd", SgdRun)
    K, M = cfg.layout.n_classes, cfg.layout.vocab
    t, steps = r1.t, sgd.steps.astype(float)
    fig, axes = new_figure(2, 1, width=3.8, height=3.0)
    for k, i in enumerate(np.nonzero(r1.group == 1)[0]):
        ey = r1.eta_y[i]
        axes[0, 0].plot(ey * t[1:], r1.p_correct[1:, i], color=f"C{k}", label=f"R1 eta_Y={ey:g}")
        axes[0, 1].plot(ey * t[1:], r1.zdot_norm[1:, i].mean(-1) / r1.eta_z[i], color=f"C{k}")
    pc = sgd.p_correct.reshape(len(steps), -1, cfg.n_seeds).mean(-1)
    for j, f in enumerate(cfg.eta_y_factors):
        ey = cfg.eta_y * f
        axes[0, 0].plot(ey * steps[1:], pc[1:, j], "x", ms=3, color="k", alpha=0.3 + 0.7 * j / max(1, len(cfg.eta_y_factors) - 1),
                        label=f"SGD eta_Y={ey:g}")
    orth = float(theory.snap_time_orthogonal(M, K, 1.0))
    for ax in axes[0]:
        ax.axvline(2 * K * math.log(M), color="0.3", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("eta_Y t")
    axes[0, 0].axvline(orth, color="0.6", ls=":", lw=1)
    axes[0, 0].set_ylabel("mean p(correct)")
    axes[0, 0].set_title("decoder snap\ndashed: 2K ln M; dotted: orthogonal t_1/2")
    axes[0, 0].legend(fontsize=6)
    axes[0, 1].set_ylabel("||dz_m/dt|| / eta_Z")
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_title("attention speed (R1)\npeaks near t_0 = 2K ln M / eta_Y")
    return fig


def entropy_vs_ratio(record):
    """Fig. 6: entropy vs eta_Y/eta_Z per eta_Z; SGD (paper protocol) and R2 at t = sweep.steps."""
    cfg, sw, panels = record.config, record.config.sweep, load(record, "sweep", Sweep)
    S, ratios = cfg.sweep_seeds, np.asarray(sw.lr_ratios)
    nr, nz = len(ratios), len(sw.eta_z)
    fig, axes = new_figure(len(sw.queries), 1, width=3.6, height=3.0)
    for ax, q in zip(axes[0], sw.queries):
        panel = panels[str(q)]
        H = panel.entropy[-1].reshape(nz, nr, S)
        H2 = panel.r2.entropy[np.searchsorted(panel.r2.t, sw.steps)].reshape(nz, nr)
        for k, ez in enumerate(sw.eta_z):
            ax.errorbar(ratios, H[k].mean(-1), yerr=H[k].std(-1), color=f"C{k}", marker="o", ms=3, capsize=2,
                        label=f"SGD eta_Z={ez:g}")
            ax.plot(ratios, H2[k], color=f"C{k}", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("eta_Y / eta_Z")
        ax.set_ylabel("entropy of c_n on distinct tokens")
        ax.set_title(f"num_last={q}: SGD (mean +- sd, {S} seeds)\nR2 at t={sw.steps} (dashed)")
        ax.legend(fontsize=6)
    return fig


def snap_bound(record):
    """B_n(t) of Eq. 129 for the paper's parameter sets, with its two asymptotes."""
    bn = load(record, "bn", SnapBound)
    fig, axes = new_figure(2, 1, width=3.8, height=3.0)
    for j, label in enumerate(bn.labels):
        ax = axes[0, 0] if label.startswith("Fig. 3") else axes[0, 1]
        line, = ax.plot(bn.t, bn.exact[str(j)], label=label)
        ax.plot(bn.t, bn.scanning[str(j)], color=line.get_color(), ls=":", lw=0.8)
        ax.plot(bn.t, bn.snapping[str(j)], color=line.get_color(), ls="--", lw=0.8)
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel("B_n(t) (C_0 = 1)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=6)
    axes[0, 0].set_title("B_n(t), Eq. 129\ndotted: O(ln t); dashed: O(ln ln t)")
    return fig


def population_figure(record):
    """One small layout at one T, four dynamics on the same axes: SGD (seed mean, min-max band over
    seeds), exact population GD, R1 (T -> infinity) and R2, z_ml(t) of class 0, one panel per eta_Y."""
    from studies.scan_snap.data import SequenceClasses

    cfg, pr = record.config, load(record, "population", PopulationRun)
    lay = SequenceClasses(pr.n_common, 2, 1, pr.n_distinct)
    d0 = lay.distinct_tokens(0).numpy()
    S, t = cfg.n_seeds, pr.steps.astype(float)
    tokens = [(0, "common"), (d0[0], "rarest distinct"), (d0[len(d0) // 2], "a middle distinct"), (d0[-1], "top distinct")]
    fig, axes = new_figure(len(pr.eta_y) + 1, 1, width=4.6, height=3.6)
    for col, ax in enumerate(axes[0, :-1]):
        for k, (l, label) in enumerate(tokens):
            color = f"C{k}"
            sgd = pr.sgd_z[1:, col * S:(col + 1) * S, 0, l].T  # (seeds, n_t - 1)
            ax.fill_between(t[1:], sgd.min(0), sgd.max(0), color=color, alpha=0.15, lw=0)
            ax.plot(t[1:], sgd.mean(0), color=color, lw=0.8, ls="-.")
            ax.plot(t[1:], pr.gd_z[1:, col, 0, l], color=color, lw=2.0, label=label)
            ax.plot(t[1:], pr.r1_z[1:, col, 0, l], color=color, lw=0.9)
            ax.plot(t[1:], pr.r2_z[1:, col, 0, l], color=color, lw=0.9, ls="--")
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("t (GD / SGD steps)")
        ax.set_ylabel("z_ml (class 0)")
        ax.set_title(f"C={pr.n_common}, D={pr.n_distinct}, T={pr.seq_len}: eta_Y={pr.eta_y[col]:g}, eta_Z={pr.eta_z[col]:g}\n"
                     f"thick: population GD; dash-dot + band: SGD (B={cfg.population.batch_size}, {S} seeds);\n"
                     "thin: R1 (T -> inf); dashed: R2", fontsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    ax, col = axes[0, -1], len(pr.eta_y) - 1  # the long run at the largest eta_Y
    c_long = theory.class_attention(pr.long_z[:, col], lay)[:, 0]  # (n_long, M_c)
    c_r1 = theory.class_attention(pr.r1_z[:, col], lay)[:, 0]
    ts = pr.long_steps.astype(float)
    for k, l in enumerate(d0):
        ax.plot(ts[1:], c_long[1:, l], color=f"C{k + 4}", lw=1.6, label=f"distinct, P rank {k + 1}")
        ax.plot(t[1:], c_r1[1:, l], color=f"C{k + 4}", lw=0.8, ls=":")
        i = int(np.argmax(c_long[:, l]))
        if 0 < i < len(ts) - 1:
            ax.plot(ts[i], c_long[i, l], "o", color=f"C{k + 4}", ms=4)
    ax.set_xscale("log")
    ax.set_xlabel("t (GD steps)")
    ax.set_ylabel("c_l|n (class 0)")
    ax.set_title(f"population GD to {int(ts[-1])} steps, eta_Y={pr.eta_y[col]:g}: distinct tokens\n"
                 f"dots: maxima (the top token turns); dotted: R1 to {int(t[-1])}", fontsize=7)
    ax.legend(fontsize=6, loc="upper left")
    return fig


def scan_grid_figure(record):
    """The scan search: distinct tokens that peak and fall (class 0) per layout and eta_Y/eta_Z, in
    R1 (the model at T -> infinity, filled) and R2 (open), as a share of D; the scan needs 1/2."""
    g, pr = load(record, "scan_grid", ScanGrid), load(record, "population", PopulationRun)
    from studies.scan_snap.data import SequenceClasses

    fig, axes = new_figure(1, 1, width=6.0, height=3.6)
    ax = axes[0, 0]
    for j, (c, d) in enumerate(zip(g.n_common, g.n_distinct)):
        jitter = 1.0 + 0.04 * (j - (len(g.n_common) - 1) / 2)
        ax.plot(g.ratio * jitter, g.r1_peaks[j, :, 0] / d, "o-", color=f"C{j}", ms=5, label=f"C={c}, D={d}: R1")
        ax.plot(g.ratio * jitter, g.r2_peaks[j, :, 0] / d, "o--", color=f"C{j}", ms=5, mfc="none", lw=0.8)
    lay = SequenceClasses(pr.n_common, 2, 1, pr.n_distinct)
    s_gd = theory.model_scan(theory.class_attention(pr.long_z, lay), pr.long_steps.astype(float),
                             [lay.distinct_tokens(n).numpy() for n in range(2)])
    ax.plot(pr.eta_y / pr.eta_z, s_gd["peaks"][:, 0] / pr.n_distinct, "k*", ms=10,
            label=f"population GD, C={pr.n_common}, D={pr.n_distinct}, T={pr.seq_len},\n{int(pr.long_steps[-1])} steps")
    ax.axhline(0.5, color="0.4", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("eta_Y / eta_Z")
    ax.set_ylabel("share of distinct tokens that peak and fall")
    ax.set_title("Where does the model scan?  filled: R1 (the model, T -> inf); open, dashed: R2\n"
                 "dotted: the scan's threshold (half the distinct tokens)", fontsize=8)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def joma_figure(record):
    """JoMA: toy entropy (gated vs uniform) and the attention + MLP entropy by activation."""
    toy, mlp = load(record, "joma_toy", JomaToy), load(record, "mlp", MlpRun)
    fig, axes = new_figure(2, 1, width=3.8, height=3.0)
    k = np.arange(len(toy.entropy))
    seed_band(axes[0, 0], k, toy.entropy.T, label="b = softmax(v^2/tau)")
    seed_band(axes[0, 0], k, toy.uniform_entropy.T, label="uniform gating")
    axes[0, 0].set_xlabel("step")
    axes[0, 0].set_ylabel("H(b)")
    axes[0, 0].set_title("JoMA toy: sparse, then dense")
    axes[0, 0].legend(fontsize=7)
    for a, name in enumerate(joma.ACTIVATIONS):
        sel = mlp.activation == a
        if sel.any():
            seed_band(axes[0, 1], np.arange(len(mlp.entropy)), mlp.entropy[:, sel].T, label=f"{name} MLP")
    axes[0, 1].set_xscale("symlog", linthresh=10)
    axes[0, 1].set_xlabel("GD step")
    axes[0, 1].set_ylabel("distinct-token entropy of c_n")
    axes[0, 1].set_title("exp attention -> MLP -> decoder")
    axes[0, 1].legend(fontsize=7)
    return fig


def attn_mlp_figure(record):
    """JoMA in the study's model: attention entropy against GD step, by activation, one panel per
    eta_Z / lr (seed bands)."""
    run = load(record, "attn_mlp", AttnMlpRun)
    ratios = np.unique(run.lr_ratio)
    fig, axes = new_figure(len(ratios), 1, width=3.4, height=3.0)
    k = np.arange(len(run.entropy))
    for j, r in enumerate(ratios):
        ax = axes[0, j]
        for a, name in enumerate(joma.ACTIVATIONS):
            sel = (run.lr_ratio == r) & (run.activation == a)
            if sel.any():
                seed_band(ax, k, run.entropy[:, sel].T, label=f"{name} MLP")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlabel("GD step")
        ax.set_ylabel("attention entropy of c_n (nats)")
        ax.set_title(f"eta_Z / lr = {r:g}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("softmax attention -> l2 norm -> residual decoder + MLP (T -> inf)", fontsize=9)
    return fig
