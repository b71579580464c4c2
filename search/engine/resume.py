"""``gradsweep resume``: continue an interrupted sweep from its study alone.

The study's ``gradsweep.sweep`` attr (written by ``launch``) holds the objective, scale,
sampler, pruner, seed and target; the space comes from ``gradsweep.space``. Nothing but the
study name and the store are needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna

from gradsweep.errors import UserError
from gradsweep.search.attrs import SPACE, SWEEP
from gradsweep.search.engine.algorithms import make_base_pruner, make_sampler
from gradsweep.search.engine.launcher import ProgressFactory, check_objective, execute_sweep, sampler_seed
from gradsweep.search.engine.ray_runtime import (
    Resources,
    check_address,
    check_local_gpus,
    start_ray,
    stop_ray,
)
from gradsweep.search.engine.storage import DEFAULT_STORAGE, mask_url, open_storage
from gradsweep.search.engine.study import (
    SweepPlan,
    count_finished,
    find_study,
    reconcile_running,
    requeue,
    retryable,
)
from gradsweep.search.engine.summary import SweepSummary, summarize
from gradsweep.spaces.space import SpaceError, parse_space


@dataclass(frozen=True)
class ResumeRequest:
    """What ``gradsweep resume`` needs; everything else comes from the study's ``gradsweep.sweep`` attr."""

    study: str
    storage: str = DEFAULT_STORAGE
    n_trials: int | None = None
    retry_failed: bool = False
    resources: Resources = field(default_factory=Resources)
    runs_dir: Path = Path("gradsweep_runs")
    timeout_s: float | None = None
    abort_after: int = 5


def resume(request: ResumeRequest, *, progress: ProgressFactory | None = None) -> SweepSummary:
    """Continue an interrupted sweep until its target number of finished trials is reached.

    Stale RUNNING trials (a killed driver) become FAIL ``interrupted``; with ``retry_failed``
    every interrupted trial's params are enqueued again. Finished trials are never re-run.

    Args:
        request: study, store and optional new target (``n_trials`` = finished trials wanted in all).
        progress: see :func:`launch`.

    Raises:
        UserError: unknown study, a study not made by ``gradsweep launch``, or an unusable store.
    """
    if request.n_trials is not None and request.n_trials < 1:
        raise UserError(f"--n-trials must be at least 1, got {request.n_trials}")
    check_local_gpus(request.resources)
    check_address(request.resources.address)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(request.storage, create=False)
    if find_study(storage, request.study) is None:
        names = ", ".join(sorted(s.study_name for s in storage.get_all_studies())) or "none"
        raise UserError(f"no study {request.study!r} in {mask_url(request.storage)}; studies there: {names}")
    study_id = storage.get_study_id_from_name(request.study)
    attrs = storage.get_study_user_attrs(study_id)
    if SWEEP not in attrs or SPACE not in attrs:
        raise UserError(f"study {request.study!r} was not started by `gradsweep launch`; nothing to resume")
    plan = SweepPlan.from_dict(attrs[SWEEP])
    if request.n_trials is not None:
        plan = replace(plan, target=request.n_trials)
    try:
        space = parse_space(attrs[SPACE], source=f"study {request.study}")
    except SpaceError as exc:
        raise UserError(exc.first_line()) from None
    check_objective(plan.objective)
    study = optuna.load_study(
        study_name=request.study,
        storage=storage,
        sampler=make_sampler(plan.sampler, seed=sampler_seed(plan.seed, storage, request.study)),
        pruner=make_base_pruner(plan.pruner),
    )
    reconcile_running(study)
    if request.retry_failed:
        requeue(study, retryable(study))
    study.set_user_attr(SWEEP, plan.to_dict())
    remaining = max(plan.target - count_finished(study), 0)
    started = time.monotonic()
    if remaining == 0:
        return summarize(
            study,
            storage=mask_url(request.storage),
            target=plan.target,
            interrupted=False,
            aborted=None,
            elapsed_s=time.monotonic() - started,
            results_dir=str((request.runs_dir / request.study).resolve()),
        )
    info = start_ray(request.resources)
    try:
        return execute_sweep(
            study,
            space,
            plan,
            info=info,
            n_trials=remaining,
            settings=request,
            progress=progress,
        )
    finally:
        stop_ray(info.owned)
