"""An MLP regressor with LayerNorm and Dropout on scikit-learn's diabetes data (shipped, not downloaded).

Towers: ``body`` (two Linear-LayerNorm-ReLU-Dropout blocks) and ``head`` (the linear output).
Features and target are standardised with the training rows' statistics; the loss is the mean
squared error, and the sweep minimises ``val_mse`` on a held-out fifth of the 442 patients, in
standardised target units (predicting the training mean scores about 1). An epoch is a fixed
number of shuffled batches, so the run length does not depend on the split.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

#: scale -> (hidden width, steps per epoch)
SIZES = {"tiny": (32, 5), "small": (256, 10), "full": (512, 10)}
DROPOUT = 0.1


@functools.cache
def diabetes(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standardised train and held-out rows: ``(x_train, y_train, x_val, y_val)``, x (N, 10), y (N,)."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(scaled=False)
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.float32)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = len(y) * 4 // 5
    train, val = order[:cut], order[cut:]
    x_mean, x_std = x[train].mean(dim=0), x[train].std(dim=0)
    y_mean, y_std = y[train].mean(), y[train].std()
    x, y = (x - x_mean) / x_std, (y - y_mean) / y_std
    return x[train], y[train], x[val], y[val]


def block(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.ReLU(), nn.Dropout(DROPOUT))


class MLPRegressor(nn.Module):
    def __init__(self, n_features: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(block(n_features, hidden), block(hidden, hidden))
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(1)  # (B,) standardised predictions


def objective(config, ctx) -> float:
    """Train per the trial's config; return the held-out mean squared error (standardised units)."""
    hidden, steps_per_epoch = SIZES[config.scale]
    x_train, y_train, x_val, y_val = diabetes(config.seed)
    x_val, y_val = x_val.to(ctx.device), y_val.to(ctx.device)
    g = torch.Generator().manual_seed(config.seed)
    model = MLPRegressor(x_train.shape[1], hidden)
    trainer = ctx.trainer(
        model, steps_per_epoch=steps_per_epoch
    )  # gradsweep: optimizer, schedule, clip, health
    value = math.nan
    for run in trainer.epochs():
        model.train()
        order = torch.randperm(len(y_train), generator=g)
        for i in range(run.steps):
            idx = order[i * config.batch_size : (i + 1) * config.batch_size]
            with ctx.autocast():
                loss = F.mse_loss(model(x_train[idx].to(ctx.device)).float(), y_train[idx].to(ctx.device))
            trainer.step(loss)  # gradsweep: backward, clip per tower, monitor, step, schedule
        model.eval()
        with torch.no_grad():
            value = F.mse_loss(model(x_val).float(), y_val).item()
        ctx.report(value if math.isfinite(value) else 1e6, trainer.global_step)  # gradsweep: may prune
    return value
