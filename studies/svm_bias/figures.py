"""Figures of the SVM implicit-bias study: pure functions of a record (no training, no solving)."""
from __future__ import annotations

import numpy as np

from workbench.phases import load
from workbench.plotting import mark_float_floor, new_figure, seed_band

from studies.svm_bias.metrics import corr, efficiencies, saturations, sweep_classes
from studies.svm_bias.simulate import MainResult, MmtsResult, HorizonResult, NormsResult, Sweep, ToyResult, width_key
from studies.svm_bias.svm import numerical_rank
from studies.svm_bias.theory import (MMTS_P_GLOBAL, MMTS_P_LOCAL, feasibility_width, naive_horizon_margin,
                                     predicted_norm, toy_solutions)


def figures(record) -> dict:
    out = {"correlation": fig_correlation(record), "saturation": fig_saturation(record)}
    if record.config.suite:
        out.update({
            "toy_trajectories": fig_toy_trajectories(record),
            "mmts_paths": fig_mmts(record),
            "fractions_vs_d": fig_fractions(record),
            "svm_rank_vs_d": fig_rank(record),
            "gd_norm_growth": fig_gd_growth(record),
            "spectra": fig_spectra(record),
            "precision_horizon": fig_horizon(record),
            "joint_training": fig_joint(record),
            "nonlinear_gen_svm": fig_nonlinear(record),
        })
    return out


def _one_minus_corr(W_traj: np.ndarray, S: np.ndarray) -> np.ndarray:
    """1 - corr(W_k, S) per (obs, e) -> (e, obs); NaN at W = 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (1 - corr(W_traj, S[None])).T


def fig_correlation(record):
    """Main run: 1 - corr(W_k, W^mm_alpha) against the iteration and against ||W_k||_F."""
    cfg, r = record.config, load(record, "main", MainResult)
    steps, traj = r.steps, r.W_traj
    fig, ax = new_figure(2, width=3.6)
    norm = predicted_norm(cfg.param, cfg.optimizer)
    curves = {"Frobenius SVM": r.svm_fro}
    if norm != "fro":
        curves[f"{norm} SVM"] = r.solution(norm)
    ok = r.feasible
    k = steps > 0
    R = np.median(np.linalg.norm(traj, axis=(-2, -1)), axis=1)
    for label, S in curves.items():
        y = _one_minus_corr(traj[:, ok], S[ok])
        seed_band(ax[0, 0], steps[k], y[:, k], label=label, log=True)
        seed_band(ax[0, 1], R[k], y[:, k], label=label, log=True)
    for axis, xlabel in ((ax[0, 0], "iteration k"), (ax[0, 1], "median ||W_k||_F")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(xlabel)
    ax[0, 0].set_ylabel("1 - corr(W_k, W^mm_alpha)")
    ax[0, 0].legend()
    ax[0, 0].set_title(f"main: {cfg.param} by {cfg.optimizer}, {int(ok.sum())}/{len(ok)} seeds")
    ax[0, 1].set_title("against the norm (median and range)")
    return fig


def fig_saturation(record):
    """Main run: softmax saturation max_i (1 - max_t s_it) against the iteration."""
    r = load(record, "main", MainResult)
    steps = r.steps
    sat = np.stack([saturations(r, W) for W in r.W_traj], axis=1)           # (e, obs)
    fig, ax = new_figure(1, width=4.0)
    k = steps > 0
    seed_band(ax[0, 0], steps[k], sat[:, k], log=True, label="main run")
    ax[0, 0].set_xscale("log")
    ax[0, 0].set_yscale("log")
    mark_float_floor(ax[0, 0])
    ax[0, 0].set_xlabel("iteration k")
    ax[0, 0].set_ylabel("max_i (1 - max_t s_it)")
    ax[0, 0].set_title("softmax saturation (one token per sequence)")
    ax[0, 0].legend()
    return fig


def fig_toy_trajectories(record):
    """Toy: paths of W_k z_i (NGD on W, solid) and K_k Q_k^T z_i (dashed) against the SVM rays."""
    r = load(record, "toy", ToyResult)
    toy = toy_solutions(record.config.toy.angle_deg)
    Z = r.Z[0]                                                                # (2, 2)
    fig, ax = new_figure(2, width=3.6, height=3.3)
    colors = ("C0", "C3")
    for i, z in enumerate(Z):
        for W_mm, style, name in ((toy["W_fro"], "-", "W^mm z"), (toy["W_nuc"], ":", "W^mm_* z")):
            ray = W_mm @ z / np.linalg.norm(W_mm @ z)
            for axis, length in ((ax[0, 0], 12.0), (ax[0, 1], 1.0)):
                axis.plot([0, length * ray[0]], [0, length * ray[1]], style, color="0.4", lw=1,
                          label=name if i == 0 and axis is ax[0, 0] else None)
        for traj, style, name in ((r.ngd.W_traj, "-", "W (NGD)"), (r.kq.W_traj, "--", "K Q^T (NGD)")):
            path = np.einsum("kab,b->ka", traj[:, 0], z)                       # (obs, 2)
            inside = np.linalg.norm(path, axis=-1) <= 12.0
            ax[0, 0].plot(*path[inside].T, style, color=colors[i], lw=1.5, label=f"{name}, i={i + 1}")
            R = np.linalg.norm(traj[:, 0], axis=(-2, -1))
            with np.errstate(invalid="ignore", divide="ignore"):
                unit = path / R[:, None]
            ax[0, 1].plot(*unit[R > 0].T, style, color=colors[i], lw=1.2, marker=".", ms=2)
    ax[0, 0].set_title("W_k z_i while ||W_k z_i|| <= 12")
    ax[0, 1].set_title("direction W_k z_i / ||W_k||_F")
    for axis in ax[0]:
        axis.set_aspect("equal")
        axis.set_xlabel("first coordinate")
    ax[0, 0].set_ylabel("second coordinate of W_k z_i")
    ax[0, 1].set_ylabel("second coordinate of W_k z_i / ||W_k||_F")
    ax[0, 0].legend(fontsize=6, loc="lower left")
    return fig


def fig_mmts(record):
    """MMTS single input: prompt paths p_k = W_k e_1 from six starts, with p^mm and p_loc."""
    r = load(record, "mmts", MmtsResult)
    fig, ax = new_figure(1, width=4.0, height=3.4)
    keys = r.X[0, 0]
    for p, lab in ((MMTS_P_GLOBAL, "p^mm (token 1)"), (MMTS_P_LOCAL, "p_loc (token 2)")):
        u = p / np.linalg.norm(p)
        ax[0, 0].plot([0, 6 * u[0]], [0, 6 * u[1]], ":", color="0.3", label=lab)
    for j, c in enumerate(r.starts):
        path = r.W_traj[:, j, :, 0]                                          # (obs, 2)
        inside = np.linalg.norm(path, axis=-1) <= 6
        ax[0, 0].plot(*path[inside].T, "-", lw=1.2, label=f"p0 = (0, {c:g})")
    ax[0, 0].scatter(*keys.T, marker="x", color="k", zorder=3, label="keys")
    ax[0, 0].set_aspect("equal")
    ax[0, 0].set_xlabel("first coordinate of p_k")
    ax[0, 0].set_ylabel("second coordinate of p_k")
    ax[0, 0].set_title("MMTS single input: NGD paths of p = W e_1")
    ax[0, 0].legend(fontsize=6)
    return fig


def fig_fractions(record):
    """Sweep: fractions of global / local / other convergence against the width d (default init),
    and the global fraction with 95% Wilson intervals at both init scales."""
    from studies.svm_bias.checks import wilson_interval
    from studies.svm_bias.simulate import SweepSmall

    c, sweep = record.config.sweep, load(record, "sweep", Sweep)
    small = load(record, "sweep_small", SweepSmall)
    ds = list(c.widths)
    counts = np.array([np.bincount(sweep_classes(sweep[width_key(d)]), minlength=3) for d in ds]) / c.n_inits
    fig, ax = new_figure(2, width=4.2)
    x = np.arange(len(ds))
    bottom = np.zeros(len(ds))
    for j, (lab, col) in enumerate((("global (alpha = opt)", "C2"), ("local (locally optimal)", "C1"), ("other", "C7"))):
        ax[0, 0].bar(x, counts[:, j], bottom=bottom, color=col, label=lab)
        bottom += counts[:, j]
    ax[0, 0].set_xticks(x, [str(d) for d in ds])
    ax[0, 0].set_xlabel("width d")
    ax[0, 0].set_ylabel("fraction of runs")
    ax[0, 0].set_ylim(0, 1.25)
    ax[0, 0].set_title(f"NGD from W0 ~ N(0, {c.init_std:g}^2), n={c.n}, T={c.T}")
    ax[0, 0].legend(fontsize=7, loc="upper left", ncol=2)
    for result, std, col, dx in ((sweep, c.init_std, "C0", -0.08), (small, c.small_init_std, "C3", 0.08)):
        k = np.array([np.sum(sweep_classes(result[width_key(d)]) == 0) for d in ds])
        lo, hi = np.array([wilson_interval(int(kk), c.n_inits) for kk in k]).T
        f = k / c.n_inits
        ax[0, 1].errorbar(x + dx, f, yerr=[f - lo, hi - f], fmt="o-", color=col, capsize=3,
                          label=f"W0 ~ N(0, {std:g}^2)")
    d_feas = feasibility_width(c.n, c.T)
    ax[0, 1].axvline(np.searchsorted(ds, d_feas) - 0.5, color="0.5", ls=":", label=f"d = max(T-1, n) = {d_feas}")
    ax[0, 1].set_xticks(x, [str(d) for d in ds])
    ax[0, 1].set_xlabel("width d")
    ax[0, 1].set_ylabel("global fraction (95% Wilson interval)")
    ax[0, 1].set_ylim(0, 1.05)
    ax[0, 1].set_title(f"{c.n_inits} inits per width, paired scales")
    ax[0, 1].legend(fontsize=7, loc="lower right")
    return fig


def fig_rank(record):
    """Sweep: rank of the Frobenius and nuclear SVMs (alpha = opt) and random-alpha feasibility vs d."""
    c, sweep = record.config.sweep, load(record, "sweep", Sweep)
    ds = list(c.widths)
    fro, nuc, feas = [], [], []
    for d in ds:
        w = sweep[width_key(d)]
        ok = w.rank_feasible
        fro.append(np.mean([numerical_rank(W) for W in w.rank_fro_W[ok]]) if ok.any() else np.nan)
        nuc.append(np.mean([numerical_rank(W) for W in w.rank_nuc_W[ok]]) if ok.any() else np.nan)
        feas.append(w.random_feasible.mean())
    fig, ax = new_figure(2, width=3.4)
    ax[0, 0].plot(ds, fro, "o-", label="Frobenius W^mm")
    ax[0, 0].plot(ds, nuc, "s--", label="nuclear W^mm_*")
    ax[0, 0].axhline(c.n, color="0.5", ls=":", label="n (rank bound)")
    ax[0, 0].set_xlabel("width d")
    ax[0, 0].set_ylabel("mean rank (alpha = opt)")
    ax[0, 0].legend(fontsize=7)
    ax[0, 1].plot(ds, feas, "o-")
    ax[0, 1].axvline(feasibility_width(c.n, c.T), color="0.5", ls=":", label="max(T-1, n)")
    ax[0, 1].set_ylim(-0.05, 1.05)
    ax[0, 1].set_xlabel("width d")
    ax[0, 1].set_ylabel("feasible fraction, random alpha")
    ax[0, 1].legend(fontsize=7)
    return fig


def fig_gd_growth(record):
    """Plain GD: ||W_k||_F against ln k, with the predicted slope ||W^mm_alpha||_F."""
    cfg, toy, norms = record.config, load(record, "toy", ToyResult), load(record, "norms", NormsResult)
    fig, ax = new_figure(1, width=4.2)
    curves = [("toy", toy.gd.steps, np.linalg.norm(toy.gd.W_traj[:, 0], axis=(-2, -1)),
               toy_solutions(cfg.toy.angle_deg)["fro_value"], cfg.toy.gd_steps)]
    R = np.linalg.norm(norms.gd.W_traj, axis=(-2, -1))
    for i in range(min(4, R.shape[1])):
        curves.append((f"random {i}", norms.gd.steps, R[:, i], norms.gd.svm_fro_value[i], cfg.norms.gd_steps))
    for j, (lab, k, R, slope, gd_steps) in enumerate(curves):
        m = k > 0
        ax[0, 0].plot(np.log(k[m]), R[m], lw=1.4, label=lab)
        end = np.log(k[-1])
        x = np.linspace(np.log(gd_steps / 4), end, 10)
        ax[0, 0].plot(x, R[-1] + slope * (x - end) + 1.0, ":", color="k", lw=1.5,
                      label="slope ||W^mm_alpha||_F (shifted up 1)" if j == 0 else None)
    ax[0, 0].set_xlabel("ln k")
    ax[0, 0].set_ylabel("||W_k||_F")
    ax[0, 0].set_title("plain GD, lr " + " / ".join(f"{lr:g}" for lr in dict.fromkeys((cfg.toy.gd_lr, cfg.norms.gd_lr))))
    ax[0, 0].legend(fontsize=7)
    return fig


def fig_spectra(record):
    """Extension: singular-value profiles of the three optimisers and the efficiency matrix."""
    r = load(record, "norms", NormsResult)
    runs = ((r.ngd, "W by NGD"), (r.kq, "(K, Q) by NGD"), (r.spectral, "W by spectral descent"))
    fig, ax = new_figure(2, width=3.6)
    for run, lab in runs:
        s = np.linalg.svd(run.W, compute_uv=False)                          # (e, d)
        s = s / s[:, :1]
        seed_band(ax[0, 0], np.arange(1, s.shape[1] + 1), s, label=lab, marker="o", ms=3)
    ax[0, 0].set_xlabel("index j")
    ax[0, 0].set_ylabel("sigma_j / sigma_1 of the final W")
    ax[0, 0].set_title("singular-value profiles")
    ax[0, 0].legend(fontsize=7)
    M = np.array([[np.nanmean(efficiencies(r, run, n)) for n in ("fro", "nuc", "op")] for run, _ in runs])
    im = ax[0, 1].imshow(M, vmin=0, vmax=1, cmap="viridis")
    for i in range(3):
        for j in range(3):
            ax[0, 1].text(j, i, f"{M[i, j]:.3f}", ha="center", va="center", color="w" if M[i, j] < 0.7 else "k")
    ax[0, 1].set_xticks(range(3), ["eff_F", "eff_*", "eff_op"])
    ax[0, 1].set_yticks(range(3), ["NGD (W)", "NGD (K,Q)", "spectral"])
    ax[0, 1].set_title("mean margin efficiency")
    ax[0, 1].set_xlabel("norm of the efficiency")
    ax[0, 1].set_ylabel("optimiser")
    ax[0, 1].grid(False)
    fig.colorbar(im, ax=ax[0, 1], shrink=0.8)
    return fig


def fig_horizon(record):
    """Precision horizon: naive vs cancellation-free gradients, and what NGD does with them."""
    cfg, h, norms = record.config, load(record, "horizon", HorizonResult), load(record, "norms", NormsResult)
    fig, ax = new_figure(2, width=3.6)
    m = h.margin
    ax[0, 0].semilogy(m, np.maximum(h.rel_error_naive, 1e-17), label="naive forward")
    ax[0, 0].semilogy(m, np.maximum(h.rel_error_stable_autograd, 1e-17), label="stable forward (autograd)")
    ax[0, 0].axvline(naive_horizon_margin(cfg.dtype, 0.1), color="0.4", ls=":", label="ln(0.1 / u)")
    ax[0, 0].set_xlim(0, 60)
    ax[0, 0].set_xlabel("margin m (W = m W^mm, toy)")
    ax[0, 0].set_ylabel("relative gradient error")
    ax[0, 0].legend(fontsize=7)
    k = norms.naive.steps
    e = norms.naive.W.shape[0]
    S = norms.ngd.svm_fro[:e]
    stable = _one_minus_corr(norms.ngd.W_traj[:, :e], S)
    naive = _one_minus_corr(norms.naive.W_traj, S)
    pos = k > 0
    seed_band(ax[0, 1], k[pos], stable[:, pos], log=True, label="stable forward")
    seed_band(ax[0, 1], k[pos], naive[:, pos], log=True, label="naive forward")
    ax[0, 1].set_xscale("log")
    ax[0, 1].set_yscale("log")
    ax[0, 1].set_xlabel("iteration k (NGD)")
    ax[0, 1].set_ylabel("1 - corr(W_k, W^mm_alpha)")
    ax[0, 1].legend(fontsize=7)
    return fig


def fig_joint(record):
    """MMTS joint training: paths of v_k and p_k with their SVM rays, and 1 - cos over the run."""
    from studies.svm_bias.simulate import JointResult

    r = load(record, "joint", JointResult)
    fig, ax = new_figure(2, width=4.0, height=3.4)
    names = ("loose, x_3 = (0.5, 1.5)", "tight, x_3 = (0.5, 1)")
    for ray, lab, style in ((r.v_mm[0], "v^mm", "-"), (r.p_rel[0], "p^mm_rel (loose)", ":"),
                            (r.p_mm[0], "p^mm (loose)", "--"), (r.p_mm[1], "p^mm = p^mm_rel (tight)", "-.")):
        u = ray / np.linalg.norm(ray)
        ax[0, 0].plot([0, 4 * u[0]], [0, 4 * u[1]], style, color="0.4", lw=1, label=lab)
    for j, col in enumerate(("C0", "C3")):
        for traj, marker, what in ((r.v_traj, "-", "v"), (r.p_traj, "--", "p")):
            path = traj[:, j]
            inside = np.linalg.norm(path, axis=-1) <= 4
            ax[0, 0].plot(*path[inside].T, marker, color=col, lw=1.3, label=f"{what}_k, {names[j].split(',')[0]}")
        with np.errstate(invalid="ignore", divide="ignore"):
            cv = 1 - _cos_rows(r.v_traj[:, j], r.v_mm[j])
            cp = 1 - _cos_rows(r.p_traj[:, j], r.p_rel[j])
        k = np.maximum(r.steps, 1)
        ax[0, 1].loglog(k, np.maximum(cv, 1e-17), "-", color=col, label=f"v vs v^mm, {names[j]}")
        ax[0, 1].loglog(k, np.maximum(cp, 1e-17), "--", color=col, label=f"p vs p^mm_rel, {names[j]}")
    cpm = 1 - _cos_rows(r.p_traj[:, 0], r.p_mm[0])
    ax[0, 1].loglog(np.maximum(r.steps, 1), np.maximum(cpm, 1e-17), ":", color="C0", label="p vs p^mm (rival), loose")
    ax[0, 0].set_aspect("equal")
    ax[0, 0].set_xlabel("first coordinate")
    ax[0, 0].set_ylabel("second coordinate")
    ax[0, 0].set_title("paths of v_k (solid) and p_k (dashed)")
    ax[0, 0].set_xlim(-1.5, 4.5)
    ax[0, 0].set_ylim(-2.2, 5.5)
    ax[0, 0].legend(fontsize=5.5, loc="upper right")
    ax[0, 1].set_xlabel("iteration k (NGD on v and p)")
    ax[0, 1].set_ylabel("1 - cos")
    ax[0, 1].set_title("directions over the run")
    ax[0, 1].legend(fontsize=5.5, loc="lower left")
    return fig


def _cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b))


def fig_nonlinear(record):
    """The nonlinear head: 1 - corr of W_k with Gen-SVM's W_dir, with W^SVMeq = W_fin + R W_dir and
    with the one-token SVM; and the finite part ||P_fin W_k - W_fin|| against ||W_k||."""
    from studies.svm_bias.checks import nonlinear_measures
    from studies.svm_bias.simulate import NonlinearResult

    c, r = record.config.nonlinear, load(record, "nonlinear", NonlinearResult)
    m = nonlinear_measures(r, c.threshold)
    k = r.steps > 0
    fig, ax = new_figure(2, width=3.8, height=3.0)
    rest = r.W_traj - r.W_fin[None]                                          # (obs, e, d, d)
    R = (rest * r.W_dir[None]).sum(axis=(-2, -1)) / (r.W_dir ** 2).sum(axis=(-2, -1))[None]
    svmeq = r.W_fin[None] + R[..., None, None] * r.W_dir[None]
    single = np.where(r.single_feasible[:, None, None], r.W_single, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        curves = {"Gen-SVM direction W_dir": _one_minus_corr(r.W_traj, r.W_dir),
                  "W_fin + R_k W_dir (R_k fitted)": (1 - corr(r.W_traj, svmeq)).T,
                  "one-token SVM W^mm_alpha (rival)": _one_minus_corr(r.W_traj, single)}
    for (label, y), col in zip(curves.items(), ("C0", "C2", "C3")):
        seed_band(ax[0, 0], r.steps[k], y[:, k], label=label, color=col, log=True)
    ax[0, 0].set_xscale("log")
    ax[0, 0].set_yscale("log")
    ax[0, 0].set_xlabel("iteration k (NGD)")
    ax[0, 0].set_ylabel("1 - corr(W_k, .)")
    ax[0, 0].set_title(f"lambda head, {len(r.W)} instances")
    ax[0, 0].legend(fontsize=6, loc="lower left")
    norms = np.linalg.norm(r.W_traj, axis=(-2, -1)).T                       # (e, obs)
    seed_band(ax[0, 1], r.steps[k], norms[:, k], label="||W_k||_F", color="C0")
    seed_band(ax[0, 1], r.steps[k], m["fin_traj"][:, k], label="||P_fin W_k - W_fin||_F", color="C1")
    seed_band(ax[0, 1], r.steps[k], np.broadcast_to(np.linalg.norm(r.W_fin, axis=(-2, -1))[:, None],
                                                      norms[:, k].shape), label="||W_fin||_F (predicted)",
              color="0.5", ls="--")
    ax[0, 1].axhline(c.lr, color="k", lw=0.8, ls=":", label=f"NGD step lr = {c.lr:g}")
    ax[0, 1].set_xscale("log")
    ax[0, 1].set_yscale("log")
    ax[0, 1].set_xlabel("iteration k (NGD)")
    ax[0, 1].set_ylabel("Frobenius norm")
    ax[0, 1].set_title("finite part settles, ||W|| grows")
    ax[0, 1].set_ylim(top=20 * float(np.max(norms)))                         # room for the legend above the data
    ax[0, 1].legend(fontsize=6, loc="upper left")
    return fig
