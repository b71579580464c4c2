"""Pause, thaw, continue: a real objective stopped at a report and continued from that report's
checkpoint ends with exactly the value of an uninterrupted run (the worker side, no Ray needed:
``send`` stands in for Ray, persisting each checkpoint it is handed as Ray does)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from gradsweep.search.engine.outcome import R_CKPT_STEP, R_FINAL, R_STEP, R_TRIAL, R_VALUE
from gradsweep.search.engine.ray.bridge import C_CONFIG, C_DEVICE, C_OBJECTIVE, C_RESUME
from gradsweep.search.engine.ray.trainable import run_trial
from gradsweep.spaces.sampling import resolve, suggest
from gradsweep.spaces.space import load_space


class Paused(Exception):
    """What stopping the worker at a report looks like to the objective (Ray ends the actor)."""


class FakeRay:
    """Takes reports like ``ray.tune.report``: persists each checkpoint, stops at ``pause_at``."""

    def __init__(self, store: Path, pause_at: int | None = None) -> None:
        self.store = store
        self.pause_at = pause_at
        self.results: list[dict[str, Any]] = []
        self.persisted: dict[int, Path] = {}

    def __call__(self, metrics: dict[str, Any], checkpoint: Any = None) -> None:
        self.results.append(dict(metrics))
        if checkpoint is not None:
            target = self.store / f"checkpoint_step{metrics[R_STEP]}"
            shutil.copytree(checkpoint.path, target)
            self.persisted[int(metrics[R_CKPT_STEP])] = target
        if self.pause_at is not None and not metrics[R_FINAL] and metrics[R_STEP] >= self.pause_at:
            raise Paused


def _config(objective: str) -> dict[str, Any]:
    space = load_space(objective)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3)).ask()
    config = resolve(space, suggest(space, trial), scale="tiny", seed=0)
    return {R_TRIAL: 0, C_CONFIG: config.to_dict(), C_OBJECTIVE: objective, C_DEVICE: "cpu"}


def test_paused_then_thawed_trial_ends_with_the_uninterrupted_value(tmp_path: Path) -> None:
    # moco: a model, a momentum key encoder beside it (ctx.save_progress modules) and a history (extra)
    torch.set_num_threads(1)
    config = _config("moco")
    whole = FakeRay(tmp_path / "whole")
    run_trial(config, checkpoint_every_s=0.0, send=whole, get_checkpoint=lambda: None)
    steps = [r[R_STEP] for r in whole.results if not r[R_FINAL]]
    assert len(steps) >= 3, steps
    pause_step = steps[1]  # the second report: early, with reports left to go
    first = FakeRay(tmp_path / "first", pause_at=pause_step)
    with pytest.raises(Paused):
        run_trial(config, checkpoint_every_s=0.0, send=first, get_checkpoint=lambda: None)
    # every report handed its checkpoint over (checkpoint_every_s 0), so the pause's report did
    assert pause_step in first.persisted
    second = FakeRay(tmp_path / "second")
    run_trial(
        {**config, C_RESUME: str(first.persisted[pause_step])},
        checkpoint_every_s=0.0,
        send=second,
        get_checkpoint=lambda: None,
    )
    continued = [r[R_STEP] for r in second.results if not r[R_FINAL]]
    # the thawed run goes on after the pause: no step is trained twice
    assert continued == [s for s in steps if s > pause_step]
    # and every report after the pause, and the final value, is the uninterrupted run's, exactly
    by_step = {r[R_STEP]: r[R_VALUE] for r in whole.results if not r[R_FINAL]}
    assert all(r[R_VALUE] == by_step[r[R_STEP]] for r in second.results if not r[R_FINAL])
    assert second.results[-1][R_FINAL] and second.results[-1][R_VALUE] == whole.results[-1][R_VALUE]
