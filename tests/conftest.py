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
