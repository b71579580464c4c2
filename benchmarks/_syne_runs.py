"""Syne Tune methods of the search-efficiency benchmark: ASHA and its model-based variants (optional).

Needs ``syne-tune`` 0.16 (``make bench-deps``); without it :func:`syne_missing` says so and the
methods are skipped. Syne Tune 0.16 no longer ships MOBSTER or DyHPO (the Gaussian-process
searchers were removed; the last release with them, 0.14, needs numpy < 1.27), so its
model-based multi-fidelity method here is ``BOHB``, which 0.16 has. Both run on Syne Tune's
asynchronous successive halving (stopping type, so no trial is ever paused):

=========  ===================================================================================
``asha``   ``ASHA``: random configs
``bohb``   ``BOHB``: configs from kernel density estimates (TPE-like, Falkner et al. 2018) of
           each trial's last value; random until both the good (top 15%) and the bad trials
           outnumber the knobs (7 knobs: from about 54 trials on), and a third at random after
=========  ===================================================================================

(0.16's ``ASHACQR`` imports ``huggingface_hub`` through its blackbox repository, so it is left out.)

Each uses Syne Tune's defaults (reduction factor 3, one bracket) with ``time_attr="step"``,
``max_t`` = a full trial and ``grace_period`` = one report interval (as Ray's ASHA here). The
scheduler is driven in this process, one trial at a time, through its own API, as Syne Tune's
``Tuner`` drives it: ``suggest()`` gives a config, ``on_trial_add`` registers the trial, every
``ctx.report`` goes to ``on_trial_result`` (``{"value": ..., "step": ...}``), and a STOP
decision ends the trial (then ``on_trial_remove``; ``on_trial_complete`` for a trial the
scheduler never stopped; ``on_trial_error`` for one that raised). The objective's reports are
recorded as they are; the scheduler gets a non-finite value as the worst finite value reported
so far in the run (its rankings and models need numbers). The run stops when the trials have
consumed the step budget (the last one is cut at the report that reaches it, as Ray's
``BudgetStopper`` does).

Syne Tune's random sampling draws from numpy's global generator, which every objective reseeds
(``TrialContext`` seeds it with the config's seed): in one process every random config after
the first few would be the same. Under Syne Tune's ``Tuner`` trials run in other processes, so
here the scheduler gets a global numpy state of its own (:class:`_SchedulerRng`, seeded from the
run's seed), swapped in around every call to it.

The space's Optuna distributions become Syne Tune domains (:func:`syne_space`); conditional
knobs are sampled too and dropped when inactive, as for Ray Tune.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from datetime import datetime
from types import TracebackType
from typing import Any

import numpy as np
import optuna

from benchmarks._common import CountingReporter, TrialRecord
from benchmarks._optuna_runs import RunSpec
from gradsweep.objectives.api import TrialContext, run_objective
from gradsweep.objectives.registry import load_objective
from gradsweep.spaces.sampling import active_knobs, distributions, resolve
from gradsweep.spaces.space import SearchSpace

#: Syne Tune's schedulers by the names used here (classes of ``syne_tune.optimizer.baselines``).
SYNE_SCHEDULERS = {"asha": "ASHA", "bohb": "BOHB"}
MISSING = "syne_tune is not installed (make bench-deps)"


def syne_missing() -> str | None:
    """Why the Syne Tune methods cannot run here, or None when they can."""
    return None if importlib.util.find_spec("syne_tune") is not None else MISSING


def syne_domain(dist: optuna.distributions.BaseDistribution) -> Any:
    """The Syne Tune domain sampling what ``dist`` samples (bounds inclusive, as in Optuna).

    Raises:
        ValueError: for a distribution kind it does not know.
    """
    from syne_tune import config_space as cs

    if isinstance(dist, optuna.distributions.FloatDistribution):
        if dist.log:
            return cs.loguniform(dist.low, dist.high)
        if dist.step is not None:
            return cs.quniform(dist.low, dist.high, dist.step)
        return cs.uniform(dist.low, dist.high)
    if isinstance(dist, optuna.distributions.IntDistribution):
        if dist.log:
            return cs.lograndint(dist.low, dist.high)
        if dist.step != 1:
            return cs.qrandint(dist.low, dist.high, dist.step)
        return cs.randint(dist.low, dist.high)
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        choices = list(dist.choices)
        if len({type(c) for c in choices}) > 1:  # Syne Tune needs one type: choose an index
            return cs.choice([str(i) for i in range(len(choices))])
        return cs.choice(choices)
    raise ValueError(f"distribution must be Float, Int or Categorical but got {type(dist).__name__}")


def syne_space(space: SearchSpace) -> dict[str, Any]:
    """``{optuna param name: Syne Tune domain}`` for every searched knob (conditional ones too)."""
    return {name: syne_domain(dist) for name, dist in distributions(space).items()}


def optuna_params(space: SearchSpace, config: dict[str, Any]) -> dict[str, Any]:
    """The Optuna parameters of a Syne Tune config: index choices mapped back, inactive knobs dropped."""
    dists = distributions(space)
    sampled: dict[str, Any] = {}
    for name, dist in dists.items():
        if name not in config:
            continue
        value = config[name]
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            choices = list(dist.choices)
            value = choices[int(value)] if len({type(c) for c in choices}) > 1 else value
        sampled[name] = value
    return {k.name: sampled[k.name] for k in active_knobs(space, sampled) if k.name in sampled}


class _SchedulerRng:
    """Context manager: numpy's global random state of the scheduler, swapped in and out."""

    def __init__(self, seed: int) -> None:
        # a stream apart from the searchers' own RandomState(seed), which would replay it
        derived = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
        self.state = np.random.RandomState(derived).get_state()
        self.outer: Any = None

    def __enter__(self) -> None:
        self.outer = np.random.get_state()
        np.random.set_state(self.state)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.state = np.random.get_state()
        np.random.set_state(self.outer)


class _Stop(Exception):
    """The scheduler stopped the trial, or the run's budget is spent."""


class _SyneReporter(CountingReporter):
    """Records each report, then hands it to the scheduler and ends the trial on STOP or budget."""

    def __init__(
        self, scheduler: Any, trial: Any, *, full_steps: int, left: int, run: _RunState, rng: _SchedulerRng
    ) -> None:
        super().__init__()
        self.scheduler, self.trial = scheduler, trial
        self.full_steps, self.left, self.run, self.rng = full_steps, left, run, rng
        self.decision = ""
        self.last_result: dict[str, Any] | None = None
        self.cut = False

    def report(self, value: float, step: int, health: Any | None) -> None:
        super().report(value, step, health)
        result = {"value": self.run.for_scheduler(float(value)), "step": int(step)}
        self.last_result = result
        with self.rng:
            self.decision = self.scheduler.on_trial_result(self.trial, result)
        self.cut = step >= self.left
        if step < self.full_steps and (self.cut or self.decision != "CONTINUE"):
            raise _Stop  # at the final report the trial ends anyway, with its value


class _RunState:
    """The worst finite value seen so far in the run (what the scheduler gets for a non-finite one)."""

    def __init__(self, direction: str) -> None:
        self.maximize = direction == "maximize"
        self.worst: float | None = None

    def for_scheduler(self, value: float) -> float:
        if math.isfinite(value):
            if self.worst is None or (value < self.worst if self.maximize else value > self.worst):
                self.worst = value
            return value
        if self.worst is not None:
            return self.worst
        return -1e9 if self.maximize else 1e9


def make_scheduler(method: str, spec: RunSpec, *, full_steps: int, interval: int) -> Any:
    """Syne Tune's ``method`` scheduler (see :data:`SYNE_SCHEDULERS`) for ``spec``'s space.

    Raises:
        ValueError: for an unknown ``method``.
    """
    if method not in SYNE_SCHEDULERS:
        raise ValueError(f"method must be one of {', '.join(SYNE_SCHEDULERS)} but got {method!r}")
    from syne_tune.optimizer import baselines

    cls = getattr(baselines, SYNE_SCHEDULERS[method])
    return cls(
        config_space=syne_space(spec.space), metric="value", time_attr="step", max_t=full_steps,
        grace_period=interval, do_minimize=spec.direction == "minimize", random_seed=spec.seed,
    )  # fmt: skip


def run_syne(spec: RunSpec, method: str, *, full_steps: int, interval: int) -> list[TrialRecord]:
    """Syne Tune's ``asha`` or ``bohb`` scheduler, one trial at a time, until the budget is spent.

    Returns:
        The trials in the order they ran (the last one may have been cut by the budget).

    Raises:
        ValueError: for an unknown ``method``.
    """
    from syne_tune.backend.trial_status import Trial

    logging.getLogger("syne_tune").setLevel(logging.ERROR)
    rng = _SchedulerRng(spec.seed)
    with rng:
        scheduler = make_scheduler(method, spec, full_steps=full_steps, interval=interval)
    fn = load_objective(spec.space.objective)
    run = _RunState(spec.direction)
    records: list[TrialRecord] = []
    spent = 0
    while spent < spec.budget:
        with rng:
            suggestion = scheduler.suggest()
            if suggestion is None:
                break
            trial = Trial(trial_id=len(records), config=dict(suggestion.config), creation_time=datetime.now())
            scheduler.on_trial_add(trial)
        params = optuna_params(spec.space, trial.config)
        config = resolve(spec.space, params, scale=spec.scale, seed=spec.config_seed)
        reporter = _SyneReporter(
            scheduler, trial, full_steps=full_steps, left=spec.budget - spent, run=run, rng=rng
        )
        record = TrialRecord(params=params, reports=reporter.reports)
        records.append(record)
        ctx = TrialContext(config, reporter=reporter, device="cpu")
        failed = False
        try:
            record.final_value = run_objective(fn, config, ctx)
        except _Stop:
            record.pruned = True
        except ValueError:  # a non-finite final value: the reports are what counts
            failed = True
        with rng:  # as Syne Tune's Tuner: a STOP (ASHA says it at max_t too) removes the trial
            if reporter.decision == "STOP":
                scheduler.on_trial_remove(trial)
            elif failed:
                scheduler.on_trial_error(trial)
            elif reporter.last_result is not None and not record.pruned:
                scheduler.on_trial_complete(trial, reporter.last_result)
        spent += record.steps
        if reporter.cut:
            break
    return records
