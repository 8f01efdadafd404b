"""Metrics of the study, in numpy, computed from a record's typed results (used by checks and figures).

- correlation: the Frobenius cosine <W, W'> / (||W||_F ||W'||_F) (also against the nuclear and
  operator solutions, spec pitfall 3);
- margin efficiency in a norm: eff(W) = min_{i, t != alpha_i} (x_ialpha - x_it)^T W z_i / ||W|| * ||W^mm||,
  at most 1, invariant to rescaling and to the choice among tied minimisers (also of the SVM of a
  rival norm: what a run would score had it followed the rival bias);
- support tokens and TF-SVM's local optimality of alpha;
- softmax saturation: max_i (1 - max_t s_it).

Arguments: ``inst`` is an `~studies.svm_bias.simulate.Instances` (the X, Z, Y, v of a phase) and
``run`` a `~studies.svm_bias.simulate.Run` or `~studies.svm_bias.simulate.SolvedRun` trained on it.
Where a phase's result is both (the primary run, an equal-score run, a sweep width), pass it
twice: ``efficiencies(main, main, "fro")``; where a phase trains several runs on one instance,
``efficiencies(norms, norms.kq, "nuc")``.
"""
from __future__ import annotations

import numpy as np

from studies.svm_bias.svm import SUPPORT_TOL, locally_optimal, margins, matrix_norm

CORR_CONVERGED = 0.99
"""A sweep run counts as converged in direction when corr(W, W^mm_alpha) >= this."""


def corr(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Frobenius cosine over the last two axes."""
    A, B = np.asarray(A, dtype=float), np.asarray(B, dtype=float)
    return (A * B).sum(axis=(-2, -1)) / (np.linalg.norm(A, axis=(-2, -1)) * np.linalg.norm(B, axis=(-2, -1)))


def logits(X: np.ndarray, W: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """(X_i W z_i)_t: (e, n, T, d), (e, d, d), (e, n, d) -> (e, n, T)."""
    return np.einsum("enta,eab,enb->ent", X, W, Z)


def gamma(inst) -> np.ndarray:
    """Token scores gamma_it = Y_i v^T x_it: (e, n, T)."""
    return inst.Y[..., None] * np.einsum("enta,ea->ent", inst.X, inst.v)


def selected(inst, W: np.ndarray) -> np.ndarray:
    """alpha = argmax_t s_it of W (e, d, d): (e, n)."""
    return logits(inst.X, W, inst.Z).argmax(axis=-1)


def settled_selection(inst, run, since: int) -> np.ndarray:
    """Whether each member's selected tokens stay those of its final W at every observed step
    k >= ``since`` (its W_k stays in the cone of one alpha there): (e,) bool."""
    final = selected(inst, run.W)                                           # (e, n)
    late = np.stack([selected(inst, run.W_traj[k]) for k in np.flatnonzero(run.steps >= since)])  # (obs', e, n)
    return np.all(late == final, axis=(0, 2))


def efficiencies(inst, run, norm: str) -> np.ndarray:
    """eff_norm of the run's final W against its stored SVM in ``norm`` (e,); NaN if infeasible."""
    W, S = run.W, run.solution(norm)
    m = np.nanmin(margins(inst.X, inst.Z, selected(inst, W), W).reshape(len(W), -1), axis=-1)
    out = np.full(len(W), np.nan)
    for i in range(len(W)):
        if np.all(np.isfinite(S[i])):
            out[i] = m[i] / matrix_norm(W[i], norm) * matrix_norm(S[i], norm)
    return out


def svm_efficiencies(inst, svms, of: str, norm: str) -> np.ndarray:
    """eff_norm of the stored SVM in norm ``of`` (e,): the efficiency a run would have if it reached
    the direction of a rival bias (``of``) instead of its own; NaN where infeasible."""
    S_of, S = svms.solution(of), svms.solution(norm)
    out = np.full(len(S), np.nan)
    for i in range(len(S)):
        if svms.feasible[i] and np.all(np.isfinite(S_of[i])) and np.all(np.isfinite(S[i])):
            m = np.nanmin(margins(inst.X[i:i + 1], inst.Z[i:i + 1], svms.alpha[i:i + 1], S_of[i:i + 1]))
            out[i] = m / matrix_norm(S_of[i], norm) * matrix_norm(S[i], norm)
    return out


def support(inst, svms) -> np.ndarray:
    """Support tokens of the stored Frobenius SVM (margin <= 1 + SUPPORT_TOL): (e, n, T) bool."""
    m = margins(inst.X, inst.Z, svms.alpha, np.nan_to_num(svms.svm_fro))
    return np.nan_to_num(m, nan=np.inf) <= 1 + SUPPORT_TOL


def local_optimality(inst, run) -> np.ndarray:
    """TF-SVM local optimality of the run's alpha, solved for the alpha its final W selects (e,)."""
    same = np.all(run.alpha == selected(inst, run.W), axis=-1)              # SVM solved for this W's alpha
    return locally_optimal(gamma(inst), run.alpha, support(inst, run)) & same & run.feasible


def saturations(inst, W: np.ndarray) -> np.ndarray:
    """max_i (1 - max_t s_it) of W (e, d, d): (e,), computed without rounding at 1."""
    L = logits(inst.X, W, inst.Z)
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


def sweep_classes(width) -> np.ndarray:
    """0 = global (alpha = opt), 1 = local (alpha != opt, locally optimal), 2 = other, for the runs
    of one `~studies.svm_bias.simulate.SweepWidth`; a run counts only if its SVM is feasible and
    corr(W, W^mm_alpha) >= CORR_CONVERGED: (e,) int."""
    alpha = selected(width, width.W)
    c = np.where(width.feasible, corr(width.W, np.nan_to_num(width.svm_fro)), -1.0)
    converged = width.feasible & (c >= CORR_CONVERGED)
    is_opt = np.all(alpha == width.opt, axis=-1)
    loc = local_optimality(width, width)
    return np.where(converged & is_opt, 0, np.where(converged & loc, 1, 2))


def margin_errors(X: np.ndarray, Z: np.ndarray, alpha: np.ndarray, S: np.ndarray,
                  ok: np.ndarray | None = None) -> np.ndarray:
    """|min margin - 1| of the SVM solutions S (e, d, d) for alpha (e, n) on the instances X, Z
    (at least e of them), over the members ``ok`` (default all): (ok.sum(),)."""
    ok = np.ones(len(S), dtype=bool) if ok is None else ok
    m = margins(X[: len(ok)][ok], Z[: len(ok)][ok], alpha[ok], S[ok])
    return np.abs(np.nanmin(m.reshape(m.shape[0], -1), axis=-1) - 1)
