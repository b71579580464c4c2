"""The same sweep semantics without Ray: plain ``study.optimize`` in this process.

Useful on one GPU box, for benchmarks (it is the baseline the Ray overhead is measured
against) and for debugging an objective. The study is set up by :mod:`gradsweep.search.engine.setup`
as under Ray (same attrs, baselines and health pruner) and gets the same final states and
reasons: :class:`~gradsweep.search.engine.optuna_reporter.OptunaReporter` asks the study's pruner
on every report. Importing this module does not import Ray.

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
from gradsweep.search.attrs import CONFIG, FAIL_REASON, PRUNE_KIND
from gradsweep.search.engine.algorithms import DEFAULT_PRUNER
from gradsweep.search.engine.optuna_reporter import OptunaReporter
from gradsweep.search.engine.outcome import NON_FINITE, summarize_error
from gradsweep.search.engine.request import SweepRequest, validate_request
from gradsweep.search.engine.setup import prepare_sweep
from gradsweep.search.engine.storage import DEFAULT_STORAGE, mask_url
from gradsweep.search.engine.study import SweepPlan, reconcile_running
from gradsweep.search.engine.summary import SweepSummary, summarize
from gradsweep.search.prune_attrs import PruneRecord, write_prune_attrs
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
                step = int(max(trial.storage.get_trial(trial._trial_id).intermediate_values, default=0))
                write_prune_attrs(trial.storage, trial._trial_id, PruneRecord(exc.kind, exc.reason, step))
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
    request = SweepRequest(
        space=space, n_trials=n_trials, storage=storage, study=study, objective=objective, scale=scale,
        sampler=sampler, pruner=pruner, seed=seed, baselines=baselines, join=join, timeout_s=timeout_s,
    )  # fmt: skip
    sweep = prepare_sweep(request, validate_request(request)).open()
    the_study, plan = sweep.study, sweep.plan
    started = time.monotonic()
    interrupted = False
    try:
        the_study.optimize(
            _objective_fn(space, plan, device),
            n_trials=n_trials,
            timeout=timeout_s,
            catch=(Exception,),
            gc_after_trial=False,
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
