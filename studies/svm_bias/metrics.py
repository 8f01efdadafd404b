"""Metrics of the study, in numpy, computed from record arrays (used by checks and figures).

- correlation: the Frobenius cosine <W, W'> / (||W||_F ||W'||_F) (also against the nuclear and
  operator solutions, spec pitfall 3);
- margin efficiency in a norm: eff(W) = min_{i, t != alpha_i} (x_ialpha - x_it)^T W z_i / ||W|| * ||W^mm||,
  at most 1, invariant to rescaling and to the choice among tied minimisers;
- support tokens and TF-SVM's local optimality of alpha;
- softmax saturation: max_i (1 - max_t s_it).

Array naming: an instance lives under ``<p>.X, <p>.Z, <p>.Y, <p>.v``; a run's final W under
``<q>.W`` and its SVMs under ``<q>.svm_<norm>`` with ``<q>.alpha``, where q is p or p.<run>.
"""
from __future__ import annotations

import numpy as np

from studies.svm_bias.svm import SUPPORT_TOL, matrix_norm

CORR_CONVERGED = 0.99
"""A sweep run counts as converged in direction when corr(W, W^mm_alpha) >= this."""


def corr(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Frobenius cosine over the last two axes."""
    A, B = np.asarray(A, dtype=float), np.asarray(B, dtype=float)
    return (A * B).sum(axis=(-2, -1)) / (np.linalg.norm(A, axis=(-2, -1)) * np.linalg.norm(B, axis=(-2, -1)))


def instance_prefix(a: dict, prefix: str) -> str:
    """``norms.ngd`` -> ``norms`` (the instance of a run); ``main`` -> ``main``."""
    return prefix if f"{prefix}.X" in a else prefix.rsplit(".", 1)[0]


def logits(X: np.ndarray, W: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """(X_i W z_i)_t: (e, n, T, d), (e, d, d), (e, n, d) -> (e, n, T)."""
    return np.einsum("enta,eab,enb->ent", X, W, Z)


def selected(a: dict, prefix: str, W_key: str | None = None) -> np.ndarray:
    """alpha = argmax_t s_it of the run's final W: (e, n)."""
    p = instance_prefix(a, prefix)
    return logits(a[f"{p}.X"], a[W_key or f"{prefix}.W"], a[f"{p}.Z"]).argmax(axis=-1)


def settled_selection(a: dict, prefix: str, since: int) -> np.ndarray:
    """Whether each member's selected tokens stay those of its final W at every observed step
    k >= ``since`` (its W_k stays in the cone of one alpha there): (e,) bool."""
    p = instance_prefix(a, prefix)
    steps, traj = a[f"{prefix}.steps"], a[f"{prefix}.W_traj"]               # (obs,), (obs, e, d, d)
    final = selected(a, prefix)                                             # (e, n)
    late = np.stack([logits(a[f"{p}.X"], traj[k], a[f"{p}.Z"]).argmax(axis=-1)
                     for k in np.flatnonzero(steps >= since)])              # (obs', e, n)
    return np.all(late == final, axis=(0, 2))


def gamma(a: dict, prefix: str) -> np.ndarray:
    """Token scores gamma_it = Y_i v^T x_it: (e, n, T)."""
    p = instance_prefix(a, prefix)
    return a[f"{p}.Y"][..., None] * np.einsum("enta,ea->ent", a[f"{p}.X"], a[f"{p}.v"])


def margins(X: np.ndarray, Z: np.ndarray, alpha: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(x_{i alpha_i} - x_it)^T W z_i: (e, n, T), NaN at t = alpha_i."""
    e, n, T, _ = X.shape
    sel = np.take_along_axis(X, alpha[:, :, None, None], axis=2)             # (e, n, 1, d)
    m = np.einsum("enta,eab,enb->ent", sel - X, W, Z)
    np.put_along_axis(m, alpha[:, :, None], np.nan, axis=2)
    return m


def efficiencies(a: dict, prefix: str, W_key: str, norm: str) -> np.ndarray:
    """eff_norm of the final W against the stored SVM ``<prefix>.svm_<norm>`` (e,); NaN if infeasible."""
    p = instance_prefix(a, prefix)
    W, S = a[W_key], a[f"{prefix}.svm_{norm}"]
    alpha = selected(a, prefix, W_key)
    m = np.nanmin(margins(a[f"{p}.X"], a[f"{p}.Z"], alpha, W).reshape(len(W), -1), axis=-1)
    out = np.full(len(W), np.nan)
    for i in range(len(W)):
        if np.all(np.isfinite(S[i])):
            out[i] = m[i] / matrix_norm(W[i], norm) * matrix_norm(S[i], norm)
    return out


def support(a: dict, prefix: str) -> np.ndarray:
    """Support tokens of the stored Frobenius SVM (margin <= 1 + SUPPORT_TOL): (e, n, T) bool."""
    p = instance_prefix(a, prefix)
    S = a[f"{prefix}.svm_fro"]
    m = margins(a[f"{p}.X"], a[f"{p}.Z"], a[f"{prefix}.alpha"], np.nan_to_num(S))
    return np.nan_to_num(m, nan=np.inf) <= 1 + SUPPORT_TOL


def local_optimality(a: dict, prefix: str) -> np.ndarray:
    """TF-SVM local optimality of the selected alpha: gamma_ialpha > gamma_it on every support token (e,)."""
    g = gamma(a, prefix)
    alpha = a[f"{prefix}.alpha"]
    sel = np.take_along_axis(g, alpha[:, :, None], axis=2)                   # (e, n, 1)
    ok = np.all(~support(a, prefix) | (g < sel), axis=(1, 2))
    same = np.all(alpha == selected(a, prefix), axis=-1)                     # SVM solved for this W's alpha
    return ok & same & a[f"{prefix}.feasible"]


def saturations(a: dict, prefix: str, W: np.ndarray | None = None) -> np.ndarray:
    """max_i (1 - max_t s_it) of W (default: the final W): (e,), computed without rounding at 1."""
    p = instance_prefix(a, prefix)
    L = logits(a[f"{p}.X"], a[f"{prefix}.W"] if W is None else W, a[f"{p}.Z"])
    L = L - L.max(axis=-1, keepdims=True)
    w = np.exp(L)
    off = w.sum(axis=-1) - 1.0
    off = np.where(off < 1e-3, np.sort(w, axis=-1)[..., :-1].sum(axis=-1), off)   # accurate when small
    return (off / (1 + off)).max(axis=-1)


def ln_k_slope(steps: np.ndarray, norms: np.ndarray, gd_steps: int) -> float:
    """Least-squares slope of ||W_k|| against ln k over k in [gd_steps / 4, gd_steps]."""
    steps = np.asarray(steps)
    mask = (steps >= gd_steps // 4) & (steps <= gd_steps)
    return float(np.polyfit(np.log(steps[mask]), np.asarray(norms)[mask], 1)[0])


def sweep_classes(a: dict, prefix: str) -> np.ndarray:
    """0 = global (alpha = opt), 1 = local (alpha != opt, locally optimal), 2 = other; a run counts
    only if its SVM is feasible and corr(W, W^mm_alpha) >= CORR_CONVERGED: (e,) int."""
    alpha = selected(a, prefix)
    feasible = a[f"{prefix}.feasible"]
    c = np.where(feasible, corr(a[f"{prefix}.W"], np.nan_to_num(a[f"{prefix}.svm_fro"])), -1.0)
    converged = feasible & (c >= CORR_CONVERGED)
    is_opt = np.all(alpha == a[f"{prefix}.opt"], axis=-1)
    loc = local_optimality(a, prefix)
    return np.where(converged & is_opt, 0, np.where(converged & loc, 1, 2))


def kkt_deviations(a: dict) -> np.ndarray:
    """|min margin - 1| of every stored SVM solution (cvxpy and scipy), recomputed from the instance."""
    devs = []
    for key in a:
        name = key.rsplit(".", 1)[-1]
        if name in ("svm_fro", "svm_nuc", "svm_op", "svm_fro_ldp"):
            prefix = key.rsplit(".", 1)[0]
            p = instance_prefix(a, prefix)
            ok = a[f"{prefix}.feasible"]
            m = margins(a[f"{p}.X"][ok], a[f"{p}.Z"][ok], a[f"{prefix}.alpha"][ok], a[key][ok])
            devs.append(np.abs(np.nanmin(m.reshape(m.shape[0], -1), axis=-1) - 1))
        elif name in ("rank_fro_W", "rank_nuc_W"):
            p = key.rsplit(".", 1)[0]
            ok = a[f"{p}.rank_feasible"]
            g = gamma(a, p)[: len(ok)][ok]
            m = margins(a[f"{p}.X"][: len(ok)][ok], a[f"{p}.Z"][: len(ok)][ok], g.argmax(axis=-1), a[key][ok])
            devs.append(np.abs(np.nanmin(m.reshape(m.shape[0], -1), axis=-1) - 1))
        elif name in ("svm_global", "svm_local"):
            p = key.rsplit(".", 1)[0]
            alpha = np.array([[0 if name == "svm_global" else 1]])
            m = margins(a[f"{p}.X"][:1], a[f"{p}.Z"][:1], alpha, a[key][None])
            devs.append(np.abs(np.nanmin(m) - 1)[None])
    return np.concatenate(devs) if devs else np.array([np.nan])
