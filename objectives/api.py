"""The objective API: what a training function gets, and how it reports back.

An objective is ``objective(config: TrialConfig, ctx: TrialContext) -> float``. The context
owns the device, AMP autocast, seeding, checkpoints and the reporter; :meth:`TrialContext.trainer`
builds the per-step kit (optimizer, staged scheduler, GradScaler, clipper, health monitor)
from the config for any ``nn.Module``.

Example (a complete bring-your-own objective)::

    def objective(config, ctx):
        model = torch.nn.Linear(4, 1)
        x, y = torch.randn(64, 4), torch.randn(64, 1)
        trainer = ctx.trainer(model, steps_per_epoch=1)     # moves model to ctx.device
        for _ in range(trainer.total_steps):
            with ctx.autocast():
                loss = torch.nn.functional.mse_loss(model(x.to(ctx.device)), y.to(ctx.device))
            trainer.step(loss)
            ctx.report(-loss.item(), trainer.global_step)    # may raise TrialPruned
        return -loss.item()

:meth:`TrialContext.trainer` declares ``trainer.total_steps`` to the reporter, and the pruner
never stops a trial at its final report (a step of ``total_steps - 1`` or more, so steps counted
from 0 or from 1 both work): its value is then the trial's result, and stopping would save no step.

Reporters decide nothing about health themselves except :class:`OptunaReporter`, which asks the
study's pruner (``trial.should_prune()``, e.g. ``search.pruner.HealthPruner``) after writing
the health attrs of Contract 4.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import optuna
import torch

from objectives.checkpoint import CheckpointStore
from spaces.trial_config import StageConfig, TrialConfig

if TYPE_CHECKING:
    from search.health import HealthReport

DEVICE_ENV = "GRADSWEEP_DEVICE"
PRUNE_KINDS = ("unstable", "underperforming")


class TrialPruned(optuna.TrialPruned):
    """Stop signal raised by a reporter; carries why.

    Args:
        kind: ``"unstable"`` (health rules) or ``"underperforming"`` (the base pruner).
        reason: one human line, e.g. ``text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks``.

    Raises:
        ValueError: if ``kind`` is not one of ``unstable``, ``underperforming``.
    """

    def __init__(self, kind: str, reason: str) -> None:
        kind = str(kind)
        if kind not in PRUNE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(PRUNE_KINDS)} but got {kind!r}")
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


@runtime_checkable
class Reporter(Protocol):
    """Where an objective's intermediate values and health reports go.

    A reporter may also define ``declare_total_steps(total: int) -> None``:
    :meth:`TrialContext.declare_total_steps` calls it (when present) with the step of the trial's
    final report, so the pruner can leave that report alone.
    """

    def report(self, value: float, step: int, health: HealthReport | None) -> None:
        """Record ``value`` at ``step`` with the latest health report; may raise :class:`TrialPruned`."""
        ...


def forward_total_steps(reporter: object, total: int) -> None:
    """Call ``reporter.declare_total_steps(total)`` when the reporter defines it (it is optional)."""
    declare = getattr(reporter, "declare_total_steps", None)
    if callable(declare):
        declare(total)


@dataclass(frozen=True)
class Reported:
    """One :meth:`NullReporter.report` call as recorded."""

    value: float
    step: int
    health: HealthReport | None


class NullReporter:
    """Records every report and never prunes (used by ``gradsweep try``).

    An UNSTABLE health verdict is recorded like any other; stopping is a pruner's decision,
    and there is none here.
    """

    def __init__(self) -> None:
        self.history: list[Reported] = []
        self.total_steps: int | None = None

    def report(self, value: float, step: int, health: HealthReport | None) -> None:
        self.history.append(Reported(float(value), int(step), health))

    def declare_total_steps(self, total: int) -> None:
        self.total_steps = int(total)

    @property
    def health_reports(self) -> list[HealthReport]:
        """The non-empty health reports, in order."""
        return [r.health for r in self.history if r.health is not None]


class OptunaReporter:
    """Reports to an ``optuna.Trial`` inside a plain ``study.optimize``.

    Each call writes ``gradsweep.health.latest`` and the bounded ``gradsweep.health.history``
    user attrs, then ``trial.report(value, step)``, then asks ``trial.should_prune()``. When the
    study's pruner says prune, it raises :class:`TrialPruned` with the kind and reason the pruner
    stored (``gradsweep.prune.kind`` / ``gradsweep.prune.reason``); a pruner that stores none
    (e.g. a bare ``MedianPruner``) gives ``underperforming`` with a generic reason.

    Args:
        trial: the running trial.
        history_limit: how many health summaries ``gradsweep.health.history`` keeps.

    Raises:
        ValueError: if ``history_limit`` < 1.
    """

    def __init__(self, trial: optuna.Trial, *, history_limit: int = 50) -> None:
        if history_limit < 1:
            raise ValueError(f"history_limit must be at least 1 but got {history_limit}")
        self.trial = trial
        self.history_limit = history_limit
        self._last_health_step: int | None = None

    def declare_total_steps(self, total: int) -> None:
        """Store ``gradsweep.total_steps`` (the pruner leaves the report at that step alone)."""
        from search.attrs import TOTAL_STEPS

        self.trial.set_user_attr(TOTAL_STEPS, int(total))

    def report(self, value: float, step: int, health: HealthReport | None) -> None:
        from search.health.attrs import PRUNE_KIND, PRUNE_REASON, write_health_attrs

        if health is not None and health.step != self._last_health_step:
            self._last_health_step = health.step
            write_health_attrs(self.trial, health, self.history_limit)
        self.trial.report(float(value), int(step))
        if self.trial.should_prune():
            # the pruner wrote its decision to storage, not to this Trial's cached copy
            attrs = self.trial.storage.get_trial_user_attrs(self.trial._trial_id)
            kind = attrs.get(PRUNE_KIND, "underperforming")
            reason = attrs.get(
                PRUNE_REASON,
                f"{type(self.trial.study.pruner).__name__} pruned at step {step} (value {value:.4g})",
            )
            raise TrialPruned(kind, reason)


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
        from search.health import HealthMonitor
        from spaces.apply import Clipper, StagedScheduler, build_optimizer, build_scaler

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
                self.optimizer, config.health, clip=config.clip, towers=list(config.towers), scaler=self.scaler
            )
            if config.health.enabled
            else None
        )
        self.global_step = 0
        self.latest_health: HealthReport | None = None

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

    def step(self, loss: torch.Tensor) -> HealthReport | None:
        """One optimizer step from ``loss``; returns the health report when one is due.

        Args:
            loss: a scalar loss with a graph.

        Returns:
            The monitor's report at a check step, else ``None``.
        """
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
    """

    def __init__(
        self,
        config: TrialConfig,
        *,
        reporter: Reporter | None = None,
        device: str | torch.device | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self.reporter: Reporter = reporter if reporter is not None else NullReporter()
        self.device = resolve_device(device)
        self.checkpoints = CheckpointStore(Path(checkpoint_dir)) if checkpoint_dir is not None else None
        self.log = logger or logging.getLogger("gradsweep.objective")
        self._trainer: Trainer | None = None
        seed_everything(config.seed)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast`` per ``config.amp.dtype`` on CUDA; a no-op on CPU or with ``none``."""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(self.config.amp.dtype))
        if dtype is None or self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=dtype)

    def trainer(self, model: torch.nn.Module, steps_per_epoch: int) -> Trainer:
        """Move ``model`` to :attr:`device` (in place) and build its :class:`Trainer`."""
        model.to(self.device)
        self._trainer = Trainer(model, self.config, steps_per_epoch=steps_per_epoch, device=self.device)
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
        forward_total_steps(self.reporter, int(total))

    @property
    def latest_health(self) -> HealthReport | None:
        """The newest health report of the newest trainer."""
        return self._trainer.latest_health if self._trainer is not None else None

    def report(self, value: float, step: int) -> None:
        """Send ``value`` at ``step`` with the latest health report; may raise :class:`TrialPruned`."""
        self.reporter.report(float(value), int(step), self.latest_health)

    def save_checkpoint(self, state: dict[str, Any]) -> Path | None:
        """Save ``state`` atomically (the newest two are kept); ``None`` without a checkpoint dir."""
        return self.checkpoints.save(state) if self.checkpoints is not None else None

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The newest loadable checkpoint, or ``None``."""
        return self.checkpoints.load() if self.checkpoints is not None else None


Objective = Callable[[TrialConfig, TrialContext], float]


def run_objective(objective: Objective, config: TrialConfig, ctx: TrialContext) -> float:
    """Call ``objective`` and check that it returned a finite number.

    Raises:
        TypeError: if the value is not a real number.
        ValueError: ``non-finite objective value`` if it is NaN or infinite.
    """
    value = objective(config, ctx)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"objective must return a float but returned {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"non-finite objective value: {value}")
    return value
