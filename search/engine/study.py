"""The study a sweep writes: creation, compatibility, baselines, reconciliation, counting.

A sweep's study carries Contract 4's study attrs (``gradsweep.space``, ``gradsweep.objective``,
...) plus ``gradsweep.sweep``: the :class:`SweepPlan` (objective spec, scale, sampler, pruner,
seed and the number of finished trials wanted) so ``gradsweep resume`` can continue it with
nothing but the study name. No storage URL is ever written into the study.

"Finished" means COMPLETE, PRUNED or FAIL, except trials that failed only because the sweep
was interrupted: they were never evaluated, so they do not count toward the target. It counts
configs: a thaw (``gradsweep.thaw_of``, a paused trial continued by ``--pruner freeze-thaw``) is
no new config, its paused trial already counted.

Example:
    >>> plan = SweepPlan(objective="contrastive", scale="tiny", sampler="tpe", pruner="median", seed=0, target=8)
    >>> SweepPlan.from_dict(plan.to_dict()) == plan
    True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from gradsweep.errors import UserError
from gradsweep.search.attrs import (
    BASELINE,
    DIRECTION,
    FAIL_REASON,
    METRIC,
    OBJECTIVE,
    RETRY_OF,
    SCALE,
    SPACE,
    SPACE_KEYS,
    VERSION,
)
from gradsweep.search.engine.outcome import INTERRUPTED
from gradsweep.search.thaw_attrs import is_thaw
from gradsweep.spaces.sampling import space_to_dict
from gradsweep.spaces.space import SearchSpace
from gradsweep.version import __version__

FINAL_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class SweepPlan:
    """What ``launch`` asked for, stored in the study so ``resume`` can continue it."""

    objective: str
    scale: str
    sampler: str
    pruner: str
    seed: int | None
    target: int
    workers: int = 1  # DDP workers per trial (``--workers-per-trial``); resume keeps it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepPlan:
        fields = {k: data[k] for k in ("objective", "scale", "sampler", "pruner", "seed", "target")}
        return cls(**fields, workers=int(data.get("workers", 1)))  # studies from before it was stored: 1


@dataclass(frozen=True)
class Baseline:
    """A named parameter set enqueued before any sampled trial."""

    name: str
    params: dict[str, Any]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def study_attrs(space: SearchSpace, *, objective: str, scale: str) -> dict[str, Any]:
    """Contract 4's study user attrs for a sweep of ``space`` with ``objective`` at ``scale``."""
    return {
        SPACE: space_to_dict(space),
        SPACE_KEYS: sorted(space.model_fields_set),
        OBJECTIVE: objective,
        METRIC: space.metric.name,
        DIRECTION: space.metric.direction,
        VERSION: __version__,
        SCALE: scale,
    }


def incompatibility(existing: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """Why a study with attrs ``existing`` cannot take a sweep with attrs ``wanted`` (None if it can)."""
    if SPACE not in existing:
        return "it was not created by gradsweep"
    if _canonical(existing.get(SPACE)) != _canonical(wanted[SPACE]):
        return "it was created with a different search space"
    if existing.get(OBJECTIVE) != wanted[OBJECTIVE]:
        return f"it optimizes objective {existing.get(OBJECTIVE)!r}, not {wanted[OBJECTIVE]!r}"
    if existing.get(DIRECTION) != wanted[DIRECTION]:
        return f"it {existing.get(DIRECTION)}s its metric, not {wanted[DIRECTION]}s"
    return None


def find_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.study.StudySummary | None:
    """The summary of study ``name`` in ``storage``, or None."""
    for summary in storage.get_all_studies():
        if summary.study_name == name:
            return summary  # type: ignore[return-value]
    return None


def check_joinable(
    storage: optuna.storages.BaseStorage, name: str, wanted: dict[str, Any], *, join: bool
) -> bool:
    """Check that a sweep may write into study ``name``; True when the study already exists.

    A study with the same space, objective and direction takes more trials as is.

    Raises:
        UserError: the study exists with another space, objective or direction and ``join``
            is False.
    """
    existing = find_study(storage, name)
    if existing is None:
        return False
    attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    problem = incompatibility(attrs, wanted)
    if problem is not None and not join:
        raise UserError(
            f"study {name!r} already exists and {problem}; pick another --study name, or pass --join"
        )
    return True


def create_or_load(
    storage: optuna.storages.BaseStorage,
    name: str,
    attrs: dict[str, Any],
    *,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> optuna.Study:
    """Create study ``name`` with ``attrs`` (or load it when it exists; attrs of a new study only)."""
    direction = str(attrs[DIRECTION])
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    if SPACE not in study.user_attrs:
        for key, value in attrs.items():
            study.set_user_attr(key, value)
    return study


def enqueue_baselines(study: optuna.Study, baselines: list[Baseline]) -> None:
    """Enqueue each baseline so it runs before any sampled trial, tagged ``gradsweep.baseline``."""
    for baseline in baselines:
        study.enqueue_trial(baseline.params, user_attrs={BASELINE: baseline.name}, skip_if_exists=False)


def is_interrupted(trial: optuna.trial.FrozenTrial) -> bool:
    """True for a FAIL whose reason is that the sweep was interrupted."""
    return trial.state == TrialState.FAIL and trial.user_attrs.get(FAIL_REASON) == INTERRUPTED


def count_finished(study: optuna.Study) -> int:
    """COMPLETE + PRUNED + FAIL trials, not counting interrupted ones nor thaws (configs, not
    continuations: a paused trial counts once, however often it is thawed)."""
    trials = study.get_trials(deepcopy=False, states=FINAL_STATES)
    return sum(1 for t in trials if not is_interrupted(t) and not is_thaw(t))


def reconcile_running(
    study: optuna.Study, *, reason: str = INTERRUPTED, only: set[int] | None = None
) -> list[int]:
    """Mark RUNNING trials FAIL with ``gradsweep.fail.reason = reason``.

    Args:
        study: the study.
        reason: the reason stored.
        only: trial ids (``trial._trial_id``) to reconcile; None for every RUNNING trial.

    Returns:
        The numbers of the trials reconciled.
    """
    storage = study._storage
    done: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if only is not None and trial._trial_id not in only:
            continue
        storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, reason)
        try:
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except RuntimeError:  # finished meanwhile by its writer: nothing to reconcile
            continue
        done.append(trial.number)
    return done


def requeue(study: optuna.Study, numbers: list[int]) -> int:
    """Enqueue the params of trials ``numbers`` again (``--retry-failed``); returns how many."""
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    count = 0
    for number in numbers:
        trial = by_number.get(number)
        if trial is None or not trial.params:
            continue
        attrs: dict[str, Any] = {RETRY_OF: number}
        if BASELINE in trial.user_attrs:
            attrs[BASELINE] = trial.user_attrs[BASELINE]
        study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)
        count += 1
    return count


def retryable(study: optuna.Study) -> list[int]:
    """Numbers of interrupted trials that no later trial retried yet.

    An interrupted thaw is not one of them: its config already counted as finished (its paused
    trial), and a retry would run that config again from step 0 as a new one.
    """
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_OF) for t in trials}
    return [t.number for t in trials if is_interrupted(t) and not is_thaw(t) and t.number not in retried]
