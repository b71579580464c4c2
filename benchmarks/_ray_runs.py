"""Ray Tune methods of the search-efficiency benchmark: random search with FIFO, ASHA or HyperBand.

The space's Optuna distributions become Ray Tune domains (:func:`tune_space`; tied tower LRs
are searched through their ``*_ratio`` parameter, as in Optuna). A function trainable resolves
the sampled values into a :class:`TrialConfig`, runs the objective with a reporter that calls
``ray.tune.report``, and the driver collects every result. A :class:`BudgetStopper` ends the
experiment once the trials have consumed the step budget. One trial runs at a time.

HyperBand pauses trials and resumes them later, so its trainable (:func:`resumable_trainable`)
checkpoints for real: the objective saves its progress before each report, the reporter hands
that directory to Ray with the report, and a resumed trial restores it from
``ray.tune.get_checkpoint()`` and goes on from the step it paused at. Each (re)start is its own
record (:func:`benchmarks._segments.segment_records`), so a resumed trial's steps count once.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, TrialScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.stopper import Stopper

from benchmarks._common import CountingReporter, Report, TrialRecord
from benchmarks._optuna_runs import RunSpec
from benchmarks._segments import segment_records
from gradsweep.objectives.api import TrialContext, run_objective
from gradsweep.objectives.checkpoint import CheckpointStore
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
        tune.report(_metrics(value, step, health))


def _metrics(value: float, step: int, health: Any | None) -> dict[str, Any]:
    health_json = json.dumps(health.to_dict(with_reasons=False)) if health is not None else ""
    return {"value": float(value), "step": int(step), "health": health_json}


class _CheckpointingTuneReporter(_TuneReporter):
    """Like :class:`_TuneReporter`, and hands ``directory`` to Ray with a report after a new checkpoint."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.store = CheckpointStore(directory)
        self.last = self.store.newest_number()

    def report(self, value: float, step: int, health: Any | None) -> None:
        newest = self.store.newest_number()
        checkpoint = None
        if newest > self.last:  # the objective saved its progress for this report
            self.last = newest
            checkpoint = tune.Checkpoint.from_directory(str(self.directory))
        tune.report(_metrics(value, step, health), checkpoint=checkpoint)


def bench_trainable(config: dict[str, Any], space: SearchSpace, scale: str, config_seed: int) -> None:
    """Ray Tune function trainable: run the space's objective on the sampled parameters."""
    from gradsweep.spaces.sampling import resolve

    params = active_params(space, config)
    trial_config = resolve(space, params, scale=scale, seed=config_seed)
    ctx = TrialContext(trial_config, reporter=CountingReporter(_TuneReporter()), device="cpu")
    with contextlib.suppress(ValueError):  # a non-finite final value: the trial's reports are what counts
        run_objective(load_objective(space.objective), trial_config, ctx)


def resumable_trainable(
    config: dict[str, Any], space: SearchSpace, scale: str, config_seed: int, workdir: str
) -> None:
    """:func:`bench_trainable` with checkpoints: restores Ray's checkpoint, hands Ray a new one per report.

    Every (re)start gets a fresh directory under ``workdir`` (the run's temporary folder, removed
    with it), filled from ``ray.tune.get_checkpoint()`` when Ray resumes a paused trial.
    """
    import torch

    from gradsweep.spaces.sampling import resolve

    torch.set_num_threads(1)  # the trial holds every CPU only so that one runs at a time
    params = active_params(space, config)
    trial_config = resolve(space, params, scale=scale, seed=config_seed)
    directory = Path(tempfile.mkdtemp(prefix="ckpt-", dir=workdir))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as src:
            shutil.copytree(src, directory, dirs_exist_ok=True)
    reporter = CountingReporter(_CheckpointingTuneReporter(directory))
    ctx = TrialContext(trial_config, reporter=reporter, device="cpu", checkpoint_dir=directory)
    with contextlib.suppress(ValueError):
        run_objective(load_objective(space.objective), trial_config, ctx)


class _PauseLog(HyperBandScheduler):
    """Ray's HyperBand, noting every ``(trial id, step)`` it paused a trial at."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pauses: set[tuple[Hashable, int]] = set()

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.PAUSE and "step" in result:
            self.pauses.add((trial.trial_id, int(result["step"])))
        return action


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
        self.events: list[tuple[Hashable, dict[str, Any], Report]] = []  # every report, as they came

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if "step" not in result:
            return
        health = json.loads(result["health"]) if result.get("health") else None
        report = Report(int(result["step"]), float(result["value"]), health)
        self.reports[trial.trial_id].append(report)
        self.params.setdefault(trial.trial_id, active_params(self.space, dict(trial.config)))
        self.events.append((trial.trial_id, self.params[trial.trial_id], report))

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

    def segments(self, full_steps: int, pauses: set[tuple[Hashable, int]]) -> list[TrialRecord]:
        """One record per (re)start of a trial, in the order they ran (see :mod:`benchmarks._segments`)."""
        out = segment_records(self.events, full_steps=full_steps, paused=pauses, errored=self.errored)
        silent = [tid for tid in self.order if tid in self.errored and not self.reports.get(tid)]
        return out + [TrialRecord(params=self.params.get(tid, {})) for tid in silent]


RAY_METHODS = ("fifo", "asha", "hyperband")


def run_ray(spec: RunSpec, method: str, *, full_steps: int, interval: int) -> list[TrialRecord]:
    """Random search with ``fifo``, ``asha`` or ``hyperband`` under Ray Tune (Ray must be initialised).

    ``hyperband`` is Ray's ``HyperBandScheduler(time_attr="step", max_t=full_steps,
    reduction_factor=3)`` (its default factor). A paused trial holds no CPU, so HyperBand trials
    ask for every CPU of the cluster (one runs at a time) instead of the searcher's concurrency
    limit, which counts paused trials as running and would never start the next one. Ray then
    creates trials ahead as PENDING and HyperBand puts each into a bracket as it is created, so
    several brackets are open at once and it runs the least complete one's trials first.

    Args:
        spec: space, scale, seeds, budget.
        method: ``fifo`` (no pruning), ``asha`` or ``hyperband``.
        full_steps: steps of a trial trained to the end (ASHA's and HyperBand's ``max_t``).
        interval: steps between reports (ASHA's ``grace_period``).

    Returns:
        The trials in the order they ended (the last one may have been cut by the budget); for
        ``hyperband`` one record per (re)start, in the order they ran.

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
    elif method == "hyperband":
        scheduler = _PauseLog(time_attr="step", max_t=full_steps, reduction_factor=3)
    else:
        raise ValueError(f"method must be one of {', '.join(RAY_METHODS)} but got {method!r}")
    mode = "max" if spec.direction == "maximize" else "min"
    collector = _Collector(spec.space)
    with tempfile.TemporaryDirectory(prefix="gradsweep-bench-ray-") as tmp:
        if method == "hyperband":
            trainable = tune.with_parameters(
                resumable_trainable, space=spec.space, scale=spec.scale, config_seed=spec.config_seed,
                workdir=tmp,
            )  # fmt: skip
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            resources, search_alg, limit = {"cpu": cpus}, BasicVariantGenerator(random_state=spec.seed), None
        else:
            trainable = tune.with_parameters(
                bench_trainable, space=spec.space, scale=spec.scale, config_seed=spec.config_seed
            )
            resources = {"cpu": 1}
            search_alg, limit = BasicVariantGenerator(random_state=spec.seed, max_concurrent=1), 1
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space=tune_space(spec.space),
            tune_config=tune.TuneConfig(
                metric="value",
                mode=mode,
                search_alg=search_alg,
                scheduler=scheduler,
                num_samples=spec.budget // interval + 2,  # every trial consumes >= interval steps
                max_concurrent_trials=limit,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=f"{method}-{spec.seed}", storage_path=tmp, verbose=0, stop=BudgetStopper(spec.budget),
                callbacks=[collector],
            ),
        )  # fmt: skip
        tuner.fit()
    if isinstance(scheduler, _PauseLog):
        return collector.segments(full_steps, scheduler.pauses)
    return collector.records(full_steps)
