"""Scan and Snap study: the data model, Lemma 1 against autograd and finite differences, the
mean-field ODEs against brute-force population gradients, Lemma 6's closed forms, the JoMA
invariant, ensemble member i against the standalone run i, config validation and sub-configs,
the smoke preset and its typed results, and the negative controls: every theory check fails when
fed its rival (the rival's prediction, or the rival's trajectory through the check function)."""
from __future__ import annotations

import importlib
import inspect
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp

from studies import scan_snap as ss
from studies.scan_snap import joma, model, population, sgd, simulate, theory
from studies.scan_snap.config import Config, OdeConfig, SweepConfig
from studies.scan_snap.data import CountSampler, SequenceClasses
from workbench.errors import ConfigError, DivergenceError
from workbench.phases import load
from workbench.record import Record
from workbench.streams import Stream

checks_mod = importlib.import_module("studies.scan_snap.checks")

F64 = torch.float64
SMALL = SequenceClasses(10, 2, 1, 10)
MEDIUM = SequenceClasses(10, 1, 2, 10)


def _stream(name: str) -> Stream:
    return Stream(0, "scan-snap/tests", name)


def _batch(layout, batch_size, seq_len, name, members=None):
    """One batch per member key (counts (E, B, M_c), classes (E, B)), or (B, M_c), (B,) alone."""
    return CountSampler(layout, seq_len).draw(_stream(name), batch_size, members, 0)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("changes, message", [
    ({"n_queries": 1, "next_per_query": 1}, "classes"),
    ({"n_distinct": 1}, "n_distinct"),
    ({"seq_len_long": 64}, "seq_len_long"),
    ({"eta_y": 0.0}, "eta_y"),
    ({"momentum": 1.0}, "momentum"),
    ({"init": "orthogonal"}, "init"),
    ({"ode.t_max": 500.0}, "ode.t_max"),
    ({"ode.lr_ratios": (2.0, 1.0)}, "ode.lr_ratios"),
    ({"sweep.lr_ratios": (2.0, 1.0)}, "sweep.lr_ratios"),
    ({"sweep.queries": (1, 1)}, "sweep.queries"),
    ({"sweep.queries": (0,)}, "sweep.queries"),
    ({"sweep.next_per_query": 1, "sweep.queries": (1,)}, "sweep"),
    ({"sweep.steps": 5000}, "sweep.steps"),
    ({"joma.mlp_lr": -1.0}, "joma.mlp_lr"),
    ({"joma.attn_lr_ratios": (10.0, 1.0)}, "joma.attn_lr_ratios"),
])
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config.smoke().replace(**changes)


def test_config_fields_and_presets():
    names = {"n_common", "n_queries", "next_per_query", "n_distinct", "seq_len", "batch_size", "steps", "eta_y",
             "eta_z", "momentum", "init", "eta_y_factors", "seq_len_long", "n_seeds", "seed", "dtype", "device",
             "ode.t_max", "ode.snap_eta_y", "ode.lr_ratios", "sweep.queries", "sweep.eta_z", "sweep.steps",
             "joma.toy_steps", "joma.mlp_steps", "joma.mlp_lr", "joma.attn_steps", "joma.attn_lr",
             "joma.attn_lr_ratios", "heatmap.momentum", "heatmap.init",
             "ode.assumption2_common"}
    cfg = Config.quick()
    assert names <= set(Config.field_names())
    docs = Config.field_docs()
    assert all(docs.get(f) for f in cfg.to_dict())
    for sub in (cfg.ode, cfg.sweep, cfg.joma, cfg.heatmap):
        assert all(type(sub).field_docs().get(f) for f in type(sub).__dataclass_fields__)
    assert Config.paper().sweep.queries == (1, 3, 5, 10) and Config.paper().n_seeds == 10
    cfg = cfg.with_overrides(["sweep.queries=1,3", "init=random", "eta_y_factors=1,10", "ode.t_max=2e4"])
    assert cfg.sweep.queries == (1, 3) and cfg.init == "random" and cfg.ode.t_max == 2e4
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_sub_experiments_own_their_fields():
    """Sweeping a primary field changes the main runs (and R1/R2's group 0, their theory) only."""
    base = Config.quick()
    changed = base.replace(eta_z=2.0, steps=50, seq_len=64, batch_size=32)
    assert changed.sweep == base.sweep and changed.ode == base.ode and changed.joma == base.joma
    a, b = base.ode_members, changed.ode_members
    for g in (1, 2, 3):
        np.testing.assert_array_equal(a["eta_z"][a["group"] == g], b["eta_z"][b["group"] == g])
    assert (b["eta_z"][b["group"] == 0] == 2.0).all()
    assert base.replace(**{"sweep.steps": 60}).steps == 100
    assert base.layout == SequenceClasses(10, 2, 1, 10) and base.sweep.layout(3) == SequenceClasses(10, 3, 2, 10)
    assert changed.ode_times[-1] == base.ode.t_max and set(range(51)) <= set(changed.ode_times)
    assert set(range(151)) <= set(Config(sweep=SweepConfig(steps=150)).ode_times)  # R2 at every sweep step
    assert Config(ode=OdeConfig(t_max=5e3)).memory_estimate()[0] > 0
    assert "device" not in inspect.signature(ss.run).parameters  # the device comes from the config alone


# ------------------------------------------------------------------------------- data
def test_layouts_match_the_official_generator():
    assert (SMALL.vocab, SMALL.n_context, SMALL.n_classes) == (34, 30, 2)  # Fig. 4: loss(0) = ln 34
    assert [SequenceClasses(10, q, 2, 10).vocab for q in (1, 3, 5, 10)] == [33, 79, 125, 240]
    P = SMALL.probabilities()
    assert torch.allclose(P.sum(1), torch.ones(2, dtype=F64))
    assert P[0, :10].sum().item() == pytest.approx(10 / 15.5)  # initial common mass 0.645
    assert torch.equal(SMALL.distinct_tokens(1), torch.arange(20, 30))
    assert SMALL.common_mask().sum() == 10 and torch.equal(SMALL.distinct_mask().sum(1), torch.tensor([10, 10]))
    assert torch.equal(MEDIUM.query_of_class, torch.tensor([0, 0]))


def test_sampler_counts_and_frequencies():
    counts, classes = _batch(SMALL, 4000, 64, "freq")
    assert torch.all(counts.sum(1) == 63)
    assert abs(classes.double().mean().item() - 0.5) < 0.03
    for n in range(2):
        freq = counts[classes == n].sum(0) / counts[classes == n].sum()
        assert torch.allclose(freq, SMALL.probabilities()[n], atol=3e-3)
    c2, k2 = _batch(SMALL, 4000, 64, "freq")
    assert torch.equal(counts, c2) and torch.equal(classes, k2)


def test_count_sampler_inverts_the_binomial_chain_exactly():
    """The table holds scipy's binomial CDFs (to 1e-13), and the vectorised search returns, bit for
    bit, the inverse CDF searched directly in the table (numpy's searchsorted), stage by stage of
    the conditional-binomial chain, for random uniforms and for uniforms placed on the table's own
    CDF values (the boundaries, where an off-by-one would show)."""
    from scipy.stats import binom

    layout, T = SequenceClasses(3, 2, 1, 4), 20
    n, sampler = T - 1, CountSampler(layout, T)
    sup = layout.support()
    J = sup.shape[1] - 1
    q = layout.probabilities().gather(1, sup).numpy()
    W = sampler._width  # rows padded to a power of two (32 here: T - 1 = 19 is not 2**k - 1)
    table = sampler._table.reshape(-1, J, T, W).numpy()[sampler._table_of_class.numpy()]  # (K, J, r, x)
    r, x = np.arange(T)[:, None], np.arange(W)[None, :]
    for k in range(2):
        for j in range(J):
            ref = np.where(x >= r, 1.0, binom.cdf(x, r, q[k, j] / q[k, j:].sum()))
            assert np.abs(table[k, j] - ref).max() < 1e-13
    B = 2000
    classes = _stream("chain-k").integers(0, 2, (B,))
    k = classes.numpy()
    u = _stream("chain-u").uniform((B, J)).numpy()
    half = B // 2  # the first half's stage-0 uniform sits exactly on a CDF value of its row (r = T-1)
    u[:half, 0] = table[k[:half], 0, n, _stream("chain-x").integers(0, n, (half,)).numpy()]
    u[half:half + B // 4, 1:] = 1.0 - 2.0 ** -53  # the largest uniform after a random first stage: the search
    # runs to the end of rows r < T-1 (an unpadded table would let it read the next row there)
    got = sampler.counts_of(classes, torch.from_numpy(u)).numpy()
    remaining = np.full(B, n)
    for j in range(J):
        rows = table[k, j, remaining]  # (B, T): F[j, r_b, .]
        want = np.array([np.searchsorted(rows[b, :remaining[b]], u[b, j], side="right") for b in range(B)])
        assert np.array_equal(got[np.arange(B), sup.numpy()[k, j]], want), j
        remaining = remaining - want
    assert np.array_equal(got[np.arange(B), sup.numpy()[k, -1]], remaining)


def test_count_sampler_is_multinomial():
    """Counts of T-1 = 3 tokens over a 4-token support: every outcome's frequency over 40000 draws
    is within 5 standard errors of the multinomial pmf (and the sampler never leaves the support)."""
    layout, T, N = SequenceClasses(2, 2, 1, 2), 4, 40000
    counts, classes = _batch(layout, N, T, "pmf")
    sup = layout.support()
    q = layout.probabilities().gather(1, sup).numpy()
    for k in range(2):
        c = counts[classes == k]
        assert torch.all(c.sum(1) == T - 1)
        off = torch.ones(layout.n_context, dtype=torch.bool)
        off[sup[k]] = False
        assert torch.all(c[:, off] == 0)
        keys, freq = torch.unique(c[:, sup[k]], dim=0, return_counts=True)
        seen = {tuple(int(x) for x in key): int(f) for key, f in zip(keys, freq)}
        n = len(c)
        for a in range(T):
            for b in range(T - a):
                for d in range(T - a - b):
                    x = (a, b, d, T - 1 - a - b - d)
                    pmf = math.factorial(T - 1) / math.prod(math.factorial(v) for v in x) * float(np.prod(q[k] ** np.array(x)))
                    assert abs(seen.get(x, 0) / n - pmf) <= 5 * math.sqrt(pmf * (1 - pmf) / n) + 1e-12, (x, pmf)


def test_count_sampler_member_and_step_keys():
    """Member i's batch at step t is the same drawn in an ensemble, alone, or in a block of steps."""
    sampler, s = CountSampler(SMALL, 32), _stream("keys")
    big_c, big_k = sampler.draw(s, 8, 5, range(3))  # (5, 3, 8, M_c)
    alone_c, alone_k = sampler.draw(s, 8, [3], 2)  # (1, 8, M_c)
    assert torch.equal(big_c[3, 2], alone_c[0]) and torch.equal(big_k[3, 2], alone_k[0])
    assert not torch.equal(big_c[3, 1], big_c[3, 2]) and not torch.equal(big_c[2, 2], big_c[3, 2])


# ------------------------------------------------------------------------------ model
def _positional_forward(Y, Z, tokens, classes, layout):
    """The official per-position computation: softmax over the T-1 key positions (query excluded)."""
    Mc = layout.n_context
    losses = []
    for b in range(tokens.shape[0]):
        m = Mc + int(layout.query_of_class[classes[b]])
        logits = Z[m, tokens[b]]  # (T-1,)
        att = torch.softmax(logits, 0)
        v = torch.zeros(layout.vocab, dtype=F64).index_add_(0, tokens[b], att)
        u = v / v.norm()
        out = Y.T @ u
        losses.append(torch.logsumexp(out, 0) - out[layout.next_token(int(classes[b]))])
    return torch.stack(losses).mean()


def test_count_attention_equals_positional_softmax():
    """The model sees a sequence only through its token counts: the count forward equals the
    per-position softmax on the token sequence itself, for sequences drawn token by token."""
    p = model.init_params(SMALL, "random", _stream("pos-init"), 1)
    Y, Z = 4 * p["Y"][0], 4 * p["Z"][0]
    classes = _stream("pos-class").integers(0, 2, (6,))
    tokens = _stream("pos-tokens").categorical(SMALL.probabilities()[classes], (6, 20))  # (6, 20) token ids
    counts = torch.zeros(6, SMALL.n_context, dtype=F64).scatter_add_(1, tokens, torch.ones(6, 20, dtype=F64))
    fwd = model.forward(Y[None], Z[None], counts[None], classes[None], SMALL)
    assert fwd.loss.item() == pytest.approx(_positional_forward(Y, Z, tokens, classes, SMALL).item(), rel=1e-13)
    perm = tokens.flip(1)  # the same tokens in reverse order: no positional information
    assert _positional_forward(Y, Z, perm, classes, SMALL).item() == pytest.approx(fwd.loss.item(), rel=1e-13)


@pytest.mark.parametrize("layout", [SMALL, MEDIUM])
def test_lemma1_equals_autograd_and_finite_differences(layout):
    p = model.init_params(layout, "random", _stream("lemma1"), 2)
    Y, Z = 3 * p["Y"], 3 * p["Z"]
    counts, classes = _batch(layout, 8, 16, "lemma1", members=2)
    Yg, Zg = Y.clone().requires_grad_(True), Z.clone().requires_grad_(True)
    gY, gZ = torch.autograd.grad(model.forward(Yg, Zg, counts, classes, layout).loss.sum(), [Yg, Zg])
    _, closed = model.lemma1_gradients(Y, Z, counts, classes, layout)
    assert torch.allclose(closed["Y"], gY, rtol=0, atol=1e-13) and torch.allclose(closed["Z"], gZ, rtol=0, atol=1e-13)
    # central differences on a few entries of member 0 (query row / contextual key, decoder entry)
    Mc = layout.n_context
    h = 1e-6
    for name, idx in (("Z", (Mc, 3)), ("Z", (Mc, Mc - 1)), ("Y", (2, layout.next_token(0))), ("Y", (Mc - 1, 0))):
        P_, M_ = {"Y": Y.clone(), "Z": Z.clone()}, {"Y": Y.clone(), "Z": Z.clone()}
        P_[name][(0, *idx)] += h
        M_[name][(0, *idx)] -= h
        fd = (model.forward(P_["Y"], P_["Z"], counts, classes, layout).loss[0]
              - model.forward(M_["Y"], M_["Z"], counts, classes, layout).loss[0]) / (2 * h)
        assert closed[name][(0, *idx)].item() == pytest.approx(fd.item(), abs=1e-8)


def test_sgd_with_momentum_keeps_row_sums():
    out = sgd.train_sgd(SMALL, eta_y=torch.tensor([1.0, 3.0]), eta_z=torch.tensor([2.0, 0.5]),
                             seed_of_member=torch.tensor([0, 1]), stream=_stream("momentum"), seq_len=32, batch_size=16,
                             steps=15, momentum=0.9, init="random", dtype=F64, device=torch.device("cpu"))
    assert out["Y_rowsum_drift"].max() < 1e-13 and out["Z_rowsum_drift"].max() < 1e-13
    assert np.abs(out["Z"]).max() > 0.3  # it did move


def test_ensemble_member_equals_standalone_run():
    """Member (pair, seed s) of an ensemble is bit for bit the standalone run of seed s, and a larger
    ensemble (more seeds, other pairs) leaves it unchanged; the batch draws come in blocks of steps
    of a size set by the ensemble, which must not matter either."""
    common = dict(seq_len=24, batch_size=8, steps=6, momentum=0.5, init="random", dtype=F64, device=torch.device("cpu"),
                  stream=_stream("ensemble"))
    ey = torch.tensor([1.0, 1.0, 4.0, 4.0])
    ez = torch.tensor([1.0, 1.0, 2.0, 2.0])
    batched = sgd.train_sgd(SMALL, eta_y=ey, eta_z=ez, seed_of_member=torch.tensor([0, 1, 0, 1]), **common)
    larger = sgd.train_sgd(SMALL, eta_y=torch.cat([ey, torch.tensor([2.0, 2.0])]), eta_z=torch.cat([ez, torch.tensor([1.0, 1.0])]),
                           seed_of_member=torch.tensor([0, 1, 0, 1, 2, 3]), **common)
    old_block = sgd.BLOCK_NUMBERS
    try:
        sgd.BLOCK_NUMBERS = 8 * SMALL.n_context  # one step per block for a lone member
        for i, (pair_ey, pair_ez, seed) in enumerate([(1.0, 1.0, 0), (1.0, 1.0, 1), (4.0, 2.0, 0), (4.0, 2.0, 1)]):
            alone = sgd.train_sgd(SMALL, eta_y=torch.tensor([pair_ey]), eta_z=torch.tensor([pair_ez]),
                                  seed_of_member=torch.tensor([seed]), **common)
            for key in ("z", "loss", "p_correct"):
                np.testing.assert_array_equal(batched[key][:, i], alone[key][:, 0])
                np.testing.assert_array_equal(larger[key][:, i], alone[key][:, 0])
            np.testing.assert_array_equal(batched["Y"][i], alone["Y"][0])
    finally:
        sgd.BLOCK_NUMBERS = old_block
    assert not np.array_equal(batched["z"][:, 0], batched["z"][:, 1])  # seeds differ


# ------------------------------------------------------------------------------ theory
def _population_loss(Y_ctx, z, layout):
    """(1/K) sum_n CE(n; softmax(Y^T f_n)): the T -> inf loss whose gradient flow is R1."""
    c = model.attention_of_classes(z, layout)
    f = c / c.norm(dim=-1, keepdim=True)
    logits = f @ Y_ctx  # (K, M)
    labels = layout.next_token(torch.arange(layout.n_classes))
    return torch.nn.functional.cross_entropy(logits, labels)


@pytest.mark.parametrize("layout", [SMALL, MEDIUM])
def test_r1_field_is_the_population_gradient(layout):
    mf = theory.MeanField.of(layout)
    rng = np.random.default_rng(0)
    K, Mc = layout.n_classes, layout.n_context
    Yc = rng.normal(size=(1, Mc, K + 1))  # compressed decoder (symmetric "other" outputs)
    z = 0.5 * rng.normal(size=(1, layout.n_queries, Mc))
    dY, dz, _ = mf.r1_field(np.array([2.0]), np.array([0.5]))(Yc, z)
    Yfull = torch.tensor(mf.expand_decoder(Yc)[0], requires_grad=True)
    zt = torch.tensor(z[0], requires_grad=True)
    gY, gz = torch.autograd.grad(_population_loss(Yfull, zt, layout), [Yfull, zt])
    np.testing.assert_allclose(mf.expand_decoder(dY)[0], -2.0 * gY.numpy(), atol=1e-14)
    other = np.setdiff1d(np.arange(layout.vocab), layout.next_token(np.arange(K)))
    np.testing.assert_allclose(-2.0 * gY.numpy()[:, other], np.repeat(dY[0, :, -1:], len(other), 1), atol=1e-14)
    np.testing.assert_allclose(dz[0], -0.5 * gz.numpy(), atol=1e-14)


def test_r1m_and_r2_fields_follow_their_formulas():
    mf = theory.MeanField.of(MEDIUM)
    rng = np.random.default_rng(1)
    K, Mc = MEDIUM.n_classes, MEDIUM.n_context
    z = 0.3 * rng.normal(size=(1, 1, Mc))
    _, f = mf.attention(z)
    F = f[0].T  # (M_c, K)
    Ep = np.eye(K) - np.linalg.inv(F.T @ F)
    # R2: Eq. 97 term by term (with the 1/K factor), beta_nn' = E'_{n'n}
    gamma, eta_z = 0.7, 1.3
    expect = np.zeros(Mc)
    for n in range(K):
        for n2 in range(K):
            if n2 != n:
                expect += F[:, n] * Ep[n2, n] * ((F[:, n] @ F[:, n2]) * F[:, n] - F[:, n2])
    got = mf.r2_field(z, np.array([gamma]), np.array([eta_z]))[0, 0]
    np.testing.assert_allclose(got, eta_z * gamma / K * expect, atol=1e-15)
    # R1m: decoder driven by f_n - F E' e_n
    Yc = rng.normal(size=(1, Mc, K + 1))
    dY_m, dz_m, mass = mf.r1_field(np.array([1.0]), np.array([1.0]), modified=True)(Yc, z)
    dY, dz, _ = mf.r1_field(np.array([1.0]), np.array([1.0]))(Yc, z)
    np.testing.assert_allclose(dz_m, dz)
    alpha = mass[0].copy()
    alpha[:, -1] /= MEDIUM.vocab - K
    target = np.eye(K, K + 1)
    expect = sum(np.outer(F[:, n] - F @ Ep[:, n], target[n] - alpha[n]) for n in range(K)) / K
    np.testing.assert_allclose(dY_m[0], expect, atol=1e-14)


def test_decoder_h_gamma_and_snap_time():
    M, K = 34, 2
    for eta in (0.3, 1.0, 8.0):
        s = np.logspace(-3, 5, 50)
        h = theory.decoder_h(s, eta, M)
        np.testing.assert_allclose(np.exp(M * h) + (M - 1) * M * h, M * eta * s + 1, rtol=1e-13)
        for t in (0.5, 20.0, 3000.0):
            integral, _ = quad(lambda x: float(theory.decoder_gamma(x, eta, M, K)), 0, t, limit=200, epsabs=1e-13)
            assert float(theory.decoder_gamma_integral(t, eta, M, K)) == pytest.approx(integral, rel=1e-7)
    # Lemma 5/6 against the decoder ODE of K orthogonal classes, each updated on its own class:
    # dw/dt = (eta/K)(e_n - alpha_n), alpha_nn(t) = e^{M h(t/K)} / (M - 1 + e^{M h(t/K)}).
    eta = 1.5

    def rhs(t, w):
        a = np.exp(w - w.max()); a /= a.sum()
        return eta / K * (np.eye(M)[0] - a)

    ts = np.array([0.5, 5.0, 50.0])
    sol = solve_ivp(rhs, (0, ts[-1]), np.zeros(M), t_eval=ts, rtol=1e-11, atol=1e-13)
    alpha = np.exp(sol.y[0]) / np.exp(sol.y).sum(0)
    h = theory.decoder_h(ts / K, eta, M)
    np.testing.assert_allclose(alpha, np.exp(M * h) / (M - 1 + np.exp(M * h)), rtol=1e-8)
    t_half = float(theory.snap_time_orthogonal(M, K, eta))
    h = theory.decoder_h(t_half / K, eta, M)
    assert math.exp(M * h) == pytest.approx(M - 1, rel=1e-10)


def test_snap_bound_asymptotes():
    M, K, ey, ez = 1000, 10, 1.0, 0.5
    early = theory.snap_bound(np.array([1e-3]), ey, ez, M, K)
    late = theory.snap_bound(np.array([1e9]), ey, ez, M, K)
    assert early["exact"][0] == pytest.approx(early["scanning"][0], rel=1e-3)
    assert late["exact"][0] == pytest.approx(late["snapping"][0], rel=0.05)


def test_r2_closed_form_ratio_and_r1_signs_on_short_run():
    mf = theory.MeanField.of(MEDIUM)
    t = np.array([0.0, 1.0, 10.0, 100.0])
    r2 = mf.solve_r2(np.array([2.0]), np.array([1.0]), t)
    d = MEDIUM.distinct_tokens(1).numpy()
    z = r2["z"][1:, 0, 0, d]
    ratio = (1 - np.exp(-2 * z)) / MEDIUM.probabilities().numpy()[1, d] ** 2
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-7)
    r1 = mf.solve_r1(np.array([2.0]), np.array([1.0]), t)
    assert (r1["z"][1:, 0, 0, :10] < 0).all() and (r1["z"][1:, 0, 0, 10:] > 0).all()


def test_numpy_and_torch_attention_agree():
    z = np.random.default_rng(2).normal(size=(3, 2, 30))
    np.testing.assert_allclose(theory.class_attention(z, SMALL),
                               model.attention_of_classes(torch.tensor(z), SMALL).numpy(), atol=1e-15)
    c = theory.class_attention(z, SMALL)
    np.testing.assert_allclose(theory.distinct_entropy(c, SMALL),
                               model.distinct_entropy(torch.tensor(c), SMALL).numpy(), atol=1e-14)


# ---------------------------------------------------------------- exact population gradient
def _symmetric_point(pop, seed, scale=0.7):
    """Random lumped parameters (every token of a group shares them): (Yg (1, G, M), ag (1, Q, G))."""
    rng = np.random.default_rng(seed)
    G, lay = pop.groups.n_groups, pop.layout
    return (torch.tensor(scale * rng.normal(size=(1, G, lay.vocab))),
            torch.tensor(scale * rng.normal(size=(1, lay.n_queries, G))))


def test_population_states_are_the_multinomial():
    """The lumped states' probabilities sum to 1 per class, their number is the one computed
    without building them, and they give E[N_g] = (T-1) s_g p_g and E[Q_g] = s_g E[N_l^2]."""
    lay, T = SequenceClasses(3, 2, 1, 3), 7
    st, groups = population.count_states(lay, T), population.token_groups(lay)
    assert len(st.prob) == population.n_lumped_states(lay, T) < population.n_count_vectors(lay, T)
    assert groups.size.tolist() == [3, 1, 1, 1, 1, 1, 1]
    n = T - 1
    for k in range(2):
        sel = st.classes == k
        p, w = groups.P[k], st.prob[sel]
        assert w.sum() == pytest.approx(1.0, abs=1e-14)
        np.testing.assert_allclose(w @ st.counts[sel], n * groups.size * p, atol=1e-13)
        np.testing.assert_allclose(w @ st.squares[sel], groups.size * (n * p * (1 - p) + n ** 2 * p ** 2), atol=1e-12)
    with pytest.raises(ConfigError, match="population"):
        Config.smoke().replace(**{"population.seq_len": 200})


@pytest.mark.parametrize("layout, T", [(SequenceClasses(2, 2, 1, 2), 6), (SequenceClasses(2, 1, 2, 2), 5)])
def test_population_gradient_equals_brute_force_enumeration(layout, T):
    """The lumped exact gradient equals the probability-weighted sum of Lemma 1's gradient over
    every count vector of every class (no lumping), at a random symmetric point."""
    pop = population.PopulationLoss(layout, T)
    Yg, ag = _symmetric_point(pop, 3)
    for closed, auto in zip(pop.group_gradients(Yg, ag), pop.autograd_gradients(Yg, ag)):  # closed form = autograd
        torch.testing.assert_close(closed, auto, rtol=0, atol=1e-15)
    gY, gZ = pop.token_gradients(Yg, ag)
    Y, Z = pop.expand(Yg, ag)
    sup, n, K = layout.support(), T - 1, layout.n_classes
    P = layout.probabilities()
    want_Y, want_Z = torch.zeros_like(Y[0]), torch.zeros_like(Z[0])
    for k in range(K):
        comp = population._compositions(n, sup.shape[1])  # (V, S) every count vector
        logp = [math.lgamma(n + 1) - sum(math.lgamma(x + 1) for x in row) for row in comp] + comp @ np.log(P[k, sup[k]].numpy())
        counts = torch.zeros(len(comp), 1, layout.n_context, dtype=F64)
        counts[:, 0, sup[k]] = torch.tensor(comp, dtype=F64)
        V = len(comp)  # one member per count vector: per-sequence gradients
        _, g = model.lemma1_gradients(Y.expand(V, -1, -1), Z.expand(V, -1, -1), counts, torch.full((V, 1), k), layout)
        w = torch.tensor(np.exp(logp)) / K
        want_Y += torch.einsum("v,vij->ij", w, g["Y"])
        want_Z += torch.einsum("v,vij->ij", w, g["Z"])
    assert gY.abs().max() > 0.01 and gZ.abs().max() > 0.01
    torch.testing.assert_close(gY[0], want_Y, rtol=0, atol=1e-15)
    torch.testing.assert_close(gZ[0], want_Z, rtol=0, atol=1e-15)


def test_population_gradient_matches_monte_carlo():
    """A Monte-Carlo average of Lemma 1's per-sequence gradients over 64 x 4096 sequences drawn by
    the CountSampler agrees with the exact gradient within 5 standard errors (batch means) in
    every entry, and the T -> infinity (R1) gradient does not: the finite-T bias is resolved."""
    lay, T = SequenceClasses(3, 2, 1, 4), 8
    pop = population.PopulationLoss(lay, T)
    Yg, ag = _symmetric_point(pop, 0)
    gY, gZ = pop.token_gradients(Yg, ag)
    Y, Z = pop.expand(Yg, ag)
    E, B = 64, 4096
    counts, classes = CountSampler(lay, T).draw(_stream("population-mc"), B, E, 0)  # (E, B, M_c)
    _, g = model.lemma1_gradients(Y.expand(E, -1, -1).contiguous(), Z.expand(E, -1, -1).contiguous(), counts, classes, lay)
    Mc, Q = lay.n_context, lay.n_queries
    Yt = Y[0, :Mc].clone().requires_grad_(True)
    zt = Z[0, Mc:Mc + Q, :Mc].clone().requires_grad_(True)
    r1_Y, r1_z = torch.autograd.grad(_population_loss(Yt, zt, lay), [Yt, zt])  # the T -> inf gradient
    for mc, exact, r1 in ((g["Y"][:, :Mc], gY[0, :Mc], r1_Y), (g["Z"][:, Mc:Mc + Q, :Mc], gZ[0, Mc:Mc + Q, :Mc], r1_z)):
        mean, se = mc.mean(0), mc.std(0, correction=1) / math.sqrt(E)
        live = se > 0
        assert ((mean - exact).abs()[live] <= 5 * se[live]).all()
        assert ((mean - r1).abs()[live] > 5 * se[live]).any()


def test_population_gd_is_plain_gd_on_the_full_parameters():
    """Population GD's lumped steps equal GD steps on the full Y, Z with the per-token gradients."""
    lay, T = SequenceClasses(2, 2, 1, 3), 6
    out = population.train_population_gd(lay, T, eta_y=torch.tensor([2.0]), eta_z=torch.tensor([0.5]), steps=3,
                                         observe_at=np.arange(4))
    pop = population.PopulationLoss(lay, T)
    G = pop.groups.n_groups
    Yg, ag = torch.zeros(1, G, lay.vocab, dtype=F64), torch.zeros(1, 2, G, dtype=F64)
    Y, Z = pop.expand(Yg, ag)
    Mc = lay.n_context
    for step in range(3):
        gY, gZ = pop.token_gradients(Yg, ag)
        Y, Z = Y - 2.0 * gY, Z - 0.5 * gZ
        first = [int(np.nonzero(pop.groups.group_of_token == g)[0][0]) for g in range(G)]
        Yg, ag = Y[:, first], Z[:, Mc:Mc + 2, first]
        np.testing.assert_allclose(out["z"][step + 1, 0], Z[0, Mc:Mc + 2, :Mc].numpy(), atol=1e-15)


# -------------------------------------------------------------------------------- JoMA
def test_joma_toy_and_invariant():
    mu = joma.toy_targets(_stream("toy"), 3)
    out = joma.run_toy(mu, 300, gating="uniform")
    torch.testing.assert_close(out["v"], joma.toy_uniform_closed_form(mu, 300), rtol=0, atol=1e-13)
    res = joma.run_mlp(SMALL, torch.tensor([0, 1, 2]), _stream("mlp"), [0, 1, 2], steps=60, lr=2.0)
    assert res["invariant"].max() < 1e-12
    assert res["invariant_continuous"].max() > 1e-6  # the discretisation term is real and accounted for

    # the study's own softmax attention + MLP: member i equals its standalone run, bit for bit
    acts, ratio = torch.tensor([0, 1, 2]), torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    both = joma.run_attention_mlp(SMALL, acts, ratio, _stream("attn"), [0, 1, 0], steps=20, lr=1.0)
    one = joma.run_attention_mlp(SMALL, acts[2:], ratio[2:], _stream("attn"), [0], steps=20, lr=1.0)
    assert torch.equal(both["entropy"][:, 2], one["entropy"][:, 0]) and torch.equal(both["z"][2], one["z"][0])
    assert both["entropy"][0].sub(both["entropy"][0, 0]).abs().max() == 0  # Z(0) = 0: one start
    assert (both["loss"][-1] < both["loss"][0]).all()
    with pytest.raises(ValueError, match="lr_ratio"):
        joma.run_attention_mlp(SMALL, acts, ratio[:2], _stream("attn"), [0, 1, 2], steps=2, lr=1.0)


def test_redensified_definition():
    t = np.arange(101.0)
    dip_rise = 2.0 - 0.5 * np.exp(-((t - 40) / 15) ** 2)    # interior minimum, rebound ~0.48
    falling = 2.0 - 0.5 * (1 - np.exp(-t / 20))            # monotone sparsification
    late_min = 2.0 - 0.5 * np.exp(-((t - 99) / 15) ** 2)   # its minimum too close to the horizon
    got = checks_mod.redensified(np.stack([dip_rise, falling, late_min], axis=1))
    assert got.tolist() == [True, False, False]


# ------------------------------------------------------------------------------- smoke
@pytest.fixture(scope="module")
def smoke_record(smoke_result):
    """The session's smoke record (shared with the contract test and the book build)."""
    return smoke_result("scan-snap").record


def test_smoke_preset_runs_and_passes(smoke_record):
    cfg, record = Config.smoke(), smoke_record
    checks = ss.checks(record)
    names = [c.name for c in checks]
    assert len(names) == len(set(names)) and len(names) >= 25
    failed = [c.name for c in checks if c.asserted and c.kind != "observation" and not c.passed]
    assert not failed, failed
    for key in ("sgd.z", "sgd_long.z", "fig4.z", "assumption2.r1_z", "assumption2.r2_z", "r1.z", "r1m.z", "r2.z", "r2.gamma", "sweep.1.entropy", "sweep.1.r2.entropy",
                "joma_toy.entropy", "mlp.invariant", "mlp.W1", "bn.exact.0", "layout.P", "population.gd_z",
                "population.sgd_z", "population.r1_z", "scan_grid.r1_peaks", "scan_grid.r2_scans", "attn_mlp.entropy"):
        assert key in record.arrays, key
    assert [p.name for p in ss.PHASES] == list(record.info["phase_seconds"])
    figs = ss.figures(record)
    assert {"heatmaps", "logits_vs_time", "r2_scan", "snap_collapse", "entropy_vs_ratio", "snap_bound", "joma", "population", "scan_grid", "attn_mlp"} <= set(figs)
    pred = ss.predict(cfg)
    assert pred["initial_common_mass"] == pytest.approx(10 / 15.5)


def test_results_load_back_typed(smoke_record):
    cfg = Config.smoke()
    panels = load(smoke_record, "sweep", simulate.Sweep)
    assert list(panels) == ["1"] and isinstance(panels["1"].r2, simulate.R2Sweep)
    members = len(cfg.sweep.eta_z) * len(cfg.sweep.lr_ratios) * cfg.n_seeds
    assert panels["1"].entropy.shape == (cfg.sweep.steps + 1, members)
    bound = load(smoke_record, "bn", simulate.SnapBound)
    assert bound.labels == tuple(s[0] for s in theory.BN_PARAMETER_SETS) and set(bound.exact) == {"0", "1", "2", "3", "4", "5"}
    run = load(smoke_record, "sgd", simulate.SgdRun)
    assert run.seq_len == cfg.seq_len and run.z.shape[:2] == (cfg.steps + 1, len(cfg.eta_y_factors) * cfg.n_seeds)
    mlp = load(smoke_record, "mlp", simulate.MlpRun)
    # the final step's invariant without its discretisation term, recomputed from the saved weights
    inv = mlp.z.sum(1) - 0.5 * (mlp.W1 ** 2 - mlp.W1_init ** 2).sum(1)
    np.testing.assert_allclose(np.abs(inv).max(-1), mlp.invariant_continuous[-1], rtol=1e-12, atol=1e-15)


def test_a_failing_sweep_panel_keeps_the_finished_ones(monkeypatch):
    cfg = Config.smoke().replace(**{"sweep.queries": (1, 3), "sweep.steps": 5, "sweep.eta_z": (0.5, 1.0)})
    real = simulate.sweep_panel

    def panel(cfg, n_queries, *, progress=False):
        if n_queries == 3:
            raise DivergenceError("boom", step=2, partial={"loss": np.ones(2)})
        return real(cfg, n_queries, progress=progress)

    monkeypatch.setattr(simulate, "sweep_panel", panel)
    with pytest.raises(DivergenceError) as info:
        simulate.sweep(cfg)
    assert set(info.value.partial) == {"1", "3"} and isinstance(info.value.partial["1"], simulate.SweepPanel)


# ------------------------------------------------------------ kinds and negative controls
def test_every_check_has_a_kind_and_every_theory_check_a_rival(smoke_record):
    checks = ss.checks(smoke_record)
    kinds = {c.name: c.kind for c in checks}
    assert {"lemma1_gradient", "row_sums_conserved", "mlp_joma_invariant", "fates_r2", "frequency_order_r2"} <= \
        {n for n, k in kinds.items() if k == "identity"}
    assert kinds["r2_invariant_ratio"] == "numerics"
    assert {"no_winner_takes_all_r1", "r1_below_r2", "scan_absent_r1", "model_scans_nowhere", "fates_population",
            "frequency_order_population"} <= {n for n, k in kinds.items() if k == "observation"}
    for c in checks:
        if c.kind == "theory":
            assert c.alternative, c.name
            if c.asserted:
                assert c.discriminates, c.name
    # the checks measured on R2 say so
    for c in checks:
        if c.kind == "theory" and (c.name.endswith("_r2") or "_r2_" in c.name):
            assert "reduced equation R2" in c.claim, c.name


def test_theory_checks_fail_when_fed_their_rival(smoke_record):
    """Every theory check built with a pass rule fails on its rival's prediction."""
    fed = 0
    for c in ss.checks(smoke_record):
        if c.kind == "theory" and c.rule is not None:
            assert c.alternative_predicted is not None, c.name
            assert c.passes(float(c.alternative_predicted)) is False, c.name
            fed += 1
    assert fed >= 14


def _with(record, **arrays):
    """The record with some arrays replaced (an alternative measurement fed through the checks)."""
    return Record(study=record.study, config=record.config, arrays={**record.arrays, **arrays}, info=record.info,
                  meta=record.meta)


def _by_name(checks):
    return {c.name: c for c in checks}


def test_fate_and_frequency_checks_fail_on_rival_logits(smoke_record):
    """Frequency-following logits (z_ml ~ P(l|n) ln(1+t)) fail Theorem 2's signs and the common-mass
    fall; logits keyed on distinctness alone (+-ln(1+t)) fail Theorem 3's ordering."""
    rec = smoke_record
    P, psi = rec.arrays["layout.P"], rec.arrays["layout.query_of_class"].astype(int)
    common = rec.arrays["layout.common_mask"].astype(bool)
    row_P = np.zeros((len(np.unique(psi)), P.shape[1]))
    row_P[psi] = P  # Syn-Small: one class per query row
    for prefix, times in (("r1", rec.arrays["r1.t"]), ("sgd", rec.arrays["sgd.steps"].astype(float))):
        shape = rec.arrays[f"{prefix}.z"].shape  # (n_t, e, Q, M_c)
        grow = np.log1p(times)[:, None, None, None]
        freq = np.broadcast_to(grow * row_P[None, None] * P.shape[1], shape).copy()
        flat = np.broadcast_to(grow * np.where(common, -1.0, 1.0), shape).copy()
        got = _by_name(checks_mod.fate_checks(_with(rec, **{f"{prefix}.z": freq})))
        assert not got[f"fates_{prefix}"].passed
        if prefix == "r1":
            assert not got["common_mass_falls_r1"].passed
        got = _by_name(checks_mod.frequency_checks(_with(rec, **{f"{prefix}.z": flat})))
        name = "frequency_order_r1" if prefix == "r1" else "frequency_order_sgd"
        assert not got[name].passed, name
    real = _by_name(ss.checks(rec))
    assert all(real[n].passed for n in ("fates_r1", "fates_sgd", "common_mass_falls_r1", "frequency_order_r1",
                                        "frequency_order_sgd"))


def test_sgd_comparisons_fail_when_sgd_is_replaced_by_r2(smoke_record):
    """Fed R2's trajectory in place of SGD's, the SGD-vs-R1 checks fail (R2 is their rival)."""
    rec = smoke_record
    cfg = rec.config
    t, steps = rec.arrays["r1.t"], np.arange(cfg.steps + 1)
    idx = np.searchsorted(t, steps)
    main2 = np.nonzero(rec.arrays["r2.group"] == 0)[0]
    z2 = np.repeat(rec.arrays["r2.z"][idx][:, main2], cfg.n_seeds, axis=1)  # (steps + 1, e, Q, M_c)
    got = _by_name(ss.checks(_with(rec, **{"sgd.z": z2, "sgd_long.z": z2})))
    for name in ("sgd_tracks_r1", "common_mass_sgd_vs_r1", "distinct_entropy_sgd_vs_r1"):
        assert not got[name].passed, name


def test_scan_is_r2s_and_not_r1s():
    """The scan condition holds on R2 and fails on R1 (its rival) on Syn-Small at t = 1e5."""
    mf, d_idx = theory.MeanField.of(SMALL), [SMALL.distinct_tokens(n).numpy() for n in range(2)]
    t = np.concatenate([[0.0], np.logspace(-2, 5, 141)])
    one = (np.array([1.0]), np.array([1.0]))
    c2 = theory.class_attention(mf.solve_r2(*one, t)["z"], SMALL)
    c1 = theory.class_attention(mf.solve_r1(*one, t)["z"], SMALL)
    assert checks_mod.scans(c2, t, d_idx) and not checks_mod.scans(c1, t, d_idx)
    assert checks_mod.peak_counts(c2, t, d_idx).min() >= 8 and checks_mod.peak_counts(c1, t, d_idx).max() <= 2
    # the model-scan definition fixed before the search: R2 passes it, R1 does not
    assert theory.model_scan(c2, t, d_idx)["scans"].all() and not theory.model_scan(c1, t, d_idx)["scans"].any()
    # a token whose attention only falls from t = 0 has not peaked (the maximum must be interior)
    falling = np.broadcast_to(np.linspace(1.0, 0.5, len(t))[:, None, None, None], c1.shape)
    assert theory.model_scan(falling, t, d_idx)["peaks"].max() == 0


def test_slowdown_readout_separates_ln_ln_t_from_ln_t():
    t = np.logspace(-1, 5, 400)
    t0 = 10.0
    assert checks_mod.decade_ratio(t, 3 * np.log(t), t0) == pytest.approx(1.0)
    lnln = checks_mod.decade_ratio(t, np.log(np.log(34 * t)), t0)
    bound = (lnln + 1.0) / 2  # log_slowdown_*'s bound, halfway between the two
    assert lnln < 0.8 and checks_mod.decade_ratio(t, 3 * np.log(t), t0) > bound
    # lnln_fit_*: the fit comparison accepts ln ln t (and Eq. 129's B_n) and rejects ln t and a power law
    fit = lambda z: checks_mod.lnln_fit_ratio(t, z, t0, 34, 2, 1.0)  # noqa: E731
    assert fit(np.log(np.log(34 * t / 2))) < 0.01 and fit(theory.snap_bound(t, 1.0, 1.0, 34, 2)["exact"]) < 0.5
    assert fit(3 * np.log(t)) > 0.99 and fit(t ** 0.2) > 0.5


def test_sgd_vs_population_check_fails_when_sgd_is_replaced_by_r1(smoke_record):
    """Fed R1's trajectory in place of SGD's, ``sgd_tracks_population_gd`` fails (R1 is its rival)."""
    rec = smoke_record
    r1 = np.repeat(rec.arrays["population.r1_z"], rec.config.n_seeds, axis=1)
    assert _by_name(ss.checks(rec))["sgd_tracks_population_gd"].passed
    assert not _by_name(checks_mod.population_checks(_with(rec, **{"population.sgd_z": r1})))["sgd_tracks_population_gd"].passed


def test_attn_mlp_checks_tell_joma_from_monotone_sparsification(smoke_record):
    """Fed JoMA's picture (nonlinear runs dip and rebound, linear runs only fall) both observations
    hold; fed monotone sparsification everywhere (the rival), the re-densification one does not."""
    rec = smoke_record
    H = rec.arrays["attn_mlp.entropy"]
    lin = rec.arrays["attn_mlp.activation"] == 0
    t = np.arange(len(H), dtype=np.float64)[:, None]
    falling = H[:1] - 0.3 * (1 - np.exp(-t / 20)) + 0 * H
    dip = H[:1] - 0.3 * np.exp(-((t - len(H) / 3) / (len(H) / 8)) ** 2) + 0 * H
    joma_like = np.where(lin[None, :], falling, dip)
    got = _by_name(checks_mod.attn_mlp_checks(_with(rec, **{"attn_mlp.entropy": joma_like})))
    assert got["attn_mlp_nonlinear_redensifies"].passed and got["attn_mlp_linear_only_sparsifies"].passed
    got = _by_name(checks_mod.attn_mlp_checks(_with(rec, **{"attn_mlp.entropy": falling})))
    assert not got["attn_mlp_nonlinear_redensifies"].passed and got["attn_mlp_linear_only_sparsifies"].passed
    assert all(c.kind == "observation" for c in got.values())


def test_joma_toy_check_fails_on_uniform_gating(smoke_record):
    toy = load(smoke_record, "joma_toy", simulate.JomaToy)
    assert checks_mod.sparse_then_dense(toy.entropy)[0]
    assert not checks_mod.sparse_then_dense(toy.uniform_entropy)[0]


def test_frozen_attention_snap_time():
    """Disjoint classes give Lemma 6's closed form; Syn-Small's overlapping classes snap later, as 1/eta_Y."""
    disjoint = SequenceClasses(0, 2, 1, 10)
    assert theory.snap_time_frozen(disjoint) == pytest.approx(float(theory.snap_time_orthogonal(disjoint.vocab, 2, 1.0)), rel=1e-6)
    late = theory.snap_time_frozen(SMALL)
    assert late > 1.15 * float(theory.snap_time_orthogonal(SMALL.vocab, 2, 1.0))
    assert 4.0 * theory.snap_time_frozen(SMALL, 4.0) == pytest.approx(late, rel=1e-6)
