"""Theory-level tests of the random-feature attention study (closed forms against brute force,
batched against single runs, config validation, the smoke preset).  Linear algebra runs on one
thread: multi-threaded BLAS is much slower on a shared 2-core machine."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special

from studies import random_features as study
from studies.random_features import favor as fv
from studies.random_features import model as rf
from studies.random_features import ridge
from studies.random_features import simulate as sim
from studies.random_features.config import Config
from workbench.errors import ConfigError
from workbench.phases import load

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------- sphere harmonics
@pytest.mark.parametrize("d", [3, 5, 8])
def test_gegenbauer_matches_scipy_and_is_orthonormal(d):
    t = torch.linspace(-1, 1, 41, dtype=F64)
    lam = (d - 2) / 2
    for k in range(5):
        ref = special.eval_gegenbauer(k, lam, t.numpy()) / special.eval_gegenbauer(k, lam, 1.0)
        np.testing.assert_allclose(rf.gegenbauer(k, d, t).numpy(), ref, atol=1e-13)
    # E[P_k(u)^2] = 1 / B(d, k) for u = <x, x'>, by quadrature against the density of u
    u = np.linspace(-1, 1, 200_001)
    w = (1 - u ** 2) ** ((d - 3) / 2)
    w /= np.trapezoid(w, u)
    for k in (1, 2, 3):
        p = rf.gegenbauer(k, d, torch.from_numpy(u)).numpy()
        assert np.trapezoid(w * p * p, u) == pytest.approx(1 / rf.gegenbauer_dim(d, k), rel=1e-3)
        assert abs(np.trapezoid(w * p, u)) < 1e-6


def test_gegenbauer_dim_is_harmonic_dimension():
    # B(d, k) = dim of degree-k harmonic polynomials = C(k+d-1, d-1) - C(k+d-3, d-1)
    for d in (3, 4, 8):
        for k in range(1, 6):
            assert rf.gegenbauer_dim(d, k) == math.comb(k + d - 1, d - 1) - math.comb(k + d - 3, d - 1)


@pytest.mark.parametrize("target", rf.TARGETS)
def test_targets_have_zero_mean_unit_variance(target):
    g = gen(0)
    x0 = rf.sample_sphere((40_000,), 8, g)
    X = rf.sample_sphere((40_000, 4), 8, g)
    y = rf.target_values(target, x0, X)
    assert abs(float(y.mean())) < 0.03
    assert float(y.var()) == pytest.approx(1.0, abs=0.06)


# ---------------------------------------------------------------------------------- features
def test_attention_features_match_a_loop_and_are_permutation_invariant():
    d, N, M, n = 4, 5, 3, 6
    g = gen(1)
    x0, X = rf.sample_sphere((1, n), d, g), rf.sample_sphere((1, n, N), d, g)
    W = rf.biased_heads("brfa_pm", rf.gaussian_heads(M, d, g)[None], 0.7)
    phi = rf.attention_features(x0, X, W)[0].reshape(n, M, d + 1)
    for a in range(n):
        q = torch.cat([x0[0, a], torch.ones(1, dtype=F64)])
        for m in range(M):
            ref = sum(torch.relu(q @ W[0, m] @ torch.cat([X[0, a, i], torch.ones(1, dtype=F64)]))
                      * torch.cat([X[0, a, i], torch.ones(1, dtype=F64)]) for i in range(N)) / N
            torch.testing.assert_close(phi[a, m], ref)
    perm = torch.randperm(N, generator=g)
    torch.testing.assert_close(rf.attention_features(x0, X[:, :, perm], W), rf.attention_features(x0, X, W))
    Wm = rf.draw_mlp_weights(7, d, N, g)[None]
    assert not torch.allclose(rf.mlp_features(x0, X[:, :, perm], Wm), rf.mlp_features(x0, X, Wm))


def test_biased_heads_have_the_stated_means():
    G = rf.gaussian_heads(6, 3, gen(2))
    W = rf.biased_heads("brfa_pm", G, 2.0)
    W0 = torch.zeros(4, 4, dtype=F64)
    W0[:3, :3] = 2.0 * torch.eye(3, dtype=F64)
    torch.testing.assert_close(W[:3] - G[:3], W0.expand(3, 4, 4))
    torch.testing.assert_close(W[3:] - G[3:], -W0.expand(3, 4, 4))
    torch.testing.assert_close(rf.biased_heads("rfa", G, 2.0), G)


def test_kappa1_is_the_relu_correlation():
    assert float(rf.kappa1(torch.tensor(0.0, dtype=F64))) == pytest.approx(1 / (2 * math.pi))
    assert float(rf.kappa1(torch.tensor(1.0, dtype=F64))) == pytest.approx(0.5)
    g = gen(3)
    a, b = torch.randn(2, 400_000, generator=g, dtype=F64)
    for rho in (-0.6, 0.3, 0.9):
        c = rho * a + math.sqrt(1 - rho ** 2) * b
        prod = torch.relu(a) * torch.relu(c)
        se = float(prod.std()) / math.sqrt(prod.numel())
        assert abs(float(prod.mean()) - float(rf.kappa1(torch.tensor(rho, dtype=F64)))) < 4 * se


@pytest.mark.parametrize("kind", ["rfa", "rfmlp"])
def test_infinite_head_kernel_matches_monte_carlo(kind):
    d, N, S, M = 5, 3, 4, 40_000
    g = gen(4)
    x0, X = rf.sample_sphere((S,), d, g), rf.sample_sphere((S, N), d, g)
    if kind == "rfa":
        phi = rf.attention_features(x0[None], X[None], rf.gaussian_heads(M, d, g)[None])[0].reshape(S, M, d + 1)
        contrib = torch.einsum("pmb,qmb->mpq", phi, phi)
        K = rf.rfa_kernel(x0, X, x0, X)
    else:
        psi = rf.mlp_features(x0[None], X[None], rf.draw_mlp_weights(M, d, N, g)[None])[0]
        contrib = torch.einsum("pk,qk->kpq", psi, psi)
        K = rf.rfmlp_kernel(x0, X, x0, X)
    z = (contrib.mean(0) - K).abs() / (contrib.std(0) / math.sqrt(M))
    assert float(z.max()) < 4.5
    torch.testing.assert_close(rf.kernel_matrix(rf.model_kernel(kind), x0, X, x0, X, chunk_elems=10), K)


# ------------------------------------------------------------------------------------- ridge
def test_dual_ridge_equals_primal_ridge():
    g = gen(5)
    Phi = torch.randn(2, 30, 50, generator=g, dtype=F64)           # n < P
    Y = torch.randn(2, 30, 3, generator=g, dtype=F64)
    grid = (1e-3, 0.1, 10.0)
    V_dual, ok_d = ridge._solve_dual(Phi, Y, grid)
    G = Phi.transpose(1, 2) @ Phi / 30
    V_primal, ok_p = ridge._solve_primal(G, Phi.transpose(1, 2) @ Y / 30, grid)
    assert bool(ok_d.all()) and bool(ok_p.all())
    torch.testing.assert_close(V_dual, V_primal, rtol=1e-8, atol=1e-10)


def test_ridge_path_nested_sizes_equal_separate_fits():
    d, N, M = 4, 3, 4                                             # P = 20: sizes 12 (dual) and 40 (primal)
    g = gen(6)
    W = rf.gaussian_heads(M, d, g)[None]
    f = rf.feature_map("rfa", W)
    x0, X = rf.sample_sphere((1, 40), d, g), rf.sample_sphere((1, 40, N), d, g)
    Y = sim.targets(x0, X)
    xv, Xv = rf.sample_sphere((1, 15), d, g), rf.sample_sphere((1, 15, N), d, g)
    Pv = rf.attention_features(xv, Xv, W)
    grid = (1e-4, 1e-2, 1.0)
    both = ridge.ridge_path(f, x0, X, Y, [12, 40], Pv, sim.targets(xv, Xv), Pv, sim.targets(xv, Xv), grid, chunk=7)
    for k, n in enumerate((12, 40)):
        one = ridge.ridge_path(f, x0[:, :n], X[:, :n], Y[:, :n], [n], Pv, sim.targets(xv, Xv), Pv, sim.targets(xv, Xv), grid, chunk=5)
        torch.testing.assert_close(both.test_mse_grid[:, k], one.test_mse_grid[:, 0], rtol=1e-7, atol=1e-12)
    # the chosen weights solve the normal equations of their lambda
    Phi = rf.attention_features(x0, X, W)[0]
    Gm = Phi.T @ Phi / 40
    for t in range(Y.shape[-1]):
        lam = grid[int(both.choice[0, 1, t])]
        v = both.weights[0, 1, :, t]
        lhs = (Gm + lam * torch.trace(Gm) / Gm.shape[0] * torch.eye(Gm.shape[0], dtype=F64)) @ v
        torch.testing.assert_close(lhs, Phi.T @ Y[0, :, t] / 40, rtol=1e-7, atol=1e-9)


def test_kernel_ridge_with_a_linear_kernel_is_ridge():
    g = gen(7)
    Phi, Y = torch.randn(25, 40, generator=g, dtype=F64), torch.randn(25, 2, generator=g, dtype=F64)
    Pt, Yt = torch.randn(10, 40, generator=g, dtype=F64), torch.randn(10, 2, generator=g, dtype=F64)
    K = Phi @ Phi.T
    _, test, _ = ridge.kernel_ridge(K, Y, Pt @ Phi.T, Yt, Pt @ Phi.T, Yt, (0.5,))
    reg = 0.5 * torch.trace(K) / 25                                # (K + lam tr(K)/n I)
    V = torch.linalg.solve(Phi.T @ Phi + reg * torch.eye(40, dtype=F64), Phi.T @ Y)
    torch.testing.assert_close(test[0], ridge.relative_mse(Pt @ V, Yt))


# ------------------------------------------------------------------------------------ FAVOR+
def test_feature_maps_give_the_estimates():
    g = gen(8)
    x, y = 0.4 * torch.randn(3, 6, generator=g, dtype=F64), 0.4 * torch.randn(3, 6, generator=g, dtype=F64)
    om = fv.iid_features(5, 7, 6, g)
    for kind, phi in fv.FEATURE_MAPS.items():
        via_maps = torch.stack([(phi(x, om[r]) * phi(y, om[r])).sum(-1) for r in range(5)])
        torch.testing.assert_close(via_maps, fv.estimates(kind, x, y, om))


def test_orthogonal_directions_and_the_lapack_sign_convention():
    g = gen(9)
    fixed, unfixed = fv.orthogonal_directions(200, 10, 4, g)          # blocks of 4: 4 + 4 + 2
    for rows in (fixed, unfixed):
        for b0, b1 in ((0, 4), (4, 8), (8, 10)):
            B = rows[:, b0:b1]
            torch.testing.assert_close(B @ B.transpose(1, 2), torch.eye(b1 - b0, dtype=F64).expand(200, -1, -1))
    # the premise of the pitfall derivation: without the fix, the first feature of every block has
    # a negative first coordinate (Householder QR with LAPACK's sign choice)
    assert bool((unfixed[:, [0, 4, 8], 0] < 0).all())
    assert float((fixed[:, 0, 0] < 0).double().mean()) == pytest.approx(0.5, abs=0.1)
    om = fv.orthogonal_features(300, 4, 4, gen(10), norms="sqrt_d")
    torch.testing.assert_close(om.norm(dim=-1), torch.full((300, 4), 2.0, dtype=F64))


def test_closed_form_mses_and_their_mc_resolution():
    x, y = np.array([0.5, 0.1, 0.0]), np.array([0.2, -0.4, 0.3])
    m, R, blocks = 3, 2000, 150
    om = fv.iid_features(R * blocks, m, 3, gen(11))
    sm = float(fv.softmax_kernel(x, y))
    for kind in ("pos", "trig", "hyp"):
        est = fv.estimates(kind, torch.tensor(x)[None], torch.tensor(y)[None], om)[:, 0].numpy()
        err2 = (est - sm) ** 2
        pred = float(fv.mse_iid(kind, x, y, m))
        assert err2.mean() == pytest.approx(pred, rel=0.03)
        # spread of R-draw MC estimates of the MSE = the predicted Monte-Carlo standard error
        spread = err2.reshape(blocks, R).mean(1).std()
        assert spread == pytest.approx(float(fv.mc_mse_se(kind, x, y, m, R)), rel=0.25)


def test_orthogonal_pair_moment_against_monte_carlo():
    d, s2 = 6, 0.8
    om = fv.orthogonal_features(400_000, 2, d, gen(12))
    z = torch.zeros(d, dtype=F64)
    z[0], z[2] = math.sqrt(s2 / 2), math.sqrt(s2 / 2)
    prod = torch.exp(om @ z).prod(-1)
    se = float(prod.std()) / math.sqrt(prod.numel())
    assert abs(float(prod.mean()) - fv.orthogonal_pair_moment(s2, d)) < 4 * se
    assert fv.orthogonal_pair_moment(s2, 10_000) == pytest.approx(math.exp(s2), rel=1e-3)  # i.i.d. limit
    assert fv.orthogonal_pair_moment(s2, d) < math.exp(s2)                                # ORF lowers the variance


def test_pitfall_bias_formulas_against_monte_carlo():
    d, m = 5, 5
    x = np.zeros(d)
    x[0] = 0.45
    om_u = fv.orthogonal_features(200_000, m, d, gen(13), sign_fix=False)
    om_n = fv.orthogonal_features(200_000, m, d, gen(14), norms="sqrt_d")
    sm = float(fv.softmax_kernel(x, x))
    for om, pred in ((om_u, fv.bias_unfixed_qr(2 * x[0], m, d)), (om_n, fv.bias_fixed_norms(2 * x[0], d))):
        est = fv.estimates("pos", torch.tensor(x)[None], torch.tensor(x)[None], om)[:, 0]
        bias, se = float(est.mean()) / sm - 1, float(est.std()) / math.sqrt(est.numel()) / sm
        assert abs(bias - float(pred)) < 4 * se


def test_attention_delta_method_is_the_linearised_error():
    d, L = 6, 5
    g = gen(15)
    Q, K, V = 0.5 * torch.randn(L, d, generator=g, dtype=F64), 0.5 * torch.randn(L, d, generator=g, dtype=F64), torch.randn(L, 2, generator=g, dtype=F64)
    m, R = 8, 40_000
    om = fv.iid_features(R, m, d, g)
    q, k = Q / d ** 0.25, K / d ** 0.25
    A = torch.exp(q @ k.T)
    out = (A @ V) / A.sum(-1, keepdim=True)
    A_hat = fv.phi_positive(q, om) @ fv.phi_positive(k, om).transpose(1, 2)
    lin = torch.einsum("rlj,ljv->rlv", (A_hat - A) / A.sum(-1)[:, None], V[None] - out[:, None])
    err = lin.pow(2).sum(-1).mean(-1)
    se = float(err.std()) / math.sqrt(R)
    assert abs(float(err.mean()) - fv.favor_attention_mse(Q, K, V, m)) < 4 * se
    torch.testing.assert_close(fv.softmax_attention(Q, K, V), out)
    # positive features with many draws average to the exact (unnormalised) kernel
    torch.testing.assert_close(A_hat.mean(0), A, rtol=0.05, atol=0)


# -------------------------------------------------------------------------- config and runs
@pytest.mark.parametrize("changes", [
    {"n_heads": 7}, {"favor.m": 20}, {"n_factors": (0.5, 2.0)}, {"nkeys.grid": (2, 4)}, {"target": "geg4"},
    {"model": "mlp"}, {"heads.n_eval": 5000}, {"ridge_grid": (1.0, 0.1)}, {"heads.grid": (3.5,)}, {"bias_alpha": -1.0},
    {"heads.n_train": 5000}, {"favor_m.grid": (4, 2)}, {"attn.length": 0}, {"kernel.sets": 1},
])
def test_config_validation(changes):
    with pytest.raises(ConfigError):
        Config.smoke().replace(**changes)


def test_sub_experiment_fields_are_their_own():
    cfg = Config.smoke().with_overrides(["favor.draws=500", "favor_m.grid=2,4", "heads.n_train=100"])
    assert (cfg.favor.draws, cfg.favor_m.grid, cfg.heads.n_train) == (500, (2, 4), 100)
    assert cfg.attn.grid == Config.smoke().attn.grid          # the attention sweep keeps its own m grid
    assert Config.smoke().replace(n_train=800).heads == Config.smoke().heads
    with pytest.raises(ConfigError, match="heads.n_eval"):
        Config.smoke().replace(**{"heads.n_eval": 5000})
    with pytest.raises(ConfigError, match="favor.m"):
        Config.smoke().replace(**{"favor.m": 20})


def test_member_of_a_batched_run_equals_the_standalone_run():
    base = Config.smoke().replace(n_heads=8, n_train=40, n_val=20, n_test=20, n_factors=(0.5, 1.0),
                                  **{"heads.grid": (8,), "heads.n_train": 20, "heads.n_eval": 20})
    batched, single = base.replace(n_seeds=2), base.replace(seed=1, n_seeds=1)
    res = []
    for cfg in (batched, single):
        data = sim.split(cfg, sim.LEARN_DATA, 0, 40, cfg.n_keys)
        G = sim.head_bank(cfg)
        f = sim.feature_fn("brfa_pm", G, cfg.bias_alpha, None, cfg.n_heads)
        res.append((data, sim.fit(cfg, f, data, [20, 40], cfg.n_heads, cfg.n_keys)))
    (db, fb), (ds, fs) = res
    torch.testing.assert_close(db["train.X"][1], ds["train.X"][0], rtol=0, atol=0)
    torch.testing.assert_close(fb.test_mse[1], fs.test_mse[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fb.test_pred[1], fs.test_pred[0], rtol=1e-9, atol=1e-11)


@pytest.fixture(scope="module")
def smoke():
    """The smoke run and its checks, shared by the tests below (one run, ~10 s)."""
    rec = study.run(Config.smoke(), progress=False)
    return rec, study.checks(rec)


def test_smoke_preset_runs_and_its_checks_pass(smoke):
    rec, checks = smoke
    assert len(checks) >= 25
    failed = [c.name for c in checks if not c.ok]
    assert not failed, failed
    assert rec["learn.test_mse"].shape == (4, 3, 2, len(rf.TARGETS))
    assert {"learn.train_x0", "learn.heads_seed", "learn.test_pred", "learn.G", "favor.seed"} <= set(rec.arrays)
    assert set(rec.info["phase_seconds"]) == {p.name for p in study.PHASES}
    pred = study.predict(Config.smoke())
    np.testing.assert_allclose(pred["favor.mse.iid.pos"], rec["favor.pred.iid.pos"])
    np.testing.assert_allclose(pred["attn.mse.iid"], rec["attn.pred.iid"])
    # typed results round-trip, and the headline is the learning sweep's (model, target) pair
    learn = load(rec, "learn", sim.LearnSweep)
    assert learn.data is None and learn.fits is None                    # in-memory only, never stored
    head = load(rec, "headline", sim.Headline)
    im, it = rf.MODELS.index(head.model), rf.TARGETS.index(head.target)
    np.testing.assert_array_equal(head.test_mse, learn.test_mse[im, :, :, it])
    assert not any(k.startswith(("learn.data.", "learn.fits.", "learn.bank")) for k in rec.arrays)
    figs = study.figures(rec)
    assert {"learning_curves", "orf_pitfall", "favor_mse_angle"} <= set(figs)
    import matplotlib.pyplot as plt
    for fig in figs.values():
        plt.close(fig)


# ------------------------------------------------------------------- checks that discriminate
OBSERVATIONS = {"bias_costs_sep11", "brfa_pm_dominates_zonal", "brfa_intercept_mean_feature_bound",
                "learning_curves_decrease"}
"""Spec margins with no prediction behind them (and a bound that holds only at M, n = infinity)."""


def test_every_check_has_its_kind_and_every_theory_check_a_rival(smoke):
    _, checks = smoke
    kinds = {c.name: c.kind for c in checks}
    assert {n for n, k in kinds.items() if k == "observation"} == OBSERVATIONS
    assert {n for n, k in kinds.items() if k == "identity"} == {"favor_exact_identities"}
    for c in checks:
        if c.kind == "theory":
            assert c.alternative, f"{c.name}: a theory check names its rival (or why there is none)"
            assert c.alternative.startswith("none:") or c.alternative_predicted is not None, c.name


def test_negative_controls_every_theory_check_fails_on_its_rival(smoke):
    """Fed the rival's prediction of the measured quantity, every theory check fails (also the ones
    not asserted at smoke: their pass rule is kept)."""
    _, checks = smoke
    theory = [c for c in checks if c.kind == "theory" and c.alternative_predicted is not None]
    assert len(theory) >= 24
    admitted = [c.name for c in theory if c.passes(float(c.alternative_predicted))]
    assert not admitted, admitted


def _with(rec, **arrays):
    """A copy of ``rec`` with some arrays replaced (a perturbed measurement)."""
    from workbench.record import Record
    return Record(study=rec.study, config=rec.config, arrays={**rec.arrays, **arrays}, info=rec.info)


def _verdicts(rec) -> dict[str, bool]:
    return {c.name: c.passed for c in study.checks(rec)}


def test_negative_controls_favor_measurements_replaced_by_the_rivals(smoke):
    """The FAVOR+ checks fail when the Monte-Carlo measurement is what the rival predicts."""
    rec, _ = smoke
    a = rec.arrays
    cases = {
        # the hyperbolic estimator behaving like 2m independent positive features
        "favor_mse_hyp": {"favor.iid.hyp.mse": a["favor.pred.iid.pos"] / 2},
        # the trigonometric estimator with the positive features' error, at every angle
        "favor_mse_trig": {"favor.iid.trig.mse": a["favor.pred.iid.pos"]},
        # orthogonal features no better than i.i.d.
        "orf_lowers_mse": {"favor.orf.pos.mse": a["favor.iid.pos.mse"]},
        "orf_theorem_bound": {"favor.orf.pos.mse": a["favor.pred.iid.pos"]},
        # no QR sign bias, no sqrt(d)-norm bias
        "pitfall_unfixed_qr_bias": {"favor.orf_unfixed.pos.mean": a["favor.sm"]},
        "pitfall_unfixed_qr_detectable": {"favor.orf_unfixed.pos.mean": a["favor.sm"]},
        "pitfall_sqrt_d_norms_bias": {"favor.orf_sqrtd.pos.mean": a["favor.sm"]},
        # sign-fixed features carrying the unfixed-QR bias
        "orf_unbiased_e1": {"favor.orf.pos.mean": a["favor.orf_unfixed.pos.mean"]},
        # orthogonal features in the m sweep measured at the i.i.d. closed form
        "favor_mse_vs_m": {"favor_m.orf.mse": a["favor_m.pred.iid"]},
    }
    trig_angle = {"favor.iid.trig.mse": a["favor.pred.iid.pos"]}
    assert _verdicts(rec)["favor_mse_angle_sweep"]
    assert not _verdicts(_with(rec, **trig_angle))["favor_mse_angle_sweep"]
    for name, arrays in cases.items():
        assert _verdicts(rec)[name], name
        assert not _verdicts(_with(rec, **arrays))[name], name


def test_negative_controls_kernel_and_learning_measurements(smoke):
    rec, _ = smoke
    a = rec.arrays
    x0, X = torch.from_numpy(a["kernel.x0"]), torch.from_numpy(a["kernel.X"])
    for kind in ("rfa", "rfmlp"):
        lin = rf.linearised_kernel(kind, x0, X, x0, X).numpy()
        assert not _verdicts(_with(rec, **{f"kernel.{kind}.mc": lin}))[f"{kind}_kernel_limit"]
    # RFA and RFMLP exchanged in the N sweep: no advantage, and RFA growing with N
    nk = a["nkeys.test_mse"]
    swapped = _verdicts(_with(rec, **{"nkeys.test_mse": nk[::-1].copy()}))
    assert not swapped["rfa_beats_rfmlp"] and not swapped["rfa_flat_in_N"] and not swapped["rfmlp_degrades_with_N"]
    # a bias that does not help: BRFA measured as RFA
    lt = a["learn.test_mse"].copy()
    lt[rf.MODELS.index("brfa")] = lt[rf.MODELS.index("rfa")] + 1e-3 * np.arange(lt.shape[1])[:, None, None]
    assert not _verdicts(_with(rec, **{"learn.test_mse": lt}))["brfa_learns_geg2"]
    # RFA learning geg2 like geg1
    lt = a["learn.test_mse"].copy()
    lt[rf.MODELS.index("rfa"), ..., rf.TARGETS.index("geg2")] = lt[rf.MODELS.index("rfa"), ..., rf.TARGETS.index("geg1")]
    assert not _verdicts(_with(rec, **{"learn.test_mse": lt}))["rfa_fails_geg2"]
    # the heads sweep converging at the bound's rate M^-1/2, and at the predicted M^-1 (a small
    # seed-to-seed spread of the exponent, so that the seed SE resolves the two)
    grid = a["heads.grid"].astype(float)
    krr = a["heads.krr_test_mse"]
    spread = 0.01 * np.arange(krr.shape[0])[None]
    for rate, passes in ((0.5, False), (1.0, True)):
        ht = a["heads.test_mse"].copy()
        ht[..., 0] = krr[None, :, 0] + 0.5 * (grid[0] / grid)[:, None] ** (rate + spread)
        heads = {c.name: c for c in study.checks(_with(rec, **{"heads.test_mse": ht}))}["heads_approach_kernel_limit"]
        assert heads.asserted and heads.passed == passes, rate


def test_rivals_of_the_closed_forms():
    """The rivals are what they say: kappa_1's tangent at 0, and the delta method without the
    normaliser's noise (the error of the numerator alone)."""
    rho = torch.linspace(-0.2, 0.2, 9, dtype=F64)
    gap = rf.kappa1(rho) - rf.kappa1_linear(rho)
    torch.testing.assert_close(gap, rho ** 2 / (4 * math.pi), rtol=0.1, atol=1e-6)
    d, L, m, R = 6, 5, 8, 40_000
    g = gen(16)
    Q, K, V = 0.5 * torch.randn(L, d, generator=g, dtype=F64), 0.5 * torch.randn(L, d, generator=g, dtype=F64), torch.randn(L, 2, generator=g, dtype=F64)
    om = fv.iid_features(R, m, d, g)
    q, k = Q / d ** 0.25, K / d ** 0.25
    A = torch.exp(q @ k.T)
    A_hat = fv.phi_positive(q, om) @ fv.phi_positive(k, om).transpose(1, 2)
    err = (torch.einsum("rlj,jv->rlv", A_hat - A, V) / A.sum(-1)[:, None]).pow(2).sum(-1).mean(-1)
    se = float(err.std()) / math.sqrt(R)
    assert abs(float(err.mean()) - fv.favor_attention_mse(Q, K, V, m, centred=False)) < 4 * se
