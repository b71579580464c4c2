"""Plain data behind the report's plots: history, parallel coordinates, importances, LR vs value.

Both renderers (plotly for HTML, matplotlib for PNG) draw from these, so the two show the
same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from gradsweep.search import attrs as _keys
from gradsweep.search.views.trials import trial_value


@dataclass(frozen=True)
class History:
    numbers: list[int]
    values: list[float]
    best_so_far: list[float]


@dataclass(frozen=True)
class Importances:
    """Parameter importances (name -> share, descending), or None with a note why not."""

    values: dict[str, float] | None
    note: str | None = None


@dataclass(frozen=True)
class ParallelData:
    """Complete trials as columns: one list per param (None where a trial lacks it) plus values."""

    params: dict[str, list[Any]]
    values: list[float]
    numbers: list[int]


@dataclass(frozen=True)
class LrPoints:
    """Per tower: (lr, value, trial number) of every complete trial."""

    towers: dict[str, list[tuple[float, float, int]]]


def history(trials: list[FrozenTrial], direction: str) -> History:
    """Values of the COMPLETE trials in trial order, with the best value so far."""
    done = sorted((t for t in trials if trial_value(t) is not None), key=lambda t: t.number)
    pick = max if direction == "maximize" else min
    numbers, values, best = [], [], []
    for t in done:
        value = float(trial_value(t) or 0.0)
        numbers.append(t.number)
        values.append(value)
        best.append(value if not best else pick(best[-1], value))
    return History(numbers, values, best)


def parallel(trials: list[FrozenTrial]) -> ParallelData:
    """Params and value of every COMPLETE trial, column-wise."""
    done = sorted((t for t in trials if trial_value(t) is not None), key=lambda t: t.number)
    names = sorted({name for t in done for name in t.params})
    return ParallelData(
        {name: [t.params.get(name) for t in done] for name in names},
        [float(trial_value(t) or 0.0) for t in done],
        [t.number for t in done],
    )


def importances(study: optuna.Study) -> Importances:
    """Parameter importances (fANOVA, 32 trees, seeded) from :func:`optuna.importance.get_param_importances`.

    Returns a note instead of values when fewer than two trials are complete, no parameter
    varies, or Optuna cannot compute them.
    """
    done = [t for t in study.trials if trial_value(t) is not None]
    if len(done) < 2:
        return Importances(None, f"parameter importances need at least 2 complete trials (have {len(done)})")
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=32, seed=0)  # reproducible report
        values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError) as exc:
        return Importances(None, f"parameter importances unavailable: {exc}")
    if not values:
        return Importances(None, "parameter importances unavailable: no parameter varies")
    return Importances({k: float(v) for k, v in values.items()})


def tower_lrs(trial: FrozenTrial) -> dict[str, float]:
    """Each tower's LR in a trial: ``towers.<t>.lr`` params first, else the resolved config's towers."""
    lrs: dict[str, float] = {}
    config = trial.user_attrs.get(_keys.CONFIG)
    if isinstance(config, dict):
        for tower in config.get("towers") or []:
            if isinstance(tower, dict) and "name" in tower and isinstance(tower.get("lr"), int | float):
                lrs[str(tower["name"])] = float(tower["lr"])
    for name, value in trial.params.items():
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "towers" and parts[2] == "lr" and isinstance(value, int | float):
            lrs[parts[1]] = float(value)
    return lrs


def lr_points(trials: list[FrozenTrial]) -> LrPoints:
    """(lr, value, number) per tower over the COMPLETE trials."""
    towers: dict[str, list[tuple[float, float, int]]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        value = trial_value(t)
        if value is None:
            continue
        for tower, lr in tower_lrs(t).items():
            towers.setdefault(tower, []).append((lr, value, t.number))
    return LrPoints(towers)
