"""Predict a trial's final reported value, with uncertainty, from its partial learning curve.

A freeze-thaw scheduler pauses a trial when its optimistic bound (``mean + 1.64 * std`` when
maximizing) is below the incumbent, and thaws the paused trial whose bound is best. This module gives
it :func:`predict_final`: pure numpy/scipy, no training data, fitted afresh at every call from the
trial's own reports and the complete curves of the study's finished trials (the *references*).

Two estimates, each with a predictive standard deviation, are combined by inverse-variance weighting:

1. **population** (>= 3 usable references): OLS of the references' final values on their value at
   the partial's last step (and, with >= 8 references, on their value one report earlier as well,
   when that predicts the held-out references better: leave-one-out errors decide). The std is the
   OLS prediction interval's: residual variance times ``1 + leverage`` (a partial outside the
   references' range gets a wider one), the residual variance taken as the larger of the global one
   and its kernel-weighted value near the prediction (residuals are often larger for one part of the
   range, e.g. slow starters among the weak early values), scaled so that ``mean +- 1.64 std`` is the
   Student-t 90% interval for the fit's degrees of freedom. A regressor without spread falls back to
   a mean shift (``final ~ v + mean(final_r - v_r)``).
2. **own curve** (>= 3 finite points): three families fitted to the partial's points, each
   extrapolated to the final step: ``pow3`` ``c - a t^-alpha``, ``exp3`` ``c - a exp(-b t)`` (both
   with ``a >= 0``: improving in the study's direction, mirrored when minimizing) and the log-linear
   ``a + b log t`` (either sign). Each is fitted by profiled least squares instead of ``curve_fit``:
   for every rate on a fixed log-spaced grid (``alpha`` in [0.05, 3], ``b`` in [0.05, 30] per last
   step), ``a`` and ``c`` are linear and solved in closed form, and the best rate is kept, so a fit
   cannot fail or run long and many curves are fitted at once. The mean is the families' average;
   the raw std ``sqrt(spread^2 + residual^2) * final_step / last_step``. With >= 3 references that
   have values at the partial's steps, the same fit runs on their prefixes, and their squared errors
   calibrate the variance as ``gain * raw^2 + floor`` (non-negative least squares, Student-t
   allowance for the references left after the fit). With fewer than 3 such references there is no
   own-curve part: the raw std is overconfident (on the synthetic sweeps of
   ``benchmarks/_synthetic_curves.py`` its 90% interval held 0.74, 0.80 and 0.94 of the finals from 3,
   4 and 6 of 8 reports; on a real contrastive sweep a trial flat at chance for 3 of 20 reports got
   ``+- 0`` and ended second best).

The combined variance allows for the two estimates' errors being correlated (a late bloomer fools
both): the correlation of the references' leave-one-out population errors with their own-curve
errors, or 1 (no reduction for combining) when fewer than 8 references give both; with 8 it is also
at least the combined estimate's own squared errors on the references, kernel-weighted near the
prediction. Calibration is put before sharpness: an overconfident std makes the scheduler pause
winners.

Non-finite reported values are ignored. A reference counts only when its last report is finite and
reaches ``final_step`` or comes within one report interval of it; its final value is its value at
``final_step`` (interpolated when it ran longer), and its value at another step is interpolated
between its finite reports (its last value past its end; unusable before its first finite report).
Only steps > 0 enter the own-curve fits (``t^-alpha`` and ``log t`` need them).

Example:
    >>> partial = Curve((18, 36), (0.40, 0.50))
    >>> refs = [Curve((18, 36, 144), (0.1 * k, 0.1 * k + 0.1, 0.1 * k + 0.3)) for k in range(1, 7)]
    >>> p = predict_final(partial, 144, refs, maximize=True)
    >>> round(p.mean, 3), p.std < 0.01, p.source
    (0.7, True, 'population 6 curves')
    >>> predict_final(partial, 144, [], maximize=True)
    Prediction(mean=0.5, std=inf, source='last value only')
    >>> predict_final(Curve((18,), (float("nan"),)), 144, refs, maximize=True).source
    'no finite value'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

__all__ = ["Curve", "Prediction", "predict_final"]

#: ``mean +- Z90 * std`` is the two-sided 90% interval of a normal (the scheduler's 1.64).
Z90 = 1.6448536269514722
#: Population part needs this many usable references.
MIN_REFERENCES = 3
#: References needed before the value one report earlier may join the regression.
MIN_REFERENCES_TWO_REGRESSORS = 8
#: Own-curve part needs this many finite points (the three-parameter families fit 3 exactly).
MIN_OWN_POINTS = 3
#: Reference pairs needed to estimate the correlation of the two parts' errors.
MIN_PAIRS_FOR_CORRELATION = 8
#: Correlation of the two parts' errors assumed when too few references measure it.
DEFAULT_CORRELATION = 1.0
#: Exponents of ``t^-alpha`` (time in units of the partial's last step) tried by pow3.
POW_RATES = np.geomspace(0.05, 3.0, 25)
#: Rates of ``exp(-b t)`` (time in units of the partial's last step) tried by exp3.
EXP_RATES = np.geomspace(0.05, 30.0, 25)


@dataclass(frozen=True)
class Curve:
    """One trial's reports.

    Attributes:
        steps: strictly increasing report steps (>= 0).
        values: the reported values, one per step; non-finite ones are ignored.

    Raises:
        ValueError: if the lengths differ, or the steps are not strictly increasing from >= 0.
    """

    steps: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.steps) != len(self.values):
            raise ValueError(f"{len(self.steps)} steps but {len(self.values)} values")
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"steps must be strictly increasing but got {self.steps}")
        if self.steps and self.steps[0] < 0:
            raise ValueError(f"steps must be >= 0 but got {self.steps[0]}")


@dataclass(frozen=True)
class Prediction:
    """A predicted final value.

    Attributes:
        mean: the predicted value at the final step (nan when the trial has no finite value).
        std: predictive standard deviation; ``math.inf`` when the model cannot say.
        source: which parts contributed, e.g. ``population 12 curves + own-curve fit``.

    Example:
        >>> Prediction(0.5, 0.1, "x").upper(1.64), Prediction(0.5, 0.1, "x").lower(1.0)
        (0.664, 0.4)
    """

    mean: float
    std: float
    source: str

    def upper(self, z: float) -> float:
        """``mean + z * std`` (inf when std is inf and z > 0)."""
        return self.mean + z * self.std if z else self.mean

    def lower(self, z: float) -> float:
        """``mean - z * std`` (-inf when std is inf and z > 0)."""
        return self.mean - z * self.std if z else self.mean


@dataclass(frozen=True)
class _Part:
    """One estimate: its mean and variance, what it says about itself, and its errors on references.

    ``errors``: the estimate's error (prediction minus final) on each usable reference, leave-one-out for
    the population part, nan where it judged none; ``finals``: those references' finals. For the
    correlation of the two parts and the combined estimate's errors (:func:`combine`).
    """

    mean: float
    var: float
    source: str
    errors: np.ndarray
    finals: np.ndarray


@lru_cache(maxsize=256)
def t_factor(dof: int) -> float:
    """Student-t over normal 95% quantile: widens a std estimated with ``dof`` degrees of freedom.

    >>> round(t_factor(1), 2), round(t_factor(1000), 3)
    (3.84, 1.001)
    """
    return float(stats.t.ppf(0.95, dof)) / Z90


def finite_points(curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    """The curve's steps and values where the value is finite, as float arrays.

    >>> finite_points(Curve((1, 2, 3), (0.5, float("nan"), 0.7)))
    (array([1., 3.]), array([0.5, 0.7]))
    """
    steps = np.asarray(curve.steps, dtype=float)
    values = np.asarray(curve.values, dtype=float)
    keep = np.isfinite(values)
    return steps[keep], values[keep]


def value_at(steps: np.ndarray, values: np.ndarray, step: float) -> float:
    """A curve's value at ``step``: interpolated between finite points, the last one past its end.

    Returns nan before the first point (a curve that started reporting later says nothing there).

    >>> s, v = np.array([10.0, 20.0]), np.array([1.0, 2.0])
    >>> value_at(s, v, 15.0), value_at(s, v, 30.0), value_at(s, v, 5.0)
    (1.5, 2.0, nan)
    """
    if steps.size == 0 or step < steps[0]:
        return math.nan
    return float(np.interp(step, steps, values))


def reference_final(curve: Curve, final_step: int) -> float:
    """A reference's final value, or nan when it does not count as finished at ``final_step``.

    It counts when its last report is finite and reaches ``final_step`` or comes within one report
    interval of it; a longer curve gives its (interpolated) value at ``final_step``.

    >>> reference_final(Curve((50, 100), (0.3, 0.4)), 100), reference_final(Curve((50, 100), (0.3, 0.4)), 150)
    (0.4, 0.4)
    >>> reference_final(Curve((50, 100), (0.3, 0.4)), 151), reference_final(Curve((50, 100), (0.3, 0.4)), 75)
    (nan, 0.35)
    """
    if not curve.steps or not math.isfinite(curve.values[-1]):
        return math.nan
    last = curve.steps[-1]
    interval = last - curve.steps[-2] if len(curve.steps) > 1 else last
    if last + interval < final_step:
        return math.nan
    if last <= final_step:
        return float(curve.values[-1])
    steps, values = finite_points(curve)
    return value_at(steps, values, float(final_step))


@lru_cache(maxsize=256)
def _bases(
    t: tuple[float, ...], t_final: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, bool, int]]:
    """Per family: centred basis ``(K, n)``, its sum of squares, its rise from the mean to ``t_final``,
    whether it is saturating (slope >= 0) and the residual degrees of freedom (at least 1)."""
    u = np.asarray(t) / t[-1]
    uf = t_final / t[-1]
    families = (
        (-(u[None, :] ** -POW_RATES[:, None]), -(uf**-POW_RATES), True, 3),
        (-np.exp(-EXP_RATES[:, None] * u[None, :]), -np.exp(-EXP_RATES * uf), True, 3),
        (np.log(u)[None, :], np.array([math.log(uf)]), False, 2),
    )
    out = []
    for phi, phi_final, saturating, n_params in families:
        phi_mean = phi.mean(axis=1)
        phic = phi - phi_mean[:, None]
        ss_phi = np.maximum(np.einsum("kj,kj->k", phic, phic), 1e-300)
        out.append((phic, ss_phi, phi_final - phi_mean, saturating, max(u.size - n_params, 1)))
    return out


def fit_families(
    t: np.ndarray, v: np.ndarray, t_final: float, *, maximize: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Fits pow3, exp3 and log-linear to each row of ``v`` and extrapolates to ``t_final``.

    Profiled least squares over fixed rate grids: for each rate the curve is linear in ``(c, a)``,
    solved in closed form (``a >= 0`` in the improving direction for the saturating families).

    Args:
        t: increasing positive steps, shape ``(n,)``, ``n >= 3``.
        v: values, shape ``(m, n)`` (one curve a row).
        t_final: the step to extrapolate to.
        maximize: the improving direction.

    Returns:
        ``(predictions, residual_variances)``, each ``(m, 3)``: per curve and family, the extrapolated
        value and the residual sum of squares over its degrees of freedom (at least 1).

    >>> t = np.array([1.0, 2.0, 3.0, 4.0])
    >>> pred, res = fit_families(t, np.log(t)[None, :], 8.0, maximize=True)
    >>> round(float(pred[0, 2]), 6) == round(math.log(8.0), 6), float(res[0, 2]) < 1e-20
    (True, True)
    """
    sign = 1.0 if maximize else -1.0
    y = sign * np.atleast_2d(v)
    y_mean = y.mean(axis=1)
    yc = y - y_mean[:, None]
    ss_y = np.einsum("ij,ij->i", yc, yc)
    preds = np.empty((y.shape[0], 3))
    resid = np.empty((y.shape[0], 3))
    rows = np.arange(y.shape[0])
    for j, (phic, ss_phi, lift, saturating, dof) in enumerate(_bases(tuple(t.tolist()), float(t_final))):
        cross = yc @ phic.T  # (m, K)
        slope = cross / ss_phi
        if saturating:
            slope = np.maximum(slope, 0.0)
        rss = ss_y[:, None] - slope * (2.0 * cross - slope * ss_phi)
        best = np.argmin(rss, axis=1)
        preds[:, j] = y_mean + slope[rows, best] * lift[best]
        resid[:, j] = np.maximum(rss[rows, best], 0.0) / dof
    return sign * preds, resid


def own_estimate(
    t: np.ndarray, v: np.ndarray, t_final: float, *, maximize: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The own-curve mean and raw std of each row of ``v`` (see :func:`fit_families`).

    Raw std: ``sqrt(spread^2 + residual^2) * t_final / t[-1]``, spread the families' sample std.

    >>> t = np.array([18.0, 36.0, 54.0])
    >>> mean, std = own_estimate(t, np.array([[0.5, 0.6, 0.65]]), 144.0, maximize=True)
    >>> bool(0.65 < mean[0] < 0.9), bool(std[0] > 0.0)
    (True, True)
    """
    preds, resid = fit_families(t, v, t_final, maximize=maximize)
    spread2 = preds.var(axis=1, ddof=1)
    raw = np.sqrt(spread2 + resid.mean(axis=1)) * (t_final / t[-1])
    return preds.mean(axis=1), raw


def _own_part(
    partial: tuple[np.ndarray, np.ndarray],
    final_step: int,
    at: np.ndarray,
    references: list[tuple[np.ndarray, np.ndarray]],
    finals: np.ndarray,
    *,
    maximize: bool,
) -> _Part | None:
    """Own-curve estimate, its std calibrated by the same fit's errors on the references' prefixes.

    ``at`` holds the references' values at the partial's steps (a row each, nan before a reference's
    first point), ``references`` their finite points, ``finals`` their finals. A reference with a value
    at each of the partial's steps is fitted there (all at once); another one on its own points up to
    the partial's last step, when it has 3.
    """
    positive = partial[0] > 0
    t, v, at = partial[0][positive], partial[1][positive], at[:, positive]
    if t.size < MIN_OWN_POINTS:
        return None
    mean, raw = own_estimate(t, v[None, :], float(final_step), maximize=maximize)
    errors = np.full(finals.size, np.nan)
    ref_raw = np.full(finals.size, np.nan)
    complete = np.all(np.isfinite(at), axis=1)
    if np.any(complete):
        ref_mean, ref_raw[complete] = own_estimate(t, at[complete], float(final_step), maximize=maximize)
        errors[complete] = ref_mean - finals[complete]
    for i in np.flatnonzero(~complete):  # a reference that started reporting after the partial
        steps, values = references[i]
        keep = (steps > 0) & (steps <= t[-1])
        if np.count_nonzero(keep) >= MIN_OWN_POINTS:
            one_mean, one_raw = own_estimate(
                steps[keep], values[keep][None, :], final_step, maximize=maximize
            )
            errors[i], ref_raw[i] = one_mean[0] - finals[i], one_raw[0]
    var = float(raw[0]) ** 2
    judged = np.isfinite(errors)
    n = int(np.count_nonzero(judged))
    if n < MIN_REFERENCES:
        # uncalibrated, a flat start (a curve at chance before its warmup ends) extrapolates flat
        # with a std near 0: measured, a trial at chance after 3 of 20 reports ended second best
        return None
    if n >= MIN_REFERENCES:
        err2 = np.square(errors[judged])
        raw2 = np.square(ref_raw[judged])
        # the references' squared errors as gain * raw variance + floor (both >= 0)
        (gain, floor), _ = optimize.nnls(np.column_stack([raw2, np.ones_like(raw2)]), err2)
        dof = max(n - int(gain > 0.0) - int(floor > 0.0), 1)
        var = (float(gain) * var + float(floor)) * t_factor(dof) ** 2
        # never sharper than the calibration itself can tell: a flat curve fits its families exactly
        # (raw std 0) and a zero floor then claimed +- 0 (measured: a GRU at chance, "0.4805 +- 0")
        var = max(var, float(np.mean(err2)) / n)
        source = f"own-curve fit (calibrated on {n} curves)"
    return _Part(float(mean[0]), var, source, errors, finals)


def _ols(design: np.ndarray, y: np.ndarray, x0: np.ndarray) -> tuple[float, float, np.ndarray, int] | None:
    """OLS prediction at ``x0``: its mean, its variance, the leave-one-out errors and the dof.

    The variance is the prediction interval's, ``s^2 (1 + leverage)``, with ``s^2`` the larger of the
    residual variance and its kernel-weighted value near the prediction (residuals that grow in one
    part of the range widen the interval there), times the Student-t allowance for the dof. None when
    there are no degrees of freedom left or the regressors are collinear (a constant one included).
    """
    n, p = design.shape
    dof = n - p
    if dof < 1:
        return None
    left, singular, right = np.linalg.svd(design, full_matrices=False)
    if singular[-1] <= 1e-10 * singular[0]:
        return None
    coef = right.T / singular  # the design's pseudo-inverse is coef @ left.T
    beta = coef @ (left.T @ y)
    resid = y - design @ beta
    s2 = float(resid @ resid) / dof
    leverage = float(np.sum(np.square(x0 @ coef)))
    kept = np.maximum(1.0 - np.einsum("ij,ij->i", left, left), 1e-9)  # 1 - the hat matrix's diagonal
    mean = float(x0 @ beta)
    local = _local_variance(design @ beta, resid**2 / kept, mean)
    var = max(s2, local) * (1.0 + leverage) * t_factor(dof) ** 2
    return mean, var, -resid / kept, dof  # each point held out: prediction minus truth


def _local_variance(where: np.ndarray, squares: np.ndarray, at: float) -> float:
    """Kernel-weighted mean of ``squares`` around ``at`` (Gaussian kernel, Silverman's bandwidth).

    >>> _local_variance(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0, 4.0]), 3.0) > 2.5
    True
    """
    spread = float(np.std(where))
    if spread <= 0.0:
        return float(np.mean(squares))
    bandwidth = 1.06 * spread * where.size**-0.2
    weights = np.exp(-0.5 * np.square((where - at) / bandwidth))
    total = float(weights.sum())
    return float(weights @ squares) / total if total > 0.0 else float(np.mean(squares))


def _population_part(
    partial: tuple[np.ndarray, np.ndarray], at: np.ndarray, finals: np.ndarray
) -> _Part | None:
    """Regression of the references' finals on their values at the partial's last step(s).

    ``at`` holds the references' values at the partial's steps (a row each), ``finals`` their finals.
    """
    t, v = partial
    used = np.isfinite(at[:, -1])
    n = int(np.count_nonzero(used))
    if n < MIN_REFERENCES:
        return None
    x, y = at[used, -1], finals[used]
    ones = np.ones(n)
    best = _ols(np.column_stack([ones, x]), y, np.array([1.0, v[-1]]))
    name = ""
    if best is None:  # no spread in the regressor: final ~ v + mean(final_r - v_r)
        shift = _ols(ones[:, None], y - x, np.ones(1))
        if shift is None:
            return None
        best, name = (shift[0] + float(v[-1]), *shift[1:]), " (mean shift)"
    elif n >= MIN_REFERENCES_TWO_REGRESSORS and t.size >= 2 and np.all(np.isfinite(at[used, -2])):
        two = _ols(np.column_stack([ones, x, at[used, -2]]), y, np.array([1.0, v[-1], v[-2]]))
        # the earlier value joins only when it predicts the held-out references better
        if two is not None and float(two[2] @ two[2]) < float(best[2] @ best[2]):
            best, name = two, " (2 regressors)"
    mean, var, loo, _ = best
    errors = np.full(finals.size, np.nan)
    errors[used] = loo
    return _Part(mean, var, f"population {n} curves{name}", errors, finals)


def _correlation(a: _Part, b: _Part) -> float:
    """Correlation of two parts' errors on the references both judged, clipped to [0, 0.95]."""
    common = np.isfinite(a.errors) & np.isfinite(b.errors)
    if np.count_nonzero(common) < MIN_PAIRS_FOR_CORRELATION:
        return DEFAULT_CORRELATION
    ea, eb = a.errors[common], b.errors[common]
    if float(np.std(ea)) == 0.0 or float(np.std(eb)) == 0.0:
        return DEFAULT_CORRELATION
    return float(np.clip(np.corrcoef(ea, eb)[0, 1], 0.0, 0.95))


def combine(a: _Part, b: _Part) -> tuple[float, float]:
    """Inverse-variance weighted mean of two parts, and its variance.

    The variance allows for the parts' errors being correlated (:func:`_correlation`); with enough
    references judged by both it is at least the kernel-weighted mean, near the prediction, of the
    squared errors the same weighting makes on them (times the Student-t allowance).
    """
    if a.var <= 0.0 or b.var <= 0.0:
        zero = [p for p in (a, b) if p.var <= 0.0]
        return float(np.mean([p.mean for p in zero])), 0.0
    wa = b.var / (a.var + b.var)
    wb = 1.0 - wa
    rho = _correlation(a, b)
    var = wa * wa * a.var + wb * wb * b.var + 2.0 * wa * wb * rho * math.sqrt(a.var * b.var)
    mean = wa * a.mean + wb * b.mean
    common = np.isfinite(a.errors) & np.isfinite(b.errors)
    n = int(np.count_nonzero(common))
    if n >= MIN_PAIRS_FOR_CORRELATION:
        errors = wa * a.errors[common] + wb * b.errors[common]
        predicted = a.finals[common] + errors
        var = max(var, _local_variance(predicted, errors**2, mean) * t_factor(n) ** 2)
    return mean, var


@lru_cache(maxsize=4096)
def _reference(curve: Curve, final_step: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A reference's finite points (read-only) and final value, cached: the same references come back
    at every report of every trial."""
    steps, values = finite_points(curve)
    steps.flags.writeable = False
    values.flags.writeable = False
    return steps, values, reference_final(curve, final_step)


def predict_final(
    partial: Curve, final_step: int, references: Sequence[Curve], *, maximize: bool
) -> Prediction:
    """Predicts ``partial``'s value at ``final_step`` from its finite points and finished references.

    Args:
        partial: the trial's reports so far.
        final_step: the step of the trial's last report (its result).
        references: complete curves of the study's other finished trials (same objective).
        maximize: the study's direction (the saturating fits improve in it).

    Returns:
        The combined prediction (see the module docstring); for a partial with no finite value
        ``Prediction(nan, inf, "no finite value")``; one already at ``final_step``: its last finite
        value with std 0; when neither part applies: the last finite value with std inf.
    """
    t, v = finite_points(partial)
    if t.size == 0:
        return Prediction(math.nan, math.inf, "no finite value")
    if t[-1] >= final_step:
        return Prediction(float(v[-1]), 0.0, "reached the final step")
    points: list[tuple[np.ndarray, np.ndarray]] = []
    rows, finals = [], []
    for ref in references:
        steps, values, final = _reference(ref, final_step)
        if math.isfinite(final):
            points.append((steps, values))
            rows.append(np.interp(t, steps, values, left=np.nan))
            finals.append(final)
    at = np.array(rows).reshape(len(rows), t.size)
    finals_array = np.array(finals)
    parts = [
        p
        for p in (
            _population_part((t, v), at, finals_array),
            _own_part((t, v), final_step, at, points, finals_array, maximize=maximize),
        )
        if p is not None
    ]
    if not parts:
        return Prediction(float(v[-1]), math.inf, "last value only")
    if len(parts) == 1:
        mean, var = parts[0].mean, parts[0].var
    else:
        mean, var = combine(parts[0], parts[1])
    return Prediction(float(mean), math.sqrt(max(float(var), 0.0)), " + ".join(p.source for p in parts))
