"""The bridge's freeze-thaw paths driven by hand (no Ray): pause with and without a checkpoint,
thaw order, a vanished checkpoint, WAIT vs finished, no thaw after the sweep stopped."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from gradsweep.search.attrs import PAUSE, PRUNE_KIND, PRUNE_REASON, THAW_OF
from gradsweep.search.engine.ray.bridge import C_RESUME, WAIT, StudyBridge
from gradsweep.search.freeze_thaw import FreezeThawPruner
from gradsweep.search.pruner import HealthPruner

from ._support import make_bridge


def _bridge(n_trials: int = 6) -> StudyBridge:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    return make_bridge(study, HealthPruner(FreezeThawPruner()), n_trials=n_trials)


def _run(bridge: StudyBridge, ray_id: str, values: list[float], *, checkpoint: str | None = None) -> bool:
    """Report ``values`` at steps 1.. (each with a checkpoint), then end the trial as Ray would.

    Returns whether the bridge stopped it early."""
    bridge.on_result(ray_id, {"gs_value": 0.0, "gs_step": 0, "gs_total_steps": 6})  # declares 6 steps
    stopped = False
    for k, v in enumerate(values, start=1):
        if bridge.on_result(ray_id, {"gs_value": v, "gs_step": k, "gs_checkpoint_step": k}):
            stopped = True
            break
    bridge.note_checkpoint(ray_id, checkpoint)
    final = (
        None
        if stopped
        else {"gs_final": True, "gs_outcome": "complete", "gs_value": values[-1], "gs_step": 6}
    )
    bridge.finish(ray_id, final)
    return stopped


def _good(bridge: StudyBridge, top: float) -> None:
    assert bridge.ask(f"good-{top}") is not None
    assert not _run(bridge, f"good-{top}", [top * k / 6 for k in range(1, 7)])


def test_a_pause_keeps_its_checkpoint_and_without_one_it_is_a_prune(tmp_path: Path) -> None:
    bridge = _bridge()
    for top in (1.0, 0.98, 0.99):
        _good(bridge, top)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    bridge.ask("poor")
    # a straight line to 0.5 against three to ~1.0: paused at its first report
    assert _run(bridge, "poor", [0.5 * k / 6 for k in range(1, 7)], checkpoint=str(ckpt))
    poor = bridge.study.trials[3]
    assert poor.state == TrialState.PRUNED and poor.user_attrs[PRUNE_KIND] == "paused"
    assert poor.user_attrs[PAUSE] == {"step": 1, "checkpoint": str(ckpt), "checkpoint_step": 1}
    assert poor.user_attrs[PRUNE_REASON].endswith("checkpoint at step 1 kept")
    bridge.ask("poor2")
    # the same curve with no checkpoint handed to Ray: nothing to thaw from, so a plain prune
    assert _run(bridge, "poor2", [0.5 * k / 6 for k in range(1, 7)], checkpoint=None)
    poor2 = bridge.study.trials[4]
    assert poor2.user_attrs[PRUNE_KIND] == "underperforming" and PAUSE not in poor2.user_attrs
    assert "saved no checkpoint" in poor2.user_attrs[PRUNE_REASON]


def _with_late_bloomers(bridge: StudyBridge) -> None:
    """Three trials that went like the poor one until the end, then finished on top."""
    dist = bridge.study.trials[0].distributions
    for i in range(3):
        bridge.study.add_trial(
            optuna.trial.create_trial(
                params={"towers.all.lr": 2e-4 * (i + 1)},
                distributions=dist,
                value=1.0,
                intermediate_values={**{k: 0.5 * k / 6 for k in range(1, 6)}, 6: 1.0},
            )
        )


def test_a_paused_trial_the_model_changes_its_mind_on_is_thawed_first(tmp_path: Path) -> None:
    bridge = _bridge()
    for top in (1.0, 0.98, 0.99):
        _good(bridge, top)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    bridge.ask("poor")
    assert _run(bridge, "poor", [0.5 * k / 6 for k in range(1, 7)], checkpoint=str(ckpt))
    # nothing yet gives the paused trial a chance: the next ask samples a new config
    fresh = bridge.ask("new")
    assert isinstance(fresh, dict) and C_RESUME not in fresh
    _run(bridge, "new", [1.0 * k / 6 for k in range(1, 7)])
    _with_late_bloomers(bridge)
    bridge._changes += 1  # the study changed outside the bridge (another run joined)
    thaw = bridge.ask("thaw")
    # now it is thawed before any new config: from its checkpoint, as a new trial pointing at it
    assert isinstance(thaw, dict) and thaw[C_RESUME] == str(ckpt)
    trial = bridge.study.trials[thaw["gs_trial"]]
    assert trial.state == TrialState.RUNNING and trial.user_attrs[THAW_OF] == 3
    # with its curve up to the checkpoint and the paused trial's config
    assert trial.intermediate_values == {0: 0.0, 1: 0.5 / 6}
    assert thaw["gs_config"] == bridge.study.trials[3].user_attrs["gradsweep.config"]
    # its next reports go on from step 2; the copied step is not reported again
    bridge.on_result("thaw", {"gs_value": 0.9, "gs_step": 1})
    assert bridge.study.trials[thaw["gs_trial"]].intermediate_values[1] == 0.5 / 6
    bridge.finish("thaw", {"gs_final": True, "gs_outcome": "complete", "gs_value": 0.5, "gs_step": 6})
    assert bridge.study.trials[thaw["gs_trial"]].state == TrialState.COMPLETE
    # a thaw is no new config: the tally counts configs
    assert bridge.tally.finished == 5


def test_a_vanished_checkpoint_is_not_thawed_and_a_stopped_sweep_thaws_nothing(tmp_path: Path) -> None:
    bridge = _bridge()
    for top in (1.0, 0.98, 0.99):
        _good(bridge, top)
    bridge.ask("poor")
    assert _run(bridge, "poor", [0.5 * k / 6 for k in range(1, 7)], checkpoint=str(tmp_path / "gone"))
    _with_late_bloomers(bridge)
    bridge._changes += 1
    # the checkpoint directory does not exist: the trial stays paused, a new config is sampled
    config = bridge.ask("next")
    assert isinstance(config, dict) and C_RESUME not in config
    assert 3 in bridge._unthawable
    bridge.finish("next", None)  # interrupted
    ckpt = tmp_path / "gone"
    ckpt.mkdir()
    bridge._unthawable.clear()
    bridge.aborted = "stopped for the test"
    bridge._changes += 1
    # after an abort nothing starts, thaw or new
    assert bridge.ask("after") is None


def test_wait_while_trials_run_then_finished(tmp_path: Path) -> None:
    bridge = _bridge(n_trials=1)
    assert isinstance(bridge.ask("only"), dict)
    # no new config left, but the running trial may still make a paused one worth thawing
    assert bridge.ask("other") == WAIT
    _run(bridge, "only", [k / 6 for k in range(1, 7)])
    # nothing running and nothing to thaw: the searcher is finished
    assert bridge.ask("other") is None
