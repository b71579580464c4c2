"""``gradsweep resume``: continue an interrupted sweep from its study alone.

The study's ``gradsweep.sweep`` attr (written by ``launch``) holds the objective, scale,
sampler, pruner, seed and target; the space comes from ``gradsweep.space``. Nothing but the
study name and the store are needed (:func:`gradsweep.search.engine.setup.reopen_sweep` loads it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from gradsweep.errors import UserError
from gradsweep.search.engine.ray.ddp import check_train_api
from gradsweep.search.engine.ray.launcher import ProgressFactory, execute_sweep
from gradsweep.search.engine.ray.runtime import (
    Resources,
    check_address,
    check_local_gpus,
    cluster_address,
    start_ray,
    stop_ray,
)
from gradsweep.search.engine.request import run_dir
from gradsweep.search.engine.setup import reopen_sweep
from gradsweep.search.engine.storage import DEFAULT_STORAGE, mask_url
from gradsweep.search.engine.study import count_finished
from gradsweep.search.engine.summary import SweepSummary, summarize
from gradsweep.search.freeze_thaw import FreezeThawPruner


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
    every interrupted trial's params are enqueued again. Finished trials are never re-run. A
    ``--pruner freeze-thaw`` sweep with paused trials runs even when no new config is left: its
    paused trials are judged again and the ones worth it are thawed first.

    Args:
        request: study, store and optional new target (``n_trials`` = finished trials wanted in all).
        progress: see :func:`~gradsweep.search.engine.ray.launcher.launch`.

    Raises:
        UserError: unknown study, a study not made by ``gradsweep launch``, or an unusable store.
    """
    if request.n_trials is not None and request.n_trials < 1:
        raise UserError(f"--n-trials must be at least 1, got {request.n_trials}")
    check_local_gpus(request.resources)
    if request.resources.distributed:
        check_train_api()
    check_address(cluster_address(request.resources))
    sweep = reopen_sweep(
        request.storage,
        request.study,
        target=request.n_trials,
        retry_failed=request.retry_failed,
        workers=request.resources.workers_per_trial,
    )
    remaining = max(sweep.plan.target - count_finished(sweep.study), 0)
    started = time.monotonic()
    base = sweep.pruner.base_pruner
    paused = isinstance(base, FreezeThawPruner) and bool(base.paused_trials(sweep.study))
    if remaining == 0 and not paused:  # with paused trials the run may thaw them (no new config)
        return summarize(
            sweep.study,
            storage=mask_url(request.storage),
            target=sweep.plan.target,
            interrupted=False,
            aborted=None,
            elapsed_s=time.monotonic() - started,
            results_dir=str(run_dir(request.runs_dir, request.study)),
        )
    info = start_ray(request.resources)
    try:
        return execute_sweep(sweep, info=info, n_trials=remaining, settings=request, progress=progress)
    finally:
        stop_ray(info.owned)
