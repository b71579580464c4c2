"""What an objective gets besides its config: :class:`TrialContext`.

The context owns the device, AMP autocast, seeding, checkpoints and the reporter;
:meth:`TrialContext.trainer` builds the per-step kit (:class:`~gradsweep.objectives.trainer.Trainer`)
for any ``nn.Module`` and declares its step count to the reporter. :meth:`TrialContext.save_progress`
and :meth:`TrialContext.resume` checkpoint and restore a trial with one epoch convention
(:mod:`~gradsweep.objectives.progress`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gradsweep.objectives.checkpoint import CheckpointStore
from gradsweep.objectives.distributed import Place, current_place, shard
from gradsweep.objectives.health.verdict import HealthReport
from gradsweep.objectives.progress import Resumed, progress_state, restore_progress
from gradsweep.objectives.reporting import NullReporter, Reporter
from gradsweep.objectives.trainer import Trainer
from gradsweep.spaces.trial_config import TrialConfig

DEVICE_ENV = "GRADSWEEP_DEVICE"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else ``$GRADSWEEP_DEVICE``, else ``cuda`` when available, else ``cpu``."""
    chosen = device or os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(chosen)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class TrialContext:
    """Everything an objective needs besides its config.

    Creating a context seeds Python, NumPy and torch with ``config.seed``.

    Args:
        config: the trial's resolved config.
        reporter: where :meth:`report` goes (default: a :class:`NullReporter`).
        device: overrides ``$GRADSWEEP_DEVICE`` and the CUDA-if-available default.
        checkpoint_dir: where :meth:`save_checkpoint` writes; ``None`` disables checkpoints.
        logger: defaults to ``logging.getLogger("gradsweep.objective")``.
        place: this worker's rank and world size in a multi-worker (DDP) trial; default: read from
            an initialised ``torch.distributed`` group, else a single process. Only rank 0
            writes checkpoints (every rank loads them) and its reports are the trial's.

    Raises:
        TypeError: if ``reporter`` does not meet the :class:`Reporter` protocol.
        ValueError: if ``config.workers`` differs from the world size (the linear LR scaling rule
            and the global batch count ``config.workers``).
    """

    def __init__(
        self,
        config: TrialConfig,
        *,
        reporter: Reporter | None = None,
        device: str | torch.device | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        logger: logging.Logger | None = None,
        place: Place | None = None,
    ) -> None:
        self.place = place if place is not None else current_place()
        if config.workers != self.place.world_size:
            raise ValueError(
                f"workers: this config is for {config.workers} DDP worker(s) per trial (batch_size is per "
                f"worker) but runs on {self.place.world_size}; run it in a sweep with --workers-per-trial "
                f"{config.workers}, or for {self.place.world_size} set workers: {self.place.world_size} and "
                f"batch_size: {config.for_workers(self.place.world_size).batch_size} (the same global batch)"
            )
        if reporter is not None and not isinstance(reporter, Reporter):
            raise TypeError(
                f"reporter must define report(value, step, health) and declare_total_steps(total) "
                f"(the Reporter protocol) but {type(reporter).__name__} does not"
            )
        self.config = config
        self.reporter: Reporter = reporter if reporter is not None else NullReporter()
        self.device = resolve_device(device)
        self.checkpoints = CheckpointStore(Path(checkpoint_dir)) if checkpoint_dir is not None else None
        self.log = logger or logging.getLogger("gradsweep.objective")
        self._trainer: Trainer | None = None
        seed_everything(config.seed)

    # --- the worker's place (a DDP trial runs one context per worker) -----------------------
    @property
    def rank(self) -> int:
        """This worker's rank (0 in a single process)."""
        return self.place.rank

    @property
    def world_size(self) -> int:
        """The trial's workers (1 in a single process)."""
        return self.place.world_size

    @property
    def is_main(self) -> bool:
        """Rank 0: its reports are the trial's and it writes the checkpoints."""
        return self.place.is_main

    def shard(self, items: Any) -> Any:
        """This worker's contiguous part of ``items`` (a global batch of indices, a range).

        ``items`` of ``world_size * batch_size`` elements gives each worker ``batch_size``, and
        the workers together the batch one process would train on (see
        :func:`gradsweep.objectives.distributed.shard`).
        """
        return shard(items, self.place)

    def sampler(self, dataset: Any, *, shuffle: bool = True, seed: int | None = None) -> Any:
        """A ``DistributedSampler`` over ``dataset`` for this worker (call ``set_epoch`` each epoch).

        For a ``DataLoader(dataset, batch_size=config.batch_size, sampler=ctx.sampler(dataset))``;
        in a single process it samples the whole dataset. ``seed`` defaults to ``config.seed``.
        """
        from torch.utils.data.distributed import DistributedSampler

        return DistributedSampler(
            dataset,
            num_replicas=self.world_size,
            rank=self.rank,
            shuffle=shuffle,
            seed=self.config.seed if seed is None else seed,
            drop_last=True,
        )

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast`` per ``config.amp.dtype`` on CUDA; a no-op on CPU or with ``none``."""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(self.config.amp.dtype))
        if dtype is None or self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=dtype)

    def trainer(self, model: torch.nn.Module, steps_per_epoch: int) -> Trainer:
        """Move ``model`` to :attr:`device` (in place) and build its :class:`Trainer`.

        In a multi-worker trial the trainer wraps the model in ``DistributedDataParallel``: call
        ``trainer.wrapped(...)`` for the training forward (``trainer.model`` stays the plain model).
        """
        model.to(self.device)
        self._trainer = Trainer(
            model, self.config, steps_per_epoch=steps_per_epoch, device=self.device, place=self.place
        )
        self.declare_total_steps(self._trainer.total_steps)
        return self._trainer

    def declare_total_steps(self, total: int) -> None:
        """Tell the reporter the step of the final report (:meth:`trainer` does it for you).

        The pruner never stops a trial at a report at step ``total - 1`` or later: the value is
        then the trial's result, and stopping would save no step. Objectives without a :class:`Trainer`
        may call it themselves.

        Raises:
            ValueError: if ``total`` < 1.
        """
        if int(total) < 1:
            raise ValueError(f"total steps must be at least 1 but got {total}")
        self.reporter.declare_total_steps(int(total))

    @property
    def latest_health(self) -> HealthReport | None:
        """The newest health report of the newest trainer."""
        return self._trainer.latest_health if self._trainer is not None else None

    def report(self, value: float, step: int) -> None:
        """Send ``value`` at ``step`` with the latest health report; may raise :class:`TrialPruned`."""
        self.reporter.report(float(value), int(step), self.latest_health)

    def save_checkpoint(self, state: dict[str, Any]) -> Path | None:
        """Save ``state`` atomically (the newest two are kept); ``None`` without a checkpoint dir.

        On a worker other than rank 0 it writes nothing (the replicas are identical; rank 0's
        checkpoint is the trial's, and every worker loads it on a retry).
        """
        if self.checkpoints is None or not self.is_main:
            return None
        return self.checkpoints.save(state)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The newest loadable checkpoint, or ``None``."""
        return self.checkpoints.load() if self.checkpoints is not None else None

    def save_progress(
        self,
        trainer: Trainer,
        *,
        epochs_done: int,
        modules: Mapping[str, torch.nn.Module] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Path | None:
        """Checkpoint the trial after ``epochs_done`` epochs (``run.epoch`` of the epoch just trained).

        Saves ``trainer.model``, the trainer's state, ``modules`` and ``extra`` as one
        :func:`~gradsweep.objectives.progress.progress_state`; :meth:`resume` restores them.

        Args:
            trainer: the trial's trainer.
            epochs_done: epochs completed, which is the 1-based number of the last one.
            modules: other modules to save by name (e.g. an EMA copy the optimizer does not train).
            extra: the objective's own state (histories, scores).

        Returns:
            The checkpoint's path, or ``None`` without a checkpoint dir.

        Raises:
            ValueError: if ``epochs_done`` is negative or beyond the trainer's epochs.
        """
        state = progress_state(trainer, epochs_done=epochs_done, modules=modules, extra=extra)
        return self.save_checkpoint(state)

    def resume(self, trainer: Trainer, *, modules: Mapping[str, torch.nn.Module] | None = None) -> Resumed:
        """Restore the newest :meth:`save_progress` checkpoint into ``trainer``, its model and ``modules``.

        Args:
            trainer: the trial's freshly built trainer.
            modules: the same names as given to :meth:`save_progress`.

        Returns:
            Where to go on: ``trainer.epochs(start_epoch=resumed.epochs_done)`` and the saved
            ``extra``; ``Resumed()`` (0 epochs done, no extra) without a checkpoint.

        Raises:
            CheckpointFormatError: if the newest checkpoint is not a progress checkpoint of this
                gradsweep (e.g. one written before the format existed) or lacks one of ``modules``.
        """
        state = self.load_checkpoint()
        if state is None:
            return Resumed()
        origin = f"the newest checkpoint in {self.checkpoints.directory}"  # type: ignore[union-attr]
        resumed = restore_progress(state, trainer, modules=modules, origin=origin)
        self.log.info(
            "resumed after epoch %d (step %d) from %s", resumed.epochs_done, trainer.global_step, origin
        )
        return resumed
