"""Failures, exit codes and record integrity (issue 11): every observation of the issue, reproduced.

A crash is never mistaken for a failed theorem: bad input exits 2 before anything is computed, a
failed run exits 3 and keeps what it computed in ``<hash>.failed/``, a bug exits 4 with its
traceback in a log file, and a damaged record is detected, named and never served from the cache.
Most tests use the toy study (tests/toy_study.py); the issue's own commands use the real studies
at their smoke preset, stopped by validation or by the divergence within seconds.
"""
from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.cli import main
from workbench.config import StudyConfig
from workbench.errors import DivergenceError, IntegrationError
from workbench.record import (Record, clean_stale, load_npz, load_record, save_npz, save_record, verify_record)

TESTS = Path(__file__).resolve().parent
SMOKE = ["--preset", "smoke", "--quiet"]


def _only_run_dir(root: Path, study: str = "toy") -> Path:
    (run,) = [p for p in (root / study).iterdir() if not p.name.startswith(".")]
    return run


def _never_run(*args, **kwargs):
    raise AssertionError("the study was run although the input was bad")


# ============================================================================ exit codes
def test_an_internal_error_exits_4_with_the_traceback_in_a_log(toy_study, tmp_path, monkeypatch, capsys):
    def broken_checks(record):
        return 1 / 0
    monkeypatch.setattr(toy_study, "checks", broken_checks)
    assert main(["run", "toy", *SMOKE]) == 4
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError" in err and "Traceback" not in err
    (log,) = (tmp_path / "runs" / ".logs").glob("*.log")
    assert str(log) in err
    text = log.read_text()
    assert "Traceback" in text and "broken_checks" in text and "ZeroDivisionError" in text


def test_the_log_falls_back_to_the_temp_dir_when_the_runs_dir_is_unusable(tmp_path, monkeypatch):
    from workbench.cli import write_log

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "file").write_text("not a directory")
    log = write_log("Traceback: boom", str(tmp_path / "file"))
    assert log is not None and log.parent == tmp_path / "tmp" / "workbench-logs" and "boom" in log.read_text()


def test_ctrl_c_during_a_run_exits_130_without_a_traceback(toy_study, monkeypatch, capsys):
    def interrupted(config, progress=True):
        raise KeyboardInterrupt
    monkeypatch.setattr(toy_study, "run", interrupted)
    assert main(["run", "toy", *SMOKE]) == 130
    assert "interrupted" in capsys.readouterr().err


# ------------------------------------------------------------------ the runs directory
def test_out_pointing_at_a_file_is_bad_input_before_computing(toy_study, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(toy_study, "run", _never_run)
    target = tmp_path / "a-file"
    target.write_text("x")
    assert main(["run", "toy", *SMOKE, "--out", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_out_read_only_is_bad_input_before_computing(toy_study, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(toy_study, "run", _never_run)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root writes through permissions: simulate the refusal of a read-only mount
            def refuse(path):
                raise OSError(errno.EROFS, "Read-only file system")
            monkeypatch.setattr("workbench.runner._probe_writable", refuse)
        assert main(["run", "toy", *SMOKE, "--out", str(ro)]) == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


def test_out_on_a_full_disk_is_bad_input_before_computing(toy_study, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(toy_study, "run", _never_run)

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("workbench.runner._probe_writable", full)
    assert main(["run", "toy", *SMOKE]) == 2
    assert "is full" in capsys.readouterr().err


def test_a_missing_but_creatable_out_is_made(toy_study, tmp_path):
    out = tmp_path / "new" / "runs"
    assert main(["run", "toy", *SMOKE, "--out", str(out)]) == 0
    assert (_only_run_dir(out) / "meta.json").exists()


def test_a_full_disk_while_writing_says_so_and_leaves_nothing_half_written(toy_study, tmp_path, monkeypatch, capsys):
    def no_space(path, arrays):
        Path(path).write_bytes(b"PK\x03\x04 half an archive")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("workbench.record.save_npz", no_space)
    assert main(["run", "toy", *SMOKE]) == 3
    err = capsys.readouterr().err
    assert "is full" in err and "nothing was written" in err and "Traceback" not in err
    assert list((tmp_path / "runs" / "toy").iterdir()) == []  # no record, no .tmp-* directory


# -------------------------------------------------------- values that used to crash later
@pytest.mark.parametrize("argv, message", [
    (["svm-bias", "--set", "steps=1e30"], "svm-bias: steps must be <= 1000000000"),
    (["svm-bias", "--set", "seed=99999999999999999999999"], "svm-bias: seed must be <= 2**62"),
    (["rank-collapse", "--set", "value_scale=1e200"], "rank-collapse: value_scale=1e+200"),
    (["svm-bias", "--set", "depht=3"], "svm-bias: Config has no field 'depht'"),
    (["rank-collapse", "--set", "depht=3"], "rank-collapse: Config has no field 'depht'. Did you mean 'depth'?"),
    (["rank-collapse", "--set", "value_scale=inf"], "rank-collapse: value_scale must be a finite number"),
    (["icl-regression", "--set", "batch_size=1e12"], "icl-regression: batch_size must be <= 1000000000"),
])
def test_out_of_range_values_are_bad_input_naming_study_and_field(tmp_path, capsys, argv, message):
    assert main(["run", argv[0], *SMOKE, *argv[1:], "--out", str(tmp_path / "runs")]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused before anything was computed or written


def test_generic_ranges_apply_to_every_config(toy_study):
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match="toy: steps must be <= 1000000000"):
        toy_study.Config().with_overrides(["steps=1e30"])
    with pytest.raises(ConfigError, match="toy: lr must be a finite number"):
        toy_study.Config().replace(lr=float("nan"))
    with pytest.raises(ConfigError, match="toy: seed must be <= 2"):
        toy_study.Config(seed=2 ** 64)
    toy_study.Config(seed=2 ** 62)  # the largest seed is fine


# --------------------------------------------------------------------------------- memory
@pytest.mark.parametrize("field", ["n_seeds=10000000", "d_model=100000"])
def test_a_config_too_large_for_the_memory_is_refused_before_running(tmp_path, capsys, monkeypatch, field):
    from studies import rank_collapse

    monkeypatch.setattr(rank_collapse, "run", _never_run)
    assert main(["run", "rank-collapse", *SMOKE, "--set", field, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "rank-collapse: this config needs about" in err and "available" in err


@pytest.mark.parametrize("error", [
    MemoryError("Unable to allocate 7.45 TiB for an array with shape (1000000, 1000000)"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                 "you tried to allocate 8000000000000 bytes."),
])
def test_an_allocation_failure_is_a_failed_run_with_a_message(toy_study, monkeypatch, capsys, error):
    def allocate(config, progress=True):
        raise error
    monkeypatch.setattr(toy_study, "run", allocate)
    assert main(["run", "toy", *SMOKE]) == 3
    err = capsys.readouterr().err
    assert "ran out of memory" in err and "Traceback" not in err


def test_other_runtime_errors_are_not_mistaken_for_memory(toy_study, monkeypatch, capsys):
    def bug(config, progress=True):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    monkeypatch.setattr(toy_study, "run", bug)
    assert main(["run", "toy", *SMOKE]) == 4


# ============================================================= divergence keeps what was computed
def _failed_dir(root: Path, study: str) -> Path:
    (failed,) = (root / study).glob("*.failed")
    assert not [p for p in (root / study).iterdir() if not p.name.startswith(".") and "." not in p.name], \
        "a failed run must never leave a complete record (nor figures)"
    return failed


def test_icl_regression_divergence_keeps_the_trainer_result_and_earlier_phases(tmp_path, capsys):
    assert main(["run", "icl-regression", *SMOKE, "--set", "lr=1e200", "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "phase 'softmax'" in err and "at step 1" in err and "members [0, 1, 2]" in err
    failed = _failed_dir(tmp_path, "icl-regression")
    meta = json.loads((failed / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["step"] == 1 and meta["phase"] == "softmax" and meta["members"]
    arrays = load_npz(failed / "arrays.npz")
    assert "softmax.trajectory.loss" in arrays and "softmax.steps" in arrays   # the TrainResult
    assert any(k.startswith("lsa.") for k in arrays)                           # a phase that finished
    assert meta["n_arrays"] == len(arrays)


def test_scan_snap_divergence_is_named_and_keeps_arrays(tmp_path, capsys):
    assert main(["run", "scan-snap", *SMOKE, "--set", "eta_z=1e300", "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "scan-snap, phase 'sgd'" in err and "at step" in err
    meta = json.loads((_failed_dir(tmp_path, "scan-snap") / "meta.json").read_text())
    assert meta["step"] is not None and meta["members"]
    arrays = load_npz(_failed_dir(tmp_path, "scan-snap") / "arrays.npz")
    assert "grad.lemma1_Z" in arrays and any(k.startswith("sgd.") for k in arrays)


def test_svm_bias_plain_gd_divergence_is_detected_before_any_figure(tmp_path, capsys, monkeypatch):
    import studies.svm_bias as sb

    monkeypatch.setattr(sb, "figures", _never_run)
    assert main(["run", "svm-bias", *SMOKE, "--set", "optimizer=gd", "--set", "lr=1e300",
                 "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "svm-bias, phase 'main'" in err and "diverged" in err and "at step 1" in err and "Traceback" not in err
    arrays = load_npz(_failed_dir(tmp_path, "svm-bias") / "arrays.npz")
    assert "main.trajectory.W" in arrays and "main.params.W" in arrays


def test_the_trainer_stops_when_parameters_leave_the_float_range_even_with_a_finite_loss():
    from workbench.train import GD, train

    def saturated(p, step):  # a bounded loss whose gradient does not vanish at the start
        return torch.tanh(p["w"].sum(dim=1)), {"w": torch.ones_like(p["w"])}

    with pytest.raises(DivergenceError, match="at step 1 for ensemble members \\[0, 1\\]") as info:
        train({"w": torch.zeros(2, 3, dtype=torch.float64)}, saturated, GD(lr=1e300), steps=5)
    assert info.value.step == 1 and info.value.members == [0, 1]
    assert info.value.partial.trajectory["loss"].shape == (1, 2)


def test_an_ode_blow_up_names_the_time_and_keeps_the_outputs_so_far():
    from workbench.ode import integrate

    with pytest.raises(IntegrationError, match="of 21 output times reached") as info:
        integrate(lambda t, y: y ** 2, np.ones(2), np.linspace(0, 2, 21), method="LSODA")
    err = info.value
    assert 0.9 < err.time <= 1.0 and err.step == 10
    assert err.partial["t"].shape == (10,) and err.partial["y"].shape == (10, 2)
    assert np.isfinite(err.partial["y"]).all()
    # a blow-up on the very first step still keeps the initial state
    with pytest.raises(IntegrationError) as info:
        integrate(lambda t, y: 1e300 * np.exp(np.minimum(y, 700.0)) * 1e300, np.ones(1), [0.0, 1.0], method="DOP853")
    assert info.value.partial["y"].shape[0] >= 1


def test_save_failed_keeps_any_result_object_prefixed_by_phase(tmp_path, toy_study):
    from workbench.runner import save_failed
    from workbench.train import TrainResult

    partial = TrainResult({"W": torch.ones(2, 3)}, np.arange(3), {"loss": torch.zeros(3, 2)}, 2)
    err = DivergenceError("boom at step 2", step=2, partial=partial, phase="fit", members=[1])
    target = save_failed("toy", toy_study.Config(), err, tmp_path / "toy" / "abc")
    arrays = load_npz(target / "arrays.npz")
    assert set(arrays) == {"fit.params.W", "fit.steps", "fit.trajectory.loss", "fit.completed_steps"}
    meta = json.loads((target / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["phase"] == "fit" and meta["members"] == [1]
    assert "partial results kept" in str(err) and "4 arrays" in str(err)


def test_a_forward_pass_overflow_in_rank_collapse_is_a_failed_run_not_a_failed_check(tmp_path, monkeypatch, capsys):
    from studies.rank_collapse import simulate
    from workbench.phases import Phase

    scan = next(p for p in simulate.PHASES if p.name == "scan")
    monkeypatch.setattr(simulate, "PHASES", (Phase("sweep", lambda cfg: {"X": torch.zeros(2)}), scan))  # fast, finite
    monkeypatch.setattr(simulate, "residual_norm", lambda H: torch.full(H.shape[:-2], float("inf"), dtype=H.dtype))
    assert main(["run", "rank-collapse", *SMOKE, "--out", str(tmp_path)]) == 3
    assert "phase 'scan'" in capsys.readouterr().err
    arrays = load_npz(_failed_dir(tmp_path, "rank-collapse") / "arrays.npz")
    assert "sweep.X" in arrays and "scan.weights.W_Q" in arrays and np.isinf(arrays["scan.input_residual"]).all()


# ================================================================================ records
def _run_toy(*extra) -> int:
    return main(["run", "toy", *SMOKE, *extra])


def _scale_arrays(run: Path, factor: float, *, fix_checksum: bool = False) -> None:
    arrays = load_npz(run / "arrays.npz")
    arrays["loss"] = arrays["loss"] * factor
    save_npz(run / "arrays.npz", arrays)
    if fix_checksum:  # a consistent edit: only recomputing the checks can notice
        from workbench.record import file_sha256
        meta = json.loads((run / "meta.json").read_text())
        meta["checksums"]["arrays.npz"] = file_sha256(run / "arrays.npz")
        (run / "meta.json").write_text(json.dumps(meta))


def test_meta_json_holds_checksums_of_the_other_files(toy_study, tmp_path):
    assert _run_toy() == 0
    meta = json.loads((_only_run_dir(tmp_path / "runs") / "meta.json").read_text())
    assert set(meta["checksums"]) == {"config.json", "arrays.npz", "checks.json"} and meta["schema"] == 2


def test_a_tampered_record_is_not_served_from_the_cache(toy_study, tmp_path, capsys):
    assert _run_toy() == 0
    run = _only_run_dir(tmp_path / "runs")
    _scale_arrays(run, 1.5)
    capsys.readouterr()
    assert _run_toy() == 0
    out, err = capsys.readouterr()
    assert "(cached)" not in out and "arrays.npz does not match its sha256" in err and "moved aside" in err
    assert [p.name for p in (tmp_path / "runs" / "toy").iterdir() if ".damaged-" in p.name]
    verify_record(run)  # recomputed, intact
    assert _run_toy() == 0 and "(cached)" in capsys.readouterr().out


def test_check_detects_a_tiny_change_of_the_arrays(toy_study, tmp_path, capsys):
    assert _run_toy() == 0
    _scale_arrays(_only_run_dir(tmp_path / "runs"), 1 + 1e-6)
    capsys.readouterr()
    assert main(["check", "toy", *SMOKE]) == 2
    err = capsys.readouterr().err
    assert "arrays.npz does not match its sha256" in err and "--force" in err


def test_check_compares_measured_values_not_only_pass_fail(toy_study, tmp_path, capsys):
    assert _run_toy() == 0
    _scale_arrays(_only_run_dir(tmp_path / "runs"), 1 + 1e-6, fix_checksum=True)  # every check still passes
    capsys.readouterr()
    assert main(["check", "toy", *SMOKE]) == 1
    err = capsys.readouterr().err
    assert "differ from" in err and "loss_floor.measured: stored" in err


def test_check_of_an_intact_record_reports_equality(toy_study, tmp_path, capsys):
    assert _run_toy() == 0
    capsys.readouterr()
    assert main(["check", "toy", "--preset", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "checksums match" in out and "equals checks.json" in out


@pytest.mark.parametrize("name, damage", [
    ("arrays.npz", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])),
    ("checks.json", lambda p: p.write_text(p.read_text()[:-20])),
    ("config.json", lambda p: p.write_text("{not json")),
    ("meta.json", lambda p: p.write_text(p.read_text()[:-5])),
])
def test_a_damaged_file_is_named_with_the_remedy_and_the_next_run_recomputes(toy_study, tmp_path, capsys, name, damage):
    assert _run_toy() == 0
    run = _only_run_dir(tmp_path / "runs")
    damage(run / name)
    capsys.readouterr()
    assert main(["check", "toy", *SMOKE]) == 2
    err = capsys.readouterr().err
    assert name in err and "--force" in err and "Traceback" not in err
    assert _run_toy() == 0  # recomputed (the damaged record moved aside, or replaced)
    assert "(cached)" not in capsys.readouterr().out
    verify_record(run)
    load_record(run)


def test_load_record_never_raises_zip_or_json_errors(tmp_path, toy_study):
    from workbench.errors import RecordError

    path = save_record(Record(study="toy", config=toy_study.Config(), arrays={"a": np.ones(3)}), tmp_path / "r")
    (path / "arrays.npz").write_bytes(b"PK\x03\x04truncated")
    with pytest.raises(RecordError, match="arrays.npz"):
        load_record(path, toy_study.Config, verify=False)


def test_check_never_runs_anything(toy_study, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(toy_study, "run", _never_run)
    assert main(["check", "toy", *SMOKE]) == 2
    err = capsys.readouterr().err
    assert "no record of toy [smoke]" in err and "workbench run toy --preset smoke" in err


def test_check_with_an_unreadable_meta_json_does_not_retrain(toy_study, tmp_path, monkeypatch, capsys):
    assert _run_toy() == 0
    (_only_run_dir(tmp_path / "runs") / "meta.json").write_text("{")
    monkeypatch.setattr(toy_study, "run", _never_run)
    capsys.readouterr()
    assert main(["check", "toy", *SMOKE]) == 2
    assert "meta.json is not valid JSON" in capsys.readouterr().err


def test_check_accepts_a_record_directory(toy_study, tmp_path, capsys):
    assert _run_toy() == 0
    run = _only_run_dir(tmp_path / "runs")
    capsys.readouterr()
    assert main(["check", str(run)]) == 0
    assert f"re-verified from {run}" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "runs" / "toy" / "nothing-here")]) == 2


# ------------------------------------------------------------------------ concurrency
def _save_many(root: str, n: int, barrier, results) -> None:
    sys.path.insert(0, str(TESTS))
    from toy_study import Config

    errors = []
    record = Record(study="toy", config=Config(), arrays={"a": np.arange(2000.0), "b": np.eye(20)})
    barrier.wait()
    for _ in range(n):
        try:
            save_record(record, Path(root) / "toy" / "samehash", [])
        except Exception as err:  # collected, not raised: the parent reports every failure
            errors.append(f"{type(err).__name__}: {err}")
    results.put(errors)


def test_concurrent_saves_of_the_same_config_are_race_free(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_save_many, args=(str(tmp_path), 60, barrier, results)) for _ in range(3)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in results.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    assert errors == []
    assert sorted(p.name for p in (tmp_path / "toy").iterdir()) == ["samehash"]  # no .old-* or .tmp-* junk
    verify_record(tmp_path / "toy" / "samehash")


# ------------------------------------------------------------------------ leftovers, umask
def test_leftovers_of_killed_runs_are_cleaned_and_never_read(toy_study, tmp_path):
    from workbench.record import _host
    from workbench.sweep import load_runs

    folder = tmp_path / "runs" / "toy"
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = [folder / f".abc.tmp-{_host()}-{dead}-x1y2", folder / f".abc.old-{_host()}-{dead}-ff00",
             folder / ".abc.tmp-oldstyle"]
    alive = folder / f".abc.tmp-{_host()}-{os.getppid()}-live"
    for d in stale + [alive]:
        d.mkdir()
        (d / "meta.json").write_text(json.dumps({"status": "complete"}))
        (d / "config.json").write_text(json.dumps({"study": "toy", **toy_study.Config().to_dict()}))
    hour_ago = time.time() - 7200
    os.utime(stale[2], (hour_ago, hour_ago))
    assert load_runs("toy", root=tmp_path / "runs").rows == []  # never read as results
    assert _run_toy() == 0
    assert not any(d.exists() for d in stale) and alive.exists()
    assert len(load_runs("toy", root=tmp_path / "runs")) == 1
    assert clean_stale(folder, now=time.time() + 7200) == [alive]  # old enough, whatever its pid


@pytest.mark.parametrize("umask, mode", [(0o022, 0o755), (0o002, 0o775), (0o077, 0o700)])
def test_record_directories_follow_the_umask(tmp_path, toy_study, umask, mode):
    previous = os.umask(umask)
    try:
        path = save_record(Record(study="toy", config=toy_study.Config(), arrays={"a": np.ones(2)}), tmp_path / "r")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode
    assert (path / "arrays.npz").stat().st_mode & 0o777 == mode & 0o666


# =============================================================================== sweep Ctrl-C
def test_sweep_double_ctrl_c_says_what_it_waits_for_and_exits_130_cleanly(tmp_path):
    script = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import studies, toy_study
sys.modules["studies.toy"] = toy_study
studies.STUDIES.append("toy")
from workbench.cli import main
sys.exit(main(["sweep", "toy", "--preset", "smoke", "--grid", "steps=5000000,5000001", "--workers", "2",
               "--out", {str(tmp_path)!r}]))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        assert "to run" in proc.stdout.readline()
        time.sleep(1.0)
        for patience in (10, 20):  # (a Ctrl-C that lands while the workers are being spawned is ignored)
            os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
            deadline = time.time() + patience
            while not any("waiting for" in line for line in err) and time.time() < deadline:
                time.sleep(0.1)
            if any("waiting for" in line for line in err):
                break
        assert any("waiting for the 2 run(s) in progress" in line for line in err), "".join(err)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=5)
    text = "".join(err)
    assert "Traceback" not in text and "stopped" in text and "interrupted" in text


# ============================================================================ CLI additions
def test_fields_lists_every_field_with_type_doc_and_preset_values(toy_study, capsys):
    assert main(["fields", "toy"]) == 0
    out = capsys.readouterr().out
    assert "steps  (int)" in out and "GD steps." in out and "smoke=50  quick=50  paper=50" in out
    assert "n_seeds  (int)" in out and "smoke=2  quick=3  paper=1" in out
    assert "dtype  ('float64' | 'float32')" in out


def test_fields_of_a_real_study_and_as_json(capsys):
    assert main(["fields", "svm-bias", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["steps"]["type"] == "int" and rows["steps"]["presets"]["smoke"] == 1000
    assert rows["sweep.widths"]["type"] == "tuple[int, ...]" and rows["lr"]["doc"] and rows["toy.lr"]["doc"]
    assert main(["fields", "svm-bais"]) == 2


@dataclass(frozen=True, kw_only=True)
class Toy:
    lr: float = 0.1
    """The toy's step size."""
    steps: int = 10
    """The toy's steps."""


@dataclass(frozen=True, kw_only=True)
class Nested(StudyConfig):
    width: int = 4
    """Width of the main model."""
    toy: Toy = field(default_factory=Toy)
    """The toy sub-experiment."""

    @classmethod
    def paper(cls):
        return cls(toy=Toy(lr=0.5))


def test_fields_include_nested_sub_configs_and_their_ranges_are_checked():
    from workbench.errors import ConfigError

    rows = {r["name"]: r for r in Nested.describe_fields()}
    assert rows["toy"]["type"] == "Toy" and rows["toy"]["doc"] == "The toy sub-experiment."
    assert rows["toy.lr"]["doc"] == "The toy's step size." and rows["toy.lr"]["type"] == "float"
    assert rows["toy.lr"]["presets"] == {"smoke": 0.1, "quick": 0.1, "paper": 0.5}
    with pytest.raises(ConfigError, match="toy.steps must be <= 1000000000"):
        Nested(toy=Toy(steps=10 ** 12))


def test_version(capsys):
    from workbench import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"workbench {__version__}"


def test_help_lists_the_studies_and_the_book_preset_variable(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "rank-collapse" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["book", "--help"])
    out = capsys.readouterr().out
    assert "WORKBENCH_BOOK_PRESET" in out and "smoke" in out


def test_notebook_command_calls_the_exporter(monkeypatch, tmp_path, capsys):
    import workbench.notebook

    calls = []
    monkeypatch.setattr(workbench.notebook, "export_notebook",
                        lambda study, path=None: calls.append((study, path)) or tmp_path / "out.ipynb")
    assert main(["notebook", "svm-bias", str(tmp_path / "x.ipynb")]) == 0
    assert calls == [("svm-bias", str(tmp_path / "x.ipynb"))]
    assert capsys.readouterr().out.strip() == str(tmp_path / "out.ipynb")
    assert main(["notebook", "no-such-study"]) == 2
