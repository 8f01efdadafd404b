"""Rank-collapse study: closed forms against brute force, autograd against finite differences,
ensemble member i against the standalone run i, config validation, and the smoke preset."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize_scalar

from studies import rank_collapse as rc
from studies.rank_collapse import model, simulate, theory
from studies.rank_collapse.checks import composed_bounds
from studies.rank_collapse.config import Config
from studies.rank_collapse.norms import composite_norm, norm_l1, norm_linf, residual_argmin, residual_mean
from workbench.attention import TransformerSpec, init_transformer, transformer_forward
from workbench.streams import Stream
from workbench.errors import ConfigError
from workbench.phases import load

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """The tensors here are tiny; intra-op threads only cost synchronisation on a shared machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


TEST = Stream(0, "test-rank-collapse")
"""The root of every random draw in this file; each test draws from its own named child."""


def _normal(*keys, shape) -> torch.Tensor:
    """A standard normal float64 tensor from the test stream's child ``keys``."""
    return TEST.child(*keys).normal(shape)


def _weights(spec: TransformerSpec, key: str, members, **kwargs) -> dict[str, torch.Tensor]:
    """``init_transformer`` drawn from the test stream's child ``key``."""
    return init_transformer(spec, TEST.child(key), members, **kwargs)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("changes, message", [
    ({"depth": 4}, "depth"),
    ({"branch_scale": "1/L"}, "branch_scale"),
    ({"branch_scale": -1.0}, "branch_scale"),
    ({"norm": "both"}, "norm"),
    ({"qk_scale": (1.0, 0.0)}, "qk_scale"),
    ({"scan.epsilons": (1e-2, 1e-3, 1e-1)}, "scan.epsilons"),
    ({"grad.qk_scale": (1.0, -1.0)}, "grad.qk_scale"),
    ({"paths.heads": 8, "paths.depth": 5}, "paths.depth = 5 with heads = 8 .* too many"),
    ({"bound.tokens": (4.5,)}, "bound.tokens"),
    ({"cluster.step": 0.0}, "cluster.step"),
    ({"noci.value_scale": 1e100}, "noci.value_scale=1e"),
    ({"trained.tasks": ("sort", "mnist")}, "tasks must be distinct names"),
    ({"trained.d_model": 15}, "multiple of n_heads"),
    ({"trained.circle_points": 30}, "circle_points must be a multiple of 4"),
    ({"composed.heads": (1, 4), "composed.d_model": 6}, "heads must hold integers dividing d_model=6"),
    ({"composed.epsilons": (0.1, 2.0)}, "composed.epsilons"),
])
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config.smoke().replace(**changes)


def test_branch_scale_string_and_cli_coercion():
    cfg = Config.smoke().with_overrides(["branch_scale=1/sqrt(L)", "qk_scale=0.5,2", "skip=false"])
    assert cfg.branch_scale == "1/sqrt(L)" and cfg.alpha == pytest.approx(1 / math.sqrt(cfg.depth))
    assert cfg.qk_scale == (0.5, 2.0) and cfg.skip is False
    assert Config.smoke().with_overrides(["branch_scale=0.25"]).alpha == 0.25
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_sub_experiments_own_their_fields():
    """A primary (depth-sweep) field leaves the sub-experiments alone; a dotted one sets one sub-experiment."""
    base = Config.smoke()
    swept = base.with_overrides(["qk_scale=4", "n_tokens=8", "skip=false"])
    assert (swept.scan, swept.grad, swept.paths, swept.noci) == (base.scan, base.grad, base.paths, base.noci)
    scan = base.with_overrides(["scan.qk_scale=0.5,4", "scan.heads=2"])
    assert scan.scan.qk_scale == (0.5, 4.0) and scan.scan.heads == 2 and scan.qk_scale == base.qk_scale
    assert scan.grad.qk_scale == base.grad.qk_scale
    assert Config.from_dict(scan.to_dict()) == scan
    with pytest.raises(ConfigError, match="Did you mean 'scan.heads'"):
        base.with_overrides(["scan.head=2"])


# ----------------------------------------------------------------------------- norms
def _exact_composite_residual(X: np.ndarray) -> float:
    """min_x sqrt(||X - 1x^T||_1 ||X - 1x^T||_inf), exactly: sqrt(f1 finf) = min_a (a f1 + finf/a)/2
    (AM-GM), and for fixed a the inner problem is a linear program."""
    n, d = X.shape

    def inner(a: float) -> float:
        nv = d + n * d + 2  # x, |X - 1x^T| entries, t1 (max column sum), tinf (max row sum)
        c = np.zeros(nv)
        c[-2], c[-1] = a / 2, 1 / (2 * a)
        A, b = [], []
        for i in range(n):
            for j in range(d):
                for sign in (1, -1):
                    r = np.zeros(nv)
                    r[d + i * d + j], r[j] = -1, -sign
                    A.append(r)
                    b.append(-sign * X[i, j])
        for j in range(d):
            r = np.zeros(nv)
            r[[d + i * d + j for i in range(n)]] = 1
            r[-2] = -1
            A.append(r)
            b.append(0)
        for i in range(n):
            r = np.zeros(nv)
            r[d + i * d:d + i * d + d] = 1
            r[-1] = -1
            A.append(r)
            b.append(0)
        res = linprog(c, A_ub=np.array(A), b_ub=np.array(b), bounds=[(None, None)] * d + [(0, None)] * (n * d + 2),
                      method="highs")
        return res.fun

    grid = np.linspace(-4, 4, 81)  # log a
    vals = [inner(math.exp(t)) for t in grid]
    k = int(np.argmin(vals))
    refined = minimize_scalar(lambda t: inner(math.exp(t)), bounds=(grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]),
                              method="bounded", options={"xatol": 1e-10})
    return min(min(vals), refined.fun)


def test_residual_argmin_is_close_to_the_exact_minimum():
    """The argmin residual is an upper bound within a few percent of the true minimum, and
    the mean-centred residual is within 2(1 - 1/n) of it (spec section 3)."""
    ns, ds = TEST.child("argmin-n").integers(3, 6, (6,)), TEST.child("argmin-d").integers(2, 4, (6,))
    worst = 1.0
    for t in range(6):
        n, d = int(ns[t]), int(ds[t])
        scale = -torch.log1p(-TEST.child("argmin-scale", t).uniform((1, d)))  # Exp(1) column scales
        X = (_normal("argmin-X", t, shape=(n, d)) * scale).numpy()
        exact = _exact_composite_residual(X)
        approx = composite_norm(residual_argmin(torch.tensor(X))).item()
        mean = composite_norm(residual_mean(torch.tensor(X))).item()
        assert approx >= exact * (1 - 1e-6)
        assert mean <= 2 * (1 - 1 / n) * exact * (1 + 1e-6)
        worst = max(worst, approx / exact)
    assert worst < 1.05


def test_composite_norm_properties():
    A = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=F64)
    B = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=F64)
    assert composite_norm(A).item() == pytest.approx(math.sqrt(2))
    assert composite_norm(A + B).item() == pytest.approx(3.0)
    assert composite_norm(A + B) > composite_norm(A) + composite_norm(B)  # no triangle inequality
    for t in range(20):
        X, Y = _normal("composite", t, "X", shape=(5, 4)), _normal("composite", t, "Y", shape=(4, 6))
        assert composite_norm(X @ Y) <= composite_norm(X) * composite_norm(Y) * (1 + 1e-12)
        assert torch.linalg.matrix_norm(X, ord=2) <= composite_norm(X) * (1 + 1e-12)
    n = 7
    centring = torch.eye(n, dtype=F64) - torch.full((n, n), 1 / n, dtype=F64)
    assert norm_l1(centring).item() == pytest.approx(theory.centring_norm(n))
    assert norm_linf(centring).item() == pytest.approx(theory.centring_norm(n))


# ----------------------------------------------------------------------------- theory vs brute force
def test_residual_identity_and_explicit_bound():
    """res_mean(SA(X)) = (I - J)(P - 1 s^T) R W exactly, and the explicit bound holds, also far
    outside the small-residual regime."""
    for trial in range(30):
        n, d = 3 + trial % 5, 2 + trial % 4
        spec = TransformerSpec(depth=1, d_model=d, n_heads=1)
        p = _weights(spec, "identity", [trial], qk_std=0.5 + trial / 15, value_std=1.0)
        X = (_normal("identity-R", trial, shape=(1, n, d)) * (0.1 + trial / 20)
             + _normal("identity-x", trial, shape=(1, 1, d)))
        fwd = transformer_forward(X, p, spec)
        P = fwd.patterns[0][0, 0]
        R = residual_mean(X)[0]
        xbar = X[0].mean(0)
        A = p["W_Q"][0, 0, 0] @ p["W_K"][0, 0, 0].T / math.sqrt(d)
        s = torch.softmax(R @ A.T @ xbar, dim=0)  # softmax(r), r = R A^T x
        W = model.value_maps(p, 0)[0, 0]
        J = torch.full((n, n), 1 / n, dtype=F64)
        I = torch.eye(n, dtype=F64)
        lhs = residual_mean(fwd.output)[0]
        rhs = (I - J) @ (P - torch.ones(n, 1, dtype=F64) * s) @ R @ W
        assert torch.allclose(lhs, rhs, atol=1e-12 * (1 + lhs.abs().max().item()))
        E = R @ A @ R.T
        eps_E = E.abs().max().item()
        assert eps_E <= torch.linalg.matrix_norm(A, 2).item() * R.pow(2).sum(-1).max().item() * (1 + 1e-12)
        bound = theory.explicit_bound(n, eps_E, composite_norm(R).item(), composite_norm(W).item())
        assert composite_norm(lhs).item() <= bound * (1 + 1e-12)


def test_path_counts_and_enumeration():
    for L, H in [(1, 1), (3, 2), (5, 3), (12, 12)]:
        counts = theory.path_length_counts(L, H)
        assert counts.sum() == (H + 1) ** L
        assert np.allclose(theory.path_length_distribution(L, H), counts / (H + 1) ** L)
    paths = theory.enumerate_paths(3, 2, skip=True)
    lengths = np.bincount([sum(h > 0 for h in p) for p in paths])
    assert list(lengths) == list(theory.path_length_counts(3, 2))
    dist = theory.path_length_distribution(12, 12)
    assert dist[12] == pytest.approx(0.383, abs=1e-3) and dist[11] == pytest.approx(0.383, abs=1e-3)  # BERT-base


@pytest.mark.parametrize("skip", [False, True])
def test_path_decomposition_reproduces_forward(skip):
    spec = TransformerSpec(depth=3, d_model=6, n_heads=2, skip=skip, branch_scale=0.7)
    p = _weights(spec, "paths", 2, qk_std=1.5)
    X = _normal("paths-X", shape=(2, 5, 6))
    fwd = transformer_forward(X, p, spec)
    dec = model.path_decomposition(X, p, spec, fwd.patterns)
    assert torch.allclose(dec["total"], fwd.output, rtol=1e-12, atol=1e-12)
    assert torch.allclose(dec["by_length"].sum(1), fwd.output, rtol=1e-12, atol=1e-12)
    if skip:
        assert torch.allclose(dec["by_length"][:, 0], X)  # the length-0 path is X itself


def _reference_forward(X, params, spec):
    """`workbench.attention.transformer_forward` as it was before it took sample axes (X (e, i, d) only),
    kept verbatim as the oracle of the backward-compatibility test below."""
    from workbench.attention import layer_norm, stable_softmax

    def attention(Z, W_Q, W_K, W_V, W_O):
        scale = 1.0 / math.sqrt(W_Q.shape[-1]) if spec.qk_scale is None else spec.qk_scale
        Q = torch.einsum("eid,ehdk->ehik", Z, W_Q)
        K = torch.einsum("ejd,ehdk->ehjk", Z, W_K)
        V = torch.einsum("ejd,ehdv->ehjv", Z, W_V)
        P = stable_softmax(scale * torch.einsum("ehik,ehjk->ehij", Q, K), dim=-1)
        return torch.einsum("ehiv,ehvd->eid", torch.einsum("ehij,ehjv->ehiv", P, V), W_O), P

    hidden, patterns = [X], []
    alpha = spec.branch_scale if spec.skip else 1.0
    for layer in range(spec.depth):
        w = 0 if spec.tied else layer
        Z = layer_norm(X, spec.ln_eps) if spec.norm == "pre" else X
        A, P = attention(Z, params["W_Q"][:, w], params["W_K"][:, w], params["W_V"][:, w], params["W_O"][:, w])
        X = X + alpha * A if spec.skip else A
        if spec.norm == "post":
            X = layer_norm(X, spec.ln_eps)
        if spec.mlp:
            Z = layer_norm(X, spec.ln_eps) if spec.norm == "pre" else X
            hidden_mlp = torch.relu(torch.einsum("eid,edf->eif", Z, params["W_in"][:, w]))
            M = torch.einsum("eif,efd->eid", hidden_mlp, params["W_out"][:, w])
            X = X + alpha * M if spec.skip else M
            if spec.norm == "post":
                X = layer_norm(X, spec.ln_eps)
        hidden.append(X)
        patterns.append(P)
    return hidden, patterns


# the shapes of every caller of transformer_forward: (ensemble, tokens, spec)
_CALLER_SHAPES = [
    (20, 16, TransformerSpec(depth=2, d_model=32)),  # depth sweep / witness / scaling (SAN), H = 1
    (20, 16, TransformerSpec(depth=2, d_model=32, skip=True, mlp=True, norm="post")),  # sweep: the full model
    (13, 16, TransformerSpec(depth=2, d_model=32, n_heads=4)),  # cubic scan, multi-head (d_head 8)
    (13, 16, TransformerSpec(depth=1, d_model=32, norm="pre")),  # scan: SA + LN
    (6, 4, TransformerSpec(depth=3, d_model=4)),  # extended precision
    (20, 2, TransformerSpec(depth=1, d_model=1)),  # explicit bound, n = 2, d = 1
    (20, 64, TransformerSpec(depth=1, d_model=8)),  # explicit bound, n = 64
    (4, 16, TransformerSpec(depth=2, d_model=32, n_heads=2, skip=True, branch_scale=0.5)),  # paths with skips
    (3, 16, TransformerSpec(depth=2, d_model=32, skip=True, branch_scale=0.3)),  # regime map
    (9, 2, TransformerSpec(depth=3, d_model=1)),  # two-token toy
    (3, 5, TransformerSpec(depth=3, d_model=8, n_heads=2, skip=True, branch_scale=0.5, mlp=True, norm="pre",
                           tied=True)),  # tests/test_attention.py
]


@pytest.mark.parametrize("e, n, spec", _CALLER_SHAPES)
def test_transformer_forward_with_sample_axes_is_backward_compatible(e, n, spec):
    """The sample-axis `transformer_forward` gives, bit for bit, what it gave before on X (e, n, d) at every
    caller's shapes; with sample axes X (e, B, n, d) (and (e, B1, B2, n, d)) each sample equals the old
    forward on that sample alone."""
    p = _weights(spec, f"compat-{e}-{n}-{spec.depth}", e, qk_std=1.5)
    X = _normal("compat-X", e, n, shape=(e, n, spec.d_model))
    new = transformer_forward(X, p, spec)
    hidden, patterns = _reference_forward(X, p, spec)
    for a, b in zip(new.hidden + new.patterns, hidden + patterns):
        assert torch.equal(a, b)
    Xs = _normal("compat-Xs", e, n, shape=(e, 2, 2, n, spec.d_model))
    many = transformer_forward(Xs, p, spec)
    assert many.output.shape == Xs.shape and many.patterns[0].shape == (e, 2, 2, spec.n_heads, n, n)
    for b1, b2 in ((0, 0), (1, 1)):
        alone, alone_p = _reference_forward(Xs[:, b1, b2], p, spec)
        assert torch.allclose(many.output[:, b1, b2], alone[-1], rtol=1e-15, atol=1e-15)
        assert torch.allclose(many.patterns[-1][:, b1, b2], alone_p[-1], rtol=1e-15, atol=1e-15)


def test_transformer_forward_rejects_a_bad_input_shape():
    spec = TransformerSpec(depth=1, d_model=4)
    p = _weights(spec, "bad-shape", 2)
    with pytest.raises(ValueError, match="d_model=4"):
        transformer_forward(torch.zeros(2, 5, 3, dtype=F64), p, spec)
    with pytest.raises(ValueError, match="ensemble"):
        transformer_forward(torch.zeros(5, 4, dtype=F64), p, spec)


@pytest.mark.parametrize("variant", ["san", "san_mlp", "san_skip", "full"])
def test_trained_forward_with_a_sample_axis_is_transformer_forward_per_member(variant):
    """The trained phase's forward (`transformer_forward` with the sample axis B, weights shared by a
    member's samples) equals, bit for bit, `transformer_forward` on the flattened batch with the weights
    repeated B times (what the sample axis saves)."""
    from studies.rank_collapse import trained
    tc = Config.smoke().trained
    p = trained.init_task("sort", tc, TEST.child("trained"), 2, F64, "cpu")
    tokens, _ = trained.sort_data(0, tc, "eval", "cpu", n=3)
    spec = trained.task_spec(tc, variant)
    X0 = trained.embed("sort", p, tokens)  # (2, 3, n, d)
    mine = transformer_forward(X0, p, spec)
    block = {k: v.repeat_interleave(3, 0) for k, v in p.items() if k.startswith("W_")}
    ref = transformer_forward(X0.reshape(6, *X0.shape[2:]), block, spec)
    for a, b in zip(mine.hidden, ref.hidden):
        assert torch.equal(a.reshape(b.shape), b)


def test_paths_by_length_matches_the_enumeration():
    """The O(L^2 H) length recursion equals the sum over the (H+1)^L enumerated paths, group by group."""
    from studies.rank_collapse import trained
    spec = TransformerSpec(depth=3, d_model=6, n_heads=2, skip=True, branch_scale=0.7)
    p = _weights(spec, "paths-by-length", 2, qk_std=1.5)
    X = _normal("paths-by-length-X", shape=(2, 5, 6))
    fwd = transformer_forward(X, p, spec)
    dec = model.path_decomposition(X, p, spec, fwd.patterns)
    groups = trained.paths_by_length(X[:, None], p, spec, [P[:, None] for P in fwd.patterns])[:, 0]
    assert torch.allclose(groups, dec["by_length"], rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError):
        trained.paths_by_length(X[:, None], p, replace(spec, mlp=True), [P[:, None] for P in fwd.patterns])


def test_trained_tasks_follow_the_official_definitions():
    from studies.rank_collapse import trained
    tc = Config.smoke().trained
    tokens, labels = trained.sort_data(0, tc, "train", "cpu")
    assert tokens.shape == (tc.n_train, tc.seq_len) and int(tokens.min()) >= 0 and int(tokens.max()) < tc.vocab
    assert torch.equal(labels, tokens.sort(-1).values)
    assert torch.equal(trained.sort_data(0, tc, "train", "cpu", n=4)[0], tokens[:4])  # a prefix of the same draw
    X, Y = trained.circle_data(tc, F64, "cpu")
    P = tc.circle_points
    assert X.shape == (P // 2 - 1, 2, 2)
    assert torch.allclose(X.norm(dim=-1), torch.full((P // 2 - 1, 2), 0.3, dtype=F64))
    assert torch.allclose(X[1:], Y[:-1])  # the target is the next point of each token


def test_trained_member_is_the_same_in_a_larger_ensemble():
    """Member i of the trained ensemble (weights, training, measurements) is member i of a larger one."""
    from studies.rank_collapse import trained
    tc = Config.smoke().trained
    one = trained.init_task("sort", tc, TEST.child("members"), [1], F64, "cpu")
    two = trained.init_task("sort", tc, TEST.child("members"), 2, F64, "cpu")
    assert all(torch.equal(one[k][0], two[k][1]) for k in one)
    cfg = Config.smoke().replace(**{"trained.tasks": ("circle",), "trained.steps": 5})
    small, big = trained.trained_models(cfg), trained.trained_models(cfg.replace(**{"trained.seeds": 3}))
    for key in small.rho:
        np.testing.assert_allclose(small.rho[key], big.rho[key][:2], rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(small.eval_loss[key], big.eval_loss[key][:2], rtol=1e-10)
    np.testing.assert_allclose(small.path_loss["circle"], big.path_loss["circle"][:2], rtol=1e-10)


def test_uniform_attention_mean_recursion_is_exact():
    """With W_Q = W_K = 0 and skips: R_{l+1} = R_l and m_{l+1} = (I + alpha W_l)^T m_l."""
    spec = TransformerSpec(depth=6, d_model=5, n_heads=2, skip=True, branch_scale=0.6)
    p = _weights(spec, "uniform", 1, qk_std=0.0, value_std=2.0)
    X = _normal("uniform-X", shape=(1, 4, 5))
    hidden = transformer_forward(X, p, spec).hidden
    m = X[0].mean(0)
    for l in range(spec.depth):
        W = model.value_maps(p, l)[0].sum(0)
        m = m @ (torch.eye(5, dtype=F64) + 0.6 * W)
        assert torch.allclose(hidden[l + 1][0].mean(0), m, rtol=1e-12, atol=1e-12)
        assert torch.allclose(residual_mean(hidden[l + 1]), residual_mean(X), atol=1e-12)


def test_uniform_attention_weights_are_init_transformers():
    """The Noci Monte Carlo's weights equal init_transformer's at qk_std = 0, without the QK draws."""
    spec = TransformerSpec(depth=3, d_model=6, n_heads=2, skip=True)
    full = _weights(spec, "uniform-weights", 3, qk_std=0.0, value_std=1.7)
    cheap = model.uniform_attention_weights(spec, TEST.child("uniform-weights"), 3, value_scale=1.7, dtype=F64,
                                            device="cpu")
    for k in full:
        assert torch.equal(full[k], cheap[k]), k


def test_value_map_is_norm_preserving_in_expectation():
    """init_transformer's W_O ~ N(0, 1/(d_head H)) makes E||m sum_h W_V,h W_O,h||^2 = sigma_v^2 ||m||^2,
    the per-layer factor of the Noci closed form (Monte Carlo over 4000 draws, 5 standard errors)."""
    d, H, sigma = 8, 2, 1.5
    spec = TransformerSpec(depth=1, d_model=d, n_heads=H)
    p = _weights(spec, "value-map", 4000, value_std=sigma)
    m = torch.ones(d, dtype=F64)
    W = model.value_maps(p, 0).sum(1)  # (e, d, d)
    ratio = (m @ W).pow(2).sum(-1) / m.pow(2).sum()
    assert abs(ratio.mean().item() - sigma ** 2) <= 5 * ratio.std().item() / math.sqrt(4000)


def test_two_token_recursion_matches_forward():
    cfg = Config.smoke().replace(**{"toy.grid": 7, "toy.depth": 10})
    toy = simulate.two_token(cfg)
    T, K = np.meshgrid(toy.theta, toy.kappa, indexing="ij")
    for key, skip in (("noskip", False), ("skip", True)):
        rec = theory.two_token_recursion(np.cos(T), np.sin(T), K, cfg.toy.depth, skip)
        sim = toy.states[key]
        assert np.allclose(sim, rec, rtol=1e-11, atol=1e-13 * np.abs(sim).max())
    # the relative residual of a 2 x 1 matrix, against the generic composite-norm formula
    X = torch.tensor([[0.3], [-1.2]], dtype=F64)
    rho = (composite_norm(residual_mean(X)) / composite_norm(X)).item()
    assert theory.two_token_relative_residual(np.array([0.3, -1.2])) == pytest.approx(rho)


# ----------------------------------------------------------------------------- gradients
def test_qk_gradients_against_finite_differences_and_at_collapse():
    spec = TransformerSpec(depth=2, d_model=4, n_heads=1, skip=True, mlp=True, norm="post")
    p = model.init_weights(spec, TEST.child("grad"), 1, value_scale=1.0, dtype=F64, device="cpu")
    G = _normal("grad-G", shape=(1, 5, 4))
    X = _normal("grad-X", shape=(1, 5, 4))
    grads = model.qk_value_gradients(X, G, p, spec)

    def loss(params):
        return (G * transformer_forward(X, params, spec).output).sum().item()

    leaves = {k: v.clone().requires_grad_(k == "W_Q") for k, v in p.items()}
    (grad_q,) = torch.autograd.grad((G * transformer_forward(X, leaves, spec).output).sum(), [leaves["W_Q"]])
    assert torch.allclose(grad_q.flatten(2).norm(dim=-1), grads["W_Q"])
    h = 1e-6
    direction = _normal("grad-direction", shape=p["W_Q"].shape)
    plus, minus = dict(p), dict(p)
    plus["W_Q"], minus["W_Q"] = p["W_Q"] + h * direction, p["W_Q"] - h * direction
    fd = (loss(plus) - loss(minus)) / (2 * h)
    assert fd == pytest.approx((grad_q * direction).sum().item(), rel=1e-6, abs=1e-9)

    collapsed = X[:, :1].expand(1, 5, 4)
    g0 = model.qk_value_gradients(collapsed, G, p, spec)
    assert g0["W_Q"].max() <= 1e-12 * g0["W_V"].max() and g0["W_K"].max() <= 1e-12 * g0["W_V"].max()
    assert g0["W_V"].min() > 0


def test_qk_gradient_is_second_order_in_eps():
    spec = TransformerSpec(depth=1, d_model=6, n_heads=1)
    p = _weights(spec, "grad-order", 1)
    x = _normal("grad-order-x", shape=(1, 1, 6))
    R = residual_mean(_normal("grad-order-R", shape=(1, 5, 6)))
    G = _normal("grad-order-G", shape=(1, 5, 6))
    norms = [model.qk_value_gradients(x + e * R, G, p, spec)["W_Q"].item() for e in (1e-3, 5e-4)]
    assert norms[0] / norms[1] == pytest.approx(4.0, rel=1e-2)


# ----------------------------------------------------------------------------- sphere model
def test_sphere_energy_is_a_lyapunov_function():
    """dE/dt = sum_i (Z_i / n^2) |P_perp(x_i) pull_i|^2 >= 0 (the chapter's derivation), by autograd."""
    n, d, beta = 6, 3, 2.5
    x = _normal("sphere", shape=(1, n, d))
    x = (x / x.norm(dim=-1, keepdim=True)).requires_grad_(True)
    b = torch.tensor([beta], dtype=F64)
    v = model.sphere_velocity(x, b).detach()
    (grad,) = torch.autograd.grad(model.sphere_energy(x, b).sum(), [x])
    x = x.detach()
    Z = torch.exp(beta * x[0] @ x[0].T).sum(-1)
    assert (grad * v).sum().item() == pytest.approx((Z[:, None] * v[0].pow(2)).sum().item() / n ** 2, rel=1e-12)
    assert np.allclose(theory.cluster_energy(x.numpy(), np.array([beta])), model.sphere_energy(x, b).numpy())


def test_count_clusters():
    a, b = torch.tensor([1.0, 0, 0], dtype=F64), torch.tensor([0, 1.0, 0], dtype=F64)
    x = torch.stack([a, a, b, a, b, torch.tensor([0, 0, 1.0], dtype=F64)])[None]
    assert model.count_clusters(x).item() == 3


# ----------------------------------------------------------------------------- batching
def test_at_scales_order():
    W = {"W_Q": torch.ones(2, 1, 1, 3, 3, dtype=F64), "W_V": torch.ones(2, 1, 1, 3, 3, dtype=F64)}
    out = model.at_scales(W, torch.tensor([0.5, 2.0], dtype=F64))
    assert out["W_Q"][:, 0, 0, 0, 0].tolist() == [0.5, 0.5, 2.0, 2.0]
    assert out["W_V"][:, 0, 0, 0, 0].tolist() == [1.0] * 4


def test_ensemble_member_equals_standalone_run():
    """Member (scale j, seed i) of a batched experiment equals member i of the run at s_j alone with
    i + 1 seeds (member i's streams do not depend on the ensemble size or on the other scales)."""
    scales = (0.5, 2.0)
    cfg = Config.smoke().replace(n_seeds=3, qk_scale=scales, depth=8, scaling_depths=(2, 4), witness_value_scales=(1.0,),
                                 **{"scan.qk_scale": scales, "grad.qk_scale": scales, "grad.depth": 2})

    def experiments(c):
        sweep = simulate.depth_sweep(c)
        with torch.enable_grad():
            grad = simulate.gradient_experiment(c)
        return sweep, simulate.depth_scaling(c, sweep), simulate.cubic_scan(c), grad

    b_sweep, b_scaling, b_scan, b_grad = experiments(cfg)
    for i, j in ((0, 0), (1, 1)):  # (seed, scale): member 0 of a 1-seed run, member 1 of a 2-seed run
        for s in scales[j:j + 1]:
            alone = cfg.replace(n_seeds=i + 1, qk_scale=(s,), **{"scan.qk_scale": (s,), "grad.qk_scale": (s,)})
            sweep, scaling, scan, grad = experiments(alone)
            close = {"rtol": 1e-10, "atol": 1e-14}
            for key in ("san", "full"):
                np.testing.assert_allclose(sweep.rho[key][0, i], b_sweep.rho[key][j, i], **close)
            np.testing.assert_allclose(scaling.rho["full_skip_invsqrt"][0, i], b_scaling.rho["full_skip_invsqrt"][j, i], **close)
            for key in ("sa", "sa_multihead"):
                np.testing.assert_allclose(scan.output_residual[key][0, i], b_scan.output_residual[key][j, i],
                                           rtol=1e-9, atol=1e-14)
            np.testing.assert_allclose(scan.two_layer.output_residual[0, i], b_scan.two_layer.output_residual[j, i],
                                       rtol=1e-9, atol=1e-14)
            np.testing.assert_allclose(grad.one["W_V"][0, i], b_grad.one["W_V"][j, i], rtol=1e-10)


# ----------------------------------------------------------------------------- smoke preset
@pytest.fixture(scope="module")
def smoke_record():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return rc.run(Config.smoke(), progress=False)
    finally:
        torch.set_num_threads(previous)


def test_smoke_preset_runs_and_passes(smoke_record):
    record = smoke_record
    assert [p.name for p in rc.PHASES] == ["sweep", "witness", "scaling", "scan", "precision", "bound", "composed",
                                           "paths", "grad",
                                           "noci", "regime", "trained", "cluster", "toy"]
    assert set(record.info["phase_seconds"]) == {p.name for p in rc.PHASES}
    checks = rc.checks(record)
    assert len(checks) >= 25
    # the trained-model checks are shown but not asserted at smoke's 20 Adam steps (they are tested
    # for discrimination below and asserted at quick), so the smoke run passes as a whole
    assert not [c.name for c in checks if not c.ok]
    assert not [c.name for c in checks if c.name.startswith(("trained_san", "trained_skip", "short_paths"))
                and c.asserted]
    assert all(c.ok for c in checks if c.name.startswith("trained_path_decomposition"))
    figs = rc.figures(record)
    assert {"relative_residual", "cubic_scan", "doubly_exponential", "explicit_bound", "composed_bound", "paths",
            "two_token_phase",
            "noci_depth_scaling", "clustering", "skip_regime", "trained_residual", "trained_paths"} <= set(figs)
    import matplotlib.pyplot as plt
    for f in figs.values():
        plt.close(f)
    pred = rc.predict(Config.smoke())
    assert pred["cubic_exponent"] == 3 and list(pred["path_counts_skip"]) == [1, 6, 12, 8]


# ----------------------------------------------------------------------------- checks that discriminate
def test_every_check_has_a_kind_and_every_theory_check_a_rival(smoke_record):
    checks = rc.checks(smoke_record)
    kinds = {c.name: c.kind for c in checks}
    for name in ("path_decomposition_skip", "path_length_counts", "two_token_recursion", "uniform_witness",
                 "noci_residual_frozen", "qk_gradient_vanishes", "residual_definitions", "composed_bound_exponents"):
        assert kinds[name] == "identity", name
    assert kinds["collapse_gap_float64"] == kinds["full_model_keeps_rank"] == kinds["composed_bound_slack"] == "observation"
    assert kinds["extended_precision_matches_float64"] == "numerics"
    theory_checks = [c for c in checks if c.kind == "theory"]
    assert len(theory_checks) >= 18
    for c in theory_checks:
        assert c.alternative, f"{c.name}: a theory check names its rival (or why there is none)"
        if c.asserted and c.alternative_predicted is not None and not c.name.startswith(("trained_", "short_paths")):
            assert c.discriminates, c.name  # the trained checks: at quick (smoke's training is 20 steps)


def test_negative_controls_fed_the_rival_every_theory_check_fails(smoke_record):
    """Fed the rival's prediction, each theory check fails; the one without a rival (a sign
    condition) fails on a negative step."""
    controlled = []
    for c in rc.checks(smoke_record):
        if c.kind != "theory":
            continue
        if c.alternative_predicted is None:
            assert c.name == "cluster_energy_monotone"
            assert not c.passes(-1e-6)
        elif not c.name.startswith(("trained_", "short_paths")):  # smoke's 20-step training: see the test below
            assert not c.passes(float(c.alternative_predicted)), c.name
        controlled.append(c.name)
    assert {"doubly_exponential_collapse", "doubly_exponential_growth", "skip_residual_band", "explicit_bound",
            "explicit_bound_tight", "layerwise_bound", "composed_bound", "skip_decay_rate",
            "skip_vs_san", "noci_mean_growth_invsqrt"} <= set(controlled)


def _with(record, **arrays):
    """A copy of ``record`` with some arrays replaced (an alternative measurement)."""
    return rc.simulate.Record(study=record.study, config=record.config, arrays={**record.arrays, **arrays})


def _check(record, name):
    return next(c for c in rc.checks(record) if c.name == name)


def test_trained_checks_reject_the_rivals(smoke_record):
    """Negative controls on the trained phase, by editing the record: a SAN that keeps its input residual
    fails the collapse check; a skip model with the SAN's collapsed residual fails the keep-rank check;
    path accuracies growing in proportion to the path count fail the short-path check.  The unedited
    forms of the same records pass."""
    tc = smoke_record.config.trained
    rho = smoke_record.arrays["trained.rho.circle_san"]
    collapsed = {"trained.rho.circle_san": np.concatenate([rho[:, :1], np.full_like(rho[:, 1:], 1e-9)], 1)}
    assert _check(_with(smoke_record, **collapsed), "trained_san_collapses_circle").passed
    kept = {"trained.rho.circle_san": np.repeat(rho[:, :1], rho.shape[1], 1)}
    assert not _check(_with(smoke_record, **kept), "trained_san_collapses_circle").passed
    skip = smoke_record.arrays["trained.rho.sort_san_skip"]
    healthy = {"trained.rho.sort_san_skip": np.full_like(skip, 0.5), "trained.rho.sort_full": np.full_like(skip, 0.5)}
    assert _check(_with(smoke_record, **healthy), "trained_skip_keeps_rank_sort").passed
    gone = {**healthy, "trained.rho.sort_full": np.full_like(skip, 1e-9)}
    assert not _check(_with(smoke_record, **gone), "trained_skip_keeps_rank_sort").passed
    acc = smoke_record.arrays["trained.path_accuracy.sort"]
    share = np.cumsum(theory.path_length_distribution(tc.depth, tc.n_heads))
    lo, hi = 0.2, 0.9
    rival = np.broadcast_to(lo + share * (hi - lo), acc.shape).copy()
    short = np.broadcast_to(np.minimum(lo + (hi - lo) * np.array([0.0, 0.7, 0.95, 1.0][: tc.depth + 1]), hi),
                            acc.shape).copy()
    short[:, -1] = hi
    c = _check(_with(smoke_record, **{"trained.path_accuracy.sort": short}), "short_paths_carry_sort")
    assert c.passes(c.measured) and c.measured == pytest.approx(0.95)
    c = _check(_with(smoke_record, **{"trained.path_accuracy.sort": rival}), "short_paths_carry_sort")
    assert not c.passes(c.measured) and not c.passes(float(c.alternative_predicted))


def test_doubly_exponential_check_rejects_an_exponential_trajectory(smoke_record):
    """An exponential decay of 3.4 decades per layer (which passes the float64 'three layers from
    1e-2 to 1e-12' threshold) fails the layer-to-layer slope; the measured trajectory passes."""
    rho = smoke_record.arrays["precision.log10_rho"]
    exponential = -0.5 - 3.4 * np.arange(rho.shape[1], dtype=float)
    assert _check(smoke_record, "doubly_exponential_collapse").passed
    fake = _with(smoke_record, **{"precision.log10_rho": np.broadcast_to(exponential, rho.shape).copy()})
    check = _check(fake, "doubly_exponential_collapse")
    assert not check.passed and check.measured == pytest.approx(1.0)
    # the growth-rate form: log10(-log10 rho_l) rises like log10 l for the exponential, not by log10 3 per layer
    assert _check(smoke_record, "doubly_exponential_growth").passed
    growth = _check(fake, "doubly_exponential_growth")
    assert not growth.passed and growth.measured < 0.15
    # a doubly exponential law with the wrong base (-log rho doubling per layer: quadratic, not cubic) fails too
    quadratic = -0.5 * 2.0 ** np.arange(rho.shape[1], dtype=float)
    fake2 = _with(smoke_record, **{"precision.log10_rho": np.broadcast_to(quadratic, rho.shape).copy()})
    assert not _check(fake2, "doubly_exponential_growth").passed
    assert not _check(fake2, "doubly_exponential_collapse").passed


def test_explicit_bound_checks_catch_an_error_in_the_constants(smoke_record):
    """A bound 3x (or 30x) too small fails `explicit_bound`; one 2x too small fails `explicit_bound_tight`."""
    measured = smoke_record.arrays["bound.measured"]
    for factor, name in ((3.0, "explicit_bound"), (30.0, "explicit_bound"), (2.0, "explicit_bound_tight")):
        assert _check(smoke_record, name).passed
        assert not _check(_with(smoke_record, **{"bound.measured": measured * factor}), name).passed, (name, factor)


def test_layer_constant_is_the_explicit_bound_with_its_two_estimates():
    """For one head, c(r) r^3 = explicit_bound(n, a r^2, r, w) with e^{2x} - 1 replaced by 2x e^{2x}
    (w the composite norm sqrt(||W||_1 ||W||_inf)), and it is at least the explicit bound."""
    n, a, w1, winf = 16, 0.7, 2.0, 3.5
    for r in (1e-3, 0.1, 0.5):
        c = theory.layer_constant_log10(np.log10(r), n, [a], [w1], [winf])
        w = math.sqrt(w1 * winf)
        expected = 2 * (1 - 1 / n) * math.sqrt(n) * 2 * a * r ** 2 * math.exp(2 * a * r ** 2) * r * w
        assert 10 ** (c + 3 * math.log10(r)) == pytest.approx(expected, rel=1e-12)
        assert 10 ** (c + 3 * math.log10(r)) >= theory.explicit_bound(n, a * r ** 2, r, w)
    # two heads: the l1 and l_inf sums are taken separately, so equal heads give twice one head's constant
    one = theory.layer_constant_log10(-1.0, n, [a], [w1], [winf])
    two = theory.layer_constant_log10(-1.0, n, [a, a], [w1, w1], [winf, winf])
    assert two - one == pytest.approx(math.log10(2.0), abs=1e-12)
    # composition: B_(l+1) = c_l(B_l) B_l^3, and the paper form with c = max c_l lies above it
    norms = [np.full((3, 1), v) for v in (a, w1, winf)]
    logB, logc = theory.composed_bound_log10(-1.0, n, *norms)
    assert logB[1] == pytest.approx(logc[0] - 3.0) and logB[3] == pytest.approx(logc[2] + 3 * logB[2])
    assert np.all(theory.paper_form_log10(-1.0, logc.max(), 3) >= logB - 1e-12)


def test_layer_bound_holds_on_random_multi_head_layers():
    """||res(SA(X))||_(1,inf) <= c(r) r^3 for random one- and two-head layers at r in [1e-3, 3], QK scales
    up to 2 (float64, one layer: the proof is exact for any input, not only near rank one)."""
    n, d, T = 6, 4, 40
    for H in (1, 2):
        spec = TransformerSpec(depth=1, d_model=d, n_heads=H)
        p = _weights(spec, f"layer-bound-{H}", T, qk_std=2.0, value_std=1.5)
        x = _normal("layer-bound-x", H, shape=(T, 1, d))
        R0 = model.centred_unit(_normal("layer-bound-R", H, shape=(T, n, d)))
        r = torch.logspace(-3, math.log10(3.0), T, dtype=F64)
        X = x + r[:, None, None] * R0
        out = rc.norms.residual_norm(transformer_forward(X, p, spec).output).numpy()
        norms = {k: v[:, 0].numpy() for k, v in model.layer_norms(p).items()}  # (T, H)
        logc = theory.layer_constant_log10(np.log10(r.numpy()), n, norms["qk_norm"], norms["value_norm_1"],
                                           norms["value_norm_inf"])
        assert np.all(np.log10(out) <= logc + 3 * np.log10(r.numpy())), H


def test_composed_bound_checks_catch_a_violation(smoke_record):
    """Residuals raised just above the composed bound at one layer fail `composed_bound`; residuals decaying
    faster than cubic (the quartic rival) would pass it, which is why the check reports the rival's ratio."""
    key = "composed.log10_residual.h1"
    measured = smoke_record.arrays[key]
    assert _check(smoke_record, "composed_bound").passed and _check(smoke_record, "layerwise_bound").passed
    b = composed_bounds(smoke_record)["h1"]
    raised = measured.copy()
    raised[0, 0, 2] = b["composed"][0, 0, 2] + 0.01
    assert not _check(_with(smoke_record, **{key: raised}), "composed_bound").passed
    raised = measured.copy()
    raised[0, 0, 2] = b["step"][0, 0, 2] + 0.01
    assert not _check(_with(smoke_record, **{key: raised}), "layerwise_bound").passed


def test_explicit_bound_tight_limit_at_two_tokens():
    """n = 2, d = 1, zero token mean: measured / bound = 1 / (sqrt 2 (e^{2 eps_E} + 1)) exactly, -> 1/(2 sqrt 2)."""
    spec = TransformerSpec(depth=1, d_model=1, n_heads=1)
    for a, w, delta in ((0.7, 1.3, 1e-2), (-2.0, 0.4, 3e-2), (5.0, -1.1, 0.2)):
        p = {"W_Q": torch.tensor(math.sqrt(abs(a))).reshape(1, 1, 1, 1, 1).to(F64),
             "W_K": torch.tensor(math.copysign(math.sqrt(abs(a)), a)).reshape(1, 1, 1, 1, 1).to(F64),
             "W_V": torch.tensor(w, dtype=F64).reshape(1, 1, 1, 1, 1), "W_O": torch.ones(1, 1, 1, 1, 1, dtype=F64)}
        X = torch.tensor([[[delta / 2], [-delta / 2]]], dtype=F64)
        out = rc.norms.residual_norm(transformer_forward(X, p, spec).output).item()
        eps_E = abs(a) * delta ** 2 / 4
        bound = theory.explicit_bound(2, eps_E, composite_norm(residual_mean(X)).item(), abs(w))
        assert out / bound == pytest.approx(1 / (math.sqrt(2) * (math.exp(2 * eps_E) + 1)), rel=1e-6)  # float64 cancellation
        assert out / bound < theory.EXPLICIT_BOUND_TIGHT
    assert theory.EXPLICIT_BOUND_TIGHT == pytest.approx(1 / (2 * math.sqrt(2)))


def test_skip_decay_rate_check_rejects_no_decay_and_doubly_exponential(smoke_record):
    """The rate check fed SAN+skip trajectories: decay at the predicted rate passes; no decay (the
    'skips keep the rank' reading) and a doubly exponential collapse to the float floor fail."""
    from studies.rank_collapse.checks import skip_checks

    cfg = smoke_record.config.replace(depth=24)  # the check's regime: L >= 24
    S, N = len(cfg.qk_scale), cfg.n_seeds
    rate = theory.skip_decay_rate(cfg.d_model, cfg.alpha, cfg.value_scale)
    layers = np.arange(cfg.depth + 1)
    jitter = 0.005 * _normal("skip-rate-jitter", shape=(S, N, 1)).numpy() * layers  # seed-to-seed spread of the rate
    for log_rho, ok in ((rate * layers + jitter, True), (0.0 * layers + jitter / 10, False),
                        (np.maximum(-(3.0 ** layers), -16.0) + jitter / 10, False)):
        rho = 10.0 ** np.broadcast_to(log_rho, (S, N, cfg.depth + 1))
        fake = {f"sweep.{q}.{k}": rho for q in ("rho", "rho_fro") for k in ("san", "san_skip", "full")}
        record = rc.simulate.Record(study=rc.NAME, config=cfg, arrays={**smoke_record.arrays, **fake})
        check = next(c for c in skip_checks(record) if c.name == "skip_decay_rate")
        assert check.asserted and check.passed == ok, (ok, check.measured, check.tolerance)


def test_residual_recursion_and_band_with_skips():
    """R_(l+1) = R_l + alpha (I-J) P_l (I-J) R_l W_l exactly (the token mean never reaches the residual),
    and ||R_l||_F stays inside theory.residual_band at every layer."""
    n, d, L, alpha = 5, 4, 6, 0.7
    spec = TransformerSpec(depth=L, d_model=d, n_heads=1, skip=True, branch_scale=alpha)
    p = _weights(spec, "band", 2, qk_std=1.5, value_std=1.3)
    X = _normal("band-X", shape=(2, n, d)) + 3.0  # a large token mean
    fwd = transformer_forward(X, p, spec)
    C = torch.eye(n, dtype=F64) - torch.full((n, n), 1 / n, dtype=F64)
    k = []
    for l in range(L):
        R, P = residual_mean(fwd.hidden[l]), fwd.patterns[l][:, 0]
        W = model.value_maps(p, l)[:, 0]
        step = R + alpha * C @ P @ C @ R @ W
        assert torch.allclose(residual_mean(fwd.hidden[l + 1]), step, rtol=1e-12, atol=1e-12)
        k.append(alpha * torch.linalg.matrix_norm(C @ P @ C, 2) * torch.linalg.matrix_norm(W, 2))
    lower, upper = theory.residual_band(torch.stack(k, -1).numpy())
    res = torch.stack([residual_mean(h).flatten(-2).norm(dim=-1) for h in fwd.hidden], -1).numpy()
    ratio = res / res[:, :1]
    assert (ratio >= lower * (1 - 1e-12)).all() and (ratio <= upper * (1 + 1e-12)).all()
    assert lower.shape == (2, L + 1) and (lower[:, 0] == 1).all()


def test_skip_residual_band_check_rejects_the_pure_san(smoke_record):
    """Fed the pure SAN's residual (the 'skips change nothing' rival), the band check fails."""
    assert _check(smoke_record, "skip_residual_band").passed
    fake = _with(smoke_record, **{"regime.residual": smoke_record.arrays["regime.san_residual"]})
    assert not _check(fake, "skip_residual_band").passed


def test_mean_lyapunov_exponent_against_monte_carlo():
    """lambda by quadrature against E log ||e_1 (I + alpha W)||^2 over init_transformer's W = sum_h W_V,h W_O,h
    (5 standard errors), and below the log of the expectation (Jensen)."""
    d, H, alpha, sigma = 8, 2, 0.8, 1.3
    spec = TransformerSpec(depth=1, d_model=d, n_heads=H)
    p = _weights(spec, "lyapunov", 20000, value_std=sigma)
    W = model.value_maps(p, 0).sum(1)  # (e, d, d)
    growth = torch.log((torch.eye(d, dtype=F64)[0] + alpha * W[:, 0]).pow(2).sum(-1)).numpy()
    lam = theory.mean_lyapunov_exponent(d, alpha, sigma)
    assert abs(growth.mean() - lam) <= 5 * growth.std() / math.sqrt(growth.size)
    assert lam < math.log(1 + alpha ** 2 * sigma ** 2)


def test_extended_precision_forward_matches_float64():
    """`san_forward_extended` is `transformer_forward` (pure SAN, two heads) in more digits: the same
    rho_l where float64 resolves it, and the cubic law below its floor."""
    spec = TransformerSpec(depth=5, d_model=4, n_heads=2)
    p = _weights(spec, "extended", 1, qk_std=1.0)
    X = _normal("extended-X", shape=(1, 5, 4))
    rho64 = rc.norms.relative_residual(torch.stack(transformer_forward(X, p, spec).hidden, 1))[0].numpy()
    log_rho = model.san_forward_extended(X[0].numpy(), {k: v[0].numpy() for k, v in p.items()}, digits=400)
    ok = rho64 >= 1e-8
    assert ok.sum() >= 3
    np.testing.assert_allclose(log_rho[ok], np.log10(rho64[ok]), atol=1e-8)
    assert log_rho[-1] < -30 and log_rho[-1] / log_rho[-2] > 2.5  # far below float64's floor, still cubic


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array)


def test_record_reverifies_from_its_saved_inputs_and_weights(smoke_record):
    """Every measured array the checks read is recomputed, bit for bit, from the inputs and sampled
    weights the record holds (the witness and the depth-scaling runs read the sweep's saved arrays
    by construction; the Noci networks are not saved, see `simulate.Noci`)."""
    cfg, arrays = smoke_record.config, smoke_record.arrays
    S, N = len(cfg.qk_scale), cfg.n_seeds

    sweep = load(arrays, "sweep", simulate.Sweep)
    params = model.slice_layers(model.at_scales({k: _t(v) for k, v in sweep.weights.items()}, _t(sweep.qk_scale)),
                                cfg.depth)
    X = model.tile_members(_t(sweep.X), S)
    for name, spec in simulate._sweep_specs(cfg, cfg.depth).items():
        rho = model.layer_trajectory(X, params, spec)["rho"].reshape(S, N, -1).numpy()
        np.testing.assert_array_equal(rho, sweep.rho[simulate.VARIANT_KEYS[name]], err_msg=name)

    scan = load(arrays, "scan", simulate.Scan)
    eps = _t(scan.eps)
    p = {k: v.repeat_interleave(len(eps), 0)
         for k, v in model.at_scales({k: _t(v) for k, v in scan.weights.items()}, _t(np.asarray(cfg.scan.qk_scale))).items()}
    Xs = model.tile_members(model.rank_one_plus(_t(scan.x), _t(scan.R0), eps), S)
    np.testing.assert_array_equal(rc.norms.residual_norm(Xs).reshape(S, N, -1).numpy(), scan.input_residual)
    y = transformer_forward(Xs, p, TransformerSpec(depth=1, d_model=cfg.scan.d_model, n_heads=cfg.scan.n_heads)).output
    np.testing.assert_array_equal(rc.norms.residual_norm(y).reshape(S, N, -1).numpy(), scan.output_residual["sa"])

    prec = load(arrays, "precision", simulate.Precision)
    again = model.san_forward_extended(prec.X[0], {k: v[0] for k, v in prec.weights.items()}, cfg.precision.digits)
    np.testing.assert_array_equal(again, prec.log10_rho[0])

    composed = load(arrays, "composed", simulate.Composed)
    again = model.san_residuals_extended(composed.X["h2"][0, 1], {k: v[0] for k, v in composed.weights["h2"].items()},
                                         cfg.composed.digits)
    np.testing.assert_array_equal(again[1], composed.log10_residual["h2"][0, 1])
    np.testing.assert_array_equal(again[0], composed.log10_rho["h2"][0, 1])
    norms = model.layer_norms({k: _t(v) for k, v in composed.weights["h2"].items()})
    for k, v in norms.items():
        np.testing.assert_array_equal(v.numpy(), getattr(composed, k)["h2"], err_msg=k)

    bound = load(arrays, "bound", simulate.Bound)
    measured = []
    for n, d in cfg.bound.groups:
        key = f"n{n}_d{d}"
        w = {k: _t(v) for k, v in bound.weights[key].items()}
        out = transformer_forward(_t(bound.X[key]), w, TransformerSpec(depth=1, d_model=d, n_heads=1)).output
        measured.append(rc.norms.residual_norm(out).numpy())
    np.testing.assert_array_equal(np.concatenate(measured), bound.measured)

    paths = load(arrays, "paths", simulate.Paths)
    spec = TransformerSpec(depth=cfg.paths.depth, d_model=cfg.paths.d_model, n_heads=cfg.paths.heads,
                           branch_scale=cfg.paths.branch_scale, skip=True)
    w = {k: _t(v) for k, v in paths.weights.items()}
    fwd = transformer_forward(_t(paths.X), w, spec)
    total = model.path_decomposition(_t(paths.X), w, spec, fwd.patterns)["total"]
    err = (total - fwd.output).abs().amax(dim=(1, 2)) / fwd.output.abs().amax(dim=(1, 2))
    np.testing.assert_array_equal(err.numpy(), paths.rel_error["skip"])

    grad = load(arrays, "grad", simulate.Gradients)
    gc = cfg.grad
    full = model.variant_specs(gc.depth, gc.d_model, gc.n_heads, alpha=gc.branch_scale, skip=gc.skip, mlp=gc.mlp,
                               norm=gc.norm)["full"]
    deep = model.at_scales({k: _t(v) for k, v in grad.weights_deep.items()}, _t(np.asarray(gc.qk_scale)))
    collapsed = _t(grad.x)[:, None, :].expand(N, gc.n_tokens, gc.d_model)
    norms = model.qk_value_gradients(model.tile_members(collapsed, S), model.tile_members(_t(grad.G), S), deep, full)
    for k, v in norms.items():
        np.testing.assert_array_equal(v.reshape(S, N, -1).numpy(), grad.deep_collapsed[k], err_msg=k)

    regime = load(arrays, "regime", simulate.Regime)
    rcfg = cfg.regime
    spec = TransformerSpec(depth=rcfg.depth, d_model=rcfg.d_model, n_heads=1)
    unit = init_transformer(spec, model.experiment_stream(cfg.seed, "regime").child("weights"), rcfg.seeds)
    np.testing.assert_array_equal(
        model.experiment_stream(cfg.seed, "regime").child("X").normal((rcfg.n_tokens, rcfg.d_model), members=rcfg.seeds).numpy(),
        regime.X)
    ia, iv, js = len(rcfg.alphas) - 1, 0, len(rcfg.qk_scales) - 1  # one cell, redrawn from the stream
    w = dict(unit)
    w["W_Q"], w["W_K"] = unit["W_Q"] * rcfg.qk_scales[js], unit["W_K"] * rcfg.qk_scales[js]
    w["W_V"] = unit["W_V"] * rcfg.value_scales[iv]
    hidden = transformer_forward(_t(regime.X), w, replace(spec, skip=True, branch_scale=rcfg.alphas[ia])).hidden
    res = torch.stack([residual_mean(h).flatten(-2).norm(dim=-1) for h in hidden], -1).numpy()
    np.testing.assert_array_equal(res, regime.residual[ia, iv, js])
