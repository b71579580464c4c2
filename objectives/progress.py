"""Training progress in a checkpoint, with one epoch convention: :func:`progress_state`, :func:`restore_progress`.

A progress checkpoint holds everything a resumed objective needs to go on as if it had never
stopped: the model (``trainer.model``), the trainer's state (optimizer, staged scheduler,
GradScaler, health monitor, global step), any other modules the objective keeps (MoCo's momentum
key encoder), the objective's own ``extra`` state (histories, score dicts) and ``epochs_done``.

The convention: ``epochs_done`` is the number of epochs completed, which is also the 1-based
number of the last one, since :meth:`Trainer.epochs <gradsweep.objectives.trainer.Trainer.epochs>`
numbers epochs from 1. Save ``epochs_done=run.epoch`` after an epoch, and loop over
``trainer.epochs(start_epoch=resumed.epochs_done)``: it skips exactly the epochs done.
Objectives go through :meth:`TrialContext.save_progress
<gradsweep.objectives.context.TrialContext.save_progress>` and :meth:`TrialContext.resume
<gradsweep.objectives.context.TrialContext.resume>`, which wrap these two functions around the
trial's :class:`~gradsweep.objectives.checkpoint.CheckpointStore`.

A checkpoint without ``format == PROGRESS_FORMAT`` (one written by an older gradsweep, whose
objectives counted epochs from 0 or from 1, or a raw ``ctx.save_checkpoint`` dict) is refused
with :class:`CheckpointFormatError` rather than resumed at a guessed epoch.

Example:
    >>> import torch
    >>> from gradsweep.spaces.trial_config import MetricConfig, StageConfig, TowerConfig, TrialConfig
    >>> from gradsweep.objectives.context import TrialContext
    >>> config = TrialConfig(objective="user", metric=MetricConfig(name="neg_mse"),
    ...     towers=[TowerConfig(name="all", patterns=["*"], lr=0.01)], stages=[StageConfig(name="s", epochs=3)])
    >>> ctx = TrialContext(config, device="cpu")
    >>> trainer = ctx.trainer(torch.nn.Linear(2, 1), steps_per_epoch=1)
    >>> for run in trainer.epochs():
    ...     trainer.step(trainer.model(torch.ones(1, 2)).sum() ** 2)
    ...     state = progress_state(trainer, epochs_done=run.epoch, extra={"losses": [0.5] * run.epoch})
    ...     if run.epoch == 2:
    ...         break
    >>> fresh = ctx.trainer(torch.nn.Linear(2, 1), steps_per_epoch=1)
    >>> resumed = restore_progress(state, fresh)
    >>> resumed.epochs_done, resumed.extra, fresh.global_step
    (2, {'losses': [0.5, 0.5]}, 2)
    >>> [run.epoch for run in fresh.epochs(start_epoch=resumed.epochs_done)]
    [3]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from gradsweep.errors import UserError
from gradsweep.objectives.trainer import Trainer

PROGRESS_FORMAT = 1
"""The ``format`` a progress checkpoint carries; bumped whenever its layout or convention changes."""


class CheckpointFormatError(UserError):
    """A checkpoint that is not a progress checkpoint of :data:`PROGRESS_FORMAT`, or lacks a module."""


@dataclass(frozen=True)
class Resumed:
    """Where a trial goes on from.

    Attributes:
        epochs_done: epochs already trained (the 1-based number of the last one; 0 for a fresh
            start): pass it as ``trainer.epochs(start_epoch=...)``.
        extra: the objective's own state as it was saved (empty for a fresh start).
    """

    epochs_done: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def planned_epochs(trainer: Trainer) -> int:
    """The number of epochs ``trainer.epochs()`` yields over every stage."""
    return sum(stage.epochs for stage in trainer.stages())


def progress_state(
    trainer: Trainer,
    *,
    epochs_done: int,
    modules: Mapping[str, nn.Module] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint of a trial after ``epochs_done`` epochs.

    Args:
        trainer: the trial's trainer; its model is saved with it.
        epochs_done: epochs completed, i.e. ``run.epoch`` of the epoch just finished.
        modules: other modules to save by name (not trained by the optimizer, e.g. an EMA copy).
        extra: the objective's own state (numbers, strings, lists, dicts, tensors).

    Returns:
        A dict for :meth:`CheckpointStore.save <gradsweep.objectives.checkpoint.CheckpointStore.save>`.

    Raises:
        ValueError: if ``epochs_done`` is negative or more than the epochs the trainer plans.
    """
    planned = planned_epochs(trainer)
    if not 0 <= int(epochs_done) <= planned:
        raise ValueError(
            f"epochs_done must be between 0 and {planned} (the trainer's epochs) but got {epochs_done}"
        )
    return {
        "format": PROGRESS_FORMAT,
        "epochs_done": int(epochs_done),
        "model": trainer.model.state_dict(),
        "trainer": trainer.state_dict(),
        "modules": {name: module.state_dict() for name, module in (modules or {}).items()},
        "extra": dict(extra or {}),
    }


def restore_progress(
    state: Mapping[str, Any],
    trainer: Trainer,
    *,
    modules: Mapping[str, nn.Module] | None = None,
    origin: str = "checkpoint",
) -> Resumed:
    """Load a :func:`progress_state` checkpoint into ``trainer``, its model and ``modules``.

    Args:
        state: the checkpoint.
        trainer: a trainer built like the saved one; its model and state are overwritten.
        modules: the same names as given to :func:`progress_state`.
        origin: names the checkpoint in error messages (e.g. its directory).

    Returns:
        The epochs done and the saved ``extra``.

    Raises:
        CheckpointFormatError: if ``state`` is not a progress checkpoint of :data:`PROGRESS_FORMAT`
            or its modules differ from ``modules``.
    """
    found = state.get("format")
    if found != PROGRESS_FORMAT:
        raise CheckpointFormatError(
            f"{origin} is not a gradsweep progress checkpoint of format {PROGRESS_FORMAT} (format: {found!r}; "
            f"keys: {', '.join(sorted(map(str, state)))}); it was written by another gradsweep version or "
            f"by ctx.save_checkpoint: delete it to start the trial over"
        )
    wanted, saved = sorted(modules or {}), sorted(state["modules"])
    if wanted != saved:
        raise CheckpointFormatError(f"{origin} holds modules {saved} but the objective restores {wanted}")
    trainer.model.load_state_dict(state["model"])
    for name, module in (modules or {}).items():
        module.load_state_dict(state["modules"][name])
    trainer.load_state_dict(state["trainer"])
    return Resumed(int(state["epochs_done"]), dict(state["extra"]))
