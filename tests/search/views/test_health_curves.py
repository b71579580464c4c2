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
