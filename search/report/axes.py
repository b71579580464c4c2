"""How a plot's value axis is scaled so one diverged trial does not squash the rest: :func:`value_axis`.

Values that are all positive and span two decades or more get a log axis. Values that cannot be
logged (zero or negative, e.g. ``neg_mse``) but hold far outliers get a linear axis cut to the
robust range of the bulk (quartiles +- 3 interquartile ranges, never narrower than the bulk
itself); the points off the scale are counted so the plot can say so. Long reasons are wrapped
by :func:`wrap` instead of running off the figure.

Example:
    >>> value_axis([0.4, 0.5, 1e6])
    Axis(kind='log', range=None, off_scale=0)
    >>> value_axis([-0.5, -0.4, -0.45, -0.42, -0.47, -3e5])
    Axis(kind='linear', range=(-0.6875, -0.2325), off_scale=1)
    >>> wrap("a long reason " * 3, width=16)
    ['a long reason a', 'long reason a', 'long reason']
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

#: A positive axis spanning this ratio (max / min) or more is drawn in log scale.
LOG_SPAN = 100.0
#: Linear axes are cut at the quartiles +- this many interquartile ranges when points lie beyond.
FENCE = 3.0


@dataclass(frozen=True)
class Axis:
    """``kind`` is ``"log"`` or ``"linear"``; ``range`` (low, high) or ``None`` for the data's own."""

    kind: str
    range: tuple[float, float] | None
    off_scale: int


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def value_axis(values: Sequence[float]) -> Axis:
    """The axis for ``values`` (non-finite ones are ignored)."""
    finite = sorted(v for v in values if math.isfinite(v))
    if len(finite) < 2:
        return Axis("linear", None, 0)
    if finite[0] > 0 and finite[-1] / finite[0] >= LOG_SPAN:
        return Axis("log", None, 0)
    q1, q3 = _quantile(finite, 0.25), _quantile(finite, 0.75)
    iqr = q3 - q1
    if iqr <= 0:
        return Axis("linear", None, 0)
    low, high = q1 - FENCE * iqr, q3 + FENCE * iqr
    off = sum(1 for v in finite if v < low or v > high)
    if off == 0:
        return Axis("linear", None, 0)
    return Axis("linear", (round(low, 6), round(high, 6)), off)


def wrap(text: str, width: int = 100) -> list[str]:
    """``text`` in lines of at most ``width`` characters (words kept whole where they fit)."""
    return textwrap.wrap(text, width=width) or [""]
