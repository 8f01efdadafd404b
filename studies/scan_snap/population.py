"""Exact population gradient descent of the Y/Z model at finite sequence length T
(Tian et al. 2023, Sec. 3: the expected update of Lemma 1 over the data distribution, with no
sampling noise and no T -> infinity limit).

The model sees a sequence only through its token counts (`model.forward`), and the counts of
class n are N ~ Multinomial(T-1, P(.|n)).  The population loss is therefore the finite sum

    L(Y, Z) = (1/K) sum_n sum_N  Mult(N; T-1, P(.|n)) loss(Y, Z; N, n),

over the count vectors (compositions of T-1 over the class's support: C(T+S-2, S-1) of them for
S tokens).  That number explodes with S, so we lump *exchangeable* tokens: tokens whose columns of
P(l|n) are equal (the C common tokens; distinct tokens of equal weight) have identical parameters
for all time when Y(0) = Z(0) = 0 (the population loss is invariant under permuting them, so its
gradient at a symmetric point is symmetric).  With group g of s_g tokens sharing logit a_g and
decoder row Y_g, one sequence enters the loss only through

    N_g = sum_{l in g} N_l   and   Q_g = sum_{l in g} N_l^2 :

    sum_{l in g} v_l = N_g e^{a_g} / W,       ||v||^2 = sum_g Q_g e^{2 a_g} / W^2,
    W = sum_g N_g e^{a_g},                    logits = sum_g (sum_{l in g} v_l) Y_g / ||v||

(Q_g enters through the l2 normalisation: the group total alone is *not* enough).  The law of
(N_g) is Multinomial(T-1, (s_g p_g)_g) and, given N_g, the split inside the group is
Multinomial(N_g, uniform over s_g), whose law of Q_g is a small dynamic programme
(`_square_law`).  `count_states` enumerates the (N_g, Q_g) states with their exact
probabilities.  The reduced loss L(Y_g, a_g) equals L at the symmetric point; its gradient with
respect to a group parameter is the sum of the s_g equal per-token gradients, so a per-token GD
step of rate eta is a group step of rate eta / s_g (`PopulationLoss.token_gradients`).

Tests compare the gradient with brute-force enumeration of every count vector (no lumping) and
with a Monte-Carlo average of Lemma 1's per-sequence gradients.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from workbench.errors import WorkbenchInputError
from workbench.train import train

from studies.scan_snap.data import SequenceClasses
from studies.scan_snap.sgd import TwoRateSGD

MAX_STATES = 4_000_000
"""Largest enumeration accepted (states of all classes together): beyond it, say so before computing."""


# --------------------------------------------------------------------------- token groups
@dataclass(frozen=True)
class TokenGroups:
    """Contextual tokens partitioned into exchangeable groups (equal columns of P(l|n))."""

    group_of_token: np.ndarray
    """(M_c,) int group index of each contextual token."""
    size: np.ndarray
    """(G,) int s_g, tokens per group."""
    P: np.ndarray
    """(K, G) P(l|n) of one token of group g (the same for each of its tokens)."""

    @property
    def n_groups(self) -> int:
        return len(self.size)


def token_groups(layout: SequenceClasses) -> TokenGroups:
    """Group the layout's contextual tokens by their column of P(l|n), in order of first token."""
    P = layout.probabilities().numpy()  # (K, M_c)
    _, first, inverse = np.unique(P.T, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # groups in order of their first token
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[inverse.ravel()]
    size = np.bincount(group)
    return TokenGroups(group, size, P[:, first[order]])


# ------------------------------------------------------------------------- count states
def _square_law(n: int, s: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """For N = 0..n: (values of Q = sum_i N_i^2, their probabilities) when N tokens fall uniformly
    into s cells.  P(N_1..N_s) = N! / (s^N prod N_i!), summed by a DP over the cells."""
    dp: dict[tuple[int, int], float] = {(0, 0): 1.0}
    inv_fact = [math.exp(-math.lgamma(k + 1)) for k in range(n + 1)]
    for _ in range(s):
        new: dict[tuple[int, int], float] = {}
        for (N, Q), w in dp.items():
            for k in range(n - N + 1):
                key = (N + k, Q + k * k)
                new[key] = new.get(key, 0.0) + w * inv_fact[k]
        dp = new
    out = []
    for N in range(n + 1):
        items = sorted((Q, w) for (NN, Q), w in dp.items() if NN == N)
        q = np.array([Q for Q, _ in items], dtype=np.int64)
        p = np.array([w for _, w in items]) * math.exp(math.lgamma(N + 1) - N * math.log(s))
        out.append((q, p))
    return out


def _compositions(n: int, parts: int) -> np.ndarray:
    """Every (N_1..N_parts) of non-negative integers summing to n: (C(n+parts-1, parts-1), parts)."""
    rows = np.zeros((1, 0), dtype=np.int64)
    remaining = np.array([n])
    for _ in range(parts - 1):
        reps = remaining + 1
        k = np.concatenate([np.arange(r) for r in reps])
        rows = np.concatenate([np.repeat(rows, reps, axis=0), k[:, None]], axis=1)
        remaining = np.repeat(remaining, reps) - k
    return np.concatenate([rows, remaining[:, None]], axis=1)


def n_count_vectors(layout: SequenceClasses, seq_len: int) -> int:
    """Count vectors of all classes without lumping: K C(T+S-2, S-1)."""
    S = int(layout.support().shape[1])
    return layout.n_classes * math.comb(seq_len - 1 + S - 1, S - 1)


@dataclass
class CountStates:
    """Every lumped state (N_g, Q_g) of every class with its exact probability."""

    counts: np.ndarray
    """(n_states, G) N_g (0 outside the class's support)."""
    squares: np.ndarray
    """(n_states, G) Q_g = sum of N_l^2 over the group."""
    prob: np.ndarray
    """(n_states,) P(state | class); sums to 1 within each class."""
    classes: np.ndarray
    """(n_states,) int class of each state."""


def n_lumped_states(layout: SequenceClasses, seq_len: int) -> int:
    """The enumeration's size, computed without building it (to refuse a too large one): per class
    the coefficient of x^(T-1) in prod_g (sum_N q_g(N) x^N), q_g(N) the number of values Q_g takes
    given N (1 for a single token)."""
    groups, n = token_groups(layout), seq_len - 1
    total = 0
    for k in range(layout.n_classes):
        G_k = int((groups.P[k] > 0).sum())
        if math.comb(n + G_k - 1, G_k - 1) > MAX_STATES:  # a lower bound already too large: skip the DP
            return layout.n_classes * math.comb(n + G_k - 1, G_k - 1)
        poly = [1] + [0] * n  # Python integers: exact
        for g in np.nonzero(groups.P[k] > 0)[0]:
            s = int(groups.size[g])
            q = [1] * (n + 1) if s == 1 else [len(v) for v, _ in _square_law(n, s)]
            poly = [sum(poly[i] * q[j - i] for i in range(j + 1)) for j in range(n + 1)]
        total += poly[n]
    return total


def count_states(layout: SequenceClasses, seq_len: int) -> CountStates:
    """Enumerate the lumped states of every class (refused above `MAX_STATES`)."""
    if seq_len < 2:
        raise WorkbenchInputError(f"scan-snap population: seq_len must be >= 2, got {seq_len}")
    size = n_lumped_states(layout, seq_len)
    if size > MAX_STATES:
        raise WorkbenchInputError(f"scan-snap population: {size} count states at T={seq_len} for this layout "
                                  f"exceed {MAX_STATES}; use a shorter T or fewer distinct tokens")
    groups, n = token_groups(layout), seq_len - 1
    G = groups.n_groups
    laws = {int(s): _square_law(n, int(s)) for s in set(groups.size.tolist()) if s > 1}
    out_c, out_q, out_p, out_k = [], [], [], []
    for k in range(layout.n_classes):
        sup = np.nonzero(groups.P[k] > 0)[0]
        comp = _compositions(n, len(sup))  # (S_k, |sup|)
        logp = (math.lgamma(n + 1) - np.sum([[math.lgamma(x + 1) for x in row] for row in comp], axis=1)
                + comp @ np.log(groups.size[sup] * groups.P[k, sup]))
        N = np.zeros((len(comp), G), dtype=np.int64)
        N[:, sup] = comp
        Qsq = N ** 2  # singleton groups: Q = N^2
        p = np.exp(logp)
        for g in sup:  # refine each multi-token group by the law of its Q given N
            s = int(groups.size[g])
            if s == 1:
                continue
            law = laws[s]
            reps = np.array([len(law[x][0]) for x in N[:, g]])
            q = np.concatenate([law[x][0] for x in N[:, g]])
            pq = np.concatenate([law[x][1] for x in N[:, g]])
            N, Qsq, p = np.repeat(N, reps, axis=0), np.repeat(Qsq, reps, axis=0), np.repeat(p, reps) * pq
            Qsq[:, g] = q
        out_c.append(N); out_q.append(Qsq); out_p.append(p); out_k.append(np.full(len(p), k))
    return CountStates(np.concatenate(out_c), np.concatenate(out_q), np.concatenate(out_p), np.concatenate(out_k))


# ------------------------------------------------------------------------- the loss
class PopulationLoss:
    """The exact expected loss at finite T on the lumped parameters, batched over members e.

    Reduced parameters: ``Yg`` (e, G, M) the decoder row of each group, ``ag`` (e, Q, G) the logit
    each query gives to each group.  `expand` maps them to the full (e, M, M) Y, Z (zero outside
    the contextual rows and the query rows, as from zero init)."""

    def __init__(self, layout: SequenceClasses, seq_len: int, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu"):
        self.layout, self.seq_len = layout, seq_len
        self.groups = token_groups(layout)
        st = count_states(layout, seq_len)
        self.n_states = len(st.prob)
        dev = torch.device(device)
        self.counts = torch.as_tensor(st.counts, dtype=dtype, device=dev)  # (S, G)
        self.squares = torch.as_tensor(st.squares, dtype=dtype, device=dev)  # (S, G)
        self.weight = torch.as_tensor(st.prob / layout.n_classes, dtype=dtype, device=dev)  # (S,) incl. 1/K
        self.classes = torch.as_tensor(st.classes, device=dev)
        self.query = layout.query_of_class.to(dev)[self.classes]  # (S,) query index of each state
        self.query_onehot = torch.nn.functional.one_hot(self.query, layout.n_queries).to(dtype)  # (S, Q)
        self.labels = torch.as_tensor(layout.next_token(st.classes), device=dev)  # (S,)
        self.size = torch.as_tensor(self.groups.size, dtype=dtype, device=dev)  # (G,)
        self.group_of_token = torch.as_tensor(self.groups.group_of_token, device=dev)  # (M_c,)

    def expected(self, Yg: Tensor, ag: Tensor) -> tuple[Tensor, Tensor]:
        """(expected loss (e,), expected alpha at the true next token (e,))."""
        a = ag[:, self.query, :]  # (e, S, G) logits of each state's query
        w = torch.exp(a - a.amax(-1, keepdim=True))  # (e, S, G)
        Nw = self.counts * w  # (e, S, G)
        norm = torch.sqrt((self.squares * w * w).sum(-1, keepdim=True))  # (e, S, 1) ||v|| W
        u_group = Nw / norm  # (e, S, G): sum_{l in g} u_l (W cancels)
        logits = torch.einsum("esg,egj->esj", u_group, Yg)  # (e, S, M)
        log_norm = torch.logsumexp(logits, -1)  # (e, S)
        true = logits.gather(-1, self.labels.expand(logits.shape[0], -1)[..., None])[..., 0]  # (e, S)
        loss = ((log_norm - true) * self.weight).sum(-1)  # (e,)
        p_correct = (torch.exp(true - log_norm) * self.weight).sum(-1)  # (e,)
        return loss, p_correct

    def group_gradients(self, Yg: Tensor, ag: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(loss, p_correct, dL/dYg, dL/dag): gradients of the reduced loss (sums over each group),
        in closed form (Lemma 1 on the lumped state; `autograd_gradients` is the reference).

        With U_g = sum_{l in g} u_l = N_g w_g / ||.||, r = e_n - alpha, b = Y_g . r and
        V_g = Q_g w_g^2 / ||.||^2 (= sum_{l in g} u_l^2):
        dL/dY_g = -E[U_g r],  dL/da_g = -E[U_g b_g - V_g sum_g' U_g' b_g'] on the state's query row."""
        a = ag[:, self.query, :]  # (e, S, G)
        w = torch.exp(a - a.amax(-1, keepdim=True))  # (e, S, G)
        w2 = self.squares * w * w  # (e, S, G)
        norm2 = w2.sum(-1, keepdim=True)  # (e, S, 1)
        U = self.counts * w / torch.sqrt(norm2)  # (e, S, G)
        logits = torch.einsum("esg,egj->esj", U, Yg)  # (e, S, M)
        log_norm = torch.logsumexp(logits, -1, keepdim=True)  # (e, S, 1)
        alpha = torch.exp(logits - log_norm)  # (e, S, M)
        labels = self.labels.expand(logits.shape[0], -1)[..., None]  # (e, S, 1)
        true = logits.gather(-1, labels)[..., 0]  # (e, S)
        loss = ((log_norm[..., 0] - true) * self.weight).sum(-1)  # (e,)
        p_correct = (alpha.gather(-1, labels)[..., 0] * self.weight).sum(-1)  # (e,)
        r = (-alpha).scatter_add(-1, labels, torch.ones_like(true)[..., None])  # (e, S, M): e_n - alpha
        Uw = U * self.weight[:, None]  # (e, S, G)
        gY = -torch.einsum("esg,esj->egj", Uw, r)  # (e, G, M)
        b = torch.einsum("egj,esj->esg", Yg, r)  # (e, S, G): Y_g . (e_n - alpha)
        V = w2 / norm2  # (e, S, G)
        per_state = Uw * b - V * self.weight[:, None] * (U * b).sum(-1, keepdim=True)  # (e, S, G)
        ga = -torch.einsum("sq,esg->eqg", self.query_onehot, per_state)  # (e, Q, G)
        return loss, p_correct, gY, ga

    def autograd_gradients(self, Yg: Tensor, ag: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """`group_gradients` by autograd through `expected` (the reference the tests compare with)."""
        with torch.enable_grad():
            Yr, ar = Yg.detach().requires_grad_(True), ag.detach().requires_grad_(True)
            loss, pc = self.expected(Yr, ar)
            gY, ga = torch.autograd.grad(loss.sum(), [Yr, ar])
        return loss.detach(), pc.detach(), gY, ga

    def token_gradients(self, Yg: Tensor, ag: Tensor) -> tuple[Tensor, Tensor]:
        """The per-token population gradients of the full (e, M, M) Y and Z at the symmetric point."""
        _, _, gY, ga = self.group_gradients(Yg, ag)
        return self.expand(gY / self.size[:, None], ga / self.size)

    def expand(self, Yg: Tensor, ag: Tensor) -> tuple[Tensor, Tensor]:
        """Reduced (e, G, M), (e, Q, G) -> full Y, Z (e, M, M)."""
        lay = self.layout
        Mc, Q, M = lay.n_context, lay.n_queries, lay.vocab
        e = Yg.shape[0]
        Y = torch.zeros(e, M, M, dtype=Yg.dtype, device=Yg.device)
        Z = torch.zeros_like(Y)
        Y[:, :Mc] = Yg[:, self.group_of_token]
        Z[:, Mc:Mc + Q, :Mc] = ag[:, :, self.group_of_token]
        return Y, Z


# ------------------------------------------------------------------------- the trainer
def train_population_gd(layout: SequenceClasses, seq_len: int, *, eta_y: Tensor, eta_z: Tensor, steps: int,
                        observe_at: np.ndarray, dtype: torch.dtype = torch.float64,
                        device: torch.device | str = "cpu", progress: bool = False,
                        desc: str = "population") -> dict[str, np.ndarray]:
    """Plain GD on the exact population loss from Y = Z = 0, every member (eta_Y, eta_Z) (e,) at once.

    Returns numpy arrays at the observed steps (n_t,): ``steps``, ``loss``, ``p_correct`` (n_t, e),
    ``z`` (n_t, e, Q, M_c) the query rows of Z (expanded to every token), and ``n_states``."""
    pop = PopulationLoss(layout, seq_len, dtype=dtype, device=device)
    e, G, M, Q = len(eta_y), pop.groups.n_groups, layout.vocab, layout.n_queries
    # "Z" holds the group logits a_g (e, Q, G); TwoRateSGD with momentum 0 is plain GD per rate
    params = {"Y": torch.zeros(e, G, M, dtype=dtype, device=device), "Z": torch.zeros(e, Q, G, dtype=dtype, device=device)}
    pcs: dict[int, Tensor] = {}

    def loss_fn(p, step):
        loss, pc, gY, ga = pop.group_gradients(p["Y"], p["Z"])
        pcs[step] = pc.detach()
        # a per-token step of rate eta is a group step of rate eta / s_g
        return loss, {"Y": gY / pop.size[:, None], "Z": ga / pop.size}

    opt = TwoRateSGD(eta_y.to(device=device, dtype=dtype), eta_z.to(device=device, dtype=dtype))
    result = train(params, loss_fn, opt, steps, observers={"a": lambda p: p["Z"]},
                   observe_at=observe_at, underflow="ignore", progress=progress, desc=desc)
    a = result.trajectory["a"]  # (n_t, e, Q, G)
    z = a[..., pop.group_of_token]  # (n_t, e, Q, M_c)
    return {"steps": result.steps, "loss": result.trajectory["loss"].cpu().numpy(),
            "p_correct": torch.stack([pcs[int(s)] for s in result.steps]).cpu().numpy(),
            "z": z.cpu().numpy(), "n_states": np.asarray(pop.n_states)}
