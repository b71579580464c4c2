"""Open the study a sweep writes, the same way for Ray and for plain ``study.optimize``.

:func:`prepare_sweep` opens the store and checks the study can take the sweep, writing nothing;
:meth:`PreparedSweep.open` then creates or joins the study with Contract 4's attrs, its sampler
and the health pruner, stores the :class:`~gradsweep.search.engine.study.SweepPlan` and enqueues
the baselines. :func:`reopen_sweep` loads an interrupted sweep's study for ``gradsweep resume``.
The study's pruner is the :class:`~gradsweep.search.pruner.HealthPruner` wrapping the base pruner
the sweep names, and it is what decides on both paths: ``trial.should_prune()`` asks it in
:mod:`gradsweep.search.engine.local`, the Ray driver's bridge asks :attr:`Sweep.pruner` (the same
object). Nothing here imports Ray.

Example::

    request = SweepRequest(space=load_space("contrastive"), n_trials=8, storage="sqlite:///gradsweep.db")
    sweep = prepare_sweep(request, validate_request(request)).open()
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import optuna

from gradsweep.errors import UserError
from gradsweep.search.attrs import SPACE, SWEEP
from gradsweep.search.engine.algorithms import make_base_pruner, make_sampler
from gradsweep.search.engine.request import CheckedRequest, SweepRequest, check_objective
from gradsweep.search.engine.storage import mask_url, open_storage
from gradsweep.search.engine.study import (
    SweepPlan,
    check_joinable,
    count_finished,
    create_or_load,
    enqueue_baselines,
    find_study,
    reconcile_running,
    requeue,
    retryable,
    study_attrs,
)
from gradsweep.search.pruner import HealthPruner
from gradsweep.spaces.space import SearchSpace, SpaceError, parse_space


def sampler_seed(seed: int | None, storage: optuna.storages.BaseStorage, study: str | None) -> int | None:
    """The sampler's seed for a run: ``seed`` offset by the trials the study already holds.

    A second run into the same study (``--join``, ``resume``) with the seed of the first would
    otherwise draw the first run's random startup configs again.
    """
    if seed is None or study is None:
        return seed
    return seed + len(storage.get_all_trials(storage.get_study_id_from_name(study), deepcopy=False))


def health_pruner(name: str) -> HealthPruner:
    """The health pruner wrapping the Optuna pruner called ``name`` (see :mod:`~gradsweep.search.engine.algorithms`)."""
    return HealthPruner(make_base_pruner(name))


@dataclass(frozen=True)
class Sweep:
    """An open sweep: its study, space and plan, and the pruner that decides (the study's own)."""

    study: optuna.Study
    space: SearchSpace
    plan: SweepPlan
    pruner: HealthPruner


@dataclass(frozen=True)
class PreparedSweep:
    """A checked request with its store open; nothing written yet (see :meth:`open`)."""

    request: SweepRequest
    checked: CheckedRequest
    storage: optuna.storages.BaseStorage
    attrs: dict[str, Any]
    exists: bool
    sampler: optuna.samplers.BaseSampler
    pruner: HealthPruner
    workers: int = 1  # DDP workers per trial (stored in the plan)

    def open(self) -> Sweep:
        """Create or join the study, store the sweep's plan and enqueue its baselines.

        Raises:
            UserError: the store refuses the write (one line, password masked).
        """
        request, checked = self.request, self.checked
        try:
            study = create_or_load(
                self.storage, checked.study, self.attrs, sampler=self.sampler, pruner=self.pruner
            )
        except optuna.exceptions.StorageInternalError as exc:
            first = mask_url(str(exc).splitlines()[0])
            raise UserError(f"cannot write study store {mask_url(request.storage)}: {first}") from exc
        before = count_finished(study) if self.exists else 0
        seed = request.seed if request.seed is not None else request.space.seed
        plan = SweepPlan(
            checked.objective,
            checked.scale,
            request.sampler,
            request.pruner,
            seed,
            before + request.n_trials,
            self.workers,
        )
        study.set_user_attr(SWEEP, plan.to_dict())
        enqueue_baselines(study, checked.baselines)
        return Sweep(study, request.space, plan, self.pruner)


def same_workers(study: str, plan: SweepPlan, workers: int, *, verb: str) -> None:
    """Refuse to ``verb`` (join, resume) a study with another ``--workers-per-trial`` than its launch's.

    Raises:
        UserError: one line naming the launch's worker count.
    """
    if workers != plan.workers:
        raise UserError(
            f"study {study!r} was launched with --workers-per-trial {plan.workers}; {verb} it with "
            f"--workers-per-trial {plan.workers} (batch_size is per worker: its trials' global batch and "
            "LR scaling count the workers)"
        )


def prepare_sweep(request: SweepRequest, checked: CheckedRequest, *, workers: int = 1) -> PreparedSweep:
    """Open the store of ``request`` and check that its study may take the sweep (writes nothing).

    Args:
        request: the sweep asked for.
        checked: ``validate_request(request)``.
        workers: DDP workers per trial (``--workers-per-trial``).

    Raises:
        UserError: an unusable store, an existing study of another space, objective or
            direction without ``join``, or one launched with another worker count (its trials'
            global batch and LR scaling count the workers).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = health_pruner(request.pruner)
    storage = open_storage(request.storage)
    attrs = study_attrs(request.space, objective=checked.objective, scale=checked.scale)
    exists = check_joinable(storage, checked.study, attrs, join=request.join)
    if exists:
        plan = storage.get_study_user_attrs(storage.get_study_id_from_name(checked.study)).get(SWEEP)
        if isinstance(plan, dict):
            same_workers(checked.study, SweepPlan.from_dict(plan), workers, verb="join")
    sampler = make_sampler(
        request.sampler, seed=sampler_seed(request.seed, storage, checked.study if exists else None)
    )
    return PreparedSweep(request, checked, storage, attrs, exists, sampler, pruner, workers)


def reopen_sweep(
    url: str, name: str, *, target: int | None = None, retry_failed: bool = False, workers: int | None = None
) -> Sweep:
    """Load the study of an interrupted sweep with the sampler and pruner its plan names.

    Stale RUNNING trials (a killed driver) become FAIL ``interrupted``; with ``retry_failed``
    every interrupted trial's params are enqueued again.

    Args:
        url: the study store.
        name: the study.
        target: finished trials wanted in all (None keeps the plan's).
        retry_failed: enqueue interrupted trials' params again.
        workers: the DDP workers per trial this run will use (None: not checked).

    Raises:
        UserError: unknown study, a study not made by ``gradsweep launch``, an unusable store, or
            ``workers`` other than the launch's (the trials' global batch counts them).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url, create=False)
    if find_study(storage, name) is None:
        names = ", ".join(sorted(s.study_name for s in storage.get_all_studies())) or "none"
        raise UserError(f"no study {name!r} in {mask_url(url)}; studies there: {names}")
    attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    if SWEEP not in attrs or SPACE not in attrs:
        raise UserError(f"study {name!r} was not started by `gradsweep launch`; nothing to resume")
    plan = SweepPlan.from_dict(attrs[SWEEP])
    if workers is not None:
        same_workers(name, plan, workers, verb="resume")
    if target is not None:
        plan = replace(plan, target=target)
    try:
        space = parse_space(attrs[SPACE], source=f"study {name}")
    except SpaceError as exc:
        raise UserError(exc.first_line()) from None
    check_objective(plan.objective)
    pruner = health_pruner(plan.pruner)
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(plan.sampler, seed=sampler_seed(plan.seed, storage, name)),
        pruner=pruner,
    )
    reconcile_running(study)
    if retry_failed:
        requeue(study, retryable(study))
    study.set_user_attr(SWEEP, plan.to_dict())
    return Sweep(study, space, plan, pruner)
