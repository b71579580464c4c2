"""Short video clips of scikit-learn digits moving or rotating on a small canvas, with captions.

Each clip places one 8x8 digit on an ``S x S`` canvas and, over ``T`` frames, moves it by
``speed`` pixels per frame (left, right, up, down) or turns it 90 degrees per frame (clockwise,
counterclockwise). Each clip has a caption generated from templates with synonyms
(:mod:`gradsweep.objectives.data.captions`). The class of a clip is ``(digit, motion)``; retrieval
counts any caption of the same class as relevant. Train and held-out clips are drawn from
disjoint digit images, so evaluation sees unseen handwriting. Everything is a pure function
of the seed.

Example:
    >>> train, held_out = make_clips(ClipSpec(canvas=14, frames=4, n_train=32, n_eval=16), seed=0)
    >>> tuple(train.video.shape), tuple(train.tokens.shape)[0]
    ((32, 4, 1, 14, 14), 32)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from gradsweep.objectives.data.captions import MOTIONS, Tokenizer, caption

SIDE = 8


@lru_cache(maxsize=1)
def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(1797, 8, 8)`` float32 in [0, 1] and ``(1797,)`` int labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int64)


@dataclass(frozen=True)
class ClipSpec:
    """Size of a generated clip data set.

    Raises:
        ValueError: if the canvas cannot hold the motion or a count is below 1.
    """

    canvas: int = 14
    frames: int = 4
    speed: int = 2
    n_train: int = 512
    n_eval: int = 128
    eval_fraction: float = 0.3

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"frames must be at least 2 but got {self.frames}")
        if self.canvas < SIDE + self.speed * (self.frames - 1):
            raise ValueError(
                f"canvas {self.canvas} too small for {self.frames} frames at speed {self.speed}; "
                f"need at least {SIDE + self.speed * (self.frames - 1)}"
            )
        if self.n_train < 1 or self.n_eval < 1:
            raise ValueError(f"n_train and n_eval must be at least 1 but got {self.n_train}, {self.n_eval}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in (0, 1) but got {self.eval_fraction}")


@dataclass(frozen=True)
class Clips:
    """A clip data set.

    Attributes:
        video: ``(N, T, 1, S, S)`` float32 frames in [0, 1].
        tokens: ``(N, L)`` int64 caption token ids (0 = padding).
        digit: ``(N,)`` digit of each clip.
        motion: ``(N,)`` index into :data:`MOTIONS`.
        captions: the caption strings.
    """

    video: torch.Tensor
    tokens: torch.Tensor
    digit: torch.Tensor
    motion: torch.Tensor
    captions: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.digit.shape[0])

    @property
    def label(self) -> torch.Tensor:
        """``(N,)`` class id ``digit * len(MOTIONS) + motion``."""
        return self.digit * len(MOTIONS) + self.motion


def render_clip(image: np.ndarray, motion: str, spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """``(T, S, S)`` frames of ``image`` doing ``motion``, at a random feasible start position.

    Raises:
        ValueError: if ``motion`` is not in :data:`MOTIONS`.
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {', '.join(MOTIONS)} but got {motion!r}")
    s, t_count, room = spec.canvas, spec.frames, spec.canvas - SIDE
    travel = spec.speed * (t_count - 1)
    dx = {"left": -spec.speed, "right": spec.speed}.get(motion, 0)
    dy = {"up": -spec.speed, "down": spec.speed}.get(motion, 0)
    x0 = int(rng.integers(travel if dx < 0 else 0, (room - travel if dx > 0 else room) + 1))
    y0 = int(rng.integers(travel if dy < 0 else 0, (room - travel if dy > 0 else room) + 1))
    frames = np.zeros((t_count, s, s), dtype=np.float32)
    for t in range(t_count):
        turn = {"clockwise": -t, "counterclockwise": t}.get(motion, 0)
        patch = np.rot90(image, k=turn)
        x, y = x0 + dx * t, y0 + dy * t
        frames[t, y : y + SIDE, x : x + SIDE] = patch
    return frames


def _make(pool: np.ndarray, n: int, spec: ClipSpec, rng: np.random.Generator, tok: Tokenizer) -> Clips:
    images, labels = digit_images()
    picks = rng.choice(pool, size=n, replace=n > len(pool))
    motions = rng.integers(len(MOTIONS), size=n)
    video = np.stack(
        [render_clip(images[i], MOTIONS[m], spec, rng) for i, m in zip(picks, motions, strict=True)]
    )
    texts = tuple(caption(int(labels[i]), MOTIONS[m], rng) for i, m in zip(picks, motions, strict=True))
    return Clips(
        video=torch.from_numpy(video).unsqueeze(2),  # (N, T, 1, S, S)
        tokens=tok.batch(list(texts)),
        digit=torch.from_numpy(labels[picks].copy()),
        motion=torch.from_numpy(motions.astype(np.int64)),
        captions=texts,
    )


def make_clips(spec: ClipSpec, seed: int) -> tuple[Clips, Clips]:
    """Train and held-out clips; held-out clips use digit images never seen in training.

    Args:
        spec: sizes.
        seed: everything (split, positions, motions, captions) follows from it.

    Returns:
        ``(train, held_out)``.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digit_images()[1]))
    n_eval_images = int(len(order) * spec.eval_fraction)
    tok = Tokenizer.build()
    held_out = _make(order[:n_eval_images], spec.n_eval, spec, rng, tok)
    train = _make(order[n_eval_images:], spec.n_train, spec, rng, tok)
    return train, held_out
