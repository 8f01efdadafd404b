"""The Check type: kinds, and checks declared outside a preset's regime."""
import pytest

from workbench.checks import Check, all_passed, checks_table, summary


def _failing():
    return Check.at_most("slope", "the slope is at most 1", 1.0, 2.0, regime="toy")


def test_not_asserted_is_shown_not_counted():
    c = _failing().only_if(False, "too few steps")
    assert not c.passed and not c.asserted and c.ok and c.status == "not asserted"
    assert "not asserted at this preset: too few steps" in c.regime
    table = checks_table([c, Check.at_least("x", "x >= 0", 0.0, 1.0, regime="toy")])
    assert "FAIL" not in table and "not asserted" in table
    assert summary([c]) == "0/0 checks passed (1 not asserted at this preset)"
    assert all_passed([c])


def test_in_regime_check_still_fails():
    c = _failing().only_if(True, "unused")
    assert c.asserted and c.status == "FAIL" and not all_passed([c])
    assert "FAIL" in checks_table([c])


def test_kind_and_round_trip():
    c = Check.close("id", "an identity", 1.0, 1.0, atol=1e-12, regime="toy").as_kind("identity")
    assert Check.from_dict(c.to_dict()) == c
    # records written before the new fields existed still load (defaults: theory, asserted)
    old = {k: v for k, v in _failing().to_dict().items() if k in
           ("name", "claim", "predicted", "measured", "tolerance", "regime", "passed")}
    assert Check.from_dict(old).kind == "theory" and Check.from_dict(old).asserted
    with pytest.raises(ValueError, match="kind"):
        c.as_kind("folklore")
