"""induction-heads: exact levels, exact sampling, member independence, the smoke record's checks, and a
negative control for every theory check (fed its alternative, it fails)."""
import importlib
import itertools
import math

import numpy as np
import pytest
import torch

from studies import induction_heads as st
from studies.induction_heads import data, model as md, theory as th
from workbench.errors import WorkbenchInputError
from workbench.phases import load

ck = importlib.import_module("studies.induction_heads.checks")
sm = importlib.import_module("studies.induction_heads.simulate")


@pytest.fixture(scope="module")
def record(smoke_result):
    """The session's smoke record (shared with the contract test and the book build)."""
    return smoke_result("induction-heads").record


def test_smoke_checks_pass(record):
    results = st.checks(record)
    assert results and all(c.ok for c in results), [c.name for c in results if not c.ok]
    assert set(st.figures(record)) == {"loss_curves", "per_position", "scores", "attention", "escape_law",
                                       "sink_prior", "ablation"}


def test_dp_equals_enumeration_for_every_predictor():
    """The k = 2 DP against brute force over all 2^T prefixes (Bayes, Laplace(1), opt_uni, opt_uni_cur)."""
    T, alpha = 7, 0.5
    dp = th.risk_curves_k2(alpha, T)
    x, w, Q = th.population(2, T, alpha)
    assert abs(float(w.sum()) - 1) < 1e-13
    bay = th.population_risk(torch.log(Q), w, Q).numpy()
    lap = th.population_risk(torch.log(th.laplace_predictive(x, 2, 1.0)), w, Q).numpy()
    np.testing.assert_allclose(dp["bayes"], bay, atol=1e-13)
    np.testing.assert_allclose(dp["laplace_1"], lap, atol=1e-13)
    c0 = (x == 0).cumsum(1).numpy()
    for key, extra in (("opt_uni", 0), ("opt_uni_cur", 1)):
        risk = []
        for t in range(T):
            groups = {}
            for n in range(x.shape[0]):
                g = (c0[n, t], int(x[n, t]) if extra else 0)
                groups.setdefault(g, np.zeros(2))
                groups[g] += float(w[n]) * Q[n, t].numpy()
            risk.append(sum(-(m * np.log(m / m.sum())).sum() for m in groups.values()))
        np.testing.assert_allclose(dp[key], risk, atol=1e-13)


def test_closed_forms_and_bayes_predictive_is_the_posterior_mean():
    cf = th.closed_forms(3, 2.0)
    assert cf["bayes_1"] == pytest.approx(math.log(3))
    dp = th.risk_curves_k2(1.0, 3)
    assert dp["bayes"][1] == pytest.approx(th.closed_forms(2, 1.0)["bayes_2"], abs=1e-14)
    q = th.bayes_predictive(torch.tensor([[0, 0, 1, 0]]), 2, 1.0)
    np.testing.assert_allclose(q[0, -1].numpy(), [(1 + 1) / (2 + 2), (1 + 1) / (2 + 2)])   # n_00 = 1, n_01 = 1
    np.testing.assert_allclose(q[0, 1].numpy(), [2 / 3, 1 / 3])                             # after 0 -> 0


def test_dirichlet_rows_and_chains_are_exact_in_law():
    P, x = data.sample(3, "law", 2, 0.5, 40000, 3, members=None)
    p = P[:, 0, 0].numpy()
    se = math.sqrt(1 / 8 / p.size)
    assert abs(p.mean() - 0.5) < 5 * se and abs(p.var() - 1 / 8) < 5 * 0.01    # Beta(1/2, 1/2)
    freq = ((x[:, 0] == 0) & (x[:, 1] == 0)).double().mean()                   # E[P_00]/2 = 1/4
    assert abs(float(freq) - 0.25) < 5 * math.sqrt(0.25 * 0.75 / 40000)
    with pytest.raises(WorkbenchInputError):
        data.check_alpha(0.3)


def test_member_i_does_not_depend_on_the_ensemble_size():
    P3, x3 = data.sample(0, "tf-train", 3, 1.0, 4, 9, members=3, step=[0, 5])
    P1, x1 = data.sample(0, "tf-train", 3, 1.0, 4, 9, members=[2], step=[5])
    assert torch.equal(P3[2, 1], P1[0, 0]) and torch.equal(x3[2, 1], x1[0, 0])
    cfg = st.Config.smoke()
    f, W, Q = th.prefix_population(2, 6, 1.0)
    theta = torch.tensor([[0.0, -0.2, 1.2, 0.1, 0.05], [0.0, -0.2, 1.2, -0.03, 0.02]], dtype=torch.float64)
    both = sm._gd(theta, (f, W[None], Q[None]), 3.0, 20, "", False)
    alone = sm._gd(theta[1:], (f, W[None], Q[None]), 3.0, 20, "", False)
    np.testing.assert_allclose(both.theta[:, 1], alone.theta[:, 0], rtol=1e-13, atol=1e-15)
    Pt, xt = data.sample(0, "tf-test", 2, 1.0, 16, 9, members=None)
    test = (Pt, xt, sm._true_rows(Pt, xt))
    c = cfg.replace(steps=12, n_eval=5)
    two = sm.train_tf(c, 2, 2, test, False, "")
    one = sm.train_tf(c, 2, [1], test, False, "")
    np.testing.assert_allclose(two.loss[1], one.loss[0], rtol=1e-12)


def test_mm_ideal_head_is_bayes_and_rm_matches_mm():
    pop = th.population(2, 6, 2.0)
    bay = float(th.population_risk(torch.log(pop[2]), pop[1], pop[2]).mean())
    assert abs(th.ideal_head_loss(pop, 2, 2.0, 12.0) - bay) < 1e-7
    assert th.ideal_head_loss(pop, 2, 2.0, 12.0, offset=0.0) - bay > 1e-2        # without the prior: worse
    ppop = th.prefix_population(2, 6, 2.0)
    theta = torch.tensor([[1.3, -0.4, 0.7, 0.9, -1.1, 0.5]], dtype=torch.float64)
    assert abs(float(th.rm_prefix_loss(theta, (ppop[0], ppop[1][None], ppop[2][None]))[0])
               - float(th.rm_loss(theta, pop, 2)[0])) < 1e-13


# ------------------------------------------------------------------------------ negative controls
def test_every_theory_check_fails_on_its_alternative(record):
    """Each asserted theory check's rule, fed the alternative's predicted value, fails (smoke record;
    the transformer checks, out of regime at smoke, get edited-array controls below)."""
    theory_checks = [c for c in st.checks(record) if c.kind == "theory"]
    names = {c.name for c in theory_checks}
    assert {"rm_plateau_level", "rm_plateau_duration", "rm_alignment_times", "rm_escape_slope", "rm_escape_residual",
            "rm_quartic_law", "ideal_head_is_bayes", "ideal_sink_offset", "rm_sink_prior", "tf_final_near_bayes",
            "tf_final_per_position", "one_layer_floor", "tf_plateau_at_one_layer", "tf_ablate_prev_token"} <= names
    for c in theory_checks:
        assert c.alternative_predicted is not None, c.name
        if c.asserted:
            assert not c.passes(float(c.alternative_predicted)), c.name


def _copy(record):
    return type(record)(record.study, record.config, dict(record.arrays))


def test_negative_control_plateau_at_laplace_fails(record):
    rec = _copy(record)
    red = load(rec, "reduced", sm.Reduced)
    rec.arrays["reduced.cold.loss"] = red.cold.loss - red.plateau[-1, 0] + red.laplace_best[1]
    (level, duration, _) = ck.plateau_checks(rec)
    assert not level.passed and not duration.passed


def test_negative_control_sink_without_prior_fails(record):
    rec = _copy(record)
    theta = rec.arrays["reduced.sink.theta"].copy()
    theta[-1, :, 2] = theta[-1, 0, 2]                                        # the same b at every alpha
    theta[-1, :, 3:] = theta[-1, 0, 3:]
    rec.arrays["reduced.sink.theta"] = theta
    assert not [c for c in ck.sink_checks(rec) if c.name == "rm_sink_prior"][0].passed


def test_negative_control_escape_power_law_fails(record):
    """Escape times that follow t ~ sigma^-2 (shift each member's loss curve in time) fail the slope check."""
    rec = _copy(record)
    red = load(rec, "reduced", sm.Reduced)
    loss = red.escape.loss.copy()
    t = ck.crossing(loss, 0.5 * (red.plateau[-1, 0] + red.plateau[-1, 6]))
    want = np.minimum(t[0] * (red.escape_sigma.max() / red.escape_sigma) ** 0.5, loss.shape[0] - 2)
    for i in range(loss.shape[1]):
        shift = int(want[i] - t[i])
        if shift > 0:
            loss[:, i] = np.concatenate([np.full(shift, loss[0, i]), loss[:-shift, i]])
    rec.arrays["reduced.escape.loss"] = loss
    assert not [c for c in ck.escape_checks(rec) if c.name == "rm_escape_slope"][0].passed


def test_negative_control_transformer_stalled_at_unigram_fails(record):
    rec = _copy(record)
    rec.arrays["transformer.two.loss"] = np.full_like(rec.arrays["transformer.two.loss"],
                                                      rec.arrays["transformer.laplace_t"].mean())
    rec.arrays["transformer.two.loss_t"] = np.broadcast_to(rec.arrays["transformer.laplace_t"],
                                                           rec.arrays["transformer.two.loss_t"].shape).copy()
    rec.config = rec.config.replace(steps=1000)                              # declare the regime
    got = {c.name: c for c in ck.transformer_checks(rec)}
    assert not got["tf_final_near_bayes"].passed and not got["tf_final_per_position"].passed


def test_negative_controls_of_the_other_transformer_checks(record):
    """Depth irrelevant (1-layer at Bayes), a plateau at ln k, and an ablation that changes nothing all fail."""
    rec = _copy(record)
    rec.config = rec.config.replace(steps=1000)
    bay = rec.arrays["transformer.bayes_t"].mean()
    rec.arrays["transformer.one.loss"] = np.full_like(rec.arrays["transformer.one.loss"], bay)
    ind = np.linspace(0, 1, rec.arrays["transformer.two.induction"].shape[1])
    rec.arrays["transformer.two.induction"] = np.broadcast_to(ind, rec.arrays["transformer.two.induction"].shape).copy()
    L = rec.arrays["transformer.two.loss"].copy()
    L[:, :3] = math.log(rec.config.k)
    rec.arrays["transformer.two.loss"] = L
    got = {c.name: c for c in ck.transformer_checks(rec)}
    for name in ("one_layer_floor", "tf_plateau_at_one_layer"):
        assert not got[name].passed, name
    rec = _copy(record)
    rec.config = rec.config.replace(steps=1000)
    rec.arrays["transformer.two.ablate1"] = np.full_like(rec.arrays["transformer.two.ablate1"], bay)
    assert not {c.name: c for c in ck.transformer_checks(rec)}["tf_ablate_prev_token"].passed
