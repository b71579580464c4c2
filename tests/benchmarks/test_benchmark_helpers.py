"""Pure helpers of the benchmark scripts: variant names, timing files, the timed reporter."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks._engine_overhead import SweepTiming, read_times
from benchmarks._timed_objective import TimedReporter
from benchmarks.pruner_ablation import SAMPLERS, split_variant
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
