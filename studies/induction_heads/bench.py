"""The kernels of induction-heads for ``workbench bench``.

`bench_case`: exact population GD of the reduced model (`simulate._gd`, the escape-law sweep's kernel):
member i starts at the plateau (gamma*, b*) with factors sigma_i z_i, z_i from the "rm-escape" stream
keyed by i, on the prefix population of k = 2, T = 10 (1023 distinct prefixes).
`tf_bench_case`: online Adam on the 2-layer transformer (`simulate.train_tf`'s step: one fresh
Dirichlet-Markov batch per member and step from the stream keyed by (member, step)).
"""
from __future__ import annotations

import torch

from workbench.runtime import single_thread
from workbench.streams import Stream

from studies.induction_heads import model as md
from studies.induction_heads import theory as th
from studies.induction_heads.config import Config

STEPS = 20
TF_STEPS = 10
"""Adam steps of the timed transformer call."""
"""GD (or Adam) steps of the timed call."""


def bench_case(members: int, device: str):
    """``STEPS`` exact population GD steps of ``members`` RM members (k = 2, T = 10, eta = 3)."""
    from workbench.bench import KernelCase

    from studies.induction_heads.simulate import _gd

    cfg = Config.quick().replace(device=str(device))
    r, dev = cfg.reduced, cfg.torch_device
    f, W, Q = th.prefix_population(r.k, r.n_tokens, 1.0, device=dev)
    f = {n: v.to(dev) for n, v in f.items()}
    pl = th.plateau(r.k, r.n_tokens, 1.0)
    z = Stream(cfg.seed, "rm-escape").normal((2,), members=members, dtype=torch.float64)
    sigma = torch.logspace(-1, -4, members, dtype=torch.float64) if members > 1 else torch.tensor([1e-2], dtype=torch.float64)
    theta0 = torch.cat([torch.zeros(members, 1, dtype=torch.float64),
                        torch.tensor([pl["gamma"], pl["b"]], dtype=torch.float64).expand(members, 2),
                        sigma[:, None] * z], -1).to(dev)

    def kernel(sl: slice) -> dict[str, torch.Tensor]:
        with single_thread(dev):
            tr = _gd(theta0[sl], (f, W.to(dev)[None], Q.to(dev)[None]), r.eta, STEPS, "bench", False)
        return {"theta": torch.as_tensor(tr.theta).transpose(0, 1), "loss": torch.as_tensor(tr.loss).T}

    flops = members * STEPS * 3 * 12 * f["M"].numel()
    return KernelCase(f"RM exact population GD, {STEPS} steps", lambda: kernel(slice(None)),
                      lambda i: kernel(slice(i, i + 1)), flops=float(flops))


def tf_bench_case(members: int, device: str):
    """``TF_STEPS`` Adam steps of ``members`` 2-layer transformers on their own fresh batches."""
    from workbench.bench import KernelCase

    from studies.induction_heads import data
    from studies.induction_heads.simulate import train_tf, _true_rows

    cfg = Config.quick().replace(steps=TF_STEPS, n_eval=5, test_size=64, device=str(device), n_seeds=members)
    dev = cfg.torch_device
    Pt, xt = data.sample(cfg.seed, "tf-test", cfg.k, cfg.alpha, cfg.test_size, cfg.n_tokens + 1, members=None, device=dev)
    test = (Pt, xt, _true_rows(Pt, xt))

    def kernel(ms) -> dict[str, torch.Tensor]:
        with single_thread(dev):
            run = train_tf(cfg, 2, ms, test, False, "bench")
        return {"loss": torch.as_tensor(run.loss)}

    return KernelCase(f"TF online Adam, {TF_STEPS} steps", lambda: kernel(members), lambda i: kernel([i]), rtol=1e-8)


def bench_cases(members: int, device: str):
    return [bench_case(members, device), tf_bench_case(members, device)]
