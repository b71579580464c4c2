"""``--pruner freeze-thaw`` under a real local Ray: a pause keeps the checkpoint, nothing is left
RUNNING, an interrupted sweep's paused trial is thawed by ``resume`` and ends as if never paused.

The objective (``ft_curve`` of ``_support``) reports six points of a curve its LR fixes and
checkpoints at each; baselines put the trials in a known order. The three ``good`` configs end
near 1.0 on straight lines, so the learning-curve model predicts the ``poor`` one (LR 1e-4: a
straight line to 0.5) from its first report with a narrow interval far below the top quartile.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from gradsweep.search.attrs import PAUSE, PRUNE_KIND, PRUNE_REASON, THAW_OF
from gradsweep.search.engine.ray.launcher import LaunchRequest, launch
from gradsweep.search.engine.ray.resume import ResumeRequest, resume
from gradsweep.search.engine.ray.runtime import Resources
from gradsweep.spaces.space import load_space

from ._support import load

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("shared_ray")]

LR = {"good1": 0.01, "good2": 0.012, "good3": 0.008, "poor": 1e-4, "slow": 0.011}


def _space(make_space, objectives_file: Path) -> Path:
    return make_space(
        "ft_curve",
        towers=[
            {"name": "all", "patterns": ["*"], "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}}
        ],
        baselines={name: {"towers.all.lr": lr} for name, lr in LR.items()},
    )


def _steps_trained(objectives_file: Path, lr: float) -> list[int]:
    log = objectives_file.parent / f"steps-{lr:.6g}"
    return [int(x) for x in log.read_text().split()] if log.exists() else []


def test_pause_keeps_the_checkpoint_and_resume_thaws_the_paused_trial(
    make_space, objectives_file: Path, tmp_path: Path
) -> None:
    for log in objectives_file.parent.glob("steps-*"):
        log.unlink()
    slow = objectives_file.parent / "slow"
    slow.write_text("x")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    request = LaunchRequest(
        space=load_space(_space(make_space, objectives_file)),
        n_trials=5,
        baselines=tuple(LR),
        seed=0,
        pruner="freeze-thaw",
        storage=url,
        runs_dir=tmp_path / "runs",
        resources=Resources(concurrency=1),
        timeout_s=35,  # the fifth trial ("slow": a good config at 20 s a report) is running then
    )
    try:
        summary = launch(request)
    finally:
        slow.unlink()
    study = load(url)
    trials = {t.user_attrs.get("gradsweep.baseline"): t for t in study.get_trials()}
    # the sweep was interrupted, and nothing is left RUNNING: the slow trial is FAIL interrupted
    assert summary.interrupted
    assert all(t.state != TrialState.RUNNING for t in study.get_trials())
    assert trials["slow"].state == TrialState.FAIL
    # the good ones completed; the poor one was paused at its first report, not killed
    assert all(trials[g].state == TrialState.COMPLETE for g in ("good1", "good2", "good3"))
    poor = trials["poor"]
    assert poor.state == TrialState.PRUNED and poor.user_attrs[PRUNE_KIND] == "paused"
    assert poor.user_attrs[PRUNE_REASON].startswith("paused: predicted final")
    pause = poor.user_attrs[PAUSE]
    assert pause["step"] == 1 and pause["checkpoint_step"] == 1
    # ... with the checkpoint of that report kept on disk, for a thaw
    assert Path(pause["checkpoint"], "ckpt-000001.pt").is_file()
    assert _steps_trained(objectives_file, LR["poor"]) == [1]

    # three more configs finish (as a --join of another run could add them) that went exactly like
    # the poor one until the last report and ended on top: the model now gives the paused trial a chance
    dist = {"towers.all.lr": FloatDistribution(1e-4, 1.0, log=True)}
    for lr in (2e-4, 3e-4, 4e-4):
        curve = {**{k: k / 12 for k in range(1, 6)}, 6: 1.0}  # the poor curve, then a jump to the top
        study.add_trial(
            create_trial(
                params={"towers.all.lr": lr}, distributions=dist, value=1.0, intermediate_values=curve
            )
        )
    # no new config is left (5 wanted, 4 finished + 3 added): resume runs for the paused trial alone
    summary = resume(ResumeRequest(study=study.study_name, storage=url, runs_dir=tmp_path / "runs"))
    study = load(url)
    thaws = [t for t in study.get_trials() if t.user_attrs.get(THAW_OF) == poor.number]
    # resume thawed the paused trial first: one continuation, which completed
    assert len(thaws) == 1 and thaws[0].state == TrialState.COMPLETE
    thaw = thaws[0]
    assert thaw.number == 8  # 0-4 launched, 5-7 added: the resume's only trial
    # its curve is the paused one's first report, then its own five; steps 2..6 trained once each
    assert sorted(thaw.intermediate_values) == [1, 2, 3, 4, 5, 6]
    assert thaw.intermediate_values[1] == poor.intermediate_values[1]
    assert _steps_trained(objectives_file, LR["poor"]) == [1, 2, 3, 4, 5, 6]
    # and it ends where an uninterrupted run of the same config ends (a straight line to 0.5)
    assert thaw.value == pytest.approx(0.5)
    assert thaw.params == poor.params
    # nothing RUNNING after the resume either, and no new config was sampled (a thaw is none)
    assert all(t.state != TrialState.RUNNING for t in study.get_trials())
    assert len(study.get_trials()) == 9 and summary.finished == 7
