import importlib
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (no GPU on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def toy_study(monkeypatch, tmp_path):
    """Register tests/toy_study.py as `studies.toy` and point the runs directory at tmp_path."""
    import studies
    import toy_study as module

    monkeypatch.setitem(sys.modules, "studies.toy", module)
    monkeypatch.setattr(studies, "STUDIES", [*studies.STUDIES, "toy"])
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    return module


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory) -> Path:
    """The session's one runs directory for smoke records: the contract test, the book build, the
    GPU script's records phase and the entry-point test read each study's smoke record from here,
    so it is computed once per session instead of once per reader (the run cache verifies its
    checksums on every hit). Named ``smoke`` because `.ci/gpu` keeps its records in ``$RUNS/smoke``."""
    root = tmp_path_factory.mktemp("runs") / "smoke"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def smoke_result(smoke_runs):
    """``smoke_result(name)``: the study's smoke run (record, checks, path, figures) from the
    session's cache, computed on first use."""
    from workbench.runner import execute

    return lambda name: execute(name, preset="smoke", root=smoke_runs, progress=False)
