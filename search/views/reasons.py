"""Group prune reasons by the rule (and tower) they come from.

Reasons are human lines with numbers in them, e.g.
``text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 400-500)``. A group is one rule:
:func:`reason_rule` names it (a health rule's name from objectives/health/rules.py, such as
``vanishing``, or the base pruner's class, such as ``CatchUpPruner``), and :func:`reason_key`
adds the tower for a health rule (the text before the first number, ``text_encoder grad norm``).
Each group keeps one real reason, numbers included, and the trial it came from.

Example:
    >>> reason_key("text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 400-500)")
    'text_encoder grad norm'
    >>> reason_rule("text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 400-500)")
    'vanishing'
    >>> reason_rule("loss 13.38 above its start 0.5063 for 2 checks (steps 24-49); head grad norm 23 > 3.7")
    'divergence'
    >>> reason_key("loss 13.38 above its start 0.5063 for 2 checks (steps 24-49); head grad norm 23 > 3.7")
    'loss # above its start # for # checks (steps #-#)'
    >>> reason_key("best 1.9 by step 2 - the largest later drop ... (lower is better) (CatchUpPruner)")
    'CatchUpPruner'
    >>> reason_rule("paused: predicted final 0.12 +- 0.11 at step 36 (own-curve fit); chance to beat ...")
    'FreezeThawPruner'
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from gradsweep.search import attrs as _keys
from gradsweep.search.views.trials import first_line

# A number token: 3, 3.1, 3.1e-07, -2, +inf, nan, inf, and a multiple such as 100x or 0.0001x
# (not part of a word such as "l2" or "fp16").
_NUMBER = re.compile(
    r"(?<![\w.])[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|nan|inf)x?(?![\w.])", re.IGNORECASE
)
# Words and symbols that only glue the rule name to its first number.
_TRAILING = re.compile(r"(?:\s+|[:=<>(,]|\b(?:at|step|steps|of|for|is|was|below|above|over|under|best)\b)+$")
# The base pruner a HealthPruner reason names: "... (CatchUpPruner)" or "... pruned by HyperbandPruner".
_PRUNER = re.compile(r"(?:\((\w+Pruner)\)|pruned by (\w+))\s*$")
_NUM = r"\S+"
# The freeze-thaw scheduler's line (gradsweep.search.freeze_thaw.Judgement.reason), "paused: " first
# when it paused the trial; kind ``paused``, or ``underperforming`` when no checkpoint could be kept.
_FREEZE_THAW = re.compile(rf"^(?:paused: )?predicted final {_NUM} \+- ")
FREEZE_THAW_RULE = "FreezeThawPruner"
# The health rules' lines (objectives/health/rules.py), first match wins; the name is the rule's.
_HEALTH_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("nonfinite", re.compile(r"^non-finite (?:loss|gradients)\b")),
    ("divergence", re.compile(rf"^loss {_NUM} above its start\b")),
    ("loss_regress", re.compile(rf"^loss {_NUM} gave back\b")),
    ("dead", re.compile(r"^no gradient reaches the model\b")),
    ("population", re.compile(r"\bthe largest of \d+ finished healthy trials\b")),
    ("exploding", re.compile(rf"\bgrad norm {_NUM} > ")),
    ("vanishing", re.compile(rf"\bgrad norm {_NUM} < ")),
    ("decay_dominance", re.compile(r"\bdecay-to-grad ratio\b")),
    ("scaler_overflow", re.compile(r"^GradScaler (?:skipped|scale)\b")),
    ("loss_spike", re.compile(r"^loss spike\b")),
    ("loss_stall", re.compile(r"^loss stalled\b")),
)


def reason_rule(reason: str | None) -> str:
    """The stable name of the rule a prune reason comes from.

    Args:
        reason: a reason line (None or empty gives ``"(no reason)"``).

    Returns:
        A health rule's name (``nonfinite``, ``divergence``, ``loss_regress``, ``dead``,
        ``exploding``, ``vanishing``, ``decay_dominance``, ``scaler_overflow``, ``loss_spike``,
        ``loss_stall``) of the line's first finding, the base pruner's class name
        (``CatchUpPruner``, ``MedianPruner``, ...), or else :func:`reason_key` of the line.
    """
    line = first_line(reason)
    if not line:
        return "(no reason)"
    pruner = _pruner_name(line)
    if pruner:
        return pruner
    line = first_finding(line)
    for name, pattern in _HEALTH_RULES:
        if pattern.search(line):
            return name
    return reason_key(line)


def first_finding(line: str) -> str:
    """The first of the findings a health prune joins with ``"; "`` (the one that pruned: the
    monitor puts the most severe first, hard rules before soft ones)."""
    return line.split("; ", 1)[0]


def _pruner_name(line: str) -> str | None:
    """The base pruner a reason line names at its end (``(CatchUpPruner)``, ``pruned by X``), or
    ``FreezeThawPruner`` for the freeze-thaw scheduler's pause line."""
    match = _PRUNER.search(line)
    if match:
        return match.group(1) or match.group(2)
    return FREEZE_THAW_RULE if _FREEZE_THAW.search(line) else None


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
    pruner = _pruner_name(line)
    if pruner:  # a base pruner's comparison: its numbers and wording vary, the pruner is the rule
        return pruner
    line = first_finding(line)
    match = _NUMBER.search(line)
    head = line[: match.start()] if match else line
    head = _TRAILING.sub("", head).strip()
    if len(head.split()) >= 2:
        return head
    # One word before the first number in a line that names no pruner says too little: keep
    # the whole line with its numbers masked, so lines that differ only in numbers share a key.
    return _NUMBER.sub("#", line)


@dataclass(frozen=True)
class PruneGroup:
    """Pruned trials sharing a kind, a rule and a reason key.

    Attributes:
        kind: ``unstable``, ``underperforming``, ``paused`` (freeze-thaw) or ``unknown``.
        key: the reason key (see :func:`reason_key`): the rule with its tower, e.g.
            ``text_encoder grad norm``, or the base pruner's name.
        count: how many trials.
        trials: their numbers, ascending.
        example: the full first line of one real reason, numbers included (the first trial's).
        rule: the rule's stable name (see :func:`reason_rule`).
        example_trial: the trial ``example`` comes from.
    """

    kind: str
    key: str
    count: int
    trials: list[int]
    example: str
    rule: str = ""
    example_trial: int | None = None

    @property
    def rule_label(self) -> str:
        """The rule, with its tower when the key names one: ``vanishing (text_encoder grad norm)``."""
        return self.rule if self.key in (self.rule, "") else f"{self.rule} ({self.key})"

    @property
    def example_label(self) -> str:
        """The example with its trial: ``#4: text_encoder grad norm 3.1e-07 < 1e-06 ...``."""
        return self.example if self.example_trial is None else f"#{self.example_trial}: {self.example}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def group_prunes(trials: list[FrozenTrial]) -> list[PruneGroup]:
    """Group the PRUNED trials by (kind, rule, reason key), largest group first.

    Args:
        trials: the study's trials (non-pruned ones are ignored).

    Returns:
        The groups, sorted by kind, then count (descending), then key.
    """
    buckets: dict[tuple[str, str, str], list[FrozenTrial]] = defaultdict(list)
    for trial in trials:
        if trial.state != TrialState.PRUNED:
            continue
        kind = str(trial.user_attrs.get(_keys.PRUNE_KIND) or "unknown")
        reason = trial.user_attrs.get(_keys.PRUNE_REASON)
        buckets[(kind, reason_rule(reason), reason_key(reason))].append(trial)
    groups = []
    for (kind, rule, key), members in buckets.items():
        members.sort(key=lambda t: t.number)
        first = members[0]
        example = first_line(first.user_attrs.get(_keys.PRUNE_REASON)) or "(no reason recorded)"
        numbers = [t.number for t in members]
        groups.append(PruneGroup(kind, key, len(members), numbers, example, rule, first.number))
    groups.sort(key=lambda g: (g.kind, -g.count, g.key))
    return groups
