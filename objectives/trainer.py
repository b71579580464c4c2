"""The per-step kit built from a :class:`TrialConfig` for one model: :class:`Trainer`.

``trainer.step(loss)`` is the whole optimizer step of a gradsweep trial: scaled backward,
unscale, per-tower then global clipping, the health monitor's observation, the optimizer step
through the GradScaler, scaler update, ``zero_grad`` and the staged scheduler's step. A sampled
LR reaches ``param_group["lr"]`` through ``build_optimizer`` (the tower's effective LR) and then
``StagedScheduler.step`` (warmup, decay, stage multipliers), nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from gradsweep.objectives.health.monitor import HealthMonitor
from gradsweep.objectives.health.verdict import HealthReport
from gradsweep.objectives.watch import StepWatch
from gradsweep.spaces.apply import Clipper, StagedScheduler, build_optimizer, build_scaler
from gradsweep.spaces.trial_config import StageConfig, TrialConfig


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
    """One epoch as an objective loops over it: ``for run in trainer.epochs(start_epoch=...)``."""

    stage: StageRun
    epoch: int
    steps: int


def stage_steps(stage: StageConfig, steps_per_epoch: int) -> int:
    """Optimizer steps in ``stage``: ``steps`` if given, else ``epochs * steps_per_epoch``."""
    return stage.steps if stage.steps is not None else int(stage.epochs or 0) * steps_per_epoch


class Trainer:
    """The per-step kit built from a :class:`TrialConfig` for one model.

    ``step(loss)`` runs: scaled backward, unscale, clip (per tower, then global), health
    observation, optimizer step through the scaler, scaler update, ``zero_grad``, scheduler step.

    Args:
        model: the model, already on ``device``.
        config: the trial's config.
        steps_per_epoch: optimizer steps per epoch (for epoch-based stages and schedules).
        device: where training runs.

    Raises:
        ValueError: if ``steps_per_epoch`` < 1.
    """

    def __init__(
        self, model: torch.nn.Module, config: TrialConfig, *, steps_per_epoch: int, device: torch.device
    ) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be at least 1 but got {steps_per_epoch}")
        self.model = model
        self.config = config
        self.steps_per_epoch = steps_per_epoch
        self.optimizer = build_optimizer(model, config)
        self.scheduler = StagedScheduler(self.optimizer, config, steps_per_epoch, model=model)
        self.scaler = build_scaler(config, device)
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
        self.global_step = 0
        self.latest_health: HealthReport | None = None
        self._watch: StepWatch | None = None

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
                    yield EpochRun(stage, epoch, steps)

    def watch(self) -> StepWatch:
        """Observe a loop that calls ``optimizer.step()`` itself instead of :meth:`step`.

        Hooks :attr:`optimizer` (and an enabled :attr:`scaler`) so each step feeds :attr:`monitor`
        as :meth:`step` would; the watch counts :attr:`global_step` and sets :attr:`latest_health`.
        See :mod:`gradsweep.objectives.watch` for the loop.

        Raises:
            RuntimeError: if a watch is already attached.
        """
        if self._watch is not None:
            raise RuntimeError("this trainer already has a watch attached; call watch.remove() first")
        return StepWatch(self.optimizer, self.monitor, clipper=self.clipper, scaler=self.scaler, trainer=self)

    def step(self, loss: torch.Tensor) -> HealthReport | None:
        """One optimizer step from ``loss``; returns the health report when one is due.

        Args:
            loss: a scalar loss with a graph.

        Returns:
            The monitor's report at a check step, else ``None``.

        Raises:
            RuntimeError: while a :meth:`watch` is attached (the loop owns the step then).
        """
        if self._watch is not None:
            raise RuntimeError(
                "trainer.step() with a watch attached would observe each step twice: call "
                "optimizer.step() yourself, or watch.remove() first"
            )
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        clip_result = self.clipper.clip()
        report = None
        if self.monitor is not None:
            report = self.monitor.observe(loss.detach(), clip_result, step=self.global_step)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.global_step += 1
        if report is not None:
            self.latest_health = report
        return report

    def state_dict(self) -> dict[str, Any]:
        """Optimizer, scheduler, scaler, monitor and step (the model is saved separately)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "monitor": self.monitor.state_dict() if self.monitor is not None else None,
            "global_step": self.global_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.monitor is not None and state.get("monitor") is not None:
            self.monitor.load_state_dict(state["monitor"])
        self.global_step = int(state["global_step"])
