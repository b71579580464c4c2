"""Health monitoring for a loop that calls ``optimizer.step()`` itself: :class:`StepWatch`.

Many training loops (Hugging Face ``Trainer``, accelerate, hand-written ones) own
``backward()`` and ``optimizer.step()``. A :class:`StepWatch` attaches to the optimizer through
``register_step_pre_hook``, so every ``optimizer.step()`` feeds the same
:class:`~gradsweep.objectives.health.monitor.HealthMonitor` that ``trainer.step`` feeds, with the
same rows: the step's mean loss (given with :meth:`StepWatch.loss`), the per-tower pre- and
post-clip gradient norms (from :meth:`StepWatch.clip`, or the gradients as they are at the step),
and the GradScaler's scale. A step that an enabled GradScaler skips (non-finite gradients, so
``optimizer.step()`` never runs) is observed too: the watch wraps that scaler's ``step``.

Built from a trainer (``trainer.watch()``), the watch counts ``trainer.global_step`` and sets
``trainer.latest_health``, so ``ctx.report``, ``ctx.save_progress`` and ``ctx.resume`` work as
with ``trainer.step``; ``trainer.step`` refuses to run while a watch is attached (one step would
be observed twice).

Example (a loop that keeps its own step; the health report is the one ``trainer.step`` gives)::

    trainer = ctx.trainer(model, steps_per_epoch=len(batches))
    opt, sched, scaler = trainer.optimizer, trainer.scheduler, trainer.scaler
    watch = trainer.watch()                           # hooks opt.step() (and scaler.step)
    for x, y in batches:
        loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        watch.loss(loss)                              # the loss the health rules judge
        scaler.unscale_(opt)
        watch.clip()                                  # the config's clipping, with pre-clip norms
        scaler.step(opt); scaler.update(); opt.zero_grad(); sched.step()
        ctx.report(-loss.item(), trainer.global_step) # carries the latest health report
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from gradsweep.errors import UserError
from gradsweep.objectives.health.loss_mean import LossMean
from gradsweep.objectives.health.monitor import HealthMonitor
from gradsweep.objectives.health.verdict import HealthReport
from gradsweep.spaces.apply import Clipper, ClipResult

if TYPE_CHECKING:
    from gradsweep.objectives.trainer import Trainer


class MissingLoss(UserError, RuntimeError):
    """``optimizer.step()`` ran with no :meth:`StepWatch.loss` since the previous step.

    A :class:`~gradsweep.errors.UserError`: ``gradsweep try`` prints it as one ``error:`` line.
    """


class MissingClip(UserError, RuntimeError):
    """The config clips gradients but ``optimizer.step()`` ran without :meth:`StepWatch.clip`.

    Without it the searched ``clip.max_norm`` (or a tower's ``clip_max_norm``) would have no effect.
    """


class ClosureStep(UserError, RuntimeError):
    """``optimizer.step(closure)``: the gradients are computed after the pre-step hook runs.

    A :class:`~gradsweep.errors.UserError`: ``gradsweep try`` prints it as one ``error:`` line.
    """


class StepWatch:
    """Observes every ``optimizer.step()`` of a loop that calls it itself.

    Args:
        optimizer: the optimizer whose steps are observed.
        monitor: the health monitor fed at each step.
        clipper: the config's clipper, for :meth:`clip` (``None``: :meth:`clip` refuses).
        scaler: a GradScaler; when enabled, a step it skips is observed too.
        trainer: when given, ``trainer.global_step`` counts the steps and
            ``trainer.latest_health`` holds the newest report.

    Use :meth:`Trainer.watch <gradsweep.objectives.trainer.Trainer.watch>` rather than building one.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        monitor: HealthMonitor | None,
        *,
        clipper: Clipper | None = None,
        scaler: torch.amp.GradScaler | None = None,
        trainer: Trainer | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.monitor = monitor
        self.clipper = clipper
        self.scaler = scaler
        self.trainer = trainer
        self._step = 0
        self.latest_health: HealthReport | None = None
        self._losses = LossMean()
        self._clips = _clips(clipper) if clipper is not None else ""  # what the config clips, once
        self._clip: ClipResult | None = None
        self._observed = 0
        self._hook = optimizer.register_step_pre_hook(self._before_step)
        self._scaler_step: Callable[..., Any] | None = None
        if scaler is not None and scaler.is_enabled():
            self._scaler_step = scaler.step
            scaler.step = self._step_through_scaler  # type: ignore[method-assign]
        if trainer is not None:
            trainer._watch = self

    @property
    def global_step(self) -> int:
        """Optimizer steps observed (the trainer's ``global_step`` when built from a trainer)."""
        return self.trainer.global_step if self.trainer is not None else self._step

    def loss(self, loss: torch.Tensor | float) -> None:
        """Give this step's loss (call once per micro-batch; the step judges their mean).

        The value stays on the device (no host read).
        """
        self._losses.add(loss)

    def clip(self) -> ClipResult:
        """Clip the gradients per the config (per tower, then global) and keep the norms for this step.

        Call it after ``scaler.unscale_(optimizer)``, before ``scaler.step(optimizer)``.

        Raises:
            RuntimeError: if the watch has no clipper (built without a trainer).
        """
        if self.clipper is None:
            raise RuntimeError("this StepWatch has no clipper: build it with trainer.watch()")
        self._clip = self.clipper.clip()
        return self._clip

    def remove(self) -> None:
        """Detach from the optimizer (and the scaler); ``trainer.step`` works again."""
        self._hook.remove()
        if self._scaler_step is not None and self.scaler is not None:
            del self.scaler.step  # the instance attribute; the class's step shows again
            self._scaler_step = None
        if self.trainer is not None and self.trainer._watch is self:
            self.trainer._watch = None

    # --- the hooks -------------------------------------------------------------------------------
    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if kwargs.get("closure") is not None or any(callable(a) for a in args):
            raise ClosureStep(
                "optimizer.step(closure) runs backward inside the step, after this hook: a StepWatch "
                "cannot see those gradients; call backward() before optimizer.step() (for Lightning, "
                "use gradsweep.objectives.lightning.GradsweepCallback)"
            )
        self._observe()

    def _step_through_scaler(self, optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        before = self._observed
        out = self._scaler_step(optimizer, *args, **kwargs)  # type: ignore[misc]
        if optimizer is self.optimizer and self._observed == before:
            self._observe()  # the scaler found non-finite gradients and skipped optimizer.step()
        return out

    def _observe(self) -> None:
        if not self._losses.count:
            raise MissingLoss(
                f"optimizer.step() at step {self.global_step} ran without a loss: call watch.loss(loss) "
                f"after each backward(), before optimizer.step()"
            )
        if self._clip is None and self._clips:
            raise MissingClip(
                f"optimizer.step() at step {self.global_step} ran without watch.clip() but the config clips "
                f"({self._clips}): call watch.clip() after scaler.unscale_(optimizer), before "
                f"optimizer.step(), or the searched clip has no effect"
            )
        loss = self._losses.take()
        report = (
            self.monitor.observe(loss, self._clip, step=self.global_step)
            if self.monitor is not None
            else None
        )
        self._clip = None
        self._observed += 1
        if self.trainer is not None:
            self.trainer.global_step += 1
        else:
            self._step += 1
        if report is not None:
            self.latest_health = report
            if self.trainer is not None:
                self.trainer.latest_health = report


def _clips(clipper: Clipper) -> str:
    """What the config clips, e.g. ``clip.max_norm 1`` (empty when it clips nothing)."""
    parts = [f"clip.max_norm {clipper.global_max_norm:g}"] if clipper.global_max_norm is not None else []
    parts += [f"towers.{t}.clip_max_norm {n:g}" for t, n in clipper.tower_max_norms.items() if n is not None]
    return ", ".join(parts)
