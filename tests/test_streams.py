"""workbench.streams: Philox4x32-10 against its published answers and an independent
implementation, the naming and counter layout, member/step batching bit for bit, statistics,
devices and bad input.

The oracle is `philox_reference` below: the Philox family written from Salmon et al. (2011) on
Python ints for both word widths.  Its 4x64 instance is checked against numpy's own C
implementation (`numpy.random.Philox` is Philox4x64-10, not 4x32), which pins the round
structure, the key schedule and the word order; its 4x32 instance is pinned by the Random123
known-answer vectors (and by `randomgen.Philox(number=4, width=32)`, where installed).  The torch
implementation must then equal the 4x32 reference word for word.

Statistical checks run on fixed seeds, so they are deterministic; each moment or correlation is
held to five standard errors, each goodness-of-fit test (Kolmogorov-Smirnov, chi-square) to a
p-value above 1e-4, levels a correct generator fails with probability ~6e-7 and 1e-4.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import struct

import numpy as np
import pytest
import torch
from scipy import stats

from workbench.errors import WorkbenchInputError
from workbench.runtime import single_thread
from workbench.streams import NORMAL_ULPS_ACROSS_DEVICES, Stream, philox4x32


@pytest.fixture(autouse=True)
def one_thread():
    """As the studies run (`workbench.runtime.single_thread`): two intra-op threads on a loaded
    2-core machine made the larger tests here ~15x slower."""
    with single_thread("cpu"):
        yield

# ------------------------------------------------------------------------------------------------
# The independent reference
# ------------------------------------------------------------------------------------------------

PHILOX_CONSTANTS = {  # (M0, M1, W0, W1) from Salmon et al. (2011) / Random123 philox.h
    32: (0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85),
    64: (0xD2E7470EE14C6C93, 0xCA5A826395121157, 0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B),
}


def philox_reference(counter, key, width=32, rounds=10):
    """PhiloxNx``width``-``rounds`` for N = 4 on Python ints: counter 4 words, key 2 words."""
    m0, m1, w0, w1 = PHILOX_CONSTANTS[width]
    mask = (1 << width) - 1
    c, k = list(counter), list(key)
    for r in range(rounds):
        if r:
            k = [(k[0] + w0) & mask, (k[1] + w1) & mask]
        p0, p1 = m0 * c[0], m1 * c[2]
        c = [(p1 >> width) ^ c[1] ^ k[0], p1 & mask, (p0 >> width) ^ c[3] ^ k[1], p0 & mask]
    return c


# Random123 kat_vectors, "philox4x32 10" lines: counter (4 words), key (2 words) -> output (4 words)
KAT_4x32_10 = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def words_of(value: int, n: int, width: int) -> list[int]:
    return [(value >> (width * i)) & ((1 << width) - 1) for i in range(n)]


def test_reference_4x64_matches_numpy_philox():
    """numpy.random.Philox(counter, key).random_raw() yields, per block, the four 64-bit words of
    Philox4x64-10 applied to the counter *incremented first* (a 256-bit add of 1, low word first)."""
    rng = np.random.default_rng(20111112)
    cases = [(0, 0), (2**256 - 1, 2**128 - 1), (2**64 - 1, 5)]  # the middle two carry across words
    cases += [(int(rng.integers(0, 2**63)) << 190 | int(rng.integers(0, 2**63)), int(rng.integers(0, 2**63)) << 64
               | int(rng.integers(0, 2**63))) for _ in range(200)]
    for counter, key in cases:
        raw = [int(x) for x in np.random.Philox(counter=counter, key=key).random_raw(8)]
        expect = []
        for step in (1, 2):
            expect += philox_reference(words_of((counter + step) % 2**256, 4, 64), words_of(key, 2, 64), width=64)
        assert raw == expect, (hex(counter), hex(key))


def test_reference_4x32_reproduces_the_known_answers():
    for counter, key, out in KAT_4x32_10:
        assert tuple(philox_reference(counter, key)) == out


def test_reference_4x32_matches_randomgen_where_installed():
    randomgen = pytest.importorskip("randomgen")
    rng = np.random.default_rng(7)
    for _ in range(200):
        counter, key = [int(x) for x in rng.integers(0, 2**32, 4)], [int(x) for x in rng.integers(0, 2**32, 2)]
        bg = randomgen.Philox(counter=sum(c << 32 * i for i, c in enumerate(counter)),
                              key=key[0] | key[1] << 32, number=4, width=32)
        nxt = words_of((sum(c << 32 * i for i, c in enumerate(counter)) + 1) % 2**128, 4, 32)
        assert [int(x) for x in bg.random_raw(4)] == philox_reference(nxt, key)


# ------------------------------------------------------------------------------------------------
# The torch bijection
# ------------------------------------------------------------------------------------------------

def test_philox4x32_known_answers():
    counters = torch.tensor([c for c, _, _ in KAT_4x32_10])
    keys = torch.tensor([k for _, k, _ in KAT_4x32_10])
    assert philox4x32(counters, keys).tolist() == [list(out) for _, _, out in KAT_4x32_10]


def test_philox4x32_matches_reference_on_many_counters_and_keys():
    rng = np.random.default_rng(3)
    counters = rng.integers(0, 2**32, (3000, 4))
    keys = rng.integers(0, 2**32, (3000, 2))
    counters[:64] = rng.choice([0, 1, 2**31, 2**32 - 1], (64, 4))   # extreme words: carries, top bits
    keys[:64] = rng.choice([0, 1, 2**31, 2**32 - 1], (64, 2))
    got = philox4x32(torch.tensor(counters), torch.tensor(keys)).tolist()
    for c, k, g in zip(counters.tolist(), keys.tolist(), got):
        assert g == philox_reference(c, k)


def test_mulhilo_is_the_exact_64_bit_product():
    from workbench.streams import _mulhilo
    rng = np.random.default_rng(4)
    b = np.concatenate([[0, 1, 2**31, 2**32 - 1], rng.integers(0, 2**32, 500)])
    for m in [1, 2, 3, 20, 0xD2511F53, 0xCD9E8D57, 2**31, 2**32 - 1, 2**32, *rng.integers(1, 2**32, 20).tolist()]:
        hi, lo = _mulhilo(int(m), torch.tensor(b))
        assert [h << 32 | low for h, low in zip(hi.tolist(), lo.tolist())] == [int(m) * int(x) for x in b]


# ------------------------------------------------------------------------------------------------
# Naming and counter layout (the module docstring's definitions, recomputed here)
# ------------------------------------------------------------------------------------------------

DOMAIN = b"workbench.streams/v1\x00"


def reference_identity(seed: int, experiment: str, *keys) -> tuple[int, ...]:
    ident = struct.unpack("<4I", hashlib.sha256(DOMAIN + b"root\x00" + seed.to_bytes(8, "little")
                                                + experiment.encode()).digest()[:16])
    for key in keys:
        if isinstance(key, str):
            ident = struct.unpack("<4I", hashlib.sha256(DOMAIN + b"str\x00" + struct.pack("<4I", *ident)
                                                        + key.encode()).digest()[:16])
        else:
            ident = tuple(philox_reference((key & 0xFFFFFFFF, (key >> 32) | 2**31, ident[2], ident[3]),
                                           (ident[0], ident[1])))
    return tuple(ident)


def reference_words(ident, n: int) -> list[int]:
    words = []
    for j in range((n + 3) // 4):
        words += philox_reference((j & 0xFFFFFFFF, j >> 32, ident[2], ident[3]), (ident[0], ident[1]))
    return words[:n]


@pytest.mark.parametrize("name", [(0, "sgd"), (2**64 - 1, "icl-regression", 3, "init"), (5, "é", "x", 2**63 - 1)])
def test_identity_and_words_follow_the_documented_layout(name):
    s = Stream(*name)
    assert s.identity == reference_identity(*name)
    assert s.words(23).tolist() == reference_words(s.identity, 23)


def test_child_is_naming_the_keys_in_turn():
    root = Stream(4, "exp")
    assert Stream(4, "exp", 1, "a", 7) == root.child(1, "a", 7) == root.child(1).child("a").child(7)
    assert root.child(1, "a") != root.child("a", 1)
    assert repr(root.child(1, "a")) == "Stream(4, 'exp', 1, 'a')"


def test_batched_derivation_equals_one_child_at_a_time():
    s = Stream(9, "derive")
    members, steps = [0, 1, 2**40 + 3, 2**63 - 1], [0, 5, 2**33]
    words = s.words(6, members=members, step=steps)                       # (member, step, word)
    for i, m in enumerate(members):
        for j, t in enumerate(steps):
            assert words[i, j].tolist() == reference_words(reference_identity(9, "derive", m, t), 6)


def test_uniform_bits_are_the_documented_function_of_the_words():
    s = Stream(1, "bits")
    w = s.words(2 * 1000).reshape(1000, 2)
    unit = [(hi << 32) | lo for hi, lo in w.tolist()]
    u64 = s.uniform(1000).tolist()
    u32 = s.uniform(1000, dtype=torch.float32).tolist()
    assert u64 == [(U >> 11) * 2.0 ** -53 for U in unit]
    assert u32 == [(U >> 40) * 2.0 ** -24 for U in unit]
    assert s.integers(-3, 17, 1000).tolist() == [-3 + (U * 20 >> 64) for U in unit]
    assert s.integers(0, 2**32, 1000).tolist() == [U >> 32 for U in unit]
    assert s.integers(0, 2**32 - 1, 1000).tolist() == [U * (2**32 - 1) >> 64 for U in unit]


def test_normal_is_box_muller_of_uniform_pairs():
    s = Stream(2, "bm")
    u = s.uniform(1000).reshape(500, 2)
    r = torch.sqrt(-2.0 * torch.log(1.0 - u[:, 0]))
    theta = 2.0 * math.pi * u[:, 1]
    expect = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1).reshape(-1)
    assert torch.equal(s.normal(999), expect[:999])
    assert torch.equal(s.normal(1000, dtype=torch.float32), expect.to(torch.float32))


def test_draws_are_prefixes_and_shape_only_reshapes():
    s = Stream(3, "prefix")
    for draw in (lambda n: s.uniform(n), lambda n: s.normal(n), lambda n: s.integers(0, 7, n)):
        assert torch.equal(draw(12)[:5], draw(5))
    assert torch.equal(s.normal((3, 4)), s.normal(12).reshape(3, 4))


def test_empty_draws_have_their_shape():
    s = Stream(3, "empty")
    assert s.normal((0, 3), members=2).shape == (2, 0, 3)
    assert s.uniform(4, members=[]).shape == (0, 4)
    assert s.integers(0, 3, 5, step=[]).shape == (0, 5)
    assert s.multinomial(4, PROBS, (0,)).shape == (0, 6)


def test_uniform_range_and_grid():
    s = Stream(4, "grid")
    u = s.uniform(100_000)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert torch.equal(u * 2.0**53, torch.floor(u * 2.0**53))
    f = s.uniform(100_000, dtype=torch.float32)
    assert f.dtype == torch.float32 and torch.equal(f.double(), torch.floor(u * 2.0**24) / 2.0**24)
    z = s.normal(100_000)
    assert bool(torch.isfinite(z).all()) and float(z.abs().max()) <= math.sqrt(-2 * math.log(2.0**-53))


# ------------------------------------------------------------------------------------------------
# Members and steps, bit for bit
# ------------------------------------------------------------------------------------------------

PROBS = torch.tensor([0.1, 0.0, 0.25, 0.4, 0.25, 0.0], dtype=torch.float64)


def draws(stream: Stream, **batch) -> dict[str, torch.Tensor]:
    return {
        "uniform": stream.uniform((3, 5), **batch),
        "uniform32": stream.uniform((3, 5), dtype=torch.float32, **batch),
        "normal": stream.normal((3, 5), **batch),
        "normal32": stream.normal(7, dtype=torch.float32, **batch),
        "integers": stream.integers(-4, 9, (3, 5), **batch),
        "categorical": stream.categorical(PROBS, (3, 5), **batch),
        "multinomial": stream.multinomial(20, PROBS, (3,), **batch),
        "words": stream.words(9, **batch),
    }


def test_member_i_of_a_batch_is_standalone_member_i():
    s = Stream(11, "members")
    batch = draws(s, members=5)
    for i in range(5):
        alone = draws(s.child(i))
        for name in batch:
            assert torch.equal(batch[name][i], alone[name]), name
    chosen = draws(s, members=torch.tensor([4, 0, 17]))
    for i, m in enumerate([4, 0, 17]):
        assert all(torch.equal(chosen[name][i], draws(s.child(m))[name]) for name in chosen)


def test_per_member_probabilities_follow_their_member():
    s = Stream(12, "probs")
    rows = torch.softmax(torch.linspace(-2, 2, 5 * 4, dtype=torch.float64).reshape(5, 4), dim=-1)  # (M, K)
    cats, counts = s.categorical(rows, (6,), members=5), s.multinomial(9, rows, (2,), members=5)
    for i in range(5):
        assert torch.equal(cats[i], s.child(i).categorical(rows[i], (6,)))
        assert torch.equal(counts[i], s.child(i).multinomial(9, rows[i], (2,)))


def test_step_alone_equals_that_step_inside_a_batch_of_steps():
    s = Stream(13, "steps")
    assert torch.equal(s.normal(4, members=2, step=torch.tensor(3)), s.normal(4, members=2, step=3))
    assert torch.equal(s.normal(4, members=np.arange(2), step=np.array([3])), s.normal(4, members=2, step=[3]))
    all_steps = draws(s, members=3, step=range(6))                        # (member, step, ...)
    for t in (0, 4):
        one = draws(s, members=3, step=t)
        reversed_steps = draws(s, members=3, step=[5, 4, 3, 2, 1, 0])
        for name in one:
            assert torch.equal(all_steps[name][:, t], one[name]), name
            assert torch.equal(reversed_steps[name][:, 5 - t], one[name]), name
            assert torch.equal(one[name][1], draws(s.child(1, t))[name]), name


def test_normals_do_not_depend_on_the_thread_count():
    s = Stream(14, "threads")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = s.normal((64, 1001), members=3)
        torch.set_num_threads(2)
        two = s.normal((64, 1001), members=3)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


# ------------------------------------------------------------------------------------------------
# Distinct names never share a stream
# ------------------------------------------------------------------------------------------------

def test_distinct_key_tuples_never_share_an_identity():
    """~1.1M (seed, experiment, purpose, member, step) tuples: all 128-bit identities distinct."""
    identities = []
    for seed in range(3):
        for experiment in ("svm-bias", "scan-snap", "scan-snap2"):
            for purpose in ("init", "batch"):
                s = Stream(seed, experiment, purpose)
                ident, _ = s._identities(250, range(250), "cpu")            # (member, step) streams
                identities.append(ident)
                identities.append(torch.tensor([s.identity, s.child(0).identity]))
    ident = torch.cat(identities)
    key, base = ident[:, 0] << 32 | ident[:, 1], ident[:, 2] << 32 | ident[:, 3]   # Philox key, counter base
    order = torch.argsort(key)
    key, base = key[order], base[order]
    assert not bool(((key[1:] == key[:-1]) & (base[1:] == base[:-1])).any())
    # tuples an offset scheme (seed + stride k + i) would merge are kept apart
    pairs = [(Stream(1, "e", 0), Stream(0, "e", 1)), (Stream(0, "e", 1, 2), Stream(0, "e", 2, 1)),
             (Stream(0, "e", 12), Stream(0, "e", 1, 2)), (Stream(0, "e", 1), Stream(0, "e", "1")),
             (Stream(0, "ab"), Stream(0, "a", "b")), (Stream(0, "e", 10_000 + 3), Stream(0, "e", 1, 3))]
    assert all(a.identity != b.identity for a, b in pairs)


# ------------------------------------------------------------------------------------------------
# Statistics (fixed seeds: deterministic; bounds at five standard errors)
# ------------------------------------------------------------------------------------------------

N = 100_000


def test_uniforms_and_integers_are_uniform():
    s = Stream(21, "stats")
    for dtype in (torch.float64, torch.float32):
        assert stats.kstest(s.uniform(N, dtype=dtype).double().numpy(), "uniform").pvalue > 1e-4
    counts = torch.bincount(s.integers(0, 10, N), minlength=10).numpy()
    assert stats.chisquare(counts).pvalue > 1e-4
    counts = torch.bincount(s.integers(5, 8, N) - 5, minlength=3).numpy()
    assert stats.chisquare(counts).pvalue > 1e-4


def test_normal_moments_and_distribution():
    z = Stream(22, "stats").normal(N)
    assert abs(float(z.mean())) < 5 / math.sqrt(N)
    assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / N)
    assert abs(float((z**3).mean())) < 5 * math.sqrt(15 / N)
    assert abs(float((z**4).mean()) - 3) < 5 * math.sqrt(96 / N)
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-4


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.reshape(-1), b.reshape(-1)]))[0, 1])


def test_no_correlation_between_neighbours():
    n = 20_000
    bound = 5 / math.sqrt(n)
    s = Stream(23, "corr")
    members = s.uniform(n, members=8)                                    # (8, n)
    steps = s.uniform(n, step=range(8))
    for i in range(7):
        assert abs(corr(members[i], members[i + 1])) < bound
        assert abs(corr(steps[i], steps[i + 1])) < bound
    z = s.normal(n + 1)
    assert abs(corr(z[:-1], z[1:])) < bound                              # lag 1 within a stream
    assert abs(corr(z[0::2][: n // 2], z[1::2][: n // 2])) < 5 / math.sqrt(n // 2)   # the Box-Muller pair
    neighbours = [(Stream(0, "corr"), Stream(1, "corr")), (s.child("a"), s.child("b")),
                  (Stream(0, "corr1"), Stream(0, "corr2")), (s.child(2**32), s.child(0))]
    for a, b in neighbours:
        assert abs(corr(a.uniform(n), b.uniform(n))) < bound
        assert abs(corr(a.normal(n), b.normal(n))) < bound


def test_categorical_and_multinomial_frequencies():
    s = Stream(24, "counts")
    cats = s.categorical(PROBS, N)
    freq = torch.bincount(cats, minlength=6)
    assert freq[PROBS == 0].sum() == 0
    expect = (PROBS * N).numpy()
    assert stats.chisquare(freq.numpy()[expect > 0], expect[expect > 0]).pvalue > 1e-4
    counts = s.multinomial(50, PROBS, (4000,))                           # (4000, K)
    assert counts.shape == (4000, 6) and bool((counts.sum(-1) == 50).all())
    assert bool((counts[:, PROBS == 0] == 0).all())
    mean, sd = counts.double().mean(0), torch.sqrt(50 * PROBS * (1 - PROBS) / 4000)
    assert bool(((mean - 50 * PROBS).abs() <= 5 * sd + 1e-12).all())
    cov01 = float(((counts[:, 0] - 5.0) * (counts[:, 3] - 20.0)).mean())
    assert abs(cov01 - (-50 * 0.1 * 0.4)) < 5 * 1.5                      # Cov = -n p_i p_j (sd of the mean ~ 0.3)
    assert torch.equal(s.multinomial(0, PROBS, (3,)), torch.zeros(3, 6, dtype=torch.int64))


def test_multinomial_is_the_counts_of_categorical_draws():
    s = Stream(25, "counts")
    cats = s.categorical(PROBS, (7, 30), members=2)
    counts = s.multinomial(30, PROBS, (7,), members=2)
    assert torch.equal(counts, torch.nn.functional.one_hot(cats, 6).sum(-2))


def test_cdf_is_a_fixed_order_scan_close_to_cumsum():
    from workbench.streams import _cdf
    probs = torch.softmax(torch.linspace(-4, 4, 3 * 1001, dtype=torch.float64).reshape(3, 1001), dim=-1)
    cdf, last = _cdf(probs)
    assert torch.allclose(cdf, torch.cumsum(probs, -1)[:, :-1], rtol=0, atol=1e-14)
    assert bool((cdf.diff(dim=-1) >= 0).all()) and last.tolist() == [1000] * 3
    assert torch.equal(_cdf(probs[1])[0], cdf[1])                       # one row alone == inside a batch


def test_degenerate_probabilities():
    s = Stream(26, "edge")
    assert bool((s.categorical(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), 1000) == 1).all())
    assert bool((s.categorical(torch.tensor([1.0]), 10) == 0).all())
    # a sum short of 1 by rounding gives its deficit to the last positive category, not to a zero one
    short = torch.tensor([0.3, 0.7 - 1e-9, 0.0], dtype=torch.float64)
    assert int(s.categorical(short, 100_000).max()) == 1


# ------------------------------------------------------------------------------------------------
# Devices
# ------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def torch_deterministic():
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


@pytest.mark.gpu
def test_cuda_draws_equal_cpu_draws():
    s = Stream(31, "devices")
    for name, draw in {"words": lambda d: s.words(10_001, members=7, step=[0, 3], device=d),
                       "uniform": lambda d: s.uniform((100, 101), members=7, step=2, device=d),
                       "uniform32": lambda d: s.uniform(999, members=3, device=d, dtype=torch.float32),
                       "integers": lambda d: s.integers(-9, 2**31, (50, 7), members=7, step=range(3), device=d),
                       }.items():
        assert torch.equal(draw("cuda").cpu(), draw("cpu")), name
    cpu, gpu = s.normal((1000, 101), members=5, device="cpu"), s.normal((1000, 101), members=5, device="cuda").cpu()
    ulp = torch.finfo(torch.float64).eps * cpu.abs().clamp_min(torch.finfo(torch.float64).tiny)
    assert float(((gpu - cpu).abs() / ulp).max()) <= NORMAL_ULPS_ACROSS_DEVICES
    probs = torch.softmax(torch.linspace(-3, 3, 4 * 37, dtype=torch.float64).reshape(4, 37), dim=-1)
    with torch_deterministic():
        assert torch.equal(s.categorical(probs.cuda(), (500,), members=4).cpu(), s.categorical(probs, (500,), members=4))
        assert torch.equal(s.multinomial(30, probs.cuda(), (5,), members=4).cpu(), s.multinomial(30, probs, (5,), members=4))


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: Stream(-1, "e"), lambda: Stream(2**64, "e"), lambda: Stream(1.0, "e"), lambda: Stream(True, "e"),
    lambda: Stream("0", "e"), lambda: Stream(0, ""), lambda: Stream(0, 3),
    lambda: Stream(0, "e", 1.5), lambda: Stream(0, "e", None), lambda: Stream(0, "e", -1),
    lambda: Stream(0, "e", 2**63), lambda: Stream(0, "e", False), lambda: Stream(0, "e").child(b"x"),
], ids=["negative seed", "seed 2**64", "float seed", "bool seed", "str seed", "empty experiment",
        "int experiment", "float key", "None key", "negative key", "key 2**63", "bool key", "bytes key"])
def test_bad_names_are_refused(make):
    with pytest.raises(WorkbenchInputError):
        make()


P = torch.tensor([0.5, 0.5], dtype=torch.float64)


@pytest.mark.parametrize("draw", [
    lambda s: s.multinomial(-1, P), lambda s: s.multinomial(2.0, P),
    lambda s: s.categorical(torch.tensor([0.5, 0.6], dtype=torch.float64)),
    lambda s: s.categorical(torch.tensor([1.5, -0.5], dtype=torch.float64)),
    lambda s: s.categorical(torch.tensor([float("nan"), 1.0], dtype=torch.float64)),
    lambda s: s.categorical(torch.tensor([1, 0])),
    lambda s: s.categorical(P.expand(3, 2), (4,)),                       # leading axis is not a prefix
    lambda s: s.uniform(-1), lambda s: s.uniform((2, 1.5)), lambda s: s.uniform("3"),
    lambda s: s.uniform(3, dtype=torch.float16), lambda s: s.integers(3, 3, 5),
    lambda s: s.integers(0, 2**32 + 1, 5), lambda s: s.integers(0.0, 3, 5),
    lambda s: s.uniform(3, members=0), lambda s: s.uniform(3, members=[1, -2]),
    lambda s: s.uniform(3, step=-1), lambda s: s.uniform(3, step=torch.tensor([0.5])),
    lambda s: s.uniform(3, members=torch.zeros(2, 2, dtype=torch.int64)),
    lambda s: s.uniform(3, members=torch.tensor(4)),
], ids=["n < 0", "float n", "sum 1.1", "negative p", "nan p", "integer probs", "probs shape", "negative shape",
        "float shape", "str shape", "float16", "empty range", "range > 2**32", "float low", "no members",
        "negative member", "negative step", "float step", "2-D members", "0-d members"])
def test_bad_draws_are_refused(draw):
    with pytest.raises(WorkbenchInputError):
        draw(Stream(0, "bad"))


def test_errors_are_value_errors_that_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"sum to 1"):
        Stream(0, "e").categorical(torch.tensor([0.2, 0.2], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\[0, 2\*\*64\)"):
        Stream(-3, "e")
