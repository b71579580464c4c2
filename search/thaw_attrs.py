"""Paused and thawed trials of a freeze-thaw sweep, as the study stores them (pure reads, no writes).

With ``--pruner freeze-thaw`` the Ray engine may *pause* a trial: it is stored PRUNED with
``gradsweep.prune.kind = "paused"`` and ``gradsweep.pause = {"step", "checkpoint",
"checkpoint_step"}``. A finished Optuna trial cannot change, so a *thaw* is a new trial with the
same params, ``gradsweep.thaw_of = <the paused trial's number>`` and the paused curve up to its
checkpoint; it runs on and may be paused (and thawed) again. One config's trials thus form a
*chain*: its first trial, then each thaw of the one before. Every view counts configs by their
chain's last trial (a thawed pause is not an outcome: its thaw carries on) and shows:

* **thawed**: a paused trial some trial's ``gradsweep.thaw_of`` names (:func:`thawed_as`);
* **paused** (never thawed): a paused trial nothing names; when the sweep is over it stays PRUNED
  (its reason says "paused");
* a **thaw**: a trial with ``gradsweep.thaw_of`` (it is no new config: :func:`is_thaw`).

Example:
    >>> import optuna
    >>> from optuna.trial import TrialState, create_trial
    >>> study = optuna.create_study(direction="maximize")
    >>> paused = {"gradsweep.prune.kind": "paused", "gradsweep.pause": {"step": 4, "checkpoint_step": 4}}
    >>> study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs=paused))
    >>> study.add_trial(create_trial(value=0.5, user_attrs={"gradsweep.thaw_of": 0}))
    >>> thawed_as(study.trials), [t.number for t in chain_ends(study.trials)]
    ({0: 1}, [1])
    >>> pause_counts(study.trials)
    PauseCounts(paused=1, thawed=1, thaws={'complete': 1})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from gradsweep.search.attrs import FAIL_REASON, PAUSE, PRUNE_KIND, THAW_OF

__all__ = [
    "PAUSED",
    "PauseCounts",
    "chain_ends",
    "chain_of",
    "config_outcome",
    "is_paused",
    "is_thaw",
    "outcome_counts",
    "pause_counts",
    "pause_step",
    "thaw_of",
    "thawed_as",
]

#: ``gradsweep.prune.kind`` of a paused trial (``PruneKind.PAUSED``)
PAUSED = "paused"
_INTERRUPTED = "interrupted"  # gradsweep.search.engine.outcome.INTERRUPTED (not imported: no engine here)

#: the order outcomes are listed in (:func:`config_outcome`)
OUTCOMES = ("complete", "pruned", PAUSED, "failed", _INTERRUPTED, "running", "waiting")


def is_paused(trial: FrozenTrial) -> bool:
    """A PRUNED trial whose prune kind is ``paused`` (thawed or not)."""
    return trial.state == TrialState.PRUNED and trial.user_attrs.get(PRUNE_KIND) == PAUSED


def thaw_of(trial: FrozenTrial) -> int | None:
    """The number of the paused trial ``trial`` continues (``gradsweep.thaw_of``), or None."""
    value = trial.user_attrs.get(THAW_OF)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_thaw(trial: FrozenTrial) -> bool:
    """True for a thaw (a continuation of a paused trial): not a config of its own."""
    return thaw_of(trial) is not None


def _interrupted_thaw(trial: FrozenTrial) -> bool:
    """A thaw the sweep's interruption ended: its paused trial is still paused (``resume`` may thaw it again)."""
    return is_thaw(trial) and config_outcome(trial) == _INTERRUPTED


def thawed_as(trials: Sequence[FrozenTrial]) -> dict[int, int]:
    """``{paused trial number: number of the trial that continues it}`` (the first, if several).

    A thaw the sweep's interruption ended continues nothing: its paused trial is still paused.
    """
    out: dict[int, int] = {}
    for t in sorted(trials, key=lambda t: t.number):
        parent = thaw_of(t)
        if parent is not None and not _interrupted_thaw(t):
            out.setdefault(parent, t.number)
    return out


def chain_ends(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials no trial continues, by number: one per config (its latest trial).

    An interrupted thaw is no config's end (its paused trial is)."""
    continued = thawed_as(trials)
    return sorted(
        (t for t in trials if t.number not in continued and not _interrupted_thaw(t)), key=lambda t: t.number
    )


def chain_of(trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The config's trials up to ``trial``: its first trial, each thaw, ``trial`` last."""
    by_number = {t.number: t for t in trials}
    chain = [trial]
    parent = thaw_of(trial)
    while parent is not None and parent in by_number and all(t.number != parent for t in chain):
        chain.append(by_number[parent])
        parent = thaw_of(by_number[parent])
    return chain[::-1]


def pause_step(trial: FrozenTrial) -> int | None:
    """The step a thaw of ``trial`` starts from (its kept checkpoint's), or None when not recorded."""
    pause = trial.user_attrs.get(PAUSE)
    if not isinstance(pause, dict):
        return None
    step = pause.get("checkpoint_step", pause.get("step"))
    return int(step) if isinstance(step, int | float) and not isinstance(step, bool) else None


def config_outcome(trial: FrozenTrial) -> str:
    """How a trial ended, as one word of :data:`OUTCOMES` (``paused`` apart from ``pruned``;
    ``failed`` without the trials the sweep's interruption failed, which are ``interrupted``)."""
    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.PRUNED:
        return PAUSED if is_paused(trial) else "pruned"
    if trial.state == TrialState.FAIL:
        return _INTERRUPTED if trial.user_attrs.get(FAIL_REASON) == _INTERRUPTED else "failed"
    return trial.state.name.lower()


def outcome_counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """``{outcome: count}`` over ``trials`` in :data:`OUTCOMES` order (only outcomes that occur)."""
    counts = Counter(config_outcome(t) for t in trials)
    return {k: counts[k] for k in OUTCOMES if counts[k]}


@dataclass(frozen=True)
class PauseCounts:
    """Pauses and thaws in a study.

    Attributes:
        paused: paused trials, thawed or not (every pause).
        thawed: the paused trials a thaw continues (``paused - thawed`` are still paused).
        thaws: the thaws (trials with ``gradsweep.thaw_of``) by how they ended (:func:`config_outcome`).
    """

    paused: int = 0
    thawed: int = 0
    thaws: dict[str, int] = field(default_factory=dict)

    @property
    def never_thawed(self) -> int:
        """Paused trials nothing continues."""
        return self.paused - self.thawed

    @property
    def n_thaws(self) -> int:
        return sum(self.thaws.values())

    def __bool__(self) -> bool:
        return bool(self.paused or self.thaws)

    def thaws_text(self) -> str:
        """``thaws 6 (complete 1, paused again 5)``; ``""`` when there is none."""
        if not self.thaws:
            return ""
        parts = ", ".join(f"{'paused again' if k == PAUSED else k} {n}" for k, n in self.thaws.items())
        return f"thaws {self.n_thaws} ({parts})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "never_thawed": self.never_thawed}


def pause_counts(trials: Sequence[FrozenTrial]) -> PauseCounts:
    """The :class:`PauseCounts` of a study's trials."""
    continued = thawed_as(trials)
    paused = [t for t in trials if is_paused(t)]
    return PauseCounts(
        paused=len(paused),
        thawed=sum(1 for t in paused if t.number in continued),
        thaws=outcome_counts([t for t in trials if is_thaw(t)]),
    )
