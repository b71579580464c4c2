"""Plain-Optuna methods of the search-efficiency benchmark (``study.optimize`` in this process).

Each run samples the space with the same TPE sampler gradsweep uses
(:func:`gradsweep.search.engine.algorithms.make_sampler`), reports through a :class:`CountingReporter`
wrapped around :class:`gradsweep.objectives.api.OptunaReporter` (so the study's pruner decides), and stops
once the trials have consumed the step budget.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import optuna

from benchmarks._common import CountingReporter, TrialRecord
from gradsweep.objectives.api import NullReporter, TrialContext, TrialPruned, run_objective
from gradsweep.objectives.registry import load_objective
from gradsweep.search.engine.algorithms import make_sampler
from gradsweep.search.engine.optuna_reporter import OptunaReporter
from gradsweep.spaces.sampling import resolve, suggest
from gradsweep.spaces.space import SearchSpace


@dataclass(frozen=True)
class RunSpec:
    """One run of one method: the space, scale, seeds and budget.

    Attributes:
        space: the search space every method samples.
        scale: objective scale (``tiny`` / ``small`` / ``full``).
        seed: seed of the method's sampler (differs per repetition).
        config_seed: the objective's data/init seed (the same for every run, so every method
            optimizes the same function).
        budget: optimizer steps all trials of the run may consume together.
    """

    space: SearchSpace
    scale: str
    seed: int
    config_seed: int
    budget: int

    @property
    def direction(self) -> str:
        return self.space.metric.direction


def run_optuna(
    spec: RunSpec,
    pruner: optuna.pruners.BasePruner,
    *,
    declare_total: bool = True,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> list[TrialRecord]:
    """TPE + ``pruner`` through ``study.optimize`` until the budget is spent.

    ``sampler`` replaces gradsweep's TPE (``make_sampler("tpe", seed=spec.seed)``).

    ``declare_total=False`` keeps ``gradsweep.total_steps`` off the trials, which turns off
    :class:`gradsweep.search.pruner.HealthPruner`'s final-report guard (Optuna's own pruners never read it).

    Returns:
        The trials in the order they finished.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=spec.direction, sampler=sampler or make_sampler("tpe", seed=spec.seed), pruner=pruner
    )
    fn = load_objective(spec.space.objective)
    records: list[TrialRecord] = []

    def objective(trial: optuna.Trial) -> float:
        params = suggest(spec.space, trial)
        config = resolve(spec.space, params, scale=spec.scale, seed=spec.config_seed)
        counter = CountingReporter(
            OptunaReporter(trial, history_limit=config.health.history), declare_total=declare_total
        )
        record = TrialRecord(params=dict(params), reports=counter.reports)
        records.append(record)
        ctx = TrialContext(config, reporter=counter, device="cpu")
        try:
            value = run_objective(fn, config, ctx)
        except TrialPruned as exc:
            record.pruned, record.kind = True, exc.kind
            raise
        record.final_value = value
        return value

    def stop_at_budget(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if sum(r.steps for r in records) >= spec.budget:
            study.stop()

    study.optimize(objective, callbacks=[stop_at_budget], catch=(ValueError,), gc_after_trial=False)
    return records


class Rerunner:
    """Runs configs to completion without pruning, once each (cached by their parameters).

    Args:
        space: the search space the parameters come from.
        scale: objective scale.
        config_seed: the objective's seed.
    """

    def __init__(self, space: SearchSpace, scale: str, config_seed: int) -> None:
        self.space = space
        self.scale = scale
        self.config_seed = config_seed
        self.fn = load_objective(space.objective)
        self.cache: dict[str, float] = {}

    def final_value(self, params: dict[str, Any]) -> float:
        """The value ``params`` reach when trained to the end (nan for a non-finite result)."""
        key = json.dumps(params, sort_keys=True, default=str)
        if key not in self.cache:
            config = resolve(self.space, params, scale=self.scale, seed=self.config_seed)
            try:
                value = run_objective(
                    self.fn, config, TrialContext(config, reporter=NullReporter(), device="cpu")
                )
            except ValueError:
                value = float("nan")
            self.cache[key] = value
        return self.cache[key]
