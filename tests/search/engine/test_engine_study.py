"""Study creation rules, counting, stale-trial reconciliation and re-queueing."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from gradsweep.errors import UserError
from gradsweep.search.attrs import FAIL_REASON
from gradsweep.search.engine.ray.launcher import LaunchRequest, launch
from gradsweep.search.engine.ray.runtime import Resources
from gradsweep.search.engine.storage import open_storage
from gradsweep.search.engine.study import (
    check_joinable,
    count_finished,
    reconcile_running,
    requeue,
    retryable,
    study_attrs,
)
from gradsweep.spaces.space import parse_space

from ._support import space_data


def _attrs(**overrides: object) -> dict[str, object]:
    return study_attrs(parse_space(space_data("o.py:fn", **overrides)), objective="o.py:fn", scale="tiny")


def test_existing_study_with_other_space_needs_join(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    for key, value in _attrs().items():
        study.set_user_attr(key, value)
    # a new name is free
    assert check_joinable(storage, "other", _attrs(), join=False) is False
    # the same space and objective may add trials
    assert check_joinable(storage, "s", _attrs(), join=False) is True
    # a different space is refused, naming the way out
    with pytest.raises(UserError, match=r"different search space.*--join"):
        check_joinable(storage, "s", _attrs(seed=1), join=False)
    # ... unless --join
    assert check_joinable(storage, "s", _attrs(seed=1), join=True) is True
    # a different objective is refused too
    other = dict(_attrs())
    other["gradsweep.objective"] = "moco"
    with pytest.raises(UserError, match="optimizes objective"):
        check_joinable(storage, "s", other, join=False)


def test_reconcile_count_and_requeue() -> None:
    study = optuna.create_study()
    done = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(done, 0.5)
    stale = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    # a killed driver's RUNNING trial is reconciled to FAIL "interrupted"
    assert reconcile_running(study) == [stale.number]
    # it is FAIL with the reason "interrupted"
    assert (
        study.trials[1].state == TrialState.FAIL and study.trials[1].user_attrs[FAIL_REASON] == "interrupted"
    )
    # interrupted trials were never evaluated: they do not count as finished
    assert count_finished(study) == 1
    # they can be re-queued once, with their params
    assert retryable(study) == [1] and requeue(study, [1]) == 1
    # the re-queued trial waits to run
    assert study.trials[2].state == TrialState.WAITING
    # with the interrupted trial's params
    assert study.trials[2].system_attrs["fixed_params"] == study.trials[1].params
    # ... and a re-queued trial is not offered again
    assert retryable(study) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_trials": 0}, "--n-trials must be at least 1"),
        ({"sampler": "bayes"}, "--sampler must be one of"),
        ({"baselines": ("nonexistent",)}, "neither a file nor a baseline"),
        ({"objective": "no_such_file.py:fn"}, "objective file not found"),
        ({"resources": Resources(gpus_per_trial=0.5)}, "no GPU"),
        ({"scale": "huge"}, "--scale must be one of"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    objectives_file: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    db = tmp_path / "s.db"
    space = parse_space(space_data(f"{objectives_file}:lr_quality"))
    request = LaunchRequest(space=space, n_trials=2, storage=f"sqlite:///{db}")
    request = LaunchRequest(**{**request.__dict__, **change})
    # the mistake is reported in one line
    with pytest.raises(UserError, match=message):
        launch(request)
    # and nothing was written: not even the store file
    assert not db.exists()


def test_baseline_outside_the_space_is_refused(objectives_file: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "base.yaml"
    cfg.write_text("params:\n  towers.all.lr: 5000.0\n")
    request = LaunchRequest(
        space=parse_space(space_data(f"{objectives_file}:lr_quality")), n_trials=1,
        storage=f"sqlite:///{tmp_path / 's.db'}", baselines=(str(cfg),),
    )  # fmt: skip
    # a baseline file whose params fall outside the space names the parameter
    with pytest.raises(UserError, match=r"towers\.all\.lr"):
        launch(request)


def test_baseline_from_a_trial_config_file_and_by_name(tmp_path: Path) -> None:
    from gradsweep.search.engine.request import resolve_baselines
    from gradsweep.spaces.sampling import resolve

    space = parse_space(space_data("x.py:fn"))
    exported = tmp_path / "current.yaml"
    exported.write_text(resolve(space, {"towers.all.lr": 0.05}).to_yaml())
    wrapped = tmp_path / "export.yaml"
    wrapped.write_text("config:\n  params:\n    towers.all.lr: 0.2\n")
    baselines = resolve_baselines(space, (str(exported), "good", str(wrapped)))
    # a TrialConfig file gives its params and is named after the file
    assert (baselines[0].name, baselines[0].params) == ("current", {"towers.all.lr": 0.05})
    # a baseline name of the space gives the space's params
    assert (baselines[1].name, baselines[1].params) == ("good", {"towers.all.lr": 0.01})
    # an export file with a top-level `config` works too
    assert baselines[2].params == {"towers.all.lr": 0.2}


def test_thaws_are_no_new_configs() -> None:
    from gradsweep.search.engine.summary import summarize
    from tests.search.views.study_factory import build_freeze_thaw

    study = build_freeze_thaw()
    # 5 configs finished (#0, #1 paused then thawed twice, #2, #3, #6): the thaws #4 and #5 are none
    assert count_finished(study) == 5
    summary = summarize(
        study, storage="sqlite://", target=5, interrupted=False, aborted=None, elapsed_s=1.0, results_dir="r"
    )
    # configs by their latest trial: complete 2 (#0, #5), unstable 1, left paused 1 (#2), failed 1
    assert (summary.finished, summary.complete, summary.failed) == (5, 2, 1)
    assert summary.pruned == {"unstable": 1, "paused": 1}
    assert summary.complete + sum(summary.pruned.values()) + summary.failed == summary.finished
    # the thaws by how they ended
    assert summary.thaws == {"complete": 1, "paused": 1}
    # the line counts configs, with the pauses and thaws apart from the prunes
    assert (
        "5/5 finished  complete 2  pruned 1  paused 1  thaws 2 (complete 1, paused again 1)  failed 1  "
        in (summary.line())
    )
    assert summary.best_number == 5 and summary.to_dict()["thaws"] == {"complete": 1, "paused": 1}


def test_summary_line_without_pauses_is_unchanged() -> None:
    from gradsweep.search.engine.summary import summarize

    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=0.5))
    study.add_trial(
        optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={"gradsweep.prune.kind": "unstable"})
    )
    summary = summarize(
        study, storage="s", target=2, interrupted=False, aborted=None, elapsed_s=1.0, results_dir="r"
    )
    # no "paused" nor "thaws" in a study without pauses
    assert "2/2 finished  complete 1  pruned 1  failed 0  best 0.5 (trial 0)" in summary.line()
    assert summary.pause_counts() == "" and summary.thaws == {}


def test_an_interrupted_thaw_is_not_retried_nor_counted() -> None:
    from tests.search.views.study_factory import build_freeze_thaw

    study = build_freeze_thaw()
    thaw = study.ask()  # a thaw of #2 the sweep's interruption failed
    study._storage.set_trial_user_attr(thaw._trial_id, "gradsweep.thaw_of", 2)
    assert reconcile_running(study) == [thaw.number]
    # its config was counted already (paused trial #2), and the thaw adds none
    assert count_finished(study) == 5
    # a retry would run #2's config from step 0 as a new config: it is not offered
    assert retryable(study) == []
