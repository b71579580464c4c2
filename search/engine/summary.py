"""What a sweep ends with: counts over the whole study, the best trial, where the study lives."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from gradsweep.search.attrs import PRUNE_KIND
from gradsweep.search.engine.study import count_finished, is_interrupted


@dataclass(frozen=True)
class SweepSummary:
    """The end state of one ``launch`` / ``resume`` (JSON-able through :meth:`to_dict`).

    Counts are over the whole study (earlier runs included), so a resumed sweep reports
    where the study stands.
    """

    study: str
    storage: str
    target: int
    finished: int
    complete: int
    pruned: dict[str, int]
    failed: int
    interrupted_trials: int
    running: int
    best_number: int | None
    best_value: float | None
    best_params: dict[str, Any] | None
    interrupted: bool
    aborted: str | None
    elapsed_s: float
    results_dir: str
    first_failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def resume_command(self) -> str:
        """The command that continues this sweep (a masked password is left to ``$GRADSWEEP_STORAGE``)."""
        storage = '"$GRADSWEEP_STORAGE"' if "***" in self.storage else f"'{self.storage}'"
        return f"gradsweep resume --study {self.study} --storage {storage}"

    def line(self) -> str:
        """One summary line (``--quiet`` prints just this)."""
        pruned = sum(self.pruned.values())
        best = (
            f"best {self.best_value:.4g} (trial {self.best_number})"
            if self.best_value is not None
            else "no complete trial"
        )
        state = "interrupted" if self.interrupted else ("stopped early" if self.aborted else "done")
        return (
            f"{state}: study {self.study}  {self.finished}/{self.target} finished  complete {self.complete}  "
            f"pruned {pruned}  failed {self.failed}  {best}  store {self.storage}"
        )


def summarize(
    study: optuna.Study,
    *,
    storage: str,
    target: int,
    interrupted: bool,
    aborted: str | None,
    elapsed_s: float,
    results_dir: str,
    first_failures: list[str] | None = None,
) -> SweepSummary:
    """Build the :class:`SweepSummary` of ``study`` (``storage`` must already be masked)."""
    trials = study.get_trials(deepcopy=False)
    pruned = Counter(
        str(t.user_attrs.get(PRUNE_KIND, "underperforming")) for t in trials if t.state == TrialState.PRUNED
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = None
    if complete:
        best = study.best_trial
    return SweepSummary(
        study=study.study_name,
        storage=storage,
        target=target,
        finished=count_finished(study),
        complete=len(complete),
        pruned=dict(pruned),
        failed=sum(1 for t in trials if t.state == TrialState.FAIL and not is_interrupted(t)),
        interrupted_trials=sum(1 for t in trials if is_interrupted(t)),
        running=sum(1 for t in trials if t.state == TrialState.RUNNING),
        best_number=best.number if best else None,
        best_value=best.value if best else None,
        best_params=dict(best.params) if best else None,
        interrupted=interrupted,
        aborted=aborted,
        elapsed_s=round(elapsed_s, 3),
        results_dir=results_dir,
        first_failures=list(first_failures or []),
    )
