"""Progress checkpoints: ``ctx.save_progress`` / ``ctx.resume`` and the one epoch convention."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gradsweep.objectives.api import CheckpointFormatError, Resumed, Trainer, TrialContext
from gradsweep.objectives.progress import PROGRESS_FORMAT, planned_epochs, progress_state, restore_progress
from gradsweep.spaces.trial_config import TrialConfig
from tests.objectives._support import Interrupted

STEPS, STEPS_PER_EPOCH = 8, 2  # four epochs of two steps


def _kit(config: TrialConfig, checkpoint_dir: Path | None) -> tuple[TrialContext, Trainer]:
    ctx = TrialContext(config, device="cpu", checkpoint_dir=checkpoint_dir)
    return ctx, ctx.trainer(torch.nn.Linear(4, 1), steps_per_epoch=STEPS_PER_EPOCH)


def _train(
    config: TrialConfig,
    batch: tuple[torch.Tensor, torch.Tensor],
    checkpoint_dir: Path,
    *,
    crash_after: int | None = None,
) -> tuple[Trainer, list[int], list[float]]:
    """An objective-shaped loop: resume, train the remaining epochs, save progress after each.

    Returns the trainer, the epochs trained in this call and the loss history (saved + new).
    """
    ctx, trainer = _kit(config, checkpoint_dir)
    resumed = ctx.resume(trainer)
    losses = list(resumed.extra.get("losses", []))
    trained = []
    x, y = batch
    for run in trainer.epochs(start_epoch=resumed.epochs_done):
        for _ in range(run.steps):
            loss = F.mse_loss(trainer.model(x), y)
            trainer.step(loss)
        trained.append(run.epoch)
        losses.append(float(loss.detach()))
        ctx.save_progress(trainer, epochs_done=run.epoch, extra={"losses": losses})
        if run.epoch == crash_after:
            raise Interrupted(f"after epoch {run.epoch}")
    return trainer, trained, losses


def test_round_trip_restores_model_trainer_modules_and_extra(
    make_linear_config: Callable[..., TrialConfig],
    tmp_path: Path,
    regression_batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    config = make_linear_config(steps=STEPS, check_every=1)
    ctx, trainer = _kit(config, tmp_path)
    ema = torch.nn.Linear(4, 1)
    x, y = regression_batch
    for _ in range(3):
        trainer.step(F.mse_loss(trainer.model(x), y))
    ctx.save_progress(trainer, epochs_done=1, modules={"ema": ema}, extra={"scores": {"r2": 0.5}, "tag": "a"})

    fresh_ctx, fresh = _kit(config, tmp_path)
    fresh_ema = torch.nn.Linear(4, 1)
    resumed = fresh_ctx.resume(fresh, modules={"ema": fresh_ema})
    # the epochs done and the objective's own state come back as saved
    assert resumed == Resumed(1, {"scores": {"r2": 0.5}, "tag": "a"})
    # the model and the extra module hold the saved weights
    assert torch.equal(fresh.model.weight, trainer.model.weight) and torch.equal(fresh_ema.weight, ema.weight)
    # the trainer's step, optimizer moments, scheduler LR and health monitor are restored
    assert fresh.global_step == trainer.global_step == 3
    saved_moment = trainer.optimizer.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(fresh.optimizer.state_dict()["state"][0]["exp_avg"], saved_moment)
    assert fresh.optimizer.param_groups[0]["lr"] == trainer.optimizer.param_groups[0]["lr"]
    assert fresh.monitor is not None and trainer.monitor is not None
    restored, saved = fresh.monitor.state_dict()["judge"], trainer.monitor.state_dict()["judge"]
    # (compared as JSON: the first check has no best loss yet, and NaN != NaN)
    assert json.dumps(restored) == json.dumps(saved) and len(saved["history"]) == 3 and saved["checks"] == 3


def test_checkpoint_stores_epochs_done_as_the_one_based_epoch(
    make_linear_config: Callable[..., TrialConfig],
    tmp_path: Path,
    regression_batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    config = make_linear_config(steps=STEPS)
    with pytest.raises(Interrupted):
        _train(config, regression_batch, tmp_path, crash_after=2)
    state = TrialContext(config, device="cpu", checkpoint_dir=tmp_path).load_checkpoint()
    assert state is not None
    # after the second epoch (run.epoch == 2) the checkpoint says two epochs are done, in this format
    assert state["epochs_done"] == 2 and state["format"] == PROGRESS_FORMAT
    # and the trainer state in it is at the end of epoch 2
    assert state["trainer"]["global_step"] == 2 * STEPS_PER_EPOCH


def test_resume_skips_exactly_the_epochs_done(
    make_linear_config: Callable[..., TrialConfig],
    tmp_path: Path,
    regression_batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    config = make_linear_config(steps=STEPS)
    straight, straight_epochs, straight_losses = _train(config, regression_batch, tmp_path / "straight")
    with pytest.raises(Interrupted):
        _train(config, regression_batch, tmp_path / "crashed", crash_after=2)
    resumed, resumed_epochs, resumed_losses = _train(config, regression_batch, tmp_path / "crashed")
    # the straight run trains all four epochs; the rerun only the two the crash left
    assert straight_epochs == [1, 2, 3, 4] and resumed_epochs == [3, 4]
    # and the rerun ends bit for bit where the straight run ends, with the same history
    assert torch.equal(resumed.model.weight, straight.model.weight) and resumed.global_step == STEPS
    assert resumed_losses == straight_losses


def test_resume_after_the_last_epoch_trains_nothing(
    make_linear_config: Callable[..., TrialConfig],
    tmp_path: Path,
    regression_batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    config = make_linear_config(steps=STEPS)
    _, _, losses = _train(config, regression_batch, tmp_path)
    _, trained, again = _train(config, regression_batch, tmp_path)
    # a trial resumed from its final checkpoint repeats no epoch and keeps its history
    assert trained == [] and again == losses


def test_missing_checkpoint_is_a_fresh_start(
    make_linear_config: Callable[..., TrialConfig], tmp_path: Path
) -> None:
    config = make_linear_config(steps=STEPS)
    ctx, trainer = _kit(config, tmp_path / "empty")
    before = trainer.model.weight.detach().clone()
    # an empty (not yet created) checkpoint directory resumes nothing and leaves the model alone
    assert ctx.resume(trainer) == Resumed(0, {}) and torch.equal(trainer.model.weight, before)
    without, trainer = _kit(config, None)
    # without a checkpoint directory, saving is a no-op and there is nothing to resume
    assert without.save_progress(trainer, epochs_done=1) is None and without.resume(trainer) == Resumed()


def test_a_checkpoint_of_the_old_layout_is_refused(
    make_linear_config: Callable[..., TrialConfig], tmp_path: Path
) -> None:
    config = make_linear_config(steps=STEPS)
    ctx, trainer = _kit(config, tmp_path)
    ctx.save_checkpoint(
        {"model": trainer.model.state_dict(), "trainer": trainer.state_dict(), "epoch": 0, "scores": {}}
    )
    # a checkpoint without the format (epochs counted from 0 or 1) is refused, naming the directory
    with pytest.raises(CheckpointFormatError, match=rf"{tmp_path} is not a gradsweep progress checkpoint"):
        ctx.resume(trainer)


def test_modules_must_match_the_saved_ones(make_linear_config: Callable[..., TrialConfig]) -> None:
    _, trainer = _kit(make_linear_config(steps=STEPS), None)
    state = progress_state(trainer, epochs_done=0, modules={"key": torch.nn.Linear(4, 1)})
    # restoring without the saved module names both lists instead of dropping the key encoder
    with pytest.raises(
        CheckpointFormatError, match=r"holds modules \['key'\] but the objective restores \[\]"
    ):
        restore_progress(state, trainer)


@pytest.mark.parametrize(("steps", "epochs"), [(8, 4), (7, 4), (1, 1)])
def test_planned_epochs_counts_what_trainer_epochs_yields(
    make_linear_config: Callable[..., TrialConfig], steps: int, epochs: int
) -> None:
    _, trainer = _kit(make_linear_config(steps=steps), None)
    # a stage of 7 steps at 2 per epoch ends with a short fourth epoch, which counts
    assert planned_epochs(trainer) == epochs == len(list(trainer.epochs()))


@pytest.mark.parametrize("epochs_done", [-1, STEPS // STEPS_PER_EPOCH + 1])
def test_epochs_done_outside_the_plan_is_refused(
    make_linear_config: Callable[..., TrialConfig], epochs_done: int
) -> None:
    _, trainer = _kit(make_linear_config(steps=STEPS), None)
    # only 0..4 epochs can be done in a four-epoch plan
    with pytest.raises(ValueError, match=r"epochs_done must be between 0 and 4"):
        progress_state(trainer, epochs_done=epochs_done)
