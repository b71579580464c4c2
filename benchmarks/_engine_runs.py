"""gradsweep itself in the search-efficiency benchmark: TPE + HealthPruner(catchup) under Ray Tune.

The run is put together from the same engine parts as ``gradsweep launch``
(:func:`gradsweep.search.engine.ray.launcher.launch`): the study with its attrs and, as its pruner, the
health pruner over the base pruner (``health_pruner(DEFAULT_PRUNER)``), a
:class:`~gradsweep.search.engine.ray.bridge.StudyBridge` that decides with that pruner, and :func:`gradsweep.search.engine.ray.runner.run_trials` (the
``PruningScheduler``, ``StudySearcher`` and ``gradsweep_trainable`` on Ray Tune). The only
addition is :class:`BudgetBridge`, which stops asking for trials once the reported steps reach
the budget (``launch`` counts trials, not steps). Records are read back from the study.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from benchmarks._common import Report, TrialRecord
from benchmarks._optuna_runs import RunSpec
from gradsweep.search.attrs import HEALTH_HISTORY, PAUSE, PRUNE_KIND, THAW_OF
from gradsweep.search.engine.algorithms import DEFAULT_PRUNER, make_sampler
from gradsweep.search.engine.outcome import R_STEP
from gradsweep.search.engine.ray.bridge import StudyBridge
from gradsweep.search.engine.ray.runner import run_trials
from gradsweep.search.engine.ray.runtime import Resources, start_ray
from gradsweep.search.engine.setup import health_pruner
from gradsweep.search.engine.storage import open_storage
from gradsweep.search.engine.study import create_or_load, study_attrs


class BudgetBridge(StudyBridge):
    """A :class:`StudyBridge` that stops asking once the trials' reported steps reach ``budget``."""

    def __init__(self, *args: Any, budget: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget
        self.steps: dict[str, int] = {}
        self.starts: dict[str, int] = {}  # a thawed trial's steps count from its checkpoint's step

    @property
    def stopped(self) -> bool:
        """Neither new nor thawed trials once the budget is spent."""
        return super().stopped or sum(self.steps.values()) >= self.budget

    def _thaw(self, paused: FrozenTrial, path: str, step: int, ray_trial_id: str) -> dict[str, Any]:
        self.starts[ray_trial_id] = step
        return super()._thaw(paused, path, step, ray_trial_id)

    def on_result(self, ray_trial_id: str, result: dict[str, Any]) -> bool:
        if result.get(R_STEP) is not None:
            used = int(result[R_STEP]) - self.starts.get(ray_trial_id, 0)
            self.steps[ray_trial_id] = max(self.steps.get(ray_trial_id, 0), used)
        return super().on_result(ray_trial_id, result)


def record_from_trial(trial: FrozenTrial) -> TrialRecord:
    """A :class:`TrialRecord` from a finished study trial (reports from its intermediate values).

    Each report gets the newest stored health summary whose step is not after the report's.
    """
    history = trial.user_attrs.get(HEALTH_HISTORY) or []
    reports = []
    for step in sorted(trial.intermediate_values):
        health = None
        for entry in history:
            if int(entry.get("step", -1)) <= step:
                health = entry
        reports.append(Report(int(step), float(trial.intermediate_values[step]), health))
    value = trial.value if trial.state == TrialState.COMPLETE else None
    return TrialRecord(
        params=dict(trial.params),
        reports=reports,
        pruned=trial.state == TrialState.PRUNED,
        final_value=value if value is not None and math.isfinite(value) else None,
        kind=trial.user_attrs.get(PRUNE_KIND),
        paused=trial.state == TrialState.PRUNED and isinstance(trial.user_attrs.get(PAUSE), dict),
    )


def records_from_trials(finished: list[FrozenTrial]) -> list[TrialRecord]:
    """Records in completion order; a thawed trial's record counts its steps from its pause's checkpoint.

    A paused trial that a later trial continues (``gradsweep.thaw_of``) is marked ``thawed``, and the
    continuation's ``thaw_of`` is the index of the paused trial's record.
    """
    index = {t.number: i for i, t in enumerate(finished)}
    records = [record_from_trial(t) for t in finished]
    for t, rec in zip(finished, records, strict=True):
        source = t.user_attrs.get(THAW_OF)
        if source is None or source not in index:
            continue
        paused = finished[index[source]]
        rec.thaw_of = index[source]
        rec.start_step = int(paused.user_attrs[PAUSE].get("checkpoint_step", 0))
        records[index[source]].thawed = True
    return records


def run_gradsweep(spec: RunSpec, *, base_pruner: str = DEFAULT_PRUNER) -> list[TrialRecord]:
    """One gradsweep sweep under Ray Tune (Ray must be initialised), one trial at a time.

    Args:
        spec: space, scale, seeds, budget.
        base_pruner: the Optuna pruner the health pruner wraps (``--pruner``; default ``catchup``).

    Returns:
        The trials in the order they finished.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    resources = Resources(cpus_per_trial=1.0, concurrency=1)
    info = start_ray(resources)
    with tempfile.TemporaryDirectory(prefix="gradsweep-bench-engine-") as tmp:
        storage = open_storage(f"sqlite:///{tmp}/study.db")
        name = f"bench-{spec.seed}"
        attrs = study_attrs(spec.space, objective=spec.space.objective, scale=spec.scale)
        sampler = make_sampler("tpe", seed=spec.seed)
        pruner = health_pruner(base_pruner)
        study = create_or_load(storage, name, attrs, sampler=sampler, pruner=pruner)
        bridge = BudgetBridge(
            study, spec.space, pruner, objective=spec.space.objective,
            n_trials=10_000, scale=spec.scale, seed=spec.config_seed, device=info.device, budget=spec.budget,
        )  # fmt: skip
        run_trials(bridge, info=info, resources=resources, runs_dir=Path(tmp), study_name=name)
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        finished.sort(key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
        records = records_from_trials(finished)
        storage.engine.dispose()
    return records
