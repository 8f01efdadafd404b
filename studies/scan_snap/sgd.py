"""SGD on the Y/Z model (the official ``Model2`` protocol) as one batched program over an
ensemble of (learning-rate pair, seed) members: the trainer of the ``sgd``, ``sgd_long`` and
``sweep`` phases and of ``workbench bench``.

Members that share a seed index share their data stream and initialisation (common random
numbers across a learning-rate grid, as the paper's sweep does with its ``seed`` argument): the
seed index s is the member key of the phase's `workbench.streams.Stream`, so member (pair g,
seed s) is bit for bit the standalone run of seed s at pair g, in an ensemble of any size.  The
batches of all seeds are drawn at once on the run's device, a block of steps per call
(`data.CountSampler`: the token counts directly from their multinomial law).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from workbench.runtime import Prefetcher
from workbench.streams import Stream
from workbench.train import SGD, Optimizer, train

from studies.scan_snap.data import CountSampler, SequenceClasses
from studies.scan_snap.model import attention_of_classes, distinct_entropy, init_params, lemma1_gradients


@dataclass
class TwoRateSGD(Optimizer):
    """SGD with one learning rate for Y and another for Z (the official code's two optimisers,
    ``lr_y = lr_z * lr_y_multi_on_z``), each a per-member (e,) tensor, same momentum for both."""

    eta_y: Tensor
    eta_z: Tensor
    momentum: float = 0.0
    _groups: dict[str, SGD] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._groups = {"Y": SGD(self.eta_y, momentum=self.momentum), "Z": SGD(self.eta_z, momentum=self.momentum)}

    def step(self, params, grads, step):
        for name, opt in self._groups.items():
            opt.step({name: params[name]}, {name: grads[name]}, step)


BLOCK_NUMBERS = 1 << 22
"""Token counts drawn per call (all seeds x a block of steps x B x M_c): 32 MB in float64."""


def train_sgd(layout: SequenceClasses, *, eta_y: Tensor, eta_z: Tensor, seed_of_member: Tensor,
              stream: Stream, seq_len: int, batch_size: int, steps: int, momentum: float,
              init: str, dtype: torch.dtype, device: torch.device, progress: bool = False,
              desc: str = "sgd", z_trajectory: bool = True) -> dict[str, np.ndarray]:
    """Train every member for ``steps`` SGD steps on fresh batches; observe after every step.

    eta_y, eta_z, seed_of_member: (e,).  ``stream``: the phase's stream; seed index s is its
    member key, for the initialisation (`model.init_params`) and the batch of every step t
    (`data.CountSampler.draw`, keys (s, t)).  Returns numpy arrays (n_t = steps + 1):
    ``loss``, ``p_correct`` (n_t, e) on the batch of that step (before its update), ``z`` (n_t, e,
    Q, M_c) the query rows of Z, ``Y_rowsum_drift`` / ``Z_rowsum_drift`` (n_t, e) the largest
    change of a row sum since initialisation, ``Y_norm`` (n_t, e), ``entropy`` (n_t, e) the
    distinct-token entropy of c_n, ``Y``, ``Z`` (e, M, M) final.  With ``z_trajectory=False``
    only the final query rows ``z`` (e, Q, M_c) are kept (for large sweeps).
    """
    Mc, Q = layout.n_context, layout.n_queries
    seeds, member_row = torch.unique(seed_of_member.long(), return_inverse=True)  # draw each seed once
    seeds_list, member_row = seeds.tolist(), member_row.to(device)
    init_by_seed = init_params(layout, init, stream, seeds_list, dtype=dtype, device=device)
    params = {k: v[member_row].contiguous() for k, v in init_by_seed.items()}
    rowsum0 = {k: v.sum(-1) for k, v in params.items()}  # (e, M)
    p_correct: dict[int, Tensor] = {}
    sampler = CountSampler(layout, seq_len, device)
    block = max(1, min(steps + 1, BLOCK_NUMBERS // (len(seeds_list) * batch_size * Mc)))
    data = stream.child("batch")

    def draw(b: int) -> tuple[Tensor, Tensor]:
        """Steps [b block, (b+1) block) of every seed in one call: counts (S, n, B, M_c), classes (S, n, B)."""
        return sampler.draw(data, batch_size, seeds_list, range(b * block, min((b + 1) * block, steps + 1)))

    current: dict[int, tuple[Tensor, Tensor]] = {}

    def batches(step: int) -> tuple[Tensor, Tensor]:
        b = step // block
        if b not in current:  # each block requested from the prefetcher once, in order
            current.clear()
            current[b] = blocks(b)
        counts, classes = current[b]
        j = step % block
        return counts[:, j][member_row].to(dtype), classes[:, j][member_row]  # (e, B, M_c), (e, B)

    def loss_fn(p: dict[str, Tensor], step: int):
        fwd, grads = lemma1_gradients(p["Y"], p["Z"], *batches(step), layout)
        p_correct[step] = fwd.p_correct.detach()
        return fwd.loss, grads

    observers = {
        "entropy": lambda p: distinct_entropy(attention_of_classes(p["Z"][:, Mc:Mc + Q, :Mc], layout), layout),
        "Y_rowsum_drift": lambda p: (p["Y"].sum(-1) - rowsum0["Y"]).abs().amax(-1),
        "Z_rowsum_drift": lambda p: (p["Z"].sum(-1) - rowsum0["Z"]).abs().amax(-1),
        "Y_norm": lambda p: p["Y"].flatten(1).norm(dim=1),
    }
    if z_trajectory:
        observers["z"] = lambda p: p["Z"][:, Mc:Mc + Q, :Mc]
    opt = TwoRateSGD(eta_y.to(device=device, dtype=dtype), eta_z.to(device=device, dtype=dtype), momentum=momentum)
    with Prefetcher(draw, stop=steps // block + 1) as blocks:   # the next block's draws overlap this one's updates
        result = train(params, loss_fn, opt, steps, observers=observers, observe_at=np.arange(steps + 1),
                       underflow="ignore", progress=progress, desc=desc)
    out = {k: v.cpu().numpy() for k, v in result.trajectory.items()}
    out["p_correct"] = torch.stack([p_correct[int(s)] for s in result.steps]).cpu().numpy()
    out["steps"] = result.steps
    out["Y"] = result.params["Y"].cpu().numpy()
    out["Z"] = result.params["Z"].cpu().numpy()
    if not z_trajectory:
        out["z"] = out["Z"][:, Mc:Mc + Q, :Mc]
    return out
