"""Figures of the rank-collapse study: pure functions of a record (spec section 4, plots 1-6), each
reading the typed results of the record; they display nothing."""
from __future__ import annotations

import warnings

import numpy as np

from workbench.phases import load
from workbench.plotting import FLOAT64_EPS, mark_float_floor, new_figure, seed_band
from workbench.record import Record

from studies.rank_collapse import theory
from studies.rank_collapse.checks import (FIT_WINDOW, NOCI_Z, PRECISION_MARGIN, SHORT_PATHS, TRAINED_COLLAPSE_BAR,
                                          composed_bounds, fitted_slopes)
from studies.rank_collapse.trained import Trained
from studies.rank_collapse.trained import VARIANT_KEYS as TRAINED_VARIANTS
from studies.rank_collapse.simulate import (SCAN_KEYS, VARIANT_KEYS, Bound, Clustering, Gradients, Noci, Paths, Regime,
                                            Precision, Scaling, Scan, Sweep, TwoToken)

_SCALE_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _middle_scale(qk_scale) -> int:
    """Index of the QK scale closest to 1 (the panels that show one scale)."""
    return int(np.argmin(np.abs(np.log(np.asarray(qk_scale, dtype=float)))))


def relative_residual_figure(record: Record):
    """Plot 1: rho_l against layer for the four variants and every QK scale (linear and log)."""
    cfg, sw = record.config, load(record, "sweep", Sweep)
    fig, axes = new_figure(4, 2, width=3.0, height=2.5)
    layers = np.arange(cfg.depth + 1)
    for col, (name, key) in enumerate(VARIANT_KEYS.items()):
        rho = sw.rho[key]  # (S, N, L+1)
        for j, s in enumerate(cfg.qk_scale):
            color = _SCALE_COLORS[j % len(_SCALE_COLORS)]
            seed_band(axes[0, col], layers, rho[j], label=f"s={s:g}", color=color)
            seed_band(axes[1, col], layers, rho[j], label=f"s={s:g}", color=color, log=True)
        if key in sw.rho_argmin:
            for j in range(len(cfg.qk_scale)):
                axes[1, col].plot(sw.argmin_layers, np.median(sw.rho_argmin[key][j], 0), "x", ms=4,
                                  color=_SCALE_COLORS[j % len(_SCALE_COLORS)],
                                  label="argmin residual" if j == 0 else None)
        title = name if name != "full" else f"full (skip={cfg.skip}, mlp={cfg.mlp}, norm={cfg.norm})"
        axes[0, col].set_title(title, fontsize=8)
        axes[0, col].set_ylim(-0.01, 1.01)
        axes[1, col].set_yscale("log")
        axes[1, col].set_ylim(1e-17, 2)
        mark_float_floor(axes[1, col], FLOAT64_EPS)
        axes[1, col].set_xlabel("layer l")
    axes[0, 0].set_ylabel(r"$\rho_l$ (linear)")
    axes[1, 0].set_ylabel(r"$\rho_l$ (log)")
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(r"Relative residual $\|res(X_l)\|_{1,\infty}/\|X_l\|_{1,\infty}$: median and min-max over seeds", fontsize=9)
    return fig


def cubic_scan_figure(record: Record):
    """Plot 2: output residual against input residual (one and two layers) with slope references,
    and the fitted slopes of every variant and scale."""
    sc, r = record.config.scan, load(record, "scan", Scan)
    j = _middle_scale(sc.qk_scale)
    fig, axes = new_figure(3, 1, width=3.4, height=3.0)
    ax = axes[0, 0]
    x = r.input_residual
    xm = np.median(x[j], 0)
    for name, key in SCAN_KEYS.items():
        ax.loglog(xm, np.median(r.output_residual[key][j], 0), "o-", ms=3, lw=1, label=name)
    y_sa = np.median(r.output_residual["sa"][j], 0)
    ax.loglog(xm, y_sa[-1] * (xm / xm[-1]) ** 3, "k--", lw=0.8, label="slope 3")
    ax.loglog(xm, 0.3 * xm, "k:", lw=0.8, label="slope 1")
    ax.set_xlabel(r"$\|res(X)\|_{1,\infty}$")
    ax.set_ylabel(r"$\|res(f(X))\|_{1,\infty}$")
    ax.set_title(f"one layer, s={sc.qk_scale[j]:g} (median over seeds)")
    ax.legend(fontsize=6)

    ax = axes[0, 1]
    x2, y2 = r.two_layer.input_residual, r.two_layer.output_residual
    for i, s in enumerate(sc.qk_scale):
        color = _SCALE_COLORS[i % len(_SCALE_COLORS)]
        ax.loglog(np.median(x2[i], 0), np.median(y2[i], 0), "o-", ms=3, lw=1, color=color, label=f"s={s:g}")
    xm2 = np.median(x2[j], 0)
    ym2 = np.median(y2[j], 0)
    ax.loglog(xm2, ym2[-3] * (xm2 / xm2[-3]) ** 9, "k--", lw=0.8, label="slope 9")
    ax.axhline(FLOAT64_EPS * np.median(r.two_layer.output_norm), color="0.5", ls=":", lw=1, label=r"eps $\|X\|$")
    ax.set_ylim(1e-17, None)
    ax.set_xlabel(r"$\|res(X)\|_{1,\infty}$")
    ax.set_title("two SA layers")
    ax.legend(fontsize=6)

    ax = axes[0, 2]
    for k, key in enumerate(SCAN_KEYS.values()):
        y = r.output_residual[key]
        window = FIT_WINDOW if key not in ("sa_skip", "full") or (key == "full" and not sc.skip) else (FIT_WINDOW[0], np.inf)
        slopes = fitted_slopes(x, y, y / r.output_norm[key], window)
        for i in range(slopes.shape[0]):
            ax.plot(np.full(slopes.shape[1], k) + 0.12 * (i - 1), slopes[i], ".", ms=3,
                    color=_SCALE_COLORS[i % len(_SCALE_COLORS)], label=f"s={sc.qk_scale[i]:g}" if k == 0 else None)
    slopes2 = fitted_slopes(x2, y2, y2 / r.two_layer.output_norm, FIT_WINDOW)
    for i in range(slopes2.shape[0]):
        ax.plot(np.full(slopes2.shape[1], len(SCAN_KEYS)) + 0.12 * (i - 1), slopes2[i] / 3, ".", ms=3,
                color=_SCALE_COLORS[i % len(_SCALE_COLORS)])
    for level in (1, 3):
        ax.axhline(level, color="0.5", lw=0.8, ls="--")
    ax.set_xticks(range(len(SCAN_KEYS) + 1), [*SCAN_KEYS, "2 layers / 3"], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("fitted log-log slope")
    ax.set_title("fitted slopes (all seeds)")
    ax.legend(fontsize=6)
    return fig


def precision_figure(record: Record):
    """The pure SAN through depth in extended precision: -log10 rho_l on a log axis (a doubly
    exponential law is a straight line of slope log10 3 there, an exponential one flattens), and
    log rho_(l+1) against log rho_l (slope 3 against an exponential law's slope 1)."""
    pc, p = record.config.precision, load(record, "precision", Precision)
    floor = pc.digits - PRECISION_MARGIN
    fig, axes = new_figure(2, 1, width=3.4, height=3.0)
    layers = np.arange(pc.depth + 1)
    depth_of = np.where(p.log10_rho < -floor, np.nan, -p.log10_rho)  # decades below 1; NaN at the floor
    ax = axes[0, 0]
    for r in range(pc.runs):
        ax.semilogy(layers, depth_of[r], "o-", ms=3, lw=0.8, color="tab:blue", alpha=0.6,
                    label=f"{pc.digits}-digit SAN" if r == 0 else None)
        f64 = -np.log10(np.maximum(p.rho_float64[r], 1e-300))
        ax.semilogy(layers, np.where(p.rho_float64[r] > 1e-15, f64, np.nan), "x", ms=4, color="tab:red",
                    label="float64 (above its floor)" if r == 0 else None)
    with warnings.catch_warnings():  # the deepest layers sit at the floor (NaN) in every run
        warnings.simplefilter("ignore", RuntimeWarning)
        start = int(np.nanargmin(np.abs(np.log10(np.nanmedian(depth_of, 0)) - 1)))  # about 10 decades
    ref = np.nanmedian(depth_of[:, start])
    after = layers[start:]
    ax.semilogy(after, ref * 3.0 ** (after - start), "k--", lw=0.8, label=r"$\times 3$ per layer (cubic)")
    ax.semilogy(after, ref * (1 + (after - start)), "k:", lw=0.8, label="constant decades per layer")
    ax.set_ylim(1e-2, floor * 3)
    ax.set_xlabel("layer l")
    ax.set_ylabel(r"$-\log_{10}\rho_l$")
    ax.set_title(f"pure SAN, n={pc.n_tokens}, d={pc.d_model}, s={pc.qk_scale:g}", fontsize=8)
    ax.legend(fontsize=6)
    ax = axes[0, 1]
    x, y = depth_of[:, :-1], depth_of[:, 1:]
    ax.loglog(x.ravel(), y.ravel(), "o", ms=3, color="tab:blue")
    grid = np.logspace(0, np.log10(floor), 20)
    ax.loglog(grid, 3 * grid, "k--", lw=0.8, label="slope 3 (doubly exponential)")
    ax.loglog(grid, grid + 3.4, "k:", lw=0.8, label="exponential, 3.4 decades per layer")
    ax.set_xlabel(r"$-\log_{10}\rho_l$")
    ax.set_ylabel(r"$-\log_{10}\rho_{l+1}$")
    ax.set_title("layer to layer", fontsize=8)
    ax.legend(fontsize=6)
    return fig


def bound_figure(record: Record):
    """Plot 3: measured one-layer residual against the explicit bound."""
    b = load(record, "bound", Bound)
    bound = theory.explicit_bound(b.n, b.max_logit_deviation, b.residual_norm, b.value_norm)
    measured = b.measured
    fig, axes = new_figure(2, 1, width=3.4, height=3.0)
    ax = axes[0, 0]
    for i, n in enumerate(np.unique(b.n)):
        sel = b.n == n
        ax.loglog(bound[sel], measured[sel], ".", ms=4, color=_SCALE_COLORS[i % len(_SCALE_COLORS)], label=f"n={int(n)}")
    lim = [min(bound.min(), measured.min()) / 2, bound.max() * 2]
    ax.loglog(lim, lim, "k--", lw=0.8, label="measured = bound")
    ax.set_xlabel("explicit bound B(X)")
    ax.set_ylabel(r"measured $\|res(SA(X))\|_{1,\infty}$")
    ax.legend(fontsize=7)
    ax.set_title("every point must lie below the diagonal")
    ax = axes[0, 1]
    ax.hist(np.log10(measured / bound), bins=30, color="tab:blue")
    ax.axvline(0, color="k", ls="--", lw=0.8)
    ax.set_xlabel(r"$\log_{10}$(measured / bound)")
    ax.set_ylabel("trials")
    return fig


def composed_bound_figure(record: Record):
    """The one-layer bound composed over depth against the extended-precision residuals, one panel per
    head count: -log10 ||res(X_l)||_(1,inf) on a log axis (a 3^l law is a straight line there); the bound
    must lie below every measured point (it is a smaller -log10), the quartic rival above some."""
    cc = record.config.composed
    bounds = composed_bounds(record)
    fig, axes = new_figure(len(bounds), 1, width=3.4, height=3.0)
    layers = np.arange(cc.depth + 1)
    for col, (key, b) in enumerate(bounds.items()):
        ax = axes[0, col]
        shown = np.where(b["resolved"] | (layers == 0), -b["measured"], np.nan)  # decades below 1; NaN at the floor
        for e, eps in enumerate(cc.epsilons):
            color = _SCALE_COLORS[e % len(_SCALE_COLORS)]
            for r in range(cc.runs):
                first = r == 0
                ax.semilogy(layers, shown[r, e], "o-", ms=3, lw=0.8, color=color,
                            label=f"measured, eps={eps:g}" if first else None)
                ax.semilogy(layers, -b["composed"][r, e], "--", lw=0.8, color=color,
                            label="composed bound" if first and e == 0 else None)
            ax.semilogy(layers, -b["paper"][0, e], ":", lw=0.9, color="0.35",
                        label=r"$c^{(3^l-1)/2} r_0^{3^l}$, $c=\max_l c_l$" if e == 0 else None)
            ax.semilogy(layers, -b["quartic"][0, e], "-.", lw=0.8, color="tab:red",
                        label=r"rival: exponents $4^l$" if e == 0 else None)
        ax.set_ylim(0.5, (cc.digits - PRECISION_MARGIN) * 3)
        ax.set_xlabel("layer l")
        ax.set_ylabel(r"$-\log_{10}\|res(X_l)\|_{1,\infty}$")
        ax.set_title(f"pure SAN, H={key[1:]}, n={cc.n_tokens}, d={cc.d_model}", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    return fig


def paths_figure(record: Record):
    """Plot 4: path-length distributions, path-decomposition error, per-path residual by length."""
    pc, p = record.config.paths, load(record, "paths", Paths)
    fig, axes = new_figure(3, 1, width=3.4, height=3.0)
    ax = axes[0, 0]
    for name, H, L in theory.ARCHITECTURES:
        k = np.arange(L + 1)
        ax.plot(k / L, theory.path_length_distribution(L, H), lw=1, label=f"{name} (H{H}, L{L})")
    k = np.arange(pc.depth + 1)
    ax.plot(k / pc.depth, theory.path_length_distribution(pc.depth, pc.heads), "ko--", ms=3,
            label=f"this run (H{pc.heads}, L{pc.depth})")
    ax.set_xlabel("path length k / L")
    ax.set_ylabel(r"fraction $\binom{L}{k}H^k/(H+1)^L$")
    ax.set_title("path lengths: Binomial(L, H/(H+1))")
    ax.legend(fontsize=5)
    ax = axes[0, 1]
    for key in ("noskip", "skip"):
        err = p.rel_error[key]
        ax.semilogy(np.arange(len(err)), np.maximum(err, 1e-18), "o", ms=4, label=key)
    ax.axhline(FLOAT64_EPS, color="0.5", ls=":", lw=1, label="float64 eps")
    ax.axhline(1e-12, color="tab:red", ls="--", lw=0.8, label="check tolerance")
    ax.set_xlabel("seed")
    ax.set_ylabel("max |sum over paths - forward| / max |forward|")
    ax.set_title("exact path decomposition")
    ax.legend(fontsize=7)
    ax = axes[0, 2]
    lengths, rho = p.lengths["skip"], p.rho["skip"]  # (paths,), (N, paths)
    jitter = np.linspace(-0.2, 0.2, rho.shape[0])[:, None]
    ax.semilogy((lengths[None, :] + jitter).ravel(), rho.ravel(), ".", ms=2, alpha=0.5)
    for k in range(pc.depth + 1):
        sel = lengths == k
        if sel.any():
            ax.plot(k, np.median(rho[:, sel]), "k_", ms=14, mew=2)
    ax.set_xlabel("path length k")
    ax.set_ylabel(r"$\rho(P_{path} X W_{path})$")
    ax.set_title("single-path relative residual (skip)")
    return fig


def _layers_to_collapse(rho: np.ndarray, level: float) -> np.ndarray:
    below = rho < level
    return np.where(below.any(-1), np.argmax(below, axis=-1), rho.shape[-1]).astype(float)


def toy_figure(record: Record):
    """Plot 5: phase diagram of the two-token toy over token direction theta and logit strength kappa."""
    tc, t = record.config.toy, load(record, "toy", TwoToken)
    theta, kappa = t.theta, t.kappa
    fig, axes = new_figure(2, 1, width=3.6, height=3.0)
    rho = theory.two_token_relative_residual(t.states["noskip"])  # (G, G, L+1)
    steps = _layers_to_collapse(rho, 1e-8)
    im = axes[0, 0].pcolormesh(theta / np.pi, kappa, steps.T, shading="nearest", cmap="viridis")
    fig.colorbar(im, ax=axes[0, 0], label=r"layers until $\rho<10^{-8}$" + f" (cap {tc.depth + 1})")
    axes[0, 0].plot(theta / np.pi, theory.frozen_token_boundary(theta, tc.depth), "r--", lw=1,
                    label=r"$\kappa\,\min|x_i|\,|x_1-x_2| = \log L$")
    axes[0, 0].set_ylim(kappa[0], kappa[-1])
    axes[0, 0].legend(fontsize=6, loc="lower left")
    axes[0, 0].set_title("SAN (no skip)")
    rho_skip = theory.two_token_relative_residual(t.states["skip"])[..., -1]
    im = axes[0, 1].pcolormesh(theta / np.pi, kappa, np.log10(np.maximum(rho_skip, 1e-17)).T, shading="nearest",
                               cmap="magma")
    fig.colorbar(im, ax=axes[0, 1], label=r"$\log_{10}\rho_L$" + f", L={tc.depth}")
    axes[0, 1].set_title("SAN + skip")
    for ax in axes[0]:
        ax.set_yscale("log")
        ax.set_xlabel(r"$\theta/\pi$, tokens $(\cos\theta, \sin\theta)$")
        ax.set_ylabel(r"logit strength $\kappa$")
        for x, style in ((0.25, "w:"), (0.5, "w--"), (0.75, "w-.")):
            ax.axvline(x, color="w", ls=style[1:], lw=0.8)
        ax.grid(False)
    return fig


def noci_figure(record: Record):
    """Plot 6a: Noci et al. -- rho_F against depth for alpha = 1 and 1/sqrt(L), with the
    uniform-attention prediction; Monte Carlo E||m_l||^2 against the closed form."""
    cfg, sw, sc = record.config, load(record, "sweep", Sweep), load(record, "scaling", Scaling)
    nc, noci = cfg.noci, load(record, "noci", Noci)
    fig, axes = new_figure(2, 1, width=3.6, height=3.0)
    ax = axes[0, 0]
    X = sw.X  # (N, n, d)
    m0 = X.mean(axis=1)
    R_sq = ((X - m0[:, None]) ** 2).sum(axis=(1, 2))
    m_sq = (m0 ** 2).sum(-1)
    depths = sc.depths
    L_all = np.arange(sc.rho_fro["san_skip_alpha1"].shape[-1])
    for key, label, color in (("san_skip", "SAN+skip", "tab:blue"), ("full_skip", "full + skip", "tab:orange")):
        seed_band(ax, L_all[1:], sc.rho_fro[f"{key}_alpha1"].reshape(-1, len(L_all))[:, 1:], log=True,
                  color=color, label=fr"{label}, $\alpha=1$")
        seed_band(ax, depths, sc.rho_fro[f"{key}_invsqrt"].reshape(-1, len(depths)), log=True, color=color,
                  ls="--", marker="o", ms=3, label=fr"{label}, $\alpha=1/\sqrt{{L}}$")
    pred1 = np.median(theory.noci_relative_residual(R_sq[:, None], m_sq[:, None], cfg.n_tokens, 1.0, cfg.value_scale,
                                                    L_all[None, 1:]), 0)
    pred2 = np.median(np.stack([theory.noci_relative_residual(R_sq, m_sq, cfg.n_tokens, 1 / np.sqrt(L), cfg.value_scale, L)
                                for L in depths], -1), 0)
    ax.plot(L_all[1:], pred1, "k-", lw=1.2, label=r"uniform attention, $\alpha=1$")
    ax.plot(depths, pred2, "k--", lw=1.2, label=r"uniform attention, $\alpha=1/\sqrt{L}$")
    half = cfg.depth // 2  # the Lyapunov rate of the token mean (check skip_decay_rate), from the median at L/2
    rate = theory.skip_decay_rate(cfg.d_model, 1.0, cfg.value_scale)
    anchor = np.median(sw.rho_fro["san_skip"][:, :, half])
    ax.plot(L_all[half:], anchor * 10 ** (rate * (L_all[half:] - half)), "r:", lw=1.2,
            label=fr"Lyapunov rate {rate:.3f} dec./layer")
    ax.set_yscale("log")
    ax.set_xlabel("depth L")
    ax.set_ylabel(r"$\rho_F = \|res(X_L)\|_F/\|X_L\|_F$")
    ax.set_title("depth scaling (random QK, all scales)")
    ax.legend(fontsize=5)
    ax = axes[0, 1]
    ratios = noci.mean_ratio  # (2, samples, L+1)
    layers = np.arange(ratios.shape[-1])
    for i, (alpha, color) in enumerate(zip(noci.alphas, ("tab:blue", "tab:orange"))):
        mean = ratios[i].mean(0)
        se = ratios[i].std(0, ddof=1) / np.sqrt(ratios.shape[1])
        ax.errorbar(layers, mean, yerr=NOCI_Z * se, fmt="o", ms=3, color=color,
                    label=fr"Monte Carlo $\alpha$={alpha:.3g} ($\pm${NOCI_Z:g} SE, the check's tolerance)")
        ax.plot(layers, theory.noci_mean_growth(float(alpha), nc.value_scale, layers), "-", color=color, lw=1,
                label=fr"$(1+\alpha^2\sigma_v^2)^l$, $\alpha$={alpha:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel("layer l")
    ax.set_ylabel(r"$\|m_l\|^2/\|m_0\|^2$")
    ax.set_title(f"uniform attention + skip ({ratios.shape[1]} nets)", fontsize=8)
    ax.legend(fontsize=6)
    return fig


def clustering_figure(record: Record):
    """Plot 6b: Geshkovski et al. sphere dynamics -- energy and minimum cosine against time."""
    cc, c = record.config.cluster, load(record, "cluster", Clustering)
    fig, axes = new_figure(2, 1, width=3.6, height=3.0)
    for b, beta in enumerate(cc.betas):
        color = _SCALE_COLORS[b % len(_SCALE_COLORS)]
        E = c.energy[b]
        seed_band(axes[0, 0], c.time, E / E[:, :1], color=color, label=fr"$\beta$={beta:g}")
        seed_band(axes[0, 1], c.time, c.min_cosine[b], color=color,
                  label=fr"$\beta$={beta:g}: {np.median(c.count[b]):g} clusters (median) at T")
    axes[0, 0].set_xlabel("time t")
    axes[0, 0].set_ylabel(r"$E_\beta(t)/E_\beta(0)$")
    axes[0, 0].set_title("interaction energy (nondecreasing)")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].axhline(0.999, color="0.5", ls=":", lw=1)
    axes[0, 1].set_xlabel("time t")
    axes[0, 1].set_ylabel(r"$\min_{ij}\langle x_i, x_j\rangle$")
    axes[0, 1].set_title(f"n={cc.tokens} tokens on $S^{{{cc.dim - 1}}}$")
    axes[0, 1].legend(fontsize=6)
    return fig


def gradient_figure(record: Record):
    """Query/key gradients vanish at collapse: |grad W_Q|/|grad W_V| against eps, slope 2."""
    gc, g = record.config.grad, load(record, "grad", Gradients)
    q, k, v = g.one["W_Q"], g.one["W_K"], g.one["W_V"]  # (S, N, E+1)
    eps = g.eps
    pos = eps > 0
    fig, axes = new_figure(1, 1, width=3.6, height=3.0)
    ax = axes[0, 0]
    for i, s in enumerate(gc.qk_scale):
        color = _SCALE_COLORS[i % len(_SCALE_COLORS)]
        seed_band(ax, eps[pos], (q[i] / v[i])[:, pos], log=True, color=color, label=fr"$W_Q$, s={s:g}")
        seed_band(ax, eps[pos], (k[i] / v[i])[:, pos], log=True, color=color, ls="--")
    ref = np.median(q[0][:, pos][:, -1] / v[0][:, pos][:, -1])
    ax.plot(eps[pos], ref * (eps[pos] / eps[pos][-1]) ** 2, "k:", lw=1, label="slope 2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\epsilon$ in $X = 1x^\top + \epsilon R_0$")
    ax.set_ylabel(r"$|\nabla_{W_Q}|/|\nabla_{W_V}|$ (dashed: $W_K$)")
    ax.set_title("QK gradients near collapse (one layer)")
    ax.legend(fontsize=6)
    return fig


def regime_figure(record: Record):
    """Where skips keep rank: median rho_F,L of SAN+skip over (alpha, sigma_v) for each QK scale s,
    and the residual through depth against its two-sided band for three cells."""
    rc, r = record.config.regime, load(record, "regime", Regime)
    import matplotlib.pyplot as plt

    S = len(rc.qk_scales)
    fig, axes = new_figure(S + 1, 1, width=2.6, height=2.8)
    lower, upper = theory.residual_band(r.contraction)
    med = np.log10(np.median(r.rho_fro[..., -1], axis=-1))  # (A, V, S)
    L = rc.depth
    for j, s in enumerate(rc.qk_scales):
        ax = axes[0, j]
        im = ax.imshow(med[:, :, j], origin="lower", vmin=-8, vmax=0, cmap="viridis", aspect="auto")
        for ia, alpha in enumerate(rc.alphas):
            for iv, sigma in enumerate(rc.value_scales):
                kept = np.median(lower[ia, iv, j, :, -1]) >= 0.5
                weak = (alpha * sigma) ** 2 * L <= 1
                ax.text(iv, ia, f"{med[ia, iv, j]:.1f}" + ("*" if kept else "") + ("\n(weak)" if weak else ""),
                        ha="center", va="center", fontsize=6, color="w" if med[ia, iv, j] < -4 else "k")
        ax.set_xticks(range(len(rc.value_scales)), [f"{v:g}" for v in rc.value_scales])
        ax.set_yticks(range(len(rc.alphas)), [f"{a:g}" for a in rc.alphas])
        ax.set_xlabel(r"$\sigma_v$")
        ax.set_ylabel(r"$\alpha$")
        ax.set_title(f"s={s:g}" + (" (0.02 init)" if j == 0 else ""), fontsize=8)
    fig.colorbar(im, ax=axes[0, S - 1], label=fr"median $\log_{{10}}\rho_F$ at L={L}")
    ax = axes[0, S]
    layers = np.arange(L + 1)
    ratio = r.residual / r.residual[..., :1]
    picks = ((0, 0, 0), (len(rc.alphas) - 1, 1 if len(rc.value_scales) > 1 else 0, 1 if S > 1 else 0),
             (len(rc.alphas) - 1, len(rc.value_scales) - 1, S - 1))
    for (ia, iv, j), color in zip(picks, ("tab:blue", "tab:orange", "tab:red")):
        label = fr"$\alpha$={rc.alphas[ia]:g}, $\sigma_v$={rc.value_scales[iv]:g}, s={rc.qk_scales[j]:g}"
        seed_band(ax, layers, ratio[ia, iv, j], log=True, color=color, label=label)
        ax.plot(layers, np.median(upper[ia, iv, j], 0), ":", color=color, lw=1)
        lo = np.median(lower[ia, iv, j], 0)
        ax.plot(layers[lo > 0], lo[lo > 0], "--", color=color, lw=1)
    ax.set_yscale("log")
    shown = ratio[[p[0] for p in picks], [p[1] for p in picks], [p[2] for p in picks]]
    ax.set_ylim(shown.min() / 10, shown.max() * 1e3)  # the upper band runs off far above: clip it
    ax.set_xlabel("layer l")
    ax.set_ylabel(r"$\|res(X_l)\|_F/\|res(X_0)\|_F$")
    ax.set_title("residual in its band (dashed, dotted)", fontsize=8)
    ax.legend(fontsize=5, loc="upper left")
    fig.suptitle(f"SAN+skip (no MLP, no LN), {rc.seeds} seeds, n={rc.n_tokens}, d={rc.d_model}: "
                 "* = band keeps $\\|R_L\\|\\geq\\|R_0\\|/2$, (weak) = $\\alpha^2\\sigma_v^2L\\leq 1$", fontsize=7)
    return fig


_VARIANT_COLORS = {"san": "tab:red", "san_mlp": "tab:orange", "san_skip": "tab:blue", "full": "tab:green"}


def trained_residual_figure(record: Record):
    """The trained variants' relative residual through depth (Dong et al. Fig. 2 / Sec. 4 analogue)."""
    tc, t = record.config.trained, load(record, "trained", Trained)
    fig, axes = new_figure(len(tc.tasks), 2, width=3.6, height=2.6)
    layers = np.arange(tc.depth + 1)
    for col, task in enumerate(tc.tasks):
        for name, key in TRAINED_VARIANTS.items():
            color = _VARIANT_COLORS[key]
            for row, log in ((0, False), (1, True)):
                seed_band(axes[row, col], layers, t.rho[f"{task}_{key}"], label=f"{name} trained", color=color, log=log)
                axes[row, col].plot(layers, np.median(t.rho_init[f"{task}_{key}"], 0), ":", color=color, lw=1,
                                    label=f"{name} at init" if row == 1 else None)
        axes[0, col].set_ylim(-0.01, 1.01)
        axes[0, col].axhline(TRAINED_COLLAPSE_BAR, color="k", lw=0.6, ls="--")
        axes[1, col].axhline(TRAINED_COLLAPSE_BAR, color="k", lw=0.6, ls="--", label="collapse bar 1e-2")
        axes[1, col].set_yscale("log")
        axes[1, col].set_ylim(1e-17, 2)
        mark_float_floor(axes[1, col], FLOAT64_EPS)
        axes[1, col].set_xlabel("layer l")
        axes[0, col].set_title(f"{task}: L={tc.depth}, H={tc.n_heads}, d={tc.d_model}, {tc.seeds} seeds", fontsize=8)
    axes[0, 0].set_ylabel(r"$\rho_l$ (linear)")
    axes[1, 0].set_ylabel(r"$\rho_l$ (log)")
    axes[0, 0].legend(fontsize=6)
    axes[1, -1].legend(fontsize=5, loc="lower left", ncol=2)
    fig.suptitle(f"Trained models ({tc.steps} full-batch Adam steps): relative residual on the evaluation inputs, "
                 "median and min-max over seeds", fontsize=8)
    return fig


def trained_paths_figure(record: Record):
    """SAN+skip trained: the task metric of the output restricted to paths of length <= l (Sec. 4.3)."""
    tc, t = record.config.trained, load(record, "trained", Trained)
    tasks = [task for task in tc.tasks if task in t.path_loss]
    fig, axes = new_figure(max(len(tasks), 1), 1, width=3.6, height=2.8)
    lengths = np.arange(tc.depth + 1)
    share = np.cumsum(theory.path_length_distribution(tc.depth, tc.n_heads))
    for col, task in enumerate(tasks):
        ax = axes[0, col]
        if task == "sort":
            seed_band(ax, lengths, t.path_accuracy[task], label="paths of length <= l", color="tab:blue", marker="o")
            seed_band(ax, lengths, t.path_accuracy_exact[task], label="paths of length = l only", color="tab:purple",
                      marker="s", ls="--")
            ax.axhline(np.median(t.eval_accuracy[f"{task}_san"]), color="tab:red", lw=0.8, ls=":",
                       label="trained SAN (no skip)")
            ax.set_ylabel("sorting accuracy (evaluation set)")
            acc0, accL = np.median(t.path_accuracy[task][:, 0]), np.median(t.path_accuracy[task][:, -1])
            ax.plot(lengths, acc0 + share * (accL - acc0), "k:", lw=0.8, label="rival: gain ~ path count")
        else:
            seed_band(ax, lengths, t.path_loss[task], label="paths of length <= l", color="tab:blue", marker="o", log=True)
            ax.set_yscale("log")
            ax.axhline(np.median(t.eval_loss[f"{task}_san"]), color="tab:red", lw=0.8, ls=":", label="trained SAN (no skip)")
            ax.set_ylabel("squared error per sample")
        ax.axvline(SHORT_PATHS, color="0.6", lw=0.6)
        ax.set_xlabel("path length l")
        ax.set_title(f"{task}: SAN+skip trained, L={tc.depth}, H={tc.n_heads}, d={tc.d_model}", fontsize=8)
        ax.legend(fontsize=6)
    return fig


def figures(record: Record) -> dict:
    """Every figure of the study, keyed by file name."""
    return {
        "relative_residual": relative_residual_figure(record),
        "cubic_scan": cubic_scan_figure(record),
        "doubly_exponential": precision_figure(record),
        "explicit_bound": bound_figure(record),
        "composed_bound": composed_bound_figure(record),
        "paths": paths_figure(record),
        "two_token_phase": toy_figure(record),
        "noci_depth_scaling": noci_figure(record),
        "skip_regime": regime_figure(record),
        "clustering": clustering_figure(record),
        "qk_gradients": gradient_figure(record),
        "trained_residual": trained_residual_figure(record),
        "trained_paths": trained_paths_figure(record),
    }
