"""CatchUpPruner in real Optuna studies: slow starters kept, hopeless trials pruned, its reasons."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from gradsweep.search.attrs import PRUNE_KIND, PRUNE_REASON, TOTAL_STEPS
from gradsweep.search.catchup import CatchUpPruner, best_by
from gradsweep.search.pruner import HealthPruner

optuna.logging.set_verbosity(optuna.logging.WARNING)

# five finished trials: four steady ones and one slow starter that gains 0.7 after step 0
FINISHED = [[0.5, 0.6, 0.7], [0.5, 0.6, 0.7], [0.5, 0.6, 0.7], [0.5, 0.6, 0.7], [0.1, 0.5, 0.8]]


def _study(
    pruner: optuna.pruners.BasePruner,
    curves: list[list[float]],
    *,
    direction: str = "maximize",
    total: int | None = None,
) -> optuna.Study:
    """Runs one trial per curve, reporting step by step and stopping when pruned."""
    study = optuna.create_study(direction=direction, pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        if total is not None:
            trial.set_user_attr(TOTAL_STEPS, total)
        curve = curves[trial.number]
        for step, value in enumerate(curve, start=1):
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return curve[-1]

    study.optimize(objective, n_trials=len(curves))
    return study


def test_a_slow_starter_the_median_prunes_is_kept() -> None:
    slow = [0.2, 0.5, 0.78]
    median = _study(optuna.pruners.MedianPruner(n_startup_trials=5), [*FINISHED, slow])
    # the median stops it at its first report (0.2 < 0.5) ...
    assert median.trials[5].state == TrialState.PRUNED and median.trials[5].last_step == 1
    catchup = _study(CatchUpPruner(0.75, gain_factor=1.0), [*FINISHED, slow])
    # ... catch-up keeps it: 0.2 + the slow starter's gain 0.7 reaches the upper quartile 0.7
    assert catchup.trials[5].state == TrialState.COMPLETE and catchup.trials[5].value == 0.78


def test_a_trial_no_finished_trial_could_have_caught_up_from_is_pruned_with_the_comparison() -> None:
    study = _study(HealthPruner(CatchUpPruner(0.75, gain_factor=1.0)), [*FINISHED, [0.1, 0.12, 0.13]])
    t = study.trials[5]
    # at step 2 the largest gain a finished trial made from its best so far is 0.3 (0.5 -> 0.8): 0.12 + 0.3 < 0.7
    assert t.state == TrialState.PRUNED and t.last_step == 2
    assert t.user_attrs[PRUNE_KIND] == "underperforming"
    # the reason spells out the comparison
    assert t.user_attrs[PRUNE_REASON] == (
        "best 0.12 by step 2 + the largest later gain of a finished trial 0.3 < 0.7, the best-quartile "
        "final value of 5 finished trials (higher is better) (CatchUpPruner)"
    )


class CountingCatchUp(CatchUpPruner):
    """Counts its judgements (each reads every finished trial of the study)."""

    judged = 0

    def judge(self, study, trial):  # type: ignore[no-untyped-def]
        CountingCatchUp.judged += 1
        return super().judge(study, trial)


def test_health_pruner_judges_a_pruned_trial_once_and_gives_that_judgement_as_the_reason() -> None:
    CountingCatchUp.judged = 0
    study = _study(HealthPruner(CountingCatchUp(0.75, gain_factor=1.0)), [*FINISHED, [0.1, 0.12, 0.13]])
    # 5 finished trials x 3 reports (too few finished to judge for most, still a call each) + the pruned one's 2
    assert CountingCatchUp.judged == 5 * 3 + 2
    assert study.trials[5].user_attrs[PRUNE_REASON].startswith("best 0.12 by step 2 ")


def test_gain_factor_leaves_room_for_a_trial_that_gains_more_than_any_finished_one() -> None:
    steady = [[0.4, 0.6, 0.8]] * 5  # every finished trial gains 0.4 after step 1
    late = [0.3, 0.5, 0.85]  # would gain 0.55: more than any finished trial did
    assert _study(CatchUpPruner(0.75, gain_factor=1.0), [*steady, late]).trials[5].state == TrialState.PRUNED
    # scaled by 1.5 the largest gain (0.6) lets it through: 0.3 + 0.6 >= 0.8
    kept = _study(CatchUpPruner(0.75, gain_factor=1.5), [*steady, late])
    assert kept.trials[5].state == TrialState.COMPLETE and kept.trials[5].value == 0.85
    # a hopeless trial is still stopped: 0.1 + 0.6 < 0.8
    assert (
        _study(CatchUpPruner(0.75, gain_factor=1.5), [*steady, [0.1, 0.1, 0.1]]).trials[5].state
        == TrialState.PRUNED
    )


def test_bar_counts_pruned_lowers_the_bar_the_finished_trials_alone_set_too_high() -> None:
    ladder = [
        [0.2, 0.4, 0.6],
        [0.3, 0.5, 0.7],
        [0.4, 0.6, 0.8],
        [0.5, 0.7, 0.9],
        [0.6, 0.8, 1.0],
    ]  # gain 0.4 after step 1
    hopeless = [[0.05, 0.05, 0.05]] * 3
    candidate = [0.45, 0.65, 0.86]
    # the finished trials' upper quartile alone is 0.9: 0.45 + 0.4 < 0.9, pruned at its first report
    plain = _study(
        CatchUpPruner(0.75, gain_factor=1.0, bar_counts_pruned=False), [*ladder, *hopeless, candidate]
    )
    assert all(t.state == TrialState.PRUNED for t in plain.trials[5:8])
    assert plain.trials[8].state == TrialState.PRUNED and plain.trials[8].last_step == 1
    # with the three pruned trials (best 0.05 each) in the population the upper quartile is 0.825
    # (the default since the fifth session)
    counted = _study(CatchUpPruner(0.75, gain_factor=1.0), [*ladder, *hopeless, candidate])
    assert CatchUpPruner().bar_counts_pruned
    assert all(t.state == TrialState.PRUNED for t in counted.trials[5:8])
    assert counted.trials[8].state == TrialState.COMPLETE and counted.trials[8].value == 0.86
    # a prune's reason says the bar counted pruned trials
    reason = (
        HealthPruner(CatchUpPruner(0.75, gain_factor=1.0, bar_counts_pruned=True))
        .decide(counted, counted.trials[7])
        .reason
    )
    assert reason.endswith(
        "of 6 finished trials and 3 pruned ones at their best (higher is better) (CatchUpPruner)"
    ), reason


def test_minimizing_mirrors_the_rule() -> None:
    finished = [[-v for v in curve] for curve in FINISHED]
    study = _study(
        HealthPruner(CatchUpPruner(0.75, gain_factor=1.0)),
        [*finished, [-0.1, -0.12, -0.13], [-0.2, -0.5, -0.78]],
        direction="minimize",
    )
    # the hopeless trial is pruned at step 2, the slow starter finishes
    assert study.trials[5].state == TrialState.PRUNED and study.trials[5].last_step == 2
    assert study.trials[6].state == TrialState.COMPLETE
    # the reason speaks of a drop and an upper bar
    assert (
        study.trials[5].user_attrs[PRUNE_REASON].startswith("best -0.12 by step 2 - the largest later drop")
    )


def test_nothing_is_pruned_before_n_startup_trials_finished() -> None:
    study = _study(CatchUpPruner(0.75, gain_factor=1.0, n_startup_trials=5), [*FINISHED[:4], [0.0, 0.0, 0.0]])
    # four finished trials are not enough to measure gains against
    assert study.trials[4].state == TrialState.COMPLETE


def test_no_judgement_without_a_finished_trial_reporting_by_that_step() -> None:
    study = optuna.create_study(
        direction="maximize", pruner=CatchUpPruner(0.5, gain_factor=1.0, n_startup_trials=1)
    )
    done = study.ask()
    done.report(0.9, 10)
    study.tell(done, 0.9)
    trial = study.ask()
    trial.report(0.0, 5)
    # the finished trial reported nothing by step 5: no gain is known, so no judgement
    assert CatchUpPruner(0.5, gain_factor=1.0, n_startup_trials=1).judge(study, study.trials[1]) is None
    trial.report(0.0, 10)
    # by step 10 it is known: 0.0 + gain 0 < 0.9
    verdict = CatchUpPruner(0.5, gain_factor=1.0, n_startup_trials=1).judge(study, study.trials[1])
    assert verdict is not None and verdict.prune and (verdict.gain, verdict.bar) == (0.0, 0.9)


def test_n_warmup_steps_delay_the_first_judgement() -> None:
    study = _study(CatchUpPruner(0.75, gain_factor=1.0, n_warmup_steps=3), [*FINISHED, [0.1, 0.12, 0.13]])
    # judged only from step 3, the trial's final report
    assert study.trials[5].state == TrialState.PRUNED and study.trials[5].last_step == 3


def test_the_final_report_is_never_pruned_by_the_base_pruner() -> None:
    losing = [0.5, 0.6, 0.65]
    bare = _study(HealthPruner(optuna.pruners.MedianPruner(n_startup_trials=5)), [*FINISHED, losing])
    # without a declared length the median prunes it at its last report (0.65 < 0.7), throwing the result away
    assert bare.trials[5].state == TrialState.PRUNED and bare.trials[5].last_step == 3
    guarded = _study(
        HealthPruner(optuna.pruners.MedianPruner(n_startup_trials=5)), [*FINISHED, losing], total=3
    )
    # with gradsweep.total_steps = 3 the last report is left alone and the trial completes with its value
    assert guarded.trials[5].state == TrialState.COMPLETE and guarded.trials[5].value == 0.65


def test_best_by_ignores_later_and_non_finite_values() -> None:
    values = {1: 0.2, 2: float("nan"), 3: 0.9}
    # the best finite value at or before the step, in the study's sign
    assert (
        best_by(values, 2, 1.0) == 0.2
        and best_by(values, 3, -1.0) == -0.2
        and best_by(values, 0, 1.0) is None
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantile": 1.0}, "quantile must be in \\(0, 1\\) but got 1.0"),
        ({"quantile": 0.5, "n_startup_trials": -1}, "n_startup_trials must be >= 0 but got -1"),
        ({"quantile": 0.5, "gain_factor": 0.5}, "gain_factor must be >= 1 but got 0.5"),
        ({"quantile": 0.5, "n_warmup_steps": -2}, "n_warmup_steps must be >= 0 but got -2"),
    ],
)
def test_bad_arguments_are_refused_with_the_value(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CatchUpPruner(**kwargs)


def test_the_reason_names_the_bar_for_the_direction() -> None:
    from gradsweep.search.catchup import CatchUpVerdict

    # minimizing: the bar is the 25th percentile of the losses, i.e. the best quartile's edge
    low = CatchUpVerdict(True, best=1.9, gain=0.15, bar=1.794, finished=5, step=2, pruned=2)
    assert low.reason(0.75, maximize=False, gain_factor=1.5) == (
        "best 1.9 by step 2 - 1.5 x the largest later drop of a finished trial 0.1 > 1.794, the "
        "best-quartile final value of 5 finished trials and 2 pruned ones at their best (lower is better)"
    )
    # maximizing: the same words with higher is better
    high = CatchUpVerdict(True, best=0.12, gain=0.3, bar=0.7, finished=5, step=2)
    assert high.reason(0.75, maximize=True) == (
        "best 0.12 by step 2 + the largest later gain of a finished trial 0.3 < 0.7, the "
        "best-quartile final value of 5 finished trials (higher is better)"
    )
    # other quantiles: the median, or the best share of trials the bar marks
    assert ", the median final value of" in high.reason(0.5, maximize=True)
    assert ", the best-10% final value of" in low.reason(0.9, maximize=False)
    assert "quantile" not in low.reason(0.75, maximize=False)


def test_a_minimized_prune_stores_the_best_quartile_loss_as_the_bar() -> None:
    finished = [[-v for v in curve] for curve in FINISHED]
    study = _study(
        HealthPruner(CatchUpPruner(0.75, gain_factor=1.0)),
        [*finished, [-0.1, -0.12, -0.13]],
        direction="minimize",
    )
    # the bar is the 25th percentile of the finished losses (-0.8, -0.7 x 4): -0.7, the best quartile's edge
    reason = study.trials[5].user_attrs[PRUNE_REASON]
    assert reason == (
        "best -0.12 by step 2 - the largest later drop of a finished trial 0.3 > -0.7, the best-quartile "
        "final value of 5 finished trials (lower is better) (CatchUpPruner)"
    ), reason
