"""A complete bring-your-own objective: an ordinary two-tower training loop plus five gradsweep lines.

Run it in a sweep:   gradsweep launch examples/byo/space.yaml -n 6 --scale tiny
Run one config:      gradsweep try --objective examples/byo/my_objective.py:objective --config cfg.yaml
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TwoTower(nn.Module):
    """Two encoders of paired views; trained so that matching pairs score highest."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.left = nn.Sequential(nn.Linear(8, dim), nn.LayerNorm(dim), nn.GELU(), nn.Linear(dim, dim))
        self.right = nn.Sequential(nn.Linear(8, dim), nn.LayerNorm(dim), nn.GELU(), nn.Linear(dim, dim))
        self.temperature = nn.Parameter(torch.tensor(0.1).log())

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        za, zb = F.normalize(self.left(a), dim=-1), F.normalize(self.right(b), dim=-1)
        return za @ zb.T / self.temperature.exp()  # (B, B) similarity logits


def objective(config, ctx) -> float:
    g = torch.Generator().manual_seed(config.seed)
    mix = torch.randn(8, 8, generator=g)
    a = torch.randn(512, 8, generator=g)
    b = a @ mix + 0.1 * torch.randn(512, 8, generator=g)  # the second view of each pair
    a, b = a.to(ctx.device), b.to(ctx.device)
    model = TwoTower()
    steps_per_epoch = 512 // config.batch_size
    trainer = ctx.trainer(
        model, steps_per_epoch=steps_per_epoch
    )  # gradsweep: optimizer, schedule, clip, health
    for step in range(trainer.total_steps):
        idx = torch.randint(0, 512, (config.batch_size,), generator=g).to(ctx.device)
        with ctx.autocast():  # gradsweep: AMP per config on CUDA, no-op on CPU
            logits = model(a[idx], b[idx])
        loss = F.cross_entropy(logits.float(), torch.arange(len(idx), device=ctx.device))
        trainer.step(loss)  # gradsweep: backward, unscale, clip per tower, monitor, step
        if (step + 1) % steps_per_epoch == 0:
            with torch.no_grad():
                accuracy = (
                    (model(a, b).argmax(dim=1) == torch.arange(512, device=ctx.device)).float().mean().item()
                )
            ctx.report(accuracy, step)  # gradsweep: may stop an unstable or hopeless trial
    return accuracy
