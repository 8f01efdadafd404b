"""One API for every random draw: named, stateless streams of Philox4x32-10 on the run's device.

Every random number in the workbench comes from a `Stream`, a *name* rather than a state: the
same name and shape always give the same numbers, in any batch and on any machine (normals: to a
few ulps between CPU and CUDA).

Generator
    Philox4x32-10 (Salmon, Moraes, Dror & Shaw 2011, "Parallel random numbers: as easy as 1, 2,
    3", SC11; the Random123 library; the bijection of cuRAND's ``Philox4_32_10`` and of
    ``randomgen.Philox(number=4, width=32)``; ``numpy.random.Philox`` is its 4x64 sibling).  It
    maps a 128-bit counter (four 32-bit words c0..c3) under a 64-bit key (k0, k1) to four 32-bit
    output words.  It is computed here with int64 torch operations only (and, or, xor, shifts,
    add, multiply), so it runs wherever torch runs, CPU or CUDA, and gives the same bits
    everywhere.  The 32x32 -> 64-bit products of the rounds rely on int64 multiplication wrapping
    modulo 2**64 (`_mulhilo`; 1.6-2.7x faster than halving the multiplier to stay below 2**63,
    the scheme before 2026-12-01, which gives the same bits).  `philox4x32` is the bare bijection; the tests check it against the published
    known-answer vectors and against an independent implementation.

Naming (keys are hashed, never added)
    A stream's identity is 128 bits, the four words (k0, k1, c2, c3): the Philox key and the two
    high counter words.  ``Stream(seed, experiment, *keys)`` is ``Stream(seed, experiment)``
    followed by ``.child(key)`` for each key in turn, and

    - the root identity is the first 16 bytes (four little-endian uint32) of
      SHA-256(b"workbench.streams/v1\\0root\\0" + seed as 8 little-endian bytes + experiment in
      UTF-8), with 0 <= seed < 2**64;
    - ``child(s)`` for a string is SHA-256(b"workbench.streams/v1\\0str\\0" + parent's 16 bytes +
      s in UTF-8), first 16 bytes;
    - ``child(i)`` for an integer 0 <= i < 2**63 is the Philox block of the parent with counter
      (i mod 2**32, (i >> 32) | 2**31, c2, c3) under key (k0, k1).

    Philox is a bijection of the counter for a fixed key, so the integer children of one stream
    (members 0..M-1, steps 0..T-1) never share an identity; the top bit set in c1 keeps those
    derivation blocks apart from every block the parent itself draws (whose c1 < 2**31).  Any
    other two names share an identity only if SHA-256 or Philox collide on 128 bits
    (probability ~ n**2 / 2**129 for n streams).  Integer children are derived with tensor
    operations too, so a whole ensemble's (member, step) streams are derived in one call, on
    the device, bit-identical to ``child(i, t)`` one at a time.

Counter layout and how draws use the words
    Block j (0 <= j < 2**63) of a stream is Philox(counter=(j mod 2**32, j >> 32, c2, c3),
    key=(k0, k1)); the stream's 32-bit words are w[4j + l] = word l of block j, and its 64-bit
    *units* are U[i] = w[2i] * 2**32 + w[2i+1].  Every draw of ``n`` values reads the units from
    the start, so a draw is a function of (stream, flat index) alone and a larger draw extends a
    smaller one:

    - ``uniform`` float64: u[i] = (U[i] >> 11) * 2**-53, on the grid k 2**-53 of [0, 1) (0 can
      occur, 1 cannot); float32: (U[i] >> 40) * 2**-24 in [0, 1), the float64 value truncated to
      24 bits.
    - ``normal``: Box-Muller of consecutive float64 uniforms, for each pair p
      z[2p] = r cos(2 pi u[2p+1]), z[2p+1] = r sin(2 pi u[2p+1]), r = sqrt(-2 log(1 - u[2p])).
      1 - u[2p] is exact and lies in (0, 1], so log(0) never happens; |z| <= sqrt(106 log 2)
      ~ 8.57.  Computed in float64 and rounded to the requested dtype.
    - ``integers(low, high)``: low + floor(U[i] * r / 2**64), r = high - low <= 2**32 (multiply-
      shift without rejection).  Each value gets floor(2**64 / r) or ceil(2**64 / r) of the 2**64
      units, so its probability is 1/r to a relative 2**-32 at worst (exact for r a power of 2).
    - ``categorical(probs)``: inverse CDF of u[i]: the number of cumulative sums
      P_k = p_0 + ... + p_k (k < K-1) with P_k <= u[i], capped at the last category of positive
      probability (the rounding deficit of the sum goes there, never to a zero-probability one).
      The sums are taken in float64 in a fixed order (a log-depth scan), so they round alike on
      every device and in every batch.
    - ``multinomial(n, probs, shape)``: the category counts of ``categorical(probs, (*shape, n))``
      along its last axis (exact; costs n uniforms per count vector).

Members and steps
    Each draw takes ``members`` (M: members 0..M-1, or a sequence of member indices) and ``step``
    (an int, or a sequence of steps for an axis of steps); the result has the leading axes
    (member, step) in that order, and entry [i, j] is exactly ``s.child(members[i],
    steps[j]).<draw>(shape)``: member i of a batch is bit-identical to member i alone, and step t
    drawn alone is bit-identical to step t inside a batch of steps (drawing step t never depends
    on having drawn steps < t).  Batch and step axes are pure tensor operations: no Python loop
    over members or steps.

What is bit-identical where
    Words, integer, uniform, categorical and multinomial draws: everywhere (any device, batch,
    thread count), given the same ``probs``.  Normal draws: bit-identical within one device and
    torch build (any batch or thread count); CPU and CUDA agree to a few ulps, because `log`,
    `cos` and `sin` round differently in each library (`NORMAL_ULPS_ACROSS_DEVICES`).  No op used
    lacks a CUDA kernel or is refused by ``torch.use_deterministic_algorithms(True)``.

A stream is stateless: two draws from the same stream and step return the same numbers.  Give
every purpose its own name (``s.child("init")``, ``s.child("batch")``) rather than reusing one.

Usage in a study::

    s = Stream(cfg.seed, "icl-regression")                 # one root per experiment
    W0 = s.child("init").normal((d, d), members=M, device=cfg.device)    # (M, d, d)
    for t in range(cfg.steps):
        X = s.child("x").normal((B, n, d), members=M, step=t, device=cfg.device)  # (M, B, n, d)
        # X[i] == s.child("x").child(i, t).normal((B, n, d)): member i alone, bit for bit

    # all steps at once (no dependence on order): (M, T, B, n, d)
    X_all = s.child("x").normal((B, n, d), members=M, step=range(T), device=cfg.device)
"""
from __future__ import annotations

import hashlib
import math
import numbers
import struct
import time
from collections.abc import Sequence

import torch
from torch import Tensor

from workbench.errors import WorkbenchInputError

__all__ = ["NORMAL_ULPS_ACROSS_DEVICES", "Stream", "bench_streams", "philox4x32"]

MASK32 = 0xFFFFFFFF
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57   # round multipliers (Salmon et al. 2011, Table 2)
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85   # Weyl key increments: golden ratio, sqrt(3) - 1
PHILOX_ROUNDS = 10
DERIVE_BIT = 1 << 31                              # set in c1 of child-derivation blocks only
MAX_KEY = 1 << 63                                 # integer keys and block indices are below this
NORMAL_ULPS_ACROSS_DEVICES = 16
"""CPU and CUDA normals agree to this many ulps of the value (a bound stated with margin: each of
log, sqrt, cos/sin contributes <= 2 ulps on either device; not yet measured on a GPU)."""
_DOMAIN = b"workbench.streams/v1\x00"
_CHUNK = {"cpu": 1 << 15, "other": 1 << 22}      # Philox blocks per tensor op (CPU: stay in cache)

KeyLike = int | str
IndexLike = int | Sequence[int] | Tensor | range


# ----------------------------------------------------------------------------------------------
# The bijection
# ----------------------------------------------------------------------------------------------

def _mulhilo(m: int, b: Tensor) -> tuple[Tensor, Tensor]:
    """(hi, lo) 32-bit words of m * b, for a constant 0 < m < 2**32 and int64 b in [0, 2**32).

    The product is below 2**64, so its int64 value is m b or m b - 2**64: torch's integer
    multiply wraps modulo 2**64 (two's complement) on the CPU and on CUDA, and the low 64 bits
    are exact either way.  lo is the low word; hi is the arithmetic shift by 32 masked to 32 bits,
    which undoes the sign extension.  Three tensor operations; the known-answer tests
    (tests/test_streams.py, also on CUDA) are what certify the wrap on each device."""
    p = b * m
    return torch.bitwise_right_shift(p, 32).bitwise_and_(MASK32), p.bitwise_and_(MASK32)


def _broadcast(*tensors: Tensor) -> torch.Size:
    """The broadcast shape (torch.broadcast_shapes imports torch._refs: a second on first use)."""
    ndim = max(t.dim() for t in tensors)
    shape = [1] * ndim
    for t in tensors:
        for axis, n in enumerate(t.shape, start=ndim - t.dim()):
            if n != 1:
                if shape[axis] not in (1, n):
                    raise WorkbenchInputError(f"shapes {[tuple(t.shape) for t in tensors]} do not broadcast")
                shape[axis] = n
    return torch.Size(shape)


def _philox_words(c0: Tensor, c1: Tensor, c2: Tensor, c3: Tensor, k0: Tensor, k1: Tensor
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Philox4x32-10 on broadcastable int64 tensors of 32-bit words; returns the 4 output words."""
    shape = _broadcast(c0, c1, c2, c3, k0, k1)
    for r in range(PHILOX_ROUNDS):
        if r:   # key schedule: k + r W (mod 2**32) before rounds 2..10
            k0 = torch.add(k0, PHILOX_W0).bitwise_and_(MASK32)
            k1 = torch.add(k1, PHILOX_W1).bitwise_and_(MASK32)
        hi0, lo0 = _mulhilo(PHILOX_M0, c0)
        hi1, lo1 = _mulhilo(PHILOX_M1, c2)
        # xor in place into the fresh products once they have the full shape (from round 2 on)
        c0 = hi1.bitwise_xor_(c1).bitwise_xor_(k0) if hi1.shape == shape else hi1 ^ c1 ^ k0
        c2 = hi0.bitwise_xor_(c3).bitwise_xor_(k1) if hi0.shape == shape else hi0 ^ c3 ^ k1
        c1, c3 = lo1, lo0
    return c0, c1, c2, c3


def philox4x32(counter: Tensor, key: Tensor) -> Tensor:
    """The Philox4x32-10 bijection: counter (..., 4), key (..., 2) -> (..., 4), all int64 tensors
    holding 32-bit words (0 <= w < 2**32; broadcast against each other), word order as in
    Random123 (counter[..., 0] is the low word)."""
    counter, key = torch.as_tensor(counter, dtype=torch.int64), torch.as_tensor(key, dtype=torch.int64)
    if counter.shape[-1:] != (4,) or key.shape[-1:] != (2,):
        raise WorkbenchInputError(f"philox4x32 wants counter (..., 4) and key (..., 2), got "
                                  f"{tuple(counter.shape)} and {tuple(key.shape)}")
    words = _philox_words(counter[..., 0], counter[..., 1], counter[..., 2], counter[..., 3],
                          key[..., 0].to(counter.device), key[..., 1].to(counter.device))
    shape = _broadcast(*words)
    return torch.stack([w.expand(shape) for w in words], dim=-1)


def _philox_int(c: tuple[int, int, int, int], k: tuple[int, int]) -> tuple[int, int, int, int]:
    """The same bijection on Python ints (for deriving one child without building tensors)."""
    c0, c1, c2, c3 = c
    k0, k1 = k
    for r in range(PHILOX_ROUNDS):
        if r:
            k0, k1 = (k0 + PHILOX_W0) & MASK32, (k1 + PHILOX_W1) & MASK32
        p0, p1 = PHILOX_M0 * c0, PHILOX_M1 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32
    return c0, c1, c2, c3


# ----------------------------------------------------------------------------------------------
# Names -> identities
# ----------------------------------------------------------------------------------------------

def _digest(tag: bytes, payload: bytes) -> tuple[int, int, int, int]:
    return struct.unpack("<4I", hashlib.sha256(_DOMAIN + tag + b"\x00" + payload).digest()[:16])


def _check_int_key(key, what: str = "key") -> int:
    if isinstance(key, bool) or not isinstance(key, numbers.Integral):
        raise WorkbenchInputError(f"a stream {what} must be an int or a str, got {key!r} ({type(key).__name__})")
    key = int(key)
    if not 0 <= key < MAX_KEY:
        raise WorkbenchInputError(f"an integer stream {what} must be in [0, 2**63), got {key}")
    return key


def _child_words(words: tuple[int, int, int, int], key: KeyLike) -> tuple[int, int, int, int]:
    if isinstance(key, str):
        return _digest(b"str", struct.pack("<4I", *words) + key.encode("utf-8"))
    i = _check_int_key(key)
    return _philox_int((i & MASK32, (i >> 32) | DERIVE_BIT, words[2], words[3]), (words[0], words[1]))


def _derive(ident: Tensor, index: Tensor) -> Tensor:
    """Integer children, vectorised: ident (..., 4) and index (...) broadcast -> (..., 4)."""
    c1 = torch.bitwise_right_shift(index, 32).bitwise_or_(DERIVE_BIT)
    words = _philox_words(index & MASK32, c1, ident[..., 2], ident[..., 3], ident[..., 0], ident[..., 1])
    shape = _broadcast(*words)
    return torch.stack([w.expand(shape) for w in words], dim=-1)


def _index_tensor(index: IndexLike | None, what: str, device: torch.device, count_ok: bool
                  ) -> tuple[Tensor | None, bool]:
    """(1-D int64 tensor of keys on ``device``, whether it makes an axis).  ``count_ok``: an int
    means a count (members=M -> 0..M-1) rather than one key."""
    if index is None:
        return None, False
    if isinstance(index, Tensor):
        if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
            raise WorkbenchInputError(f"{what} must be integers, got a {index.dtype} tensor")
        if index.dim() > 1 or (count_ok and index.dim() == 0):
            raise WorkbenchInputError(f"{what} as a tensor must be 1-D (member indices), got shape {tuple(index.shape)}"
                                      if count_ok else f"{what} must be an int or a 1-D sequence, got shape "
                                      f"{tuple(index.shape)}")
        axis = index.dim() == 1
        index = index.reshape(-1).to(device=device, dtype=torch.int64)
        if index.numel() and bool((index < 0).any()):
            raise WorkbenchInputError(f"{what} must be non-negative, got min {int(index.min())}")
        return index, axis
    if isinstance(index, numbers.Integral) and not isinstance(index, bool):
        if count_ok:
            if int(index) < 1:
                raise WorkbenchInputError(f"{what}={index}: a number of members must be >= 1")
            return torch.arange(int(index), device=device, dtype=torch.int64), True
        return torch.tensor([_check_int_key(index, what)], device=device, dtype=torch.int64), False
    if hasattr(index, "__array__") and not isinstance(index, Sequence):   # a numpy array of keys
        return _index_tensor(torch.as_tensor(index), what, device, count_ok)
    if isinstance(index, (str, bytes)) or not isinstance(index, (Sequence, range)):
        raise WorkbenchInputError(f"{what} must be an int or a sequence of ints, got {index!r}")
    keys = [_check_int_key(i, what) for i in index]
    return torch.tensor(keys, device=device, dtype=torch.int64), True


def _shape(shape) -> tuple[int, ...]:
    """A draw's shape: an int or a sequence of non-negative ints."""
    dims = (shape,) if isinstance(shape, numbers.Integral) else shape
    if (isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence)
            or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0 for n in dims)):
        raise WorkbenchInputError(f"a draw's shape must be an int or a tuple of non-negative ints, got {shape!r}")
    return tuple(int(n) for n in dims)


def _float_dtype(dtype) -> torch.dtype:
    if dtype not in (torch.float64, torch.float32):
        raise WorkbenchInputError(f"draws are float64 or float32, got dtype={dtype}")
    return dtype


# ----------------------------------------------------------------------------------------------
# The stream
# ----------------------------------------------------------------------------------------------

class Stream:
    """A named random stream: ``Stream(seed, experiment, *keys)``, keys ints in [0, 2**63) or strings.

    Stateless: every draw is a function of (name, members, step, shape, dtype).  See the module
    docstring for the hashing, the counter layout and what is bit-identical where."""

    __slots__ = ("experiment", "identity", "keys", "seed")

    def __init__(self, seed: int, experiment: str, *keys: KeyLike):
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise WorkbenchInputError(f"a stream's seed must be an int, got {seed!r} ({type(seed).__name__})")
        if not 0 <= int(seed) < 1 << 64:
            raise WorkbenchInputError(f"a stream's seed must be in [0, 2**64), got {seed}")
        if not isinstance(experiment, str) or not experiment:
            raise WorkbenchInputError(f"a stream's experiment must be a non-empty str, got {experiment!r}")
        words = _digest(b"root", int(seed).to_bytes(8, "little") + experiment.encode("utf-8"))
        for key in keys:
            words = _child_words(words, key)
        self.seed, self.experiment = int(seed), experiment
        self.keys = tuple(k if isinstance(k, str) else int(k) for k in keys)
        self.identity: tuple[int, int, int, int] = words
        """The identity (k0, k1, c2, c3): Philox key and high counter words."""

    def child(self, *keys: KeyLike) -> Stream:
        """The sub-stream named by ``keys`` (e.g. member i, step t): ``Stream(seed, experiment,
        *self.keys, *keys)``."""
        words = self.identity
        for key in keys:
            words = _child_words(words, key)
        child = object.__new__(Stream)
        child.seed, child.experiment = self.seed, self.experiment
        child.keys = self.keys + tuple(k if isinstance(k, str) else int(k) for k in keys)
        child.identity = words
        return child

    def __repr__(self) -> str:
        keys = "".join(f", {k!r}" for k in self.keys)
        return f"Stream({self.seed}, {self.experiment!r}{keys})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Stream) and self.identity == other.identity

    def __hash__(self) -> int:
        return hash(self.identity)

    # -- raw material ------------------------------------------------------------------------

    def _identities(self, members, step, device) -> tuple[Tensor, tuple[int, ...]]:
        """Identities of the (member, step) sub-streams, (L, 4), and the leading axes' shape."""
        device = torch.device(device if device is not None else "cpu")
        ident = torch.tensor(self.identity, dtype=torch.int64, device=device)       # (4,)
        lead: tuple[int, ...] = ()
        for index, what, count_ok in ((members, "members", True), (step, "step", False)):
            keys, axis = _index_tensor(index, what, device, count_ok)
            if keys is None:
                continue
            if axis:
                ident = _derive(ident.unsqueeze(-2), keys.reshape((1,) * (ident.dim() - 1) + (-1,)))
                lead = lead + (keys.numel(),)                                    # (*lead, 4)
            else:
                ident = _derive(ident, keys.reshape((1,) * (ident.dim() - 1))).reshape(ident.shape)
        return ident.reshape(-1, 4), lead

    def _blocks(self, n_blocks: int, members, step, device) -> tuple[Tensor, tuple[int, ...]]:
        """Blocks 0..n_blocks-1 of every (member, step) stream: (L, n_blocks, 4) int64 words."""
        ident, lead = self._identities(members, step, device)
        if n_blocks >= MAX_KEY:
            raise WorkbenchInputError(f"a draw of {n_blocks} Philox blocks exceeds a stream's 2**63 blocks")
        L, dev = ident.shape[0], ident.device
        out = torch.empty((L, n_blocks, 4), dtype=torch.int64, device=dev)
        if L == 0 or n_blocks == 0:
            return out, lead
        chunk = _CHUNK["cpu" if dev.type == "cpu" else "other"]
        per_row = min(n_blocks, chunk)
        rows = max(1, chunk // per_row)
        for j0 in range(0, n_blocks, per_row):
            j = torch.arange(j0, min(j0 + per_row, n_blocks), dtype=torch.int64, device=dev)
            c0, c1 = (j & MASK32).unsqueeze(0), torch.bitwise_right_shift(j, 32).unsqueeze(0)  # (1, nj)
            for r0 in range(0, L, rows):
                part = ident[r0:r0 + rows].unsqueeze(-1)                                      # (R, 4, 1)
                words = _philox_words(c0, c1, part[:, 2], part[:, 3], part[:, 0], part[:, 1])
                for l, w in enumerate(words):                                                 # (R, nj)
                    out[r0:r0 + rows, j0:j0 + j.numel(), l] = w
        return out, lead

    def _units(self, n: int, members, step, device) -> tuple[Tensor, Tensor, tuple[int, ...]]:
        """The first n 64-bit units U = hi 2**32 + lo of every (member, step) stream: hi, lo (L, n)."""
        blocks, lead = self._blocks((n + 1) // 2, members, step, device)
        units = blocks.reshape(blocks.shape[0], 2 * blocks.shape[1], 2)[:, :n]
        return units[..., 0], units[..., 1], lead

    def words(self, n: int, *, members: IndexLike | None = None, step: IndexLike | None = None,
              device=None) -> Tensor:
        """The stream's first n 32-bit words w[0..n-1] as int64: (*lead, n)."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise WorkbenchInputError(f"words: n must be a non-negative int, got {n!r}")
        blocks, lead = self._blocks((n + 3) // 4, members, step, device)
        return blocks.reshape(blocks.shape[0], 4 * blocks.shape[1])[:, :n].reshape(*lead, n)

    # -- draws -------------------------------------------------------------------------------

    def uniform(self, shape, *, members: IndexLike | None = None, step: IndexLike | None = None,
                device=None, dtype: torch.dtype = torch.float64) -> Tensor:
        """Uniform on [0, 1): float64 on the grid k 2**-53 (53 bits), float32 on k 2**-24 (24 bits).
        Shape (*lead, *shape), lead = (M,) for members, (T,) for a sequence of steps."""
        shape, dtype = _shape(shape), _float_dtype(dtype)
        n = math.prod(shape)
        hi, lo, lead = self._units(n, members, step, device)
        if dtype == torch.float64:
            k = hi.bitwise_left_shift(21).bitwise_or_(lo.bitwise_right_shift(11))          # U >> 11, < 2**53
            u = k.to(torch.float64).mul_(2.0 ** -53)
        else:
            u = hi.bitwise_right_shift(8).to(torch.float32).mul_(2.0 ** -24)              # U >> 40, < 2**24
        return u.reshape(*lead, *shape)

    def normal(self, shape, *, members: IndexLike | None = None, step: IndexLike | None = None,
               device=None, dtype: torch.dtype = torch.float64) -> Tensor:
        """Standard normal by Box-Muller of float64 uniform pairs (module docstring), rounded to
        ``dtype``.  Shape (*lead, *shape)."""
        shape, dtype = _shape(shape), _float_dtype(dtype)
        n = math.prod(shape)
        pairs = (n + 1) // 2
        u = self.uniform(2 * pairs, members=members, step=step, device=device)            # (*lead, 2 pairs)
        lead = u.shape[:-1]
        u = u.reshape(math.prod(lead), pairs, 2)
        radius = torch.log(1.0 - u[..., 0]).mul_(-2.0).sqrt_()                          # 1 - u in (0, 1]
        theta = u[..., 1] * (2.0 * math.pi)
        z = torch.stack([radius * torch.cos(theta), radius * torch.sin(theta)], dim=-1)  # (L, pairs, 2)
        return z.reshape(z.shape[0], 2 * pairs)[:, :n].to(dtype).reshape(*lead, *shape)

    def integers(self, low: int, high: int, shape, *, members: IndexLike | None = None,
                 step: IndexLike | None = None, device=None) -> Tensor:
        """Integers in [low, high) (int64), high - low <= 2**32, by multiply-shift
        low + floor(U r / 2**64): each value's probability is 1/r to a relative 2**-32."""
        for name, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise WorkbenchInputError(f"integers: {name} must be an int, got {v!r}")
        low, high, shape = int(low), int(high), _shape(shape)
        r = high - low
        if not 0 < r <= 1 << 32:
            raise WorkbenchInputError(f"integers: need low < high and high - low <= 2**32, got [{low}, {high})")
        if not (-(1 << 63) <= low and high <= 1 << 63):
            raise WorkbenchInputError(f"integers: [{low}, {high}) does not fit in int64")
        hi, lo, lead = self._units(math.prod(shape), members, step, device)
        # floor((hi 2**32 + lo) r / 2**64) = (hi r + floor(lo r / 2**32)) >> 32, with hi r split
        # into 32-bit words so that nothing overflows int64
        a_hi, a_lo = _mulhilo(r, hi)
        b_hi, _ = _mulhilo(r, lo)
        value = a_lo.add_(b_hi).bitwise_right_shift_(32).add_(a_hi)
        return value.add_(low).reshape(*lead, *shape)

    def categorical(self, probs: Tensor, shape=(), *, members: IndexLike | None = None,
                    step: IndexLike | None = None) -> Tensor:
        """Category indices (int64) by inverse CDF, on ``probs.device``.

        ``probs`` (*P, K), non-negative and summing to 1 (to sqrt(eps)) along the last axis; P is
        empty (one distribution for all) or a prefix of the output shape (*lead, *shape), e.g.
        (M, K) for one distribution per member.  Output (*lead, *shape)."""
        shape = _shape(shape)
        cdf, last = _cdf(probs)
        u = self.uniform(shape, members=members, step=step, device=probs.device)        # (*lead, *shape)
        return _inverse_cdf(cdf, last, u)

    def multinomial(self, n: int, probs: Tensor, shape=(), *, members: IndexLike | None = None,
                    step: IndexLike | None = None) -> Tensor:
        """Counts (int64, (*lead, *shape, K), each summing to n) of n draws from ``probs``: exactly
        the counts of ``categorical(probs, (*shape, n))`` along its last axis."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise WorkbenchInputError(f"multinomial: n must be a non-negative int, got {n!r}")
        shape, n = _shape(shape), int(n)
        cdf, last = _cdf(probs)
        K = probs.shape[-1]
        u = self.uniform((*shape, n), members=members, step=step, device=probs.device)  # (*lead, *shape, n)
        cats = _inverse_cdf(cdf, last, u).sort(dim=-1).values                             # (*lead, *shape, n)
        edges = torch.arange(K + 1, device=probs.device).expand(*cats.shape[:-1], K + 1).contiguous()
        below = torch.searchsorted(cats.contiguous(), edges)                              # #(cat < k)
        return below.diff(dim=-1)


def _cdf(probs: Tensor) -> tuple[Tensor, Tensor]:
    """Cumulative sums P_0..P_{K-2} (float64, (*P, K-1)) and the last positive category (*P)."""
    if not isinstance(probs, Tensor) or not probs.dtype.is_floating_point or probs.dim() < 1:
        raise WorkbenchInputError("probs must be a floating-point tensor (..., K)")
    K = probs.shape[-1]
    if K < 1:
        raise WorkbenchInputError("probs must have at least one category")
    tol = math.sqrt(torch.finfo(probs.dtype).eps)
    p = probs.to(torch.float64)
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise WorkbenchInputError("probs must be finite and non-negative")
    total = p.sum(-1)
    if bool(((total - 1.0).abs() > tol).any()):
        worst = float(total.flatten()[(total - 1.0).abs().argmax()])
        raise WorkbenchInputError(f"probs must sum to 1 along the last axis (to {tol:.1e}); one sums to {worst!r}")
    # Inclusive scan in a fixed order (Hillis-Steele: log2 K rounds of shifted adds) rather than
    # torch.cumsum, whose CUDA kernel rounds in its own order and is refused under
    # torch.use_deterministic_algorithms: these adds round alike on every device and batch.
    cdf = p[..., :-1].contiguous()
    shift = 1
    while shift < K - 1:
        cdf = torch.cat([cdf[..., :shift], cdf[..., shift:] + cdf[..., :-shift]], dim=-1)
        shift *= 2
    last = torch.where(p > 0, torch.arange(K, device=p.device), -1).amax(-1)
    return cdf, last


def _inverse_cdf(cdf: Tensor, last: Tensor, u: Tensor) -> Tensor:
    """#{k < K-1: P_k <= u}, capped at ``last``; cdf (*P, K-1) with P a prefix of u's shape."""
    prefix = cdf.shape[:-1]
    if tuple(u.shape[:len(prefix)]) != tuple(prefix):
        raise WorkbenchInputError(f"probs of shape {(*prefix, cdf.shape[-1] + 1)} do not match draws of shape "
                                  f"{tuple(u.shape)}: their leading axes must be a prefix of it")
    flat = u.reshape(*prefix, math.prod(u.shape[len(prefix):]))                           # (*P, rest)
    index = torch.searchsorted(cdf, flat, right=True)
    index = torch.minimum(index, last.reshape(*prefix, 1))
    return index.reshape(u.shape)


# ----------------------------------------------------------------------------------------------
# Benchmark (never a timed test)
# ----------------------------------------------------------------------------------------------

def bench_streams(members: int = 512, steps: int = 64, draws: int = 100, *, device="cpu",
                  dtype: torch.dtype = torch.float64, repeats: int = 3) -> float:
    """Normal draws per second (best of ``repeats``) for (members, steps, draws) in one call."""
    s = Stream(0, "bench")
    best = math.inf
    for _ in range(repeats):
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        z = s.normal((draws,), members=members, step=range(steps), device=device, dtype=dtype)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    assert z.shape == (members, steps, draws)
    return members * steps * draws / best
