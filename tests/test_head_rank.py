"""head-rank: the smoke preset runs and passes, each theory check fails on its rival, the
theorems' steps hold symbolically, and the closed forms match the spec's numbers."""
import importlib

import numpy as np
import pytest
import sympy as sp
import torch

from studies import head_rank as st
from studies.head_rank import model as md
from studies.head_rank import simulate as sm
from studies.head_rank import theory as th
from workbench.errors import ConfigError

ck = importlib.import_module("studies.head_rank.checks")  # the package's `checks` is the function


@pytest.fixture(scope="module")
def record(smoke_result):
    """The session's smoke record (shared with the contract test and the book build)."""
    return smoke_result("head-rank").record


def _by_name(checks):
    return {c.name: c for c in checks}


def test_smoke_checks_pass(record):
    results = st.checks(record)
    assert results and all(c.ok for c in results), [c.name for c in results if not c.ok]
    theory = [c for c in results if c.kind == "theory" and c.asserted]
    assert len(theory) >= 7
    assert set(st.figures(record)) == {"F1_threshold_staircase", "F2_singular_values", "F3_fixed_width",
                                       "F4_more_heads", "F5_full_rank_error", "F6_depth", "F7_phase_diagram"}


def test_every_theory_check_fails_on_its_rival(record):
    """Negative controls: fed the rival's value of the measured quantity, each theory check with a
    numeric rival fails (the Part B checks not asserted at smoke included: their rule is the same)."""
    for c in st.checks(record):
        if c.kind == "theory" and c.alternative_predicted is not None:
            assert not c.passes(float(c.alternative_predicted)), c.name


def _copy(record):
    import copy
    out = copy.copy(record)
    out.arrays = dict(record.arrays)
    return out


def test_negative_controls_on_edited_records(record):
    """The Part A checks fail on data of the rivals (records edited, nothing rerun)."""
    # LRB: at d_h = n-1 the fits stay at the uncentred truncation's error -> A1 and A3 fail
    rec = _copy(record)
    fits = rec.arrays["threshold.n4.fits"].copy()
    fits[:, -1, :] = rec.arrays["threshold.n4.uncentred"][:, -1:, ]
    rec.arrays["threshold.n4.fits"] = fits
    got = _by_name(ck.threshold_checks(rec))
    assert not got["A1_threshold_attained"].passed and not got["A3_threshold_n4"].passed
    # "one more dimension is cosmetic": the n-2 certificate would be ~0
    rec = _copy(record)
    rec.arrays["threshold.n4.lower"] = np.zeros_like(rec.arrays["threshold.n4.lower"])
    assert not _by_name(ck.threshold_checks(rec))["A2_certified_failure"].passed
    # the mask does not matter: the causal fit at floor(n/2) fails too -> threshold n-1
    rec = _copy(record)
    fits = rec.arrays["causal.n4.fits"].copy()
    fits[:, -1, :] = 1e-3
    rec.arrays["causal.n4.fits"] = fits
    assert not _by_name(ck.causal_checks(rec))["A4_causal_threshold_n4"].passed
    # an optimiser bug (fit below the certificate) trips the bracket
    rec = _copy(record)
    fits = rec.arrays["threshold.n4.fits"].copy()
    fits[:, 0, :] = rec.arrays["threshold.n4.lower"][:, :1, None] / 2
    rec.arrays["threshold.n4.fits"] = fits
    assert not _by_name(ck.threshold_checks(rec))["A2_bracket"].passed


def test_part_b_controls_on_edited_records(record):
    """B1 fails on a saturating error; B2-B4 fail when every configuration trains alike."""
    rec = _copy(record)
    rec.arrays["full_rank.mc"] = np.full_like(rec.arrays["full_rank.mc"], rec.arrays["full_rank.quadrature"][0])
    assert not _by_name(ck.full_rank_checks(rec))["B1_full_rank_head"].passed
    rec = _copy(record)
    for k in [k for k in rec.arrays if k.startswith("heads.") and k.endswith(".train_error")]:
        rec.arrays[k] = np.full_like(rec.arrays[k], 0.1)
    got = _by_name(ck.heads_checks(rec))
    for name in ("B2_rank_beats_heads", "B3_expressivity_not_optimisation", "B4_more_heads_do_not_rescue"):
        assert not got[name].passed, name


# ------------------------------------------------------------------------------ the theorems
def test_theorem_b_steps_symbolically():
    """Theorem B (spec 1.1): each step checked with sympy."""
    u, v, t, z = sp.symbols("u v t z", real=True)
    # step 1: KL = E_P[e^u - 1 - u] with u = log(q/p), because sum_j p_j e^{u_j} = sum_j q_j = 1
    p1, p2, q1, q2 = sp.symbols("p1 p2 q1 q2", positive=True)
    ps, qs = (p1, p2, 1 - p1 - p2), (q1, q2, 1 - q1 - q2)
    form = sum(p * (q / p - 1 - sp.log(q / p)) for p, q in zip(ps, qs))
    kl = sum(p * sp.log(p / q) for p, q in zip(ps, qs))
    assert sp.cancel(sp.expand(sp.expand_log(form - kl, force=True))) == 0
    # step 2: e^u - 1 - u >= u^2/(2+|u|); u >= 0 by the series, u = -v < 0 by k(0)=0, k' >= 0
    k = (2 + v) * sp.exp(-v) + v - 2
    assert k.subs(v, 0) == 0
    assert sp.simplify(sp.diff(k, v) - (1 - (1 + v) * sp.exp(-v))) == 0
    # 1 - (1+v) e^{-v} >= 0: its derivative v e^{-v} >= 0 and it is 0 at v = 0
    kp = 1 - (1 + v) * sp.exp(-v)
    assert kp.subs(v, 0) == 0 and sp.simplify(sp.diff(kp, v) - v * sp.exp(-v)) == 0
    # for u >= 0: (e^u - 1 - u)(2 + u) - u^2 has all series coefficients >= 0
    series = sp.series((sp.exp(u) - 1 - u) * (2 + u) - u ** 2, u, 0, 10).removeO()
    assert all(c >= 0 for c in sp.Poly(series, u).all_coeffs())
    # step 5: h(s) = s/(2+sqrt s) concave: d/dt (dh/ds) = -(t+6)/(2(t+2)^3) at s = t^2
    s, tp = sp.symbols("s t_p", positive=True)
    h = s / (2 + sp.sqrt(s))
    hp = sp.diff(h, s).subs(s, tp ** 2)
    assert sp.simplify(sp.diff(hp, tp) + (tp + 6) / (2 * (tp + 2) ** 3)) == 0
    # g(t) = t^2/(2+t) = h(t^2) is increasing
    assert sp.simplify(sp.diff(tp ** 2 / (2 + tp), tp) - tp * (tp + 4) / (tp + 2) ** 2) == 0


def test_softmax_shift_and_asymptote_integral():
    """Theorem A step 1 (row shifts are free) and int_0^inf sigmoid(-z)^2 dz = ln 2 - 1/2 (C_inf)."""
    x1, x2, c = sp.symbols("x1 x2 c", real=True)
    sm_ = sp.exp(x1) / (sp.exp(x1) + sp.exp(x2))
    assert sp.simplify(sm_ - sm_.subs({x1: x1 + c, x2: x2 + c}, simultaneous=True)) == 0
    # an antiderivative of sigmoid(-z)^2 = 1/(1+e^z)^2 with F(oo) = 0, so the integral is -F(0)
    z = sp.symbols("z", positive=True)
    F = -sp.log(1 + sp.exp(-z)) + 1 / (1 + sp.exp(z))
    assert sp.simplify(sp.diff(F, z) - 1 / (1 + sp.exp(z)) ** 2) == 0
    assert F.subs(z, sp.oo) == 0 and sp.simplify(-F.subs(z, 0) - (sp.log(2) - sp.Rational(1, 2))) == 0


def test_theorem_a_construction_and_rank(record):
    logP, X = sm.instances(st.Config.smoke(), "threshold", 4, 6)
    W = th.construction(X[0], logP[0])
    AJ = logP[0] @ th.centring(4)
    np.testing.assert_allclose(X[0] @ W @ X[0].T, AJ, atol=1e-12)
    assert np.linalg.matrix_rank(W, tol=1e-10) == 3 == np.linalg.matrix_rank(AJ, tol=1e-10)
    # the naive KL of an exact fit is rounding of either sign; the stable one is >= 0 and ~1e-31
    logQ = th.log_softmax_rows(X[0] @ W @ X[0].T)
    assert th.stable_kl(logP[0], logQ).min() >= 0 and th.stable_kl(logP[0], logQ).max() < 1e-28
    assert abs(th.naive_kl(logP[0], logQ)).max() > 1e-20


def test_certificate_is_a_lower_bound_on_random_low_rank_logits():
    """Theorem B: random rank-k logits never beat the certificate (and the SVD logits neither)."""
    g = sm.Stream(0, "test/cert")
    logP = th.log_softmax_rows(g.child("G").normal((5, 5), dtype=torch.float64).numpy())
    for k in (1, 2, 3):
        lb = th.certificate(logP, k)
        A = g.child("A", k).normal((50, 5, k), dtype=torch.float64).numpy()
        B = g.child("B", k).normal((50, k, 5), dtype=torch.float64).numpy()
        kls = [th.stable_kl(logP, th.log_softmax_rows(a @ b)).mean() for a, b in zip(A, B)]
        assert min(kls) >= lb and th.svd_upper_bound(logP, k) >= lb


# ------------------------------------------------------------------------------ closed forms
def test_closed_forms_match_the_spec():
    """C_inf(d) = 0.3340, 0.4524, 0.5467, 0.8233 and b(angle 0, d = 8) = 0.59689 (spec 1.2)."""
    for d, c in ((4, 0.3340), (6, 0.4524), (8, 0.5467), (16, 0.8233)):
        assert abs(th.c_infinity(d) - c) < 6e-5
    grid, b = th.pick_probability_table(8)
    assert abs(b[-1] - 0.59689) < 1e-5 and abs(np.interp(0.0, grid, b) - 0.5) < 1e-12  # q orthogonal to k: chance
    # the quadrature's beta err(beta) approaches C_inf
    assert abs(1e4 * th.full_rank_error(1e4, 6) / th.c_infinity(6) - 1) < 1e-3


def test_two_key_shortcut_equals_the_general_head():
    s = sm.Stream(0, "test/heads")
    Q, K = s.child("Q").normal((2, 3, 5, 2), dtype=torch.float64), s.child("K").normal((2, 3, 5, 2), dtype=torch.float64)
    O = s.child("O").normal((2, 3, 4, 5), dtype=torch.float64)
    X, y = sm.sphere(s.child("X"), (7, 2, 5), members=2), sm.sphere(s.child("y"), (7, 5), members=2)
    torch.testing.assert_close(md.heads_output(Q, K, O, X, y), md.heads_output_general(Q, K, O, X, y),
                               rtol=1e-12, atol=1e-12)


def test_depth_construction_is_the_full_rank_head_at_eps_beta():
    """Layer 1's tanh sum is (eps/2) y.u + O(eps^3): paired with W = eps beta I on the same sample,
    the construction's error agrees to a relative O(eps^2)."""
    cfg = st.Config.smoke()
    X, y = sm.test_sample(cfg, 4, 2048)
    f = md.nearest_target(X, y)
    layers = md.depth_construction(4, 1e-3, 1e3)
    constr = md.squared_error(md.tagged_output(layers, X, y), f).mean()
    full, _ = sm.full_rank_mc(X, y, 1.0)
    assert abs(float(constr) / full - 1) < 1e-4


def test_member_i_does_not_depend_on_the_ensemble_size():
    """Member i's sample, init and Adam trajectory are those of member i alone (streams keyed by i)."""
    cfg = st.Config.smoke().replace(n_seeds=3, **{"nn.steps": 5})
    X3, y3 = sm.train_sample(cfg)
    X1, y1 = sm.train_sample(cfg, [2])
    assert torch.equal(X3[2:], X1) and torch.equal(y3[2:], y1)
    from studies.head_rank.bench import bench_case

    case = bench_case(3, "cpu")
    batched, single = case.run_batched(), case.run_single(1)
    for k in batched:
        torch.testing.assert_close(batched[k][1:2], single[k], rtol=1e-12, atol=1e-14)


def test_bad_input_is_refused_before_computing():
    with pytest.raises(ConfigError):
        st.Config(n_values=(4, 9), d=8)
    with pytest.raises(ConfigError):
        st.Config.smoke().replace(**{"nn.control_ranks": (4,)})
