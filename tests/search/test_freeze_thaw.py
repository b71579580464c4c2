"""The freeze-thaw rule on hand-made studies: the bar, the pause, the thaw choice, interrupted thaws."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from gradsweep.objectives.health.verdict import HealthReport, Verdict
from gradsweep.search.attrs import FAIL_REASON, PAUSE, PRUNE_KIND, THAW_OF, TOTAL_STEPS
from gradsweep.search.freeze_thaw import FreezeThawPruner, chance_to_beat
from gradsweep.search.learning_curve import Prediction
from gradsweep.search.thaw_attrs import chain_ends, thawed_as

STEPS = range(1, 7)
DIST = {"x": FloatDistribution(0.0, 1.0)}


def _line(final: float, upto: int = 6) -> dict[int, float]:
    return {k: final * k / 6 for k in STEPS if k <= upto}


def _study(finals: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9)) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for f in finals:
        study.add_trial(
            create_trial(
                params={"x": f},
                distributions=DIST,
                value=f,
                intermediate_values=_line(f),
                user_attrs={TOTAL_STEPS: 6},
            )
        )
    return study


def _add_paused(study: optuna.Study, final: float, upto: int = 1) -> int:
    attrs = {
        PRUNE_KIND: "paused",
        PAUSE: {"step": upto, "checkpoint": "/nowhere", "checkpoint_step": upto},
        TOTAL_STEPS: 6,
    }
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            params={"x": final},
            distributions=DIST,
            intermediate_values=_line(final, upto),
            user_attrs=attrs,
        )
    )
    return study.trials[-1].number


def _running(study: optuna.Study, final: float, upto: int) -> optuna.trial.FrozenTrial:
    study.add_trial(
        create_trial(
            state=TrialState.RUNNING,
            params={"x": final},
            distributions=DIST,
            intermediate_values=_line(final, upto),
            user_attrs={TOTAL_STEPS: 6},
        )
    )
    return study.trials[-1]


def test_the_bar_is_the_top_quartile_of_finals_and_the_paused_trials_predictions() -> None:
    pruner = FreezeThawPruner()
    study = _study()
    refs, bar = pruner._finished(study, exclude=-1)
    # four straight lines: the bar is their upper quartile
    assert len(refs) == 4 and bar == pytest.approx(float(np.quantile([0.6, 0.7, 0.8, 0.9], 0.75)))
    number = _add_paused(study, 0.2)
    _, with_paused = pruner._finished(study, exclude=-1)
    # a paused trial counts at its predicted final (~0.2 on these lines), not its partial value 0.033
    predicted = pruner._cache[number]
    assert predicted == pytest.approx(0.2, abs=0.05)
    assert with_paused == pytest.approx(float(np.quantile([0.6, 0.7, 0.8, 0.9, predicted], 0.75)))
    # the bar of minimizing studies is the lower quartile
    low = optuna.create_study(direction="minimize")
    for f in (0.6, 0.7, 0.8, 0.9):
        low.add_trial(
            create_trial(params={"x": f}, distributions=DIST, value=f, intermediate_values=_line(f))
        )
    assert pruner._finished(low, exclude=-1)[1] == pytest.approx(
        float(np.quantile([0.6, 0.7, 0.8, 0.9], 0.25))
    )


def test_pause_below_five_percent_and_never_at_the_last_report_or_before_three_finished() -> None:
    pruner = FreezeThawPruner()
    study = _study()
    # a line to 0.3 after one report: paused, the reason gives the prediction and the chance
    judged = pruner.judge(study, _running(study, 0.3, 1))
    assert judged.pause and judged.chance < 0.05 and "chance to reach the top quartile" in judged.reason(1)
    # a line to 0.95: kept
    assert not pruner.judge(study, _running(study, 0.95, 1)).pause
    # its last report: stopping saves nothing
    assert not pruner.judge(study, _running(study, 0.3, 6)).pause
    # two finished trials: the model cannot say yet, nothing is paused
    few = _study((0.8, 0.9))
    assert not pruner.judge(few, _running(few, 0.1, 2)).pause


def test_a_warning_is_judged_on_the_mean() -> None:
    pruner = FreezeThawPruner()
    study = _study()
    trial = _running(study, 0.75, 2)
    healthy = pruner.judge(study, trial)
    warning = HealthReport(step=2, verdict=Verdict.WARNING, reasons=("text_encoder starving",))
    flagged = pruner.judge(study, trial, warning)
    # the same curve under a health WARNING gets no credit for its optimistic tail
    assert flagged.warning and flagged.chance <= healthy.chance
    assert flagged.chance == chance_to_beat(
        Prediction(flagged.prediction.mean, 0.0, ""), flagged.bar, maximize=True
    )


def test_a_just_paused_trial_is_not_thawed_without_new_evidence() -> None:
    pruner = FreezeThawPruner()
    study = _study()
    judged = pruner.judge(study, _running(study, 0.62, 1))
    assert judged.pause
    study2 = _study()
    _add_paused(study2, 0.62)
    # judged against the same bar it was paused against (its own prediction left out): no thaw
    assert pruner.choose_thaw(study2) is None


def test_a_paused_trial_is_thawed_when_finished_curves_say_it_can_reach_the_top() -> None:
    pruner = FreezeThawPruner()
    study = _study()
    number = _add_paused(study, 0.5, upto=2)
    assert pruner.choose_thaw(study) is None
    # four trials that went like it for two reports and ended on top
    for f in (0.95, 0.96, 0.97, 0.98):
        curve = {**_line(0.5, 2), **{k: f for k in range(3, 7)}}
        study.add_trial(
            create_trial(
                params={"x": f},
                distributions=DIST,
                value=f,
                intermediate_values=curve,
                user_attrs={TOTAL_STEPS: 6},
            )
        )
    thaw = FreezeThawPruner().choose_thaw(study)
    assert thaw is not None and thaw.trial.number == number and thaw.judgement.chance >= 0.10


def test_an_interrupted_thaw_leaves_its_trial_paused() -> None:
    pruner = FreezeThawPruner()
    study = _study()
    number = _add_paused(study, 0.5)
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            params={"x": 0.5},
            distributions=DIST,
            user_attrs={THAW_OF: number, FAIL_REASON: "interrupted"},
        )
    )
    # the interrupted thaw continues nothing: the trial is still paused, and can be thawed again
    assert [t.number for t in pruner.paused_trials(study)] == [number]
    assert number not in thawed_as(study.trials)
    # the config's end is the paused trial, not the interrupted thaw
    assert [t.number for t in chain_ends(study.trials)][-1] == number
    # a thaw that ran continues it
    study.add_trial(
        create_trial(params={"x": 0.5}, distributions=DIST, value=0.5, user_attrs={THAW_OF: number})
    )
    assert pruner.paused_trials(study) == [] and thawed_as(study.trials) == {number: study.trials[-1].number}


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="p_pause"):
        FreezeThawPruner(p_pause=0.0)
    with pytest.raises(ValueError, match="p_thaw"):
        FreezeThawPruner(p_pause=0.1, p_thaw=0.05)
    with pytest.raises(ValueError, match="quantile"):
        FreezeThawPruner(quantile=1.0)
    assert math.isclose(FreezeThawPruner().p_thaw, 2 * FreezeThawPruner().p_pause)
