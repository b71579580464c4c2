"""Read an Optuna study into plain rows and summaries for the CLI and the report.

Only :mod:`gradsweep.search.views.store` does I/O; the other modules are pure functions of trials.
"""

from __future__ import annotations

from gradsweep.search.engine.storage import DEFAULT_STORAGE
from gradsweep.search.views.health_curves import (
    HealthCurve,
    PrunePoint,
    ThawPoint,
    health_curve,
    health_curves,
)
from gradsweep.search.views.plots import (
    History,
    Importances,
    LrPoints,
    ParallelData,
    history,
    importances,
    lr_points,
    parallel,
)
from gradsweep.search.views.reasons import PruneGroup, group_prunes, reason_key
from gradsweep.search.views.store import load_study, mask_url, open_storage
from gradsweep.search.views.summary import Pause, StudySummary, study_direction, summarize
from gradsweep.search.views.trials import SortKey, TrialRow, best_trials, format_knobs, trial_row, trial_rows

__all__ = [
    "DEFAULT_STORAGE",
    "HealthCurve",
    "History",
    "Importances",
    "LrPoints",
    "ParallelData",
    "Pause",
    "PruneGroup",
    "PrunePoint",
    "SortKey",
    "StudySummary",
    "ThawPoint",
    "TrialRow",
    "best_trials",
    "format_knobs",
    "group_prunes",
    "health_curve",
    "health_curves",
    "history",
    "importances",
    "load_study",
    "lr_points",
    "mask_url",
    "open_storage",
    "parallel",
    "reason_key",
    "study_direction",
    "summarize",
    "trial_row",
    "trial_rows",
]
