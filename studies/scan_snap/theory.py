"""Scan and Snap theory (Tian, Wang, Chen, Du 2023): the long-sequence mean field, the paper's
reduced logit dynamics, the decoder's closed form, and the snap bound.  NumPy float64, with a
leading ensemble axis e over learning-rate pairs (eta_Y, eta_Z).

Three ODEs, all with Y(0) = Z(0) = 0 and uniformly sampled classes:

R1, the exact long-sequence mean field: Lemma 1 with Lemma 2's limits X^T b_T -> c_n and
X^T diag(b_T) X -> diag(c_n), averaged over the K classes,

    dY/dt   = (eta_Y / K) sum_n f_n (e_n - alpha_n)^T,                 alpha_n = softmax(Y^T f_n)
    dz_m/dt = (eta_Z / K) sum_{n in psi^-1(m)} f_n * (I - f_n f_n^T) Y (e_n - alpha_n)

with c_{l|n} = P(l|n) e^{z_ml} / sum_l' P(l'|n) e^{z_ml'} and f_n = c_n / ||c_n||.

R1m, the bridge: R1 with the decoder driven by Lemma 3's *modified* gradient,
dY/dt = (eta_Y / K) sum_n (f_n - F E' e_n)(e_n - alpha_n)^T, E' = I - (F^T F)^{-1}, the
dynamics under which Theorem 1's back-propagated gradient is derived.

R2, the paper's reduced logit dynamics (Lemma 4, Eq. 10) with a 1/K class-sampling factor,

    dz_m/dt = (eta_Z gamma(t) / K) sum_{n in psi^-1(m)} f_n * sum_{n' != n} beta_nn' ((f_n^T f_n') f_n - f_n'),

beta_nn' = E'_{n'n} recomputed from the current z, and gamma(t) from Theorem 1,

    gamma(t) = (M-1)^2 h(t/K) / ((M-1) + e^{M h(t/K)}),   e^{M h(s)} + (M-1) M h(s) = M eta_Y s + 1
    (Lemma 6; M is the number of decoder outputs).

Eq. 10 as printed sums over classes without 1/K; the expected update of a uniformly sampled class
carries it (and with it the reduced dynamics sit next to R1m, see the book chapter).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workbench.ode import integrate

from studies.scan_snap.data import SequenceClasses

BN_PARAMETER_SETS = (
    # (label, K, M, eta_Y, eta_Z): Fig. 3 (K = 10, M = 1000, eta_Z = 0.5) and Fig. 9 panels.
    ("Fig. 3, eta_Y=0.5", 10, 1000, 0.5, 0.5), ("Fig. 3, eta_Y=1", 10, 1000, 1.0, 0.5),
    ("Fig. 3, eta_Y=2", 10, 1000, 2.0, 0.5), ("Fig. 3, eta_Y=5", 10, 1000, 5.0, 0.5),
    ("Fig. 9, nu=10, M=100", 10, 100, 10.0, 1.0), ("Fig. 9, nu=1, M=1e4", 10, 10_000, 1.0, 1.0),
)


# ------------------------------------------------------------------------ decoder (Lemma 6)
def decoder_h(s: np.ndarray, eta_y: np.ndarray, M: int, *, tol: float = 1e-15, max_iter: int = 200) -> np.ndarray:
    """h(s) solving e^{M h} + (M-1) M h = M eta_Y s + 1 (Lemma 6), elementwise.

    The left side is convex and increasing in h, so Newton's method started at the upper bracket
    min(ln(r)/M, r/(M(M-1))), r = M eta_Y s + 1, decreases monotonically onto the root.
    """
    s, eta_y = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(eta_y, dtype=np.float64))
    r = M * eta_y * s + 1.0
    h = np.minimum(np.log(r) / M, r / (M * (M - 1.0)))
    for _ in range(max_iter):
        e = np.exp(M * h)
        step = (e + (M - 1.0) * M * h - r) / (M * e + (M - 1.0) * M)
        h = np.maximum(h - step, 0.0)
        if np.all(np.abs(step) <= tol * np.maximum(h, 1e-300)):
            break
    return h


def decoder_gamma(t: np.ndarray, eta_y: np.ndarray, M: int, K: int) -> np.ndarray:
    """gamma(t) = (M-1)^2 h(t/K) / ((M-1) + e^{M h(t/K)}) (Theorem 1)."""
    h = decoder_h(np.asarray(t, dtype=np.float64) / K, eta_y, M)
    return (M - 1.0) ** 2 * h / ((M - 1.0) + np.exp(M * h))


def decoder_gamma_integral(t: np.ndarray, eta_y: np.ndarray, M: int, K: int) -> np.ndarray:
    """int_0^t gamma = K (M-1)^2 h(t/K)^2 / (2 eta_Y) (from dh/ds = eta_Y / (e^{Mh} + M - 1))."""
    h = decoder_h(np.asarray(t, dtype=np.float64) / K, eta_y, M)
    return K * (M - 1.0) ** 2 * h ** 2 / (2.0 * np.asarray(eta_y, dtype=np.float64))


def snap_time_orthogonal(M: int, K: int, eta_y: float | np.ndarray) -> float | np.ndarray:
    """First time alpha_nn = 1/2 for K orthogonal classes with frozen attention (Lemmas 5-6):
    e^{Mh} = M - 1, so t = K (M - 2 + (M-1) ln(M-1)) / (M eta_Y)."""
    return K * (M - 2.0 + (M - 1.0) * math.log(M - 1.0)) / (M * np.asarray(eta_y, dtype=np.float64))


def snap_time_frozen(layout: SequenceClasses, eta_y: float = 1.0, *, n_points: int = 4001) -> float:
    """First time the class-mean alpha_nn = 1/2 with the attention frozen at Z = 0 (the setting of
    Lemmas 5-6) but the layout's classes overlapping as they do (f_n^T f_n' > 0 through the common
    tokens): R1 with eta_Z = 0, integrated on a grid and interpolated.  Only eta_Y t enters, so it
    scales exactly as 1/eta_Y; for disjoint classes it equals `snap_time_orthogonal`."""
    K, M = layout.n_classes, layout.vocab
    t_orth = float(snap_time_orthogonal(M, K, eta_y))
    t = np.linspace(0.0, 4.0 * t_orth, n_points)
    pc = MeanField.of(layout).solve_r1(np.array([float(eta_y)]), np.array([0.0]), t)["p_correct"][:, 0]
    above = np.nonzero(pc >= 0.5)[0]
    if len(above) == 0 or above[0] == 0:
        raise ValueError(f"the frozen-attention decoder does not reach alpha_nn = 1/2 by t = {t[-1]:g}")
    i = above[0]
    return float(t[i - 1] + (0.5 - pc[i - 1]) * (t[i] - t[i - 1]) / (pc[i] - pc[i - 1]))


def snap_time_t0(M: int, K: int, eta_y: float | np.ndarray) -> float | np.ndarray:
    """t_0 = 2 K ln M / eta_Y: where gamma turns from growth to decay (Theorem 1, Sec. 6)."""
    return 2.0 * K * math.log(M) / np.asarray(eta_y, dtype=np.float64)


def snap_bound(t: np.ndarray, eta_y: float, eta_z: float, M: int, K: int, C0: float = 1.0) -> dict[str, np.ndarray]:
    """B_n(t) of Theorem 4 / Eq. 129: B_n = (1/4) ln(C_0 + 4 Gamma), Gamma = eta_Z int gamma,
    with its scanning (t < K ln M / eta_Y) and snapping (t >= 2 K ln M / eta_Y) asymptotes."""
    t = np.asarray(t, dtype=np.float64)
    exact = 0.25 * np.log(C0 + 4.0 * eta_z * decoder_gamma_integral(t, eta_y, M, K))
    scanning = 0.25 * np.log(C0 + 2.0 * (M - 1.0) ** 2 / (K * M ** 2) * eta_y * eta_z * t ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        snapping = 0.25 * np.log(C0 + 2.0 * K * (M - 1.0) ** 2 / M ** 2 * (eta_z / eta_y)
                                 * np.log(np.maximum(M * eta_y * t / K, 1.0)) ** 2)
    return {"exact": exact, "scanning": scanning, "snapping": snapping}


# ----------------------------------------------------------------------------- mean field
@dataclass
class MeanField:
    """Constants of the long-sequence limit for one layout."""

    P: np.ndarray
    """(K, M_c) P(l|n)."""
    psi: np.ndarray
    """(K,) query index of each class."""
    n_queries: int
    vocab: int
    """M: the decoder's softmax size."""

    @classmethod
    def of(cls, layout: SequenceClasses) -> "MeanField":
        return cls(layout.probabilities().numpy(), layout.query_of_class.numpy(), layout.n_queries, layout.vocab)

    @property
    def K(self) -> int:
        return self.P.shape[0]

    @property
    def Mc(self) -> int:
        return self.P.shape[1]

    @property
    def next_onehot(self) -> np.ndarray:
        """(K, M): e_n over all M outputs (next tokens sit at M_c + Q + n)."""
        E = np.zeros((self.K, self.vocab))
        E[np.arange(self.K), self.Mc + self.n_queries + np.arange(self.K)] = 1.0
        return E

    @property
    def query_onehot(self) -> np.ndarray:
        """(K, Q): class n uses query psi(n)."""
        return np.eye(self.n_queries)[self.psi]

    def attention(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """c_n and f_n = c_n / ||c_n|| (Lemma 2): z (..., Q, M_c) -> (..., K, M_c) twice."""
        zc = z[..., self.psi, :]  # (..., K, M_c)
        with np.errstate(divide="ignore"):
            logit = zc + np.log(self.P)  # -inf on the other classes' distinct tokens
        w = np.exp(logit - logit.max(axis=-1, keepdims=True))
        c = w / w.sum(axis=-1, keepdims=True)
        f = c / np.linalg.norm(c, axis=-1, keepdims=True)
        return c, f

    @staticmethod
    def modified_cross(f: np.ndarray) -> np.ndarray:
        """E' = I - (F^T F)^{-1} (Lemma 3), f (..., K, M_c) -> (..., K, K) (symmetric)."""
        G = np.einsum("...nk,...mk->...nm", f, f)
        return np.eye(G.shape[-1]) - np.linalg.inv(G)

    # ------------------------------------------------------------------------------ R1 / R1m
    # From Y(0) = 0 the M - K outputs that are never a next token get identical decoder columns
    # forever (their updates are identical), so Y is integrated as (e, M_c, K + 1): one column per
    # next token and one shared column standing for the M - K others (multiplicity M - K in
    # every softmax).  This is exact and shrinks the state tenfold on Syn-Small.
    def r1_field(self, eta_y: np.ndarray, eta_z: np.ndarray, *, modified: bool = False):
        """The vector field of R1 (or R1m) on (Y (e, M_c, K+1) compressed as above, z (e, Q, M_c))."""
        K = self.K
        Qh = self.query_onehot
        log_mult = np.log(np.r_[np.ones(K), self.vocab - K])  # (K+1,)
        target = np.eye(K, K + 1)  # (K, K+1): e_n in compressed outputs
        ey, ez = eta_y[:, None, None] / K, eta_z[:, None, None] / K

        def field(Y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            _, f = self.attention(z)  # (e, K, M_c)
            logits = np.einsum("enk,ekj->enj", f, Y) + log_mult  # (e, K, K+1)
            mass = np.exp(logits - logits.max(-1, keepdims=True))
            mass /= mass.sum(-1, keepdims=True)  # total softmax mass of each column group
            alpha = mass - np.r_[np.zeros(K), 1.0] * mass * (1 - 1.0 / (self.vocab - K))  # per output
            drive = f
            if modified:
                Ep = self.modified_cross(f)  # (e, K, K), E'_{n'n}
                drive = f - np.einsum("emn,emk->enk", Ep, f)  # f_n - sum_n' E'_{n'n} f_n'
            dY = ey * np.einsum("enk,enj->ekj", drive, target[None] - alpha)  # (e, M_c, K+1)
            back = np.einsum("ekj,enj->enk", Y, target[None] - mass)  # (e, K, M_c): Y (e_n - alpha_n)
            proj = back - f * (f * back).sum(-1, keepdims=True)
            dz = ez * np.einsum("nq,enk->eqk", Qh, f * proj)  # (e, Q, M_c)
            return dY, dz, mass

        return field

    def expand_decoder(self, Y: np.ndarray) -> np.ndarray:
        """The compressed decoder (e, M_c, K+1) as the full Y restricted to contextual rows (e, M_c, M)."""
        e = Y.shape[0]
        out = np.broadcast_to(Y[..., -1:], (e, self.Mc, self.vocab)).copy()
        out[..., self.Mc + self.n_queries + np.arange(self.K)] = Y[..., :self.K]
        return out

    def solve_r1(self, eta_y: np.ndarray, eta_z: np.ndarray, t_eval: np.ndarray, *, modified: bool = False,
                 rtol: float = 1e-8, atol: float = 1e-14) -> dict[str, np.ndarray]:
        """Integrate R1 (or R1m) from Y = Z = 0; returns z (n_t, e, Q, M_c), the final Y on the
        contextual rows (e, M_c, M), p(correct) (n_t, e) and ||dz_m/dt|| (n_t, e, Q)."""
        eta_y, eta_z = np.asarray(eta_y, dtype=np.float64), np.asarray(eta_z, dtype=np.float64)
        e, Q, Mc, K = len(eta_y), self.n_queries, self.Mc, self.K
        field = self.r1_field(eta_y, eta_z, modified=modified)
        n_y = e * Mc * (K + 1)

        def unpack(y):
            return y[:n_y].reshape(e, Mc, K + 1), y[n_y:].reshape(e, Q, Mc)

        def rhs(t, y):
            dY, dz, _ = field(*unpack(y))
            return np.concatenate([dY.ravel(), dz.ravel()])

        y0 = np.zeros(n_y + e * Q * Mc)
        sol = integrate(rhs, y0, t_eval, method="DOP853", rtol=rtol, atol=atol)
        zs, pc, zdot = [], [], []
        for y in sol.y:
            Y, z = unpack(y)
            _, dz, mass = field(Y, z)
            zs.append(z)
            pc.append(np.einsum("enn->en", mass[..., :K]).mean(-1))
            zdot.append(np.linalg.norm(dz, axis=-1))
        return {"t": sol.t, "z": np.stack(zs), "Y_final": self.expand_decoder(unpack(sol.y[-1])[0]),
                "p_correct": np.stack(pc), "zdot_norm": np.stack(zdot), "n_evaluations": np.asarray(sol.n_evaluations)}

    # ----------------------------------------------------------------------------------- R2
    def r2_field(self, z: np.ndarray, gamma: np.ndarray, eta_z: np.ndarray) -> np.ndarray:
        """Eq. 10 with the 1/K factor: z (e, Q, M_c), gamma (e,), eta_z (e,) -> dz/dt."""
        _, f = self.attention(z)  # (e, K, M_c)
        G = np.einsum("enk,emk->enm", f, f)  # (e, K, K) f_n^T f_n'
        beta = np.eye(self.K) - np.linalg.inv(G)  # E', symmetric, beta_nn' = E'_{n'n}
        beta = beta * (1.0 - np.eye(self.K))  # n' != n
        term = (beta * G).sum(-1)[..., None] * f - np.einsum("enm,emk->enk", beta, f)  # (e, K, M_c)
        scale = (eta_z * gamma / self.K)[:, None, None]
        return scale * np.einsum("nq,enk->eqk", self.query_onehot, f * term)

    def solve_r2(self, eta_y: np.ndarray, eta_z: np.ndarray, t_eval: np.ndarray, *, rtol: float = 1e-10,
                 atol: float = 1e-15) -> dict[str, np.ndarray]:
        """Integrate R2 from z = 0; returns z (n_t, e, Q, M_c) and gamma (n_t, e)."""
        eta_y, eta_z = np.asarray(eta_y, dtype=np.float64), np.asarray(eta_z, dtype=np.float64)
        e, Q, Mc = len(eta_y), self.n_queries, self.Mc

        def rhs(t, y):
            gamma = decoder_gamma(np.full(e, t), eta_y, self.vocab, self.K)
            return self.r2_field(y.reshape(e, Q, Mc), gamma, eta_z).ravel()

        sol = integrate(rhs, np.zeros(e * Q * Mc), t_eval, method="DOP853", rtol=rtol, atol=atol)
        gamma = decoder_gamma(sol.t[:, None], eta_y[None, :], self.vocab, self.K)
        return {"t": sol.t, "z": sol.y.reshape(len(sol.t), e, Q, Mc), "gamma": gamma,
                "n_evaluations": np.asarray(sol.n_evaluations)}


# ---------------------------------------------------------------------------- readouts
def class_attention(z: np.ndarray, layout: SequenceClasses) -> np.ndarray:
    """c (..., K, M_c) from query logits z (..., Q, M_c)."""
    return MeanField.of(layout).attention(np.asarray(z, dtype=np.float64))[0]


def distinct_entropy(c: np.ndarray, layout: SequenceClasses) -> np.ndarray:
    """Entropy (nats) of c_n on class n's distinct tokens, renormalised, mean over n: (..., K, M_c) -> (...)."""
    mask = layout.distinct_mask().numpy()
    d = np.where(mask, c, 0.0)
    d = d / d.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(d > 0, d * np.log(d), 0.0).sum(-1)
    return ent.mean(-1)


def common_mass(c: np.ndarray, layout: SequenceClasses) -> np.ndarray:
    """Attention mass on common tokens, mean over classes: (..., K, M_c) -> (...)."""
    return c[..., layout.common_mask().numpy()].sum(-1).mean(-1)


SCAN_DROP = 0.05
"""A distinct token has *peaked* when c_l|n has an interior maximum and has fallen by at least this
share of it by the horizon (a drop the Fig. 4-style colour scale resolves); fixed before measuring."""
SCAN_TAU = 0.8
"""Kendall tau between P(l|n) and the peak times of the peaked tokens that an ordered scan needs
(fixed before measuring)."""


def model_scan(c: np.ndarray, t: np.ndarray, d_idx: list[np.ndarray], *, drop: float = SCAN_DROP,
               tau: float = SCAN_TAU) -> dict[str, np.ndarray]:
    """The scan as defined before measuring, for attention trajectories c (n_t, e, K, M_c).

    Per (member, class): ``peaks`` the distinct tokens that peaked (interior maximum, then a fall
    of at least ``drop`` of it), ``tau`` Kendall's tau between P(l|n) and the peaked tokens' peak
    times (nan with fewer than 2), ``top_peaked`` whether the most frequent distinct token peaked,
    and ``scans``: at least half the D distinct tokens peaked, tau >= ``tau`` and the top one did
    not.  Arrays (e, K)."""
    from scipy.stats import kendalltau

    e, K = c.shape[1], len(d_idx)
    peaks, taus, top = np.zeros((e, K), dtype=np.int64), np.full((e, K), np.nan), np.zeros((e, K), dtype=bool)
    for i in range(e):
        for n in range(K):
            cc = c[:, i, n, d_idx[n]]  # (n_t, D), P increasing along D
            arg, cmax = cc.argmax(0), cc.max(0)
            fell = (arg > 0) & (arg < len(t) - 1) & (cc[-1] <= (1 - drop) * cmax)  # interior maximum, then a fall
            peaks[i, n], top[i, n] = int(fell.sum()), bool(fell[-1])
            if fell.sum() >= 2:
                taus[i, n] = float(kendalltau(np.nonzero(fell)[0], t[arg[fell]]).statistic)
    D = len(d_idx[0])
    ok = (peaks >= D / 2) & ~top & (np.nan_to_num(taus, nan=-1.0) >= tau)
    return {"peaks": peaks, "tau": taus, "top_peaked": top, "scans": ok}


# ----------------------------------------------------------------------------- predict
def predict(config) -> dict:
    """The theory without training: P(l|n), the initial common mass, t_0, the orthogonal-class snap
    time and the frozen-attention snap time of the layout's overlapping classes (one small decoder
    ODE) for the main members, and B_n(t) for the paper's parameters."""
    layout = config.layout
    P = layout.probabilities().numpy()
    K, M = layout.n_classes, layout.vocab
    eta_main = config.main_eta[0]
    t = np.logspace(-1, 5, 241)
    bn = {label: snap_bound(t, ey, ez, Mv, Kv) for label, Kv, Mv, ey, ez in BN_PARAMETER_SETS}
    return {
        "P": P, "vocab": M, "n_classes": K,
        "initial_common_mass": float(P[0, layout.common_mask().numpy()].sum()),
        "t0_main": snap_time_t0(M, K, eta_main),
        "snap_time_orthogonal_main": snap_time_orthogonal(M, K, eta_main),
        "snap_time_frozen_main": snap_time_frozen(layout, 1.0) / eta_main,
        "bn_t": t, "bn": bn,
    }
