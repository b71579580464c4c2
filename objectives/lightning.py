"""PyTorch Lightning in a gradsweep trial: :class:`GradsweepCallback` and :func:`gradsweep_optimizers`.

The callback does for a ``LightningModule`` what ``trainer.step`` does for a plain loop, with
Lightning keeping its loop, its ``backward()`` and its ``optimizer.step()``:

| Lightning hook | what gradsweep does there |
|---|---|
| ``configure_optimizers`` (your module returns ``gradsweep_optimizers(self)``) | builds the per-tower optimizer and the staged LR schedule from the ``TrialConfig`` |
| ``on_before_backward`` | keeps the loss (un-normalised by ``accumulate_grad_batches``) on the device |
| ``on_before_optimizer_step`` (after unscaling under AMP) | clips per tower, then globally, per the config; feeds the health monitor once per optimizer step |
| ``on_train_batch_end`` | steps the LR schedule once per optimizer step (stages freeze and thaw towers) |
| ``on_validation_end`` | saves a Lightning checkpoint in the trial's checkpoint store (``trainer.save_checkpoint``), then reports the monitored metric with the latest health report; when the pruner says so, raises ``TrialPruned`` (the trial ends PRUNED with its reason) |
| ``state_dict`` / ``load_state_dict`` | the schedule and the monitor ride in Lightning's checkpoints, so ``fit(ckpt_path=sweep.resume_path())`` resumes them |

Example (the whole objective; ``examples/lightning/`` holds a complete one)::

    class TwoTower(lightning.LightningModule):
        ...
        def configure_optimizers(self):
            return gradsweep_optimizers(self)              # per-tower AdamW/SGD + schedule from the trial

    def objective(config, ctx):
        sweep = GradsweepCallback(config, ctx, monitor="val_loss")
        trainer = lightning.Trainer(**sweep.trainer_kwargs())   # epochs, device, AMP, callbacks
        trainer.fit(TwoTower(), datamodule, ckpt_path=sweep.resume_path())
        return sweep.last_value

Do not set ``gradient_clip_val`` (gradsweep clips per the config) nor return your own optimizer;
the callback refuses both at the start of ``fit`` with one line saying what to change.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch

from gradsweep.errors import UserError
from gradsweep.objectives.context import TrialContext
from gradsweep.objectives.health.loss_mean import LossMean
from gradsweep.objectives.health.monitor import HealthMonitor
from gradsweep.objectives.health.verdict import HealthReport
from gradsweep.objectives.trainer import Trainer
from gradsweep.spaces.apply import Clipper, StagedScheduler, build_scaler
from gradsweep.spaces.trial_config import TrialConfig


class LightningSetupError(UserError):
    """The Lightning objective is wired in a way the callback cannot work with."""


def gradsweep_optimizers(module: pl.LightningModule) -> torch.optim.Optimizer:
    """Return this from ``LightningModule.configure_optimizers``: the trial's per-tower optimizer.

    Raises:
        LightningSetupError: if the Lightning ``Trainer`` has no :class:`GradsweepCallback`.
    """
    found = [cb for cb in module.trainer.callbacks if isinstance(cb, GradsweepCallback)]
    if len(found) != 1:
        raise LightningSetupError(
            f"gradsweep_optimizers needs exactly one GradsweepCallback in the Lightning Trainer's callbacks "
            f"but found {len(found)}: build the Trainer with lightning.Trainer(**sweep.trainer_kwargs())"
        )
    return found[0].configure_optimizers(module)


class GradsweepCallback(pl.Callback):
    """Trains a ``LightningModule`` per a :class:`TrialConfig` and reports to the trial.

    Args:
        config: the trial's config.
        ctx: the trial's context (device, reporter, checkpoint directory).
        monitor: the logged validation metric the sweep optimises (e.g. ``"val_loss"``); its
            direction is the study's (``config.metric.direction``).

    Attributes:
        last_value: the monitored metric at the newest validation end (NaN before the first).
        latest_health: the newest health report (``None`` before the first check).
    """

    def __init__(self, config: TrialConfig, ctx: TrialContext, *, monitor: str) -> None:
        if ctx.world_size > 1:  # each worker would train its own replica: refuse rather than drift
            raise ValueError(
                f"GradsweepCallback trains in one process per trial; --workers-per-trial {ctx.world_size} is not "
                "supported for Lightning objectives (launch without it)"
            )
        self.config = config
        self.ctx = ctx
        self.monitor = monitor
        self.last_value = math.nan
        self.latest_health: HealthReport | None = None
        self.scaler = build_scaler(config, ctx.device)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: StagedScheduler | None = None
        self.clipper: Clipper | None = None
        self.health: HealthMonitor | None = None
        self._steps_done = 0
        self._losses = LossMean()
        self._restored: dict[str, Any] | None = None
        self._total_steps = 0

    # --- what the objective asks for ------------------------------------------------------------
    def trainer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``lightning.Trainer`` that carry the trial's config.

        The epochs (or steps) of the config's stages, ``accumulation_steps`` as
        ``accumulate_grad_batches``, the trial's device, AMP precision with the
        config's GradScaler, this callback (which writes the checkpoints into the trial's store, so
        Lightning's own checkpointing is off) and a quiet console. Add your own callbacks to
        ``kwargs["callbacks"]``.
        """
        stages = self.config.stages
        in_steps = all(s.steps is not None for s in stages)
        if not in_steps and any(s.steps is not None for s in stages):
            raise LightningSetupError(
                "stages: give every stage in epochs or every stage in steps for a Lightning objective "
                "(Lightning stops on max_epochs or max_steps, not a mix)"
            )
        device = self.ctx.device
        kwargs: dict[str, Any] = {
            "accelerator": "gpu" if device.type == "cuda" else "cpu",
            "devices": [device.index or 0] if device.type == "cuda" else 1,
            "precision": self._precision(),
            "accumulate_grad_batches": self.config.accumulation_steps,
            "callbacks": [self],
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
        }
        if in_steps:
            kwargs.update(max_steps=sum(int(s.steps or 0) for s in stages), max_epochs=-1)
        else:
            kwargs["max_epochs"] = sum(int(s.epochs or 0) for s in stages)
        if self.scaler.is_enabled():
            from lightning.pytorch.plugins import MixedPrecision

            kwargs["plugins"] = [MixedPrecision("16-mixed", "cuda", scaler=self.scaler)]
            del kwargs["precision"]
        # the callback writes the checkpoints itself (numbered in the trial's store, before each report)
        kwargs["enable_checkpointing"] = False
        if self.ctx.checkpoints is not None:
            kwargs["default_root_dir"] = str(self.ctx.checkpoints.directory)
        return kwargs

    def resume_path(self) -> str | None:
        """The trial's newest Lightning checkpoint, for ``fit(ckpt_path=...)``; ``None`` for a fresh start."""
        paths = self.ctx.checkpoints.paths() if self.ctx.checkpoints is not None else []
        return str(paths[-1]) if paths else None

    def _precision(self) -> str:
        dtype = str(self.config.amp.dtype)
        if self.ctx.device.type != "cuda" or dtype == "none":
            return "32-true"
        return "bf16-mixed" if dtype == "bf16" else "16-mixed"

    # --- configure_optimizers -------------------------------------------------------------------
    def configure_optimizers(self, module: pl.LightningModule) -> torch.optim.Optimizer:
        """Build the per-tower optimizer, schedule, clipper and health monitor for ``module``."""
        trainer = module.trainer
        steps_per_epoch = 1  # used only by stages given in epochs
        if any(s.epochs is not None for s in self.config.stages):
            trainer.estimated_stepping_batches  # loads the train dataloader: num_training_batches is known  # noqa: B018
            batches = trainer.num_training_batches
            if not math.isfinite(batches):
                raise LightningSetupError(
                    "the train dataloader has no length, so an epoch has no step count: give the config's "
                    "stages in steps (stages: [{name: train, steps: N}])"
                )
            steps_per_epoch = max(1, math.ceil(int(batches) / int(trainer.accumulate_grad_batches)))
        # the same kit trainer.step uses (optimizer, schedule, clipper, monitor), with Lightning's scaler
        kit = Trainer(
            module, self.config, steps_per_epoch=steps_per_epoch, device=module.device, scaler=self.scaler
        )
        self.optimizer, self.scheduler, self.clipper, self.health = (
            kit.optimizer,
            kit.scheduler,
            kit.clipper,
            kit.monitor,
        )
        self._total_steps = kit.total_steps
        self.ctx.declare_total_steps(self._total_steps)
        if self._restored is not None:
            self._load(self._restored)
            self._restored = None
        return self.optimizer

    # --- Lightning hooks ----------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.optimizer is None or not any(opt is self.optimizer for opt in trainer.optimizers):
            raise LightningSetupError(
                f"{type(pl_module).__name__}.configure_optimizers must return gradsweep_optimizers(self) "
                f"so the trial's per-tower settings train the model"
            )
        if trainer.gradient_clip_val:
            raise LightningSetupError(
                f"lightning.Trainer(gradient_clip_val={trainer.gradient_clip_val}) would clip a second time: "
                f"gradsweep clips per the config (clip.max_norm, towers[].clip_max_norm); drop gradient_clip_val"
            )
        planned = trainer.estimated_stepping_batches
        if planned != self._total_steps:
            raise LightningSetupError(
                f"the Lightning Trainer plans {planned} optimizer steps but the config's stages have "
                f"{self._total_steps}: build it with lightning.Trainer(**sweep.trainer_kwargs()) and no "
                f"max_epochs/max_steps of your own"
            )

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        self._losses.add(loss.detach() * int(trainer.accumulate_grad_batches))

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if optimizer is not self.optimizer or self.clipper is None or not self._losses.count:
            return  # not ours, or no backward since the last step (training_step returned None)
        clip = self.clipper.clip()
        loss = self._losses.take()
        if self.health is not None:
            report = self.health.observe(loss, clip, step=self._steps_done)
            if report is not None:
                self.latest_health = report

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.scheduler is None:
            return
        while self._steps_done < trainer.global_step:
            self.scheduler.step()
            self._steps_done += 1

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            logged = ", ".join(sorted(metrics)) or "none"
            raise LightningSetupError(
                f"monitor={self.monitor!r} was not logged in validation; logged metrics: {logged} "
                f"(log it with self.log({self.monitor!r}, value) in validation_step)"
            )
        value = float(metrics[self.monitor])
        self.last_value = value
        if self.scheduler is not None:
            self.scheduler.step_metric(value)
        # checkpoint first, so the report can hand it on (a retried trial resumes from it)
        if self.ctx.checkpoints is not None:
            self.ctx.checkpoints.save_with(lambda path: trainer.save_checkpoint(path))
        # may raise TrialPruned: Lightning tears the fit down and re-raises it to the objective
        self.ctx.reporter.report(value, int(trainer.global_step), self.latest_health)

    # --- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "steps_done": self._steps_done,
            "last_value": self.last_value,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "health": self.health.state_dict() if self.health is not None else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning restores callbacks before it calls configure_optimizers: keep it until then
        if self.scheduler is None:
            self._restored = dict(state_dict)
        else:
            self._load(state_dict)

    def _load(self, state: dict[str, Any]) -> None:
        self._steps_done = int(state["steps_done"])
        self.last_value = float(state["last_value"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.health is not None and state.get("health") is not None:
            self.health.load_state_dict(state["health"])
