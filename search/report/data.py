"""Everything the report draws, read once from the study (plain data from :mod:`gradsweep.search.views`)."""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from gradsweep.search.views import (
    HealthCurve,
    History,
    Importances,
    LrPoints,
    ParallelData,
    PruneGroup,
    StudySummary,
    group_prunes,
    health_curves,
    history,
    importances,
    lr_points,
    parallel,
    study_direction,
    summarize,
)

MAX_CURVES = 40  # health-curve panels per report; the rest are listed by number


@dataclass(frozen=True)
class ReportData:
    """What the report shows: the status summary, the plot data and the health curves.

    Attributes:
        summary: as ``gradsweep status`` shows it.
        history / parallel / importances / lr: data of the four study-level plots.
        curves: per-trial health curves (pruned trials first when capped), by trial number; a
            config paused and thawed (``--pruner freeze-thaw``) is one curve under its latest trial.
        omitted_curves: trial numbers whose curves were left out by the cap.
        prune_groups: pruned trials grouped by kind and reason (``paused`` ones included).
    """

    summary: StudySummary
    history: History
    parallel: ParallelData
    importances: Importances
    lr: LrPoints
    curves: list[HealthCurve]
    omitted_curves: list[int]
    prune_groups: list[PruneGroup]


def collect(study: optuna.Study, *, max_curves: int = MAX_CURVES) -> ReportData:
    """Read ``study`` into :class:`ReportData`.

    Health curves of pruned trials come first (they explain the prunes), then the others by
    number, up to ``max_curves``. A paused trial that was thawed has no curve of its own: its
    thaw's curve starts with it (:func:`gradsweep.search.views.health_curves`).

    Raises:
        ValueError: ``max_curves`` < 1.
    """
    if max_curves < 1:
        raise ValueError(f"max_curves must be at least 1 but got {max_curves}")
    trials = study.trials
    direction = study_direction(study)
    curves = health_curves(trials)
    curves.sort(key=lambda c: (c.prune is None, c.number))
    kept, omitted = curves[:max_curves], sorted(c.number for c in curves[max_curves:])
    kept.sort(key=lambda c: c.number)
    return ReportData(
        summary=summarize(study.study_name, trials, direction, study.user_attrs),
        history=history(trials, direction),
        parallel=parallel(trials),
        importances=importances(study),
        lr=lr_points(trials),
        curves=kept,
        omitted_curves=omitted,
        prune_groups=group_prunes(trials),
    )
