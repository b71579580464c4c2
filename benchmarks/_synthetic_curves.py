"""Seeded synthetic learning curves for testing :mod:`gradsweep.search.learning_curve`.

A curve is a trial of a hyperparameter sweep reporting an accuracy-like metric (error rate
``1 - accuracy`` when minimizing) at steps 18, 36, ..., ``18 * n_reports``. Final values are spread as
in a sweep: ``0.35 + 0.6 * Beta(2, 5)``, many mediocre configurations and few good ones. Each curve
rises from a start between chance (0.1) and its final value along one of these shapes, in normalized
time ``u = step / last_step``:

=====================  ====  =================================================================
power-law saturation   30%   ``c - a u^-alpha``, alpha in [0.3, 1.5]
exponential            25%   ``c - a exp(-b u)``, b in [2, 10]
late bloomer           15%   a sigmoid centred at u in [0.45, 0.8]: starts low and finishes better
                             than most (final from ``Beta(4, 3)``), crossing others late
plateau then improve   15%   nearly flat until u in [0.3, 0.6], then an exponential rise
mild overfitting       15%   exponential rise to a peak at u in [0.4, 0.75], then a linear fall
                             of 1-5% of the peak by the end
=====================  ====  =================================================================

Every report gets independent Gaussian noise, its sd drawn per curve from [0.003, 0.015]; values
stay in [0, 1].

Example:
    >>> curves = synthetic_curves(3, seed=0)
    >>> curves[0].steps
    (18, 36, 54, 72, 90, 108, 126, 144)
    >>> synthetic_curves(3, seed=0) == curves, len(synthetic_curves(2, seed=1, n_reports=4)[1].values)
    (True, 4)
"""

from __future__ import annotations

import numpy as np

from gradsweep.search.learning_curve import Curve

__all__ = ["FAMILIES", "REPORT_EVERY", "synthetic_curves"]

#: Steps between reports.
REPORT_EVERY = 18
#: The shapes and their shares of the curves.
FAMILIES = {"power": 0.30, "exp": 0.25, "late": 0.15, "plateau": 0.15, "overfit": 0.15}
CHANCE = 0.1


def _progress(u: np.ndarray, rise: np.ndarray) -> np.ndarray:
    """``rise`` rescaled so it is 0 at the first report and 1 at the last."""
    return (rise - rise[0]) / (rise[-1] - rise[0])


def _exp_rise(u: np.ndarray, rate: float) -> np.ndarray:
    return 1.0 - np.exp(-rate * u)


def _one_curve(rng: np.random.Generator, u: np.ndarray) -> np.ndarray:
    """One noiseless accuracy curve at normalized times ``u`` (increasing, the last 1)."""
    family = rng.choice(list(FAMILIES), p=list(FAMILIES.values()))
    final = 0.35 + 0.6 * (rng.beta(4.0, 3.0) if family == "late" else rng.beta(2.0, 5.0))
    start_share = rng.uniform(0.05, 0.3) if family == "late" else rng.uniform(0.2, 0.8)
    start = CHANCE + (final - CHANCE) * start_share
    if family == "power":
        h = _progress(u, -(u ** -rng.uniform(0.3, 1.5)))
    elif family == "exp":
        h = _progress(u, _exp_rise(u, rng.uniform(2.0, 10.0)))
    elif family == "late":
        centre, width = rng.uniform(0.45, 0.8), rng.uniform(0.06, 0.15)
        h = _progress(u, 1.0 / (1.0 + np.exp(-(u - centre) / width)))
    elif family == "plateau":
        knee, rate = rng.uniform(0.3, 0.6), rng.uniform(3.0, 12.0)
        rise = np.where(u > knee, _exp_rise(np.maximum(u - knee, 0.0), rate), 0.0)
        h = 0.1 * _progress(u, u) + 0.9 * _progress(u, rise)
    else:  # overfit: rise to a peak, then fall linearly to the final value
        peak_at, rate = rng.uniform(0.4, 0.75), rng.uniform(3.0, 10.0)
        peak = final / (1.0 - rng.uniform(0.01, 0.05))
        rise = _exp_rise(np.minimum(u, peak_at), rate)
        up = start + (peak - start) * (rise - rise[0]) / (_exp_rise(np.array([peak_at]), rate)[0] - rise[0])
        fall = np.clip((u - peak_at) / (1.0 - peak_at), 0.0, 1.0)
        return up - (peak - final) * fall
    return start + (final - start) * h


def synthetic_curves(n: int, *, seed: int, n_reports: int = 8, maximize: bool = True) -> list[Curve]:
    """``n`` noisy learning curves of a sweep, the same for the same arguments.

    Args:
        n: how many curves.
        seed: the generator's seed.
        n_reports: reports per curve (at least 2), every :data:`REPORT_EVERY` steps.
        maximize: accuracy (True) or error rate ``1 - accuracy`` (False).

    Returns:
        The curves, all on the same steps.

    Raises:
        ValueError: if ``n_reports`` < 2.
    """
    if n_reports < 2:
        raise ValueError(f"n_reports must be at least 2 but got {n_reports}")
    rng = np.random.default_rng(seed)
    steps = tuple(REPORT_EVERY * k for k in range(1, n_reports + 1))
    u = np.arange(1, n_reports + 1) / n_reports
    curves = []
    for _ in range(n):
        clean = _one_curve(rng, u)
        noisy = np.clip(clean + rng.normal(0.0, rng.uniform(0.003, 0.015), size=u.size), 0.0, 1.0)
        values = noisy if maximize else 1.0 - noisy
        curves.append(Curve(steps, tuple(float(x) for x in values)))
    return curves
