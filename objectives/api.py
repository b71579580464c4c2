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

With gradient accumulation (``accumulation_steps: N`` in the space) ``trainer.step`` is called
once per micro-batch of ``config.batch_size`` examples, N times per optimizer step (the loop above
would run ``trainer.total_steps * N`` times): it runs the backward of each and steps the optimizer (clipping, health check, schedule) on every N-th call,
when ``trainer.stepped`` turns true. ``trainer.total_steps``, ``run.steps``, ``global_step``,
stages, schedules and ``health.check_every`` count optimizer steps; ``run.micro_batches``
(``run.steps * N``) is the number of calls an epoch takes, and ``steps_per_epoch`` is given in
optimizer steps (e.g. ``len(data) // config.effective_batch``).

:meth:`TrialContext.trainer` declares ``trainer.total_steps`` to the reporter, and the pruner
never stops a trial at its final report (a step of ``total_steps - 1`` or more, so steps counted
from 0 or from 1 both work): its value is then the trial's result, and stopping would save no step.

This module is the public surface and re-exports the kit, one idea per module:
:mod:`~gradsweep.objectives.pruned` (``PruneKind``, ``TrialPruned``),
:mod:`~gradsweep.objectives.reporting` (the ``Reporter`` protocol, ``NullReporter``),
:mod:`~gradsweep.objectives.trainer` (``Trainer``; ``trainer.watch()`` gives a
:mod:`~gradsweep.objectives.watch` ``StepWatch`` for a loop that calls ``optimizer.step()`` itself), :mod:`~gradsweep.objectives.context`
(``TrialContext``), :mod:`~gradsweep.objectives.checkpoint` (``CheckpointStore``),
:mod:`~gradsweep.objectives.progress` (``Resumed``, ``CheckpointFormatError``: what
``ctx.save_progress`` / ``ctx.resume`` save and restore) and :mod:`~gradsweep.objectives.run`
(``run_objective``, ``NonFiniteValue``). A ``LightningModule`` uses
:mod:`~gradsweep.objectives.lightning` instead (``GradsweepCallback``, ``gradsweep_optimizers``;
not re-exported here, so the kit imports without ``lightning``).

In a trial of several DDP workers (``--workers-per-trial N``) the objective runs once per worker:
``config.batch_size`` is per worker, ``ctx.rank`` / ``ctx.world_size`` / ``ctx.is_main`` say
which one this is, ``ctx.shard(indices)`` (or ``ctx.sampler(dataset)``) gives its part of each
global batch of ``config.global_batch``, and the training forward goes through
``trainer.wrapped`` (``DistributedDataParallel``; the model itself in one process). See
:mod:`~gradsweep.objectives.distributed` for the collectives a loss may need (``gather``).

Checkpoint and resume (the built-ins all do it this way; ``epochs_done`` is the 1-based
number of the last epoch trained, so ``trainer.epochs`` skips exactly the epochs done)::

    resumed = ctx.resume(trainer)                           # Resumed(0, {}) without a checkpoint
    history = list(resumed.extra.get("history", []))
    for run in trainer.epochs(start_epoch=resumed.epochs_done):
        for _ in range(run.micro_batches):                  # run.steps optimizer steps
            ...                                             # trainer.step(loss) per micro-batch
        history.append(evaluate(model))
        ctx.save_progress(trainer, epochs_done=run.epoch, extra={"history": history})
        ctx.report(history[-1], trainer.global_step)
"""

from __future__ import annotations

from gradsweep.objectives.checkpoint import CheckpointStore
from gradsweep.objectives.context import DEVICE_ENV, TrialContext, resolve_device, seed_everything
from gradsweep.objectives.progress import PROGRESS_FORMAT, CheckpointFormatError, Resumed
from gradsweep.objectives.pruned import PruneKind, TrialPruned
from gradsweep.objectives.reporting import NullReporter, Reported, Reporter
from gradsweep.objectives.run import NON_FINITE, NonFiniteValue, Objective, run_objective
from gradsweep.objectives.trainer import EpochRun, StageRun, Trainer, refuse_accumulation, stage_steps

__all__ = [
    "DEVICE_ENV",
    "NON_FINITE",
    "PROGRESS_FORMAT",
    "CheckpointFormatError",
    "CheckpointStore",
    "EpochRun",
    "NonFiniteValue",
    "NullReporter",
    "Objective",
    "PruneKind",
    "Reported",
    "Reporter",
    "Resumed",
    "StageRun",
    "Trainer",
    "TrialContext",
    "TrialPruned",
    "refuse_accumulation",
    "resolve_device",
    "run_objective",
    "seed_everything",
    "stage_steps",
]
