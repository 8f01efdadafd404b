"""Exact trainers: the optimisers the theory talks about, written out, on an ensemble axis.

Parameters are a dict of tensors whose first axis is the ensemble member ``e``.  The loss function
returns one loss per member, shape (e,); since members never interact, the gradient of
``loss.sum()`` is each member's own gradient, exactly.  Learning rates may be a float or a tensor
of shape (e,) (a learning-rate grid as one batched run).

    result = train(params, loss_fn, GD(lr=0.1), steps=1000,
                   observers={"norm": lambda p: p["W"].flatten(1).norm(dim=1)},
                   observe_at=log_steps(1000, 40))
    result.params, result.steps, result.trajectory["loss"], result.trajectory["norm"]

``loss_fn(params, step)`` returns either the losses (e,) (gradients by autograd) or a pair
``(losses, grads)`` with closed-form gradients.  Training stops with `DivergenceError` naming the
step and the members when a loss becomes NaN/Inf or a parameter entry leaves the range whose
square is finite (|p| > sqrt(largest float), ~1.3e154 in float64: past it every norm, inner
product and loss computed from the parameters overflows, so the run has diverged even where the
loss is still finite, e.g. a saturated softmax), and with `GradientUnderflowError` when every
gradient entry of a member is exactly zero (the float64 horizon of a saturated softmax); both
carry the `TrainResult` recorded so far in ``.partial``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from workbench.errors import DivergenceError, GradientUnderflowError

Params = dict[str, Tensor]
LossFn = Callable[[Params, int], "Tensor | tuple[Tensor, Params]"]


# ------------------------------------------------------------------------------ helpers
def log_steps(steps: int, n: int = 50, *, include_zero: bool = True) -> np.ndarray:
    """About ``n`` integer steps, log-spaced in [1, steps], unique and sorted (plus 0)."""
    grid = np.unique(np.round(np.logspace(0, math.log10(max(steps, 1)), n)).astype(np.int64))
    grid = grid[grid <= steps]
    return np.concatenate([[0], grid]) if include_zero else grid


def per_member(value: float | Tensor, like: Tensor) -> Tensor | float:
    """Broadcast a scalar or an (e,) tensor against a parameter of shape (e, ...)."""
    if isinstance(value, Tensor) and value.ndim > 0:
        return value.to(like).view(-1, *([1] * (like.ndim - 1)))
    return float(value)


def member_norm(tensors: Sequence[Tensor]) -> Tensor:
    """Frobenius norm per member over several tensors (e, ...) -> (e,).

    Scaled by the largest entry first, so entries far below sqrt(tiny) ~ 1e-154 (a saturated
    softmax's gradients) do not square to zero, and huge entries do not overflow.
    """
    flat = torch.cat([t.flatten(1) for t in tensors], dim=1)  # (e, total)
    scale = flat.abs().amax(dim=1)  # (e,)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return scale * torch.sqrt((flat / safe[:, None]).pow(2).sum(dim=1))


# ---------------------------------------------------------------------------- optimisers
class Optimizer:
    """Updates parameters in place given gradients; keeps its own state."""

    def step(self, params: Params, grads: Params, step: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class GD(Optimizer):
    """Plain gradient descent W <- W - lr * grad (full batch or population loss)."""

    lr: float | Tensor

    def step(self, params, grads, step):
        for name, p in params.items():
            p.sub_(per_member(self.lr, p) * grads[name])


@dataclass
class NormalizedGD(Optimizer):
    """Normalised GD: W <- W - lr * grad / ||grad||, the norm per tensor or joint over tensors
    (per member).  A member whose gradient is exactly zero is left unchanged."""

    lr: float | Tensor
    per: Literal["tensor", "joint"] = "tensor"

    def step(self, params, grads, step):
        if self.per == "joint":
            norm = member_norm([grads[n] for n in params])
        for name, p in params.items():
            g = grads[name]
            n = member_norm([g]) if self.per == "tensor" else norm
            n = torch.where(n > 0, n, torch.ones_like(n)).view(-1, *([1] * (p.ndim - 1)))
            p.sub_(per_member(self.lr, p) * g / n)


@dataclass
class SGD(Optimizer):
    """SGD with optional heavy-ball momentum and weight decay, as torch.optim.SGD:
    b <- mu b + (g + wd W);  W <- W - lr b."""

    lr: float | Tensor
    momentum: float = 0.0
    weight_decay: float = 0.0
    buffers: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def step(self, params, grads, step):
        for name, p in params.items():
            g = grads[name] + self.weight_decay * p if self.weight_decay else grads[name]
            if self.momentum:
                if name in self.buffers:
                    g = self.buffers[name].mul_(self.momentum).add_(g)
                else:
                    g = self.buffers.setdefault(name, g.clone())
            p.sub_(per_member(self.lr, p) * g)


@dataclass
class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, per member (per-member learning rates allowed)."""

    lr: float | Tensor
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    state: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict, repr=False)
    t: int = 0
    """Number of updates taken (for the bias correction)."""

    def step(self, params, grads, step):
        b1, b2 = self.betas
        self.t += 1
        t = self.t
        for name, p in params.items():
            g = grads[name]
            m, v = self.state.get(name, (torch.zeros_like(p), torch.zeros_like(p)))
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            self.state[name] = (m, v)
            m_hat = m / (1 - b1 ** t)
            v_hat = v / (1 - b2 ** t)
            p.sub_(per_member(self.lr, p) * m_hat / (v_hat.sqrt() + self.eps))


@dataclass
class Scheduled(Optimizer):
    """Any optimiser above with its learning rate set before every update: ``inner.lr =
    schedule(step)`` (a float, or an (e,) tensor of per-member rates).  Its state (Adam's moments and
    step count) is the inner optimiser's, so a schedule changes the step size only."""

    inner: Optimizer
    schedule: Callable[[int], "float | Tensor"]

    def step(self, params, grads, step):
        self.inner.lr = self.schedule(step)
        self.inner.step(params, grads, step)


def cosine_schedule(lr: float, steps: int, floor: float = 0.0) -> Callable[[int], float]:
    """Cosine decay from ``lr`` at step 0 to ``floor * lr`` at step ``steps`` (held there after):
    lr(t) = lr (floor + (1 - floor) (1 + cos(pi min(t, steps) / steps)) / 2)."""
    if not (steps >= 1 and 0.0 <= floor <= 1.0):
        raise ValueError(f"cosine_schedule needs steps >= 1 and 0 <= floor <= 1, got steps={steps}, floor={floor}")

    def schedule(t: int) -> float:
        return lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(t, steps) / steps)))

    return schedule


@dataclass
class SpectralDescent(Optimizer):
    """Steepest descent in the spectral (operator) norm, as in Muon without the Newton-Schulz
    approximation: W <- W - lr * U V^T for G = U S V^T (exact SVD per member).  Tensors that are
    not matrices per member (ndim != 3) fall back to normalised GD."""

    lr: float | Tensor

    def step(self, params, grads, step):
        for name, p in params.items():
            g = grads[name]
            if g.ndim == 3:
                U, S, Vh = torch.linalg.svd(g, full_matrices=False)
                rank_mask = (S > S.amax(dim=-1, keepdim=True) * g.shape[-1] * torch.finfo(g.dtype).eps).to(g)
                direction = torch.einsum("eak,ek,ekb->eab", U, rank_mask, Vh)
            else:
                n = member_norm([g])
                direction = g / torch.where(n > 0, n, torch.ones_like(n)).view(-1, *([1] * (g.ndim - 1)))
            p.sub_(per_member(self.lr, p) * direction)


# ---------------------------------------------------------------------------------- loop
@dataclass
class TrainResult:
    params: Params
    """Final parameters (detached)."""
    steps: np.ndarray
    """The steps at which observers were recorded (0 is before the first update)."""
    trajectory: dict[str, Tensor]
    """name -> (len(steps), e, ...) stacked observations; always includes 'loss'."""
    completed_steps: int
    frozen_at: Tensor | None = None
    """With ``underflow="freeze"``: (e,) the step at which each member froze, -1 if never."""


Observer = Callable[[Params], Tensor]


def train(params: Mapping[str, Tensor], loss_fn: LossFn, optimizer: Optimizer, steps: int, *,
          observers: Mapping[str, Observer] | None = None, observe_at: Sequence[int] | np.ndarray | None = None,
          underflow: Literal["raise", "freeze", "ignore"] = "raise", grad_floor: float = 0.0,
          divergence_threshold: float | None = None, progress: bool = False, desc: str = "train") -> TrainResult:
    """Run ``steps`` updates of ``optimizer`` on ``loss_fn``; record observers at ``observe_at``.

    Observers see the parameters *before* the update of that step, so step 0 is the
    initialisation and step ``steps`` is the final state.

    Gradient underflow (the float64 horizon of a saturated softmax): with ``underflow="raise"``
    a member whose gradient is exactly zero stops the run with `GradientUnderflowError`; with
    ``"freeze"`` a member whose largest gradient entry is zero or below ``grad_floor`` is frozen
    (its gradient zeroed from then on; stateless optimisers then leave it exactly where it is) and
    the step is reported in ``TrainResult.frozen_at``; ``"ignore"`` does neither.
    """
    params = {k: v.detach().clone() for k, v in params.items()}
    observers = dict(observers or {})
    record_at = set(int(s) for s in (observe_at if observe_at is not None else log_steps(steps)))
    record_at = {s for s in record_at if 0 <= s <= steps}
    rec_steps: list[int] = []
    rec: dict[str, list[Tensor]] = {"loss": []}
    for k in observers:
        rec[k] = []

    def snapshot(step: int, loss: Tensor) -> None:
        rec_steps.append(step)
        rec["loss"].append(loss.detach().clone())
        with torch.no_grad():
            for k, fn in observers.items():
                rec[k].append(fn(params).detach().clone())

    first = next(iter(params.values()))
    # the largest entry whose square is finite, per parameter dtype (see the module docstring)
    limits = {k: math.sqrt(torch.finfo(v.dtype).max) if v.is_floating_point() else math.inf for k, v in params.items()}
    frozen_at = torch.full((first.shape[0],), -1, dtype=torch.long, device=first.device) if underflow == "freeze" else None

    def partial(done: int) -> TrainResult:
        return TrainResult({k: v.detach() for k, v in params.items()}, np.asarray(rec_steps, dtype=np.int64),
                           {k: torch.stack(v) for k, v in rec.items() if v}, done, frozen_at)

    iterator = range(steps + 1)
    if progress:
        from workbench.progress import progress_bar
        iterator = progress_bar(iterator, desc=desc, leave=False, mininterval=0.5)
    for step in iterator:
        loss, grads = _loss_and_grads(loss_fn, params, step, need_grads=step < steps)
        if not torch.isfinite(loss).all():
            bad = torch.nonzero(~torch.isfinite(loss)).flatten().tolist()
            raise DivergenceError(f"loss became non-finite at step {step} for ensemble members {_few(bad)}",
                                  step=step, members=bad, partial=partial(step))
        if divergence_threshold is not None and (loss.abs() > divergence_threshold).any():
            bad = torch.nonzero(loss.abs() > divergence_threshold).flatten().tolist()
            raise DivergenceError(f"|loss| exceeded {divergence_threshold:g} at step {step} for members {_few(bad)}",
                                  step=step, members=bad, partial=partial(step))
        if step in record_at:
            snapshot(step, loss)
        if step == steps:
            break
        if underflow == "raise":
            gnorm = member_norm(list(grads.values()))
            if (gnorm == 0).any():
                bad = torch.nonzero(gnorm == 0).flatten().tolist()
                raise GradientUnderflowError(
                    f"gradient underflow at step {step}: every gradient entry is exactly 0 for members {bad[:10]} "
                    f"(a saturated softmax in {next(iter(params.values())).dtype}, or a stationary initialisation)",
                    step=step, partial=partial(step))
        if underflow == "freeze":
            # the largest entry per member: no squares, so no underflow of its own
            gmax = torch.stack([g.abs().flatten(1).amax(dim=1) for g in grads.values()]).amax(dim=0)  # (e,)
            below = (gmax < grad_floor) | (gmax == 0)
            if below.any():
                frozen_at = torch.where(below & (frozen_at < 0), torch.full_like(frozen_at, step), frozen_at)
                keep = (~below).to(gmax.dtype)
                grads = {k: g * keep.view(-1, *([1] * (g.ndim - 1))) for k, g in grads.items()}
        with torch.no_grad():
            optimizer.step(params, grads, step)
            for name, p in params.items():
                # one reduction per tensor: NaN fails the comparison, +-inf exceeds the limit
                if p.numel() and not bool(p.abs().amax() <= limits[name]):
                    raise _diverged(name, p, limits[name], step + 1, partial(step))
    return partial(steps)


def _diverged(name: str, p: Tensor, limit: float, step: int, partial: "TrainResult") -> DivergenceError:
    """The error for parameter ``name`` out of range after the update of step ``step - 1``."""
    worst = p.detach().abs().flatten(1).amax(dim=1) if p.ndim > 1 else p.detach().abs()
    bad = torch.nonzero(~(worst <= limit)).flatten().tolist()
    if not torch.isfinite(p).all():
        what = "became non-finite"
    else:
        what = f"reached |entries| of {float(worst.max()):.3g}, beyond sqrt(largest {p.dtype}) = {limit:.3g} (diverged)"
    return DivergenceError(f"parameter {name!r} {what} at step {step} for ensemble members {_few(bad)}",
                           step=step, members=bad, partial=partial)


def _few(members: list[int], n: int = 10) -> str:
    return str(members[:n]) + (f" and {len(members) - n} more" if len(members) > n else "")


def _loss_and_grads(loss_fn: LossFn, params: Params, step: int, need_grads: bool) -> tuple[Tensor, Params]:
    if not need_grads:
        with torch.no_grad():
            out = loss_fn(params, step)
        return (out[0] if isinstance(out, tuple) else out).detach(), {}
    for p in params.values():
        p.requires_grad_(True)
    out = loss_fn(params, step)
    if isinstance(out, tuple):
        loss, grads = out
        grads = {k: g.detach() for k, g in grads.items()}
    else:
        loss = out
        names = list(params)
        gs = torch.autograd.grad(loss.sum(), [params[n] for n in names], allow_unused=True)
        grads = {n: (g if g is not None else torch.zeros_like(params[n])) for n, g in zip(names, gs)}
    for p in params.values():
        p.requires_grad_(False)
    return loss.detach(), grads
