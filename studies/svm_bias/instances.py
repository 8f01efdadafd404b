"""Instance generators for the SVM implicit-bias study.

An *instance* is one classification problem for the one-layer attention model of
`studies.svm_bias.model`:  n sequences X_i (T tokens x_it in R^d), a query token z_i in R^d, a
label Y_i in {+1, -1} and the fixed head v in R^d.  Every generator returns an ensemble of
instances (leading axis e) drawn from a `workbench.streams.Stream` in one call per array for the
whole ensemble, member i from the stream's integer child i only, so member i of a batch equals the
instance drawn alone (``members=[i]``) and member i of a larger ensemble, bit for bit (tested in
``tests/test_svm_bias.py``).

Kinds (the ``instance`` field of the config):

``random``         the ``local_converge`` set-up of the official TF-SVM code: tokens, z_i and v are
                   Gaussian vectors rescaled to unit norm, Y_i = +-1 with probability 1/2.  Draws
                   whose best and second-best token scores gamma_it = Y_i v^T x_it differ by less
                   than ``min_gap`` in some sequence are redrawn (ties break the uniqueness of opt):
                   attempt k of every member comes from the child ``("try", k)`` of the stream, so a
                   redraw never depends on the other members.
``self_attention`` the ``random`` instances with z_i = x_i1: the query is the first token of its
                   own sequence (self-attention rather than cross-attention).
``equal_scores``   MMTS's "global" construction: v = e_d, the last coordinate of x_it is
                   Y_i * 1 for the optimal token and Y_i * 0.5 for every other token, so
                   gamma_iopt = 1 and every non-optimal token scores 0.5; the first d - 1
                   coordinates are unit Gaussian directions; the queries z_i are orthonormal
                   (needs n <= d; random unit queries on request, see `equal_scores_instance`).
``toy``            the two-sequence toy of spec section 6 at angle phi (d = n = T = 2, Y = +1):
                   sequence 1 has tokens (e_1, 0) and query e_1, sequence 2 has tokens (u, 0) and
                   query u = (cos phi, sin phi); the head is v = w = (cos phi/2, sin phi/2).
``mmts_single``    the single-input example of MMTS (Tarzanagh et al. 2023a, Sec. "single input"):
                   keys (-0.1, 1), (1, 0), (0, 0) with value scores (1, 0.9, 0).  The scores are
                   linear in the keys, gamma = v^T x with v = (0.9, 1.09), so the example is our model
                   with n = 1, T = 3, d = 2 and the query z = e_1; the trained prompt p of MMTS is
                   the first column W z = W e_1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor

from workbench.streams import Stream

from studies.svm_bias.model import token_scores

INSTANCE_KINDS = ("random", "self_attention", "equal_scores", "toy", "mmts_single")


@dataclass
class Instance:
    """An ensemble of instances; all tensors carry the ensemble axis e first."""

    X: Tensor
    """(e, n, T, d) tokens x_it."""
    Z: Tensor
    """(e, n, d) query tokens z_i."""
    Y: Tensor
    """(e, n) labels in {+1, -1}."""
    v: Tensor
    """(e, d) the fixed linear head."""

    @property
    def gamma(self) -> Tensor:
        """(e, n, T) token scores gamma_it = Y_i v^T x_it."""
        return token_scores(self.X, self.Y, self.v)

    @property
    def opt(self) -> Tensor:
        """(e, n) index of the optimal token of each sequence, argmax_t gamma_it."""
        return self.gamma.argmax(dim=-1)

    def member(self, i: int) -> "Instance":
        return Instance(self.X[i:i + 1], self.Z[i:i + 1], self.Y[i:i + 1], self.v[i:i + 1])

    def to(self, device=None, dtype=None) -> "Instance":
        f = lambda t: t.to(device=device, dtype=dtype if t.is_floating_point() else None)
        return Instance(f(self.X), f(self.Z), f(self.Y), f(self.v))


def _unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def score_gap(X: Tensor, Y: Tensor, v: Tensor) -> Tensor:
    """Per instance, min over sequences of (best - second best) token score: (e, n, T, d) -> (e,)."""
    top2 = token_scores(X, Y, v).topk(2, dim=-1).values
    return (top2[..., 0] - top2[..., 1]).amin(dim=-1)


def member_indices(members: int | Sequence[int]) -> list[int]:
    """Members 0..M-1 for an int M, else the given member indices."""
    if isinstance(members, int):
        return list(range(members))
    return [int(i) for i in members]


def random_instance(stream: Stream, members: int | Sequence[int], n: int, T: int, d: int, *,
                    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64,
                    min_gap: float = 1e-3, max_tries: int = 1000) -> Instance:
    """``local_converge`` instances: unit Gaussian tokens, queries and head; random labels.

    Member i's attempt k reads ``stream.child("try", k)`` at member i: X ("X"), Z ("Z"), v ("v")
    and the labels ("Y"); the members whose attempt k has a score gap below ``min_gap`` (some
    sequence with a near tie) are redrawn together at attempt k + 1."""
    idx = member_indices(members)
    e = len(idx)
    X = torch.empty((e, n, T, d), dtype=dtype, device=device)
    Z = torch.empty((e, n, d), dtype=dtype, device=device)
    v = torch.empty((e, d), dtype=dtype, device=device)
    Y = torch.empty((e, n), dtype=dtype, device=device)
    pending = torch.arange(e, device=device)
    for k in range(max_tries):
        s = stream.child("try", k)
        who = [idx[j] for j in pending.tolist()]
        draw = dict(members=who, device=device, dtype=dtype)
        Xk = _unit(s.child("X").normal((n, T, d), **draw))                             # (p, n, T, d)
        Zk = _unit(s.child("Z").normal((n, d), **draw))                                # (p, n, d)
        vk = _unit(s.child("v").normal((d,), **draw))                                  # (p, d)
        Yk = s.child("Y").integers(0, 2, (n,), members=who, device=device).to(dtype) * 2 - 1   # (p, n)
        ok = score_gap(Xk, Yk, vk) >= min_gap if T > 1 else torch.ones(len(who), dtype=torch.bool, device=device)
        take = pending[ok]
        X[take], Z[take], v[take], Y[take] = Xk[ok], Zk[ok], vk[ok], Yk[ok]
        pending = pending[~ok]
        if pending.numel() == 0:
            return Instance(X, Z, Y, v)
    raise RuntimeError(f"no instance with score gap >= {min_gap} in {max_tries} draws")  # pragma: no cover


def self_attention_instance(stream: Stream, members: int | Sequence[int], n: int, T: int, d: int, *,
                            device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64,
                            min_gap: float = 1e-3) -> Instance:
    """Self-attention: the ``random`` instances with the query of sequence i its own first token,
    z_i = x_i1, so the scores are x_it^T W x_i1 and token 1 is also a key (TF-SVM's self-attention
    setting, where the query is a token of the sequence)."""
    inst = random_instance(stream, members, n, T, d, device=device, dtype=dtype, min_gap=min_gap)
    return Instance(inst.X, inst.X[:, :, 0].clone(), inst.Y, inst.v)


def equal_scores_instance(stream: Stream, members: int | Sequence[int], n: int, T: int, d: int, *,
                          queries: Literal["orthonormal", "random"] = "orthonormal",
                          device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> Instance:
    """MMTS "global" instances: gamma_iopt = 1 and gamma_it = 0.5 for every other token.

    ``queries='orthonormal'`` (needs n <= d) takes z_1..z_n orthonormal (QR of a Gaussian d x n),
    so W z_i are n decoupled prompts and each sequence is MMTS's single-input problem; ``'random'``
    draws unit Gaussian queries, which couple the sequences through W (and allow the free-rider
    limits described in the book chapter).  Both kinds share the features, labels and optimal
    tokens of a member (children "feats", "Y", "opt")."""
    if d < 2:
        raise ValueError("equal_scores instances need d >= 2 (one coordinate carries the score)")
    if queries == "orthonormal" and n > d:
        raise ValueError(f"orthonormal queries need n <= d, got n={n}, d={d}")
    idx = member_indices(members)
    e = len(idx)
    draw = dict(members=idx, device=device, dtype=dtype)
    feats = _unit(stream.child("feats").normal((n, T, d - 1), **draw))              # (e, n, T, d-1)
    if queries == "orthonormal":
        Qz, _ = torch.linalg.qr(stream.child("Zq").normal((d, n), **draw))             # (e, d, n) orthonormal columns
        Z = Qz.transpose(-1, -2).contiguous()                                       # (e, n, d)
    else:
        Z = _unit(stream.child("Zr").normal((n, d), **draw))                          # (e, n, d)
    Y = stream.child("Y").integers(0, 2, (n,), members=idx, device=device).to(dtype) * 2 - 1   # (e, n)
    opt = stream.child("opt").integers(0, T, (n,), members=idx, device=device)     # (e, n)
    score = torch.full((e, n, T), 0.5, dtype=dtype, device=device)
    score.scatter_(-1, opt[..., None], 1.0)
    X = torch.cat([feats, (Y[..., None] * score)[..., None]], dim=-1)              # (e, n, T, d)
    v = torch.zeros((e, d), dtype=dtype, device=device)
    v[:, -1] = 1.0
    return Instance(X, Z, Y, v)


def toy_instance(angle_deg: float, e: int = 1, *, dtype: torch.dtype = torch.float64) -> Instance:
    """The two-sequence toy of spec section 6 (d = n = T = 2), replicated e times."""
    phi = math.radians(angle_deg)
    e1 = torch.tensor([1.0, 0.0], dtype=dtype)
    u = torch.tensor([math.cos(phi), math.sin(phi)], dtype=dtype)
    w = torch.tensor([math.cos(phi / 2), math.sin(phi / 2)], dtype=dtype)
    zero = torch.zeros(2, dtype=dtype)
    X = torch.stack([torch.stack([e1, zero]), torch.stack([u, zero])])          # (n=2, T=2, d=2)
    Z = torch.stack([e1, u])                                                     # (2, 2)
    Y = torch.ones(2, dtype=dtype)
    return Instance(X.expand(e, -1, -1, -1).clone(), Z.expand(e, -1, -1).clone(), Y.expand(e, -1).clone(),
                    w.expand(e, -1).clone())


MMTS_KEYS = ((-0.1, 1.0), (1.0, 0.0), (0.0, 0.0))
"""Keys of the MMTS single-input example."""
MMTS_HEAD = (0.9, 1.09)
"""v with v^T key = value score: (1, 0.9, 0) for the three keys."""


def mmts_single_instance(e: int = 1, *, dtype: torch.dtype = torch.float64) -> Instance:
    """The MMTS single-input example as our model: n = 1, T = 3, d = 2, z = e_1, Y = +1."""
    X = torch.tensor([MMTS_KEYS], dtype=dtype)                                   # (n=1, T=3, d=2)
    Z = torch.tensor([[1.0, 0.0]], dtype=dtype)                                  # (1, 2)
    Y = torch.ones(1, dtype=dtype)
    v = torch.tensor(MMTS_HEAD, dtype=dtype)
    return Instance(X.expand(e, -1, -1, -1).clone(), Z.expand(e, -1, -1).clone(), Y.expand(e, -1).clone(),
                    v.expand(e, -1).clone())


def make_instance(kind: str, stream: Stream, members: int | Sequence[int], *, n: int, T: int, d: int,
                  angle_deg: float = 60.0, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float64) -> Instance:
    """Dispatch on ``kind``; the toy and MMTS examples ignore n, T, d and the stream."""
    e = len(member_indices(members))
    if kind == "random":
        return random_instance(stream, members, n, T, d, device=device, dtype=dtype)
    if kind == "self_attention":
        return self_attention_instance(stream, members, n, T, d, device=device, dtype=dtype)
    if kind == "equal_scores":
        return equal_scores_instance(stream, members, n, T, d, device=device, dtype=dtype)
    if kind == "toy":
        return toy_instance(angle_deg, e, dtype=dtype).to(device=device)
    if kind == "mmts_single":
        return mmts_single_instance(e, dtype=dtype).to(device=device)
    raise ValueError(f"unknown instance kind {kind!r}; choose one of {INSTANCE_KINDS}")


def instance_dims(kind: str, n: int, T: int, d: int) -> tuple[int, int, int]:
    """(n, T, d) that ``make_instance`` produces for ``kind``."""
    return {"toy": (2, 2, 2), "mmts_single": (1, 3, 2)}.get(kind, (n, T, d))

