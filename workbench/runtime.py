"""Run-time helpers every study shares: CPU threading and derived random streams.

- `single_thread(device)`: one intra-op torch thread on the CPU for the duration of a run,
  restored afterwards.  The workbench's tensors are small (a few thousand to a few hundred
  thousand entries), so intra-op threads cost more in synchronisation than they gain, and on a
  shared 2-core machine they oversubscribe the cores: measured 5-15x slower runs with two threads
  under load (rank-collapse smoke, random-features quick, icl-regression softmax training).
- `derived_seed(*keys)` / `derived_generator(*keys)`: an independent, reproducible stream for any
  tuple of integer keys, e.g. (seed, stream, member, step) for a fresh batch at every step of
  every ensemble member, without any global random state.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch


@contextlib.contextmanager
def single_thread(device: torch.device | str):
    """One intra-op thread while on the CPU; no-op on other devices."""
    if torch.device(device).type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def derived_seed(*keys: int) -> int:
    """A 63-bit seed from non-negative integer keys (numpy SeedSequence hashing)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def derived_generator(*keys: int) -> torch.Generator:
    """A CPU `torch.Generator` seeded with `derived_seed(*keys)`."""
    g = torch.Generator(device="cpu")
    g.manual_seed(derived_seed(*keys))
    return g
