"""Where an objective's intermediate values and health reports go: the :class:`Reporter` protocol.

Reporters decide nothing about health themselves; a pruner does (on the study's side). The
engine's reporters (``gradsweep.search.engine.optuna_reporter.OptunaReporter`` for a plain
``study.optimize``, ``gradsweep.search.engine.ray.trainable.RayReporter`` inside a Ray Tune trial)
implement the same protocol; :class:`NullReporter` records and never prunes (``gradsweep try``).

Example:
    >>> reporter = NullReporter()
    >>> isinstance(reporter, Reporter)
    True
    >>> reporter.declare_total_steps(100)
    >>> reporter.report(0.5, 10, None)
    >>> reporter.history[0].value, reporter.total_steps
    (0.5, 100)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gradsweep.objectives.health.verdict import HealthReport


@runtime_checkable
class Reporter(Protocol):
    """Where an objective's intermediate values and health reports go.

    ``declare_total_steps`` is called once, before the first report, with the step count of the
    trial (:meth:`gradsweep.objectives.context.TrialContext.declare_total_steps`), so the pruner can
    leave the final report alone. ``report`` may raise
    :class:`gradsweep.objectives.pruned.TrialPruned` to stop the trial.
    """

    def declare_total_steps(self, total: int) -> None:
        """Remember ``total``: a report at step ``total - 1`` or later is the trial's final one."""
        ...

    def report(self, value: float, step: int, health: HealthReport | None) -> None:
        """Record ``value`` at ``step`` with the latest health report; may raise ``TrialPruned``."""
        ...


@dataclass(frozen=True)
class Reported:
    """One :meth:`NullReporter.report` call as recorded."""

    value: float
    step: int
    health: HealthReport | None


class NullReporter:
    """Records every report and never prunes (used by ``gradsweep try``).

    An UNSTABLE health verdict is recorded like any other; stopping is a pruner's decision,
    and there is none here.
    """

    def __init__(self) -> None:
        self.history: list[Reported] = []
        self.total_steps: int | None = None

    def report(self, value: float, step: int, health: HealthReport | None) -> None:
        self.history.append(Reported(float(value), int(step), health))

    def declare_total_steps(self, total: int) -> None:
        self.total_steps = int(total)

    @property
    def health_reports(self) -> list[HealthReport]:
        """The non-empty health reports, in order."""
        return [r.health for r in self.history if r.health is not None]
