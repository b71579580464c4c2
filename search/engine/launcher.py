"""``launch`` and ``resume``: validate everything, then open the study, then run trials on Ray.

Order matters: every input (space, objective, baselines, sampler, pruner, resources) is checked
and the store is opened and checked *before* the study is created or any trial starts, so a
mistake costs one line and leaves the store untouched.

Example::

    request = LaunchRequest(space=load_space("contrastive"), n_trials=8, storage="sqlite:///gradsweep.db")
    summary = launch(request)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
import yaml

from gradsweep.errors import UserError
from gradsweep.objectives.registry import load_objective
from gradsweep.search.attrs import SWEEP
from gradsweep.search.engine.algorithms import (
    DEFAULT_PRUNER,
    make_base_pruner,
    make_sampler,
    parse_pruner,
    parse_sampler,
)
from gradsweep.search.engine.bridge import StudyBridge
from gradsweep.search.engine.ray_runtime import (
    RayInfo,
    Resources,
    check_address,
    check_local_gpus,
    start_ray,
    stop_ray,
)
from gradsweep.search.engine.runner import run_trials
from gradsweep.search.engine.storage import DEFAULT_STORAGE, mask_url, open_storage
from gradsweep.search.engine.study import (
    Baseline,
    SweepPlan,
    check_joinable,
    count_finished,
    create_or_load,
    enqueue_baselines,
    study_attrs,
)
from gradsweep.search.engine.summary import SweepSummary, summarize
from gradsweep.search.engine.tally import Tally
from gradsweep.spaces.sampling import check_params
from gradsweep.spaces.space import SearchSpace, SpaceError

ProgressFactory = Callable[[str, Tally], Any]


@dataclass(frozen=True)
class LaunchRequest:
    """Everything ``gradsweep launch`` needs, validated by :func:`launch` before anything is written."""

    space: SearchSpace
    n_trials: int
    storage: str = DEFAULT_STORAGE
    study: str | None = None
    objective: str | None = None
    scale: str | None = None
    sampler: str = "tpe"
    pruner: str = DEFAULT_PRUNER
    seed: int | None = None
    baselines: tuple[str, ...] = ()
    join: bool = False
    resources: Resources = field(default_factory=Resources)
    runs_dir: Path = Path("gradsweep_runs")
    timeout_s: float | None = None
    abort_after: int = 5


def normalize_objective(spec: str) -> str:
    """``spec`` with a file path made absolute (workers run in other directories)."""
    target, sep, attr = spec.rpartition(":")
    if sep and (target.endswith(".py") or "/" in target):
        return f"{Path(target).expanduser().resolve()}:{attr}"
    return spec


def _params_from_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read baseline {path}: {str(exc).splitlines()[0]}") from exc
    if isinstance(data, dict) and isinstance(data.get("config"), dict) and "params" not in data:
        data = data["config"]  # an export file
    params = data.get("params") if isinstance(data, dict) else None
    if not isinstance(params, dict) or not params:
        raise UserError(f"baseline {path} has no `params` mapping (write one with `gradsweep export`)")
    return params


def resolve_baselines(space: SearchSpace, specs: tuple[str, ...]) -> list[Baseline]:
    """Turn ``--baseline`` values (files or the space's baseline names) into checked parameter sets.

    Raises:
        UserError: a missing file or name (names listed), or params outside the space.
    """
    out: list[Baseline] = []
    for spec in specs:
        path = Path(spec)
        if path.is_file():
            name, params = path.stem, _params_from_file(path)
        elif spec in space.baselines:
            name, params = spec, dict(space.baselines[spec])
        else:
            known = ", ".join(space.baselines) or "none"
            raise UserError(f"--baseline {spec!r} is neither a file nor a baseline of space {space.name!r} (baselines: {known})")
        try:
            checked = check_params(space, params, where=f"baseline {name}")
        except SpaceError as exc:
            raise UserError(exc.first_line()) from None
        out.append(Baseline(name, dict(checked)))
    return out


def check_objective(spec: str) -> None:
    """Load the objective once on the driver, so a bad spec fails before anything is written."""
    load_objective(spec)  # raises UserError with one line


def validate_request(request: LaunchRequest) -> tuple[str, str, str, list[Baseline]]:
    """Check every input of ``request`` without touching the store.

    Returns:
        (study name, scale, normalized objective spec, checked baselines).

    Raises:
        UserError: the first problem, in one line.
    """
    if request.n_trials < 1:
        raise UserError(f"--n-trials must be at least 1, got {request.n_trials}")
    if request.timeout_s is not None and request.timeout_s <= 0:
        raise UserError(f"--timeout must be > 0 seconds, got {request.timeout_s:g}")
    scale = request.scale or request.space.scale
    if scale not in ("tiny", "small", "full"):
        raise UserError(f"--scale must be one of tiny, small, full, got {scale!r}")
    parse_sampler(request.sampler)
    parse_pruner(request.pruner)
    objective = normalize_objective(request.objective or request.space.objective)
    check_objective(objective)
    baselines = resolve_baselines(request.space, request.baselines)
    name = request.study or request.space.name
    return name, scale, objective, baselines


def sampler_seed(seed: int | None, storage: optuna.storages.BaseStorage, study: str | None) -> int | None:
    """The sampler's seed for a run: ``seed`` offset by the trials the study already holds.

    A second run into the same study (``--join``, ``resume``) with the seed of the first would
    otherwise draw the first run's random startup configs again.
    """
    if seed is None or study is None:
        return seed
    return seed + len(storage.get_all_trials(storage.get_study_id_from_name(study), deepcopy=False))


def make_decider(pruner: str) -> Any:
    """The health pruner wrapping the Optuna pruner called ``pruner``."""
    from gradsweep.search.pruner import HealthPruner

    return HealthPruner(make_base_pruner(pruner))


class RunSettings(Protocol):
    """What :func:`execute_sweep` reads of a :class:`LaunchRequest` or a ``ResumeRequest``."""

    storage: str
    resources: Resources
    runs_dir: Path
    timeout_s: float | None
    abort_after: int


def execute_sweep(
    study: optuna.Study,
    space: SearchSpace,
    plan: SweepPlan,
    *,
    info: RayInfo,
    n_trials: int,
    settings: RunSettings,
    progress: ProgressFactory | None,
) -> SweepSummary:
    """Run ``n_trials`` trials of an open study on the Ray that ``start_ray`` set up; summarize the study.

    Shared by :func:`launch` and ``resume``; the caller owns Ray's start and stop. ``settings``
    is the caller's request (store URL, resources, runs directory, time budget, abort rule).
    """
    bridge = StudyBridge(
        study,
        space,
        make_decider(plan.pruner),
        objective=plan.objective,
        n_trials=n_trials,
        scale=plan.scale,
        seed=plan.seed,
        device=info.device,
        abort_after=settings.abort_after,
    )
    callbacks = [progress(study.study_name, bridge.tally)] if progress is not None else []
    result = run_trials(
        bridge,
        info=info,
        resources=settings.resources,
        runs_dir=settings.runs_dir,
        study_name=study.study_name,
        timeout_s=settings.timeout_s,
        callbacks=callbacks,
    )
    return summarize(
        study,
        storage=mask_url(settings.storage),
        target=plan.target,
        interrupted=result.interrupted,
        aborted=bridge.aborted,
        elapsed_s=result.elapsed_s,
        results_dir=str(result.experiment_dir),
        first_failures=bridge.tally.first_failures,
    )


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
    name, scale, objective, baselines = validate_request(request)
    check_local_gpus(request.resources)
    check_address(request.resources.address)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = make_base_pruner(request.pruner)
    storage = open_storage(request.storage)
    attrs = study_attrs(request.space, objective=objective, scale=scale)
    exists = check_joinable(storage, name, attrs, join=request.join)
    sampler = make_sampler(request.sampler, seed=sampler_seed(request.seed, storage, name if exists else None))
    seed = request.seed if request.seed is not None else request.space.seed
    info = start_ray(request.resources)  # GPU / cluster problems surface before the study exists
    try:
        try:
            study = create_or_load(storage, name, attrs, sampler=sampler, pruner=base)
        except optuna.exceptions.StorageInternalError as exc:
            first = mask_url(str(exc).splitlines()[0])
            raise UserError(f"cannot write study store {mask_url(request.storage)}: {first}") from exc
        before = count_finished(study) if exists else 0
        plan = SweepPlan(objective, scale, request.sampler, request.pruner, seed, before + request.n_trials)
        study.set_user_attr(SWEEP, plan.to_dict())
        enqueue_baselines(study, baselines)
        return execute_sweep(
            study,
            request.space,
            plan,
            info=info,
            n_trials=request.n_trials,
            settings=request,
            progress=progress,
        )
    finally:
        stop_ray(info.owned)
