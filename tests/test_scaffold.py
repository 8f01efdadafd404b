"""`workbench new`: a study made from the template runs, passes its own tests and its checks."""
import os
import subprocess
import sys

import pytest

from workbench.errors import WorkbenchInputError
from workbench.scaffold import STUDY_FILES, new_study


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "__init__.py").write_text('"""Studies."""\n\nSTUDIES: list[str] = [\n    "other",\n]\n')
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: other\n"
                                                "  - file: performance\n")
    (tmp_path / "tests").mkdir()
    return tmp_path


def test_new_study_runs_its_smoke_test_and_cli(checkout):
    written = new_study("toy-head", root=checkout)
    assert {p.stem for p in written if p.parent.name == "toy_head"} == set(STUDY_FILES)
    registry = (checkout / "studies" / "__init__.py").read_text()
    assert '"other",\n    "toy_head",' in registry
    toc = (checkout / "book" / "_toc.yml").read_text()
    assert toc.index("file: toy_head") < toc.index("file: performance")
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           str(checkout / "tests" / "test_toy_head.py")], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
    # the registry of the new checkout lists "other", which does not exist: run the study by module
    proc = subprocess.run([sys.executable, "-m", "studies.toy_head", "--preset", "smoke", "--quiet", "--out",
                           str(checkout / "runs")], cwd=checkout, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1/1 theory checks passed (1 discriminate); 1/1 identity" in proc.stdout


def test_new_study_refuses_bad_names_and_existing_studies(checkout):
    with pytest.raises(WorkbenchInputError, match="kebab-case"):
        new_study("Toy_Head", root=checkout)
    new_study("toy-head", root=checkout)
    with pytest.raises(WorkbenchInputError, match="exists already"):
        new_study("toy-head", root=checkout)
    with pytest.raises(WorkbenchInputError, match="no studies/__init__.py"):
        new_study("x", root=checkout / "book")
