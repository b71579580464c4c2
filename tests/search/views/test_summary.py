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


def test_soft_flags_of_trials_that_were_not_pruned_are_listed_by_rule() -> None:
    from gradsweep.objectives.health.verdict import HealthReport, Verdict
    from gradsweep.search.health_attrs import write_health_attrs

    study = optuna.create_study(direction="maximize")
    for rules, pruned in [(["exploding"], False), (["exploding"], True), ([], False)]:
        trial = study.ask()
        reasons = (
            ["enc grad norm 5e+02 > 1e+02 (100x its early norm 1) for 3 checks (steps 19-39)"]
            if rules
            else []
        )
        write_health_attrs(
            trial,
            HealthReport(39, Verdict.UNSTABLE if rules else Verdict.HEALTHY, reasons, {}, rules),
            limit=5,
        )
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, 0.5)
    trial = study.ask()  # two soft rules at one check: each keeps its own line as its example
    lines = ["body grad norm 2.1 > 1.2 (100x its early norm 0.012) for 3 checks (steps 5-15)",
             "body decay-to-grad ratio 3 > 2 for 5 checks (steps 0-15)"]  # fmt: skip
    write_health_attrs(
        trial, HealthReport(15, Verdict.UNSTABLE, lines, {}, ["decay_dominance", "exploding"]), limit=5
    )
    study.tell(trial, 0.4)
    s = summarize("s", study.trials, "maximize")
    decay = next(f for f in s.flagged if f.rule == "decay_dominance")
    assert decay.trials == [(3, "complete")] and decay.example == lines[1]
    # the pruned trial is in the prune groups, not here; the flagged one that completed is
    assert (s.flagged[0].rule, s.flagged[0].trials) == ("exploding", [(0, "complete"), (3, "complete")])
    assert s.flagged[0].example.startswith("enc grad norm 5e+02 > 1e+02")
    assert json.loads(json.dumps(s.to_dict()))["flagged"][0]["rule"] == "exploding"


def test_summary_of_freeze_thaw_study() -> None:
    from tests.search.views.study_factory import PAUSE_REASON_2, build_freeze_thaw

    study = build_freeze_thaw()
    s = summarize(study.study_name, study.trials, "maximize", study.user_attrs)
    # Optuna's states as stored: the paused trials are PRUNED
    assert s.counts["PRUNED"] == 4 and s.total == 7
    # configs (trials that are no thaw) by how their latest trial ended: #1 -> #4 -> #5 is one config
    assert s.configs == {"complete": 2, "pruned": 1, "paused": 1, "failed": 1} and s.n_configs == 5
    assert s.config_line() == "5 configs: complete 2  pruned 1  paused 1  failed 1"
    # the thaws by how they ended, and every pause with what became of it
    assert s.thaws == {"complete": 1, "paused": 1}
    assert [(p.number, p.thaw_of, p.thawed_as, p.ends, p.ends_at) for p in s.pauses] == [
        (1, None, 4, "complete", 5),
        (2, None, None, "paused", 2),
        (4, 1, 5, "complete", 5),
    ]
    assert s.pauses[1].step == 20 and s.pauses[1].checkpoint_step == 20
    # a pause's reason without its "paused: " prefix
    assert s.pauses[1].reason == PAUSE_REASON_2.removeprefix("paused: ")
    assert s.pause_line() == (
        "paused 3 trials: thawed 2, never thawed 1; thaws 2 (complete 1, paused again 1)"
    )
    # the best is the thaw that completed, marked as one
    assert s.best is not None and (s.best.number, s.best.value, s.best.thaw_of) == (5, 0.8, 4)
    # paused groups are named after the freeze-thaw scheduler, the unstable prune after its rule
    assert {(g.kind, g.rule, g.count) for g in s.prune_groups} == {
        ("paused", "FreezeThawPruner", 3),
        ("unstable", "nonfinite", 1),
    }
    # all of it is JSON-able
    data = json.loads(json.dumps(s.to_dict()))
    assert data["configs"]["paused"] == 1 and data["pauses"][0]["thawed_as"] == 4


def test_summary_without_pauses_has_no_config_counts(demo_study: optuna.Study) -> None:
    s = summarize(demo_study.study_name, demo_study.trials, "maximize")
    # a study without pauses shows nothing new
    assert (s.configs, s.thaws, s.pauses, s.config_line(), s.pause_line()) == ({}, {}, [], "", "")
