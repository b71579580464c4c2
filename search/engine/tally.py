"""Live counts of one sweep run, for the progress view and the end-of-run summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from gradsweep.search.attrs import PRUNE_KIND
from gradsweep.search.engine.outcome import INTERRUPTED, FinalState, Outcome
from gradsweep.search.thaw_attrs import PAUSED


@dataclass
class Tally:
    """Counts of one sweep run (this driver's trials only), for progress and the summary.

    Counts are per config: the thaw of a paused trial (``add(..., thaw_of=N)``) takes the place of
    its paused trial's count (``pruned["paused"]`` are the configs left paused), and ``thaws``
    counts the thaws by how they ended (``complete``, ``paused``, ``pruned``, ``failed``, ``interrupted``).
    """

    target: int
    direction: str
    started: float = field(default_factory=time.monotonic)
    running: int = 0
    complete: int = 0
    failed: int = 0
    pruned: Counter[str] = field(default_factory=Counter)
    best_value: float | None = None
    best_number: int | None = None
    first_failures: list[str] = field(default_factory=list)
    thaws: Counter[str] = field(default_factory=Counter)
    _paused: set[int] = field(default_factory=set, repr=False)  # the paused trials counted here

    @property
    def finished(self) -> int:
        return self.complete + self.failed + sum(self.pruned.values())

    def add(self, number: int, outcome: Outcome, *, thaw_of: int | None = None) -> None:
        """Count one finished trial (``thaw_of``: the paused trial it continues, for a thaw).

        A thaw replaces its paused trial's count when this tally counted that one; the thaw of a
        trial paused by an earlier run counts in ``thaws`` (and the best value) only.
        """
        value = outcome.value if outcome.state is FinalState.COMPLETE else None
        if value is not None:
            better = (
                self.best_value is None
                or (self.direction == "maximize" and value > self.best_value)
                or (self.direction == "minimize" and value < self.best_value)
            )
            if better:
                self.best_value, self.best_number = value, number
        kind = str(outcome.attrs.get(PRUNE_KIND, "underperforming"))
        if thaw_of is not None:
            word = _word(outcome, kind)
            self.thaws[word] += 1
            if thaw_of not in self._paused or word == INTERRUPTED:  # interrupted: its config stays paused
                return
            self._paused.discard(thaw_of)
            self.pruned[PAUSED] -= 1
            if not self.pruned[PAUSED]:
                del self.pruned[PAUSED]
        if value is not None:
            self.complete += 1
        elif outcome.state is FinalState.PRUNED:
            self.pruned[kind] += 1
            if kind == PAUSED:
                self._paused.add(number)
        else:
            self.failed += 1
            if len(self.first_failures) < 3:
                self.first_failures.append(
                    f"trial {number}: {outcome.reason.splitlines()[0] if outcome.reason else 'error'}"
                )

    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None before the first finished trial)."""
        if self.finished == 0:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed / self.finished * max(self.target - self.finished, 0)


def _word(outcome: Outcome, kind: str) -> str:
    """How a trial ended, as :func:`gradsweep.search.thaw_attrs.config_outcome` words it."""
    if outcome.state is FinalState.COMPLETE and outcome.value is not None:
        return "complete"
    if outcome.state is FinalState.PRUNED:
        return PAUSED if kind == PAUSED else "pruned"
    return INTERRUPTED if outcome.reason == INTERRUPTED else "failed"
