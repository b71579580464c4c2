"""GradsweepCallback: a real Lightning fit trained, clipped, scheduled, watched and pruned per the trial."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import lightning.pytorch as pl
import optuna
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler, TensorDataset

from gradsweep.objectives.api import NullReporter, TrialContext
from gradsweep.objectives.lightning import GradsweepCallback, LightningSetupError, gradsweep_optimizers
from gradsweep.search.engine.optuna_reporter import OptunaReporter
from gradsweep.search.pruner import HealthPruner
from gradsweep.spaces.health import HealthConfig
from gradsweep.spaces.trial_config import (
    ClipConfig,
    MetricConfig,
    ScheduleConfig,
    StageConfig,
    TowerConfig,
    TrialConfig,
)
from tests.objectives._support import Interrupted, StopAfter

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", module="lightning")


class EpochShuffle(Sampler[int]):
    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.epoch)).tolist())

    def __len__(self) -> int:
        return self.n


def loaders(batch: int = 16) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 6, generator=g)
    y = x @ torch.randn(6, 1, generator=g)
    train = TensorDataset(x[:128], y[:128])
    return (
        DataLoader(train, batch_size=batch, sampler=EpochShuffle(128)),
        DataLoader(TensorDataset(x[128:], y[128:]), batch_size=32),
    )


class Regressor(pl.LightningModule):
    """Two towers (body, head); ``own_optimizer`` returns a plain SGD instead of the trial's."""

    def __init__(self, *, own_optimizer: bool = False, scale: float = 1.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh())
        self.head = torch.nn.Linear(16, 1)
        self.own_optimizer = own_optimizer
        self.scale = scale
        self.lrs: list[dict[str, float]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        self.lrs.append(
            {g["tower"]: g["lr"] for g in self.trainer.optimizers[0].param_groups if "tower" in g}
        )
        x, y = batch
        return F.mse_loss(self(x), y) * self.scale

    def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        if self.own_optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)
        return gradsweep_optimizers(self)


def config(
    *, lr: float = 0.01, clip: float | None = 0.5, epochs: int = 4, check_every: int = 4
) -> TrialConfig:
    return TrialConfig(
        objective="user",
        metric=MetricConfig(name="val_mse", direction="minimize"),
        towers=[
            TowerConfig(name="body", patterns=["body.*"], lr=lr, weight_decay=0.01),
            TowerConfig(name="head", patterns=["head.*"], lr=lr * 0.1),
        ],
        schedule=ScheduleConfig(kind="cosine", warmup_steps=4),
        clip=ClipConfig(max_norm=clip),
        stages=[StageConfig(name="train", epochs=epochs)],
        health=HealthConfig(check_every=check_every),
    )


def fit(
    cfg: TrialConfig, ctx: TrialContext, module: Regressor | None = None, **overrides: object
) -> tuple[GradsweepCallback, Regressor]:
    sweep = GradsweepCallback(cfg, ctx, monitor="val_mse")
    module = module or Regressor()
    kwargs = {**sweep.trainer_kwargs(), **overrides}
    pl.Trainer(**kwargs).fit(module, *loaders(), ckpt_path=sweep.resume_path())
    return sweep, module


def test_a_fit_trains_per_the_config_and_reports_each_validation() -> None:
    cfg = config()
    reporter = NullReporter()
    ctx = TrialContext(cfg, reporter=reporter, device="cpu")
    sweep, module = fit(cfg, ctx)
    # one report per validation (4 epochs of 8 optimizer steps), at the optimizer step reached
    assert [r.step for r in reporter.history] == [8, 16, 24, 32]
    # the total was declared, so the pruner leaves the final report alone
    assert reporter.total_steps == 32
    # the objective's value is the last validation's metric
    assert sweep.last_value == reporter.history[-1].value and math.isfinite(sweep.last_value)
    # each tower trained at the staged schedule's LR for every step (warmup then cosine)
    expected = [sweep.scheduler.lr_at(step) for step in range(32)]
    assert len(module.lrs) == 32
    for got, want in zip(module.lrs, expected, strict=True):
        assert got == pytest.approx(want)
    # each report carries the newest check (one every 4 optimizer steps: steps 3, 7, ...)
    health = reporter.health_reports
    assert [h.step for h in health] == [7, 15, 23, 31]
    # clipping at 0.5 held the post-clip global norm
    assert all(h.metrics["health/grad_norm_global_post"] <= 0.5 + 1e-4 for h in health)


def test_accumulation_steps_gives_one_check_per_optimizer_step() -> None:
    cfg = config(epochs=2, check_every=2).model_copy(update={"accumulation_steps": 2})
    reporter = NullReporter()
    ctx = TrialContext(cfg, reporter=reporter, device="cpu")
    sweep, module = fit(cfg, ctx)
    # the config's accumulation_steps became Lightning's accumulate_grad_batches
    assert sweep.trainer_kwargs()["accumulate_grad_batches"] == 2
    # 8 batches per epoch, 2 per optimizer step: 4 optimizer steps per epoch, 8 in all
    assert reporter.total_steps == 8 and [r.step for r in reporter.history] == [4, 8]
    # the monitor counted optimizer steps (checks at 3 and 7), not the 16 micro-batches (7 and 15)
    assert [h.step for h in reporter.health_reports] == [3, 7]
    # and judged the un-normalised loss (Lightning divides the backward loss by accumulate_grad_batches)
    x, y = next(iter(loaders()[1]))
    assert reporter.health_reports[0].metrics["health/loss"] > 0.1 * float(F.mse_loss(module(x), y).detach())


def test_a_diverging_fit_is_pruned_unstable_with_its_reason() -> None:
    # a loss scaled by 1e30 overflows to inf: non-finite, pruned at the first report after the check
    cfg = config(lr=0.01, clip=None)

    def objective(trial: optuna.Trial) -> float:
        ctx = TrialContext(cfg, reporter=OptunaReporter(trial), device="cpu")
        sweep, _ = fit(cfg, ctx, module=Regressor(scale=1e39))
        return sweep.last_value

    study = optuna.create_study(direction="minimize", pruner=HealthPruner())
    study.optimize(objective, n_trials=1, catch=())
    trial = study.trials[0]
    # PRUNED, as unstable, with the health rule's reason, at the first report (not the end)
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["gradsweep.prune.kind"] == "unstable"
    assert "non-finite" in trial.user_attrs["gradsweep.prune.reason"]
    assert trial.last_step == 8


def test_a_fit_resumes_from_its_lightning_checkpoint(tmp_path: Path) -> None:
    cfg = config()
    whole = NullReporter()
    fit(cfg, TrialContext(cfg, reporter=whole, device="cpu", checkpoint_dir=tmp_path / "whole"))
    # the first attempt dies at its third report (after epoch 3's checkpoint was written, before its report)
    with pytest.raises(Interrupted):
        fit(cfg, TrialContext(cfg, reporter=StopAfter(3), device="cpu", checkpoint_dir=tmp_path / "t"))
    # Lightning's checkpoints are in the trial's store, the newest two kept (epochs 2 and 3)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["ckpt-000002.pt", "ckpt-000003.pt"]
    reporter = NullReporter()
    sweep, module = fit(
        cfg, TrialContext(cfg, reporter=reporter, device="cpu", checkpoint_dir=tmp_path / "t")
    )
    # the retry trained only the epoch after the checkpoint: epoch 4 (steps 25-32)
    assert [r.step for r in reporter.history] == [32] and len(module.lrs) == 8
    # the restored schedule continued where it stopped
    assert module.lrs[0] == pytest.approx(sweep.scheduler.lr_at(24))
    # and the final value is the uninterrupted run's
    assert reporter.history[-1].value == pytest.approx(whole.history[-1].value, rel=1e-6)
    # the restored monitor carried on: the same checks with the same metrics (spike scores use its history)
    assert [h.step for h in reporter.health_reports] == [h.step for h in whole.health_reports][-1:]
    assert reporter.health_reports[-1].metrics == pytest.approx(whole.health_reports[-1].metrics, rel=1e-5)


@pytest.mark.parametrize(
    ("module", "overrides", "message"),
    [
        (Regressor(own_optimizer=True), {}, r"configure_optimizers must return gradsweep_optimizers\(self\)"),
        (Regressor(), {"gradient_clip_val": 1.0}, "would clip a second time"),
        (Regressor(), {"max_epochs": 9}, "plans 72 optimizer steps but the config's stages have 32"),
    ],
    ids=["own-optimizer", "gradient-clip-val", "max-epochs"],
)
def test_wiring_mistakes_are_refused_with_what_to_change(module, overrides, message) -> None:  # type: ignore[no-untyped-def]
    cfg = config()
    with pytest.raises(LightningSetupError, match=message):
        fit(cfg, TrialContext(cfg, device="cpu"), module=module, **overrides)


def test_an_unlogged_monitor_names_the_metrics_that_were_logged() -> None:
    cfg = config(epochs=1)
    sweep = GradsweepCallback(cfg, TrialContext(cfg, device="cpu"), monitor="val_loss")
    # the message lists what validation logged and how to log the monitor
    with pytest.raises(LightningSetupError, match=r"monitor='val_loss' was not logged.*val_mse"):
        pl.Trainer(**sweep.trainer_kwargs()).fit(Regressor(), *loaders())
