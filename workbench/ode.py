"""Gradient flow and other ODEs: adaptive (scipy ``solve_ivp``) and fixed-step RK4 (torch).

- `integrate(f, y0, t_eval)` wraps ``scipy.integrate.solve_ivp`` for numpy vector fields, with
  tight float64 tolerances by default and a clear `IntegrationError` when the solver fails or the
  state blows up: it names the time reached and how many output times were reached, and carries
  the outputs computed so far (``partial = {"t", "y"}``).
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

    blown: dict[str, float] = {}
    solver = _guarded(method, blown)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            sol = solve_ivp(rhs, (t_eval[0], t_eval[-1]), y0.reshape(-1), method=solver, t_eval=t_eval, rtol=rtol,
                            atol=atol, max_step=max_step)
    except _Blowup as blow:  # in the solver's set-up (its first evaluations), before any step
        raise IntegrationError(f"ODE integration ({method}) failed at t={blow.t:.6g}, before its first step: the "
                               f"state blew up (non-finite or |y| > {blowup:g})", step=0, time=blow.t,
                               partial={"t": t_eval[:1], "y": y0[None]}) from None
    n_out = len(sol.t)
    ys = np.asarray(sol.y, dtype=np.float64).T.reshape(n_out, *shape) if n_out else np.empty((0, *shape))
    if sol.status != 0 or not np.all(np.isfinite(ys)):
        reached = sol.t[-1] if n_out else t_eval[0]
        where = blown.get("t", reached)
        reason = (f"the state blew up (non-finite or |y| > {blowup:g})" if "t" in blown or sol.status == 0
                  else sol.message)
        # the outputs so far (at least the initial state, which is known exactly)
        kept_t, kept_y = (np.asarray(sol.t), ys) if n_out else (t_eval[:1], y0[None])
        raise IntegrationError(f"ODE integration ({method}) failed at t={where:.6g} ({n_out} of {len(t_eval)} "
                               f"output times reached): {reason}", step=n_out, time=float(where),
                               partial={"t": kept_t, "y": kept_y})
    return ODESolution(sol.t, ys, int(sol.nfev))


def _guarded(method: str, blown: dict[str, float]):
    """scipy's solver class for ``method`` with a `step` that turns a blow-up inside the vector
    field into a failed step, so ``solve_ivp`` returns the outputs computed so far (it would
    lose them on an exception).  The steps taken are exactly those of the plain method."""
    from scipy.integrate._ivp.ivp import METHODS

    base = METHODS[method]

    class Guarded(base):
        def step(self):
            try:
                return super().step()
            except _Blowup as blow:
                self.status = "failed"
                blown["t"] = blow.t
                return f"the state blew up at t={blow.t:.6g}"

    Guarded.__name__ = Guarded.__qualname__ = base.__name__
    return Guarded


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
                                   step=n + 1, time=float(t_grid[n + 1]),
                                   partial={"t": t_grid[: n + 1], "y": torch.stack(ys)})
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
