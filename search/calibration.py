"""When may a soft health rule prune? When the sweep's own finished trials say its flags are right.

Hard rules (non-finite values, a GradScaler storm, a loss worse than the untrained model's) prune
at once. A soft rule (explosion, vanishing, decay dominance, spikes, regressions, stalls) only
*flags* a trial (``gradsweep.health.flags``) until the sweep has evidence that trials it flags end
badly. The evidence for rule ``R``: among the study's COMPLETE trials that ``R`` flagged (``n``),
how many finished in the top quartile of all complete trials (``m``). ``R`` may prune when

    (m + 1) / (n + 1) <= alpha        (``HealthConfig.false_prune_rate``, default 0.1)

**The guarantee.** If the trials ``R`` flags are exchangeable (the flagged trial now and the
``n`` flagged trials that finished are draws from the same distribution), the probability that a
trial pruned by ``R`` would have finished in the top quartile is at most ``alpha``: with
``n + 1`` exchangeable flagged trials holding ``S`` top-quartile ones, the new one is among them
with probability ``S / (n + 1)``, and pruning requires ``S - 1 <= m`` with
``(m + 1) / (n + 1) <= alpha`` (the split-conformal argument). With ``alpha = 0.1`` that needs at
least 9 finished flagged trials and none in the top quartile. What it does not cover: an adaptive
sampler (TPE) makes later trials unlike earlier ones, so exchangeability is an approximation; the
top quartile is judged against the complete trials so far, not the final population; trials that
were pruned (by the base pruner or a hard rule) are not evidence, since their end is unknown.

Example:
    >>> ev = Evidence("exploding", flagged=9, top=0)
    >>> ev.bound, ev.allows(0.1)
    (0.1, True)
    >>> Evidence("exploding", flagged=3, top=0).allows(0.1)
    False
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from gradsweep.search.health_attrs import read_flags

__all__ = ["TOP_QUANTILE", "Evidence", "count_evidence", "evidence"]

#: The share of the best complete trials a soft rule must not prune (the top quartile).
TOP_QUANTILE = 0.25


@dataclass(frozen=True)
class Evidence:
    """What the finished trials say about one soft rule.

    Attributes:
        rule: the rule's name.
        flagged: complete trials the rule flagged (``n``).
        top: of those, how many finished in the top quartile (``m``).
    """

    rule: str
    flagged: int
    top: int

    @property
    def bound(self) -> float:
        """``(m + 1) / (n + 1)``: the bound on a pruned flagged trial being a top-quartile one."""
        return (self.top + 1) / (self.flagged + 1)

    def allows(self, alpha: float) -> bool:
        """Whether the bound is within ``alpha``."""
        return self.bound <= alpha + 1e-12

    def describe(self) -> str:
        """One line, e.g. ``exploding flagged 9 finished trials, 0 in the top quartile (bound 0.1)``."""
        return (
            f"{self.rule} flagged {self.flagged} finished trial{'s' if self.flagged != 1 else ''}, "
            f"{self.top} in the top quartile (bound {self.bound:.2g})"
        )


def count_evidence(rule: str, finished: Sequence[tuple[float, Collection[str]]], maximize: bool) -> Evidence:
    """:func:`evidence` over plain data: each finished trial's final value and the rules that flagged it.

    Args:
        rule: a soft rule's name.
        finished: ``(final value, flagging rules)`` of each finished trial (non-finite values are skipped).
        maximize: whether larger values are better.
    """
    done = [(v, rules) for v, rules in finished if math.isfinite(v)]
    if not done:
        return Evidence(rule, 0, 0)
    values = np.asarray([v for v, _ in done], dtype=float)
    line = float(np.quantile(values, 1.0 - TOP_QUANTILE if maximize else TOP_QUANTILE))
    flagged = [v for v, rules in done if rule in rules]
    top = sum(1 for v in flagged if (v >= line if maximize else v <= line))
    return Evidence(rule, len(flagged), top)


def evidence(trials: Sequence[FrozenTrial], rule: str, direction: StudyDirection) -> Evidence:
    """Count the complete trials ``rule`` flagged and those of them in the top quartile.

    Args:
        trials: the study's trials (any states; only COMPLETE ones with a finite value count).
        rule: a soft rule's name.
        direction: the study's direction.

    Returns:
        The :class:`Evidence` (``flagged = 0`` when no complete trial has a finite value).
    """
    finished = [
        (float(t.value), read_flags(t))
        for t in trials
        if t.state == TrialState.COMPLETE and t.value is not None
    ]
    return count_evidence(rule, finished, direction == StudyDirection.MAXIMIZE)
