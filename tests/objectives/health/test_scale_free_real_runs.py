"""The scale-free rules on real tiny training runs: each pathology happens for real, nothing is faked.

A small MLP classifier on generated, learnable data (towers ``body`` and ``head``), trained through
the same :class:`~gradsweep.objectives.trainer.Trainer` kit an objective gets, with the default
``health:`` settings except ``check_every``.
"""

from __future__ import annotations

import torch
from torch import nn

from gradsweep.objectives.health import HealthReport, Verdict
from gradsweep.objectives.trainer import Trainer
from gradsweep.spaces.trial_config import ClipConfig, TowerConfig, TrialConfig


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh())
        self.head = nn.Linear(64, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2048, 16, generator=g)
    y = (x[:, :8] * torch.randn(8, generator=g)).argmax(dim=1)  # learnable: a linear rule
    return x, y


def _run(
    lr: float,
    *,
    steps: int = 200,
    reduction: str = "mean",
    loss_scale: float = 1.0,
    spike_at: int | None = None,
    clip: float | None = None,
    health: dict | None = None,
) -> list[HealthReport]:
    torch.manual_seed(0)
    config = TrialConfig(
        objective="test",
        optimizer={"name": "adamw"},
        towers=[
            TowerConfig(name="body", patterns=["body.*"], lr=lr, weight_decay=0.0),
            TowerConfig(name="head", patterns=["head.*"], lr=lr, weight_decay=0.0),
        ],
        clip=ClipConfig(max_norm=clip),
        schedule={"kind": "constant", "warmup_fraction": 0.0},
        stages=[{"name": "train", "steps": steps}],
        health={"check_every": 10, **(health or {})},
    )
    model = Classifier()
    trainer = Trainer(model, config, steps_per_epoch=steps, device=torch.device("cpu"))
    x, y = _data()
    g = torch.Generator().manual_seed(1)
    reports = []
    for step in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        yb = (y[idx] + 1) % 8 if step == spike_at else y[idx]  # one batch with every label wrong
        loss = loss_scale * nn.functional.cross_entropy(model(x[idx]), yb, reduction=reduction)
        trainer.step(loss)
        if trainer.latest_health is not None and trainer.latest_health.step == step:
            reports.append(trainer.latest_health)
    return reports


def _unstable(reports: list[HealthReport]) -> HealthReport | None:
    return next((r for r in reports if r.verdict is Verdict.UNSTABLE), None)


def test_a_good_lr_is_healthy_at_every_check() -> None:
    reports = _run(3e-3)
    assert len(reports) == 20 and all(r.verdict is Verdict.HEALTHY for r in reports), [
        (r.step, r.reasons) for r in reports if r.reasons
    ]
    assert reports[-1].metrics["health/loss"] < 0.5 * reports[0].metrics["health/loss"]  # it learned


def test_a_diverging_lr_is_pruned_by_the_hard_divergence_rule_naming_the_loss() -> None:
    reports = _run(3.0)  # Adam at LR 3 on every tower: the loss runs far above where it started
    first = _unstable(reports)
    assert first is not None and "divergence" in first.unstable_rules
    assert any(r.startswith("loss ") and "above its start" in r for r in first.reasons), first.reasons
    # early: within the first quarter of the run
    assert first.step < 50


def test_large_steady_gradient_norms_stay_healthy() -> None:
    # a summed loss times 100 (as a loss weight might be): gradient norms ~6400x the mean loss's from
    # the first step on, and steady; Adam is scale-free, so the run trains as the mean-loss one does
    reports = _run(3e-3, reduction="sum", loss_scale=100.0)
    norms = [r.metrics["health/grad_norm_global"] for r in reports]
    assert min(norms) > 1e3  # over the absolute line the defaults had before they were relative
    assert all(r.verdict is Verdict.HEALTHY for r in reports), [
        (r.step, r.reasons) for r in reports if r.reasons
    ]
    # that absolute line, set as an explicit override, still works: exploding, and nothing else
    flagged = _unstable(
        _run(3e-3, reduction="sum", loss_scale=100.0, health={"exploding": {"threshold": 1e3}})
    )
    assert flagged is not None and flagged.unstable_rules == ["exploding"]
    assert any("grad norm" in r and "> 1e+03" in r for r in flagged.reasons)


def test_one_corrupted_batch_is_a_loss_spike_warning_not_a_prune() -> None:
    reports = _run(3e-3, spike_at=125)
    at = next(r for r in reports if r.step == 129)
    assert at.verdict is Verdict.WARNING
    assert any(r.startswith("loss spike") and "at step 125" in r for r in at.reasons), at.reasons
    # one spike is not sustained: the run recovers and no rule calls it unstable
    assert _unstable(reports) is None
