"""`workbench sweep` on the toy study: the grid, the cache (skip and resume), the table, the exit
codes, bad input, and the submitit path (debug executor, and a Slurm array with a fake sbatch)."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from workbench.cli import _Parser, add_sweep_parser, run_sweep_command
from workbench.config import StudyConfig
from workbench.errors import ConfigError
from workbench.sweep import (SweepTable, load_runs, load_sweep, make_submitit_executor, parse_grid, parse_seeds,
                             plan_sweep, sweep)
from workbench.sweep.executors import _import_study, _run_one, _task
from workbench.sweep.grid import _grid_values

GRID = ["toy", "--grid", "lr=0.05,0.1", "--grid", "steps=5,10", "--seeds", "0-1", "--preset", "smoke"]


def cli(argv):
    """``workbench sweep ARGV`` through the sweep parser (as `workbench.cli` wires it)."""
    parser = _Parser(prog="workbench")
    add_sweep_parser(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
    return run_sweep_command(parser.parse_args(["sweep", *argv]))


def run_dirs(root: Path) -> set[str]:
    folder = root / "toy"
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")} if folder.exists() else set()


# ------------------------------------------------------------------------------ parsing
def test_seeds_accept_ranges_and_lists():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0,3,5") == [0, 3, 5]
    assert parse_seeds("0-2,10,1") == [0, 1, 2, 10]
    assert parse_seeds(range(2)) == [0, 1]
    for bad in ("", "3-1", "a", "0,,1", "-1", "1.5"):
        with pytest.raises(ConfigError):
            parse_seeds(bad)


@dataclass(frozen=True, kw_only=True)
class _TupleConfig(StudyConfig):
    betas: tuple[float, ...] = (1.0,)
    """A tuple field."""
    lr: float = 0.1
    """A float field."""
    label: str = "a"
    """A string field."""


def test_grid_separators_for_scalars_tuples_and_repeated_keys():
    grid = parse_grid(["betas=0.5,1;2,4", "betas=(8,9)", "lr=0.1,0.2", "lr=0.3", "label=a,b;c"], _TupleConfig)
    assert grid == {"betas": ["0.5,1", "2,4", "(8,9)"], "lr": ["0.1", "0.2", "0.3"], "label": ["a,b", "c"]}
    assert parse_grid(["betas=0.5,1"], _TupleConfig) == {"betas": ["0.5,1"]}  # one tuple, one run
    values = _grid_values(_TupleConfig(), grid)
    assert values["betas"] == [(0.5, 1.0), (2.0, 4.0), (8.0, 9.0)]
    assert values["lr"] == [0.1, 0.2, 0.3] and values["label"] == ["a,b", "c"]
    # the library form: typed values, tuples for tuple fields; duplicates (0.1 and "0.1") dropped
    assert _grid_values(_TupleConfig(), {"betas": [(0.5, 1), [2, 4]], "lr": [0.1, "0.1", 1]}) == \
        {"betas": [(0.5, 1.0), (2.0, 4.0)], "lr": [0.1, 1.0]}


# ------------------------------------------------------------- local pool, cache, resume
def test_local_sweep_skips_complete_runs_and_resumes(toy_study, tmp_path, capsys):
    root = tmp_path / "runs"
    assert cli([*GRID, "--workers", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "8 runs (0 skipped as complete, 8 run, 0 failed)" in out and "8/8 runs passed" in out
    dirs = run_dirs(root)
    assert len(dirs) == 8
    metas = [json.loads((root / "toy" / d / "meta.json").read_text()) for d in dirs]
    assert all(m["status"] == "complete" and m["torch_threads"] == 1 for m in metas)  # one thread per worker

    # a rerun launches nothing
    kwargs = dict(preset="smoke", progress=False)
    grid = {"lr": "0.05,0.1", "steps": [5, 10]}
    stamps = {d: (root / "toy" / d / "arrays.npz").stat().st_mtime_ns for d in dirs}
    result = sweep("toy", grid, "0-1", **kwargs)
    assert (result.skipped, result.ran, result.exit_code) == (8, 0, 0)
    assert {d: (root / "toy" / d / "arrays.npz").stat().st_mtime_ns for d in dirs} == stamps

    # an interrupted sweep (one record missing) reruns exactly that run, bit-identically
    lost = sorted(dirs)[3]
    before = (root / "toy" / lost / "arrays.npz").read_bytes()
    import shutil
    shutil.rmtree(root / "toy" / lost)
    table = load_sweep("toy", grid, "0-1", preset="smoke")
    assert list(table.column("status")).count("missing") == 1
    assert table.where(status="missing")[0]["path"] == str(root / "toy" / lost)
    result = sweep("toy", grid, "0-1", **kwargs)
    assert (result.skipped, result.ran, result.exit_code) == (7, 1, 0)
    assert (root / "toy" / lost / "arrays.npz").read_bytes() == before
    assert {d: (root / "toy" / d / "arrays.npz").stat().st_mtime_ns for d in dirs - {lost}} == \
        {d: s for d, s in stamps.items() if d != lost}

    # one table for a notebook: a row per run, the grid values, the seed, one column per check
    table = load_sweep("toy", grid, "0-1", preset="smoke")
    assert len(table) == 8 and table.keys == ["lr", "steps", "seed"]
    assert table.columns[:6] == ["lr", "steps", "seed", "status", "passed", "wall_time_s"]
    assert {"loss_decreases.measured", "loss_decreases.passed", "loss_floor.measured", "loss_floor.passed",
            "path", "error"} <= set(table.columns)
    np.testing.assert_array_equal(table.column("lr"), [0.05] * 4 + [0.1] * 4)
    np.testing.assert_array_equal(table.column("steps"), [5, 5, 10, 10] * 2)
    np.testing.assert_array_equal(table.column("seed"), [0, 1] * 4)
    assert table.column("passed").dtype == bool and table.column("passed").all()
    measured = table.column("loss_decreases.measured")
    assert measured.dtype == float and (measured <= 0).all()
    assert (table.column("wall_time_s") > 0).all()
    # the measured values are those of the records themselves
    record = table.record(5)
    assert record.config.lr == 0.1 and record.config.steps == 5 and record.config.seed == 1
    assert measured[5] == pytest.approx(float((record["loss"][-1] - record["loss"][0]).max()))
    # everything of the study under the runs directory, whatever grid made it
    assert len(load_runs("toy")) == 8 and load_runs("toy").keys == ["seed", "steps", "lr"]


def test_a_failed_run_is_kept_and_the_sweep_goes_on(toy_study, tmp_path, capsys):
    assert cli(["toy", "--preset", "smoke", "--grid", "lr=1000,0.05", "--seeds", "0", "--workers", "1", "--quiet"]) == 3
    captured = capsys.readouterr()
    assert "DivergenceError" in captured.err and "1 failed" in captured.out
    table = load_sweep("toy", {"lr": [1000, 0.05]}, [0], preset="smoke")
    assert list(table.column("status")) == ["failed", "complete"]
    assert "DivergenceError" in table[0]["error"] and table[0]["passed"] is None
    assert Path(table[0]["path"] + ".failed", "arrays.npz").exists()
    assert list(table.column("passed")) == [None, True]


def test_a_failed_check_exits_1(toy_study):
    assert cli(["toy", "--preset", "smoke", "--grid", "steps=3,4", "--set", "loss_floor=-1",
                "--workers", "1", "--quiet"]) == 1


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv, message", [
    (["toy", "--grid", "stpes=5,10"], "Did you mean 'steps'"),
    (["toy", "--grid", "lr="], "empty list of values"),
    (["toy", "--grid", "lr=0.1,,0.2"], "empty value"),
    (["toy", "--grid", "lr0.1"], "KEY=V1"),
    (["toy", "--grid", "lr=0.1,-1"], "lr must be >"),
    (["toy", "--grid", "steps=5,many"], "integer"),
    (["toy", "--grid", "seed=1,2"], "--seeds"),
    (["toy"], "nothing to sweep"),
    (["toy", "--seeds", "3-1"], "empty"),
    (["toy", "--grid", "lr=0.1,0.2", "--set", "lr=0.3"], "both fixed by --set and swept"),
    (["toy", "--grid", "lr=0.1", "--preset", "papr"], "Did you mean 'paper'"),
    (["toy", "--grid", "lr=0.1", "--workers", "0"], "--workers"),
    (["tyo", "--grid", "lr=0.1"], "Did you mean 'toy'"),
])
def test_bad_input_exits_2_before_anything_runs(toy_study, tmp_path, capsys, argv, message):
    assert cli(argv + ["--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_an_executor_that_is_not_installed_exits_2(toy_study, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` raises ImportError
    assert cli(["toy", "--grid", "lr=0.1,0.2", "--executor", "submitit", "--quiet"]) == 2
    assert "pip install 'attention-workbench[cluster]'" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "toy").exists()


def test_slurm_without_slurm_exits_2(toy_study, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun here
    assert cli(["toy", "--grid", "lr=0.1,0.2", "--executor", "submitit", "--quiet"]) == 2
    assert "srun" in capsys.readouterr().err


def test_unknown_executor_is_an_argparse_error(toy_study, capsys):
    with pytest.raises(SystemExit) as exc:
        cli(["toy", "--grid", "lr=0.1", "--executor", "slurm"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown executor"):
        sweep("toy", {"lr": [0.1]}, executor="slurm")


# ------------------------------------------------------------------------------ submitit
def test_submitit_debug_executor_runs_the_array_and_resumes(toy_study, tmp_path, capsys):
    argv = ["toy", "--preset", "smoke", "--grid", "steps=3,4", "--seeds", "0,2", "--executor", "submitit",
            "--submitit-cluster", "debug", "--quiet"]
    assert cli(argv) == 0
    assert "4 runs (0 skipped as complete, 4 run, 0 failed)" in capsys.readouterr().out
    assert len(run_dirs(tmp_path / "runs")) == 4
    assert any((tmp_path / "runs" / ".submitit" / "toy").iterdir())  # submitit's job folders
    assert cli(argv) == 0
    assert "4 runs (4 skipped as complete, 0 run, 0 failed)" in capsys.readouterr().out


def test_slurm_job_array_script_with_a_fake_sbatch(toy_study, tmp_path, monkeypatch):
    """The array a real cluster would get: one task per pending run, at most N at once."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\ncp \"$1\" {tmp_path}/submitted.sh\necho 'Submitted batch job 4242'\n")
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    plan = plan_sweep("toy", {"lr": [0.05, 0.1, 0.2]}, "0-1", preset="smoke", resolve=False)
    executor = make_submitit_executor(cluster="slurm", folder=tmp_path / "jobs" / "%j", partition="gpu",
                                      time_min=30, array_parallelism=4, cpus_per_task=2)
    jobs = executor.map_array(_run_one, [_task(toy_study, p, force=False) for p in plan])
    assert [j.job_id for j in jobs] == [f"4242_{i}" for i in range(6)]
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --array=0-5%4", "#SBATCH --partition=gpu", "#SBATCH --time=30",
                 "#SBATCH --cpus-per-task=2", "#SBATCH --job-name=workbench-sweep"):
        assert line in script


# ----------------------------------------------------------------------- table, import
def test_table_columns_are_typed_and_to_pandas_is_optional(monkeypatch):
    rows = [{"lr": 0.1, "seed": 0, "status": "complete", "passed": True, "wall_time_s": 1.0, "c.measured": 0.5,
             "c.passed": True, "path": "a", "error": None},
            {"lr": 0.2, "seed": 0, "status": "missing", "passed": None, "wall_time_s": None, "path": "b",
             "error": None}]
    table = SweepTable(rows, ["lr", "seed"])
    np.testing.assert_array_equal(table.column("c.measured"), [0.5, np.nan])
    assert table.column("lr").dtype == float and table["c.passed"].dtype == object
    with pytest.raises(KeyError, match="Did you mean 'c.passed'"):
        table.column("c.pased")
    assert len(table.where(status="complete")) == 1
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        table.to_pandas()
    fake = type(sys)("pandas")
    fake.DataFrame = lambda data, columns: (data, columns)
    monkeypatch.setitem(sys.modules, "pandas", fake)
    data, columns = table.to_pandas()
    assert columns == table.columns and data["c.measured"] == [0.5, None] and data["lr"] == [0.1, 0.2]


def test_a_worker_imports_a_study_registered_only_in_the_parent(toy_study, monkeypatch):
    """What a spawned worker or a Slurm task does for a study that is not in studies.STUDIES on
    disk: import it from its file under its own module name (so the config hash is the same)."""
    import studies

    tests_dir = str(Path(toy_study.__file__).parent)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != tests_dir])
    monkeypatch.delitem(sys.modules, "toy_study")
    monkeypatch.delitem(sys.modules, "studies.toy")
    monkeypatch.setattr(studies, "STUDIES", [s for s in studies.STUDIES if s != "toy"])
    module = _import_study("toy", "toy_study", toy_study.__file__)
    assert module is not toy_study and module.NAME == "toy" and "toy" in studies.STUDIES
    assert module.Config.smoke().content_hash() == toy_study.Config.smoke().content_hash()
