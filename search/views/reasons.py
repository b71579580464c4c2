"""Group prune reasons by the rule (and tower) they come from.

Reasons are human lines with numbers in them, e.g.
``text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 400-500)``. Two trials pruned
by the same rule on the same tower differ only in the numbers, so the group key is the text
before the first number (``text_encoder grad norm``); when that is a single word, the whole
line with its numbers masked (``value # at step # worse than median # of # trials (MedianPruner)``).

Example:
    >>> reason_key("text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 400-500)")
    'text_encoder grad norm'
    >>> reason_key("non-finite loss at step 312")
    'non-finite loss'
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from gradsweep.search import attrs as _keys
from gradsweep.search.views.trials import first_line

# A number token: 3, 3.1, 3.1e-07, -2, +inf, nan, inf (not part of a word such as "l2" or "fp16").
_NUMBER = re.compile(
    r"(?<![\w.])[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|nan|inf)(?![\w])", re.IGNORECASE
)
# Words and symbols that only glue the rule name to its first number.
_TRAILING = re.compile(r"(?:\s+|[:=<>(,]|\b(?:at|step|steps|of|for|is|was|below|above|over|under|best)\b)+$")


def reason_key(reason: str | None) -> str:
    """The group key of a prune reason: its text before the first number, glue words trimmed.

    Args:
        reason: a reason line (None or empty gives ``"(no reason)"``).

    Returns:
        The key; the whole first line when it holds no number.
    """
    line = first_line(reason)
    if not line:
        return "(no reason)"
    match = _NUMBER.search(line)
    head = line[: match.start()] if match else line
    head = _TRAILING.sub("", head).strip()
    if len(head.split()) >= 2:
        return head
    # One word before the first number ("value -3.4 at step 1 worse than median ...") says too
    # little: keep the whole line with its numbers masked, so one pruner's lines share a key.
    return _NUMBER.sub("#", line)


@dataclass(frozen=True)
class PruneGroup:
    """Pruned trials sharing a kind and a reason key.

    Attributes:
        kind: ``unstable``, ``underperforming`` or ``unknown``.
        key: the reason key (see :func:`reason_key`).
        count: how many trials.
        trials: their numbers, ascending.
        example: the full reason of the first of them.
    """

    kind: str
    key: str
    count: int
    trials: list[int]
    example: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def group_prunes(trials: list[FrozenTrial]) -> list[PruneGroup]:
    """Group the PRUNED trials by (kind, reason key), largest group first.

    Args:
        trials: the study's trials (non-pruned ones are ignored).

    Returns:
        The groups, sorted by kind, then count (descending), then key.
    """
    buckets: dict[tuple[str, str], list[FrozenTrial]] = defaultdict(list)
    for trial in trials:
        if trial.state != TrialState.PRUNED:
            continue
        kind = str(trial.user_attrs.get(_keys.PRUNE_KIND) or "unknown")
        buckets[(kind, reason_key(trial.user_attrs.get(_keys.PRUNE_REASON)))].append(trial)
    groups = []
    for (kind, key), members in buckets.items():
        members.sort(key=lambda t: t.number)
        example = first_line(members[0].user_attrs.get(_keys.PRUNE_REASON)) or "(no reason recorded)"
        groups.append(PruneGroup(kind, key, len(members), [t.number for t in members], example))
    groups.sort(key=lambda g: (g.kind, -g.count, g.key))
    return groups
