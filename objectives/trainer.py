"""The per-step kit built from a :class:`TrialConfig` for one model: :class:`Trainer`.

``trainer.step(loss)`` is called once per micro-batch. Without gradient accumulation
(``accumulation_steps: 1``, the default) every call is the whole optimizer step of a gradsweep
trial: scaled backward, unscale, per-tower then global clipping, the health monitor's
observation, the optimizer step through the GradScaler, scaler update, ``zero_grad`` and the
staged scheduler's step. With ``accumulation_steps: N`` each call runs the scaled backward of
``loss / N``, and every N-th call then runs the rest once, on the gradients of all N
micro-batches, with the health monitor seeing the mean of their losses: N micro-batches of B
examples give the update of one batch of N*B (for a loss that is a mean over the batch and a
model without batch statistics). Stages, schedules, ``health.check_every``, ``global_step`` and
``steps_per_epoch`` all count optimizer steps. A sampled LR reaches ``param_group["lr"]``
through ``build_optimizer`` (the tower's effective LR) and then ``StagedScheduler.step``
(warmup, decay, stage multipliers), nothing else.

In a trial of several DDP workers (:class:`~gradsweep.objectives.distributed.Place` with a world
size above 1) the trainer wraps the model in ``DistributedDataParallel`` (:attr:`Trainer.wrapped`,
the module to call for the training forward): the backward of the last micro-batch of each
optimizer step averages the gradients over the workers, the ones before it run under
``no_sync`` (the trainer enters and leaves it between calls), and clipping, the GradScaler and
the health monitor then see the same averaged gradients on every worker. The monitor's loss is
the mean over the workers too, so every worker reaches the same verdict. A stage that freezes or
thaws a tower changes which parameters DDP must reduce: the wrapper is rebuilt then (DDP only
reduces the parameters that required a gradient when it was built).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from gradsweep.errors import UserError
from gradsweep.objectives.distributed import SINGLE, Place, mean_over_workers
from gradsweep.objectives.health.loss_mean import LossMean
from gradsweep.objectives.health.monitor import HealthMonitor
from gradsweep.objectives.health.verdict import HealthReport
from gradsweep.objectives.watch import StepWatch
from gradsweep.spaces.apply import Clipper, StagedScheduler, build_optimizer, build_scaler
from gradsweep.spaces.trial_config import StageConfig, TrialConfig


class WatchAttached(UserError, RuntimeError):
    """``trainer.step`` (or a second ``trainer.watch()``) while a :class:`StepWatch` owns the step."""


class WrapperBypassed(UserError, RuntimeError):
    """A multi-worker trial's optimizer step whose forward did not go through :attr:`Trainer.wrapped`."""


@dataclass(frozen=True)
class StageRun:
    """One stage as an objective loops over it: ``for _ in range(stage.steps)``."""

    index: int
    config: StageConfig
    steps: int
    epochs: int

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class EpochRun:
    """One epoch as an objective loops over it: ``for run in trainer.epochs(start_epoch=...)``.

    ``steps`` counts optimizer steps; ``micro_batches`` (``steps * accumulation_steps``) is the
    number of ``trainer.step(loss)`` calls the epoch takes.
    """

    stage: StageRun
    epoch: int
    steps: int
    accumulation_steps: int = 1

    @property
    def micro_batches(self) -> int:
        """``trainer.step`` calls in this epoch: ``for _ in range(run.micro_batches)``."""
        return self.steps * self.accumulation_steps


def stage_steps(stage: StageConfig, steps_per_epoch: int) -> int:
    """Optimizer steps in ``stage``: ``steps`` if given, else ``epochs * steps_per_epoch``."""
    return stage.steps if stage.steps is not None else int(stage.epochs or 0) * steps_per_epoch


def refuse_accumulation(config: TrialConfig, objective: str) -> None:
    """Refuse ``accumulation_steps`` > 1 for an objective whose loop calls ``trainer.step`` once per step.

    Such a loop would take one optimizer step per ``accumulation_steps`` calls and so train for a
    fraction of its schedule; refusing is better than a silently shorter run.

    Raises:
        ValueError: if ``config.accumulation_steps`` is not 1.
    """
    if config.accumulation_steps != 1:
        raise ValueError(
            f"accumulation_steps: objective {objective!r} does not accumulate gradients; give 1 "
            f"(got {config.accumulation_steps}), or a larger batch_size"
        )


class Trainer:
    """The per-step kit built from a :class:`TrialConfig` for one model.

    ``step(loss)``, once per micro-batch, runs the scaled backward; every
    ``config.accumulation_steps``-th call (every call by default) it then runs unscale, clip (per
    tower, then global), health observation, optimizer step through the scaler, scaler update,
    ``zero_grad``, scheduler step.

    Args:
        model: the model, already on ``device``.
        config: the trial's config.
        steps_per_epoch: optimizer steps per epoch (for epoch-based stages and schedules); with
            accumulation an epoch takes ``steps_per_epoch * accumulation_steps`` micro-batches.
        device: where training runs.
        scaler: the GradScaler to use (default: one built from the config for ``device``); the
            Lightning callback passes the one it hands to Lightning's precision plugin.
        place: this worker's place in a multi-worker trial (default: a single process).

    Raises:
        ValueError: if ``steps_per_epoch`` < 1.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrialConfig,
        *,
        steps_per_epoch: int,
        device: torch.device,
        scaler: torch.amp.GradScaler | None = None,
        place: Place = SINGLE,
    ) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be at least 1 but got {steps_per_epoch}")
        self.model = model
        self.config = config
        self.steps_per_epoch = steps_per_epoch
        self.optimizer = build_optimizer(model, config)
        self.scheduler = StagedScheduler(self.optimizer, config, steps_per_epoch, model=model)
        self.scaler = scaler if scaler is not None else build_scaler(config, device)
        self.clipper = Clipper(self.optimizer, config)
        self.monitor = (
            HealthMonitor(
                self.optimizer,
                config.health,
                clip=config.clip,
                towers=list(config.towers),
                scaler=self.scaler,
            )
            if config.health.enabled
            else None
        )
        self.accumulation_steps = config.accumulation_steps
        self.global_step = 0
        self.latest_health: HealthReport | None = None
        self._watch: StepWatch | None = None
        self._losses = LossMean()  # the micro-batches backpropagated since the last optimizer step
        self._stepped = False
        self.place = place
        self.device = device
        self._ddp: torch.nn.Module | None = None
        self._ddp_key: tuple[bool, ...] | None = None
        self._no_sync: contextlib.AbstractContextManager[Any] | None = None  # entered between micro-batches
        self._wrapped_forwards = 0  # forwards through the wrapper since the last optimizer step
        self._forward_hook: Any = None
        if place.distributed:
            self.wrapped  # noqa: B018 (builds DDP now: it makes every replica start from rank 0's weights)
            self._sync_next()

    # --- DDP ---------------------------------------------------------------------------
    @property
    def wrapped(self) -> torch.nn.Module:
        """The module to call for the training forward: ``DistributedDataParallel(model)`` in a trial
        of several workers, else :attr:`model` itself.

        Calling :attr:`model` directly in a multi-worker trial would skip DDP's gradient
        averaging (the replicas would drift apart). The wrapper is rebuilt when the set of
        parameters that require a gradient changed (a stage froze or thawed a tower).
        """
        if not self.place.distributed:
            return self.model
        key = tuple(p.requires_grad for p in self.model.parameters())
        if self._ddp is None or key != self._ddp_key:
            self._build_ddp(key)
        assert self._ddp is not None
        return self._ddp

    def _build_ddp(self, key: tuple[bool, ...]) -> None:
        from torch.nn.parallel import DistributedDataParallel

        in_no_sync = self._no_sync is not None
        self._leave_no_sync()
        if self._forward_hook is not None:
            self._forward_hook.remove()
            self._forward_hook = None
        if not any(key):  # a stage that trains nothing: nothing to reduce
            self._ddp = self.model
        else:
            ids = None
            if self.device.type == "cuda":  # "cuda" without an index is the current device (Ray sets it)
                ids = [self.device.index if self.device.index is not None else torch.cuda.current_device()]
            self._ddp = DistributedDataParallel(self.model, device_ids=ids)
            self._forward_hook = self._ddp.register_forward_pre_hook(self._count_forward)
        self._ddp_key = key
        if in_no_sync:
            self._enter_no_sync()

    def _count_forward(self, module: torch.nn.Module, args: Any) -> None:
        self._wrapped_forwards += 1

    def _check_wrapped(self) -> None:
        """Refuse an optimizer step none of whose micro-batches went through the DDP wrapper."""
        if self._wrapped_forwards == 0 and self._ddp is not self.model:  # (a stage training nothing has none)
            raise WrapperBypassed(
                f"step {self.global_step}: the training forward did not go through trainer.wrapped, so DDP "
                f"did not average the gradients and the {self.place.world_size} workers' replicas drift "
                "apart; call trainer.wrapped(...) instead of the model for the training forward"
            )
        self._wrapped_forwards = 0

    def _enter_no_sync(self) -> None:
        no_sync = getattr(self._ddp, "no_sync", None)  # (none when a stage trains nothing)
        if callable(no_sync):
            self._no_sync = no_sync()
            self._no_sync.__enter__()

    def _leave_no_sync(self) -> None:
        if self._no_sync is not None:
            self._no_sync.__exit__(None, None, None)
            self._no_sync = None

    def _sync_next(self) -> None:
        """Set up the wrapper for the next micro-batch: under ``no_sync`` unless it ends an optimizer step."""
        self._leave_no_sync()
        if self.accumulation_steps > 1 and self._losses.count < self.accumulation_steps - 1:
            self.wrapped  # noqa: B018 (builds the wrapper for the current stage)
            self._enter_no_sync()

    @property
    def stepped(self) -> bool:
        """Whether the last :meth:`step` call completed an optimizer step (always, without accumulation)."""
        return self._stepped

    @property
    def stage(self) -> StageConfig:
        """The stage the scheduler is in now."""
        return self.scheduler.stage

    @property
    def total_steps(self) -> int:
        """Optimizer steps over all stages."""
        return sum(stage_steps(s, self.steps_per_epoch) for s in self.config.stages)

    def stages(self) -> Iterator[StageRun]:
        """Yield each stage with its optimizer-step count, in order."""
        for i, stage in enumerate(self.config.stages):
            steps = stage_steps(stage, self.steps_per_epoch)
            yield StageRun(i, stage, steps, math.ceil(steps / self.steps_per_epoch))

    def epochs(self, *, start_epoch: int = 0) -> Iterator[EpochRun]:
        """Yield every epoch of every stage in order (1-based ``epoch`` over the whole run).

        The last epoch of a stage given in ``steps`` may be short. Epochs up to ``start_epoch``
        (already trained before a checkpoint) are skipped, so a resumed loop repeats nothing.
        """
        epoch = 0
        for stage in self.stages():
            done = 0
            for _ in range(stage.epochs):
                steps = min(self.steps_per_epoch, stage.steps - done)
                done += steps
                epoch += 1
                if epoch > start_epoch:
                    yield EpochRun(stage, epoch, steps, self.accumulation_steps)

    def watch(self) -> StepWatch:
        """Observe a loop that calls ``optimizer.step()`` itself instead of :meth:`step`.

        Hooks :attr:`optimizer` (and an enabled :attr:`scaler`) so each step feeds :attr:`monitor`
        as :meth:`step` would; the watch counts :attr:`global_step` and sets :attr:`latest_health`.
        See :mod:`gradsweep.objectives.watch` for the loop.

        In a multi-worker trial every backward through :attr:`wrapped` then averages the
        gradients; a loop that accumulates uses ``trainer.wrapped.no_sync()`` itself.

        Raises:
            WatchAttached: if a watch is already attached.
        """
        if self._watch is not None:
            raise WatchAttached("this trainer already has a watch attached; call watch.remove() first")
        if self.place.distributed:  # the loop owns the step: each backward syncs unless it uses no_sync
            self._leave_no_sync()
        return StepWatch(self.optimizer, self.monitor, clipper=self.clipper, scaler=self.scaler, trainer=self)

    def step(self, loss: torch.Tensor) -> HealthReport | None:
        """Backward of one micro-batch's ``loss``; an optimizer step every ``accumulation_steps`` calls.

        Without accumulation every call is an optimizer step. With ``accumulation_steps: N`` the
        loss is scaled by ``1 / N`` before the backward, and the N-th call clips, checks health
        (on the mean of the N losses, kept on the device) and steps the optimizer and scheduler.

        Args:
            loss: a scalar loss with a graph, the mean over the micro-batch.

        Returns:
            The monitor's report at a check step (always an optimizer step), else ``None``.

        Raises:
            WatchAttached: while a :meth:`watch` is attached (the loop owns the step then).
        """
        if self._watch is not None:
            raise WatchAttached(
                "trainer.step() with a watch attached would observe each step twice: call "
                "optimizer.step() yourself, or watch.remove() first"
            )
        n = self.accumulation_steps
        if n == 1:
            self.scaler.scale(loss).backward()
            health_loss = loss.detach()
        else:
            self.scaler.scale(loss / n).backward()
            self._losses.add(loss)
            if self._losses.count < n:
                self._stepped = False
                if self.place.distributed:
                    self._sync_next()
                return None
            health_loss = self._losses.take()
        if self.place.distributed:
            self._check_wrapped()
            if self.monitor is not None:  # (the same on every worker: one config)
                health_loss = mean_over_workers(health_loss)
        self.scaler.unscale_(self.optimizer)
        clip_result = self.clipper.clip()
        report = None
        if self.monitor is not None:
            report = self.monitor.observe(health_loss, clip_result, step=self.global_step)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.global_step += 1
        self._stepped = True
        if self.place.distributed:
            self._sync_next()
        if report is not None:
            self.latest_health = report
        return report

    def state_dict(self) -> dict[str, Any]:
        """Optimizer, scheduler, scaler, monitor and step (the model is saved separately).

        Raises:
            ValueError: in the middle of an accumulation: the gradients of the micro-batches since
                the last optimizer step are not saved, so save at an optimizer step (epoch ends are).
        """
        if self._losses.count:
            raise ValueError(
                f"cannot save the trainer in the middle of a gradient accumulation ({self._losses.count} of "
                f"{self.accumulation_steps} micro-batches since the last optimizer step); save when "
                "trainer.stepped is true, e.g. at the end of an epoch"
            )
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "monitor": self.monitor.state_dict() if self.monitor is not None else None,
            "global_step": self.global_step,
            "micro_batch": self._losses.count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (a checkpoint without ``micro_batch`` was saved at a step)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.monitor is not None and state.get("monitor") is not None:
            self.monitor.load_state_dict(state["monitor"])
        self.global_step = int(state["global_step"])
        self._losses = LossMean()  # state_dict saves only at an optimizer step (micro_batch 0)
