"""What a sweep ends with: counts over the whole study, the best trial, where the study lives."""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from gradsweep.search.attrs import PRUNE_KIND
from gradsweep.search.engine.study import count_finished, is_interrupted
from gradsweep.search.thaw_attrs import PAUSED, PauseCounts, chain_ends, pause_counts


def resume_command(study: str, storage: str, runs_dir: str | None = None) -> str:
    """The command that continues a sweep (``storage`` masked: a masked password is left to
    ``$GRADSWEEP_STORAGE``; ``runs_dir`` is repeated when given).

    Example:
        >>> resume_command("s", "sqlite:///g.db", "/tmp/runs")
        "gradsweep resume --study s --storage 'sqlite:///g.db' --runs-dir /tmp/runs"
    """
    where = '"$GRADSWEEP_STORAGE"' if "***" in storage else f"'{storage}'"
    runs = f" --runs-dir {shlex.quote(runs_dir)}" if runs_dir else ""
    return f"gradsweep resume --study {shlex.quote(study)} --storage {where}{runs}"


@dataclass(frozen=True)
class SweepSummary:
    """The end state of one ``launch`` / ``resume`` (JSON-able through :meth:`to_dict`).

    Counts are over the whole study (earlier runs included), so a resumed sweep reports
    where the study stands. They count configs: a paused trial a thaw continues
    (``--pruner freeze-thaw``) is no outcome, the thaw carries on, so ``complete + sum(pruned) +
    failed == finished`` unless a thaw was interrupted; ``pruned["paused"]`` are the configs left
    paused, and ``thaws`` the continuations by how they ended (``{"complete": 1, "paused": 5}``).
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
    runs_dir: str | None = None  # ``--runs-dir`` when not the default (the resume command repeats it)
    signal: int | None = None  # the signal that interrupted the sweep (2 SIGINT, 15 SIGTERM)
    thaws: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def resume_command(self) -> str:
        """The command that continues this sweep (a masked password is left to ``$GRADSWEEP_STORAGE``)."""
        return resume_command(self.study, self.storage, self.runs_dir)

    @property
    def exit_code(self) -> int:
        """The CLI's status: 128 + the signal after an interrupt (130 for Ctrl-C or a time budget),
        1 when stopped early, else 0."""
        if self.interrupted:
            return 128 + (self.signal or 2)
        return 1 if self.aborted else 0

    def counts(self, sep: str = "  ") -> str:
        """``failed N`` plus, when the study holds any, ``interrupted M``: the trials stored FAIL
        with reason "interrupted", which ``failed`` leaves out (``resume`` may run them again)."""
        text = f"failed {self.failed}"
        return text + (f"{sep}interrupted {self.interrupted_trials}" if self.interrupted_trials else "")

    def pause_counts(self, sep: str = "  ") -> str:
        """``paused N`` (configs left paused) and ``thaws M (complete a, paused again b)``;
        ``""`` for a study without pauses."""
        paused = self.pruned.get(PAUSED, 0)
        if not paused and not self.thaws:
            return ""
        thaws = PauseCounts(thaws=self.thaws).thaws_text()
        return f"paused {paused}" + (f"{sep}{thaws}" if thaws else "")

    def line(self) -> str:
        """One summary line (``--quiet`` prints just this)."""
        pruned = sum(n for kind, n in self.pruned.items() if kind != PAUSED)
        pauses = self.pause_counts()
        best = (
            f"best {self.best_value:.4g} (trial {self.best_number})"
            if self.best_value is not None
            else "no complete trial"
        )
        state = "interrupted" if self.interrupted else ("stopped early" if self.aborted else "done")
        return (
            f"{state}: study {self.study}  {self.finished}/{self.target} finished  complete {self.complete}  "
            f"pruned {pruned}  {pauses + '  ' if pauses else ''}{self.counts()}  {best}  store {self.storage}"
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
    runs_dir: str | None = None,
    signal: int | None = None,
) -> SweepSummary:
    """Build the :class:`SweepSummary` of ``study`` (``storage`` must already be masked)."""
    trials = study.get_trials(deepcopy=False)
    pruned = Counter(  # a thawed pause is no outcome: its thaw carries on
        str(t.user_attrs.get(PRUNE_KIND, "underperforming"))
        for t in chain_ends(trials)
        if t.state == TrialState.PRUNED
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
        runs_dir=runs_dir,
        signal=signal,
        thaws=pause_counts(trials).thaws,
    )
