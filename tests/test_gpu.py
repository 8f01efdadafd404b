"""GPU path (marked ``gpu``; skipped cleanly without CUDA): every study's smoke record agrees
between CPU and GPU to a float64 tolerance, and reruns on the GPU are bit-identical.

Tolerance: 1e-10 relative to each array's largest entry where the computation is stable.  Arrays
that sit at the float64 floor by design (rank-collapse residuals of ~1e-16, saturated softmax
gaps) differ at the rounding level between devices in *absolute* terms only, which this relative
-to-the-array-scale comparison accepts; integer arrays must match exactly.
"""
import numpy as np
import pytest
import torch

from workbench import registry
from workbench.runner import execute

pytestmark = pytest.mark.gpu
RTOL = 1e-10


@pytest.mark.parametrize("name", registry.study_names())
def test_cpu_and_gpu_smoke_records_agree(name, tmp_path):
    cpu = execute(name, preset="smoke", device="cpu", root=tmp_path, progress=False, make_figures=False)
    gpu = execute(name, preset="smoke", device="cuda", root=tmp_path, progress=False, make_figures=False)
    assert set(cpu.record.arrays) == set(gpu.record.arrays)
    bad = []
    for key, a in cpu.record.arrays.items():
        b = gpu.record.arrays[key]
        if a.dtype.kind in "iub":
            if not np.array_equal(a, b):
                bad.append(key)
            continue
        scale = np.nanmax(np.abs(a)) if a.size and np.isfinite(a).any() else 1.0
        if not np.allclose(a, b, rtol=0, atol=RTOL * max(scale, 1e-300), equal_nan=True):
            bad.append(f"{key}: max diff {np.nanmax(np.abs(a - b)):.3e} (scale {scale:.3e})")
    assert not bad, bad
    assert [c.passed for c in cpu.checks] == [c.passed for c in gpu.checks]


@pytest.mark.parametrize("name", registry.study_names())
def test_gpu_reruns_are_bit_identical(name, tmp_path):
    a = execute(name, preset="smoke", device="cuda", root=tmp_path / "a", progress=False, make_figures=False)
    b = execute(name, preset="smoke", device="cuda", root=tmp_path / "b", progress=False, make_figures=False)
    assert (a.path / "arrays.npz").read_bytes() == (b.path / "arrays.npz").read_bytes()


def test_no_tf32_in_float64_runs():
    execute_ctx = __import__("workbench.runner", fromlist=["deterministic"]).deterministic
    with execute_ctx("cuda"):
        assert not torch.backends.cuda.matmul.allow_tf32 and torch.are_deterministic_algorithms_enabled()
