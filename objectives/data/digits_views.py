"""scikit-learn's 8x8 digits as tensors: class splits, held-out splits and augmented views.

The digits ship with scikit-learn (1797 images, 10 classes), so the MoCo and fine-tuning
objectives need no download. Everything here is deterministic under an explicit
``torch.Generator``: the same seed gives the same split and the same augmented views.

Example:
    >>> data = load_digits(classes=(0, 1, 2, 3, 4))
    >>> train, test = split(data, test_fraction=0.25, seed=0)
    >>> g = torch.Generator().manual_seed(0)
    >>> v1, v2 = two_views(train.x[:8], g)
    >>> tuple(v1.shape)
    (8, 1, 8, 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SIDE = 8  # digits are 8x8 grey images with values 0..16


@dataclass(frozen=True)
class Digits:
    """Images and labels.

    Attributes:
        x: ``(N, 1, 8, 8)`` float32 in ``[0, 1]``.
        y: ``(N,)`` int64 labels (remapped to ``0..C-1`` when classes were selected).
    """

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, index: torch.Tensor) -> Digits:
        """The subset at ``index`` (a 1-D index tensor)."""
        return Digits(self.x[index], self.y[index])


def load_digits(classes: Sequence[int] | None = None) -> Digits:
    """Load the digits, optionally keeping only ``classes`` (labels remapped to ``0..len-1``).

    Args:
        classes: digit classes to keep, in the order that defines the new labels; ``None`` keeps all.

    Returns:
        The selected images and labels.

    Raises:
        ValueError: if ``classes`` is empty, repeats a class or names one outside ``0..9``.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    y = torch.tensor(bunch.target, dtype=torch.int64)  # (N,)
    if classes is None:
        return Digits(x, y)
    wanted = list(classes)
    if not wanted or len(set(wanted)) != len(wanted) or any(c not in range(10) for c in wanted):
        raise ValueError(f"classes must be distinct digits in 0..9, got {wanted}")
    remap = torch.full((10,), -1, dtype=torch.int64)
    remap[torch.tensor(wanted)] = torch.arange(len(wanted))
    keep = remap[y] >= 0
    return Digits(x[keep], remap[y[keep]])


def split(data: Digits, *, test_fraction: float, seed: int) -> tuple[Digits, Digits]:
    """Shuffle deterministically and split into (train, test).

    Raises:
        ValueError: if ``test_fraction`` is not in ``(0, 1)``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=g)
    n_test = max(1, round(len(data) * test_fraction))
    return data.take(order[n_test:]), data.take(order[:n_test])


def subsample(data: Digits, n: int | None, *, seed: int) -> Digits:
    """At most ``n`` examples chosen deterministically (all of them when ``n`` is None or larger)."""
    if n is None or n >= len(data):
        return data
    g = torch.Generator().manual_seed(seed)
    return data.take(torch.randperm(len(data), generator=g)[:n])


def random_shift(x: torch.Tensor, g: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels in each direction (zero fill).

    Args:
        x: ``(B, C, H, W)`` images.
        g: generator for the offsets.
        max_shift: largest translation in pixels.

    Returns:
        ``(B, C, H, W)`` shifted images.
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift, max_shift, max_shift, max_shift))  # (B, C, H+2s, W+2s)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b)[:, None, None, None]
    chans = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, chans, rows, cols]


def augment(
    x: torch.Tensor,
    g: torch.Generator,
    *,
    max_shift: int = 1,
    contrast: float = 0.4,
    noise: float = 0.1,
    erase: float = 0.15,
) -> torch.Tensor:
    """One random view of each image: shift, contrast jitter, pixel erasing, Gaussian noise.

    Args:
        x: ``(B, 1, 8, 8)`` images in ``[0, 1]`` (on the CPU; move views to the device after).
        g: CPU generator; the same state gives the same views.
        max_shift: translation in pixels.
        contrast: intensity is multiplied by a factor in ``[1 - contrast, 1 + contrast]``.
        noise: standard deviation of the additive Gaussian noise.
        erase: probability of zeroing each pixel.

    Returns:
        ``(B, 1, 8, 8)`` augmented images clamped to ``[0, 1]``.
    """
    b = x.shape[0]
    v = random_shift(x, g, max_shift)
    scale = 1.0 + contrast * (2.0 * torch.rand(b, 1, 1, 1, generator=g) - 1.0)  # (B, 1, 1, 1)
    keep = (torch.rand(v.shape, generator=g) >= erase).to(v.dtype)  # (B, 1, 8, 8)
    v = v * scale * keep + noise * torch.randn(v.shape, generator=g)
    return v.clamp(0.0, 1.0)


def two_views(x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent augmented views of the same images (MoCo's positive pairs)."""
    return augment(x, g), augment(x, g)
