"""The command line and the runner, on the toy study: exit codes, records, cache, determinism."""
import json
import re
import subprocess
import sys

import pytest

from workbench.cli import main


def test_list_names_every_registered_study(toy_study, capsys):
    assert main(["list"]) == 0
    assert "toy" in capsys.readouterr().out


def test_run_writes_a_complete_record_and_prints_checks(toy_study, tmp_path, capsys):
    assert main(["run", "toy", "--preset", "smoke", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "loss_decreases" in out and re.search(r"2/2 (theory )?checks passed", out)
    (run,) = (tmp_path / "runs" / "toy").iterdir()
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["dtype"] == "float64" and meta["device"] == "cpu"
    assert {p.name for p in run.iterdir()} == {"config.json", "arrays.npz", "checks.json", "meta.json", "figures"}
    assert {p.name for p in (run / "figures").iterdir()} == {"loss.png", "loss.svg"}


def test_identical_config_is_a_cache_hit_and_force_reruns_bit_identically(toy_study, tmp_path, capsys):
    assert main(["run", "toy", "--preset", "smoke", "--quiet"]) == 0
    (run,) = (tmp_path / "runs" / "toy").iterdir()
    first = (run / "arrays.npz").read_bytes()
    assert main(["run", "toy", "--preset", "smoke", "--quiet"]) == 0
    assert "(cached)" in capsys.readouterr().out
    assert main(["run", "toy", "--preset", "smoke", "--quiet", "--force"]) == 0
    assert "(cached)" not in capsys.readouterr().out
    assert (run / "arrays.npz").read_bytes() == first


def test_overrides_change_the_record_directory(toy_study, tmp_path):
    assert main(["run", "toy", "--preset", "smoke", "--set", "steps=5", "--quiet"]) == 0
    assert main(["run", "toy", "--preset", "smoke", "--set", "steps=6", "--quiet"]) == 0
    assert len(list((tmp_path / "runs" / "toy").iterdir())) == 2


def test_failing_check_exits_1(toy_study):
    assert main(["run", "toy", "--preset", "smoke", "--set", "loss_floor=-1", "--quiet"]) == 1


@pytest.mark.parametrize("argv, message", [
    (["run", "tyo"], "Did you mean 'toy'"),
    (["run", "toy", "--set", "stpes=3"], "Did you mean 'steps'"),
    (["run", "toy", "--set", "lr=-1"], "lr must be >"),
    (["run", "toy", "--set", "steps=many"], "integer"),
    (["run", "toy", "--preset", "papr"], "Did you mean 'paper'"),
    (["run", "toy", "--device", "cuda:7"] if not __import__("torch").cuda.is_available() else ["run", "toy", "--device", "tpu"], "device"),
])
def test_bad_input_exits_2_with_a_clear_message(toy_study, capsys, argv, message):
    assert main(argv + ["--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_divergence_exits_3_and_keeps_the_partial_record(toy_study, tmp_path, capsys):
    assert main(["run", "toy", "--preset", "smoke", "--set", "lr=1e200", "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "at step 1" in err and "partial results kept" in err
    (failed,) = (tmp_path / "runs" / "toy").iterdir()
    assert failed.name.endswith(".failed")
    assert json.loads((failed / "meta.json").read_text())["status"] == "failed"
    from workbench.record import is_complete
    assert not is_complete(failed)


def test_check_reverifies_saved_records(toy_study, capsys):
    assert main(["run", "toy", "--preset", "smoke", "--quiet"]) == 0
    assert main(["check", "toy", "--preset", "smoke", "--quiet"]) == 0
    assert "re-verified" in capsys.readouterr().out


def test_console_script_bad_study_exits_2():
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "run", "no-such-study"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown study" in proc.stderr


def test_bench_reports_ensemble_equals_loop(toy_study, capsys):
    assert main(["bench", "toy", "--members", "1,4", "--no-presets"]) == 0
    out = capsys.readouterr().out
    assert "gd-one-layer" in out and "equal=True" in out and "Targets:" in out


def test_bench_rejects_bad_members(toy_study, capsys):
    assert main(["bench", "toy", "--members", "0"]) == 2


def test_a_record_written_by_other_code_is_not_reused(toy_study, tmp_path, capsys):
    assert main(["run", "toy", "--preset", "smoke", "--quiet"]) == 0
    (run,) = (tmp_path / "runs" / "toy").iterdir()
    meta = json.loads((run / "meta.json").read_text())
    meta["code_fingerprint"] = "0" * 16  # as if the library had changed since
    (run / "meta.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["run", "toy", "--preset", "smoke", "--quiet"]) == 0
    assert "(cached)" not in capsys.readouterr().out
    assert json.loads((run / "meta.json").read_text())["code_fingerprint"] != "0" * 16


def test_new_refuses_a_bad_name_as_bad_input(tmp_path, capsys):
    assert main(["new", "Not_Kebab", "--root", str(tmp_path)]) == 2
    assert "kebab-case" in capsys.readouterr().err
