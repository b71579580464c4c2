"""Pure learning-rate schedule math: multiplicative factors of a tower's base LR.

Every function maps a step (0-based, the index of the optimizer step the LR is used for)
to a factor in ``[0, 1]``; :class:`~gradsweep.spaces.apply.scheduler.StagedScheduler` multiplies it by
each tower's base LR and the stage's multiplier. Nothing here touches torch.

Conventions (the same as ``transformers.get_cosine_schedule_with_warmup``):

1. Warmup is linear from 0: ``factor(step) = step / warmup`` for ``step < warmup``, so the
   first optimizer step of a warmed-up schedule uses LR 0 and ``factor(warmup) == 1``.
2. Cosine decays from 1 at ``step == warmup`` to ``min_ratio`` at ``step == total``.
3. OneCycle reproduces ``torch.optim.lr_scheduler.OneCycleLR`` (``anneal_strategy="cos"``,
   ``three_phase=False``) divided by ``max_lr``: it starts at ``1 / div_factor`` and ends at
   ``1 / (div_factor * final_div_factor)`` on step ``total - 1``.

Example:
    >>> warmup_cosine(10, total=110, warmup=10, min_ratio=0.1)
    1.0
    >>> round(warmup_cosine(110, total=110, warmup=10, min_ratio=0.1), 6)
    0.1
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


def warmup_length(total: int, warmup_steps: int | None, warmup_fraction: float | None) -> int:
    """Number of warmup steps of a schedule with horizon ``total``.

    Args:
        total: the schedule's horizon in optimizer steps.
        warmup_steps: explicit warmup length (clamped to ``total``), or None.
        warmup_fraction: warmup as a fraction of ``total`` (rounded down), or None.

    Returns:
        The warmup length, 0 when neither is given.

    Raises:
        ValueError: if both are given or ``total`` is negative.
    """
    if total < 0:
        raise ValueError(f"total must be >= 0 but got {total}")
    if warmup_steps is not None and warmup_fraction is not None:
        raise ValueError("give warmup_steps or warmup_fraction, not both")
    if warmup_steps is not None:
        return min(int(warmup_steps), total)
    if warmup_fraction is not None:
        return int(warmup_fraction * total)
    return 0


def linear_warmup(step: int, warmup: int) -> float:
    """Linear warmup factor: ``step / warmup`` before ``warmup``, 1 from then on (1 when ``warmup == 0``)."""
    if warmup <= 0 or step >= warmup:
        return 1.0
    return max(step, 0) / warmup


def warmup_cosine(step: int, total: int, warmup: int = 0, min_ratio: float = 0.0) -> float:
    """Linear warmup from 0, then half a cosine from 1 down to ``min_ratio``.

    Args:
        step: optimizer step (steps past ``total`` stay at ``min_ratio``).
        total: the schedule's horizon; the factor reaches ``min_ratio`` at ``step == total``.
        warmup: warmup steps (``0 <= warmup <= total``).
        min_ratio: final factor in ``[0, 1]``.

    Returns:
        The LR factor at ``step``.

    Raises:
        ValueError: on a negative total, a warmup outside ``[0, total]`` or a ratio outside ``[0, 1]``.
    """
    if total < 0 or not 0 <= warmup <= max(total, 0):
        raise ValueError(f"need 0 <= warmup <= total, got warmup={warmup}, total={total}")
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1] but got {min_ratio}")
    if step < warmup:
        return linear_warmup(step, warmup)
    decay_steps = total - warmup
    if decay_steps <= 0:
        return 1.0  # all warmup, no decay phase
    progress = min(max((step - warmup) / decay_steps, 0.0), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_constant(step: int, warmup: int = 0) -> float:
    """Linear warmup from 0, then a constant factor of 1."""
    return linear_warmup(step, warmup)


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def onecycle(
    step: int,
    total: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> float:
    """``torch.optim.lr_scheduler.OneCycleLR``'s LR divided by ``max_lr`` (cosine, two phases).

    Args:
        step: optimizer step; clamped to ``[0, total - 1]`` (torch raises past the end instead).
        total: the schedule's horizon (``total_steps`` of OneCycleLR), >= 1.
        pct_start: fraction of the horizon spent rising, in ``(0, 1)``.
        div_factor: ``max_lr / initial_lr``.
        final_div_factor: ``initial_lr / min_lr``.

    Returns:
        The LR factor at ``step``. Where a phase has zero length (torch divides by zero
        there) the phase's end value is used.

    Raises:
        ValueError: on ``total < 1`` or ``pct_start`` outside ``(0, 1)``.
    """
    if total < 1:
        raise ValueError(f"onecycle total must be >= 1 but got {total}")
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"pct_start must be in (0, 1) but got {pct_start}")
    initial = 1.0 / div_factor
    final = initial / final_div_factor
    step = min(max(step, 0), total - 1)
    phases = ((float(pct_start * total) - 1.0, initial, 1.0), (float(total - 1), 1.0, final))
    start_step = 0.0
    for i, (end_step, start_lr, end_lr) in enumerate(phases):
        if step <= end_step or i == len(phases) - 1:
            span = end_step - start_step
            pct = 1.0 if span == 0 else (step - start_step) / span
            return _cos_anneal(start_lr, end_lr, pct)
        start_step = end_step
    raise AssertionError("unreachable: the last phase always returns")  # pragma: no cover


@dataclass
class PlateauState:
    """``torch.optim.lr_scheduler.ReduceLROnPlateau``'s decision logic (``threshold_mode="rel"``, no cooldown).

    ``update(value)`` returns True when the LR should be reduced; ``reductions`` counts them.
    A non-finite value is never "better", so it counts as a bad evaluation, as in torch.

    Example:
        >>> s = PlateauState(mode="min", patience=1, threshold=0.0)
        >>> [s.update(v) for v in (1.0, 1.0, 1.0)]
        [False, False, True]
    """

    mode: Literal["min", "max"] = "max"
    patience: int = 2
    threshold: float = 1e-4
    best: float | None = None
    num_bad: int = 0
    reductions: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"plateau mode must be 'min' or 'max' but got {self.mode!r}")
        if self.patience < 0:
            raise ValueError(f"plateau patience must be >= 0 but got {self.patience}")

    def is_better(self, value: float) -> bool:
        """Whether ``value`` improves on the best value so far by the relative threshold."""
        if self.mode == "min":
            best = math.inf if self.best is None else self.best
            return value < best * (1.0 - self.threshold)
        best = -math.inf if self.best is None else self.best
        return value > best * (1.0 + self.threshold)

    def update(self, value: float) -> bool:
        """Record one evaluation; True when it triggers a reduction."""
        value = float(value)
        if self.is_better(value):
            self.best = value
            self.num_bad = 0
        else:
            self.num_bad += 1
        if self.num_bad > self.patience:
            self.reductions += 1
            self.num_bad = 0
            return True
        return False

    def reset(self) -> None:
        """Forget the history (a restarted schedule)."""
        self.best = None
        self.num_bad = 0
        self.reductions = 0


def plateau_factor(step: int, warmup: int, factor: float, reductions: int, min_ratio: float = 0.0) -> float:
    """Warmup-then-constant factor times ``factor ** reductions``, floored at ``min_ratio``.

    The floor applies after warmup only (warmup still starts from 0).
    """
    warm = linear_warmup(step, warmup)
    if warm < 1.0:
        return warm
    return max(factor**reductions, min_ratio)
