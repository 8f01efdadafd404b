"""Exact trainers against closed forms and torch's reference optimisers."""
import math

import numpy as np
import pytest
import torch

from workbench.errors import DivergenceError, GradientUnderflowError, IntegrationError
from workbench.ode import gradient_flow, integrate, rk4
from workbench.streams import Stream
from workbench.train import GD, SGD, Adam, NormalizedGD, Scheduled, SpectralDescent, cosine_schedule, log_steps, train

D = torch.float64


def quadratic(target):
    return lambda p, step: 0.5 * (p["W"] - target).pow(2).flatten(1).sum(1)


def test_gd_on_a_quadratic_matches_the_closed_form():
    s = Stream(0, "test_train")
    W0, target = s.child("W0").normal((3, 2, 2)), s.child("target").normal((2, 2))
    lr = torch.tensor([0.1, 0.2, 0.3], dtype=D)
    res = train({"W": W0}, quadratic(target), GD(lr), 20, observe_at=[0, 5, 20])
    for i in range(3):  # W_k - target = (1 - lr)^k (W_0 - target)
        expected = target + (1 - lr[i]) ** 20 * (W0[i] - target)
        assert torch.allclose(res.params["W"][i], expected, rtol=1e-12, atol=1e-14)
    assert list(res.steps) == [0, 5, 20] and res.trajectory["loss"].shape == (3, 3)


def test_per_member_learning_rates_equal_standalone_runs():
    s = Stream(1, "test_train")
    W0, target = s.child("W0").normal((4, 3, 3)), s.child("target").normal((3, 3))
    lrs = torch.tensor([0.01, 0.05, 0.1, 0.2], dtype=D)
    batched = train({"W": W0}, quadratic(target), SGD(lrs, momentum=0.9), 30)
    for i in range(4):
        alone = train({"W": W0[i:i + 1]}, quadratic(target), SGD(float(lrs[i]), momentum=0.9), 30)
        assert torch.equal(alone.params["W"][0], batched.params["W"][i])


@pytest.mark.parametrize("ours, theirs", [
    (lambda: SGD(0.05, momentum=0.9, weight_decay=0.01), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01)),
    (lambda: Adam(0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
])
def test_optimisers_match_torch_reference(ours, theirs):
    s = Stream(2, "test_train")
    W0, target = s.child("W0").normal((1, 4, 3)), s.child("target").normal((4, 3))
    ref = W0.clone().requires_grad_(True)
    opt = theirs([ref])
    for _ in range(25):
        opt.zero_grad()
        quadratic(target)({"W": ref}, 0).sum().backward()
        opt.step()
    res = train({"W": W0}, quadratic(target), ours(), 25)
    assert torch.allclose(res.params["W"], ref.detach(), rtol=1e-12, atol=1e-14)


def test_cosine_scheduled_adam_matches_torch_cosine_annealing():
    s = Stream(4, "test_train")
    W0, target = s.child("W0").normal((1, 4, 3)), s.child("target").normal((4, 3))
    ref = W0.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=0.02)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30, eta_min=0.02 * 0.1)
    for _ in range(30):
        opt.zero_grad()
        quadratic(target)({"W": ref}, 0).sum().backward()
        opt.step()
        sched.step()
    ours = Scheduled(Adam(0.02), cosine_schedule(0.02, 30, floor=0.1))
    res = train({"W": W0}, quadratic(target), ours, 30)
    assert torch.allclose(res.params["W"], ref.detach(), rtol=1e-12, atol=1e-14)
    # a different schedule gives a different end point: the rates are really applied
    flat = train({"W": W0}, quadratic(target), Adam(0.02), 30)
    assert not torch.allclose(flat.params["W"], res.params["W"], rtol=1e-6)
    assert cosine_schedule(1.0, 10, 0.25)(10) == 0.25 and cosine_schedule(1.0, 10, 0.25)(99) == 0.25
    with pytest.raises(ValueError, match="floor"):
        cosine_schedule(1.0, 10, floor=1.5)


def test_normalized_and_spectral_steps_have_the_stated_length():
    s = Stream(3, "test_train")
    W0, target = s.child("W0").normal((2, 4, 3)), s.child("target").normal((4, 3)) * 10
    one = train({"W": W0}, quadratic(target), NormalizedGD(0.1), 1)
    assert torch.allclose((one.params["W"] - W0).flatten(1).norm(dim=1), torch.full((2,), 0.1, dtype=D))
    spec = train({"W": W0}, quadratic(target), SpectralDescent(0.1), 1)
    step = spec.params["W"] - W0  # lr * U V^T: all singular values equal lr
    assert torch.allclose(torch.linalg.svdvals(step), torch.full((2, 3), 0.1, dtype=D), rtol=1e-12)


def test_divergence_names_the_step_and_keeps_the_partial_trajectory():
    W0 = torch.ones(1, 2, dtype=D)
    with pytest.raises(DivergenceError, match="step") as info:
        train({"W": W0}, lambda p, s: (p["W"] ** 2).sum(1) * 1e300, GD(1e10), 50, observe_at=range(51))
    assert info.value.step is not None and info.value.partial.trajectory["loss"].shape[0] >= 1


def test_gradient_underflow_is_reported():
    W0 = torch.zeros(2, 2, dtype=D)
    with pytest.raises(GradientUnderflowError, match="gradient underflow at step 0"):
        train({"W": W0}, lambda p, s: (p["W"] * 0).sum(1) + 1.0, GD(0.1), 5)


def test_closed_form_gradients_are_used():
    W0 = torch.ones(1, 2, dtype=D)
    res = train({"W": W0}, lambda p, s: ((p["W"] ** 2).sum(1), {"W": 2 * p["W"]}), GD(0.25), 3)
    assert torch.allclose(res.params["W"], W0 * 0.5 ** 3)


def test_log_steps():
    s = log_steps(1000, 20)
    assert s[0] == 0 and s[-1] == 1000 and np.all(np.diff(s) > 0)


def test_gradient_flow_matches_exponential_decay():
    W0 = torch.tensor([[1.0, -2.0]], dtype=D)
    out = gradient_flow({"W": W0}, lambda p: 0.5 * (p["W"] ** 2).sum(1) * torch.tensor([3.0], dtype=D),
                        np.linspace(0, 2, 5))
    assert np.allclose(out["W"][:, 0], np.exp(-3 * out["t"])[:, None] * W0.numpy()[0], rtol=1e-8)


def test_rk4_and_integrate_agree_with_exact_solution():
    t = torch.linspace(0, 1, 201, dtype=D)
    ys = rk4(lambda t, y: -y, torch.ones(3, dtype=D), t)
    assert torch.allclose(ys[-1], torch.full((3,), math.exp(-1), dtype=D), rtol=1e-10)
    sol = integrate(lambda t, y: np.stack([y[1], -y[0]]), np.array([0.0, 1.0]), np.linspace(0, 3, 7))
    assert np.allclose(sol.y[:, 0], np.sin(sol.t), atol=1e-8)


def test_integration_failure_is_a_clear_error():
    with pytest.raises(IntegrationError, match="failed at t="):
        integrate(lambda t, y: y ** 2, np.array([1.0]), np.linspace(0, 2, 5))  # blows up at t = 1


def test_freeze_mode_freezes_members_below_the_floor_and_reports_the_step():
    # member 0: gradient 1e-150 * W (below the floor); member 1: an ordinary quadratic
    W0 = torch.ones(2, 3, dtype=D)
    scale = torch.tensor([1e-150, 1.0], dtype=D)
    res = train({"W": W0}, lambda p, s: 0.5 * scale * (p["W"] ** 2).sum(1), GD(0.1), 10,
                underflow="freeze", grad_floor=1e-140)
    assert res.frozen_at.tolist() == [0, -1]
    assert torch.equal(res.params["W"][0], W0[0])
    assert torch.allclose(res.params["W"][1], W0[1] * 0.9 ** 10)
