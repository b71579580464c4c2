"""Why and how a trial stops early: :class:`PruneKind` and the :class:`TrialPruned` signal.

Torch-free, so the driver's pruner and the CLI's study commands can name a prune kind without
importing the training side.

Example:
    >>> exc = TrialPruned("unstable", "non-finite loss at step 12")
    >>> exc.kind is PruneKind.UNSTABLE, exc.reason
    (True, 'non-finite loss at step 12')
"""

from __future__ import annotations

from enum import StrEnum

import optuna


class PruneKind(StrEnum):
    """Why a trial was pruned: its health rules, or its metric against other trials."""

    UNSTABLE = "unstable"
    UNDERPERFORMING = "underperforming"
    #: stopped with its checkpoint kept; the freeze-thaw scheduler may continue it (the sweep's
    #: call only: an objective raises ``unstable`` or ``underperforming``)
    PAUSED = "paused"


class TrialPruned(optuna.TrialPruned):
    """Stop signal raised by a reporter; carries why.

    Args:
        kind: :class:`PruneKind` or its value: ``"unstable"`` (health rules) or
            ``"underperforming"`` (the base pruner).
        reason: one human line, e.g. ``text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks``.

    Raises:
        ValueError: if ``kind`` is not one of ``unstable``, ``underperforming``.
    """

    def __init__(self, kind: PruneKind | str, reason: str) -> None:
        try:
            prune_kind = PruneKind(str(kind))
        except ValueError:
            prune_kind = PruneKind.PAUSED
        if prune_kind is PruneKind.PAUSED:
            allowed = ", ".join(k.value for k in (PruneKind.UNSTABLE, PruneKind.UNDERPERFORMING))
            raise ValueError(f"kind must be one of {allowed} but got {str(kind)!r}")
        super().__init__(f"{prune_kind}: {reason}")
        self.kind = prune_kind
        self.reason = reason
