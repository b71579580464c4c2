"""The health user attrs of an Optuna trial (docs/ARCHITECTURE.md, Contract 4).

``gradsweep.health.latest`` holds the last report ``{"step", "verdict", "reasons", "metrics"}``;
``gradsweep.health.history`` a bounded list of ``{"step", "verdict", "metrics"}`` (plus ``"reasons"``
at a check that found any, so the health plot can show why). The objective side
writes them (:func:`write_health_attrs` with an ``optuna.Trial``, :func:`record_health` with a
storage and trial id, e.g. on a Ray Tune driver); :class:`gradsweep.search.pruner.HealthPruner` reads them
back with :func:`read_health`, so health reaches the pruner through the study itself.

Example:
    >>> import optuna
    >>> from gradsweep.objectives.health.verdict import HealthReport, Verdict
    >>> study = optuna.create_study()
    >>> trial = study.ask()
    >>> write_health_attrs(trial, HealthReport(5, Verdict.HEALTHY, [], {"health/loss": 1.0}), limit=3)
    >>> latest, history = read_health(study.trials[0])
    >>> latest.step, len(history)
    (5, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.storages import BaseStorage

from gradsweep.objectives.health.verdict import HealthReport
from gradsweep.search.attrs import HEALTH_FLAGS, HEALTH_HISTORY, HEALTH_LATEST

__all__ = [
    "read_flags",
    "read_health",
    "record_health",
    "write_health_attrs",
]


def _updated_history(existing: Any, report: HealthReport, limit: int) -> list[dict[str, Any]]:
    if limit < 1:
        raise ValueError(f"limit must be at least 1 but got {limit}")
    history = [e for e in existing if isinstance(e, dict)] if isinstance(existing, list) else []
    entry = report.to_dict(with_reasons=bool(report.reasons))  # reasons only where there are any
    if history and history[-1].get("step") == entry["step"]:
        history[-1] = entry  # the same check written twice replaces itself
    else:
        history.append(entry)
    return history[-limit:]


def _updated_flags(existing: Any, report: HealthReport) -> dict[str, int] | None:
    """The flags with ``report``'s unstable rules added, or None when nothing is new."""
    flags = _as_flags(existing)
    new = {r: int(report.step) for r in report.unstable_rules if r not in flags}
    return {**flags, **new} if new else None


def read_flags(trial: optuna.trial.FrozenTrial | Mapping[str, Any]) -> dict[str, int]:
    """A trial's ``gradsweep.health.flags``: ``{rule: first step}`` of every rule that found it
    unstable (empty when there are none).

    Args:
        trial: a frozen trial, or its ``user_attrs`` mapping.
    """
    attrs = trial if isinstance(trial, Mapping) else trial.user_attrs
    return _as_flags(attrs.get(HEALTH_FLAGS))


def _as_flags(raw: Any) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): int(v) for k, v in raw.items() if isinstance(v, int | float)}


def write_health_attrs(trial: optuna.Trial, report: HealthReport, limit: int) -> None:
    """Store ``report`` as the trial's latest health and append it to its bounded history.

    Args:
        trial: the running trial.
        report: the monitor's latest report.
        limit: how many history entries to keep (``HealthConfig.history``), >= 1.

    Raises:
        ValueError: if ``limit`` < 1.
    """
    history = _updated_history(trial.user_attrs.get(HEALTH_HISTORY), report, limit)
    trial.set_user_attr(HEALTH_LATEST, report.to_dict())
    trial.set_user_attr(HEALTH_HISTORY, history)
    flags = _updated_flags(trial.user_attrs.get(HEALTH_FLAGS), report) if report.unstable_rules else None
    if flags is not None:
        trial.set_user_attr(HEALTH_FLAGS, flags)


def record_health(
    storage: BaseStorage,
    trial_id: int,
    report: HealthReport,
    *,
    limit: int,
    history: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """:func:`write_health_attrs` through a storage and a trial id (no ``optuna.Trial`` needed).

    Args:
        storage: the study's storage (``study._storage``).
        trial_id: the trial's storage id (``trial._trial_id``).
        report: the report to store.
        limit: history length, >= 1.
        history: the stored history as this function last returned it, for a caller that is
            the trial's only writer (saves reading it back); None reads it from the storage.

    Returns:
        The history now stored.

    Raises:
        ValueError: if ``limit`` < 1.
    """
    existing = history if history is not None else storage.get_trial_user_attrs(trial_id).get(HEALTH_HISTORY)
    updated = _updated_history(existing, report, limit)
    storage.set_trial_user_attr(trial_id, HEALTH_LATEST, report.to_dict())
    storage.set_trial_user_attr(trial_id, HEALTH_HISTORY, updated)
    if report.unstable_rules:  # rare: read the flags only then
        flags = _updated_flags(storage.get_trial_user_attrs(trial_id).get(HEALTH_FLAGS), report)
        if flags is not None:
            storage.set_trial_user_attr(trial_id, HEALTH_FLAGS, flags)
    return updated


def read_health(
    trial: optuna.trial.FrozenTrial | Mapping[str, Any],
) -> tuple[HealthReport | None, list[HealthReport]]:
    """The latest health report and the history stored on a trial.

    Args:
        trial: a frozen trial, or its ``user_attrs`` mapping.

    Returns:
        ``(latest or None, history oldest first)``.

    Raises:
        ValueError: if an entry is malformed (missing ``step``/``verdict`` or an unknown verdict).
    """
    attrs = trial if isinstance(trial, Mapping) else trial.user_attrs
    raw_latest = attrs.get(HEALTH_LATEST)
    latest = HealthReport.from_dict(raw_latest) if isinstance(raw_latest, Mapping) else None
    raw_history = attrs.get(HEALTH_HISTORY)
    history = [HealthReport.from_dict(e) for e in raw_history] if isinstance(raw_history, list) else []
    return latest, history
