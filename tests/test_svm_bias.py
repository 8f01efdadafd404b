"""Tests of the SVM implicit-bias study: closed forms against the solvers, gradients against
autograd, ensemble members against standalone runs, config validation (sub-configs included), the
smoke preset, its typed results, and that sweeping a primary field reruns the primary run only."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.errors import ConfigError, SolverError
from workbench.phases import load

from studies import svm_bias as sb
from studies.svm_bias import instances, metrics, model, svm, theory, training
from studies.svm_bias.config import Config
from studies.svm_bias.metrics import corr
from studies.svm_bias.checks import free_riders
from studies.svm_bias.simulate import PHASES, MainResult, NormsResult, Sweep
from workbench.record import Record
from workbench.streams import Stream


def st(name: str, *keys) -> Stream:
    """A test's stream (every random draw of this file comes from one)."""
    return Stream(0, f"test-svm-bias/{name}", *keys)


def normal(name: str, shape) -> torch.Tensor:
    return st(name).normal(shape)


# --------------------------------------------------------------------------------- instances
@pytest.mark.parametrize("kind", ["random", "equal_scores"])
@pytest.mark.parametrize("min_gap", [1e-3, 0.2])
def test_batched_instance_member_equals_standalone(kind, min_gap):
    """Member i of an ensemble is bit-identical to member i of a larger ensemble and to
    ``members=[i]`` drawn alone, also when the score-gap rejection redraws some members (at
    min_gap 0.2 about 9 in 10 first attempts are rejected, and the slowest of 7 members needs 45
    attempts; 0.3 needed 161, which made this the slowest test of the file)."""
    kw = dict(min_gap=min_gap) if kind == "random" else {}
    make = instances.random_instance if kind == "random" else instances.equal_scores_instance
    batch = make(st("instances"), 3, 4, 5, 6, **kw)
    larger = make(st("instances"), 7, 4, 5, 6, **kw)
    for i in range(3):
        alone = make(st("instances"), [i], 4, 5, 6, **kw)
        for name in ("X", "Z", "Y", "v"):
            assert torch.equal(getattr(batch, name)[i], getattr(alone, name)[0])
            assert torch.equal(getattr(batch, name)[i], getattr(larger, name)[i])
    if kind == "random":
        assert (instances.score_gap(larger.X, larger.Y, larger.v) >= min_gap).all()


def test_init_member_equals_standalone():
    for param in ("W", "KQ"):
        batch = training.init_params(param, st("init"), 5, 6, 4, 0.3)
        for i in (0, 3):
            alone = training.init_params(param, st("init"), [i], 6, 4, 0.3)
            assert all(torch.equal(batch[k][i], alone[k][0]) for k in batch)


def test_equal_scores_instance_scores_and_queries():
    inst = instances.equal_scores_instance(st("eq"), 4, 3, 6, 5)
    g = inst.gamma
    assert torch.allclose(g.amax(dim=-1), torch.ones(4, 3, dtype=torch.float64))
    assert ((g - 0.5).abs() < 1e-15).sum(dim=-1).eq(5).all()                  # every other token scores 0.5
    gram = torch.einsum("ena,ema->enm", inst.Z, inst.Z)
    assert torch.allclose(gram, torch.eye(3, dtype=torch.float64).expand(4, 3, 3), atol=1e-12)


def test_random_instance_has_score_gap():
    inst = instances.random_instance(st("gap"), 10, 6, 8, 10)
    assert (instances.score_gap(inst.X, inst.Y, inst.v) >= 1e-3).all()
    assert torch.allclose(inst.X.norm(dim=-1), torch.ones(10, 6, 8, dtype=torch.float64))


def test_mmts_instance_scores():
    inst = instances.mmts_single_instance()
    assert torch.allclose(inst.gamma[0, 0], torch.tensor([1.0, 0.9, 0.0], dtype=torch.float64))


# ------------------------------------------------------------------------------------ model
@pytest.mark.parametrize("loss", ["logistic", "exp", "correlation"])
def test_closed_form_gradient_equals_autograd(loss):
    inst = instances.random_instance(st("grad"), 3, 4, 5, 6)
    W = normal("grad-W", (3, 6, 6)) * 2
    risk, grad = model.risk_gradient_W(W, inst.X, inst.Z, inst.gamma, loss)
    Wr = W.clone().requires_grad_(True)
    auto = model.empirical_risk({"W": Wr}, inst.X, inst.Z, inst.gamma, loss)
    (g_auto,) = torch.autograd.grad(auto.sum(), Wr)
    assert torch.allclose(risk, auto.detach(), rtol=1e-13, atol=1e-15)
    assert torch.allclose(grad, g_auto, rtol=1e-10, atol=1e-15)
    naive = model.empirical_risk({"W": W}, inst.X, inst.Z, inst.gamma, loss, forward="naive")
    assert torch.allclose(naive, risk, rtol=1e-12)


def test_loss_derivative_matches_autograd():
    u = torch.linspace(-3, 3, 13, dtype=torch.float64, requires_grad=True)
    for kind in model.LOSSES:
        (g,) = torch.autograd.grad(model.loss_fn(u, kind).sum(), u)
        assert torch.allclose(g, model.loss_derivative(u.detach(), kind), rtol=1e-13)


def test_kq_training_gradient_is_chain_rule():
    """The (K, Q) gradients used in training equal autograd through W = K Q^T."""
    inst = instances.random_instance(st("kq"), 2, 3, 4, 5)
    K, Q = normal("kq-K", (2, 5, 3)), normal("kq-Q", (2, 5, 3))
    Kr, Qr = K.clone().requires_grad_(True), Q.clone().requires_grad_(True)
    auto = model.empirical_risk({"K": Kr, "Q": Qr}, inst.X, inst.Z, inst.gamma, "logistic")
    gK, gQ = torch.autograd.grad(auto.sum(), [Kr, Qr])
    _, G = model.risk_gradient_W(model.weight({"K": K, "Q": Q}), inst.X, inst.Z, inst.gamma, "logistic")
    assert torch.allclose(torch.einsum("eab,ebm->eam", G, Q), gK, rtol=1e-10, atol=1e-16)
    assert torch.allclose(torch.einsum("eab,eam->ebm", G, K), gQ, rtol=1e-10, atol=1e-16)


def test_naive_gradient_vanishes_past_the_horizon_stable_does_not():
    inst = instances.toy_instance(60.0)
    W_mm = torch.as_tensor(theory.toy_solutions(60.0)["W_fro"])[None]
    for m, naive_zero in ((20.0, False), (45.0, True)):
        grads = {}
        for forward in ("naive", "stable"):
            Wr = (m * W_mm).clone().requires_grad_(True)
            (grads[forward],) = torch.autograd.grad(
                model.empirical_risk({"W": Wr}, inst.X, inst.Z, inst.gamma, "logistic", forward).sum(), Wr)
        assert bool((grads["naive"] == 0).all()) == naive_zero
        cos = -(grads["stable"] * W_mm).sum() / (grads["stable"].norm() * W_mm.norm())
        assert abs(float(cos) - 1) < 1e-12


def test_saturation_is_accurate_below_eps():
    inst = instances.toy_instance(60.0)
    W_mm = theory.toy_solutions(60.0)["W_fro"][None]
    sat = metrics.saturations(sb.simulate.Instances.of(inst), 100 * W_mm)
    assert math.isclose(float(sat[0]), math.exp(-100) / (1 + math.exp(-100)), rel_tol=1e-10)


# -------------------------------------------------------------------------------------- SVM
@pytest.mark.parametrize("angle", [30.0, 60.0, 80.0])
def test_att_svm_matches_toy_closed_forms(angle):
    inst = instances.toy_instance(angle)
    X, Z, alpha = inst.X[0].numpy(), inst.Z[0].numpy(), np.zeros(2, dtype=int)
    toy = theory.toy_solutions(angle)
    fro, nuc, op = (svm.att_svm(X, Z, alpha, norm) for norm in ("fro", "nuc", "op"))
    assert math.isclose(fro.value, toy["fro_value"], rel_tol=1e-7)
    assert math.isclose(nuc.value, toy["nuc_value"], rel_tol=1e-7)
    assert math.isclose(op.value, toy["op_value"], rel_tol=1e-7)
    assert np.allclose(fro.W, toy["W_fro"], atol=1e-6)
    assert np.allclose(nuc.W, toy["W_nuc"], atol=1e-4)                          # unique nuclear minimiser
    assert math.isclose(float(corr(toy["W_fro"], toy["W_nuc"])), toy["cos_fro_nuc"], rel_tol=1e-12)
    ldp, lam = svm.att_svm_ldp(X, Z, alpha)
    assert np.allclose(ldp, toy["W_fro"], atol=1e-12)
    assert lam.shape == (2,) and (lam > 0).all()                                # both constraints active
    assert fro.support[:, 1].all()


def test_ldp_crosscheck_and_kkt_on_random_instances():
    inst = instances.random_instance(st("ldp"), 4, 5, 6, 8)
    for e in range(4):
        X, Z = inst.X[e].numpy(), inst.Z[e].numpy()
        alpha = inst.opt[e].numpy()
        sol = svm.att_svm(X, Z, alpha, "fro")
        W, lam = svm.att_svm_ldp(X, Z, alpha)
        assert np.linalg.norm(W - sol.W) / np.linalg.norm(W) < 1e-5
        assert abs(np.nanmin(svm.margins(X[None], Z[None], alpha[None], W[None])) - 1) < 1e-9
        # the dual weights live on the support set (complementary slackness) and rebuild W
        D, Zk = svm.margin_features(X, Z, alpha)
        assert np.allclose(np.einsum("k,ka,kb->ab", lam, D, Zk), W, atol=1e-9)
        support = np.array([sol.support[i_, t] for i_ in range(5) for t in range(6) if t != alpha[i_]])
        assert not (lam > 1e-8)[~support].any()
        assert svm.numerical_rank(W) <= 5                                       # rank <= n
        for norm in ("nuc", "op"):
            assert abs(np.nanmin(svm.att_svm(X, Z, alpha, norm).margins) - 1) < 1e-6


def _infeasible_instance():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    X = np.array([[a, b], [a, b]])                                              # the same tokens twice
    Z = np.array([[1.0, 0.0], [1.0, 0.0]])                                      # and the same query
    return X, Z, np.array([0, 1])                                               # but opposite selections


def test_infeasible_svm_raises_clear_errors():
    X, Z, alpha = _infeasible_instance()
    for norm in svm.NORMS:
        with pytest.raises(svm.InfeasibleSVMError, match="infeasible"):
            svm.att_svm(X, Z, alpha, norm)
    with pytest.raises(svm.InfeasibleSVMError):
        svm.att_svm_ldp(X, Z, alpha)
    assert issubclass(svm.InfeasibleSVMError, SolverError)


def test_failed_solve_raises(monkeypatch):
    class Broken:
        status = "unbounded"

        def solve(self, **kwargs):
            return None

    class Var:
        value = None

    class Param:
        value = None

    monkeypatch.setattr(svm, "_problem", lambda *args, **kw: (Broken(), Param(), Var()))
    inst = instances.toy_instance(60.0)
    with pytest.raises(SolverError, match="did not solve"):
        svm.att_svm(inst.X[0].numpy(), inst.Z[0].numpy(), np.zeros(2, dtype=int))


def test_mmts_svms_and_local_optimality():
    inst = instances.mmts_single_instance()
    X, Z, g = inst.X[0].numpy(), inst.Z[0].numpy(), inst.gamma[0].numpy()
    glob, loc = svm.att_svm(X, Z, np.array([0])), svm.att_svm(X, Z, np.array([1]))
    assert np.allclose(glob.W[:, 0], theory.MMTS_P_GLOBAL, atol=1e-6)
    assert np.allclose(loc.W[:, 0], theory.MMTS_P_LOCAL, atol=1e-6)
    assert loc.support[0].tolist() == [False, False, True]
    assert svm.locally_optimal(g[None], np.array([[1]]), loc.support[None])[0]  # token 2 beats its support
    bad = svm.att_svm(X, Z, np.array([2]))                                      # token 3 (score 0) selected
    assert not svm.locally_optimal(g[None], np.array([[2]]), bad.support[None])[0]


def test_kq_nuclear_identity():
    """min over K Q^T = W of (||K||^2 + ||Q||^2)/2 is ||W||_*, attained by the balanced SVD factors."""
    W = normal("nuc-W", (5, 5)).numpy()
    U, s, Vt = np.linalg.svd(W)
    K, Q = U * np.sqrt(s), Vt.T * np.sqrt(s)
    assert np.allclose(K @ Q.T, W)
    assert math.isclose((np.sum(K ** 2) + np.sum(Q ** 2)) / 2, s.sum(), rel_tol=1e-12)
    for _ in range(20):                                                         # any other factorisation costs more
        A = st("nuc-A").normal((5, 5), step=_).numpy()
        K2, Q2 = K @ A, Q @ np.linalg.inv(A).T
        assert np.allclose(K2 @ Q2.T, W, atol=1e-8)
        assert (np.sum(K2 ** 2) + np.sum(Q2 ** 2)) / 2 >= s.sum() - 1e-9


# --------------------------------------------------------------------------------- training
@pytest.mark.parametrize("optimizer,param,per", [("ngd", "W", "tensor"), ("spectral", "W", "tensor"),
                                                 ("ngd", "KQ", "tensor"), ("ngd", "KQ", "joint"), ("gd", "W", "tensor")])
def test_ensemble_member_equals_standalone_run(optimizer, param, per):
    inst = instances.random_instance(st("ens"), 3, 4, 5, 6)
    init = training.init_params(param, st("ens-init"), 3, 6, 6, 0.3)
    kw = dict(optimizer=optimizer, lr=0.3, steps=60, loss="logistic", ngd_per=per)
    batch = training.train_attention(inst, init, **kw)
    for i in range(3):
        alone_init = {k: v[i:i + 1] for k, v in init.items()}
        alone = training.train_attention(inst.member(i), alone_init, **kw)
        # equal up to float64 reduction order: a batched and a single matmul may round the last bit
        # differently, and the normalised steps amplify it (per-factor (K, Q) NGD most: 6.1e-11 of the
        # largest entry after 60 steps on these draws; 1.2e-11 on the old generator draws); a wrong
        # member would differ by O(1)
        scale = float(alone.W_traj[:, 0].abs().max())
        assert float((batch.W_traj[:, i] - alone.W_traj[:, 0]).abs().max()) <= 1e-9 * scale


def test_underflow_guard_freezes_members():
    """The naive forward pass loses its gradient at margin ~36: the guard freezes that member."""
    inst = instances.toy_instance(60.0, 2)
    init = {"W": torch.zeros((2, 2, 2), dtype=torch.float64)}
    lr = torch.tensor([0.5, 0.005], dtype=torch.float64)                        # member 0 reaches the horizon
    run = training.train_attention(inst, init, optimizer="ngd", lr=lr, steps=900, loss="logistic", grad_floor=1e-140,
                                   forward="naive")
    assert run.frozen_at[0] > 0 and run.frozen_at[1] == -1
    frozen = run.steps > run.frozen_at[0].item()
    assert torch.equal(run.W_traj[frozen, 0], run.W_traj[-1:, 0].expand(int(frozen.sum()), -1, -1))
    margin = float(model.attention_logits(inst.X, run.W, inst.Z)[0, 0, 0])
    assert 30 < margin < 45


def test_rescaled_gradient_has_the_same_direction_and_no_horizon():
    X, Z = normal("rs-X", (3, 4, 5, 6)), normal("rs-Z", (3, 4, 6))
    gamma = normal("rs-gamma", (3, 4, 5))
    for scale, exact in ((1.0, True), (30.0, True), (30000.0, False)):   # 3000 left one gap at ~100 on these draws
        W = scale * st("rs-W", int(scale)).normal((3, 6, 6))
        _, G = model.risk_gradient_W(W, X, Z, gamma, "logistic")
        _, S = model.risk_gradient_W(W, X, Z, gamma, "logistic", scaled=True)
        assert torch.isfinite(S).all() and (S.flatten(1).abs().amax(1) > 1e-3).all()
        if exact:   # where the plain gradient is representable, the directions agree
            cos = (G * S).flatten(1).sum(1) / (G.flatten(1).norm(dim=1) * S.flatten(1).norm(dim=1))
            assert torch.allclose(cos, torch.ones(3, dtype=torch.float64), atol=1e-12)
        else:       # logit gaps in the thousands: the plain gradient is below the guard's floor (or zero)
            assert (G.flatten(1).abs().amax(1) < 1e-140).all()
    # normalised GD on the stable pass runs far past the horizon (margin ~700) without freezing
    inst = instances.toy_instance(60.0, 1)
    run = training.train_attention(inst, {"W": torch.zeros((1, 2, 2), dtype=torch.float64)}, optimizer="ngd",
                                   lr=2.0, steps=900, loss="logistic")
    assert run.frozen_at[0] == -1
    assert float(model.attention_logits(inst.X, run.W, inst.Z)[0, 0, 0]) > 1000


def test_joint_ngd_step_has_joint_unit_length():
    inst = instances.random_instance(st("joint"), 2, 3, 4, 5)
    init = training.init_params("KQ", st("joint-init"), 2, 5, 5, 0.3)
    run = training.train_attention(inst, init, optimizer="ngd", lr=0.2, steps=1, loss="logistic", ngd_per="joint",
                                   observe_at=np.array([0, 1]))
    step = torch.sqrt(sum((run.params[k] - init[k]).flatten(1).pow(2).sum(1) for k in ("K", "Q")))
    assert torch.allclose(step, torch.full((2,), 0.2, dtype=torch.float64), rtol=1e-12)


# ----------------------------------------------------------------------------------- config
@pytest.mark.parametrize("changes,match", [
    (dict(param="KQ", init_scale=0.0), "stationary"),
    (dict(T=1), "T must be"),
    (dict(angle_deg=90.0), "angle_deg"),
    (dict(optimizer="adam"), "optimizer"),
    ({"sweep.rank_instances": 30, "sweep.n_inits": 10}, "sweep.rank_instances"),
    (dict(instance="equal_scores", n=12, d=10, suite=False), "orthonormal"),
    ({"equal.n": 12}, "equal.n must be <= d"),
    ({"sweep.widths": (8, 4)}, "sweep.widths must be strictly increasing"),
    (dict(lr=0.0), "lr"),
    ({"toy.lr": 0.0}, "toy.lr"),
    ({"toy.angle_deg": 90.0}, "toy.angle_deg"),
    ({"norms.T": 1}, "norms.T must be"),
    ({"mmts.loss": "hinge"}, "mmts.loss"),
])
def test_config_validation(changes, match):
    with pytest.raises(ConfigError, match=match):
        Config.quick().replace(**changes)


def test_primary_fields_leave_the_battery_alone():
    """The flat fields are the primary run's: the battery's sub-configs keep their own copies."""
    base = Config.quick()
    for changes in (dict(lr=0.1), dict(steps=200), dict(n=3, T=4, d=5), dict(loss="exp"), dict(angle_deg=30.0),
                    dict(rank_m=4, ngd_per="joint")):
        cfg = base.replace(**changes)
        assert all(getattr(cfg, f) == getattr(base, f) for f in ("toy", "norms", "equal", "sweep", "mmts", "horizon"))
    assert Config(n=12, d=10).n == 12                     # the battery's orthonormal queries no longer bind n
    assert base.with_overrides(["toy.lr=0.2"]).toy.lr == 0.2 and base.with_overrides(["toy.lr=0.2"]).lr == 0.5


def test_predict_closed_forms():
    p = sb.predict(Config.quick())
    assert math.isclose(p["toy"]["cos_fro_nuc"], 3 / math.sqrt(10), rel_tol=1e-12)
    assert math.isclose(p["toy_gd_slope"], math.sqrt(2 / 1.25), rel_tol=1e-12)
    assert p["main_norm"] == "fro" and p["feasibility_width"] == 7
    assert 30 < p["naive_horizon_margin"] < 37
    assert sb.predict(Config.quick().replace(param="KQ", init_scale=0.1))["main_norm"] == "nuc"


# ------------------------------------------------------------------------------------ smoke
@pytest.fixture(scope="module")
def smoke_cache(tmp_path_factory):
    """The phase cache the smoke record is computed in, so that the lr-sweep test reuses its battery
    instead of computing the smoke preset a second time."""
    return tmp_path_factory.mktemp("svm_bias_phases")


@pytest.fixture(scope="module")
def smoke_record(smoke_cache):
    from workbench.phases import phase_cache
    from workbench.runner import code_fingerprint

    torch.set_num_threads(1)
    with phase_cache(smoke_cache, code_fingerprint(sb)):
        return sb.run(Config.smoke(), progress=False)


def test_smoke_checks_computed_and_pass(smoke_record):
    results = sb.checks(smoke_record)
    names = [c.name for c in results]
    assert len(names) == len(set(names)) and len(names) >= 25
    failed = [c.name for c in results if not c.ok]
    assert not failed, failed
    # smoke is below plain GD's ln k regime: A6 is shown, not asserted (and never counted); so is
    # the nonlinear head's selection, below GEN_SELECTION_STEPS
    for name in ("A6_random_gd_log_growth", "GEN_selection"):
        check = next(c for c in results if c.name == name)
        assert not check.asserted and check.status == "not asserted", name


# ------------------------------------------------------------------ kinds and negative controls
KINDS = {"identity": {"A7_rank_at_most_n", "A7_feasible_when_wide", "JOINT_svm_closed_forms"},
         "numerics": {"HORIZON_naive", "HORIZON_naive_training", "HORIZON_stable", "SVM_kkt_margin",
                      "SVM_scipy_crosscheck", "GF_step_converged", "GEN_svm_kkt"},
         "observation": {"A7_nuclear_lower_rank", "SWEEP_global_fraction_widest", "SWEEP_init_scale",
                         "GF_vs_per_factor", "GEN_finite_bounded", "GEN_svmeq_fit", "GEN_relu_accepted",
                         "GEN_relu_direction"}}


def test_check_kinds_and_rivals(smoke_record):
    """Every check has its kind; every theory check names its rival (the duplicates of A1 and A2 are
    folded into their rivals)."""
    results = sb.checks(smoke_record)
    for kind, names in KINDS.items():
        assert {c.name for c in results if c.kind == kind} == names, kind
    theory = [c for c in results if c.kind == "theory"]
    assert len(theory) == len(results) - sum(map(len, KINDS.values())) == 30
    assert all(c.alternative for c in theory), [c.name for c in theory if not c.alternative]
    assert not {"A1_toy_W_vs_nuclear", "A2_toy_KQ_vs_frobenius"} & {c.name for c in results}


def test_rival_predictions_fail_the_checks(smoke_record):
    """Fed its rival's value of the measured quantity, every theory check with a pass rule fails.
    Smoke's short plain-GD run (3000 steps) leaves A6's toy slope too uncertain to reject the
    nuclear slope; the rival trajectory below fails it."""
    results = {c.name: c for c in sb.checks(smoke_record)}
    fed = 0
    for c in results.values():
        if c.kind != "theory" or c.rule is None or c.alternative_predicted is None:
            continue
        if c.name == "A6_toy_gd_log_growth":
            continue
        assert not c.passes(float(c.alternative_predicted)), c.name
        fed += 1
    assert fed == 27
    # smoke has no sweep width matching the equal-score runs; the quick rival is 0.59
    assert results["A4_equal_scores_global"].alternative_predicted is None
    assert not results["A4_equal_scores_global"].passes(0.96)


def _with(record, **arrays) -> Record:
    """The record with some arrays replaced (keys with dots written as __)."""
    return Record(record.study, record.config, {**record.arrays, **{k.replace("__", "."): v for k, v in arrays.items()}})


def _failing(record, group) -> set[str]:
    return {c.name for c in group(record) if not c.passed}


def test_rival_measurements_fail_the_checks(smoke_record):
    """Runs replaced by the rival's limit (the rival SVM, plain GD's ln k rate, the other MMTS
    prompt) fail the theory checks through the check functions themselves."""
    import importlib
    ck = importlib.import_module("studies.svm_bias.checks")          # the module (sb.checks is the function)
    a, steps = smoke_record.arrays, smoke_record.config.steps
    assert _failing(_with(smoke_record, main__W=1e3 * a["main.svm_nuc"]), ck.main_checks) >= {"A3_direction"}
    assert "A3_saturation" in _failing(_with(smoke_record, main__W=np.log(steps) * a["main.svm_fro"]), ck.main_checks)
    toy = theory.toy_solutions(smoke_record.config.toy.angle_deg)
    k = np.maximum(a["toy.gd.steps"], 1)
    assert _failing(_with(smoke_record, toy__ngd__W=toy["W_nuc"][None], toy__kq__W=toy["W_fro"][None],
                          toy__gd__W_traj=np.log(k)[:, None, None, None] * toy["W_nuc"][None, None]),
                    ck.toy_checks) == {"A1_toy_W_frobenius", "A2_toy_KQ_nuclear", "A6_toy_gd_log_growth"}
    k = np.maximum(a["norms.gd.steps"], 1)[:, None, None, None]
    rival_norms = _with(smoke_record, norms__kq__W=a["norms.kq.svm_fro"], norms__ngd__W=a["norms.ngd.svm_nuc"],
                        norms__spectral__W=a["norms.spectral.svm_fro"], norms__gd__W_traj=np.log(k) * a["norms.gd.svm_nuc"])
    assert _failing(rival_norms, ck.norms_checks) == {
        "A5_KQ_nuclear_efficiency", "A5_KQ_not_frobenius", "A5_W_frobenius_efficiency", "A5_W_not_nuclear",
        "A6_random_gd_log_growth", "EXT_spectral_operator_efficiency", "EXT_trichotomy_diagonal",
        "GF_vs_per_factor"}   # the observation compares the (replaced) per-factor run with the flow
    assert "A4_equal_scores_direction" in _failing(_with(smoke_record, equal__W=a["equal.svm_nuc"]), ck.equal_checks)
    W = a["mmts.W"].copy()
    i_loc, i_zero = theory.MMTS_STARTS.index(-1.0), theory.MMTS_STARTS.index(0.0)
    W[i_loc, :, 0], W[i_zero, :, 0] = theory.MMTS_P_GLOBAL, theory.MMTS_P_LOCAL
    assert _failing(_with(smoke_record, mmts__W=W), ck.mmts_checks) == {"A8_local_start", "A8_zero_start"}
    # the gradient-flow (K, Q) path at the Frobenius SVM; self-attention at the nuclear SVM
    assert _failing(_with(smoke_record, norms__gf__W=a["norms.gf.svm_fro"]), ck.norms_checks) >= {
        "GF_KQ_nuclear_efficiency", "GF_KQ_not_frobenius"}
    assert _failing(_with(smoke_record, self_attn__W=1e3 * a["self_attn.svm_nuc"]), ck.self_attn_checks) == {
        "SELF_direction"}
    # joint training: v kept at v0, p at the all-margin SVM (loose) and at (1, 0) (tight)
    v, p = a["joint.v_traj"].copy(), a["joint.p_traj"].copy()
    v[-1] = theory.JOINT_V0
    p[-1, 0], p[-1, 1] = a["joint.p_mm"][0], (1.0, 0.0)
    assert _failing(_with(smoke_record, joint__v_traj=v, joint__p_traj=p), ck.joint_checks) == {
        "JOINT_v_direction", "JOINT_p_relaxed", "JOINT_p_tight"}
    # the sweep: every wide run labelled "other" (W replaced by a direction that selects nothing consistently)
    sw = {k: v for k, v in a.items() if k.startswith("sweep_small.") and k.endswith(".W")}
    # (smoke's 6 inits cannot assert it, so the rule is applied to the measurement directly)
    conv = next(c for c in ck.sweep_checks(_with(smoke_record, **{k.replace(".", "__"): -v for k, v in sw.items()}))
                if c.name == "SWEEP_converges_locally")
    assert not conv.passes(conv.measured) and conv.measured == 0.0
    # the nonlinear head on the one-token SVM ray, with one-token softmax (all mass on the argmax)
    W1 = a["nonlinear.W_single"] * (np.linalg.norm(a["nonlinear.W"], axis=(-2, -1))
                                    / np.linalg.norm(a["nonlinear.W_single"], axis=(-2, -1)))[:, None, None]
    s1 = np.eye(a["nonlinear.s_final"].shape[-1])[a["nonlinear.s_final"].argmax(axis=-1)]
    traj = a["nonlinear.W_traj"].copy()
    traj[-1] = W1
    gen = {c.name: c for c in ck.nonlinear_checks(_with(smoke_record, nonlinear__W=W1, nonlinear__W_traj=traj,
                                                              nonlinear__s_final=s1))}
    assert not gen["GEN_direction"].passed and not gen["GEN_finite_component"].passed
    assert not gen["GEN_selection"].passes(gen["GEN_selection"].measured)   # (not asserted at smoke)


def test_free_rider_check_rejects_the_local_svm():
    """Two sequences sharing the query e_1: the first picks opt (token 1), the second is stuck on
    token 2, whose constraint against token 3 is active in W^mm_alpha but not in the SVM of the
    first sequence alone.  A run at that SVM is a free rider; a run at W^mm_alpha is not."""
    from types import SimpleNamespace
    e1, e2, zero = np.eye(2)[0], np.eye(2)[1], np.zeros(2)
    X = np.array([[[e1, zero, zero], [zero, e1, e1 + e2]]])                  # (1, n=2, T=3, d=2)
    Z = np.array([[e1, e1]])
    S_others = np.outer(e1, e1)                                                 # SVM of sequence 1 alone
    S_alpha = svm.att_svm(X[0], Z[0], np.array([0, 1]), "fro").W
    assert np.allclose(S_alpha, np.outer(e1, e1) - np.outer(e2, e1), atol=1e-6) and corr(S_alpha, S_others) < 0.99
    rq = SimpleNamespace(X=X, Z=Z, W=(S_others - 0.01 * np.outer(e2, e1))[None], opt=np.array([[0, 0]]),
                         others_mask=np.array([[True, False]]), svm_others=S_others[None])
    assert metrics.selected(rq, rq.W).tolist() == [[0, 1]]
    explained, stuck = free_riders(rq)
    assert stuck == 1 and explained.tolist() == [True]
    assert free_riders(rq, S_alpha[None])[0].tolist() == [False]


def test_wilson_interval():
    """Wilson's score interval: known values, inside [0, 1], and a non-zero width at 0 and n."""
    from studies.svm_bias.checks import wilson_interval
    lo, hi = wilson_interval(100, 100)
    assert math.isclose(lo, 100 / (100 + 1.96 ** 2), rel_tol=1e-12) and math.isclose(hi, 1.0, rel_tol=1e-12)
    lo, hi = wilson_interval(82, 100)
    assert abs(lo - 0.7333) < 1e-3 and abs(hi - 0.8826) < 1e-3
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] > 0.2


def test_joint_closed_forms_match_ldp():
    """The LDP solutions of MMTS's joint example equal `theory.joint_solutions` (also checked on a record)."""
    for variant in ("loose", "tight"):
        sol = theory.joint_solutions(variant)
        x = np.array([[1.0, 1.0], [1.0, -1.0], list(theory.JOINT_X3[variant])])
        Y = np.array([1.0, -1.0, 1.0])
        assert np.allclose(svm.ldp(Y[:, None] * x, np.ones(3)), sol["v_mm"], atol=1e-10)
        assert np.allclose(svm.ldp(x, np.ones(3)), sol["p_mm"], atol=1e-10)
        sup = np.abs(Y * (x @ sol["v_mm"]) - 1) < 1e-9
        assert sup.tolist() == ([True, True, False] if variant == "loose" else [True, True, True])
        assert np.allclose(svm.ldp(x, sup.astype(float)), sol["p_rel"], atol=1e-10)


def test_self_attention_instance_queries_are_tokens():
    inst = instances.self_attention_instance(st("self"), 3, 4, 5, 6)
    assert torch.equal(inst.Z, inst.X[:, :, 0])
    alone = instances.self_attention_instance(st("self"), [2], 4, 5, 6)
    assert torch.equal(alone.Z[0], inst.Z[2])


def test_sweep_z_test():
    """The width check is a two-proportion z-test at 1.96 pooled binomial standard errors: at 25
    inits, 8 -> 16 global runs (z = 2.26, the quick record before the stream migration) passes, 8 -> 14
    (z = 1.70) does not,
    nor does no growth, nor equal fractions of 1."""
    from studies.svm_bias.checks import growth_test
    def passes(k0, k1, n):
        diff, _, bar = growth_test(k0, k1, n)
        return diff >= bar

    diff, se, _ = growth_test(8, 16, 25)
    assert math.isclose(diff, 0.32) and math.isclose(se, math.sqrt(0.48 * 0.52 * 2 / 25)) and passes(8, 16, 25)
    assert not passes(8, 14, 25) and not passes(8, 8, 25) and not passes(25, 25, 25)


def test_sweeping_lr_reruns_the_primary_run_only(smoke_record, smoke_cache):
    """At lr = 0.1 every phase but the primary run is bit-identical to the lr = 0.5 smoke run, and
    through the runner (`workbench sweep --grid lr=...`) the battery is reused, not recomputed (the
    smoke record filled the cache)."""
    from workbench.phases import phase_cache
    from workbench.runner import code_fingerprint

    with phase_cache(smoke_cache, code_fingerprint(sb)):
        other = sb.run(Config.smoke().replace(lr=0.1), progress=False)
    assert other.info["phases_reused"] == ["toy", "norms", "equal", "equal_rq", "sweep", "sweep_small", "mmts",
                                           "self_attn", "joint", "horizon", "nonlinear"]
    a, b = smoke_record.arrays, other.arrays
    assert set(a) == set(b)
    battery = [k for k in a if not k.startswith("main.")]
    assert battery and all(np.array_equal(a[k], b[k], equal_nan=True) for k in battery)
    assert not np.array_equal(a["main.W"], b["main.W"]) and not np.array_equal(a["main.W_traj"], b["main.W_traj"])
    assert np.array_equal(a["main.X"], b["main.X"])         # the same instances, trained at another step size


def test_phases_store_typed_results(smoke_record):
    assert [p.name for p in PHASES] == ["solver", "main", "toy", "norms", "equal", "equal_rq", "sweep", "sweep_small",
                                        "mmts", "self_attn", "joint", "horizon", "nonlinear"]
    main = load(smoke_record, "main", MainResult)
    assert main.W.shape == (4, 10, 10) and main.svm_op is None and main.svm_fro_ldp is not None
    assert main.svm_nuc.shape == (4, 10, 10)                                # the rival norm of A3
    assert main.alpha_random.shape == (4, 6) and main.random_support.shape == (4, 6, 8)
    norms = load(smoke_record, "norms", NormsResult)
    assert norms.kq.K is not None and norms.ngd.K is None and not hasattr(norms.naive, "alpha")
    assert norms.gd.svm_op is None and norms.gd.svm_nuc.shape == (3, 10, 10)
    assert norms.spectral.svm_op.shape == (3, 10, 10)
    sweep = load(smoke_record, "sweep", Sweep)
    assert sorted(sweep) == ["d4", "d8"] and sweep["d4"].rank_fro_W.shape == (3, 4, 4)
    assert sweep["d4"].random_support.shape == (3, 6, 8)
    assert not any(k.startswith("solver.") for k in smoke_record.arrays)   # the shared SVM cache is not stored


def test_smoke_record_is_self_contained(smoke_record):
    """The record holds what a third party needs to re-solve an SVM and re-measure a correlation."""
    a = smoke_record.arrays
    i = 0
    X, Z, W = a["main.X"][i], a["main.Z"][i], a["main.W"][i]
    alpha = np.argmax(np.einsum("nta,ab,nb->nt", X, W, Z), axis=-1)
    resolved = svm.att_svm(X, Z, alpha, "fro")
    assert np.allclose(resolved.W, a["main.svm_fro"][i], atol=1e-6)
    assert {"main.W_traj", "toy.kq.W_traj", "norms.spectral.svm_op", "sweep.d4.rank_nuc_W"} <= set(a)


def test_smoke_figures(smoke_record):
    import matplotlib.pyplot as plt

    figs = sb.figures(smoke_record)
    assert {"correlation", "toy_trajectories", "spectra", "precision_horizon", "fractions_vs_d",
            "joint_training"} <= set(figs)
    for fig in figs.values():
        plt.close(fig)


# ------------------------------------------------------------------ nonlinear head and Gen-SVM
def test_optimal_mixture_matches_a_qp_solver():
    """The support enumeration of `nonlinear.optimal_mixture` against cvxpy on random unit tokens."""
    import cvxpy as cp
    from studies.svm_bias.nonlinear import optimal_mixture

    X = normal("mix", (4, 4, 6)).double()
    X = (X / X.norm(dim=-1, keepdim=True)).numpy()                           # (4 sequences, T=4, d=6)
    v = normal("mix-v", (6,)).double().numpy()
    gam, G = X @ v, X @ X.transpose(0, 2, 1)
    for lam in (0.1, 0.3, 1.0):
        mix = optimal_mixture(gam, G, lam)
        for i in range(len(X)):
            s = cp.Variable(4)
            cp.Problem(cp.Maximize(gam[i] @ s - lam * cp.quad_form(s, G[i])), [s >= 0, cp.sum(s) == 1]).solve(
                solver="CLARABEL")
            assert np.allclose(mix.s_star[i], s.value, atol=1e-6)
            assert np.array_equal(mix.support[i], mix.s_star[i] > 0) and mix.slack[i] >= 0


def test_gen_svm_solution_and_subspaces():
    """Gen-SVM: W_fin lies in S_fin and gives the predicted within-O log-ratios; W_dir is orthogonal
    to S_fin, has equal logits on O_i and minimum margin 1 against the rest; a lambda-head
    instance member equals the one drawn alone."""
    from studies.svm_bias.nonlinear import fin_projection, fin_rows, gen_svm, lam_head_instance

    kw = dict(lam=0.3, min_weight=0.05, min_slack=0.05)
    inst, mix = lam_head_instance(st("gen"), 3, 3, 4, 6, **kw)
    alone, mix_alone = lam_head_instance(st("gen"), [2], 3, 4, 6, **kw)
    assert torch.equal(inst.X[2:], alone.X) and np.array_equal(mix.s_star[2:], mix_alone.s_star)
    assert np.all(inst.Y.numpy() == 1) and np.all(np.any(mix.support.sum(-1) >= 2, axis=-1))
    X, Z = inst.X.numpy(), inst.Z.numpy()
    for j in range(3):
        g = gen_svm(X[j], Z[j], mix.support[j], mix.s_star[j])
        F, pairs = fin_rows(X[j], Z[j], mix.support[j])
        assert np.allclose(fin_projection(g.W_fin, g.fin_basis), g.W_fin, atol=1e-12)
        assert np.allclose(fin_projection(g.W_dir, g.fin_basis), 0, atol=1e-12)
        ratios = [np.log(mix.s_star[j, i, t] / mix.s_star[j, i, r]) for i, t, r in pairs]
        assert np.allclose(F @ g.W_fin.ravel(), ratios, atol=1e-10)
        assert abs(g.min_margin - 1) < 1e-9 and g.equality_residual < 1e-12


def test_lam_head_margins_and_config_validation():
    from studies.svm_bias.model import attention_logits
    from studies.svm_bias.nonlinear import lam_head_margins

    X, Z, W, v = (normal(name, shape).double()[None] for name, shape in
                  (("h-X", (3, 4, 6)), ("h-Z", (3, 6)), ("h-W", (6, 6)), ("h-v", (6,))))
    s = torch.softmax(attention_logits(X, W, Z), dim=-1)
    a = torch.einsum("ent,enta->ena", s, X)
    assert torch.allclose(lam_head_margins(attention_logits(X, W, Z), X, v, 0.3),
                          torch.einsum("ena,ea->en", a, v) - 0.3 * (a * a).sum(-1), atol=1e-14)
    from studies.svm_bias.nonlinear import lam_head_risk_gradient, relu_head_risk_gradient
    V, Y = normal("h-V", (6, 6)).double()[None], torch.tensor([[1.0, -1.0, 1.0]], dtype=torch.float64)
    for kind in ("logistic", "exp"):
        Wr = W.clone().requires_grad_(True)
        (g_auto,) = torch.autograd.grad(model.loss_fn(lam_head_margins(attention_logits(X, Wr, Z), X, v, 0.3),
                                                      kind).mean(), Wr)
        risk, g = lam_head_risk_gradient(W, X, Z, v, 0.3, kind)
        assert torch.allclose(g, g_auto, atol=1e-13, rtol=1e-11), kind
        a = torch.einsum("ent,enta->ena", torch.softmax(attention_logits(X, Wr, Z), dim=-1), X)
        u = Y * torch.relu(torch.einsum("ena,eab->enb", a, V)).sum(-1)
        (g_auto,) = torch.autograd.grad(model.loss_fn(u, kind).mean(), Wr)
        assert torch.allclose(relu_head_risk_gradient(W, X, Z, V, Y, kind)[1], g_auto, atol=1e-13, rtol=1e-11)
    with pytest.raises(ConfigError, match="nonlinear.T must be <= d|T must be <= d"):
        Config.smoke().replace(**{"nonlinear.T": 8})
