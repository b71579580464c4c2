"""``launch``: validate everything, then open the study, then run trials on Ray.

Order matters: every input (space, objective, baselines, sampler, pruner, resources) is checked
and the store is opened and checked *before* the study is created or any trial starts, so a
mistake costs one line and leaves the store untouched. The study itself is set up by
:mod:`gradsweep.search.engine.setup`, as for the Ray-free :func:`~gradsweep.search.engine.local.optimize_local`.

Example::

    request = LaunchRequest(space=load_space("contrastive"), n_trials=8, storage="sqlite:///gradsweep.db")
    summary = launch(request)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gradsweep.errors import UserError
from gradsweep.objectives.registry import check_workers
from gradsweep.search.engine.ray.bridge import StudyBridge
from gradsweep.search.engine.ray.ddp import check_train_api
from gradsweep.search.engine.ray.runner import RunResult, run_trials
from gradsweep.search.engine.ray.runtime import (
    RayInfo,
    Resources,
    check_address,
    check_local_gpus,
    cluster_address,
    start_ray,
    stop_ray,
)
from gradsweep.search.engine.request import SweepRequest, validate_request
from gradsweep.search.engine.setup import Sweep, prepare_sweep
from gradsweep.search.engine.storage import mask_url
from gradsweep.search.engine.summary import SweepSummary, resume_command, summarize
from gradsweep.search.engine.tally import Tally

ProgressFactory = Callable[[str, Tally], Any]
#: ``--runs-dir`` when not given (the resume command leaves it out then).
DEFAULT_RUNS_DIR = Path("gradsweep_runs")


@dataclass(frozen=True)
class LaunchRequest(SweepRequest):
    """Everything ``gradsweep launch`` needs, validated by :func:`launch` before anything is written:
    the :class:`~gradsweep.search.engine.request.SweepRequest` plus where and how trials run."""

    resources: Resources = field(default_factory=Resources)
    runs_dir: Path = DEFAULT_RUNS_DIR
    abort_after: int = 5


class RunSettings(Protocol):
    """What :func:`execute_sweep` reads of a :class:`LaunchRequest` or a ``ResumeRequest``."""

    storage: str
    resources: Resources
    runs_dir: Path
    timeout_s: float | None
    abort_after: int


def execute_sweep(
    sweep: Sweep,
    *,
    info: RayInfo,
    n_trials: int,
    settings: RunSettings,
    progress: ProgressFactory | None,
) -> SweepSummary:
    """Run ``n_trials`` trials of an open sweep on the Ray that ``start_ray`` set up; summarize the study.

    Shared by :func:`launch` and ``resume``; the caller owns Ray's start and stop. ``settings``
    is the caller's request (store URL, resources, runs directory, time budget, abort rule).
    The bridge decides with the sweep's pruner, the study's own.
    """
    study, plan = sweep.study, sweep.plan
    bridge = StudyBridge(
        study,
        sweep.space,
        sweep.pruner,
        objective=plan.objective,
        n_trials=n_trials,
        scale=plan.scale,
        seed=plan.seed,
        device=info.device,
        workers=settings.resources.workers_per_trial,
        abort_after=settings.abort_after,
        store_wait_s=settings.resources.store_wait_s,
    )
    callbacks = [progress(study.study_name, bridge.tally)] if progress is not None else []
    storage = mask_url(settings.storage)
    runs_dir = None if settings.runs_dir == DEFAULT_RUNS_DIR else str(settings.runs_dir)

    def summary_of(result: RunResult) -> SweepSummary:
        return summarize(
            study,
            storage=storage,
            target=plan.target,
            interrupted=result.interrupted,
            aborted=bridge.aborted,
            elapsed_s=result.elapsed_s,
            results_dir=str(result.experiment_dir),
            first_failures=bridge.tally.first_failures,
            runs_dir=runs_dir,
            signal=result.signum,
        )

    def abandon(result: RunResult) -> int:
        """The local Ray died with the driver's signal: say where the study stands, give the status."""
        summary = summary_of(result)
        print(summary.line(), file=sys.stderr)
        print(f"interrupted; continue with: {summary.resume_command}", file=sys.stderr, flush=True)
        return summary.exit_code

    result = run_trials(
        bridge,
        info=info,
        resources=settings.resources,
        runs_dir=settings.runs_dir,
        study_name=study.study_name,
        timeout_s=settings.timeout_s,
        callbacks=callbacks,
        abandon=abandon,
    )
    if bridge.store_error is not None:
        left = ", ".join(str(n) for n in sorted(bridge.unrecorded)) or "none"
        raise UserError(
            f"the study store {storage} stopped taking writes ({mask_url(bridge.store_error)}; waited "
            f"{settings.resources.store_wait_s:g} s, --store-wait); "
            f"the sweep was stopped; trials left RUNNING there: {left}; once it is writable again, "
            f"{resume_command(study.study_name, storage, runs_dir)} records them as interrupted and goes on"
        )
    return summary_of(result)


def launch(request: LaunchRequest, *, progress: ProgressFactory | None = None) -> SweepSummary:
    """Run a new sweep (or add to an existing study with ``join``).

    Args:
        request: the validated-on-entry launch settings.
        progress: builds a Ray Tune callback from (study name, tally); None for no live view.

    Returns:
        The :class:`SweepSummary` of the study after the run.

    Raises:
        UserError: any bad input or unusable store, before anything is written.
    """
    check_local_gpus(request.resources)  # this machine's size first: before the objective's code is imported
    if request.resources.distributed:
        check_train_api()
    checked = validate_request(request)
    check_workers(checked.objective, request.resources.workers_per_trial)
    check_address(cluster_address(request.resources))
    prepared = prepare_sweep(request, checked, workers=request.resources.workers_per_trial)
    info = start_ray(request.resources)  # GPU / cluster problems surface before the study exists
    try:
        sweep = prepared.open()
        return execute_sweep(sweep, info=info, n_trials=request.n_trials, settings=request, progress=progress)
    finally:
        stop_ray(info.owned)
