from __future__ import annotations

import optuna

from gradsweep.search.views.plots import history, importances, lr_points, parallel, tower_lrs


def test_history_best_so_far(demo_study: optuna.Study) -> None:
    h = history(demo_study.trials, "maximize")
    # only complete trials, in trial order
    assert h.numbers == [0, 2, 6, 7]
    # the best-so-far line never goes down when maximizing
    assert h.best_so_far == [0.41, 0.73, 0.73, 0.73]


def test_parallel_columns(demo_study: optuna.Study) -> None:
    p = parallel(demo_study.trials)
    # one column per searched knob, one entry per complete trial
    assert sorted(p.params) == ["loss_variant", "towers.text_encoder.lr", "towers.video_backbone.lr"]
    assert len(p.params["loss_variant"]) == len(p.values) == 4


def test_importances_need_two_complete_trials() -> None:
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    imp = importances(study)
    # with one complete trial there are no importances, and a note says why
    assert imp.values is None and "at least 2 complete trials (have 1)" in (imp.note or "")


def test_importances_of_demo(demo_study: optuna.Study) -> None:
    imp = importances(demo_study)
    # every searched knob gets an importance and they sum to ~1
    assert imp.values is not None and abs(sum(imp.values.values()) - 1.0) < 1e-6


def test_tower_lrs_from_params_and_config(demo_study: optuna.Study) -> None:
    trial = demo_study.trials[2]
    # tower LRs are read from towers.<t>.lr params (and the resolved config agrees)
    assert tower_lrs(trial) == {
        "video_backbone": trial.params["towers.video_backbone.lr"],
        "text_encoder": trial.params["towers.text_encoder.lr"],
    }
    study = optuna.create_study()
    t = study.ask()
    t.set_user_attr("gradsweep.config", {"towers": [{"name": "head", "lr": 0.01}]})
    study.tell(t, 1.0)
    # without lr params the resolved config's towers are used
    assert tower_lrs(study.trials[0]) == {"head": 0.01}


def test_lr_points_only_complete(demo_study: optuna.Study) -> None:
    points = lr_points(demo_study.trials)
    # one point per complete trial per tower
    assert sorted(points.towers) == ["text_encoder", "video_backbone"]
    assert [p[2] for p in points.towers["text_encoder"]] == [0, 2, 6, 7]
