"""Gradient flow and other ODEs: adaptive (scipy ``solve_ivp``) and fixed-step RK4 (torch).

- `integrate(f, y0, t_eval)` wraps ``scipy.integrate.solve_ivp`` for numpy vector fields, with
  tight float64 tolerances by default and a clear `IntegrationError` (naming the time reached)
  when the solver fails or the state becomes non-finite.
- `rk4(f, y0, t_grid)` is a fixed-step classical Runge-Kutta in torch (works on an ensemble axis
  and on the GPU); outputs at every grid point.
- `gradient_flow(params, loss_fn, t_eval)` integrates dW/dt = -grad L(W) with autograd gradients
  (per ensemble member, as in `workbench.train`), returning the parameters at ``t_eval``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from workbench.errors import IntegrationError


@dataclass
class ODESolution:
    t: np.ndarray
    """(n_t,) output times."""
    y: np.ndarray
    """(n_t, *state_shape) states at those times."""
    n_evaluations: int


class _Blowup(Exception):
    def __init__(self, t: float):
        self.t = t


def integrate(f: Callable[[float, np.ndarray], np.ndarray], y0: np.ndarray, t_eval: Sequence[float], *,
              method: str = "LSODA", rtol: float = 1e-10, atol: float = 1e-12, max_step: float = np.inf,
              blowup: float = 1e100) -> ODESolution:
    """Integrate dy/dt = f(t, y) from t_eval[0] and return y at every ``t_eval`` (any state shape).

    The integration stops with `IntegrationError` as soon as the state or its derivative is
    non-finite or exceeds ``blowup`` in absolute value (finite-time blow-up would otherwise make
    an implicit solver crawl with ever smaller steps).
    """
    from scipy.integrate import solve_ivp

    y0 = np.asarray(y0, dtype=np.float64)
    shape = y0.shape
    t_eval = np.asarray(t_eval, dtype=np.float64)
    if t_eval.ndim != 1 or len(t_eval) < 2 or np.any(np.diff(t_eval) <= 0):
        raise ValueError("t_eval must be a strictly increasing 1-D sequence of at least two times")

    def rhs(t, y):
        if not np.all(np.isfinite(y)) or np.abs(y).max(initial=0.0) > blowup:
            raise _Blowup(t)
        dy = np.asarray(f(t, y.reshape(shape)), dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(dy)):
            raise _Blowup(t)
        return dy

    try:
        with np.errstate(over="ignore", invalid="ignore"):
            sol = solve_ivp(rhs, (t_eval[0], t_eval[-1]), y0.reshape(-1), method=method, t_eval=t_eval, rtol=rtol,
                            atol=atol, max_step=max_step)
    except _Blowup as blow:
        raise IntegrationError(f"ODE integration ({method}) failed at t={blow.t:.6g}: the state blew up "
                               f"(non-finite or |y| > {blowup:g})", step=None) from None
    if sol.status != 0 or not np.all(np.isfinite(sol.y)):
        reached = sol.t[-1] if len(sol.t) else t_eval[0]
        raise IntegrationError(f"ODE integration ({method}) failed at t={reached:.6g}: {sol.message}",
                               step=None, partial={"t": sol.t, "y": sol.y.T})
    return ODESolution(sol.t, sol.y.T.reshape(len(sol.t), *shape), int(sol.nfev))


def rk4(f: Callable[[float, Tensor], Tensor], y0: Tensor, t_grid: Tensor | Sequence[float]) -> Tensor:
    """Fixed-step RK4 on the grid ``t_grid`` (steps may vary); returns (len(t_grid), *y0.shape)."""
    t_grid = torch.as_tensor(t_grid, dtype=torch.float64)
    ys = [y0]
    y = y0
    for n in range(len(t_grid) - 1):
        t, h = float(t_grid[n]), float(t_grid[n + 1] - t_grid[n])
        k1 = f(t, y)
        k2 = f(t + h / 2, y + h / 2 * k1)
        k3 = f(t + h / 2, y + h / 2 * k2)
        k4 = f(t + h, y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if not torch.isfinite(y).all():
            raise IntegrationError(f"RK4 state became non-finite at t={float(t_grid[n + 1]):.6g} (step {n + 1})",
                                   step=n + 1, partial={"t": t_grid[: n + 1], "y": torch.stack(ys)})
        ys.append(y)
    return torch.stack(ys)


def gradient_flow(params: Mapping[str, Tensor], loss_fn: Callable[[dict[str, Tensor]], Tensor],
                  t_eval: Sequence[float], *, method: str = "LSODA", rtol: float = 1e-10,
                  atol: float = 1e-12) -> dict[str, np.ndarray]:
    """Integrate dW/dt = -grad L(W) (per member; ``loss_fn`` returns (e,) losses).

    Returns name -> (len(t_eval), *shape) parameter trajectories plus ``"t"`` and ``"loss"``.
    """
    names = list(params)
    shapes = [params[n].shape for n in names]
    sizes = [int(np.prod(s)) for s in shapes]
    like = params[names[0]]

    def unflatten(y: np.ndarray) -> dict[str, Tensor]:
        flat = torch.as_tensor(y, dtype=like.dtype, device=like.device)
        return {n: chunk.view(s) for n, chunk, s in zip(names, torch.split(flat, sizes), shapes)}

    def rhs(t, y):
        p = {n: v.clone().requires_grad_(True) for n, v in unflatten(y).items()}
        loss = loss_fn(p)
        grads = torch.autograd.grad(loss.sum(), [p[n] for n in names])
        return -torch.cat([g.reshape(-1) for g in grads]).detach().cpu().numpy()

    y0 = torch.cat([params[n].detach().reshape(-1) for n in names]).cpu().numpy()
    sol = integrate(rhs, y0, t_eval, method=method, rtol=rtol, atol=atol)
    out: dict[str, np.ndarray] = {"t": sol.t}
    for n, chunk, s in zip(names, np.split(sol.y, np.cumsum(sizes)[:-1], axis=1), shapes):
        out[n] = chunk.reshape(len(sol.t), *s)
    with torch.no_grad():
        out["loss"] = np.stack([loss_fn(unflatten(y)).cpu().numpy() for y in sol.y])
    return out
