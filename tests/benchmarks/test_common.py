"""Step accounting of the benchmarks: pure helpers on hand-made trial records."""

from __future__ import annotations

import math

import pytest

from benchmarks._common import (
    CountingReporter,
    Report,
    TrialRecord,
    anytime_curve,
    best_at_budget,
    health_is_unstable,
    median_or_inf,
    ratio,
    ratio_note,
    spent_within,
    steps_after_onset,
    steps_to_target,
    top_quartile_threshold,
    unstable_share,
)
from gradsweep.objectives.api import NullReporter
from gradsweep.objectives.health.verdict import HealthReport, Verdict

UNSTABLE = {"step": 20, "verdict": "unstable", "metrics": {}}
NAN_GRADS = {"step": 10, "verdict": "warning", "metrics": {"health/nonfinite_steps": 2.0}}
HEALTHY = {"step": 10, "verdict": "healthy", "metrics": {"health/nonfinite_steps": 0.0}}


def rec(
    steps: list[int], final: float | None, *, pruned: bool = False, health: dict | None = None
) -> TrialRecord:
    reports = [Report(s, 0.1 * i, health if i == 1 else None) for i, s in enumerate(steps)]
    return TrialRecord(params={"x": final}, reports=reports, pruned=pruned, final_value=final)


def test_health_is_unstable_verdict_and_nonfinite_counts() -> None:
    # an UNSTABLE verdict and non-finite steps both count; a healthy report and None do not
    assert health_is_unstable(UNSTABLE) and health_is_unstable(NAN_GRADS)
    # healthy reports and missing health are stable
    assert not health_is_unstable(HEALTHY) and not health_is_unstable(None)


def test_record_steps_and_onset() -> None:
    r = rec([10, 20, 30], None, pruned=True, health=UNSTABLE)
    # steps consumed = last reported step
    assert r.steps == 30
    # onset is the health check's own step, not the report's
    assert r.onset == 20 and r.unstable
    # a stable record has no onset
    assert rec([10, 20], 0.5).onset is None


def test_nonfinite_value_marks_onset() -> None:
    r = TrialRecord(params={}, reports=[Report(10, 0.2), Report(20, math.nan)])
    # a NaN reported value is instability at its report step
    assert r.onset == 20


def test_anytime_curve_counts_only_trials_finished_within_budget() -> None:
    records = [rec([50, 100], 0.3), rec([50], None, pruned=True), rec([50, 100], 0.5), rec([50, 100], 0.9)]
    # improvements at 100 and 250 steps; the last trial ends at 350 > budget 300
    assert anytime_curve(records, 300, "maximize") == [(100, 0.3), (250, 0.5)]
    # best at budget ignores the trial that crossed it
    assert best_at_budget(records, 300, "maximize") == 0.5
    # minimize keeps the smallest value
    assert best_at_budget(records, 1000, "minimize") == 0.3


def test_steps_to_target() -> None:
    records = [rec([100], 0.3), rec([100], 0.6)]
    # the target is reached when the second trial finishes
    assert steps_to_target(records, 0.5, 1000, "maximize") == 200
    # an unreached target is infinite
    assert math.isinf(steps_to_target(records, 0.7, 1000, "maximize"))


def test_unstable_share_and_cut_trial() -> None:
    records = [rec([100], 0.3), rec([10, 50], None, pruned=True, health=UNSTABLE), rec([100], 0.4)]
    # the last trial is cut at the budget: 100 + 50 + 50
    assert [used for _, used in spent_within(records, 200)] == [100, 50, 50]
    # 50 of 200 steps went to the unstable trial
    assert unstable_share(records, 200) == pytest.approx(0.25)
    # onset at 20, pruned at 50
    assert steps_after_onset(records) == [30]


def test_top_quartile_threshold() -> None:
    values = [0.1, 0.2, 0.3, 0.4, 0.5]
    # inclusive quartiles: Q3 of 0.1..0.5 is 0.4
    assert top_quartile_threshold(values, "maximize") == pytest.approx(0.4)
    # for minimize the "top" quartile is the lowest
    assert top_quartile_threshold(values, "minimize") == pytest.approx(0.2)
    # a bad direction names the allowed values
    with pytest.raises(ValueError, match="maximize, minimize"):
        top_quartile_threshold(values, "up")


def test_median_and_ratio_with_unreached() -> None:
    # one unreached seed out of three does not make the median infinite
    assert median_or_inf([100.0, math.inf, 300.0]) == 300.0
    # an unreached numerator is an infinite ratio, an unreached reference is undefined
    assert math.isinf(ratio(math.inf, 10.0)) and math.isnan(ratio(1.0, math.inf))


def test_ratio_note_explains_only_ratios_that_are_not_numbers() -> None:
    assert ratio_note(100.0, 200.0) is None
    assert "no other method reached" in str(ratio_note(100.0, math.inf))
    assert "gradsweep did not reach" in str(ratio_note(math.inf, 200.0))
    assert "neither catchup nor any plain-Optuna variant" in str(
        ratio_note(math.inf, math.inf, who="catchup", rivals="plain-Optuna variant")
    )
    # no rival ran at all: the ratio is nan, but there is nothing to explain about reaching
    assert ratio_note(100.0, math.nan) is None


def test_counting_reporter_records_and_forwards() -> None:
    inner = NullReporter()
    counter = CountingReporter(inner)
    health = HealthReport(step=5, verdict=Verdict.UNSTABLE, reasons=["x"], metrics={"health/loss": math.nan})
    counter.report(0.5, 6, health)
    counter.report(0.6, 12, None)
    # both reports reached the inner reporter
    assert [r.step for r in inner.history] == [6, 12]
    # the counter keeps the health as a dict and the largest step
    assert counter.reports[0].health["verdict"] == "unstable" and counter.steps == 12
    # the declared total steps are forwarded, unless the guard's ablation turns that off
    counter.declare_total_steps(40)
    assert inner.total_steps == 40
    quiet = NullReporter()
    CountingReporter(quiet, declare_total=False).declare_total_steps(40)
    assert quiet.total_steps is None
