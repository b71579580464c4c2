"""Gradient accumulation in :class:`Trainer`: N micro-batches of B make the update of one batch of N*B.

A real two-tower MLP trained by AdamW and SGD, with per-tower and global clipping that both cut,
a warmed-up cosine schedule and the health monitor: accumulated training must land on the same
parameters as plain training on the whole batch, and count steps, checks and schedules in
optimizer steps.
"""

from __future__ import annotations

import pytest
import torch

from gradsweep.objectives import contrastive, finetune, moco, multitower
from gradsweep.objectives.api import TrialContext, refuse_accumulation
from gradsweep.objectives.health import HealthReport
from gradsweep.objectives.trainer import Trainer
from gradsweep.spaces.health import HealthConfig
from gradsweep.spaces.sampling import baseline_config
from gradsweep.spaces.space import load_space
from gradsweep.spaces.trial_config import (
    ClipConfig,
    OptimizerConfig,
    ScheduleConfig,
    StageConfig,
    TowerConfig,
    TrialConfig,
)

BATCH = 32
STEPS = 5
CPU = torch.device("cpu")


class TwoTower(torch.nn.Module):
    """``first`` (6 -> 16, tanh) and ``second`` (16 -> 1): the two towers."""

    def __init__(self) -> None:
        super().__init__()
        self.first = torch.nn.Linear(6, 16)
        self.second = torch.nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.tanh(self.first(x)))  # (B, 1)


def _config(
    accumulation: int, *, optimizer: str = "adamw", check_every: int = 1, steps: int = STEPS
) -> TrialConfig:
    """Batch 32 per optimizer step in ``accumulation`` micro-batches; clipping at 1.0 (first) and 0.5."""
    return TrialConfig(
        objective="user",
        batch_size=BATCH // accumulation,
        accumulation_steps=accumulation,
        optimizer=OptimizerConfig(name=optimizer),
        towers=[
            TowerConfig(name="first", patterns=["first.*"], lr=0.05, weight_decay=0.01, clip_max_norm=1.0),
            TowerConfig(name="second", patterns=["second.*"], lr=0.02, weight_decay=0.01),
        ],
        clip=ClipConfig(max_norm=0.5),
        schedule=ScheduleConfig(warmup_steps=1),
        stages=[StageConfig(name="train", steps=steps)],
        health=HealthConfig(check_every=check_every),
    )


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    """One batch per optimizer step: x ``(STEPS, 32, 6)``, y ``(STEPS, 32, 1)``."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, BATCH, 6, generator=g)
    return x, 3 * x.sum(dim=-1, keepdim=True)


def _train(config: TrialConfig, calls: int | None = None) -> tuple[Trainer, list[HealthReport]]:
    """Train a fresh TwoTower on :func:`_data`, one ``trainer.step`` per micro-batch."""
    torch.manual_seed(0)
    trainer = Trainer(TwoTower(), config, steps_per_epoch=STEPS, device=CPU)
    x, y = _data()
    micro, reports = config.batch_size, []
    for j in range(calls if calls is not None else STEPS * config.accumulation_steps):
        i, k = divmod(j, config.accumulation_steps)  # optimizer step i, micro-batch k of it
        rows = slice(k * micro, (k + 1) * micro)
        loss = torch.nn.functional.mse_loss(trainer.model(x[i, rows]), y[i, rows])
        report = trainer.step(loss)
        if report is not None:
            reports.append(report)
    return trainer, reports


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_four_micro_batches_give_the_update_of_one_batch_four_times_larger(optimizer: str) -> None:
    whole, whole_reports = _train(_config(1, optimizer=optimizer))
    accumulated, accumulated_reports = _train(_config(4, optimizer=optimizer))
    # clipping cut every step, globally (to 0.5) and in tower `first` (over its 1.0), so the
    # comparison covers the clipped path
    assert all(r.metrics["health/grad_norm_global"] > 0.5 for r in whole_reports)
    assert all(r.metrics["health/first/grad_norm_pre"] > 1.0 for r in whole_reports)
    # after 5 optimizer steps the parameters agree to float32 summation order (measured: 6e-8)
    for a, b in zip(whole.model.parameters(), accumulated.model.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    # the health monitor saw the same pre-clip norms and, as the step's loss, the mean of the
    # micro-batch losses, i.e. the whole batch's loss
    for w, a in zip(whole_reports, accumulated_reports, strict=True):
        assert a.metrics["health/loss"] == pytest.approx(w.metrics["health/loss"], rel=1e-5)
        assert a.metrics["health/grad_norm_global"] == pytest.approx(
            w.metrics["health/grad_norm_global"], rel=1e-5
        )


def test_steps_checks_and_schedule_count_optimizer_steps() -> None:
    trainer = Trainer(TwoTower(), _config(3, check_every=2, steps=4), steps_per_epoch=4, device=CPU)
    plain = Trainer(TwoTower(), _config(1, check_every=2, steps=4), steps_per_epoch=4, device=CPU)
    x = torch.randn(BATCH, 6)
    reports, stepped, lrs, plain_lrs = [], [], [], []
    for _ in range(12):  # 12 micro-batch calls = 4 optimizer steps of 3
        report = trainer.step(trainer.model(x).pow(2).mean())
        stepped.append(trainer.stepped)
        if report is not None:
            reports.append(report)
        if trainer.stepped:
            plain.step(plain.model(x).pow(2).mean())
            lrs.append([g["lr"] for g in trainer.optimizer.param_groups])
            plain_lrs.append([g["lr"] for g in plain.optimizer.param_groups])
    # every third call completes an optimizer step
    assert stepped == [False, False, True] * 4
    # 4 optimizer steps: the global step counts them, not the 12 calls
    assert trainer.global_step == 4
    # check_every 2 counts optimizer steps: 2 reports, at optimizer steps 1 and 3 (0-based)
    assert [r.step for r in reports] == [1, 3]
    # each check judged a window of 2 optimizer steps
    assert [r.metrics["health/steps"] for r in reports] == [2, 2]
    # after k optimizer steps the schedule's LR is the one plain training has after k steps
    assert lrs == plain_lrs
    # and the epoch loop's call count is the optimizer steps times the accumulation
    assert [(run.steps, run.micro_batches) for run in trainer.epochs()] == [(4, 12)]


def test_no_report_between_optimizer_steps() -> None:
    trainer = Trainer(TwoTower(), _config(2, check_every=1), steps_per_epoch=STEPS, device=CPU)
    x = torch.randn(BATCH, 6)
    first = trainer.step(trainer.model(x).pow(2).mean())
    second = trainer.step(trainer.model(x).pow(2).mean())
    # a micro-batch that completes no optimizer step returns no report, even with check_every 1
    assert first is None
    # the call that completes it returns the check's report
    assert isinstance(second, HealthReport) and second.step == 0


def test_state_dict_refuses_mid_accumulation_and_resumes_exactly_at_a_step() -> None:
    config = _config(4)
    midway, _ = _train(config, calls=4 * 2 + 1)  # two optimizer steps and one micro-batch
    # saving would lose the pending micro-batch's gradients: refused, with the count
    with pytest.raises(ValueError, match=r"middle of a gradient accumulation \(1 of 4 micro-batches"):
        midway.state_dict()
    at_step, _ = _train(config, calls=4 * 2)
    state = at_step.state_dict()
    # at an optimizer step it saves, with no micro-batch pending
    assert state["micro_batch"] == 0 and state["global_step"] == 2
    full, _ = _train(config)
    resumed = Trainer(TwoTower(), config, steps_per_epoch=STEPS, device=CPU)
    resumed.model.load_state_dict(at_step.model.state_dict())
    resumed.load_state_dict(state)
    x, y = _data()
    for j in range(4 * 2, STEPS * 4):
        i, k = divmod(j, 4)
        rows = slice(k * 8, (k + 1) * 8)
        resumed.step(torch.nn.functional.mse_loss(resumed.model(x[i, rows]), y[i, rows]))
    # the resumed trainer ends where the uninterrupted one did, bit for bit
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_default_accumulation_steps_on_every_call() -> None:
    trainer = Trainer(TwoTower(), _config(1), steps_per_epoch=STEPS, device=CPU)
    x = torch.randn(BATCH, 6)
    trainer.step(trainer.model(x).pow(2).mean())
    # without accumulation every call is an optimizer step and an epoch's calls are its steps
    assert trainer.stepped and trainer.global_step == 1
    assert all(run.micro_batches == run.steps for run in trainer.epochs())


@pytest.mark.parametrize("objective", [contrastive, moco, finetune, multitower], ids=lambda m: m.__name__)
def test_builtins_that_do_not_accumulate_refuse_it(objective) -> None:  # type: ignore[no-untyped-def]
    name = objective.__name__.rsplit(".", 1)[-1]
    config = baseline_config(load_space(name), "after").model_copy(update={"accumulation_steps": 2})
    # the refusal names the key, the objective and the way out, before any training
    with pytest.raises(ValueError, match=rf"accumulation_steps: objective '{name}' does not accumulate"):
        objective.run(config, TrialContext(config, device="cpu"))
    # the same check passes a config without accumulation
    refuse_accumulation(config.model_copy(update={"accumulation_steps": 1}), name)
