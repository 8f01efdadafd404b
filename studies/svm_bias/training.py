"""Training the one-layer attention model on an ensemble axis with `workbench.train`.

Optimisers (the ``optimizer`` field): plain GD, normalised GD (``ngd``; per tensor or joint over
(K, Q), the ``ngd_per`` field) and spectral steepest descent (``spectral``, W <- W - lr U V^T for
grad = U S V^T; Muon without the Newton-Schulz approximation).  All are `workbench.train`'s.

The float64 horizon.  The gradient shrinks like e^{-margin}, so plain GD meets underflow once
margins pass ~700 (in practice never: its norm grows like ln k).  Normalised GD and spectral
descent see only the gradient's direction, so they take the gradient rescaled per member by
e^{-c} (`model.risk_gradient_W` with ``scaled=True``: the largest softmax weight made 1), which
has no horizon: (K, Q) runs, whose norm grows like (lr k)^2, used to stop after 400-750 steps and
now run to the end.

Gradient-underflow guard, per ensemble member, kept for the unscaled paths (plain GD and the naive
forward pass): training uses `workbench.train`'s ``underflow="freeze"``: a member's gradient is
zeroed once its largest entry falls below ``grad_floor`` (default 1e-140; spec pitfall 4 suggests
1e-200, but norms of such gradients underflow below ~1e-154) and the optimisers leave it unchanged
(NGD and spectral descent treat a zero gradient as "no step").  The step at which each member
froze is returned; a frozen member stays frozen because its parameters no longer change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
from torch import Tensor

from workbench.streams import Stream
from workbench.train import GD, NormalizedGD, SpectralDescent, log_steps, train

from studies.svm_bias.instances import Instance
from studies.svm_bias.model import empirical_risk, risk_gradient_W, weight

OPTIMIZERS = ("gd", "ngd", "spectral")


@dataclass
class TrainedRun:
    steps: np.ndarray
    """(obs,) the observed steps (0 = initialisation)."""
    W_traj: Tensor
    """(obs, e, d, d) W (or K Q^T) at the observed steps."""
    loss: Tensor
    """(obs, e) training loss at the observed steps."""
    params: dict[str, Tensor]
    """Final parameters."""
    frozen_at: Tensor
    """(e,) first step whose largest gradient entry fell below the floor (the guard froze the
    member); -1 if never."""

    @property
    def W(self) -> Tensor:
        """(e, d, d) the final W."""
        return weight(self.params)


def make_optimizer(name: str, lr: float | Tensor, ngd_per: Literal["tensor", "joint"] = "tensor"):
    if name == "gd":
        return GD(lr=lr)
    if name == "ngd":
        return NormalizedGD(lr=lr, per=ngd_per)
    if name == "spectral":
        return SpectralDescent(lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def init_params(param: str, stream: Stream, members: int | Sequence[int], d: int, rank_m: int, scale: float, *,
                dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """W0 = scale * N(0, 1) entries (d x d; child "W" of ``stream``), or K0, Q0 = scale * N(0, 1)
    entries (d x m; children "K", "Q"), for the whole ensemble in one draw each."""
    draw = dict(members=members if isinstance(members, int) else list(members), device=device, dtype=dtype)
    if param == "W":
        return {"W": stream.child("W").normal((d, d), **draw) * scale}
    return {"K": stream.child("K").normal((d, rank_m), **draw) * scale,
            "Q": stream.child("Q").normal((d, rank_m), **draw) * scale}


def observation_steps(steps: int, n_log: int = 60, n_lin: int = 40) -> np.ndarray:
    """Log-spaced steps (for log-log plots) merged with evenly spaced ones (for ln k fits)."""
    lin = np.round(np.linspace(0, steps, n_lin + 1)).astype(np.int64)
    return np.unique(np.concatenate([log_steps(steps, n_log), lin]))


def train_attention(inst: Instance, init: dict[str, Tensor], *, optimizer: str, lr: float | Tensor, steps: int,
                    loss: str, ngd_per: Literal["tensor", "joint"] = "tensor", grad_floor: float = 1e-140,
                    forward: Literal["stable", "naive"] = "stable", observe_at: np.ndarray | None = None,
                    progress: bool = False, desc: str = "train") -> TrainedRun:
    """Train every member of ``inst`` from ``init`` for ``steps`` steps; record W at ``observe_at``."""
    gamma = inst.gamma                                            # (e, n, T)
    scaled = optimizer in ("ngd", "spectral")                     # direction-only: no horizon

    def risk(params: dict[str, Tensor], step: int):
        if forward == "naive":
            # autograd through the textbook forward pass: this is where the horizon shows up
            losses = empirical_risk(params, inst.X, inst.Z, gamma, loss, "naive")   # (e,)
            if not any(p.requires_grad for p in params.values()):
                return losses
            names = list(params)
            grads = dict(zip(names, torch.autograd.grad(losses.sum(), [params[k] for k in names])))
            losses = losses.detach()
        else:
            # the backward pass of the cancellation-free forward pass, written out (3x faster than
            # autograd here; tests/test_svm_bias.py checks it equals autograd through margins_stable)
            with torch.no_grad():
                losses, G = risk_gradient_W(weight(params), inst.X, inst.Z, gamma, loss, scaled)  # (e,), (e, d, d)
                if "W" in params:
                    grads = {"W": G}
                else:  # W = K Q^T:  dL/dK = G Q,  dL/dQ = G^T K
                    grads = {"K": torch.einsum("eab,ebm->eam", G, params["Q"]),
                             "Q": torch.einsum("eab,eam->ebm", G, params["K"])}
        return losses, grads

    result = train(init, risk, make_optimizer(optimizer, lr, ngd_per), steps,
                   observers={"W": weight}, observe_at=observation_steps(steps) if observe_at is None else observe_at,
                   underflow="freeze", grad_floor=grad_floor, progress=progress, desc=desc)
    return TrainedRun(result.steps, result.trajectory["W"], result.trajectory["loss"], result.params,
                      result.frozen_at.cpu())
