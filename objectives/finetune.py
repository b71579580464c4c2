"""Frozen-then-unfrozen fine-tuning on scikit-learn digits (seed 002), scored by accuracy.

A CNN ``backbone`` is pretrained inside the objective, supervised, on digits 0-4 (cached per
process, keyed by seed and scale). The trial then fine-tunes it with a fresh ``head`` on digits
5-9 from a small labelled set: stage 1 trains the head only (``train: [head]``), stage 2
unfreezes everything. The backbone LR is usually tied to the head LR
(``towers.backbone.lr: {tie: head, ratio: r}``).

Seed 002's pathology is in the schedule at the unfreeze: a OneCycle rebuilt at stage 2
(``stages.<stage>.schedule: restart``) drops the LR back to ``max_lr / div_factor`` and warms
up again, and a backbone LR of 1e-5 next to a head LR of 1e-3 (ratio 0.01) leaves the backbone
effectively frozen. The fix keeps the schedule's progress (``continue``) and sets backbone =
head / 10. Each epoch's history (in the checkpoint) records the LR of every tower on its first
and last step, so the reset is visible in the LR curve.

With several DDP workers (``--workers-per-trial N``) every worker augments the same global batch
of ``N * batch_size`` images and trains on its shard; the trainer rebuilds its DDP wrapper at the
unfreeze (DDP reduces only the parameters that trained when it was built), so N workers compute
the updates of one process with an N times larger batch (the backbone has no batch statistics).

Metric: ``accuracy`` on held-out digits 5-9; maximize.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradsweep.objectives.api import TrialContext, refuse_accumulation
from gradsweep.objectives.data.digits_views import Digits, augment, load_digits, split, subsample
from gradsweep.objectives.nets import Backbone
from gradsweep.spaces.trial_config import TrialConfig

METRICS = ("accuracy",)
DEFAULT_METRIC = "accuracy"
#: Other names it accepts for its default metric ("value": TrialConfig\'s unnamed default).
METRIC_ALIASES = ("value",)
DIRECTION = "maximize"
#: Runs as a trial of several DDP workers (``--workers-per-trial``).
DISTRIBUTED = True
PRESET = "finetune.yaml"
PRETRAIN_CLASSES = (0, 1, 2, 3, 4)
FINETUNE_CLASSES = (5, 6, 7, 8, 9)


@dataclass(frozen=True)
class Scale:
    """Sizes for one ``config.scale``."""

    width: int  # conv channels of the backbone
    dim: int  # feature size
    pretrain_epochs: int  # supervised pretraining on digits 0-4
    finetune_images: int | None  # labelled digits 5-9 for fine-tuning (None = all of the split)


SCALES = {
    "tiny": Scale(width=8, dim=32, pretrain_epochs=3, finetune_images=200),
    "small": Scale(width=16, dim=64, pretrain_epochs=10, finetune_images=400),
    "full": Scale(width=64, dim=256, pretrain_epochs=30, finetune_images=None),
}


class Classifier(nn.Module):
    """``backbone`` + linear ``head`` (the two towers)."""

    def __init__(self, width: int, dim: int, n_classes: int) -> None:
        super().__init__()
        self.backbone = Backbone(width, dim, relu_features=True)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))  # (B, C)


@functools.lru_cache(maxsize=8)
def pretrained_backbone(seed: int, scale: str) -> dict[str, torch.Tensor]:
    """Backbone weights after supervised pretraining on digits 0-4 (cached per process).

    A plain fixed-LR AdamW loop on the CPU, deterministic under ``seed``; it is the starting
    point of the trial, not part of the searched training.

    Args:
        seed: the trial seed.
        scale: ``tiny`` | ``small`` | ``full``.

    Returns:
        The backbone's ``state_dict`` (CPU tensors; copy before loading).
    """
    s = SCALES[scale]
    data, _ = split(load_digits(PRETRAIN_CLASSES), test_fraction=0.25, seed=seed)
    g = torch.Generator().manual_seed(seed + 7)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 7)
        model = Classifier(s.width, s.dim, len(PRETRAIN_CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(s.pretrain_epochs):
        order = torch.randperm(len(data), generator=g)
        for i in range(0, len(data) - 63, 64):
            x, y = augment(data.x[order[i : i + 64]], g), data.y[order[i : i + 64]]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return {k: v.detach().clone() for k, v in model.backbone.state_dict().items()}


@torch.no_grad()
def accuracy(model: nn.Module, data: Digits, device: torch.device, batch: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``data`` in eval mode."""
    model.eval()
    hits = sum(
        int((model(data.x[i : i + batch].to(device)).argmax(1) == data.y[i : i + batch].to(device)).sum())
        for i in range(0, len(data), batch)
    )
    model.train()
    return hits / len(data)


def build_model(config: TrialConfig) -> Classifier:
    """The classifier before the pretrained backbone is loaded (``gradsweep validate`` checks patterns on it)."""
    s = SCALES[config.scale]
    return Classifier(s.width, s.dim, len(FINETUNE_CLASSES))


def run(config: TrialConfig, ctx: TrialContext) -> float:
    """Fine-tune a pretrained backbone on digits 5-9 per ``config``; return held-out accuracy.

    Args:
        config: the trial's config (towers ``head`` and ``backbone``; usually two stages).
        ctx: the trial context (device, trainer, reporting, checkpoints).

    Returns:
        Accuracy (in ``[0, 1]``) on held-out digits 5-9 after the last epoch.

    Raises:
        ValueError: on an unknown ``scale`` or ``metric.name``, or ``accumulation_steps`` > 1.
        TrialPruned: when the reporter stops the trial.
    """
    # 1. settings
    if config.scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {config.scale!r}")
    if config.metric.name not in (*METRICS, *METRIC_ALIASES):
        raise ValueError(f"metric.name must be one of {', '.join(METRICS)}, got {config.metric.name!r}")
    refuse_accumulation(config, "finetune")
    s = SCALES[config.scale]
    tower_names = [t.name for t in config.towers]

    # 2. data: a small labelled set of digits 5-9 and a held-out test split
    train, test = split(load_digits(FINETUNE_CLASSES), test_fraction=0.4, seed=config.seed)
    train = subsample(train, s.finetune_images, seed=config.seed)
    batch = min(config.batch_size, len(train) // ctx.world_size)  # per worker
    global_batch = batch * ctx.world_size
    steps_per_epoch = len(train) // global_batch

    # 3. model: pretrained backbone (per-process cache) + fresh head; trainer kit from the config
    torch.manual_seed(config.seed)
    model = build_model(config)
    model.backbone.load_state_dict(pretrained_backbone(config.seed, config.scale))
    trainer = ctx.trainer(model, steps_per_epoch)

    # 4. resume from the newest checkpoint, if any (model, trainer state, epochs done, history)
    resumed = ctx.resume(trainer)
    history = list(resumed.extra.get("history", []))

    # 5. train: stages -> epochs -> steps
    acc = float(history[-1]["accuracy"]) if history else float("nan")
    for run in trainer.epochs(start_epoch=resumed.epochs_done):
        epoch, n_steps, stage = run.epoch, run.steps, run.stage
        # this epoch's batches depend on (seed, epoch) only, so a resume repeats them
        g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(len(train), generator=g)
        model.train()
        losses, lr_first, lr_last = [], {}, {}
        for i in range(n_steps):
            # a. an augmented batch: (B, 1, 8, 8) images, (B,) labels (the global batch, the same on
            #    every worker, then this worker's shard of it)
            idx = order[i * global_batch : (i + 1) * global_batch]
            x = ctx.shard(augment(train.x[idx], g)).to(ctx.device)
            y = ctx.shard(train.y[idx]).to(ctx.device)
            # b. LR of each tower for this step (the schedule's curve, seen at the unfreeze)
            lrs = _tower_lrs(trainer.optimizer, tower_names)
            lr_first = lr_first or lrs
            lr_last = lrs
            # c. cross-entropy; the trainer backprops, clips, monitors, steps and schedules
            with ctx.autocast():
                loss = F.cross_entropy(trainer.wrapped(x).float(), y)  # DDP's forward on several workers
            trainer.step(loss)
            losses.append(loss.detach())

        # 6. held-out accuracy; plateau schedules step on it
        acc = accuracy(model, test, ctx.device)
        trainer.scheduler.step_metric(acc)
        history.append(
            {
                "epoch": epoch,
                "stage": stage.name,
                "loss": float(torch.stack(losses).mean()),
                "accuracy": acc,
                **{f"lr_first/{t}": v for t, v in lr_first.items()},
                **{f"lr_last/{t}": v for t, v in lr_last.items()},
            }
        )

        # 7. checkpoint (model, trainer state, epochs done, history), then report (may prune)
        ctx.save_progress(trainer, epochs_done=epoch, extra={"history": history})
        ctx.report(acc, trainer.global_step)
    return acc


def _tower_lrs(optimizer: torch.optim.Optimizer, towers: list[str]) -> dict[str, float]:
    """The LR each tower trains with now (the first param group of the tower; 0 when it is frozen)."""
    lrs: dict[str, float] = {}
    for group in optimizer.param_groups:
        name = group.get("tower")
        if name in towers and name not in lrs:
            trains = any(p.requires_grad for p in group["params"])
            lrs[name] = float(group["lr"]) if trains else 0.0
    return lrs
