"""One plain row per trial, sorting, and the best COMPLETE trials.

Pure functions of a list of :class:`optuna.trial.FrozenTrial`; the CLI renders the rows
as a table, JSON or CSV.

Example:
    >>> rows = trial_rows(study.trials)                      # doctest: +SKIP
    >>> best = best_trials(study.trials, "maximize", top=3)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from gradsweep.search import attrs as _keys
from gradsweep.search.thaw_attrs import PAUSED, thaw_of, thawed_as


class SortKey(StrEnum):
    VALUE = "value"
    NUMBER = "number"
    DURATION = "duration"


@dataclass(frozen=True)
class TrialRow:
    """What the user sees about one trial.

    Attributes:
        number: the Optuna trial number.
        state: ``COMPLETE`` / ``PRUNED`` / ``FAIL`` / ``RUNNING`` / ``WAITING``.
        value: the objective value (COMPLETE trials; None otherwise).
        reason: prune reason, first line of the failure, or the latest health verdict of a running trial.
        kind: prune kind (``unstable`` / ``underperforming`` / ``paused``) for pruned trials.
        params: the sampled knobs.
        duration_s: seconds from start to end (to now for running trials); None if never started.
        baseline: the baseline name for enqueued baselines.
        thaw_of: for a thaw (``--pruner freeze-thaw``): the paused trial it continues.
        thawed_as: for a paused trial: the trial that continues it (None: still paused).
    """

    number: int
    state: str
    value: float | None
    reason: str | None
    kind: str | None
    params: dict[str, Any] = field(default_factory=dict)
    duration_s: float | None = None
    baseline: str | None = None
    thaw_of: int | None = None
    thawed_as: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def paused(self) -> bool:
        """A trial the freeze-thaw scheduler paused (stored PRUNED), thawed or not."""
        return self.state == "PRUNED" and self.kind == PAUSED

    @property
    def shown_state(self) -> str:
        """The state as the table shows it: ``PAUSED`` for a paused trial, else the Optuna state."""
        return "PAUSED" if self.paused else self.state

    @property
    def thaw_note(self) -> str | None:
        """``thaw of #2``, ``thawed as #11`` (both for a thaw paused and thawed again), or None."""
        notes = []
        if self.thaw_of is not None:
            notes.append(f"thaw of #{self.thaw_of}")
        if self.thawed_as is not None:
            notes.append(f"thawed as #{self.thawed_as}")
        elif self.paused:
            notes.append("not thawed")
        return ", ".join(notes) or None


def first_line(text: str | None) -> str | None:
    """The first non-empty line of ``text`` (None stays None)."""
    if text is None:
        return None
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return None


def trial_value(trial: FrozenTrial) -> float | None:
    """The finite objective value of a COMPLETE trial, else None (first objective when multi-objective)."""
    if trial.state != TrialState.COMPLETE or not trial.values:
        return None
    value = float(trial.values[0])
    return value if math.isfinite(value) else None


def trial_duration(trial: FrozenTrial, *, now: datetime | None = None) -> float | None:
    """Seconds the trial ran (until now for a running trial), or None if it never started."""
    if trial.datetime_start is None:
        return None
    end = trial.datetime_complete
    if end is None:
        if trial.state != TrialState.RUNNING:
            return None
        end = now or datetime.now()
    return max((end - trial.datetime_start).total_seconds(), 0.0)


def trial_reason(trial: FrozenTrial) -> str | None:
    """Why the trial is in its state: prune reason, failure line, or latest health verdict."""
    attrs = trial.user_attrs
    if trial.state == TrialState.PRUNED:
        return first_line(attrs.get(_keys.PRUNE_REASON)) or "pruned (no reason recorded)"
    if trial.state == TrialState.FAIL:
        return first_line(attrs.get(_keys.FAIL_REASON)) or "failed (no reason recorded)"
    if trial.state == TrialState.RUNNING:
        latest = attrs.get(_keys.HEALTH_LATEST)
        if isinstance(latest, dict) and latest.get("verdict"):
            reasons = latest.get("reasons") or []
            tail = f": {reasons[0]}" if reasons else ""
            return f"{latest['verdict']} at step {latest.get('step')}{tail}"
    return None


def trial_row(trial: FrozenTrial, *, now: datetime | None = None, thawed_as: int | None = None) -> TrialRow:
    """The :class:`TrialRow` of one trial (``thawed_as``: the trial continuing it, see :func:`trial_rows`)."""
    kind = trial.user_attrs.get(_keys.PRUNE_KIND) if trial.state == TrialState.PRUNED else None
    return TrialRow(
        number=trial.number,
        state=trial.state.name,
        value=trial_value(trial),
        reason=trial_reason(trial),
        kind=kind,
        params=dict(trial.params),
        duration_s=trial_duration(trial, now=now),
        baseline=trial.user_attrs.get(_keys.BASELINE),
        thaw_of=thaw_of(trial),
        thawed_as=thawed_as,
    )


def trial_rows(
    trials: list[FrozenTrial],
    *,
    sort: SortKey | str = SortKey.NUMBER,
    direction: str = "maximize",
    now: datetime | None = None,
) -> list[TrialRow]:
    """Rows for ``trials`` sorted by ``sort``.

    Args:
        trials: the study's trials.
        sort: ``number`` (ascending), ``value`` (best first per ``direction``; trials without a
            value last), or ``duration`` (longest first; unknown last).
        direction: ``maximize`` or ``minimize``.
        now: the time used for running trials' durations (default: now).

    Returns:
        The sorted rows.

    Raises:
        ValueError: unknown ``sort`` or ``direction``.
    """
    key = _sort_key(sort)
    sign = _direction_sign(direction)
    continued = thawed_as(trials)
    rows = [trial_row(t, now=now, thawed_as=continued.get(t.number)) for t in trials]
    if key == SortKey.NUMBER:
        return sorted(rows, key=lambda r: r.number)
    if key == SortKey.VALUE:
        return sorted(rows, key=lambda r: (r.value is None, -sign * (r.value or 0.0), r.number))
    return sorted(rows, key=lambda r: (r.duration_s is None, -(r.duration_s or 0.0), r.number))


def best_trials(trials: list[FrozenTrial], direction: str, *, top: int = 1) -> list[FrozenTrial]:
    """The ``top`` best COMPLETE trials with a finite value, best first.

    Pruned, failed and running trials are never returned, whatever their intermediate values.

    Args:
        trials: the study's trials.
        direction: ``maximize`` or ``minimize``.
        top: how many (at least 1).

    Returns:
        Up to ``top`` trials (empty when none is complete).

    Raises:
        ValueError: ``top`` < 1 or unknown ``direction``.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1 but got {top}")
    sign = _direction_sign(direction)
    done = [t for t in trials if trial_value(t) is not None]
    done.sort(key=lambda t: (-sign * (trial_value(t) or 0.0), t.number))
    return done[:top]


def format_knobs(params: dict[str, Any], *, limit: int = 4, sep: str = " ") -> str:
    """A short ``name=value`` summary of the first ``limit`` knobs (floats in 4 significant digits)."""
    items = [f"{name}={format_value(value)}" for name, value in sorted(params.items())]
    if len(items) > limit:
        items = [*items[:limit], f"+{len(items) - limit} more"]
    return sep.join(items)


def format_value(value: Any) -> str:
    """A compact rendering of a knob or metric value."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _sort_key(sort: SortKey | str) -> SortKey:
    try:
        return SortKey(sort)
    except ValueError:
        allowed = ", ".join(k.value for k in SortKey)
        raise ValueError(f"sort must be one of {allowed} but got {sort!r}") from None


def _direction_sign(direction: str) -> int:
    if direction == "maximize":
        return 1
    if direction == "minimize":
        return -1
    raise ValueError(f"direction must be 'maximize' or 'minimize' but got {direction!r}")
