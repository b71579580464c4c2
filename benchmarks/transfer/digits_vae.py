"""A variational autoencoder of scikit-learn's 8x8 digits, in a loop that calls ``optimizer.step()`` itself.

Towers: ``encoder`` (an MLP to the posterior's mean and log-variance) and ``decoder`` (an MLP
to Bernoulli logits of the 64 pixels, scaled to [0, 1]). The loss is the negative ELBO per image
(reconstruction cross-entropy plus the KL to a standard normal, in nats); the sweep minimises
``val_neg_elbo`` on held-out digits, with fixed noise for the reparameterisation.
The loop keeps its own step, as ``examples/own_step`` does: gradsweep watches ``opt.step()``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.transfer.digits_cnn import digits

#: scale -> (hidden width, latent size, steps per epoch)
SIZES = {"tiny": (32, 4, 5), "small": (128, 8, 25), "full": (256, 16, 50)}


class VAE(nn.Module):
    def __init__(self, hidden: int, latent: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 64)
        )

    def neg_elbo(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Mean negative ELBO of ``x`` (B, 64) with standard-normal ``noise`` (B, latent)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + (0.5 * logvar).exp() * noise
        recon = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").sum(dim=1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return (recon + kl).mean()


def objective(config, ctx) -> float:
    """Train per the trial's config; return the held-out negative ELBO (nats per image)."""
    hidden, latent, steps_per_epoch = SIZES[config.scale]
    x_train, _, x_val, _ = digits(config.seed)
    x_train, x_val = x_train.flatten(1), x_val.flatten(1).to(ctx.device)
    g = torch.Generator().manual_seed(config.seed)
    val_noise = torch.randn(len(x_val), latent, generator=g).to(ctx.device)
    model = VAE(hidden, latent)
    trainer = ctx.trainer(model, steps_per_epoch=steps_per_epoch)  # gradsweep: the trial's parts
    opt, sched, scaler = trainer.optimizer, trainer.scheduler, trainer.scaler
    watch = trainer.watch()  # gradsweep: health from opt.step() itself
    value = math.nan
    for run in trainer.epochs():
        order = torch.randperm(len(x_train), generator=g)
        for i in range(run.steps):
            x = x_train[order[i * config.batch_size : (i + 1) * config.batch_size]].to(ctx.device)
            noise = torch.randn(len(x), latent, generator=g).to(ctx.device)
            with ctx.autocast():
                loss = model.neg_elbo(x, noise)
            scaler.scale(loss).backward()
            watch.loss(loss)  # gradsweep: the loss the health rules judge
            scaler.unscale_(opt)
            watch.clip()  # gradsweep: the config's clipping, per tower then global
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            sched.step()
        with torch.no_grad():
            value = model.neg_elbo(x_val, val_noise).item()
        ctx.report(value if math.isfinite(value) else 1e6, trainer.global_step)  # gradsweep: may prune
    return value
