from __future__ import annotations

import math

import optuna

from gradsweep.search.views.health_curves import health_curve, health_curves, tower_of


def test_tower_of_monitor_keys() -> None:
    # a tower's pre-clip norm names the tower
    assert tower_of("health/text_encoder/grad_norm_pre") == "text_encoder"
    # the global norm is its own series
    assert tower_of("health/grad_norm_global") == "global"
    # other metrics are not grad norms
    assert tower_of("health/text_encoder/grad_norm_pre_max") is None
    assert tower_of("health/loss") is None


def test_curves_of_demo_study(demo_study: optuna.Study) -> None:
    curves = {c.number: c for c in health_curves(demo_study.trials)}
    # trials with a health history get a curve; the underperforming prune and the failure have none
    assert sorted(curves) == [0, 1, 2, 3, 4, 6, 7]
    collapsed = curves[1]
    # one series per tower plus the global norm, in the order first seen
    assert list(collapsed.series) == ["video_backbone", "text_encoder", "global"]
    # the steps are those of the history
    assert collapsed.steps == [20, 40, 60, 80]
    # the text tower's norm collapses over the run
    assert collapsed.series["text_encoder"][-1] < 1e-3 < collapsed.series["text_encoder"][0]
    # the prune point carries the step, kind and reason
    assert collapsed.prune is not None
    assert (collapsed.prune.step, collapsed.prune.kind) == (80, "unstable")
    assert collapsed.prune.reason.startswith("text_encoder grad norm 3.1e-07")
    # an exploding norm stays visible as inf
    assert math.isinf(curves[3].series["video_backbone"][-1])
    # a complete trial has no prune point
    assert curves[2].prune is None


def test_curve_without_history_is_none() -> None:
    study = optuna.create_study()
    study.optimize(lambda t: 1.0, n_trials=1)
    # no gradsweep.health.history attr, no curve
    assert health_curve(study.trials[0]) is None


def test_missing_tower_in_an_entry_is_nan() -> None:
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr(
        "gradsweep.health.history",
        [
            {"step": 2, "verdict": "healthy", "metrics": {"health/a/grad_norm_pre": 1.0}},
            {
                "step": 1,
                "verdict": "healthy",
                "metrics": {"health/a/grad_norm_pre": 2.0, "health/b/grad_norm_pre": 3.0},
            },
        ],
    )
    curve = health_curve(study.trials[0])
    assert curve is not None
    # entries are ordered by step
    assert curve.steps == [1, 2]
    # a tower missing from an entry gives nan there
    assert (
        curve.series["a"] == [2.0, 1.0] and curve.series["b"][0] == 3.0 and math.isnan(curve.series["b"][1])
    )


def test_paused_then_thawed_config_is_one_curve() -> None:
    from tests.search.views.study_factory import build_freeze_thaw

    curves = {c.number: c for c in health_curves(build_freeze_thaw().trials)}
    # thawed trials (#1, #4) have no curve of their own: it goes on in their thaw's (#5)
    assert sorted(curves) == [0, 2, 5]
    c = curves[5]
    # #5's curve is the config's whole curve: #1's steps, #4's, then its own, each step once
    assert c.steps == [10, 20, 30, 40, 50, 60] and len(c.series["text_encoder"]) == 6
    assert c.trials == [1, 4, 5]
    # each pause it went on from is marked at the kept checkpoint's step
    assert [(t.step, t.paused, t.thawed_as) for t in c.thaws] == [(20, 1, 4), (40, 4, 5)]
    assert c.prune is None and "thaw of #4 paused at step 40, thaw of #1 paused at step 20" in c.title
    # a paused trial nothing thawed: a "pause", not a prune, labelled so
    paused = curves[2]
    assert paused.prune is not None and paused.prune.kind == "paused" and paused.thaws == []
    assert paused.prune.label.startswith("paused at step 20: predicted final 0.2")
    assert paused.title == "Trial 2 (paused)"


def test_thaw_whose_history_repeats_steps_keeps_the_thaws_entries() -> None:
    from optuna.trial import TrialState, create_trial

    def entry(step: int, loss: float) -> dict:
        return {"step": step, "verdict": "healthy", "metrics": {"health/loss": loss}}

    study = optuna.create_study()
    pause = {"step": 30, "checkpoint": "c", "checkpoint_step": 20}  # paused at 30, checkpoint from 20
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={
        "gradsweep.prune.kind": "paused", "gradsweep.pause": pause,
        "gradsweep.health.history": [entry(10, 3.0), entry(20, 2.0), entry(30, 1.9)],
    }))  # fmt: skip
    study.add_trial(create_trial(value=1.0, user_attrs={
        "gradsweep.thaw_of": 0,
        "gradsweep.health.history": [entry(10, 3.0), entry(20, 2.0), entry(30, 1.9), entry(30, 1.5), entry(40, 1.2)],
    }))  # fmt: skip
    (curve,) = health_curves(study.trials)
    # step 30 is the thaw's own run (the paused trial's step 30 came after its checkpoint)
    assert curve.steps == [10, 20, 30, 40] and curve.loss == [3.0, 2.0, 1.5, 1.2]
    assert [(t.step, t.paused) for t in curve.thaws] == [(20, 0)]
