"""Host-side summary of one check window: what the rules read, built from the monitor's rows.

The monitor keeps one device row per optimizer step (see :mod:`gradsweep.objectives.health.monitor`) and reads
the whole window back once per check. :func:`summarize_window` turns those host rows into a
:class:`CheckSummary`: per-tower and global gradient-norm statistics over finite values, counts of
non-finite steps, GradScaler skips and scale, and the window's losses.

Example:
    >>> rows = [[1.0, 1.0, 1.0, 1.0, 0.5, 1.0], [3.0, 2.0, 3.0, 2.0, 0.4, 1.0]]
    >>> s = summarize_window(["all"], rows, steps=[0, 1], has_grad=[(True,), (True,)], scaler_enabled=False)
    >>> s.towers["all"].grad_norm_pre, s.towers["all"].grad_norm_pre_max, s.losses
    (2.0, 3.0, [0.5, 0.4])
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: Columns after the 2 * n_towers per-tower norm columns of a monitor row.
GLOBAL_PRE, GLOBAL_POST, LOSS, SCALE = range(4)
N_GLOBAL_COLUMNS = 4


def row_width(n_towers: int) -> int:
    """Number of floats in one monitor row for ``n_towers`` towers."""
    return 2 * n_towers + N_GLOBAL_COLUMNS


@dataclass
class TowerSummary:
    """One tower over one check window (norms are means/max over the finite steps with grads)."""

    steps_with_grad: int = 0
    nonfinite_steps: int = 0
    grad_norm_pre: float = math.nan
    grad_norm_pre_max: float = math.nan
    grad_norm_post: float = math.nan
    param_norm: float = math.nan
    decay_to_grad: float = math.nan
    first_nonfinite_step: int | None = None
    #: pre-clip norm at each step with gradients, in order (non-finite ones kept)
    norms: list[float] = field(default_factory=list)
    #: the tower's early norm (smallest positive finite norm of its first steps), filled in by the judge
    early_norm: float = math.nan


@dataclass
class CheckSummary:
    """Everything the rules need about one check window."""

    first_step: int
    step: int
    n_steps: int
    towers: dict[str, TowerSummary] = field(default_factory=dict)
    grad_norm_global: float = math.nan
    grad_norm_global_max: float = math.nan
    grad_norm_global_post: float = math.nan
    nonfinite_loss_steps: int = 0
    nonfinite_grad_steps: int = 0
    nonfinite_steps: int = 0
    first_nonfinite_loss_step: int | None = None
    first_nonfinite_grad_step: int | None = None
    skipped_flags: list[bool] = field(default_factory=list)
    scale: float = math.nan
    min_scale: float = math.nan
    losses: list[float] = field(default_factory=list)
    loss_steps: list[int] = field(default_factory=list)
    # filled in by the monitor from state that spans windows
    overflow_streak: int = 0
    loss_spike_z: float = math.nan
    loss_spike_step: int | None = None
    loss_spike_value: float = math.nan
    loss_start: float = math.nan  # the run's starting loss (judge.starting_loss)
    loss_best: float = math.nan  # the lowest loss level of the earlier checks

    @property
    def loss_level(self) -> float:
        """Median of the window's finite losses (NaN if none): the loss with its spikes left out."""
        finite = [x for x in self.losses if math.isfinite(x)]
        return statistics.median(finite) if finite else math.nan

    @property
    def skipped_steps(self) -> int:
        """GradScaler-skipped steps in the window (non-finite grads with the scaler on)."""
        return sum(self.skipped_flags)

    @property
    def mean_loss(self) -> float:
        """Mean of the window's finite losses (NaN if none)."""
        finite = [x for x in self.losses if math.isfinite(x)]
        return sum(finite) / len(finite) if finite else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for ``state_dict``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckSummary:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        towers = {k: TowerSummary(**v) for k, v in data.pop("towers", {}).items()}
        return cls(towers=towers, **data)


def _finite_stats(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return sum(finite) / len(finite), max(finite)


def summarize_window(
    towers: Sequence[str],
    rows: Sequence[Sequence[float]],
    *,
    steps: Sequence[int],
    has_grad: Sequence[Sequence[bool]],
    scaler_enabled: bool,
) -> CheckSummary:
    """Summarize one window of monitor rows.

    Args:
        towers: tower names, in row column order.
        rows: one row per step: ``[pre_0..pre_T-1, post_0..post_T-1, global_pre, global_post, loss, scale]``.
        steps: the optimizer step of each row.
        has_grad: per row, which towers had gradients that step (frozen towers have none).
        scaler_enabled: with an enabled GradScaler, non-finite gradients are skipped steps.

    Returns:
        The window's :class:`CheckSummary` (param norms and decay ratios are filled in by the monitor).

    Raises:
        ValueError: if the lengths of ``rows``, ``steps`` and ``has_grad`` differ, or ``rows`` is empty.
    """
    if not rows:
        raise ValueError("rows must not be empty")
    if not len(rows) == len(steps) == len(has_grad):
        raise ValueError(
            f"rows, steps and has_grad differ in length: {len(rows)}, {len(steps)}, {len(has_grad)}"
        )
    n = len(towers)
    base = 2 * n
    out = CheckSummary(first_step=int(steps[0]), step=int(steps[-1]), n_steps=len(rows))
    for t, name in enumerate(towers):
        ts = TowerSummary()
        pre, post = [], []
        for row, mask, step in zip(rows, has_grad, steps, strict=True):
            if not mask[t]:
                continue
            ts.steps_with_grad += 1
            if not math.isfinite(row[t]):
                ts.nonfinite_steps += 1
                if ts.first_nonfinite_step is None:
                    ts.first_nonfinite_step = int(step)
            pre.append(row[t])
            post.append(row[n + t])
        ts.norms = list(pre)
        ts.grad_norm_pre, ts.grad_norm_pre_max = _finite_stats(pre)
        ts.grad_norm_post, _ = _finite_stats(post)
        out.towers[name] = ts
    gpre = [row[base + GLOBAL_PRE] for row in rows]
    out.grad_norm_global, out.grad_norm_global_max = _finite_stats(gpre)
    out.grad_norm_global_post, _ = _finite_stats([row[base + GLOBAL_POST] for row in rows])
    for row, mask, step in zip(rows, has_grad, steps, strict=True):
        tower_bad = any(mask[t] and not math.isfinite(row[t]) for t in range(n))
        grad_bad = tower_bad or (any(mask) and not math.isfinite(row[base + GLOBAL_PRE]))
        loss = row[base + LOSS]
        out.losses.append(loss)
        out.loss_steps.append(int(step))
        if not math.isfinite(loss):
            out.nonfinite_loss_steps += 1
            if out.first_nonfinite_loss_step is None:
                out.first_nonfinite_loss_step = int(step)
        if grad_bad:
            out.nonfinite_grad_steps += 1
            if out.first_nonfinite_grad_step is None:
                out.first_nonfinite_grad_step = int(step)
        out.nonfinite_steps += int(grad_bad or not math.isfinite(loss))
        out.skipped_flags.append(bool(scaler_enabled and grad_bad))
    scales = [row[base + SCALE] for row in rows]
    out.scale = scales[-1]
    out.min_scale = min(scales)
    return out
