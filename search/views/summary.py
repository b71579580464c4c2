"""The status of a study as plain data: counts, prune groups, failures, best, running trials.

Example:
    >>> s = summarize(study.study_name, study.trials, "maximize", study.user_attrs)  # doctest: +SKIP
    >>> s.counts["COMPLETE"]                                                          # doctest: +SKIP
    12
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from gradsweep.search import attrs as _keys
from gradsweep.search.thaw_attrs import (
    PAUSED,
    PauseCounts,
    chain_ends,
    config_outcome,
    is_paused,
    outcome_counts,
    pause_counts,
    pause_step,
    thaw_of,
    thawed_as,
)
from gradsweep.search.views.reasons import PruneGroup, group_prunes, reason_rule
from gradsweep.search.views.trials import best_trials, first_line, trial_value

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


@dataclass(frozen=True)
class Failure:
    number: int
    reason: str


@dataclass(frozen=True)
class BestTrial:
    number: int
    value: float
    params: dict[str, Any]
    baseline: str | None = None
    thaw_of: int | None = None  # a thaw: the paused trial of the same config it continues


@dataclass(frozen=True)
class RunningTrial:
    """A running trial and its latest health report (None fields before the first report)."""

    number: int
    step: int | None
    verdict: str | None
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Pause:
    """A trial the freeze-thaw scheduler paused (stored PRUNED, kind ``paused``).

    Attributes:
        number: the paused trial.
        step: the report it was paused at.
        checkpoint_step: the step of the checkpoint kept (where a thaw starts).
        thaw_of: the paused trial it continues, when it is itself a thaw.
        thawed_as: the trial that continues it (None: not thawed).
        ends: how its config ended so far (``complete``, ``paused``, ``pruned``, ``failed``,
            ``interrupted``, ``running``), i.e. its last thaw's outcome, or ``paused`` when never thawed.
        ends_at: the trial of that outcome (its config's latest trial).
        reason: the pause's reason (first line, without the ``paused: `` prefix).
    """

    number: int
    step: int | None
    checkpoint_step: int | None
    thaw_of: int | None
    thawed_as: int | None
    ends: str
    ends_at: int
    reason: str


def pauses(trials: list[FrozenTrial]) -> list[Pause]:
    """Every paused trial, by number, with what became of it."""
    by_number = {t.number: t for t in trials}
    continued = thawed_as(trials)
    out = []
    for t in sorted(trials, key=lambda t: t.number):
        if not is_paused(t):
            continue
        last, seen = t, {t.number}
        while last.number in continued and continued[last.number] not in seen:  # follow the thaws
            seen.add(continued[last.number])
            last = by_number[continued[last.number]]
        step = t.user_attrs.get(_keys.PRUNE_STEP)
        reason = first_line(t.user_attrs.get(_keys.PRUNE_REASON)) or "paused (no reason recorded)"
        out.append(
            Pause(
                number=t.number,
                step=int(step) if isinstance(step, int | float) else None,
                checkpoint_step=pause_step(t),
                thaw_of=thaw_of(t),
                thawed_as=continued.get(t.number),
                ends=config_outcome(last),
                ends_at=last.number,
                reason=reason.removeprefix(f"{PAUSED}: "),
            )
        )
    return out


@dataclass(frozen=True)
class Flagged:
    """A soft health rule's flags on trials it did not prune (calibration had no evidence yet, or
    ``soft_prune: never``).

    Attributes:
        rule: the rule.
        trials: the numbers of the flagged trials that were not pruned, with their states.
        example: the first flagged trial's reason at the check it was flagged (empty if not kept).
    """

    rule: str
    trials: list[tuple[int, str]]
    example: str


def flagged_trials(trials: list[FrozenTrial]) -> list[Flagged]:
    """Soft-rule flags of trials that were not pruned, one entry per rule (first-flagged order)."""
    by_rule: dict[str, list[FrozenTrial]] = {}
    for t in trials:
        if t.state == TrialState.PRUNED:
            continue
        flags = t.user_attrs.get(_keys.HEALTH_FLAGS)
        if isinstance(flags, dict):
            for rule in flags:
                by_rule.setdefault(str(rule), []).append(t)
    out = []
    for rule, members in by_rule.items():
        first = members[0]
        history = first.user_attrs.get(_keys.HEALTH_HISTORY)
        example = next(
            (
                str(line)
                for entry in (history if isinstance(history, list) else [])
                if isinstance(entry, dict) and rule in (entry.get("unstable_rules") or [])
                for line in entry.get("reasons") or []
                if reason_rule(str(line)) == rule
            ),
            "",
        )
        out.append(
            Flagged(rule, [(t.number, t.state.name.lower()) for t in members], first_line(example) or "")
        )
    return out


@dataclass(frozen=True)
class StudySummary:
    """Everything ``gradsweep status`` shows.

    Attributes:
        study: the study name.
        objective / metric / scale: from the study attrs (None when not recorded).
        direction: ``maximize`` or ``minimize``.
        counts: trials per state (every state in :data:`STATES`, zeros included).
        total: all trials.
        prune_groups: pruned trials grouped by kind and reason key.
        failures: failed trials with the first line of their error.
        best: the best COMPLETE trial, or None.
        running: running trials with their latest health verdict.
        flagged: soft health rules' flags on trials they did not prune.
        configs: with ``--pruner freeze-thaw``: the configs (one per trial that is no thaw) by how
            their latest trial ended (``complete``, ``pruned``, ``paused``, ``failed``, ...);
            empty for a study without pauses.
        thaws: the thaws of paused trials by how they ended (empty without any).
        pauses: the paused trials, thawed or not.
    """

    study: str
    objective: str | None
    metric: str | None
    scale: str | None
    direction: str
    counts: dict[str, int]
    total: int
    prune_groups: list[PruneGroup]
    failures: list[Failure]
    best: BestTrial | None
    running: list[RunningTrial]
    flagged: list[Flagged] = field(default_factory=list)
    configs: dict[str, int] = field(default_factory=dict)
    thaws: dict[str, int] = field(default_factory=dict)
    pauses: list[Pause] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def n_configs(self) -> int:
        return sum(self.configs.values())

    def config_line(self) -> str:
        """``10 configs: complete 4  pruned 0  paused 6  failed 0`` ("" without pauses)."""
        if not self.configs:
            return ""
        shown = dict.fromkeys(("complete", "pruned", PAUSED, "failed"), 0) | self.configs
        return f"{self.n_configs} configs: " + "  ".join(f"{k} {n}" for k, n in shown.items())

    def pause_line(self) -> str:
        """``paused 12 trials: thawed 6, never thawed 6; thaws 6 (complete 1, paused again 5)``."""
        if not self.pauses and not self.thaws:
            return ""
        thawed = sum(1 for p in self.pauses if p.thawed_as is not None)
        text = f"paused {len(self.pauses)} trials: thawed {thawed}, never thawed {len(self.pauses) - thawed}"
        thaws = PauseCounts(thaws=self.thaws).thaws_text()
        return text + (f"; {thaws}" if thaws else "")


def study_direction(study: optuna.Study) -> str:
    """``maximize`` or ``minimize`` (the first objective of a multi-objective study)."""
    return study.directions[0].name.lower()


def summarize(
    name: str, trials: list[FrozenTrial], direction: str, study_attrs: dict[str, Any] | None = None
) -> StudySummary:
    """Build the :class:`StudySummary` of a study's trials.

    Args:
        name: the study name.
        trials: its trials.
        direction: ``maximize`` or ``minimize``.
        study_attrs: the study's user attrs (objective, metric, scale), if any.

    Returns:
        The summary.
    """
    attrs = study_attrs or {}
    counts = dict.fromkeys(STATES, 0)
    for trial in trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    failures = [
        Failure(t.number, first_line(t.user_attrs.get(_keys.FAIL_REASON)) or "(no reason recorded)")
        for t in trials
        if t.state == TrialState.FAIL
    ]
    top = best_trials(trials, direction, top=1)
    best = None
    if top:
        t = top[0]
        best = BestTrial(
            t.number,
            float(trial_value(t) or 0.0),
            dict(t.params),
            t.user_attrs.get(_keys.BASELINE),
            thaw_of(t),
        )
    running = [_running(t) for t in trials if t.state == TrialState.RUNNING]
    metric = attrs.get(_keys.METRIC)
    if isinstance(metric, dict):  # a MetricConfig dict
        metric = metric.get("name")
    return StudySummary(
        study=name,
        objective=attrs.get(_keys.OBJECTIVE),
        metric=metric,
        scale=attrs.get(_keys.SCALE),
        direction=direction,
        counts=counts,
        total=len(trials),
        prune_groups=group_prunes(trials),
        failures=failures,
        best=best,
        running=running,
        flagged=flagged_trials(trials),
        configs=_configs(trials),
        thaws=pause_counts(trials).thaws,
        pauses=pauses(trials),
    )


def _configs(trials: list[FrozenTrial]) -> dict[str, int]:
    """Configs by their latest trial's outcome, for a study with pauses (else ``{}``)."""
    if not any(is_paused(t) or thaw_of(t) is not None for t in trials):
        return {}
    return outcome_counts(chain_ends(trials))


def _running(trial: FrozenTrial) -> RunningTrial:
    latest = trial.user_attrs.get(_keys.HEALTH_LATEST)
    if not isinstance(latest, dict):
        return RunningTrial(trial.number, None, None, [])
    return RunningTrial(
        trial.number, latest.get("step"), latest.get("verdict"), [str(r) for r in latest.get("reasons") or []]
    )
