"""Two-stage U-Net segmentation of camouflaged objects with AMP + GradScaler (seed 004).

Model: a small U-Net whose encoder is the ``backbone`` tower and whose upsampling path and
1x1 output convolution are the ``decoder`` tower (parameter names ``backbone.*``,
``decoder.*``). Data: procedurally generated camouflaged-object images with masks
(:mod:`gradsweep.objectives.data.camouflage`). Loss: BCE + soft Dice. Stage 1 trains the decoder only;
stage 2 trains everything with the stage's LR multipliers (seed 004's fix: 0.5 for the decoder,
0.05 for the backbone), the clip threshold from ``clip.max_norm`` and the GradScaler settings
from ``amp.scaler``.

Seed 004's pathology: stage 2 at the stage-1 LR (multiplier 1) with loose clipping explodes.
On the CPU (fp32, no fp16) the explosion is made real by the LR alone: the encoder starts training
at OneCycle's peak LR, gradient norms jump from ~2 to hundreds with loss spikes, and the health
monitor's ``exploding`` and ``loss_spike`` rules flag it. The aggressive GradScaler part
(``init_scale`` 65536, ``growth_factor`` 2, fp16 overflow storms, inf grad norms) needs fp16
autocast on a CUDA GPU: ``build_scaler`` enables the scaler only for fp16 on CUDA, so on the CPU
the scaler settings are inert (they are still searched and saved, and act on a GPU).

Gradient accumulation (seed 004 trains with batch 2 x 4): a micro-batch holds ``batch_size``
images and an optimizer step ``accumulation_steps`` micro-batches of distinct images, flipped
together. The U-Net has no batch statistics and the loss is a mean over images, so B x N
micro-batches give the update of one batch of B*N (up to float summation order).

Metrics: ``iou`` (default) and ``dice`` on a held-out set of images, thresholded at 0.5; maximize.
Checkpoints every epoch (model, trainer state with the scaler, epochs done, history) and resumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradsweep.objectives.api import TrialContext
from gradsweep.objectives.data.camouflage import make_camouflage
from gradsweep.spaces.trial_config import TrialConfig

METRICS = ("iou", "dice")
DEFAULT_METRIC = "iou"
#: Other names it accepts for its default metric ("value": TrialConfig\'s unnamed default).
METRIC_ALIASES = ("value",)
DIRECTION = "maximize"
PRESET = "segmentation.yaml"
#: Its loop calls ``trainer.step`` once per micro-batch: it takes ``accumulation_steps`` > 1.
ACCUMULATES = True


@dataclass(frozen=True)
class Scale:
    """Sizes for one ``config.scale``."""

    size: int  # image side in pixels
    train_images: int
    test_images: int
    width: int  # channels of the first encoder block


SCALES = {
    "tiny": Scale(size=16, train_images=192, test_images=64, width=8),
    "small": Scale(size=32, train_images=1024, test_images=256, width=16),
    "full": Scale(size=64, train_images=4096, test_images=512, width=32),
}


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions with LeakyReLU.

    No normalisation layer, so nothing hides an LR that is too high; LeakyReLU rather than ReLU so
    that a too-high LR blows activations up instead of killing every unit (a dead net is silent).
    """
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.LeakyReLU(0.1),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.LeakyReLU(0.1),
    )


class Encoder(nn.Module):
    """Three resolutions: ``(B, 3, H, W)`` -> skips at H, H/2 and the bottleneck at H/4."""

    def __init__(self, w: int) -> None:
        super().__init__()
        self.enc1 = conv_block(3, w)
        self.enc2 = conv_block(w, 2 * w)
        self.enc3 = conv_block(2 * w, 4 * w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s1 = self.enc1(x)  # (B, w, H, W)
        s2 = self.enc2(F.max_pool2d(s1, 2))  # (B, 2w, H/2, W/2)
        s3 = self.enc3(F.max_pool2d(s2, 2))  # (B, 4w, H/4, W/4)
        return s1, s2, s3


class Decoder(nn.Module):
    """Upsample, concatenate the skip, convolve; a 1x1 convolution gives the mask logits."""

    def __init__(self, w: int) -> None:
        super().__init__()
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = conv_block(4 * w, 2 * w)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec1 = conv_block(2 * w, w)
        self.out = nn.Conv2d(w, 1, 1)

    def forward(self, s1: torch.Tensor, s2: torch.Tensor, s3: torch.Tensor) -> torch.Tensor:
        h = self.dec2(torch.cat([self.up2(s3), s2], dim=1))  # (B, 2w, H/2, W/2)
        h = self.dec1(torch.cat([self.up1(h), s1], dim=1))  # (B, w, H, W)
        return self.out(h)  # (B, 1, H, W) logits


class UNet(nn.Module):
    """``backbone`` (encoder) + ``decoder`` (the two towers)."""

    def __init__(self, w: int) -> None:
        super().__init__()
        self.backbone = Encoder(w)
        self.decoder = Decoder(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(*self.backbone(x))  # (B, 1, H, W)


def seg_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE with logits + soft Dice loss, in float32. ``logits``, ``mask``: ``(B, 1, H, W)``."""
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, mask)
    prob = torch.sigmoid(logits)
    inter = (prob * mask).sum(dim=(1, 2, 3))
    dice = (2 * inter + 1.0) / (prob.sum(dim=(1, 2, 3)) + mask.sum(dim=(1, 2, 3)) + 1.0)
    return bce + (1.0 - dice).mean()


def iou_dice(pred: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """Dataset-level IoU and Dice of binary predictions.

    Args:
        pred: ``(N, 1, H, W)`` bool predictions; mask: ``(N, 1, H, W)`` {0, 1} targets.

    Returns:
        ``(iou, dice)``, each 1.0 when both prediction and target are empty.
    """
    target = mask.bool()
    inter = float((pred & target).sum())
    union = float((pred | target).sum())
    total = float(pred.sum() + target.sum())
    return (inter / union if union else 1.0), (2 * inter / total if total else 1.0)


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, masks: torch.Tensor, ctx: TrialContext
) -> tuple[float, float]:
    """IoU and Dice of ``model`` on held-out images (non-finite logits count as background)."""
    model.eval()
    preds = []
    for i in range(0, len(images), 256):
        with ctx.autocast():
            logits = model(images[i : i + 256].to(ctx.device)).float()
        preds.append((torch.nan_to_num(logits, nan=-1.0) > 0).cpu())
    model.train()
    return iou_dice(torch.cat(preds), masks)


def build_model(config: TrialConfig) -> UNet:
    """The untrained U-Net for ``config`` (``gradsweep validate`` checks tower patterns on it)."""
    return UNet(SCALES[config.scale].width)


def run(config: TrialConfig, ctx: TrialContext) -> float:
    """Train the U-Net in stages per ``config``; return the held-out metric named by ``config.metric``.

    Args:
        config: the trial's config (towers ``backbone`` and ``decoder``; usually two stages).
        ctx: the trial context (device, autocast, trainer, reporting, checkpoints).

    Returns:
        IoU (or Dice when ``config.metric.name == "dice"``) after the last epoch; NaN logits
        count as background, so a model that went non-finite scores about 0.

    Raises:
        ValueError: on an unknown ``scale`` or metric name, or more accumulation steps than images.
        TrialPruned: when the reporter stops the trial.
    """
    # 1. settings
    if config.scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {config.scale!r}")
    s = SCALES[config.scale]
    if config.metric.name not in (*METRICS, *METRIC_ALIASES):
        raise ValueError(f"metric.name must be one of {', '.join(METRICS)}, got {config.metric.name!r}")
    metric = DEFAULT_METRIC if config.metric.name == "value" else config.metric.name

    # 2. data: generated images (B, 3, S, S) and masks (B, 1, S, S); test images from another seed
    images, masks = make_camouflage(s.train_images, size=s.size, seed=config.seed)
    test_images, test_masks = make_camouflage(s.test_images, size=s.size, seed=config.seed + 1_000_003)
    # one optimizer step = `accum` micro-batches of `micro` distinct images each
    accum = config.accumulation_steps
    if accum > s.train_images:
        raise ValueError(
            f"accumulation_steps must be at most {s.train_images} (the training images at scale "
            f"{config.scale!r}) but got {accum}"
        )
    micro = min(config.batch_size, s.train_images // accum)
    steps_per_epoch = s.train_images // (micro * accum)

    # 3. model and trainer kit (optimizer, staged scheduler, GradScaler, clipper, health monitor)
    torch.manual_seed(config.seed)
    model = build_model(config)
    trainer = ctx.trainer(model, steps_per_epoch)

    # 4. resume from the newest checkpoint, if any (model, trainer incl. scaler, epochs done, history)
    resumed = ctx.resume(trainer)
    history = list(resumed.extra.get("history", []))

    # 5. train: stages -> epochs -> micro-batches (`accum` per optimizer step)
    value = float(history[-1][metric]) if history else float("nan")
    for run in trainer.epochs(start_epoch=resumed.epochs_done):
        epoch, n_steps, stage = run.epoch, run.steps, run.stage
        # this epoch's batches depend on (seed, epoch) only, so a resume repeats them
        g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(s.train_images, generator=g)
        flips = torch.rand(n_steps, generator=g) < 0.5
        model.train()
        losses = []
        for j in range(run.micro_batches):
            # a. micro-batch j of optimizer step i, flipped with its step half of the time:
            #    (B, 3, S, S), (B, 1, S, S); without accumulation the step's whole batch
            i = j // accum
            idx = order[j * micro : (j + 1) * micro]
            x, y = images[idx], masks[idx]
            if flips[i]:
                x, y = x.flip(-1), y.flip(-1)
            x, y = x.to(ctx.device), y.to(ctx.device)
            # b. forward under autocast (fp16/bf16 on CUDA per amp.dtype), loss in float32
            with ctx.autocast():
                logits = model(x)  # (B, 1, S, S)
            loss = seg_loss(logits, y)
            # c. scaled backward; at a step's last micro-batch unscale, clip, health check,
            #    scaler step, schedule
            trainer.step(loss)
            losses.append(loss.detach())

        # 6. held-out IoU / Dice; plateau schedules step on the metric
        iou, dice = evaluate(model, test_images, test_masks, ctx)
        scores = {"iou": iou, "dice": dice}
        value = scores[metric]
        trainer.scheduler.step_metric(value)
        mean_loss = float(torch.stack(losses).mean())
        history.append(
            {
                "epoch": epoch,
                "stage": stage.name,
                "loss": mean_loss if math.isfinite(mean_loss) else float("inf"),
                "iou": iou,
                "dice": dice,
            }
        )

        # 7. checkpoint (model, trainer incl. scaler, epochs done, history), then report (may prune)
        ctx.save_progress(trainer, epochs_done=epoch, extra={"history": history})
        ctx.report(value, trainer.global_step)
    return value
