"""Ray Tune methods of the search-efficiency benchmark: random search (FIFO) and ASHA.

The space's Optuna distributions become Ray Tune domains (:func:`tune_space`; tied tower LRs
are searched through their ``*_ratio`` parameter, as in Optuna). A function trainable resolves
the sampled values into a :class:`TrialConfig`, runs the objective with a reporter that calls
``ray.tune.report``, and the driver collects every result. A :class:`BudgetStopper` ends the
experiment once the trials have consumed the step budget. One trial runs at a time.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections import defaultdict
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.stopper import Stopper

from benchmarks._common import CountingReporter, Report, TrialRecord
from benchmarks._optuna_runs import RunSpec
from gradsweep.objectives.api import TrialContext, run_objective
from gradsweep.objectives.registry import load_objective
from gradsweep.spaces.sampling import active_knobs, distributions
from gradsweep.spaces.space import SearchSpace


def tune_domain(dist: optuna.distributions.BaseDistribution) -> Any:
    """The Ray Tune domain sampling what ``dist`` samples.

    Raises:
        ValueError: for a distribution kind it does not know.
    """
    if isinstance(dist, optuna.distributions.FloatDistribution):
        if dist.log:
            return tune.loguniform(dist.low, dist.high)
        if dist.step is not None:
            return tune.quniform(dist.low, dist.high, dist.step)
        return tune.uniform(dist.low, dist.high)
    if isinstance(dist, optuna.distributions.IntDistribution):
        if dist.log:
            return tune.lograndint(dist.low, dist.high + 1)
        return tune.qrandint(dist.low, dist.high, dist.step)
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return tune.choice(list(dist.choices))
    raise ValueError(f"distribution must be Float, Int or Categorical but got {type(dist).__name__}")


def tune_space(space: SearchSpace) -> dict[str, Any]:
    """``{optuna param name: Ray Tune domain}`` for every searched knob (conditional ones too)."""
    return {name: tune_domain(dist) for name, dist in distributions(space).items()}


def active_params(space: SearchSpace, config: dict[str, Any]) -> dict[str, Any]:
    """The sampled values of the knobs that exist given the others (conditionals dropped)."""
    names = set(distributions(space))
    sampled = {k: v for k, v in config.items() if k in names}
    return {k.name: sampled[k.name] for k in active_knobs(space, sampled) if k.name in sampled}


class _TuneReporter:
    """Reporter that sends each report to the Ray Tune driver (never prunes itself)."""

    def declare_total_steps(self, total: int) -> None:
        """Nothing to do: Ray Tune's schedulers here have no final-report guard."""

    def report(self, value: float, step: int, health: Any | None) -> None:
        health_json = json.dumps(health.to_dict(with_reasons=False)) if health is not None else ""
        tune.report({"value": float(value), "step": int(step), "health": health_json})


def bench_trainable(config: dict[str, Any], space: SearchSpace, scale: str, config_seed: int) -> None:
    """Ray Tune function trainable: run the space's objective on the sampled parameters."""
    from gradsweep.spaces.sampling import resolve

    params = active_params(space, config)
    trial_config = resolve(space, params, scale=scale, seed=config_seed)
    ctx = TrialContext(trial_config, reporter=CountingReporter(_TuneReporter()), device="cpu")
    with contextlib.suppress(ValueError):  # a non-finite final value: the trial's reports are what counts
        run_objective(load_objective(space.objective), trial_config, ctx)


class BudgetStopper(Stopper):
    """Stops the whole experiment once the trials' largest reported steps add up to ``budget``."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.steps: dict[str, int] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if "step" in result:
            self.steps[trial_id] = max(self.steps.get(trial_id, 0), int(result["step"]))
        return False

    def stop_all(self) -> bool:
        return sum(self.steps.values()) >= self.budget


class _Collector(tune.Callback):
    """Driver-side record of every result and of the order trials ended in."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.reports: dict[str, list[Report]] = defaultdict(list)
        self.params: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.errored: set[str] = set()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if "step" not in result:
            return
        health = json.loads(result["health"]) if result.get("health") else None
        self.reports[trial.trial_id].append(Report(int(result["step"]), float(result["value"]), health))
        self.params.setdefault(trial.trial_id, active_params(self.space, dict(trial.config)))

    def _ended(self, trial: Any) -> None:
        if trial.trial_id not in self.order:
            self.order.append(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.errored.add(trial.trial_id)
        self._ended(trial)

    def records(self, full_steps: int) -> list[TrialRecord]:
        ids = self.order + [t for t in self.reports if t not in self.order]
        out = []
        for tid in ids:
            reports = self.reports.get(tid, [])
            steps = max((r.step for r in reports), default=0)
            done = steps >= full_steps and tid not in self.errored
            last = reports[-1].value if reports else math.nan
            out.append(TrialRecord(
                params=self.params.get(tid, {}), reports=reports, pruned=not done and tid not in self.errored,
                final_value=last if done and math.isfinite(last) else None,
            ))  # fmt: skip
        return out


def run_ray(spec: RunSpec, method: str, *, full_steps: int, interval: int) -> list[TrialRecord]:
    """Random search with ``fifo`` or ``asha`` under Ray Tune (Ray must be initialised).

    Args:
        spec: space, scale, seeds, budget.
        method: ``fifo`` (no pruning) or ``asha``.
        full_steps: steps of a trial trained to the end (ASHA's ``max_t``).
        interval: steps between reports (ASHA's ``grace_period``).

    Returns:
        The trials in the order they ended (the last one may have been cut by the budget).

    Raises:
        ValueError: for an unknown ``method``.
    """
    scheduler: TrialScheduler
    if method == "fifo":
        scheduler = FIFOScheduler()
    elif method == "asha":
        scheduler = ASHAScheduler(
            time_attr="step", max_t=full_steps, grace_period=interval, reduction_factor=4
        )
    else:
        raise ValueError(f"method must be one of fifo, asha but got {method!r}")
    mode = "max" if spec.direction == "maximize" else "min"
    collector = _Collector(spec.space)
    trainable = tune.with_parameters(
        bench_trainable, space=spec.space, scale=spec.scale, config_seed=spec.config_seed
    )
    with tempfile.TemporaryDirectory(prefix="gradsweep-bench-ray-") as tmp:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space=tune_space(spec.space),
            tune_config=tune.TuneConfig(
                metric="value",
                mode=mode,
                search_alg=BasicVariantGenerator(random_state=spec.seed, max_concurrent=1),
                scheduler=scheduler,
                num_samples=spec.budget // interval + 2,  # every trial consumes >= interval steps
                max_concurrent_trials=1,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=f"{method}-{spec.seed}", storage_path=tmp, verbose=0, stop=BudgetStopper(spec.budget),
                callbacks=[collector],
            ),
        )  # fmt: skip
        tuner.fit()
    return collector.records(full_steps)
