"""The Check type: kinds, and checks declared outside a preset's regime."""
import json
import math

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
    assert summary([c]) == "0/0 theory checks passed; 1 not asserted at this preset"
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
    # a non-finite measurement is stored as its repr (JSON has no NaN) and read back as the float it was, so a
    # reader formatting it (a chapter's f"{c.measured:.3f}") sees a number, cached record or not
    for value in (math.nan, math.inf, -math.inf):
        back = Check.from_dict(json.loads(json.dumps(Check.close("x", "c", 1.0, value, atol=1.0, regime="r").to_dict())))
        assert isinstance(back.measured, float) and f"{back.measured:.3f}" == f"{value:.3f}"
    text = Check.holds("y", "c", True, measured="nan of 3 seeds", predicted="p", tolerance="t", regime="r")
    assert Check.from_dict(text.to_dict()).measured == "nan of 3 seeds"   # other strings stay strings


def test_a_theory_check_discriminates_only_when_the_rival_fails_its_rule():
    # GD vs debiased GD at N=40: 0.2398 vs 0.2429, a 3% bar admits both
    weak = Check.at_most("pair", "reaches R*_DGD", 1.03 * 0.2429, 0.2431, regime="N=40",
                         alternative="plain GD", alternative_predicted=0.2398)
    assert weak.passed and weak.discriminates is False and "does not discriminate" in checks_table([weak])
    sharp = Check.close("gamma", "step is gamma_D*", 0.879, 0.8785, atol=0.005, regime="N=10",
                        alternative="plain GD", alternative_predicted=0.860)
    assert sharp.passed and sharp.discriminates is True
    # a measurement between the two, near enough to the rival, does not reject it
    between = Check.close("gamma", "step is gamma_D*", 0.879, 0.870, atol=0.01, regime="N=10",
                          alternative="plain GD", alternative_predicted=0.862)
    assert between.passed and between.discriminates is False
    # a failed check never discriminates
    failed = Check.at_least("doubly", "decades per layer grow", 2.0, 1.0, regime="toy",
                            alternative="exponential", alternative_predicted=1.0)
    assert not failed.passed and failed.discriminates is False
    none = Check.at_most("exact", "closed form", 1e-12, 0.0, regime="toy", no_alternative="an exact identity")
    assert none.alternative.startswith("none:") and none.discriminates is None
    with pytest.raises(ValueError):
        Check.at_most("x", "x", 1.0, 0.0, regime="toy", alternative="a", no_alternative="b")


def test_holds_takes_the_rival_condition():
    c = Check.holds("order", "tokens drop in order", True, measured="1<2<3", predicted="ordered", tolerance="strict",
                    regime="toy", alternative="random order", alternative_holds=False)
    assert c.discriminates is True
    d = Check.holds("order", "tokens drop in order", True, measured="1<2<3", predicted="ordered", tolerance="strict",
                    regime="toy", alternative="R1 flow", alternative_holds=True)
    assert d.discriminates is False


def test_summary_counts_theory_checks_and_lists_the_others():
    cs = [Check.close("t", "t", 1.0, 1.0, atol=0.1, regime="r", alternative="a", alternative_predicted=2.0),
          Check.close("i", "i", 1.0, 1.0, atol=1e-12, regime="r", kind="identity"),
          Check.at_most("n", "n", 1e-9, 1e-12, regime="r", kind="numerics")]
    assert summary(cs) == "1/1 theory checks passed (1 discriminate); 1/1 identity; 1/1 numerics"


def test_negative_control_through_the_rule_and_observations_never_fail_a_run():
    c = Check.close("gamma", "step is gamma_D*", 0.879, 0.8785, atol=0.005, regime="N=10",
                    alternative="plain GD", alternative_predicted=0.860)
    assert c.passes(0.879) and not c.passes(0.860)
    assert "rule" not in c.to_dict() and Check.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="no rule"):
        Check.from_dict(c.to_dict()).passes(0.0)
    seen = Check.at_least("curve", "the learning curve falls (empirical)", 0.3, 0.1, regime="toy", kind="observation")
    assert not seen.passed and seen.ok and all_passed([seen])
    assert "not observed" in checks_table([seen]) and "FAIL" not in checks_table([seen])
