"""Every registered study follows the contract, runs its smoke preset deterministically, and its
checks can be recomputed from the saved record alone."""
import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from workbench import registry
from workbench.checks import Check
from workbench.config import StudyConfig
from workbench.record import load_record
from workbench.runner import execute

STUDIES = registry.study_names()


@pytest.mark.parametrize("name", STUDIES)
def test_contract(name):
    study = registry.get_study(name)
    assert study.NAME == name and study.TITLE and isinstance(study.REFERENCES, (list, tuple))
    assert issubclass(study.Config, StudyConfig)
    for preset in ("smoke", "quick", "paper"):
        cfg = study.Config.preset(preset)
        assert cfg.dtype == "float64"
    docs = study.Config.field_docs()
    undocumented = [f.name for f in dataclasses.fields(study.Config) if f.name not in docs]
    assert not undocumented, f"undocumented config fields: {undocumented}"
    assert isinstance(study.predict(study.Config.smoke()), dict)


@pytest.mark.parametrize("name", STUDIES)
def test_smoke_runs_deterministically_and_rechecks_from_disk(name, tmp_path, smoke_result):
    study = registry.get_study(name)
    first = smoke_result(name)   # the session's record (maybe made by another test): a fresh run must match it
    assert first.checks and all(isinstance(c, Check) for c in first.checks)
    second = execute(study, preset="smoke", root=tmp_path / "b", progress=False, make_figures=False)
    a = (first.path / "arrays.npz").read_bytes()
    b = (second.path / "arrays.npz").read_bytes()
    assert a == b, "same config must give bit-identical arrays.npz"
    record, stored = load_record(first.path)
    recomputed = study.checks(record)
    assert [c.name for c in recomputed] == [c.name for c in stored]
    for c, s in zip(recomputed, stored):
        assert c.passed == s.passed, c.name
    assert list((first.path / "figures").glob("*.png")), "figures must be written"


@pytest.mark.parametrize("name", STUDIES[:1])
def test_module_entry_point(name, smoke_runs, smoke_result):
    """`python -m studies.<name>` runs the CLI (on the session's cached record: the entry point is
    under test here, not the study)."""
    smoke_result(name)
    snake = name.replace("-", "_")
    proc = subprocess.run([sys.executable, "-m", f"studies.{snake}", "--preset", "smoke", "--quiet",
                           "--out", str(smoke_runs)], capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    assert "checks passed" in proc.stdout
