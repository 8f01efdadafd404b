"""Run-time helpers every study shares: CPU threading and drawing the next batch ahead.

- `single_thread(device)`: one intra-op torch thread and one BLAS thread (numpy's and scipy's
  OpenBLAS, through threadpoolctl) on the CPU for the duration of a run, restored afterwards.
  The workbench's tensors are small (a few thousand to a few hundred thousand entries), so
  intra-op threads cost more in synchronisation than they gain, and on a shared 2-core machine
  they oversubscribe the cores: measured 5-15x slower runs with two threads under load
  (rank-collapse smoke, random-features quick, icl-regression softmax training), and 12x slower
  numpy fits on 6 x 8 matrices with OpenBLAS's pool (head-rank Part A: 15 s against 1.3 s).
- `Prefetcher(make)`: ``make(step)`` for the next step computed in a background thread while the
  current step trains, for online training whose fresh batches cost as much as the step itself
  (icl-regression draws a block of steps of `workbench.streams` normals ahead).  ``make`` must
  depend on ``step`` alone.
"""
from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, TypeVar

import torch


@contextlib.contextmanager
def single_thread(device: torch.device | str):
    """One torch intra-op thread and one BLAS thread while on the CPU; no-op on other devices."""
    if torch.device(device).type != "cpu":
        yield
        return
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(previous)


T = TypeVar("T")


class Prefetcher(Generic[T]):
    """``batches(step)`` returns ``make(step)``, computed one step ahead in a background thread.

    Steps are expected in increasing order (a training loop); any other request is computed on
    the spot, so the results never depend on the order of requests, only on ``make`` being a
    function of ``step`` alone (e.g. a `workbench.streams.Stream` draw with ``step=step``).
    Torch releases the GIL in its kernels, so drawing and the training step overlap on two cores.
    ``stop``: no step >= stop is drawn ahead (no work is wasted past the end, and a stateful
    ``make`` is left exactly where drawing on the spot would leave it).  Use as a context manager; the thread is stopped on exit, also after an error.
    """

    def __init__(self, make: Callable[[int], T], stop: int | None = None):
        self._make = make
        self._stop = stop
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-prefetch")
        self._next: tuple[int, Future] | None = None

    def __call__(self, step: int) -> T:
        if self._next is not None and self._next[0] == step:
            value = self._next[1].result()
        else:
            if self._next is not None:          # out of order: wait (its error is not this step's),
                self._next[1].exception()       # so make() never runs twice at once
            value = self._make(step)
        ahead = step + 1
        self._next = (ahead, self._pool.submit(self._make, ahead)) if self._stop is None or ahead < self._stop else None
        return value

    def __enter__(self) -> "Prefetcher[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._next = None
