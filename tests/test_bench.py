"""Every registered study's bench kernel: member i of the batched run equals standalone run i.

``workbench bench`` times each study's training kernel batched over M members against a Python
loop over the members; these tests build each case at M = 3 and assert only the equality (never a
timing: these machines are noisy).
"""
from __future__ import annotations

import pytest
import torch

from workbench import registry
from workbench.bench import KernelCase, study_cases, time_kernel

BENCHED = [m for m in registry.all_studies() if hasattr(m, "bench_case")]
CASES = [(m, i) for m in BENCHED for i in range(len(study_cases(m, 2, "cpu")))]


def test_some_study_has_a_bench_case():
    assert BENCHED, "no registered study exposes bench_case"


@pytest.mark.parametrize("study, index", CASES, ids=lambda x: x.NAME if hasattr(x, "NAME") else str(x))
def test_batched_kernel_equals_loop_over_members(study, index):
    members = 3
    case = study_cases(study, members, "cpu")[index]
    assert isinstance(case, KernelCase)
    batched = case.run_batched()
    assert batched, "the kernel returns no outputs"
    for name, value in batched.items():
        assert isinstance(value, torch.Tensor) and value.dtype == torch.float64, name
        assert value.shape[0] == members, f"{name}: first axis {value.shape[0]} is not the member axis"
        assert torch.isfinite(value).all(), f"{name} has non-finite entries"
    # the members differ (an ensemble of copies would make the equality check vacuous)
    first = next(iter(batched.values()))
    assert not torch.equal(first[0], first[1])
    timing = time_kernel(study.NAME, case, members, "cpu")
    assert timing.equal, f"{study.NAME}/{case.name}: member i != run i (max rel diff {timing.max_rel_diff:.3g})"
    assert case.flops is None or case.flops > 0


def test_sampled_loop_checks_the_members_it_runs_and_scales_its_time():
    """``--loop-members K``: the loop runs K members spread over the ensemble, the equality check
    covers those, and the loop time is scaled to all M members."""
    study = BENCHED[0]
    case = study_cases(study, 5, "cpu")[0]
    timing = time_kernel(study.NAME, case, 5, "cpu", loop_members=2)
    assert timing.equal and timing.loop_members == 2 and timing.loop_s > 0
    full = time_kernel(study.NAME, case, 5, "cpu", loop_members=5)
    assert full.loop_members is None  # K >= M: the whole loop, nothing scaled
