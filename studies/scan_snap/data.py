"""The sequence-class data model of Scan and Snap (Tian et al. 2023, Sec. 3.2), laid out as the
official ``Dataset2`` generator does it.

A *sequence class* n is a triple (P(l|n), m = psi(n), n): the contextual tokens x_1..x_{T-1} are
drawn i.i.d. from P(.|n), the last (query) token is m = psi(n) and the token to predict is n.
A contextual token l is *distinct* when only one class uses it (|Omega(l)| = 1) and *common*
otherwise.

Token ids (the order of ``Dataset2``; M tokens in all, and the decoder's softmax runs over all M):

    [0, C)                      common tokens, P-weight 1 in every class
    [C + n D, C + (n+1) D)      the D distinct tokens of class n, weights linspace(0.1, 1, D)
    [C + K D, C + K D + Q)      the Q query tokens
    [C + K D + Q, M)            the K next tokens (the labels), class n has next token C+KD+Q+n

with K = Q * next_per_query classes, class n using query n // next_per_query.  Syn-Small
(Fig. 4) is C=10, Q=2, one next token per query, D=10 (M = 34); Syn-Medium (Fig. 6) is Q in
{1, 3, 5, 10} with two next tokens per query.

A batch is drawn as token *counts* per sequence (`CountSampler`): the attention of Sec. 3 has no
positional encoding, so softmax attention over positions equals a softmax over distinct tokens
weighted by their counts, exactly (`model.forward`), and the counts are drawn directly from
their multinomial law.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.errors import WorkbenchInputError
from workbench.streams import Stream


@dataclass(frozen=True)
class SequenceClasses:
    """The layout of tokens and the class-conditional distributions P(l|n)."""

    n_common: int
    """C: global common tokens (weight 1 in every class)."""
    n_queries: int
    """Q: query (last) tokens."""
    next_per_query: int
    """Next tokens (classes) sharing each query token."""
    n_distinct: int
    """D: distinct tokens per class, weights linspace(0.1, 1, D) before normalisation."""

    # ----------------------------------------------------------------------- sizes and ids
    @property
    def n_classes(self) -> int:
        """K, the number of sequence classes (= next tokens)."""
        return self.n_queries * self.next_per_query

    @property
    def n_context(self) -> int:
        """M_c = C + K D, the contextual tokens (ids 0..M_c-1)."""
        return self.n_common + self.n_classes * self.n_distinct

    @property
    def vocab(self) -> int:
        """M, the vocabulary; the decoder's softmax runs over all M outputs."""
        return self.n_context + self.n_queries + self.n_classes

    @property
    def query_of_class(self) -> Tensor:
        """psi as query indices 0..Q-1, shape (K,)."""
        return torch.arange(self.n_classes) // self.next_per_query

    def query_token(self, q: Tensor | int) -> Tensor | int:
        return self.n_context + q

    def next_token(self, n: Tensor | int) -> Tensor | int:
        return self.n_context + self.n_queries + n

    def distinct_tokens(self, n: int) -> Tensor:
        start = self.n_common + n * self.n_distinct
        return torch.arange(start, start + self.n_distinct)

    # --------------------------------------------------------------------- distributions
    def weights(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """Unnormalised P-weights over contextual tokens, shape (K, M_c)."""
        K, C, D = self.n_classes, self.n_common, self.n_distinct
        w = torch.zeros(K, self.n_context, dtype=dtype)
        w[:, :C] = 1.0
        ramp = torch.linspace(0.1, 1.0, D, dtype=dtype)
        for n in range(K):
            w[n, C + n * D: C + (n + 1) * D] = ramp
        return w

    def probabilities(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """P(l|n) over contextual tokens, shape (K, M_c); rows sum to 1."""
        w = self.weights(dtype)
        return w / w.sum(dim=1, keepdim=True)

    def common_mask(self) -> Tensor:
        """(M_c,) bool: tokens used by more than one class."""
        return (self.weights() > 0).sum(dim=0) > 1

    def distinct_mask(self) -> Tensor:
        """(K, M_c) bool: the distinct tokens of each class."""
        return (self.weights() > 0) & ~self.common_mask()[None, :]

    def support(self) -> Tensor:
        """(K, S) long: the contextual tokens of positive P(l|n) of each class, in id order
        (S = C + D for every class of these layouts)."""
        w = self.weights()
        S = int((w > 0).sum(1).max())
        return torch.sort(torch.where(w > 0, torch.arange(self.n_context), self.n_context + torch.arange(self.n_context)),
                          dim=1).values[:, :S]


# ------------------------------------------------------------------------------ sampling
def _binomial_cdfs(p: Tensor, n: int, width: int) -> Tensor:
    """F[j, r, x] = P(Binomial(r, p_j) <= x) for r in 0..n, x in 0..width-1 (float64, (J, n+1, width),
    exactly 1 for x >= r; width >= n+1 pads each row so that the search never leaves it).

    The pmf from log-gamma, summed along x by torch.cumsum on the CPU (a fixed order, so the table
    has the same bits on every run and, moved to a device, everywhere)."""
    r = torch.arange(n + 1, dtype=torch.float64)[:, None]
    x = torch.arange(width, dtype=torch.float64)[None, :]
    lp, lq = p.log()[:, None, None], torch.log1p(-p)[:, None, None]
    log_binom = torch.lgamma(r + 1) - torch.lgamma(x + 1) - torch.lgamma((r - x).clamp(min=0) + 1)
    pmf = torch.where(x <= r, torch.exp(log_binom + x * lp + (r - x) * lq), torch.zeros(()))
    # exactly 1 from x = r on (the binary search relies on F > u there)
    return torch.where(x >= r, torch.ones(()), pmf.cumsum(-1).clamp(max=1.0))


class CountSampler:
    """Exact draws of a batch's classes and token counts from a `workbench.streams.Stream`.

    The model has no positional encoding, so a sequence enters it only through its token counts
    (`model.forward`, tested against the per-position softmax), and the counts of T-1 i.i.d.
    tokens from P(.|n) are Multinomial(T-1, P(.|n)).  We draw that multinomial as the chain of
    conditional binomials over the S tokens of the class's support (l_1..l_S in id order):

        N_{l_j} | N_{l_1..l_{j-1}} ~ Binomial(r_j, q_j / (q_j + ... + q_S)),  r_j = T-1 - sum_{i<j} N_{l_i},

    and N_{l_S} = r_S, each binomial by inverse CDF of one float64 uniform in a precomputed table
    (a vectorised binary search, ceil(log2 T) gathers).  This is the multinomial distribution
    exactly (the chain rule of probability; the only approximation is the float64 rounding of the
    CDF table, as in ``Stream.categorical``), and it costs S - 1 uniforms per sequence instead of
    the T - 1 of drawing the tokens (Syn-Small: 19 against 127).  The class is
    ``Stream.integers(0, K)``.

    Sub-streams: ``stream.child("class")`` and ``stream.child("counts")``, keyed by (member, step),
    so member i's batches are the same in any ensemble and step t's never depend on other steps.
    """

    def __init__(self, layout: SequenceClasses, seq_len: int, device: torch.device | str = "cpu"):
        if seq_len < 2:
            raise WorkbenchInputError(f"seq_len must be >= 2 (one contextual token and the query), got {seq_len}")
        self.layout, self.n = layout, seq_len - 1
        self.device = torch.device(device)
        P = layout.probabilities()
        sizes = (P > 0).sum(1)
        if bool((sizes != sizes[0]).any()):
            raise WorkbenchInputError(f"CountSampler needs classes with supports of one size, got {sizes.tolist()}")
        sup = layout.support()  # (K, S)
        q = P.gather(1, sup)  # (K, S)
        tail = q.flip(1).cumsum(1).flip(1)  # q_j + ... + q_S
        cond = (q[:, :-1] / tail[:, :-1]).clamp(max=1.0)  # (K, S-1)
        # classes whose conditional probabilities coincide share one table (all of them here)
        uniq, self._table_of_class = torch.unique(cond, dim=0, return_inverse=True)
        n = self.n
        bits = max(1, math.ceil(math.log2(n + 1)))
        self._steps = [1 << k for k in reversed(range(bits))]  # sum 2**bits - 1 >= n
        width = 1 << bits  # the search reads x <= 2**bits - 2: pad the rows to 2**bits
        tables = torch.stack([_binomial_cdfs(c, n, width) for c in uniq])  # (U, S-1, n+1, width)
        self._table = tables.reshape(-1).to(self.device)
        self._width = width
        self._stride = (uniq.shape[1] * (n + 1) * width, (n + 1) * width, width)
        self._support = sup.to(self.device)
        self._table_of_class = self._table_of_class.to(self.device)

    CHUNK = 1 << 12
    """Sequences searched per pass: the working set stays in cache (3x faster than one pass on the CPU)."""

    def counts_of(self, classes: Tensor, u: Tensor) -> Tensor:
        """Counts (..., M_c) float64 for classes (...) long and uniforms u (..., S-1) in [0, 1)."""
        S = self._support.shape[1]
        flat_k, flat_u = classes.reshape(-1), u.reshape(-1, S - 1)
        counts_sup = torch.empty(flat_k.shape[0], S, dtype=torch.int64, device=classes.device)
        for i in range(0, flat_k.shape[0], self.CHUNK):
            counts_sup[i:i + self.CHUNK] = self._search(flat_k[i:i + self.CHUNK], flat_u[i:i + self.CHUNK].T.contiguous())
        counts = torch.zeros(flat_k.shape[0], self.layout.n_context, dtype=torch.float64, device=classes.device)
        counts.scatter_(-1, self._support[flat_k], counts_sup.to(torch.float64))
        return counts.reshape(*classes.shape, self.layout.n_context)

    def _search(self, classes: Tensor, u: Tensor) -> Tensor:
        """Support counts (N, S) for classes (N,) and uniforms u (S-1, N)."""
        su, sj, sr = self._stride
        base = self._table_of_class[classes] * su  # (N,)
        remaining = torch.full(classes.shape, self.n, dtype=torch.int64, device=classes.device)
        parts = []
        for j in range(u.shape[0]):
            # x = #{x' < r: F[j, r, x'] <= u} by a branchless binary search on the pointer
            # a = (flat index of F[j, r, 0]) + x - 1; F[j, r, x'] = 1 > u for x' >= r, so no bound test
            start = base + (j * sj - 1) + remaining * sr
            a = start.clone()
            for step in self._steps:  # index_select: the fastest gather on the CPU
                a.add_(self._table.index_select(0, a + step) <= u[j], alpha=step)
            x = a.sub_(start)
            parts.append(x)
            remaining = remaining - x
        parts.append(remaining)
        return torch.stack(parts, -1)

    def draw(self, stream: Stream, batch_size: int, members, steps) -> tuple[Tensor, Tensor]:
        """(counts (E, n_steps, B, M_c) float64, classes (E, n_steps, B) long) on the sampler's device
        for the member keys ``members`` and the steps ``steps`` (``Stream`` conventions)."""
        K, S = self.layout.n_classes, self._support.shape[1]
        classes = stream.child("class").integers(0, K, (batch_size,), members=members, step=steps, device=self.device)
        u = stream.child("counts").uniform((batch_size, S - 1), members=members, step=steps, device=self.device)
        return self.counts_of(classes, u), classes
