"""The rival methods of issue 21: top-k, Ray Tune HyperBand, Syne Tune ASHA/BOHB.

Their accounting is tested directly (top-k sizing, the records of a paused and resumed trial,
steps counted once); each method also runs once on a resumable toy objective
(:mod:`tests.benchmarks._resumable_toy`) with a budget of a few toy trials.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest

from benchmarks._common import Report, TrialRecord
from benchmarks._optuna_runs import RunSpec
from benchmarks._segments import segment_records
from benchmarks._topk_runs import rank_first_values, run_topk, topk_sizes
from tests.benchmarks._resumable_toy import TOTAL, toy_space


def _spent(records: list[TrialRecord]) -> int:
    return sum(r.steps for r in records)


@pytest.mark.parametrize("full, interval", [(64, 8), (9, 1), (100, 25)])
@pytest.mark.parametrize("trials", [1, 1.5, 3, 8, 30])
def test_topk_sizes_fit_the_budget_and_follow_the_third_rule(full: int, interval: int, trials: float) -> None:
    budget = round(trials * full)
    n, k = topk_sizes(budget, full, interval)
    # first intervals and continuations together never exceed the budget
    assert n * interval + k * (full - interval) <= budget
    # k is a third of the budget in full trials (at least one), and never more than the configs screened
    assert k == min(max(1, round(budget / full / 3)), n) and 1 <= k <= n
    # the screening gets the rest: one more config would not fit
    assert (n + 1) * interval + k * (full - interval) > budget


def test_topk_sizes_below_one_full_trial_continue_nothing() -> None:
    assert topk_sizes(40, 64, 8) == (5, 0)
    with pytest.raises(ValueError, match="interval"):
        topk_sizes(100, 8, 16)


def test_rank_first_values_puts_the_best_first_and_non_finite_last() -> None:
    values = [0.2, math.nan, 0.5, 0.2, -math.inf]
    assert rank_first_values(values, "maximize") == [2, 0, 3, 1, 4]
    assert rank_first_values(values, "minimize") == [0, 3, 2, 1, 4]


def test_segment_records_count_a_resumed_trial_once() -> None:
    # "a" pauses at 3, "b" runs to its pause at 3, "a" resumes and finishes, "b" is never resumed
    events = [("a", {"x": 1}, Report(step, 0.1 * step)) for step in (1, 2, 3)]
    events += [("b", {"x": 2}, Report(step, 0.05 * step)) for step in (1, 2, 3)]
    events += [("a", {"x": 1}, Report(step, 0.1 * step)) for step in (4, 5, 6)]
    records = segment_records(events, full_steps=6, paused={("a", 3), ("b", 3)})
    a0, b0, a1 = records
    # the continuation goes on from the pause and points at the segment it continues
    assert (a1.start_step, a1.thaw_of, [r.step for r in a1.reports]) == (3, 0, [4, 5, 6])
    assert a0.thawed and a0.paused and a0.pruned and a0.kind == "paused" and a0.final_value is None
    # "b" was paused and never thawed: a paused record, still pruned
    assert b0.paused and b0.pruned and not b0.thawed
    # the finished continuation has the final value; the steps add up to what ran, once
    assert not a1.pruned and a1.final_value == pytest.approx(0.6)
    assert [r.steps for r in records] == [3, 3, 3] and _spent(records) == 9


def test_segment_records_a_pause_at_the_last_step_is_a_finished_trial() -> None:
    # Ray's HyperBand says PAUSE to a trial that reached max_t until its bracket is done
    events = [("a", {}, Report(step, 1.0)) for step in (3, 6)] + [("b", {}, Report(3, math.nan))]
    records = segment_records(events, full_steps=6, paused={("a", 6)}, errored={"b"})
    assert records[0].final_value == 1.0 and not records[0].paused and not records[0].pruned
    # an errored trial is neither pruned nor finished
    assert not records[1].pruned and records[1].final_value is None


def test_topk_continues_the_best_first_interval_from_its_checkpoint() -> None:
    space = toy_space()
    budget = 3 * TOTAL + 2
    records = run_topk(RunSpec(space, "tiny", 0, 0, budget), full_steps=TOTAL, interval=1)
    n, k = topk_sizes(budget, TOTAL, 1)
    firsts, continued = records[:n], records[n:]
    assert len(continued) == k == 1 and _spent(records) <= budget
    assert all(r.paused and r.pruned and [x.step for x in r.reports] == [1] for r in firsts)
    # the best first value is continued, from step 1 on (its checkpoint), to the end
    best = max(range(n), key=lambda i: firsts[i].reports[0].value)
    cont = continued[0]
    assert cont.thaw_of == best and firsts[best].thawed and sum(r.thawed for r in firsts) == 1
    assert cont.start_step == 1 and [x.step for x in cont.reports] == list(range(2, TOTAL + 1))
    # the same value as the config trained without a pause
    lr = cont.params["towers.all.lr"]
    assert cont.final_value == pytest.approx(-abs(math.log10(lr) + 2) + TOTAL / 100)


def test_topk_samples_at_random() -> None:
    # the paper's setting: configs from a RandomSampler seeded with the run's seed
    space = toy_space()
    records = run_topk(RunSpec(space, "tiny", 3, 0, 2 * TOTAL), full_steps=TOTAL, interval=1)
    sampler = optuna.samplers.RandomSampler(seed=3)
    study = optuna.create_study(sampler=sampler)
    expected = [study.ask().suggest_float("towers.all.lr", 1e-4, 1.0, log=True) for _ in range(3)]
    assert [r.params["towers.all.lr"] for r in records[:3]] == pytest.approx(expected)


def test_syne_space_maps_optuna_distributions() -> None:
    pytest.importorskip("syne_tune")
    from syne_tune import config_space as cs

    from benchmarks._syne_runs import optuna_params, syne_domain, syne_space

    d = optuna.distributions
    assert syne_domain(d.FloatDistribution(1e-4, 1.0, log=True)) == cs.loguniform(1e-4, 1.0)
    assert syne_domain(d.FloatDistribution(0.0, 0.2)) == cs.uniform(0.0, 0.2)
    assert syne_domain(d.IntDistribution(1, 9)) == cs.randint(1, 9)
    assert syne_domain(d.IntDistribution(1, 64, log=True)) == cs.lograndint(1, 64)
    assert syne_domain(d.CategoricalDistribution([0.5, 5.0])) == cs.choice([0.5, 5.0])
    # mixed-type choices go through their index and come back as the original values
    mixed = syne_domain(d.CategoricalDistribution([None, "a"]))
    assert mixed == cs.choice(["0", "1"])
    space = toy_space()
    assert set(syne_space(space)) == {"towers.all.lr"}
    assert optuna_params(space, {"towers.all.lr": 0.01, "other": 1}) == {"towers.all.lr": 0.01}


def test_syne_scheduler_random_state_is_its_own() -> None:
    pytest.importorskip("syne_tune")
    from benchmarks._syne_runs import _SchedulerRng

    rng = _SchedulerRng(0)
    with rng:
        first = np.random.rand()
    np.random.seed(0)  # what every objective's TrialContext does
    outside = np.random.get_state()[1].copy()
    with rng:
        second = np.random.rand()
    # the scheduler's stream goes on, and the objective's state is left as it was
    assert first != second and (np.random.get_state()[1] == outside).all()


@pytest.mark.parametrize("method", ["asha", "bohb"])
def test_syne_runs_one_trial_at_a_time_to_the_budget(method: str) -> None:
    pytest.importorskip("syne_tune")
    from benchmarks._syne_runs import run_syne

    budget = 4 * TOTAL
    records = run_syne(RunSpec(toy_space(), "tiny", 0, 0, budget), method, full_steps=TOTAL, interval=1)
    # the budget is spent exactly: the last trial is cut at the report that reaches it
    assert _spent(records) == budget
    # each trial reports from step 1 on; a finished one has its last value, a stopped one none
    for r in records:
        assert r.reports[0].step == 1
        assert (r.final_value is not None) == (r.steps == TOTAL and not r.pruned)
    # ASHA stopped some trials at a rung and let the first one finish
    assert records[0].final_value is not None and any(r.pruned for r in records[:-1])


class _Paused(Exception):
    """What the fake ``tune.report`` raises where HyperBand would pause the trial."""


def test_ray_hyperband_trainable_resumes_from_the_checkpoint_ray_gives_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray Tune stand-ins: report persists each checkpoint (a copy, as Ray does) and pauses at step 3;
    # get_checkpoint hands the newest persisted one back, as Ray does for a resumed trial
    from ray import tune

    from benchmarks._ray_runs import resumable_trainable

    persisted: list[tune.Checkpoint] = []
    steps: list[int] = []

    def report(metrics: dict, checkpoint: tune.Checkpoint | None = None) -> None:
        steps.append(metrics["step"])
        if checkpoint is not None:
            copy = tmp_path / "persisted" / str(len(persisted))
            shutil.copytree(checkpoint.path, copy)
            persisted.append(tune.Checkpoint.from_directory(str(copy)))
        if metrics["step"] == 3 and len(persisted) == 3:
            raise _Paused

    monkeypatch.setattr(tune, "report", report)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: persisted[-1] if persisted else None)
    space, work = toy_space(), tmp_path / "work"
    work.mkdir()
    config = {"towers.all.lr": 0.01}
    with pytest.raises(_Paused):
        resumable_trainable(config, space=space, scale="tiny", config_seed=0, workdir=str(work))
    resumable_trainable(config, space=space, scale="tiny", config_seed=0, workdir=str(work))
    # the resumed run went on after step 3 (not from step 1), with a checkpoint handed to Ray per report
    assert steps == list(range(1, TOTAL + 1)) and len(persisted) == TOTAL


def test_syne_methods_are_skipped_without_syne_tune(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import benchmarks._syne_runs as syne_runs
    from benchmarks.search_efficiency import run_method

    monkeypatch.setattr(syne_runs.importlib.util, "find_spec", lambda name: None)
    spec = RunSpec(toy_space(), "tiny", 0, 0, 2 * TOTAL)
    # one line says why, and the method gives no records instead of failing
    assert run_method("syne_asha", spec, full_steps=TOTAL, interval=1) == []
    assert (
        capsys.readouterr().out.strip() == "syne_asha: skipped, syne_tune is not installed (make bench-deps)"
    )
