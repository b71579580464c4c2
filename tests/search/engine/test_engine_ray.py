"""Sweeps under a real local Ray: pruning, failures, retries, baselines, seeds, the study's records."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import FrozenTrial, TrialState

from gradsweep.search.engine.local import optimize_local
from gradsweep.search.engine.ray.launcher import LaunchRequest, launch
from gradsweep.search.engine.ray.runtime import Resources
from gradsweep.search.prune_attrs import PruneRecord
from gradsweep.spaces.space import load_space

from ._support import load

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("shared_ray")]


def _request(space: Path, tmp_path: Path, **kwargs: object) -> LaunchRequest:
    kwargs.setdefault("storage", f"sqlite:///{tmp_path / 'study.db'}")
    kwargs.setdefault("runs_dir", tmp_path / "runs")
    kwargs.setdefault("resources", Resources(concurrency=1))
    return LaunchRequest(space=load_space(space), **kwargs)  # type: ignore[arg-type]


def test_median_pruner_prunes_under_ray(make_space, tmp_path: Path) -> None:
    space = make_space("lr_quality")
    request = _request(
        space, tmp_path, n_trials=7, baselines=("good",) * 5 + ("bad",), seed=0, pruner="median"
    )
    summary = launch(request)
    study = load(request.storage)
    trials = study.get_trials()
    by_number = {t.number: t for t in trials}
    # the requested number of trials ran, and none is left RUNNING or WAITING
    assert len(trials) == 7 and all(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for t in trials
    )
    # the bad baseline (6th, after five good ones: the median's startup) is PRUNED by the median rule, not COMPLETE
    assert by_number[5].state == TrialState.PRUNED
    # ... with the kind, a reason naming the median, and the step stored
    assert by_number[5].user_attrs["gradsweep.prune.kind"] == "underperforming"
    # the reason names the median comparison
    assert "median" in by_number[5].user_attrs["gradsweep.prune.reason"]
    # the prune step is stored
    assert by_number[5].user_attrs["gradsweep.prune.step"] >= 0
    # baselines ran first and carry their names
    assert [by_number[i].user_attrs.get("gradsweep.baseline") for i in range(6)] == ["good"] * 5 + ["bad"]
    # each Optuna trial knows its Ray trial id, and the Ray trial dir carries the Optuna number
    run_dir = Path(summary.results_dir)
    for t in trials:
        ray_id = t.user_attrs["gradsweep.ray.trial_id"]
        # the Ray trial dir carries the Optuna number and the Ray trial id
        assert (run_dir / f"trial_{t.number:05d}_{ray_id}").is_dir()
    # the resolved config is stored per trial (Contract 4)
    assert by_number[0].user_attrs["gradsweep.config"]["towers"][0]["lr"] == pytest.approx(0.01)
    # the summary counts match the study and name the best trial
    assert summary.complete + sum(summary.pruned.values()) + summary.failed == 7 and summary.best_value == 0.0
    # the study records the plan resume needs, without any storage URL
    assert study.user_attrs["gradsweep.sweep"]["target"] == 7 and "sqlite" not in str(study.user_attrs)


def test_an_objective_raised_prune_stores_the_same_attrs_as_without_ray(make_space, tmp_path: Path) -> None:
    space = make_space("prunes_itself")
    request = _request(space, tmp_path, n_trials=1, seed=0, pruner="none")
    launch(request)
    local_url = f"sqlite:///{tmp_path / 'local.db'}"
    optimize_local(load_space(space), 1, local_url, seed=0, pruner="none")
    ray_trial, local_trial = load(request.storage).trials[0], load(local_url).trials[0]

    def prune_attrs(trial: FrozenTrial) -> dict[str, object]:
        return {k: v for k, v in trial.user_attrs.items() if k.startswith("gradsweep.prune.")}

    # both paths store the trial PRUNED with the one writer's attrs: kind, the objective's reason, last step
    expected = PruneRecord("unstable", "the objective gave up at step 2", 2).attrs()
    assert ray_trial.state == local_trial.state == TrialState.PRUNED
    # ... identical under Ray and without it
    assert prune_attrs(ray_trial) == prune_attrs(local_trial) == expected


def test_nan_and_errors_end_fail_and_sweep_stops_early(make_space, tmp_path: Path) -> None:
    nan_req = _request(make_space("returns_nan"), tmp_path, n_trials=2, study="nan")
    launch(nan_req)
    nan_trials = load(nan_req.storage, "nan").get_trials()
    # a NaN objective value ends FAIL (never RUNNING), with the reason stored
    assert [t.state for t in nan_trials] == [TrialState.FAIL, TrialState.FAIL]
    # with the reason stored
    assert all(t.user_attrs["gradsweep.fail.reason"] == "non-finite objective value" for t in nan_trials)

    err_req = _request(make_space("raises"), tmp_path, n_trials=5, study="err", abort_after=2)
    summary = launch(err_req)
    err_trials = load(err_req.storage, "err").get_trials()
    # every one of the first 2 trials failed: the sweep stopped early instead of running all 5
    assert len(err_trials) == 2 and summary.aborted is not None
    # the failure reason leads with the exception line from the objective
    assert (
        err_trials[0].user_attrs["gradsweep.fail.reason"].startswith("RuntimeError: boom from the objective")
    )
    # no trial is left RUNNING
    assert not [t for t in err_trials if t.state == TrialState.RUNNING]


def test_health_pruner_prunes_unstable_trial_under_ray(make_space, tmp_path: Path) -> None:
    request = _request(make_space("tiny_torch"), tmp_path, n_trials=2, baselines=("bad", "good"))
    launch(request)
    bad, good = load(request.storage).get_trials()
    # the deliberately unstable baseline (SGD at lr 500) is PRUNED for health, with its reason
    assert bad.state == TrialState.PRUNED and bad.user_attrs["gradsweep.prune.kind"] == "unstable"
    # with a reason
    assert bad.user_attrs["gradsweep.prune.reason"]
    # the driver stored the health report the pruner decided on
    assert bad.user_attrs["gradsweep.health.latest"]["verdict"] == "unstable"
    # the sane baseline completes with a finite value and a health history
    assert good.state == TrialState.COMPLETE and good.user_attrs["gradsweep.health.history"]


@pytest.mark.parametrize(("every_s", "resumed"), [(0.0, 1.0), (3600.0, 0.0)])
def test_max_failures_retries_from_the_last_persisted_checkpoint(
    make_space, tmp_path: Path, every_s: float, resumed: float
) -> None:
    resources = Resources(concurrency=1, max_failures=1, checkpoint_every_s=every_s)
    request = _request(
        make_space("crash_once"), tmp_path, n_trials=1, baselines=("good",), resources=resources
    )
    launch(request)
    (trial,) = load(request.storage).get_trials()
    # the crashed trial was retried and finished COMPLETE; its value says whether it resumed from
    # the checkpoint saved before the crash (1.0) or started over (0.0): Ray keeps a checkpoint only
    # when --checkpoint-every seconds have passed since the trial started (0: every checkpoint)
    assert trial.state == TrialState.COMPLETE and trial.value == resumed


def test_timeout_stops_the_sweep_and_records_interrupted_trials(make_space, tmp_path: Path) -> None:
    request = _request(make_space("slow_quality"), tmp_path, n_trials=4, timeout_s=2.0)
    summary = launch(request)
    trials = load(request.storage).get_trials()
    # the budget ended the sweep before all trials ran, and it says it was cut short
    assert summary.interrupted and summary.finished < 4
    # trials cut off by the budget are FAIL "interrupted", none RUNNING
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # the trial cut off by the budget is FAIL "interrupted"
    assert any(t.user_attrs.get("gradsweep.fail.reason") == "interrupted" for t in trials)


def test_a_file_objective_imports_modules_beside_it_in_the_workers(tmp_path: Path) -> None:
    # issue 19: `objective: charlm.py:train` beside charlm_core.py failed with "No module named ..."
    import uuid

    import yaml

    from ._support import space_data

    top, lazy = f"core_top_{uuid.uuid4().hex[:8]}", f"core_lazy_{uuid.uuid4().hex[:8]}"
    code = tmp_path / "user_code"
    code.mkdir()
    (code / f"{top}.py").write_text("BASE = 1.0\n")
    (code / f"{lazy}.py").write_text("BONUS = 0.5\n")
    (code / "charlm.py").write_text(
        f"import {top}\n\ndef train(config, ctx):\n    import {lazy}\n"
        f"    ctx.report({top}.BASE, 0)\n    return {top}.BASE + {lazy}.BONUS\n"
    )
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(space_data(f"{code / 'charlm.py'}:train")))
    request = _request(space, tmp_path, n_trials=1, study="imports")
    launch(request)
    trials = load(request.storage, "imports").get_trials()
    # the worker imported the file (top-level import) and ran it (import inside the function)
    assert [(t.state, t.value) for t in trials] == [(TrialState.COMPLETE, 1.5)], [
        t.user_attrs.get("gradsweep.fail.reason") for t in trials
    ]
