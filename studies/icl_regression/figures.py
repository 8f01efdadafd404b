"""Figures P1-P10 of the study: pure functions of a record's typed results (no simulation)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from workbench.phases import load
from workbench.plotting import FLOAT64_EPS, mark_float_floor, new_figure

from studies.icl_regression import theory as th
from studies.icl_regression.model import effective_gamma, head_statistics, task_weights
from studies.icl_regression.checks import multitask_levels, multitask_predictions
from studies.icl_regression.simulate import (WU_SPECTRA, Evaluation, LSATraining, MonteCarlo, MultiTask, SoftmaxTraining,
                                             TaskPool, TheoryCurves, WuPretraining)


def fig_risk_vs_n(record):
    """P1: risk vs context length: ridge (Bayes), OLS, R*_GD, R*_DGD, Monte Carlo and trained models at N, at
    the short lengths (small-N) and at He et al.'s lengths (long-N)."""
    cfg, curves, mc = record.config, load(record, "theory", TheoryCurves), load(record, "mc", MonteCarlo)
    s, ev = load(record, "softmax", SoftmaxTraining), load(record, "eval", Evaluation)
    fig, axes = new_figure(1, 1, width=5.0, height=3.6)
    ax = axes[0, 0]
    N = curves.N
    ax.plot(N, curves.gd_star, label=r"$\mathcal{R}^*_{\rm GD}(N)$")
    ax.plot(N, curves.dgd_star, label=r"$\mathcal{R}^*_{\rm DGD}(N)$")
    ax.plot(N, curves.ols, label="OLS", color="0.4")
    ax.errorbar(curves.ridge_N, curves.ridge, yerr=3 * curves.ridge_se, fmt="-", color="k", lw=1,
                label="Bayes (ridge, Wishart MC)")
    tau = cfg.psi2 * cfg.d
    ax.plot(N, tau * th.ridge_risk_proportional(cfg.d / N, cfg.sigma2 / tau), "k:", lw=1, label="ridge, proportional limit")
    ax.plot(N, tau * th.gd_risk_proportional(cfg.d / N, cfg.sigma2 / tau), ":", color="C0", lw=1, label="GD, proportional limit")
    n = cfg.n_context
    for mean, se, color in ((mc.gd, mc.gd_se, "C0"), (mc.dgd, mc.dgd_se, "C1"), (mc.ols, mc.ols_se, "0.4"),
                            (mc.ridge, mc.ridge_se, "k")):
        ax.errorbar([n], [mean.item()], yerr=[3 * se.item()], fmt="o", ms=3, color=color)
    for H, marker in ((1, "v"), (cfg.pair_heads, "s")):
        r = ev.softmax.risk[s.where(cfg.cov, H), cfg.n_context_index]
        ax.plot(np.full(r.shape, n * 1.04), r, marker, ms=5, mfc="none", color="C3" if H == 1 else "C2",
                label=f"trained softmax, H={H}")
    small = load(record, "small_n", SoftmaxTraining)
    ax.errorbar(small.length * 1.04, ev.small_n.risk[:, 0], yerr=3 * ev.small_n.risk_se[:, 0], fmt="s",
                ms=5, mfc="none", color="C2", label=f"trained softmax, H={cfg.pair_heads}, N in {list(cfg.small_n.lengths)} (3 SE)")
    long_ = load(record, "long_n", SoftmaxTraining)   # He et al.'s lengths, beside the closed forms
    ax.errorbar(long_.length * 1.04, ev.long_n.risk[:, 0], yerr=3 * ev.long_n.risk_se[:, 0], fmt="D",
                ms=4, mfc="none", color="C4", label=f"trained softmax, H={cfg.pair_heads}, L in {list(cfg.long_n.lengths)} (3 SE)")
    ax.axhline(cfg.sigma2, color="0.7", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("context length N")
    ax.set_ylabel("risk (incl. $\\sigma^2$)")
    ax.set_title(f"P1: risk vs N (d={cfg.d}, $\\sigma^2$={cfg.sigma2:g}, Σ={cfg.cov}); dots at N={n}: Monte Carlo",
                 fontsize=8)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1))   # outside: clear of every point
    return fig


def fig_heatmaps(record):
    """P2: per-head KQ (heatmaps, one shared colour scale) and OV (bars) of the trained pair model and
    of the largest head count (seed 0).  The KQ column of the query's label is greyed out and left out
    of the colour scale: the query token is (x_q; 0), so that column never reaches the logits."""
    cfg, s = record.config, load(record, "softmax", SoftmaxTraining)
    heads = dict.fromkeys((cfg.pair_heads, max(cfg.n_heads)))          # the pair, and the largest count if larger
    chosen = [int(np.flatnonzero(s.where(cfg.cov, H) & (s.seed_index == 0))[0]) for H in heads]
    cols = max(int(s.heads[m]) for m in chosen) + 1
    fig, axes = new_figure(cols, len(chosen), width=2.0, height=2.0)
    D = s.KQ.shape[-1]
    lim = max(np.abs(s.KQ[m, ..., : D - 1]).max() for m in chosen)     # the used columns only
    for r, m in enumerate(chosen):
        H = int(s.heads[m])
        for h in range(cols - 1):
            ax = axes[r, h]
            ax.grid(False)
            if h >= H:
                ax.axis("off")
                continue
            used = np.ma.masked_array(s.KQ[m, h], mask=np.zeros((D, D), bool))
            used.mask[:, D - 1] = True                                 # the query's label column: unused
            im = ax.imshow(used, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.add_patch(plt.Rectangle((D - 1.5, -0.5), 1, D, facecolor="0.85", edgecolor="0.6", hatch="///", lw=0.5))
            ax.set_title(f"H={H}: KQ of head {h}", fontsize=8)
            ax.set_xticks(range(D))
            ax.set_xticklabels([str(i) for i in range(D - 1)] + ["y"], fontsize=6)
            ax.set_yticks([])
        ax = axes[r, cols - 1]
        width = 0.8 / H
        for h in range(H):
            ax.bar(np.arange(D) + (h - (H - 1) / 2) * width, s.OV[m, h], width=width, label=f"head {h}")
        ax.set_xticks(range(D))
        ax.set_xticklabels([str(i) for i in range(D - 1)] + ["y"], fontsize=6)
        ax.set_title(f"H={H}: OV of each head", fontsize=8)
        ax.legend(fontsize=6)
    fig.colorbar(im, ax=axes[:, : cols - 1].ravel().tolist(), shrink=0.7, label="KQ entry")
    fig.suptitle("P2: per-head circuits KQ = K^T Q / sqrt(d+1) (rows: key token, columns: query token)\n"
                 "and OV = O V (last index: the label y); hatched: the query's label column, which z_q = (x_q; 0) "
                 "never uses", fontsize=8)
    return fig


def fig_dynamics(record):
    """P3: omega_h(t), mu_h(t), sum_h mu_h and gamma_eff(t) of the pair model (all seeds)."""
    cfg, s = record.config, load(record, "softmax", SoftmaxTraining)
    H2 = cfg.pair_heads
    steps = np.maximum(s.steps, 1)
    fig, axes = new_figure(4, 1, width=2.7, height=2.6)
    members = np.flatnonzero(s.where(cfg.cov, H2))
    G_D = th.predict(cfg)["Gamma_dgd_star_main"]
    for k, m in enumerate(members):
        st = head_statistics(s.KQ_traj[:, m], s.OV_traj[:, m])
        for h in range(H2):
            axes[0, 0].plot(steps, st["omega"][:, h], color=f"C{h}", alpha=1 if k == 0 else 0.4)
            axes[0, 1].plot(steps, st["mu"][:, h], color=f"C{h}", alpha=1 if k == 0 else 0.4)
        axes[0, 2].plot(steps, (st["mu"] * s.mask[m]).sum(-1), color="k", alpha=1 if k == 0 else 0.4)
        G = effective_gamma(s.KQ_traj[:, m], s.OV_traj[:, m], s.mask[m])
        axes[0, 3].plot(steps, np.einsum("tij,ij->t", G, G_D) / np.sum(G_D * G_D) * np.trace(G_D) / cfg.d,
                        color="C2", alpha=1 if k == 0 else 0.4)
    axes[0, 3].axhline(np.trace(G_D) / cfg.d, color="k", ls="--", lw=1, label=r"$\gamma_D^*$")
    axes[0, 3].legend()
    for ax, title in zip(axes[0], [r"$\omega_h$ (mean diag KQ)", r"$\mu_h$ (OV last entry)", r"$\sum_h \mu_h$",
                                   r"$\gamma_{\rm eff}$ (along $\Gamma_D^*$)"]):
        ax.set_xscale("log")
        ax.set_xlabel("Adam step")
        ax.set_title(title)
    fig.suptitle(f"P3: training dynamics, H={H2}, {len(members)} seeds", fontsize=9)
    return fig


def fig_length(record):
    """P4: length generalisation: softmax vs R^DGD_M(Gamma_eff), LSA with 1/M vs fixed 1/N, the envelope."""
    cfg, pred = record.config, th.predict(record.config)
    s, mixed, ev = load(record, "softmax", SoftmaxTraining), load(record, "mixed", SoftmaxTraining), load(record, "eval", Evaluation)
    lsa = load(record, "lsa", LSATraining)
    Ms = np.array(cfg.test_lengths)
    Mgrid = np.unique(np.round(np.geomspace(max(Ms.min(), 3), Ms.max(), 40)).astype(int))
    S = pred["Sigma_main"]
    fig, axes = new_figure(1, 1, width=5.2, height=3.8)
    ax = axes[0, 0]
    H2 = cfg.pair_heads
    G_eff = effective_gamma(s.KQ, s.OV, s.mask)
    members = np.flatnonzero(s.where(cfg.cov, H2))
    for k, m in enumerate(members):
        ax.errorbar(Ms, ev.softmax.risk[m], yerr=3 * ev.softmax.risk_se[m], fmt="o", ms=4, color="C2",
                    label=f"softmax H={H2} (trained at N={cfg.n_context})" if k == 0 else None)
        ax.plot(Mgrid, [th.dgd_risk_matrix(G_eff[m], S, cfg.psi2, cfg.sigma2, M) for M in Mgrid], color="C2", lw=1,
                label=r"$\mathcal{R}^{\rm DGD}_M(\Gamma_{\rm eff})$" if k == 0 else None)
    for k in range(mixed.KQ.shape[0]):
        ax.errorbar(Ms * 1.05, ev.mixed.risk[k], yerr=3 * ev.mixed.risk_se[k], fmt="d", ms=4, color="C4",
                    label=f"softmax trained on lengths {list(cfg.mixed.lengths)}" if k == 0 else None)
    ax.plot(Mgrid, [th.dgd_risk_matrix(pred["Gamma_pi"], S, cfg.psi2, cfg.sigma2, M) for M in Mgrid], color="C4", lw=1,
            ls="--", label=r"$\mathcal{R}^{\rm DGD}_M(\Gamma_\pi)$")
    ax.errorbar(Ms, ev.lsa_norm_M.risk, yerr=3 * ev.lsa_norm_M.risk_se, fmt="s", ms=4, mfc="none",
                color="C0", label="LSA, 1/M")
    ax.errorbar(Ms, ev.lsa_fixed.risk, yerr=3 * ev.lsa_fixed.risk_se, fmt="^", ms=4, mfc="none",
                color="C3", label=f"LSA, fixed 1/{cfg.n_context}")
    # closed forms of the trained LSA, normalised by 1/M and by a fixed 1/N (p scaled by M/N)
    St = torch.as_tensor(S)
    for norm_M, color in ((True, "C0"), (False, "C3")):
        ax.plot(Mgrid, th.trained_lsa_risks(lsa.eval_p, lsa.eval_K, St, cfg.psi2, cfg.sigma2, cfg.n_context, Mgrid,
                                            normalise_by_M=norm_M), color=color, lw=1)
    B = cfg.psi2 * torch.eye(cfg.d, dtype=torch.float64)
    ax.plot(Mgrid, [float(th.dgd_optimal_risk(St, B, cfg.sigma2, M)) for M in Mgrid], "k:", lw=1,
            label=r"envelope $\mathcal{R}^*_{\rm DGD}(M)$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    top = 3 * max(np.max(ev.softmax.risk[members]), np.max(ev.lsa_norm_M.risk))
    ax.set_ylim(cfg.sigma2 * 0.9, top)
    ax.set_xlabel("test context length M")
    ax.set_ylabel("risk")
    ax.set_title("P4: length generalisation (markers: evaluation set ±3 SE; lines: theory)", fontsize=8)
    ax.legend(fontsize=7)
    return fig


def fig_pool(record):
    """P5: finite task pool: new-task excess risk vs T against c/T, and the pool-task risk."""
    cfg, pool = record.config, load(record, "pool", TaskPool)
    T, R = pool.T, pool.R_star.item()
    fig, axes = new_figure(2, 1, width=3.4, height=2.9)
    ex = pool.risk_new - R
    axes[0, 0].errorbar(T, ex.mean(0), yerr=3 * ex.std(0, ddof=1) / np.sqrt(ex.shape[0]), fmt="o-", ms=3, label="new tasks")
    axes[0, 0].plot(T, th.predict(cfg)["pool_constant"] / T, "k--", lw=1, label=r"$c/T$ (delta method)")
    axes[0, 0].set_xscale("log", base=2)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_xlabel("number of pretraining tasks T")
    axes[0, 0].set_ylabel(r"$\mathcal{R}_N(\Gamma_T) - \mathcal{R}^*$")
    axes[0, 0].legend()
    in_pool = pool.risk_pool - R
    axes[0, 1].errorbar(T, in_pool.mean(0), yerr=3 * in_pool.std(0, ddof=1) / np.sqrt(in_pool.shape[0]), fmt="o-", ms=3,
                        color="C1", label="pool tasks")
    axes[0, 1].axhline(0, color="k", lw=1)
    axes[0, 1].set_xscale("log", base=2)
    axes[0, 1].set_xlabel("T")
    axes[0, 1].set_ylabel(r"pool-task risk $-\ \mathcal{R}^*$")
    axes[0, 1].legend()
    fig.suptitle(f"P5: finite task pool (Γ model, {cfg.pool.draws} pools per T)", fontsize=9)
    return fig


def fig_lsa_gap(record):
    """P6: |R - R*| of exact GD on the LSA population risk: ZFB vs random init, iso vs AR."""
    cfg, lsa = record.config, load(record, "lsa", LSATraining)
    fig, axes = new_figure(2, 1, width=3.4, height=2.9)
    steps = np.maximum(lsa.steps, 1)
    styles = {0: "-", 1: "--"}
    for m in range(lsa.gap.shape[1]):
        c, i = int(lsa.cov[m]), int(lsa.init[m])
        label = f"{'iso' if c == 0 else f'AR({cfg.rho:g})'}, {'zfb' if i == 0 else 'random'}" if lsa.seed_index[m] == 0 else None
        axes[0, 0].plot(steps, np.maximum(np.abs(lsa.gap[:, m]), 1e-17), styles[i], color=f"C{c}", label=label, lw=1)
        axes[0, 1].plot(steps, np.maximum(lsa.gamma_err[:, m], 1e-17), styles[i], color=f"C{c}", lw=1)
    for ax, title in zip(axes[0], [r"$|\mathcal{R} - \mathcal{R}^*|$", r"$\|\Gamma-\Gamma^*\|_F/\|\Gamma^*\|_F$"]):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("GD iteration")
        ax.set_title(title)
        mark_float_floor(ax, FLOAT64_EPS)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"P6: exact GD on the LSA population risk (lr {cfg.lsa.lr:g}, {cfg.n_seeds} seeds)", fontsize=9)
    return fig


def fig_preconditioner(record):
    """P7: Gamma_eff of the anisotropic pair model vs Gamma_D*."""
    cfg, s = record.config, load(record, "softmax", SoftmaxTraining)
    sel = np.flatnonzero(s.where("ar", cfg.pair_heads))
    fig, axes = new_figure(3, 1, width=2.5, height=2.3)
    if len(sel) == 0:
        axes[0, 0].text(0.5, 0.5, "no anisotropic members", ha="center")
        return fig
    G = effective_gamma(s.KQ[sel[0]], s.OV[sel[0]], s.mask[sel[0]])
    G_D = th.predict(cfg)["Gamma_dgd_star_ar"]
    lim = np.abs(G_D).max()
    for ax, M, title in zip(axes[0], (G, G_D, G - G_D), (r"$\Gamma_{\rm eff}=\sum_h\mu_h KQ_h^\top$", r"$\Gamma_D^*$",
                                                         "difference")):
        im = ax.imshow(M, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(title, fontsize=8)
        ax.grid(False)
    fig.colorbar(im, ax=axes[0, 2], shrink=0.8)
    fig.suptitle(f"P7: preconditioner learned with AR({cfg.rho:g}) covariates, H={cfg.pair_heads}", fontsize=9)
    return fig


def fig_risk_vs_heads(record):
    """P8: risk at the training length vs number of heads."""
    cfg, pred = record.config, th.predict(record.config)
    s, ev, curves = load(record, "softmax", SoftmaxTraining), load(record, "eval", Evaluation), load(record, "theory", TheoryCurves)
    iN = cfg.n_context_index
    fig, axes = new_figure(1, 1, width=4.0, height=3.0)
    ax = axes[0, 0]
    sel = s.where(cfg.cov)
    ax.errorbar(s.heads[sel], ev.softmax.risk[sel, iN], yerr=3 * ev.softmax.risk_se[sel, iN], fmt="o",
                color="C2", label="trained softmax (seeds)")
    ax.axhline(pred["R_star_dgd_main"], color="C1", label=r"$\mathcal{R}^*_{\rm DGD}$")
    ax.axhline(pred["R_star_gd_main"], color="C0", ls="--", label=r"$\mathcal{R}^*_{\rm GD}$")
    ax.axhline(float(curves.one_head_risk.min()), color="C3", ls=":", label="best one-head pattern")
    ax.set_xticks(list(cfg.n_heads))
    ax.set_xlabel("number of heads H")
    ax.set_ylabel(f"risk at N={cfg.n_context}")
    ax.set_title("P8: risk vs heads")
    ax.legend(fontsize=7)
    return fig


def fig_wu(record):
    """P9: Wu et al.'s experiment: excess vs number of pretraining tasks T (two spectra), excess vs d at
    fixed T, and the excess-risk ratio to the tuned ridge against the inference length M."""
    cfg, wu = record.config, load(record, "wu", WuPretraining)
    w = cfg.wu
    fig, axes = new_figure(3, 1, width=3.1, height=2.9)
    ax = axes[0, 0]
    labels = {"iso": "H = I", "power": f"$\\lambda_i = i^{{-{w.decay:g}}}$"}
    for k, sp in enumerate(WU_SPECTRA):
        ex = wu.excess[k]
        m, se = ex.mean(0), ex.std(0, ddof=1) / np.sqrt(ex.shape[0])
        ax.errorbar(wu.T, m, yerr=3 * se, fmt="o-", ms=3, color=f"C{k}", label=labels[sp])
        sat = wu.saturation[k] >= w.saturation
        if sp == "iso" and sat.any():
            T0, m0 = wu.T[sat][0], m[sat][0]
            K = np.ceil(wu.T / np.log2(wu.T))
            K0 = np.ceil(T0 / np.log2(T0))
            ax.plot(wu.T, m0 * K0 / K, "k--", lw=1, label=r"$\propto 1/K$, $K=T/\log_2T$")
            ax.plot(wu.T, m0 * np.sqrt(T0 / wu.T), ":", color="0.4", lw=1, label=r"$\propto T^{-1/2}$")
    pe = wu.pool_excess
    ax.errorbar(wu.pool_sizes, pe.mean(0), yerr=3 * pe.std(0, ddof=1) / np.sqrt(pe.shape[0]), fmt="D", ms=4, mfc="none",
                color="C2", label=f"H = I, {int(wu.T[-1])} steps over a pool of T tasks")
    ax.plot(wu.pool_sizes, wu.pool_opt_excess.mean(0), "x", color="C2", ms=5, label=r"its pool optimum $\Gamma_T$")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("pretraining tasks T (one pass: SGD steps)")
    ax.set_ylabel(r"$\mathcal{R}_N(\Gamma_T)-\mathcal{R}_N(\Gamma^*)$")
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2)   # below: clear of the points
    ax = axes[0, 1]
    for ex, label, color in ((wu.excess_dims, labels["power"], "C1"), (wu.excess_dims_iso, "H = I", "C0")):
        ax.errorbar(wu.dims, ex.mean(0), yerr=3 * ex.std(0, ddof=1) / np.sqrt(ex.shape[0]), fmt="o-", ms=3,
                    color=color, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(wu.dims, [str(int(x)) for x in wu.dims])
    ax.set_xlabel("dimension d")
    ax.set_ylabel(f"excess after T = {w.dim_tasks}")
    ax.legend(fontsize=6)
    ax = axes[0, 2]
    for k, sp in enumerate(WU_SPECTRA):
        den = wu.ridge_M[k] - w.sigma2
        ax.plot(wu.lengths, (wu.risk_M_star[k] - w.sigma2) / den, "-", color=f"C{k}", lw=1,
                label=rf"$\Gamma^*_N$, {labels[sp]}")
        ratio = (wu.risk_M[k] - w.sigma2) / den
        ax.plot(wu.lengths, ratio.mean(0), "o", ms=3, mfc="none", color=f"C{k}", label=f"SGD, T = {int(wu.T[-1])}")
    ax.axvline(w.n_context, color="0.6", lw=0.8, ls="--")
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(f"inference length M (N = {w.n_context})")
    ax.set_ylabel("excess risk / Bayes excess")
    ax.legend(fontsize=6)
    fig.suptitle(f"P9: one-pass SGD pretraining (Wu et al.), d = {w.d}, N = {w.n_context}, "
                 f"$\\sigma^2$ = {w.sigma2:g}, {w.members} runs", fontsize=9)
    return fig


def fig_multitask(record):
    """P10: He et al.'s multi-task regression: mean per-task risk of every member against H beside the
    first-order optima, the task weights mu_hk of each head count's best member, and the training loss."""
    cfg, r = record.config, load(record, "multitask", MultiTask)
    m, pred = cfg.multitask, multitask_predictions(record.config)
    K, d = m.n_tasks, m.d
    mean_risk, se = r.risk.mean(1), np.sqrt((r.risk_se ** 2).sum(1)) / K
    fig, axes = new_figure(3, 1, width=4.2, height=3.4)
    ax = axes[0, 0]
    ax.errorbar(r.heads + 0.06 * (r.seed_index - r.seed_index.mean()), mean_risk, yerr=3 * se, fmt="o", ms=4,
                mfc="none", color="C2", label="trained (each seed, 3 SE)")
    styles = (("C1", "-"), ("C0", "--"), ("C3", ":"))
    for (name, value), (color, ls) in zip(multitask_levels(pred, float(r.one_head_risk.mean())).items(), styles):
        ax.axhline(value, color=color, ls=ls, label=name)
    ax.plot(list(m.heads), [pred[f"H{H}"] for H in m.heads], "kx", ms=7, label="first-order optimum for H heads")
    ax.set_xticks(list(m.heads))
    ax.set_xlabel("number of heads H")
    ax.set_ylabel("mean per-task risk")
    ax.set_title(f"P10a: K={K} tasks, L={m.n_context}", fontsize=9)
    ax.legend(fontsize=6, loc="center right")
    ax = axes[0, 1]
    mu = task_weights(r.OV, d)                                            # (e, h, K)
    x0, ticks, labels = 0.0, [], []
    for H in m.heads:
        sel = np.flatnonzero(r.heads == H)
        best = sel[int(np.argmin(mean_risk[sel]))]
        for h in range(H):
            for k in range(K):
                ax.bar(x0 + h + (k - (K - 1) / 2) * 0.8 / K, mu[best, h, k], width=0.8 / K, color=f"C{k}",
                       label=f"task {k + 1}" if (H == m.heads[0] and h == 0) else None)
        ticks.append(x0 + (H - 1) / 2)
        labels.append(f"H={H}")
        x0 += H + 1
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xticks(ticks, labels)
    ax.set_ylabel(r"$\mu_{hk}$ (head $h$'s weight on task $k$'s label)")
    ax.set_title("P10b: task weights per head, best seed of each H", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[0, 2]
    steps = np.maximum(r.steps, 1)
    for i in range(len(r.heads)):
        ax.plot(steps, r.loss_traj[:, i], color=f"C{list(m.heads).index(r.heads[i])}", lw=1,
                ls="-" if r.seed_index[i] == 0 else "--",
                label=f"H={r.heads[i]}" if r.seed_index[i] == 0 else None)
    ax.axhline(pred["per_task"], color="k", lw=0.8, ls=":", label="per-task optimum")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Adam step (lr: cosine decay)")
    ax.set_ylabel("batch loss (mean over prompts and tasks)")
    ax.set_title("P10c: training (solid seed 0, dashed others)", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def figures(record) -> dict:
    return {
        "p1_risk_vs_n": fig_risk_vs_n(record),
        "p2_heads": fig_heatmaps(record),
        "p3_dynamics": fig_dynamics(record),
        "p4_length": fig_length(record),
        "p5_pool": fig_pool(record),
        "p6_lsa_gap": fig_lsa_gap(record),
        "p7_preconditioner": fig_preconditioner(record),
        "p8_heads": fig_risk_vs_heads(record),
        "p9_wu": fig_wu(record),
        "p10_multitask": fig_multitask(record),
    }
