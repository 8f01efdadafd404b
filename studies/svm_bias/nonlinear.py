"""A nonlinear head and multi-token selection: TF-SVM's generalised SVM equivalence (Gen-SVM).

Tarzanagh, Li, Thrampoulidis & Oymak, *Transformers as Support Vector Machines* (2023), the
section "towards a more general SVM equivalence for nonlinear heads".  The paper body is not in
our corpora; the formulation below is the one of the official code (``base_nonlinear.py`` and
``multi_token_converge.ipynb`` of github.com/umich-sota/TF-as-SVM, read in full), and the
derivation of the predicted selection and finite component is ours (the book chapter, section
"Nonlinear heads").

The head.  With the attention output a_i = X_i^T s_i(W) (s_i = softmax(X_i W z_i)),

    Y_i f_i = v^T a_i - lam ||a_i||^2 ,                        Y_i = +1,          (sb-lam-head)

the official code's ``mode='lambda'`` head.  In the simplex coordinates s (a = X^T s) it is
    Y_i f_i(s) = gamma_i^T s - lam s^T G_i s,   gamma_it = v^T x_it,   G_i = X_i X_i^T,
strictly concave when G_i is positive definite (T <= d, tokens in general position), so it has a
unique maximiser s*_i on the simplex, and the maximiser is in general *not* a vertex: its support
O_i (the selected set) can hold several tokens.  The loss is decreasing, so the infimum of the
training loss asks for s_i = s*_i: tokens outside O_i must get softmax mass 0 (||W|| -> infinity)
while the mixing weights inside O_i stay finite.

Gen-SVM (the official ``W_svm_solver`` of base_nonlinear.py).  Write
S_fin = span{(x_it - x_itau) z_i^T : t, tau in O_i} (the within-O_i logit differences are
<W, (x_it - x_itau) z_i^T>).  Then W_k ~ W_fin + R_k W_dir with

    W_fin = argmin ||W||_F  s.t. (x_it - x_ir)^T W z_i = log(s*_it / s*_ir),  t, r in O_i,
    W_dir = argmin ||W||_F  s.t. (x_it - x_itau)^T W z_i = 0,  t, tau in O_i,
                                 (x_it - x_itau)^T W z_i >= 1, t in O_i, tau not in O_i.

W_fin lies in S_fin (a minimum-norm solution of linear equations lies in their row space) and
the equalities put W_dir in its orthogonal complement.  The official code takes s* from the
final softmax, which makes W_fin the projection of the final W on S_fin (an identity); here s*
comes from the head (`optimal_mixture`), before any training, so W_fin is a prediction.

Index letters: e member, i (n in shapes) sequence, t token, a/b feature.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from workbench.attention import stable_softmax
from workbench.streams import Stream

from studies.svm_bias.instances import Instance, member_indices
from studies.svm_bias.svm import InfeasibleSVMError, ldp


# ---------------------------------------------------------------------------- the model
def lam_head_margins(logits: Tensor, X: Tensor, v: Tensor, lam: float) -> Tensor:
    """Y_i f_i = v^T a_i - lam ||a_i||^2, a_i = X_i^T softmax(logits_i) (sb-lam-head): (e, n)."""
    s = stable_softmax(logits, dim=-1)                            # (e, n, T)
    a = torch.einsum("ent,enta->ena", s, X)                       # (e, n, d)
    return torch.einsum("ena,ea->en", a, v) - lam * (a * a).sum(dim=-1)


def _dlogit(s: Tensor, h: Tensor) -> Tensor:
    """dU/dlogit_t = s_t (h_t - sum_tau s_tau h_tau), cancellation-free: h is taken relative to the
    argmax token r (h_r = 0), so sum_tau s_tau h_tau is a sum of small terms once s saturates (the
    textbook form loses the gradient past margin ~36, `model` and spec pitfall 4).  (e, n, T)."""
    r = s.argmax(dim=-1, keepdim=True)                            # (e, n, 1)
    h = h - h.gather(-1, r)                                       # (e, n, T), 0 at r
    return s * (h - (s * h).sum(dim=-1, keepdim=True))


def lam_head_risk_gradient(W: Tensor, X: Tensor, Z: Tensor, v: Tensor, lam: float, kind: str) -> tuple[Tensor, Tensor]:
    """Closed-form (risk (e,), dL/dW (e, d, d)) of the lambda head; autograd is the test's oracle.

        dL/dW = (1/n) sum_i loss'(u_i) sum_t s_it (h_it - sum_tau s_itau h_itau) x_it z_i^T,
        h_it = dU_i/ds_it = x_it^T (v - 2 lam a_i),   u_i = v^T a_i - lam ||a_i||^2.
    """
    from studies.svm_bias.model import attention_logits, loss_derivative, loss_fn

    s = stable_softmax(attention_logits(X, W, Z), dim=-1)        # (e, n, T)
    a = torch.einsum("ent,enta->ena", s, X)                       # (e, n, d)
    u = torch.einsum("ena,ea->en", a, v) - lam * (a * a).sum(dim=-1)   # (e, n)
    h = torch.einsum("enta,ena->ent", X, v[:, None, :] - 2 * lam * a)  # (e, n, T)
    dlogit = _dlogit(s, h)                                        # (e, n, T)
    c = torch.einsum("ent,enta->ena", loss_derivative(u, kind)[..., None] * dlogit, X)   # (e, n, d)
    grad = torch.einsum("ena,enb->eab", c, Z) / X.shape[1]        # (e, d, d): (1/n) sum_i c_i z_i^T
    return loss_fn(u, kind).mean(dim=-1), grad


def relu_head_risk_gradient(W: Tensor, X: Tensor, Z: Tensor, V: Tensor, Y: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """(risk (e,), dL/dW (e, d, d)) of the official notebook's MLP head f = 1^T ReLU(V^T a),
    a = X^T s, with u_i = Y_i f_i; h_it = dU_i/ds_it = Y_i x_it^T V 1[V^T a_i > 0] (the ReLU's
    derivative taken as 0 at 0, as autograd does)."""
    from studies.svm_bias.model import attention_logits, loss_derivative, loss_fn

    s = stable_softmax(attention_logits(X, W, Z), dim=-1)        # (e, n, T)
    a = torch.einsum("ent,enta->ena", s, X)                       # (e, n, d)
    pre = torch.einsum("ena,eab->enb", a, V)                      # (e, n, d): V^T a_i
    u = Y * torch.relu(pre).sum(dim=-1)                           # (e, n)
    du_da = Y[..., None] * torch.einsum("eab,enb->ena", V, (pre > 0).to(a.dtype))   # (e, n, d)
    h = torch.einsum("enta,ena->ent", X, du_da)                   # (e, n, T)
    dlogit = _dlogit(s, h)                                        # (e, n, T)
    c = torch.einsum("ent,enta->ena", loss_derivative(u, kind)[..., None] * dlogit, X)   # (e, n, d)
    grad = torch.einsum("ena,enb->eab", c, Z) / X.shape[1]        # (e, d, d)
    return loss_fn(u, kind).mean(dim=-1), grad


def relu_head_instance(stream: Stream, members: int | Sequence[int], n: int, T: int, d: int, *,
                       dtype: torch.dtype = torch.float64) -> tuple[Instance, Tensor]:
    """The official ``multi_token_converge`` data (mode 'relu'): unit Gaussian tokens and queries,
    V Gaussian (d, d) with unit Frobenius norm, Y = +-1 at random; returns (instance with v = 0,
    V (e, d, d)).  No selection on anything (the official notebook's rejection is applied to the
    trained runs and reported, `official_acceptance`)."""
    draw = dict(members=members if isinstance(members, int) else list(members), dtype=dtype)
    unit = lambda x: x / x.norm(dim=-1, keepdim=True)
    X = unit(stream.child("X").normal((n, T, d), **draw))                          # (e, n, T, d)
    Z = unit(stream.child("Z").normal((n, d), **draw))                             # (e, n, d)
    V = stream.child("V").normal((d, d), **draw)
    V = V / V.norm(dim=(-2, -1), keepdim=True)                                     # (e, d, d)
    Y = stream.child("Y").integers(0, 2, (n,), members=draw["members"]).to(dtype) * 2 - 1   # (e, n)
    return Instance(X, Z, Y, torch.zeros(X.shape[0], d, dtype=dtype)), V


def official_acceptance(s: np.ndarray, Y: np.ndarray, low: float = 1e-6, high: float = 1e-3) -> np.ndarray:
    """The official notebook's rule for keeping a trained run (e,): no softmax entry in (low, high],
    some entry <= low, and some Y = -1.  s (e, n, T), Y (e, n)."""
    ambiguous = np.any((s > low) & (s <= high), axis=(-2, -1))
    return ~ambiguous & np.any(s <= low, axis=(-2, -1)) & np.any(Y < 0, axis=-1)


# ------------------------------------------------------------------ the optimal mixture
@dataclass
class Mixture:
    """The maximiser s* of gamma^T s - lam s^T G s over the simplex, per sequence."""

    s_star: np.ndarray
    """(..., T) the optimal mixing weights (0 off the support)."""
    support: np.ndarray
    """(..., T) bool: O = the support of s*."""
    slack: np.ndarray
    """(...,) strict complementarity: min over tau not in O of mu - d(Yf)/ds_tau (inf if O is
    everything), mu the common value of d(Yf)/ds_t on O."""


def optimal_mixture(gamma: np.ndarray, G: np.ndarray, lam: float) -> Mixture:
    """s* = argmax_{s in simplex} gamma^T s - lam s^T G s by enumerating the supports.

    gamma (..., T), G (..., T, T) positive definite.  For a support O the KKT conditions are
    2 lam G_OO s_O + mu 1 = gamma_O, 1^T s_O = 1 (one linear system); the maximiser is the
    support whose solution has s_O > 0 and gamma_tau - 2 lam (G s)_tau <= mu off O.  The
    objective is strictly concave, so exactly one support qualifies (up to ties of measure 0)."""
    gamma, G = np.asarray(gamma, dtype=float), np.asarray(G, dtype=float)
    batch, T = gamma.shape[:-1], gamma.shape[-1]
    g2, G2 = gamma.reshape(-1, T), G.reshape(-1, T, T)
    s_out = np.zeros_like(g2)
    support = np.zeros(g2.shape, dtype=bool)
    slack = np.full(len(g2), -np.inf)
    for j in range(len(g2)):
        for size in range(1, T + 1):
            for O in itertools.combinations(range(T), size):
                O = list(O)
                K = np.zeros((size + 1, size + 1))
                K[:size, :size] = 2 * lam * G2[j][np.ix_(O, O)]
                K[:size, size] = 1.0
                K[size, :size] = 1.0
                sol = np.linalg.solve(K, np.concatenate([g2[j][O], [1.0]]))
                sO, mu = sol[:size], sol[size]
                if np.any(sO <= 0):
                    continue
                s = np.zeros(T)
                s[O] = sO
                grad = g2[j] - 2 * lam * G2[j] @ s                # d(Yf)/ds, = mu on O
                off = np.setdiff1d(np.arange(T), O)
                gap = float(np.min(mu - grad[off])) if off.size else np.inf
                if gap > slack[j]:
                    s_out[j], slack[j] = s, gap
                    support[j] = False
                    support[j][O] = True
    return Mixture(s_out.reshape(*batch, T), support.reshape(*batch, T), slack.reshape(batch))


def lam_head_instance(stream: Stream, members: int | Sequence[int], n: int, T: int, d: int, lam: float, *,
                      min_weight: float, min_slack: float, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.float64, max_tries: int = 1000) -> tuple[Instance, Mixture]:
    """Instances for the lambda head: unit Gaussian tokens, queries and v (as ``random``), Y = +1.

    Member i's attempt k reads ``stream.child("try", k)`` at member i; a draw is kept when every
    sequence's optimal mixture is well posed (s*_t >= ``min_weight`` on O_i and complementarity
    slack >= ``min_slack``: the regime of the finite/direction split) and some sequence selects
    two or more tokens (else Gen-SVM is the one-token SVM).  These conditions read the head only,
    never a trained model."""
    idx = member_indices(members)
    e = len(idx)
    X = torch.empty((e, n, T, d), dtype=dtype)
    Z = torch.empty((e, n, d), dtype=dtype)
    v = torch.empty((e, d), dtype=dtype)
    s_star, supp, slack = np.zeros((e, n, T)), np.zeros((e, n, T), dtype=bool), np.zeros((e, n))
    pending = list(range(e))
    unit = lambda x: x / x.norm(dim=-1, keepdim=True)
    for k in range(max_tries):
        s = stream.child("try", k)
        who = [idx[j] for j in pending]
        draw = dict(members=who, dtype=dtype)
        Xk = unit(s.child("X").normal((n, T, d), **draw))                              # (p, n, T, d)
        Zk = unit(s.child("Z").normal((n, d), **draw))                                 # (p, n, d)
        vk = unit(s.child("v").normal((d,), **draw))                                   # (p, d)
        gam = torch.einsum("enta,ea->ent", Xk, vk).numpy()                             # (p, n, T)
        mix = optimal_mixture(gam, (Xk @ Xk.transpose(-1, -2)).numpy(), lam)
        weight_ok = np.all(np.where(mix.support, mix.s_star, np.inf) >= min_weight, axis=(-2, -1))
        ok = weight_ok & np.all(mix.slack >= min_slack, axis=-1) & np.any(mix.support.sum(-1) >= 2, axis=-1)
        for j, good in zip(list(pending), ok):
            if good:
                r = pending.index(j)
                X[j], Z[j], v[j] = Xk[r], Zk[r], vk[r]
                s_star[j], supp[j], slack[j] = mix.s_star[r], mix.support[r], mix.slack[r]
        pending = [j for j, good in zip(pending, ok) if not good]
        if not pending:
            inst = Instance(X, Z, torch.ones((e, n), dtype=dtype), v).to(device=device)
            return inst, Mixture(s_star, supp, slack)
    raise RuntimeError(f"no lambda-head instance in {max_tries} draws")  # pragma: no cover


# ------------------------------------------------------------------------------ Gen-SVM
@dataclass
class GenSVM:
    """Gen-SVM of one instance (module docstring)."""

    W_fin: np.ndarray
    """(d, d) the finite component: minimum-norm W with the predicted within-O log-ratios."""
    W_dir: np.ndarray
    """(d, d) the direction: minimum-norm W with equal logits on O_i and margin 1 against the rest."""
    fin_basis: np.ndarray
    """(d*d, r) orthonormal basis of S_fin (r = sum_i (|O_i| - 1))."""
    equality_residual: float
    """max |(x_it - x_ir)^T W_dir z_i| over t, r in O_i (0 by construction)."""
    min_margin: float
    """min over i, t in O_i, tau not in O_i of (x_it - x_itau)^T W_dir z_i (1 at the optimum)."""


def fin_rows(X: np.ndarray, Z: np.ndarray, O: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Rows vec((x_it - x_ir) z_i^T) for t in O_i after its first token r: (k, d*d), and (i, t, r)."""
    rows, pairs = [], []
    for i in range(X.shape[0]):
        idx = np.nonzero(O[i])[0]
        for t in idx[1:]:
            rows.append(np.outer(X[i, t] - X[i, idx[0]], Z[i]).ravel())
            pairs.append((i, int(t), int(idx[0])))
    d = X.shape[-1]
    return np.asarray(rows).reshape(-1, d * d), pairs


def fin_projection(W: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """The projection of W (..., d, d) on S_fin: (..., d, d)."""
    shape = W.shape
    flat = W.reshape(*shape[:-2], -1)
    return ((flat @ basis) @ basis.T).reshape(shape)


def gen_svm(X: np.ndarray, Z: np.ndarray, O: np.ndarray, s_star: np.ndarray) -> GenSVM:
    """Gen-SVM for selected sets O (n, T) bool with mixing weights s_star (n, T); X (n, T, d), Z (n, d).

    W_dir is a least-distance program in the orthogonal complement of S_fin (coordinates u in an
    orthonormal basis P of it, W = P u, so ||W|| = ||u||), solved by `svm.ldp`; W_fin by least
    squares (the minimum-norm solution).  Raises `InfeasibleSVMError` when no W_dir exists."""
    n, T, d = X.shape
    F, pairs = fin_rows(X, Z, O)
    b = np.array([np.log(s_star[i, t] / s_star[i, r]) for i, t, r in pairs])
    if len(F):
        _, sv, Vt = np.linalg.svd(F, full_matrices=True)
        rank = int((sv > sv[0] * d * d * np.finfo(float).eps).sum())
        basis, comp = Vt[:rank].T, Vt[rank:].T                    # (d*d, r), (d*d, d*d - r)
        W_fin = np.linalg.lstsq(F, b, rcond=None)[0]
    else:
        basis, comp = np.zeros((d * d, 0)), np.eye(d * d)
        W_fin = np.zeros(d * d)
    G = np.asarray([np.outer(X[i, np.nonzero(O[i])[0][0]] - X[i, tau], Z[i]).ravel()
                    for i in range(n) for tau in np.nonzero(~O[i])[0]]).reshape(-1, d * d)
    if len(G) == 0:
        raise InfeasibleSVMError("Gen-SVM has no inequality: every sequence selects all its tokens")
    W_dir = comp @ ldp(G @ comp, np.ones(len(G)))
    eq = float(np.max(np.abs(F @ W_dir))) if len(F) else 0.0
    return GenSVM(W_fin=W_fin.reshape(d, d), W_dir=W_dir.reshape(d, d), fin_basis=basis,
                  equality_residual=eq, min_margin=float(np.min(G @ W_dir)))
