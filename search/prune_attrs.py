"""The prune user attrs of an Optuna trial (docs/ARCHITECTURE.md, Contract 4), and their one writer.

A pruned trial carries ``gradsweep.prune.kind`` (``unstable`` | ``underperforming``),
``gradsweep.prune.reason`` (one human line) and ``gradsweep.prune.step``. Three places prune a
trial and all store it through :func:`write_prune_attrs`: the health pruner inside a plain
``study.optimize`` (:meth:`gradsweep.search.pruner.HealthPruner.prune`), the Ray-free sweep when
the objective raised ``TrialPruned`` itself (:mod:`gradsweep.search.engine.local`), and the Ray
driver when it tells a stopped trial (:class:`gradsweep.search.engine.ray.bridge.StudyBridge`).

Example:
    >>> import optuna
    >>> study = optuna.create_study()
    >>> trial = study.ask()
    >>> write_prune_attrs(study._storage, trial._trial_id, PruneRecord("unstable", "loss is nan", 12))
    >>> study.trials[0].user_attrs["gradsweep.prune.kind"], study.trials[0].user_attrs["gradsweep.prune.step"]
    ('unstable', 12)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optuna.storages import BaseStorage

from gradsweep.objectives.pruned import PruneKind
from gradsweep.search.attrs import PRUNE_KIND, PRUNE_REASON, PRUNE_STEP


@dataclass(frozen=True)
class PruneRecord:
    """Why and where a trial was pruned, as stored.

    Attributes:
        kind: :class:`PruneKind` or its value (stored as the value).
        reason: one human line.
        step: the step of the prune.
    """

    kind: PruneKind | str
    reason: str
    step: int

    def attrs(self) -> dict[str, Any]:
        """The three user attrs, JSON-able: ``{"gradsweep.prune.kind": ..., ".reason": ..., ".step": ...}``."""
        kind = self.kind.value if isinstance(self.kind, PruneKind) else str(self.kind)
        return {PRUNE_KIND: kind, PRUNE_REASON: self.reason, PRUNE_STEP: int(self.step)}


def write_prune_attrs(storage: BaseStorage, trial_id: int, record: PruneRecord) -> None:
    """Store ``record`` on the trial (kind, then reason, then step).

    Args:
        storage: the study's storage (``study._storage`` or ``trial.storage``).
        trial_id: the trial's storage id (``trial._trial_id``).
        record: the prune.
    """
    for key, value in record.attrs().items():
        storage.set_trial_user_attr(trial_id, key, value)
