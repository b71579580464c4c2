"""Pure helpers of the benchmark scripts: variant names, timing files, the timed reporter, search-efficiency counts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks._common import Report, TrialRecord
from benchmarks._efficiency_report import (
    FalsePrunes,
    MethodStats,
    ObjectiveSummary,
    count_false_prunes,
    false_prunes,
    median_and_worst,
    method_stats,
    objective_line,
    summarize_objective,
    table,
)
from benchmarks._engine_overhead import SweepTiming, read_times
from benchmarks._timed_objective import TimedReporter
from benchmarks.pruner_ablation import SAMPLERS, split_variant
from benchmarks.search_efficiency import parse_objectives
from gradsweep.objectives.api import NullReporter


def test_split_variant_defaults_to_gradsweep_s_tpe() -> None:
    # a bare variant runs on gradsweep's TPE, "@name" picks another sampler
    assert split_variant("catchup") == ("catchup", "tpe")
    assert split_variant("tpe_nop@gp") == ("tpe_nop", "gp")
    # every sampler the ablation offers builds with a seed
    assert all(make(0) is not None for make in SAMPLERS.values())


def test_read_times_splits_training_from_reporting(tmp_path: Path) -> None:
    path = tmp_path / "times.txt"
    path.write_text("1.5 0.25\n2.0 0.5\n")
    train, report = read_times(path)
    # training is the objective's time minus its time inside ctx.report
    assert train == pytest.approx([1.25, 1.5]) and report == pytest.approx([0.25, 0.5])
    # a missing file (no trial ran) reads as no trials
    assert read_times(tmp_path / "none.txt") == ([], [])


def test_sweep_timing_ratio_is_wall_over_training() -> None:
    t = SweepTiming(
        "x",
        n_trials=2,
        wall_s=6.0,
        trial_s=[1.0, 2.0],
        report_s=[0.5, 0.5],
        spans=[(10.0, 12.0), (12.5, 15.5)],
    )
    # wall over training only; reporting counts as overhead inside the open trials
    assert t.ratio == pytest.approx(2.0) and t.per_trial_overhead_s == pytest.approx(1.5)
    assert (
        t.inside_s == pytest.approx(2.0)
        and t.reporting_s == pytest.approx(1.0)
        and t.between_s == pytest.approx(1.0)
    )
    # from the second trial's ask to the last tell: 3 s of wall for 2 s of training
    assert t.steady_ratio == pytest.approx(1.5)


def test_timed_reporter_forwards_and_counts_report_time() -> None:
    inner = NullReporter()
    timed = TimedReporter(inner)
    timed.report(0.5, 3, None)
    # the report reached the inner reporter and its time was counted
    assert [(r.value, r.step) for r in inner.history] == [(0.5, 3)] and timed.seconds >= 0.0
    # declare_total_steps reaches the inner reporter too
    timed.declare_total_steps(10)
    assert inner.total_steps == 10


def _done(value: float, *, start: int = 0, thaw_of: int | None = None) -> TrialRecord:
    return TrialRecord(params={"x": value}, reports=[Report(start + 8, value), Report(start + 16, value)],
                       final_value=value, start_step=start, thaw_of=thaw_of)  # fmt: skip


def _paused(x: float, *, thawed: bool) -> TrialRecord:
    return TrialRecord(params={"x": x}, reports=[Report(8, 0.1)], pruned=True, kind="paused",
                       paused=True, thawed=thawed)  # fmt: skip


class _Rerun:
    """Re-runs a config "to completion": its value is its parameter ``x``; remembers what it ran."""

    def __init__(self) -> None:
        self.ran: list[float] = []

    def final_value(self, params: dict[str, float]) -> float:
        self.ran.append(params["x"])
        return params["x"]


def test_a_thawed_pause_is_no_prune_and_is_never_rerun() -> None:
    # trial 0 paused at step 8 and thawed: record 2 goes on from step 8 to 24 and finishes at 0.9
    records = [_paused(0.9, thawed=True), _done(0.5), _done(0.9, start=8, thaw_of=0), _done(0.4)]
    rerun = _Rerun()
    fp = false_prunes([records], rerun, "maximize")
    # nothing was pruned for good, so nothing is re-run and nothing is a false prune or lost winner
    assert rerun.ran == [] and fp == FalsePrunes(0, 0, 0, 0, 0)
    stats = method_stats("gradsweep_ft", [records], [1.0], 10_000, 0.9, "maximize", 8, fp)
    # three trials (the pause and its continuation are one), none pruned; one paused, thawed
    assert (stats.trials, stats.pruned, stats.paused, stats.thawed) == (3, 0, 1, 1)
    # the target is reached when the continuation ends: 8 + 16 + (24 - 8) steps, its steps counted from its pause
    assert stats.steps_to_target_per_seed == [40.0]
    # with no pause left unthawed the table shows no lost-winner count
    row = table({"gradsweep_ft": stats}, {}, 10_000, 8).splitlines()[2]
    assert "| 1 / 1 |" in row and row.endswith("| - | 1 |")


def test_lost_winners_are_unthawed_pauses_that_rerun_into_the_top_quartile() -> None:
    # finished 0.2, 0.3, 0.4; paused never thawed: 0.95 (would have won) and 0.1 (would not);
    # pruned outright: 0.9 (a false prune, but no pause, so no lost winner)
    pruned = TrialRecord(params={"x": 0.9}, reports=[Report(8, 0.1)], pruned=True, kind="underperforming")
    records = [
        _done(0.2),
        _paused(0.95, thawed=False),
        _done(0.3),
        _paused(0.1, thawed=False),
        pruned,
        _done(0.4),
    ]
    fp = count_false_prunes(records, [0.95, 0.1, 0.9], "maximize")
    # top quartile of 0.2, 0.3, 0.4, 0.95, 0.1, 0.9 starts at 0.775: 0.95 and 0.9 are false prunes,
    # and 0.95 alone is a lost winner, of the two unthawed pauses checked
    assert (fp.false, fp.checked, fp.lost, fp.lost_checked) == (2, 3, 1, 2)
    # through the re-run machinery the same counts come out, and every prune was re-run once
    rerun = _Rerun()
    assert false_prunes([records], rerun, "maximize") == fp and sorted(rerun.ran) == [0.1, 0.9, 0.95]
    stats = method_stats("gradsweep_ft", [records], [1.0], 10_000, 0.4, "maximize", 8, fp)
    # unthawed pauses are prunes; the table shows lost winners over unthawed pauses checked
    assert (stats.pruned, stats.paused, stats.thawed, stats.lost_winners, stats.lost_checked) == (
        3,
        2,
        0,
        1,
        2,
    )
    assert table({"gradsweep_ft": stats}, {}, 10_000, 8).splitlines()[2].endswith("| 1 / 2 | 1 |")
    # minimising, the top quartile is the low end: 0.1 is now the lost winner
    low = count_false_prunes(records, [0.95, 0.1, 0.9], "minimize")
    assert (low.false, low.lost, low.lost_checked) == (1, 1, 2)
    # one re-run value per prune, or the counts would be silently wrong
    with pytest.raises(ValueError, match="one re-run value per prune"):
        count_false_prunes(records, [0.95], "maximize")


def _summary(vs_ref: float, vs_other: float) -> ObjectiveSummary:
    return ObjectiveSummary("o", "small", "gradsweep", 0.5, 1.0, 1.0, vs_ref, "tpe_median", 1.0, vs_other,
                            0.5, 0.5, "tpe_nop", True, 0, 0)  # fmt: skip


def test_median_over_objectives_and_worst_ratio_to_the_best_other_method() -> None:
    summaries = [_summary(0.4, 0.7), _summary(0.9, 1.3), _summary(0.6, 0.5)]
    # X is the median of the per-objective ratios to no-pruning TPE, Y the largest to the best other
    assert median_and_worst(summaries) == pytest.approx((0.6, 1.3))
    # an undefined ratio (nan: no other method reached the target) is left out; inf counts as largest
    assert median_and_worst([_summary(0.4, math.nan), _summary(math.inf, math.inf)]) == (math.inf, math.inf)
    assert median_and_worst([_summary(0.4, math.nan), _summary(0.8, 0.9)]) == pytest.approx((0.6, 0.9))
    # nothing defined: nan, nan (printed as the last line's "nan")
    x, y = median_and_worst([_summary(math.nan, math.nan)])
    assert math.isnan(x) and math.isnan(y)


def _stats(method: str, steps: float, best: float) -> MethodStats:
    return MethodStats(
        method, [best], best, 0.0, [steps], steps, 1, 0, 0, 0.0, 0, [], 0, None, None, None, 1.0
    )


def test_summary_judges_ours_against_other_methods_never_its_own_variants() -> None:
    stats = {
        "tpe_nop": _stats("tpe_nop", 1000.0, 0.80),
        "tpe_median": _stats("tpe_median", 800.0, 0.79),
        "ray_asha": _stats("ray_asha", math.inf, 0.70),
        "gradsweep": _stats("gradsweep", 300.0, 0.83),
        "gradsweep_ft": _stats("gradsweep_ft", 400.0, 0.82),
    }
    s = summarize_objective("mt", "small", stats, "gradsweep_ft", 0.8, "maximize")
    # the fastest other method is TPE + median (gradsweep is faster but is no "other" method)
    assert (s.best_other, s.vs_reference, s.vs_best_other) == ("tpe_median", 0.4, 0.5)
    # the best value is checked against every method, gradsweep's variants included
    assert (s.rival, s.best_ok) == ("gradsweep", False)
    # the line printed before the headline
    assert objective_line(s).startswith(
        "mt (small): gradsweep_ft vs no-pruning TPE 0.40, vs best other method (tpe_median) 0.50"
    )
    # ours did not run: both ratios undefined
    gone = summarize_objective("mt", "small", stats, "nope", 0.8, "maximize")
    assert math.isnan(gone.vs_reference) and math.isnan(gone.vs_best_other) and not gone.best_ok


def test_objectives_parse_with_an_optional_scale() -> None:
    assert parse_objectives("finetune, spaces/x.yaml@tiny,", "small") == [
        ("finetune", "small"),
        ("spaces/x.yaml", "tiny"),
    ]
    with pytest.raises(ValueError, match="scale"):
        parse_objectives("finetune@huge", "small")
