"""Networks shared by the built-in objectives: :class:`Backbone`, the CNN on 8x8 digits.

``finetune`` (seed 002) and ``moco`` (seed 001) both train it as their ``backbone`` tower; the
parameter names (``conv1``, ``conv2``, ``fc``) are what the presets' tower patterns match.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Backbone(nn.Module):
    """CNN on ``(B, 1, 8, 8)`` digits -> ``(B, dim)`` features.

    Args:
        width: channels of the first convolution (the second has ``2 * width``).
        dim: feature size.
        relu_features: apply a ReLU to the features (``finetune``'s classifier does; ``moco``'s
            projector takes them raw).
    """

    def __init__(self, width: int, dim: int, *, relu_features: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.fc = nn.Linear(2 * width * 4 * 4, dim)
        self.relu_features = relu_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(x))  # (B, w, 8, 8)
        h = F.relu(self.conv2(h))  # (B, 2w, 4, 4)
        features = self.fc(h.flatten(1))  # (B, dim)
        return F.relu(features) if self.relu_features else features
