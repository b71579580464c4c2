"""Live counts of one sweep run, for the progress view and the end-of-run summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from gradsweep.search.attrs import PRUNE_KIND
from gradsweep.search.engine.outcome import FinalState, Outcome


@dataclass
class Tally:
    """Counts of one sweep run (this driver's trials only), for progress and the summary."""

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

    @property
    def finished(self) -> int:
        return self.complete + self.failed + sum(self.pruned.values())

    def add(self, number: int, outcome: Outcome) -> None:
        """Count one finished trial."""
        if outcome.state is FinalState.COMPLETE and outcome.value is not None:
            self.complete += 1
            better = (
                self.best_value is None
                or (self.direction == "maximize" and outcome.value > self.best_value)
                or (self.direction == "minimize" and outcome.value < self.best_value)
            )
            if better:
                self.best_value, self.best_number = outcome.value, number
        elif outcome.state is FinalState.PRUNED:
            self.pruned[str(outcome.attrs.get(PRUNE_KIND, "underperforming"))] += 1
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
