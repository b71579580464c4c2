"""Apply a :class:`~gradsweep.spaces.trial_config.TrialConfig` to any ``nn.Module``.

Per-tower optimizer groups (decay / no-decay), the optimizer, a staged LR scheduler, the
GradScaler and autocast context, a per-tower-then-global clipper and a printable summary.

Typical use (one training step)::

    optimizer = build_optimizer(model, config)
    scheduler = StagedScheduler(optimizer, config, steps_per_epoch, model=model)
    scaler = build_scaler(config, device)
    clipper = Clipper(optimizer, config)
    with autocast_context(config, device):
        loss = compute_loss(model, batch)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)          # before clipping
    clip = clipper.clip()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
"""

from __future__ import annotations

from gradsweep.spaces.apply.amp import (
    autocast_context,
    autocast_dtype,
    build_scaler,
    scaler_enabled,
    scaler_kwargs,
)
from gradsweep.spaces.apply.clipping import Clipper, ClipResult, combine_norms, grads_norm
from gradsweep.spaces.apply.matching import match_parameters, no_decay_reason, parameter_modules
from gradsweep.spaces.apply.optimizer import build_optimizer
from gradsweep.spaces.apply.param_groups import build_param_groups
from gradsweep.spaces.apply.schedule_math import (
    PlateauState,
    linear_warmup,
    onecycle,
    plateau_factor,
    warmup_constant,
    warmup_cosine,
    warmup_length,
)
from gradsweep.spaces.apply.scheduler import StagedScheduler
from gradsweep.spaces.apply.summary import OptimizerSummary, SummaryRow, optimizer_summary

__all__ = [
    "ClipResult",
    "Clipper",
    "OptimizerSummary",
    "PlateauState",
    "StagedScheduler",
    "SummaryRow",
    "autocast_context",
    "autocast_dtype",
    "build_optimizer",
    "build_param_groups",
    "build_scaler",
    "combine_norms",
    "grads_norm",
    "linear_warmup",
    "match_parameters",
    "no_decay_reason",
    "onecycle",
    "optimizer_summary",
    "parameter_modules",
    "plateau_factor",
    "scaler_enabled",
    "scaler_kwargs",
    "warmup_constant",
    "warmup_cosine",
    "warmup_length",
]
