"""Procedurally generated "camouflaged object" images with masks (seed 004's COD10K stand-in).

Each image is a textured background with one blob-shaped object whose texture comes from the
same family (sums of oriented sinusoids plus smoothed noise) with slightly different frequencies,
orientation and brightness, so the object is hard but possible to find. Everything is a pure
function of ``(n, size, seed)``.

Example:
    >>> images, masks = make_camouflage(4, size=16, seed=0)
    >>> tuple(images.shape), tuple(masks.shape)
    ((4, 3, 16, 16), (4, 1, 16, 16))
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

WAVES = 3  # sinusoids per texture


def _texture(
    yy: torch.Tensor,
    xx: torch.Tensor,
    freq: torch.Tensor,
    angle: torch.Tensor,
    phase: torch.Tensor,
) -> torch.Tensor:
    """Sum of oriented sinusoids.

    Args:
        yy, xx: ``(H, W)`` pixel coordinates in ``[0, 1]``.
        freq, angle, phase: ``(N, WAVES)`` wave parameters.

    Returns:
        ``(N, H, W)`` texture in ``[-1, 1]``.
    """
    # project every pixel on each wave's direction: (N, WAVES, H, W)
    proj = torch.cos(angle)[..., None, None] * xx + torch.sin(angle)[..., None, None] * yy
    waves = torch.sin(2 * math.pi * freq[..., None, None] * proj + phase[..., None, None])
    return waves.mean(dim=1)


def _smooth_noise(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Low-frequency noise: a coarse random grid upsampled bilinearly, ``(N, size, size)``."""
    coarse = torch.randn(n, 1, max(2, size // 4), max(2, size // 4), generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def _blob_masks(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """One wobbly ellipse per image covering roughly 10-30% of it, ``(N, size, size)`` in {0, 1}."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # (H, W)
    cy, cx = (0.3 + 0.4 * torch.rand(2, n, 1, 1, generator=g)).unbind(0)  # (N, 1, 1) each
    ry, rx = (0.15 + 0.15 * torch.rand(2, n, 1, 1, generator=g)).unbind(0)
    rot = math.pi * torch.rand(n, 1, 1, generator=g)
    lobes = torch.randint(2, 5, (n, 1, 1), generator=g).float()
    wobble = 0.25 * torch.rand(n, 1, 1, generator=g)
    dy, dx = yy - cy, xx - cx  # (N, H, W)
    u = (dx * torch.cos(rot) + dy * torch.sin(rot)) / rx
    v = (-dx * torch.sin(rot) + dy * torch.cos(rot)) / ry
    radius = torch.sqrt(u**2 + v**2)
    limit = 1.0 + wobble * torch.cos(lobes * torch.atan2(v, u))  # wobbly boundary
    return (radius <= limit).float()


def make_camouflage(
    n: int,
    *,
    size: int,
    seed: int,
    contrast: float = 0.25,
    noise: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``n`` camouflaged-object images and their masks.

    Args:
        n: number of images.
        size: side length in pixels (>= 8).
        seed: the data seed; the same seed gives the same images.
        contrast: how different the object texture is from the background (0 = invisible);
            it scales the perturbation of frequency, orientation and brightness.
        noise: standard deviation of per-pixel noise added at the end.

    Returns:
        ``images`` ``(N, 3, size, size)`` float32 roughly in ``[-1, 1]`` and ``masks``
        ``(N, 1, size, size)`` float32 in {0, 1}.

    Raises:
        ValueError: if ``n < 1``, ``size < 8`` or ``contrast < 0``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    if contrast < 0:
        raise ValueError(f"contrast must be >= 0, got {contrast}")
    g = torch.Generator().manual_seed(seed)
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # (H, W)

    # 1. background texture: random waves per image
    freq = 2.0 + 4.0 * torch.rand(n, WAVES, generator=g)  # (N, WAVES) cycles per image
    angle = math.pi * torch.rand(n, WAVES, generator=g)
    phase = 2 * math.pi * torch.rand(n, WAVES, generator=g)
    background = _texture(yy, xx, freq, angle, phase) + 0.5 * _smooth_noise(n, size, g)  # (N, H, W)

    # 2. object texture: the same family, nudged by `contrast`
    obj_freq = freq * (1.0 + contrast * (1.0 + torch.rand(n, WAVES, generator=g)))
    obj_angle = angle + contrast * math.pi * (0.5 + 0.5 * torch.rand(n, WAVES, generator=g))
    shift = contrast * torch.where(torch.rand(n, 1, 1, generator=g) < 0.5, -1.0, 1.0)  # brightness
    obj = _texture(yy, xx, obj_freq, obj_angle, phase) + 0.5 * _smooth_noise(n, size, g) + shift

    # 3. paste the object inside a blob, tint both with the same colour, add noise
    mask = _blob_masks(n, size, g)  # (N, H, W)
    grey = torch.where(mask.bool(), obj, background)  # (N, H, W)
    tint = 0.8 + 0.4 * torch.rand(n, 3, 1, 1, generator=g)  # (N, 3, 1, 1) shared colour
    images = grey[:, None] * tint + noise * torch.randn(n, 3, size, size, generator=g)
    return images.float(), mask[:, None]
