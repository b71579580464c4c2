"""Reports to an ``optuna.Trial`` inside a plain ``study.optimize`` (the Ray-free path).

The study's pruner decides (``trial.should_prune()``, e.g. :class:`gradsweep.search.pruner.HealthPruner`)
after this reporter writes the health attrs of Contract 4. Its sibling for Ray Tune trials is
:class:`gradsweep.search.engine.ray.trainable.RayReporter`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna

from gradsweep.objectives.pruned import PruneKind, TrialPruned
from gradsweep.search.attrs import PRUNE_KIND, PRUNE_REASON, TOTAL_STEPS
from gradsweep.search.health_attrs import write_health_attrs

if TYPE_CHECKING:
    from gradsweep.objectives.health.verdict import HealthReport


class OptunaReporter:
    """Reports to an ``optuna.Trial`` inside a plain ``study.optimize``.

    Each call writes ``gradsweep.health.latest`` and the bounded ``gradsweep.health.history``
    user attrs, then ``trial.report(value, step)``, then asks ``trial.should_prune()``. When the
    study's pruner says prune, it raises :class:`TrialPruned` with the kind and reason the pruner
    stored (``gradsweep.prune.kind`` / ``gradsweep.prune.reason``); a pruner that stores none
    (e.g. a bare ``MedianPruner``) gives ``underperforming`` with a generic reason.

    Args:
        trial: the running trial.
        history_limit: how many health summaries ``gradsweep.health.history`` keeps.

    Raises:
        ValueError: if ``history_limit`` < 1.
    """

    def __init__(self, trial: optuna.Trial, *, history_limit: int = 50) -> None:
        if history_limit < 1:
            raise ValueError(f"history_limit must be at least 1 but got {history_limit}")
        self.trial = trial
        self.history_limit = history_limit
        self._last_health_step: int | None = None

    def declare_total_steps(self, total: int) -> None:
        """Store ``gradsweep.total_steps`` (the pruner leaves the report at that step alone)."""
        self.trial.set_user_attr(TOTAL_STEPS, int(total))

    def report(self, value: float, step: int, health: HealthReport | None) -> None:
        if health is not None and health.step != self._last_health_step:
            self._last_health_step = health.step
            write_health_attrs(self.trial, health, self.history_limit)
        self.trial.report(float(value), int(step))
        if self.trial.should_prune():
            # the pruner wrote its decision to storage, not to this Trial's cached copy
            attrs = self.trial.storage.get_trial_user_attrs(self.trial._trial_id)
            kind = attrs.get(PRUNE_KIND, PruneKind.UNDERPERFORMING)
            reason = attrs.get(
                PRUNE_REASON,
                f"{type(self.trial.study.pruner).__name__} pruned at step {step} (value {value:.4g})",
            )
            raise TrialPruned(kind, reason)
