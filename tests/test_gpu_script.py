"""`.ci/gpu`, the script a session with a lent GPU runs, dry-run on the CPU (``DEVICE=cpu``) so it
cannot rot between GPU sessions: its bench phase (one study, small ensembles, sampled loop) and
its records phase (every study's smoke record, packed for comparison elsewhere)."""
from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

from workbench import registry

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_script_dry_run_on_cpu(tmp_path, smoke_runs):
    """The records phase packs the session's smoke records (``$RUNS/smoke``, shared with the other
    tests, so they are computed once; a cache hit still verifies each record's checksums)."""
    env = {**os.environ, "DEVICE": "cpu", "PHASES": "bench,records", "PYTHON": "python",
           "BENCH_ARGS": "rank-collapse --members 1,4 --loop-members 2", "OMP_NUM_THREADS": "1", "RUNS": str(smoke_runs.parent)}
    env["PATH"] = f"{Path(os.sys.executable).parent}:{env['PATH']}"
    proc = subprocess.run(["bash", ".ci/gpu", str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "bench phase: exit 0" in (tmp_path / "out" / "bench.log").read_text()
    bench = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert {k["members"] for k in bench["kernels"]} == {1, 4} and all(k["equal"] for k in bench["kernels"])
    assert "records phase: exit 0" in (tmp_path / "out" / "records.log").read_text()
    with tarfile.open(tmp_path / "out" / "gpu_smoke.tgz") as tar:
        names = set(tar.getnames())
    assert {f"{s}/arrays.npz" for s in registry.study_names()} <= names
