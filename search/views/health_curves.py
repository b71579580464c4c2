"""Per-trial gradient-health curves: grad norm per tower and the loss against step, with verdicts and the prune point.

The data comes from the trial attrs ``gradsweep.health.history`` (a bounded list of
``{"step", "verdict", "metrics"}``) and ``gradsweep.prune.{kind,reason,step}``. A tower's
grad norm is the monitor's ``health/<tower>/grad_norm_pre`` (mean pre-clip norm over the
check window); the global norm ``health/grad_norm_global`` is drawn as the ``global`` series.

Example:
    >>> curves = health_curves(study.trials)  # doctest: +SKIP
    >>> curves[0].series["text_encoder"]      # doctest: +SKIP
    [0.41, 0.02, 3.1e-07]
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from gradsweep.search import attrs as _keys
from gradsweep.search.views.trials import first_line

# Metric keys of gradsweep.objectives.health.monitor that carry a grad norm; group "tower" names the series.
GRAD_NORM_KEYS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^health/(?P<tower>[^/]+)/grad_norm_pre$"),
    re.compile(r"^health/grad_norm_(?P<tower>global)$"),
)


#: The check window's mean training loss (``health/loss`` of the monitor).
LOSS_KEY = "health/loss"


@dataclass(frozen=True)
class PrunePoint:
    step: int
    kind: str | None
    reason: str


@dataclass(frozen=True)
class HealthCurve:
    """One trial's grad-norm curves.

    Attributes:
        number: trial number.
        state: trial state name.
        steps: the steps of the history entries, ascending.
        series: tower name -> grad norm per step (``nan`` where the entry lacks the tower;
            non-finite norms kept as ``inf``/``nan`` so explosions stay visible).
        verdicts: the verdict at each step.
        prune: where and why the trial was pruned, or None.
        loss: the check window's mean training loss at each step (``nan`` where not recorded).
        reasons: the rules' reasons at each step (empty at a healthy check).
    """

    number: int
    state: str
    steps: list[int]
    series: dict[str, list[float]]
    verdicts: list[str]
    prune: PrunePoint | None = None
    loss: list[float] = field(default_factory=list)
    reasons: list[list[str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tower_of(key: str) -> str | None:
    """The tower a grad-norm metric key belongs to, or None if ``key`` is not a grad norm."""
    for pattern in GRAD_NORM_KEYS:
        match = pattern.match(key)
        if match:
            return match.group("tower")
    return None


def health_curve(trial: FrozenTrial) -> HealthCurve | None:
    """The :class:`HealthCurve` of one trial, or None when it has no health history."""
    history = trial.user_attrs.get(_keys.HEALTH_HISTORY)
    if not isinstance(history, list) or not history:
        return None
    entries = sorted((e for e in history if isinstance(e, dict) and "step" in e), key=lambda e: e["step"])
    steps = [int(e["step"]) for e in entries]
    towers: list[str] = []
    for entry in entries:
        for key in entry.get("metrics") or {}:
            tower = tower_of(key)
            if tower is not None and tower not in towers:
                towers.append(tower)
    series: dict[str, list[float]] = {tower: [] for tower in towers}
    for entry in entries:
        by_tower = {
            tower_of(k): v for k, v in (entry.get("metrics") or {}).items() if tower_of(k) is not None
        }
        for tower in towers:
            series[tower].append(_as_float(by_tower.get(tower)))
    verdicts = [str(e.get("verdict", "")) for e in entries]
    loss = [_as_float((e.get("metrics") or {}).get(LOSS_KEY)) for e in entries]
    reasons = [[str(r) for r in e.get("reasons") or [] if isinstance(r, str)] for e in entries]
    return HealthCurve(
        trial.number,
        trial.state.name,
        steps,
        series,
        verdicts,
        _prune_point(trial, steps),
        loss=loss,
        reasons=reasons,
    )


def health_curves(trials: list[FrozenTrial]) -> list[HealthCurve]:
    """Curves of every trial that has a health history, by trial number."""
    curves = [health_curve(t) for t in sorted(trials, key=lambda t: t.number)]
    return [c for c in curves if c is not None]


def _prune_point(trial: FrozenTrial, steps: list[int]) -> PrunePoint | None:
    if trial.state != TrialState.PRUNED:
        return None
    attrs = trial.user_attrs
    step = attrs.get(_keys.PRUNE_STEP)
    if step is None:
        step = steps[-1] if steps else (trial.last_step or 0)
    reason = first_line(attrs.get(_keys.PRUNE_REASON)) or "pruned (no reason recorded)"
    return PrunePoint(int(step), attrs.get(_keys.PRUNE_KIND), reason)


def _as_float(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
