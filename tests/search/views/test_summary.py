from __future__ import annotations

import json

import optuna

from gradsweep.search.views.summary import study_direction, summarize


def test_summary_of_mixed_study(demo_study: optuna.Study) -> None:
    s = summarize(
        demo_study.study_name, demo_study.trials, study_direction(demo_study), demo_study.user_attrs
    )
    # every state is counted, zeros included
    assert s.counts == {"COMPLETE": 4, "PRUNED": 4, "FAIL": 1, "RUNNING": 1, "WAITING": 0}
    # study attrs are surfaced
    assert (s.objective, s.metric, s.scale, s.direction) == ("demo", "recall@1", "tiny", "maximize")
    # the best is the best COMPLETE trial with its params
    assert s.best is not None and (s.best.number, s.best.value) == (2, 0.73)
    assert set(s.best.params) == {"towers.video_backbone.lr", "towers.text_encoder.lr", "loss_variant"}
    # failures carry the first line of the error only
    assert [(f.number, f.reason) for f in s.failures] == [
        (8, "RuntimeError: shapes (4, 8) and (16,) mismatch")
    ]
    # running trials carry their latest health verdict
    assert [(r.number, r.step, r.verdict) for r in s.running] == [(9, 40, "warning")]
    # the whole summary is JSON-able
    assert json.loads(json.dumps(s.to_dict()))["prune_groups"][1]["count"] == 2


def test_summary_of_empty_study() -> None:
    study = optuna.create_study(direction="minimize")
    s = summarize("empty", study.trials, study_direction(study))
    # no trials: zero counts, no best
    assert (s.total, s.best, s.prune_groups) == (0, None, [])
    # the direction comes from the study
    assert s.direction == "minimize"
