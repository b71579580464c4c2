"""predict_final on held-out synthetic sweeps (accuracy, calibration) and on the edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks._synthetic_curves import synthetic_curves
from gradsweep.search.learning_curve import Z90, Curve, Prediction, predict_final

# four studies of 30 finished curves, each with 30 held-out curves predicted from 1, 2 and 4 of 8 reports
SEEDS = (1001, 1002, 1003, 1004)
N_REFERENCES = 30
N_HELD_OUT = 30
PREFIXES = (1, 2, 4)
STEPS = (18, 36, 54, 72, 90, 108, 126, 144)


@pytest.fixture(scope="module")
def held_out() -> dict[int, np.ndarray]:
    """Per prefix length: rows of (model error, last-value error, model std) over the held-out curves."""
    rows: dict[int, list[tuple[float, float, float]]] = {k: [] for k in PREFIXES}
    for seed in SEEDS:
        curves = synthetic_curves(N_REFERENCES + N_HELD_OUT, seed=seed)
        references, targets = curves[:N_REFERENCES], curves[N_REFERENCES:]
        for curve in targets:
            truth = curve.values[-1]
            for k in PREFIXES:
                p = predict_final(Curve(curve.steps[:k], curve.values[:k]), 144, references, maximize=True)
                rows[k].append((p.mean - truth, curve.values[k - 1] - truth, p.std))
    return {k: np.array(v) for k, v in rows.items()}


@pytest.mark.parametrize("k", PREFIXES)
def test_mean_absolute_error_of_the_final_is_below_the_last_value_baseline(
    held_out: dict[int, np.ndarray], k: int
) -> None:
    """Metric: MAE of the predicted final value over 120 held-out curves, seen up to report k of 8."""
    rows = held_out[k]
    model_mae, last_mae = np.mean(np.abs(rows[:, 0])), np.mean(np.abs(rows[:, 1]))
    # the model beats "the final is the last value seen" at every prefix
    assert model_mae < last_mae, (model_mae, last_mae)


def test_ninety_percent_interval_covers_most_held_out_finals(held_out: dict[int, np.ndarray]) -> None:
    """Metric: share of held-out finals inside mean +- 1.64 std, pooled over prefixes 1, 2 and 4."""
    rows = np.concatenate(list(held_out.values()))
    assert np.all(np.isfinite(rows[:, 2]))
    coverage = float(np.mean(np.abs(rows[:, 0]) <= Z90 * rows[:, 2]))
    # calibrated within sampling noise and modelling slack: neither overconfident nor uselessly wide
    assert 0.75 <= coverage <= 0.99, coverage


def _refs(n: int = 12, *, seed: int = 7, maximize: bool = True) -> list[Curve]:
    return synthetic_curves(n, seed=seed, maximize=maximize)


def test_no_finite_value() -> None:
    p = predict_final(Curve((18, 36), (math.nan, math.inf)), 144, _refs(), maximize=True)
    assert math.isnan(p.mean) and p.std == math.inf and p.source == "no finite value"
    assert predict_final(Curve((), ()), 144, _refs(), maximize=True).source == "no finite value"


def test_without_references_there_is_only_the_last_value_whatever_the_points() -> None:
    # no references: nothing calibrates an extrapolation, so the model says it cannot tell (std inf),
    # with one point, two, or a rising curve of three or five
    for values in ((0.3,), (0.3, 0.4), (0.3, 0.4, 0.45), (0.3, 0.4, 0.45, 0.47, 0.48)):
        p = predict_final(Curve(STEPS[: len(values)], values), 144, [], maximize=True)
        assert p == Prediction(values[-1], math.inf, "last value only")


def test_a_flat_start_is_not_extrapolated_flat_with_no_references() -> None:
    # a curve at chance for its first reports (a warmup) ended second best in a real sweep: with
    # only two finished trials the own-curve fit is not trusted (it gave +- 0 before)
    refs = _refs()[:2]
    p = predict_final(Curve((12, 24, 36), (0.0917, 0.0917, 0.0917)), 240, refs, maximize=True)
    assert math.isinf(p.std)


def test_single_point_with_references_uses_the_population_alone() -> None:
    refs = _refs()
    p = predict_final(Curve((18,), (refs[0].values[0],)), 144, refs, maximize=True)
    assert p.source == "population 12 curves"
    assert math.isfinite(p.mean) and 0.0 < p.std < math.inf


def test_non_finite_points_are_ignored() -> None:
    refs = _refs()
    with_nan = predict_final(Curve(STEPS[:4], (0.2, math.nan, 0.35, 0.4)), 144, refs, maximize=True)
    without = predict_final(Curve((18, 54, 72), (0.2, 0.35, 0.4)), 144, refs, maximize=True)
    assert with_nan == without
    # a trailing nan: the prediction is made from the last finite report (step 54)
    trailing = predict_final(Curve(STEPS[:4], (0.2, 0.3, 0.35, math.nan)), 144, refs, maximize=True)
    assert trailing == predict_final(Curve(STEPS[:3], (0.2, 0.3, 0.35)), 144, refs, maximize=True)
    # a reference whose last report is nan (diverged) does not count
    broken = Curve(STEPS, (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, math.nan))
    assert predict_final(Curve((18,), (0.2,)), 144, [*refs, broken], maximize=True).source.startswith(
        "population 12 curves"
    )


def test_partial_already_at_the_final_step_is_its_value() -> None:
    p = predict_final(Curve(STEPS, (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75)), 144, _refs(), maximize=True)
    assert (p.mean, p.std) == (0.75, 0.0)
    assert p.upper(1.64) == p.lower(1.64) == 0.75


def test_minimize_mirrors_maximize() -> None:
    refs_max, refs_min = _refs(seed=3), _refs(seed=3, maximize=False)
    target_max, target_min = _refs(4, seed=4), _refs(4, seed=4, maximize=False)
    for k in (1, 4):
        for up, down in zip(target_max, target_min, strict=True):
            p = predict_final(Curve(up.steps[:k], up.values[:k]), 144, refs_max, maximize=True)
            q = predict_final(Curve(down.steps[:k], down.values[:k]), 144, refs_min, maximize=False)
            # the error rate's prediction is 1 - the accuracy's, with the same std
            assert q.mean == pytest.approx(1.0 - p.mean, abs=1e-9)
            assert q.std == pytest.approx(p.std, rel=1e-6)
            assert q.source == p.source


def test_minimize_own_curve_extrapolates_downwards() -> None:
    # the references decreasing too (a loss): the prediction goes on down
    refs = [Curve(STEPS, tuple(1.0 - 0.5 * (1 - math.exp(-s / k)) for s in STEPS)) for k in (30, 40, 50, 60)]
    p = predict_final(Curve(STEPS[:4], (0.9, 0.7, 0.6, 0.55)), 144, refs, maximize=False)
    assert p.mean < 0.55


def test_references_on_other_step_grids() -> None:
    # references reported every 20 steps (to 160) and every 48 (to 144); the partial every 18
    rng = np.random.default_rng(0)
    refs = []
    for i in range(10):
        grid = tuple(range(20, 161, 20)) if i % 2 else (48, 96, 144)
        rate, final = rng.uniform(0.01, 0.03), rng.uniform(0.5, 0.9)
        refs.append(Curve(grid, tuple(float(final * (1 - math.exp(-rate * s))) for s in grid)))
    partial = Curve((18, 36, 54, 72), (0.2, 0.35, 0.45, 0.5))
    p = predict_final(partial, 144, refs, maximize=True)
    # all ten count in the population: the ones that ran to 160 give their value at 144 (interpolated),
    # and every one has a value at step 72 (interpolated between its reports)
    assert p.source.startswith("population 10 curves")
    # the own-curve fit is calibrated on the five with 3 reports by step 72 (20, 40, 60), fitted on
    # their own steps (they have none at 18)
    assert p.source.endswith("own-curve fit (calibrated on 5 curves)")
    assert math.isfinite(p.mean) and 0.0 < p.std < math.inf
    # a reference that stopped more than one report short of the final step does not count
    short = Curve((20, 40, 60, 80, 100), (0.1, 0.2, 0.3, 0.35, 0.4))
    assert predict_final(partial, 144, [*refs, short], maximize=True) == p
    # one that reported last within one report of the final step counts, with its last value
    near = Curve((40, 80, 120), (0.3, 0.5, 0.6))
    assert predict_final(partial, 144, [*refs, near], maximize=True).source.startswith("population 11 curves")
    # one that starts reporting after the partial's last step cannot be matched there
    late = Curve((100, 144), (0.5, 0.6))
    q = predict_final(Curve((60,), (0.4,)), 144, [*refs, late], maximize=True)
    assert q.source == "population 10 curves"
    # so a partial reported before every reference's first report has no population part
    assert predict_final(Curve((18,), (0.2,)), 144, refs, maximize=True).source == "last value only"


def test_prediction_outside_the_references_range_is_less_certain() -> None:
    # references: final = 0.2 + value at step 36, plus noise; values at 36 spread over [0.3, 0.5]
    rng = np.random.default_rng(1)
    refs = [
        Curve((18, 36, 144), (x - 0.1, x, x + 0.2 + float(rng.normal(0, 0.01))))
        for x in np.linspace(0.3, 0.5, 12)
    ]
    inside = predict_final(Curve((18, 36), (0.3, 0.4)), 144, refs, maximize=True)
    outside = predict_final(Curve((18, 36), (0.7, 0.8)), 144, refs, maximize=True)
    assert inside.mean == pytest.approx(0.6, abs=0.02)
    assert outside.mean == pytest.approx(1.0, abs=0.05)
    # leverage: 1 + h is about 4.5 at 0.8 against 1.1 at the references' centre
    assert outside.std > 1.5 * inside.std


def test_constant_regressor_falls_back_to_the_mean_shift() -> None:
    refs = [Curve((18, 144), (0.3, 0.3 + d)) for d in (0.2, 0.25, 0.3, 0.35)]
    p = predict_final(Curve((18,), (0.5,)), 144, refs, maximize=True)
    assert p.source == "population 4 curves (mean shift)"
    assert p.mean == pytest.approx(0.5 + 0.275)
    assert 0.0 < p.std < math.inf


def test_prediction_bounds_and_curve_validation() -> None:
    p = Prediction(0.5, 0.1, "x")
    assert p.upper(2.0) == pytest.approx(0.7) and p.lower(2.0) == pytest.approx(0.3)
    assert Prediction(0.5, math.inf, "x").upper(1.64) == math.inf
    with pytest.raises(ValueError, match="steps but"):
        Curve((1, 2), (0.1,))
    with pytest.raises(ValueError, match="strictly increasing"):
        Curve((2, 2), (0.1, 0.2))
    with pytest.raises(ValueError, match=">= 0"):
        Curve((-1, 2), (0.1, 0.2))


def test_step_zero_is_kept_out_of_the_own_curve_fit() -> None:
    grid = (0, 10, 20, 30, 40, 50, 60, 70, 80)
    refs = [Curve(grid, tuple(f * (1 - math.exp(-s / 25)) for s in grid)) for f in (0.5, 0.6, 0.7)]
    p = predict_final(Curve((0, 10, 20, 30), (0.1, 0.3, 0.4, 0.45)), 80, refs, maximize=True)
    assert "own-curve fit (calibrated on 3 curves)" in p.source
    assert math.isfinite(p.mean) and math.isfinite(p.std)


def test_a_flat_curve_is_not_predicted_with_zero_uncertainty() -> None:
    # a real sweep (a GRU of a new user's, accuracy at 8 epochs): four finished curves, and a trial at
    # chance for three reports, which all three families fit exactly (raw std 0): the calibration on
    # four references cannot vouch for +- 0 (it claimed exactly that before)
    refs = [
        Curve(tuple(range(16, 129, 16)), v)
        for v in (
            (0.8515625, 0.94140625, 0.94921875, 0.96875, 0.98046875, 0.98046875, 0.98828125, 0.98828125),
            (0.90234375, 0.90234375, 0.9609375, 0.984375, 0.94140625, 0.97265625, 0.9921875, 0.984375),
            (0.69921875, 0.9453125, 0.953125, 0.953125, 0.9921875, 0.9921875, 0.98828125, 0.984375),
            (0.609375, 0.9375, 0.96875, 0.9609375, 0.97265625, 0.98828125, 0.99609375, 0.99609375),
        )
    ]
    p = predict_final(Curve((16, 32, 48), (0.48046875,) * 3), 128, refs, maximize=True)
    assert "own-curve fit (calibrated on 4 curves)" in p.source
    assert p.std > 0.01
