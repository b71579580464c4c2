"""``optimize_local``: the same study semantics without Ray (plain ``study.optimize``)."""

from __future__ import annotations

from pathlib import Path

from optuna.trial import TrialState

from gradsweep.search.engine.local import optimize_local
from gradsweep.spaces.space import parse_space

from ._support import load, space_data


def test_local_sweep_prunes_fails_and_tags_like_the_ray_engine(objectives_file: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    space = parse_space(space_data(f"{objectives_file}:lr_quality"))
    # the default median pruner waits for 5 finished trials (Optuna's default), so 5 good ones first
    summary = optimize_local(space, 6, url, baselines=("good",) * 5 + ("bad",), pruner="median")
    trials = load(url).get_trials()
    # baselines ran first, tagged, and the bad one was pruned by the median with its reason
    assert [t.user_attrs.get("gradsweep.baseline") for t in trials] == ["good"] * 5 + ["bad"]
    # the pruned trial is PRUNED "underperforming" with a reason
    assert (
        trials[5].state == TrialState.PRUNED
        and trials[5].user_attrs["gradsweep.prune.kind"] == "underperforming"
    )
    # the summary counts the study
    assert summary.complete == 5 and summary.pruned == {"underperforming": 1}

    nan_space = parse_space(space_data(f"{objectives_file}:returns_nan", name="nan"))
    optimize_local(nan_space, 1, url)
    (nan_trial,) = load(url, "nan").get_trials()
    # a NaN value is FAIL with the non-finite reason, like under Ray
    assert nan_trial.state == TrialState.FAIL
    # with its reason stored
    assert nan_trial.user_attrs["gradsweep.fail.reason"] == "non-finite objective value"


def test_seeded_second_run_into_a_study_samples_new_configs(objectives_file: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    space = parse_space(space_data(f"{objectives_file}:lr_quality"))
    optimize_local(space, 3, url, seed=0, pruner="none")
    optimize_local(space, 3, url, seed=0, pruner="none")
    params = [t.params["towers.all.lr"] for t in load(url).get_trials()]
    # the second seeded run did not redraw the first run's configs
    assert len(params) == 6 and len(set(params)) == 6
