"""workbench.runtime: one thread per run and the one-step-ahead batch prefetcher."""
from __future__ import annotations

import threading

import pytest
import torch

from workbench.runtime import Prefetcher, single_thread
from workbench.streams import Stream


def test_single_thread_holds_torch_and_blas_to_one_thread_and_restores_them():
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    with single_thread("cpu"):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    assert torch.get_num_threads() == before


def draw(step: int) -> torch.Tensor:
    return Stream(11, "prefetch").normal(1000, step=step)


def test_prefetched_batches_equal_batches_drawn_on_the_spot():
    with Prefetcher(draw) as batches:
        got = [batches(step) for step in range(20)]
    assert all(torch.equal(g, draw(step)) for step, g in enumerate(got))


def test_prefetcher_draws_ahead_in_another_thread_and_answers_any_order():
    threads, calls = set(), []

    def make(step):
        threads.add(threading.get_ident())
        calls.append(step)
        return step * 10

    with Prefetcher(make) as batches:
        assert [batches(s) for s in (0, 1, 2)] == [0, 10, 20]
        assert batches(7) == 70 and batches(1) == 10     # out of order: computed on the spot
        assert batches(2) == 20
    assert threading.get_ident() in threads and len(threads) == 2   # the first step here, the rest ahead
    # each request draws the step after it ahead; out-of-order ones wait for that draw to finish
    assert calls[:8] == [0, 1, 2, 3, 7, 8, 1, 2]


def test_prefetcher_raises_the_error_of_the_step_that_failed():
    def make(step):
        if step == 3:
            raise ValueError("no batch 3")
        return step

    with Prefetcher(make) as batches:
        assert batches(0) == 0 and batches(1) == 1 and batches(2) == 2
        with pytest.raises(ValueError, match="no batch 3"):
            batches(3)
        assert batches(1) == 1 and batches(2) == 2   # step 3 drawn ahead and failed: not step 1's error


def test_prefetcher_draws_nothing_at_or_past_stop():
    g = torch.Generator().manual_seed(5)
    with Prefetcher(lambda step: torch.rand(1, generator=g), stop=3) as batches:
        [batches(s) for s in range(3)]
    reference = torch.Generator().manual_seed(5)
    [torch.rand(1, generator=reference) for _ in range(3)]
    assert torch.equal(torch.rand(1, generator=g), torch.rand(1, generator=reference))  # left where it would be
