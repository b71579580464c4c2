"""A small BatchNorm CNN classifying scikit-learn's 8x8 digits.

Towers: ``conv`` (three conv-BatchNorm-ReLU blocks) and ``head`` (the linear classifier). The
sweep maximises ``val_accuracy`` on a held-out fifth of the digits (chance is about 0.1).
An epoch is a fixed number of shuffled batches, so the run length does not depend on the split.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

#: scale -> (conv width, steps per epoch)
SIZES = {"tiny": (8, 5), "small": (16, 25), "full": (32, 50)}


@functools.cache
def digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train and held-out digits: ``(x_train, y_train, x_val, y_val)``, images (N, 1, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = len(y) * 4 // 5
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class DigitCNN(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            block(1, width), block(width, 2 * width), nn.MaxPool2d(2), block(2 * width, 2 * width)
        )
        self.head = nn.Linear(2 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3)))  # (B, 10) class logits


def objective(config, ctx) -> float:
    """Train per the trial's config; return the held-out accuracy."""
    width, steps_per_epoch = SIZES[config.scale]
    x_train, y_train, x_val, y_val = digits(config.seed)
    x_val, y_val = x_val.to(ctx.device), y_val.to(ctx.device)
    g = torch.Generator().manual_seed(config.seed)
    model = DigitCNN(width)
    trainer = ctx.trainer(
        model, steps_per_epoch=steps_per_epoch
    )  # gradsweep: optimizer, schedule, clip, health
    accuracy = 0.0
    for run in trainer.epochs():
        model.train()
        order = torch.randperm(len(y_train), generator=g)
        for i in range(run.steps):
            idx = order[i * config.batch_size : (i + 1) * config.batch_size]
            with ctx.autocast():
                loss = F.cross_entropy(
                    model(x_train[idx].to(ctx.device)).float(), y_train[idx].to(ctx.device)
                )
            trainer.step(loss)  # gradsweep: backward, clip per tower, monitor, step, schedule
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_val).argmax(dim=1) == y_val).float().mean().item()
        ctx.report(accuracy, trainer.global_step)  # gradsweep: may prune
    return accuracy
