"""Per-trial gradient-health curves: grad norm per tower and the loss against step, with verdicts and the prune point.

The data comes from the trial attrs ``gradsweep.health.history`` (a bounded list of
``{"step", "verdict", "metrics"}``) and ``gradsweep.prune.{kind,reason,step}``. A tower's
grad norm is the monitor's ``health/<tower>/grad_norm_pre`` (mean pre-clip norm over the
check window); the global norm ``health/grad_norm_global`` is drawn as the ``global`` series.

A config paused and thawed by ``--pruner freeze-thaw`` is one curve: :func:`health_curves` draws
it under its latest trial, from each paused trial's history up to the checkpoint its thaw
started from, then the thaw's own (:attr:`HealthCurve.thaws` marks where each pause was).

Example:
    >>> curves = health_curves(study.trials)  # doctest: +SKIP
    >>> curves[0].series["text_encoder"]      # doctest: +SKIP
    [0.41, 0.02, 3.1e-07]
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from gradsweep.search import attrs as _keys
from gradsweep.search.thaw_attrs import PAUSED, chain_ends, chain_of, pause_step
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

    @property
    def label(self) -> str:
        """``pruned (unstable) at step 80: <reason>``, or ``paused at step 36: <reason>``."""
        if self.kind == PAUSED:
            return f"paused at step {self.step}: {self.reason}"
        return f"pruned ({self.kind or 'unknown'}) at step {self.step}: {self.reason}"


@dataclass(frozen=True)
class ThawPoint:
    """Where a curve drawn over a paused-then-thawed config continues in the next trial.

    Attributes:
        step: the paused trial's kept checkpoint, where its thaw went on from.
        paused: the paused trial (the curve before ``step`` is its).
        thawed_as: the trial that continued it.
    """

    step: int
    paused: int
    thawed_as: int

    @property
    def label(self) -> str:
        return f"trial {self.paused} paused, thawed as trial {self.thawed_as} from its checkpoint at step {self.step}"


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
        thaws: for a config paused and thawed: each pause it went on from, first first (the curve
            is the config's, drawn under its latest trial ``number``).
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
    thaws: list[ThawPoint] = field(default_factory=list)

    @property
    def trials(self) -> list[int]:
        """The trials the curve is drawn from: the paused ones it continues, then ``number``."""
        return [t.paused for t in self.thaws] + [self.number]

    @property
    def title(self) -> str:
        """``Trial 11 (complete, thaw of #2 paused at step 36)`` for the figure titles."""
        state = PAUSED if self.prune is not None and self.prune.kind == PAUSED else self.state.lower()
        thawed = "".join(f", thaw of #{t.paused} paused at step {t.step}" for t in self.thaws[::-1])
        return f"Trial {self.number} ({state}{thawed})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tower_of(key: str) -> str | None:
    """The tower a grad-norm metric key belongs to, or None if ``key`` is not a grad norm."""
    for pattern in GRAD_NORM_KEYS:
        match = pattern.match(key)
        if match:
            return match.group("tower")
    return None


def _entries(trial: FrozenTrial) -> list[dict[str, Any]]:
    history = trial.user_attrs.get(_keys.HEALTH_HISTORY)
    if not isinstance(history, list):
        return []
    return [e for e in history if isinstance(e, dict) and isinstance(e.get("step"), int | float)]


def health_curve(trial: FrozenTrial, chain: list[FrozenTrial] | None = None) -> HealthCurve | None:
    """The :class:`HealthCurve` of one trial, or None when it has no health history.

    Args:
        trial: the trial.
        chain: for a thaw, its config's trials before it (:func:`gradsweep.search.thaw_attrs.chain_of`,
            ``trial`` excluded): their history up to the checkpoint each thaw went on from comes first.
    """
    by_step: dict[int, dict[str, Any]] = {}
    thaws: list[ThawPoint] = []
    links = [*(chain or []), trial]
    for link, after in itertools.pairwise(links):
        cut = pause_step(link)
        for e in _entries(link):
            if cut is None or e["step"] <= cut:
                by_step[int(e["step"])] = e
        thaws.append(
            ThawPoint(cut if cut is not None else max(by_step, default=0), link.number, after.number)
        )
    for e in _entries(trial):  # in the order written: a step written twice keeps the later entry
        by_step[int(e["step"])] = e
    if not by_step:
        return None
    entries = [by_step[step] for step in sorted(by_step)]
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
        thaws=thaws,
    )


def health_curves(trials: list[FrozenTrial]) -> list[HealthCurve]:
    """Curves of every trial that has a health history, by trial number; a paused trial that was
    thawed has none of its own: its curve goes on in its thaw's (:attr:`HealthCurve.thaws`)."""
    curves = [health_curve(t, chain_of(t, trials)[:-1]) for t in chain_ends(trials)]
    return [c for c in curves if c is not None]


def _prune_point(trial: FrozenTrial, steps: list[int]) -> PrunePoint | None:
    if trial.state != TrialState.PRUNED:
        return None
    attrs = trial.user_attrs
    step = attrs.get(_keys.PRUNE_STEP)
    if step is None:
        step = steps[-1] if steps else (trial.last_step or 0)
    kind = attrs.get(_keys.PRUNE_KIND)
    reason = first_line(attrs.get(_keys.PRUNE_REASON)) or f"{kind or 'pruned'} (no reason recorded)"
    if kind == PAUSED:  # the label says "paused at step N" already
        reason = reason.removeprefix(f"{PAUSED}: ")
    return PrunePoint(int(step), kind, reason)


def _as_float(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
