"""Run records: atomic writes, deterministic npz, incomplete directories never read."""
import json
import re

import numpy as np
import pytest

from workbench.checks import Check, checks_table
from workbench.errors import RecordError
from workbench.record import Record, is_complete, load_record, save_npz, save_record
from toy_study import Config


def _record():
    r = Record(study="toy", config=Config(), info={"solver": "ok"})
    r.add(a=np.arange(6.0).reshape(2, 3), b=np.array([1, 2], dtype=np.int64))
    return r


def test_npz_bytes_are_deterministic(tmp_path):
    arrays = {"z": np.linspace(0, 1, 5), "a.b/c": np.eye(2)}
    save_npz(tmp_path / "1.npz", arrays)
    save_npz(tmp_path / "2.npz", dict(reversed(list(arrays.items()))))
    assert (tmp_path / "1.npz").read_bytes() == (tmp_path / "2.npz").read_bytes()
    with np.load(tmp_path / "1.npz") as f:
        assert np.array_equal(f["a.b/c"], np.eye(2))


def test_roundtrip_and_status(tmp_path):
    checks = [Check.close("c", "claim", 1.0, 1.0 + 1e-9, rtol=1e-6, regime="r")]
    path = save_record(_record(), tmp_path / "run", checks)
    assert is_complete(path)
    rec, loaded = load_record(path, Config)
    assert rec.config == Config() and np.array_equal(rec["a"], _record()["a"]) and rec.info == {"solver": "ok"}
    assert loaded == checks
    assert sorted(p.name for p in path.iterdir()) == ["arrays.npz", "checks.json", "config.json", "meta.json"]


def test_incomplete_directory_is_never_read(tmp_path):
    path = save_record(_record(), tmp_path / "run")
    meta = json.loads((path / "meta.json").read_text())
    meta["status"] = "running"
    (path / "meta.json").write_text(json.dumps(meta))
    assert not is_complete(path)
    with pytest.raises(RecordError, match="not a complete run record"):
        load_record(path, Config)


def test_failed_write_leaves_no_directory(tmp_path):
    bad = _record()
    bad.arrays["obj"] = np.array([object()])  # cannot be saved without pickle
    with pytest.raises(ValueError):
        save_record(bad, tmp_path / "run")
    assert not (tmp_path / "run").exists() and not list(tmp_path.iterdir())


def test_check_builders_compute_pass_from_numbers():
    assert Check.close("a", "x", 1.0, 1.05, rtol=0.1, regime="r").passed
    assert not Check.close("a", "x", 1.0, 1.2, rtol=0.1, regime="r").passed
    assert not Check.at_most("a", "x", 1.0, float("nan"), regime="r").passed
    assert Check.within("a", "x", 2.9, 3.1, 3.0, regime="r").passed
    assert not Check.at_least("a", "x", 1e-3, 1e-4, regime="r").passed
    table = checks_table([Check.at_least("a", "x", 1e-3, 1e-4, regime="r")])
    assert "FAIL" in table and re.search(r"0/1 (theory )?checks passed", table)
