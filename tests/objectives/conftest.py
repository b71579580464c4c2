"""Fixtures shared by the objective tests: a one-tower config and a tiny regression model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from gradsweep.spaces.health import HealthConfig
from gradsweep.spaces.trial_config import MetricConfig, StageConfig, TowerConfig, TrialConfig


def linear_config(*, steps: int = 6, check_every: int = 2, seed: int = 0, lr: float = 1e-2) -> TrialConfig:
    """A config for ``torch.nn.Linear``-sized models: one tower ``all`` over every parameter."""
    return TrialConfig(
        objective="user",
        seed=seed,
        metric=MetricConfig(name="neg_mse"),
        towers=[TowerConfig(name="all", patterns=["*"], lr=lr, weight_decay=0.01)],
        stages=[StageConfig(name="train", steps=steps)],
        health=HealthConfig(check_every=check_every),
    )


@pytest.fixture
def make_linear_config() -> Callable[..., TrialConfig]:
    """:func:`linear_config` (keyword-only ``steps``, ``check_every``, ``seed``, ``lr``)."""
    return linear_config


@pytest.fixture
def regression_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed ``(x, y)`` regression batch: 32 rows, 4 features, 1 target."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
