"""The same sweep semantics without Ray: plain ``study.optimize`` in this process.

Useful on one GPU box, for benchmarks (it is the baseline the Ray overhead is measured
against) and for debugging an objective. The study gets the same attrs, baselines, final
states and reasons as under Ray: the study's pruner is the health pruner and
:class:`gradsweep.objectives.api.OptunaReporter` asks it on every report.

Example::

    summary = optimize_local(load_space("contrastive"), 8, "sqlite:///gradsweep.db", scale="tiny")
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

import optuna

from gradsweep.objectives.api import NonFiniteValue, TrialContext, TrialPruned, run_objective
from gradsweep.objectives.registry import load_objective
from gradsweep.search.attrs import CONFIG, FAIL_REASON, PRUNE_KIND, PRUNE_REASON, PRUNE_STEP, SWEEP
from gradsweep.search.engine.algorithms import DEFAULT_PRUNER
from gradsweep.search.engine.launcher import LaunchRequest, make_decider, sampler_seed, validate_request
from gradsweep.search.engine.optuna_reporter import OptunaReporter
from gradsweep.search.engine.outcome import NON_FINITE, summarize_error
from gradsweep.search.engine.storage import DEFAULT_STORAGE, mask_url, open_storage
from gradsweep.search.engine.study import (
    SweepPlan,
    check_joinable,
    count_finished,
    create_or_load,
    enqueue_baselines,
    reconcile_running,
    study_attrs,
)
from gradsweep.search.engine.summary import SweepSummary, summarize
from gradsweep.spaces.sampling import resolve, suggest
from gradsweep.spaces.space import SearchSpace


def _objective_fn(space: SearchSpace, plan: SweepPlan, device: str | None) -> Any:
    fn = load_objective(plan.objective)

    def objective(trial: optuna.Trial) -> float:
        params = suggest(space, trial)
        config = resolve(space, params, scale=plan.scale, seed=plan.seed)
        trial.set_user_attr(CONFIG, config.to_dict())
        reporter = OptunaReporter(trial, history_limit=config.health.history)
        ctx = TrialContext(config, reporter=reporter, device=device)
        try:
            return run_objective(fn, config, ctx)
        except TrialPruned as exc:
            attrs = trial.storage.get_trial_user_attrs(trial._trial_id)
            if PRUNE_KIND not in attrs:  # raised by the objective, not by the pruner
                trial.set_user_attr(PRUNE_KIND, exc.kind)
                trial.set_user_attr(PRUNE_REASON, exc.reason)
                trial.set_user_attr(PRUNE_STEP, int(max(trial.storage.get_trial(trial._trial_id).intermediate_values, default=0)))
            raise
        except NonFiniteValue:
            trial.set_user_attr(FAIL_REASON, NON_FINITE)
            raise
        except Exception:
            trial.set_user_attr(FAIL_REASON, summarize_error(traceback.format_exc()))
            raise

    return objective


def optimize_local(
    space: SearchSpace,
    n_trials: int,
    storage: str = DEFAULT_STORAGE,
    *,
    study: str | None = None,
    objective: str | None = None,
    scale: str | None = None,
    sampler: str = "tpe",
    pruner: str = DEFAULT_PRUNER,
    seed: int | None = None,
    baselines: tuple[str, ...] = (),
    join: bool = False,
    device: str | None = None,
    timeout_s: float | None = None,
) -> SweepSummary:
    """Run ``n_trials`` trials of ``space`` in this process with ``study.optimize``.

    Args:
        space: the search space.
        n_trials: trials to run.
        storage: study store URL.
        study: study name (default: the space's name).
        objective: objective spec (default: the space's objective).
        scale: ``tiny`` / ``small`` / ``full`` (default: the space's).
        sampler: sampler name (see :mod:`gradsweep.search.engine.algorithms`).
        pruner: base pruner name, wrapped by the health pruner.
        seed: sampler and config seed.
        baselines: baseline files or the space's baseline names, enqueued first.
        join: allow adding to an existing study.
        device: ``cuda`` / ``cpu`` (default: CUDA when available).
        timeout_s: stop starting trials after this many seconds.

    Returns:
        The :class:`SweepSummary`.

    Raises:
        UserError: bad input or an unusable store, before anything is written.
    """
    request = LaunchRequest(
        space=space, n_trials=n_trials, storage=storage, study=study, objective=objective, scale=scale,
        sampler=sampler, pruner=pruner, seed=seed, baselines=baselines, join=join, timeout_s=timeout_s,
    )  # fmt: skip
    name, scale_, objective_, checked = validate_request(request)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from gradsweep.search.engine.algorithms import make_sampler

    store = open_storage(storage)
    attrs = study_attrs(space, objective=objective_, scale=scale_)
    exists = check_joinable(store, name, attrs, join=join)
    decider = make_decider(pruner)
    sampler_ = make_sampler(sampler, seed=sampler_seed(seed, store, name if exists else None))
    the_study = create_or_load(store, name, attrs, sampler=sampler_, pruner=decider)
    seed_ = seed if seed is not None else space.seed
    plan = SweepPlan(objective_, scale_, sampler, pruner, seed_, (count_finished(the_study) if exists else 0) + n_trials)
    the_study.set_user_attr(SWEEP, plan.to_dict())
    enqueue_baselines(the_study, checked)
    started = time.monotonic()
    interrupted = False
    try:
        the_study.optimize(
            _objective_fn(space, plan, device), n_trials=n_trials, timeout=timeout_s, catch=(Exception,), gc_after_trial=False
        )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        reconcile_running(the_study)
    return summarize(
        the_study,
        storage=mask_url(storage),
        target=plan.target,
        interrupted=interrupted,
        aborted=None,
        elapsed_s=time.monotonic() - started,
        results_dir=str(Path.cwd()),
    )
