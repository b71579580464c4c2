"""Tiny real models and configs shared by the apply tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradsweep.spaces.trial_config import StageConfig, TowerConfig, TrialConfig


class TextEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.proj = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(self.embed(tokens).mean(dim=1)))  # (B, 8)


class TwoTower(nn.Module):
    """Video tower (Conv1d + Linear + LayerNorm), text tower and a learnable temperature."""

    def __init__(self) -> None:
        super().__init__()
        self.video_backbone = nn.Sequential(
            nn.Conv1d(3, 4, kernel_size=3), nn.Flatten(), nn.Linear(24, 8), nn.LayerNorm(8)
        )
        self.text_encoder = TextEncoder()
        self.temperature = nn.Parameter(torch.tensor(0.07).log())

    def forward(self, video: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        v = nn.functional.normalize(self.video_backbone(video), dim=-1)  # (B, 8)
        t = nn.functional.normalize(self.text_encoder(tokens), dim=-1)  # (B, 8)
        logits = v @ t.T / self.temperature.exp()  # (B, B)
        target = torch.arange(len(v))
        return nn.functional.cross_entropy(logits, target)


class FineTune(nn.Module):
    """Backbone + head, seed 002's frozen-then-unfrozen setting."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def two_tower_config(**overrides: object) -> TrialConfig:
    data: dict[str, object] = {
        "objective": "test",
        "towers": [
            {"name": "video_backbone", "patterns": ["video_backbone.*"], "lr": 1e-3, "weight_decay": 0.05},
            {"name": "text_encoder", "patterns": ["text_encoder.*"], "lr": 5e-4, "weight_decay": 0.01},
            {"name": "temperature", "patterns": ["temperature"], "lr": 1e-4, "weight_decay": 0.2},
        ],
    }
    data.update(overrides)
    return TrialConfig.model_validate(data)


def finetune_config(**overrides: object) -> TrialConfig:
    data: dict[str, object] = {
        "objective": "test",
        "towers": [
            TowerConfig(name="backbone", patterns=("backbone.*",), lr=1e-3, weight_decay=0.01),
            TowerConfig(name="head", patterns=("head.*",), lr=1e-3, weight_decay=0.01),
        ],
        "schedule": {"kind": "cosine", "warmup_steps": 4, "min_lr_ratio": 0.1},
        "stages": [
            StageConfig(name="head_only", steps=10, train=("head",)),
            StageConfig(name="all", steps=30, lr_multipliers={"*": 0.5, "backbone": 0.1}),
        ],
    }
    data.update(overrides)
    return TrialConfig.model_validate(data)


@pytest.fixture
def two_tower() -> TwoTower:
    torch.manual_seed(0)
    return TwoTower()


@pytest.fixture
def finetune_model() -> FineTune:
    torch.manual_seed(0)
    return FineTune()


@pytest.fixture
def make_two_tower_config() -> object:
    """``(**overrides) -> TrialConfig`` for :class:`TwoTower`."""
    return two_tower_config


@pytest.fixture
def make_finetune_config() -> object:
    """``(**overrides) -> TrialConfig`` for :class:`FineTune` (head-only 10 steps, then all 30)."""
    return finetune_config


@pytest.fixture
def make_finetune_model() -> object:
    """``() -> FineTune`` with fixed initial weights, for tests that need two identical models."""

    def make() -> FineTune:
        torch.manual_seed(0)
        return FineTune()

    return make
