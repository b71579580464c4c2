"""A PyTorch Lightning two-tower contrastive model (CLIP-style, seed 003's shape) swept by gradsweep.

The LightningModule is ordinary Lightning code; gradsweep adds two lines to it
(``configure_optimizers`` returns ``gradsweep_optimizers(self)``) and a four-line objective.

Sweep it:        gradsweep launch examples/lightning/space.yaml -n 6
One config:      gradsweep try --space examples/lightning/space.yaml --baseline good
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from gradsweep.objectives.lightning import GradsweepCallback, gradsweep_optimizers


class EpochShuffle(Sampler[int]):
    """A shuffle that depends on (seed, epoch) only: Lightning calls ``set_epoch``, so a resumed fit
    sees the batches an uninterrupted one would."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):  # type: ignore[no-untyped-def]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class PairedViews(pl.LightningDataModule):
    """Generated paired views: an "image" vector and a noisy linear "caption" of it."""

    def __init__(self, seed: int, n_train: int = 512, n_val: int = 256, batch_size: int = 64) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        mix = torch.randn(12, 8, generator=g)
        images = torch.randn(n_train + n_val, 12, generator=g)
        captions = images @ mix + 0.3 * torch.randn(n_train + n_val, 8, generator=g)
        self.train_set = TensorDataset(images[:n_train], captions[:n_train])
        self.val_set = TensorDataset(images[n_train:], captions[n_train:])
        self.batch_size = batch_size
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        sampler = EpochShuffle(len(self.train_set), self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=len(self.val_set))


class ContrastiveTowers(pl.LightningModule):
    """Image and text encoders with a learnable temperature, trained with the symmetric InfoNCE loss."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.image_encoder = nn.Sequential(nn.Linear(12, 64), nn.GELU(), nn.Linear(64, dim))
        self.text_encoder = nn.Sequential(nn.Linear(8, 64), nn.GELU(), nn.Linear(64, dim))
        self.logit_scale = nn.Parameter(torch.tensor(2.0))  # log(1 / temperature)

    def forward(self, images: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        zi = F.normalize(self.image_encoder(images), dim=-1)
        zt = F.normalize(self.text_encoder(captions), dim=-1)
        return self.logit_scale.exp() * zi @ zt.T  # (B, B) similarity logits

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(*batch)
        target = torch.arange(len(logits), device=logits.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        return loss, (logits.argmax(dim=1) == target).float().mean()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, accuracy = self._loss(batch)
        self.log("val_loss", torch.nan_to_num(loss, nan=1e6, posinf=1e6))  # a diverged model scores badly
        self.log("val_accuracy", accuracy)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return gradsweep_optimizers(self)  # gradsweep: per-tower optimizer and schedule from the trial


def objective(config, ctx) -> float:
    """Fit the towers per the trial's config; the sweep minimises the last ``val_loss``."""
    sweep = GradsweepCallback(config, ctx, monitor="val_loss")
    trainer = pl.Trainer(**sweep.trainer_kwargs(), deterministic=True)
    trainer.fit(
        ContrastiveTowers(),
        PairedViews(config.seed, batch_size=config.batch_size),
        ckpt_path=sweep.resume_path(),
    )
    return sweep.last_value
