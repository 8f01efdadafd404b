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

A batch is returned as token *counts* per sequence: the attention of Sec. 3 has no positional
encoding, so softmax attention over positions equals a softmax over distinct tokens weighted by
their counts, exactly (`model.forward`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


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

    # -------------------------------------------------------------------------- sampling
    def sample(self, batch_size: int, seq_len: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """One batch from the official generator's distribution, drawn on the CPU.

        Each sequence picks its class uniformly, then T-1 contextual tokens i.i.d. from P(.|n);
        the query token psi(n) is the T-th token.  Returns ``counts`` (B, M_c) float64, the number
        of times each contextual token occurs, and ``classes`` (B,) long.
        """
        classes = torch.randint(self.n_classes, (batch_size,), generator=generator)  # (B,)
        probs = self.probabilities()[classes]  # (B, M_c)
        tokens = torch.multinomial(probs, seq_len - 1, replacement=True, generator=generator)  # (B, T-1)
        counts = torch.zeros(batch_size, self.n_context, dtype=torch.float64)
        counts.scatter_add_(1, tokens, torch.ones_like(tokens, dtype=torch.float64))
        return counts, classes
