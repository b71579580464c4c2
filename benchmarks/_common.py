"""Step accounting shared by the benchmarks: what a trial reported, and what a run spent.

Every method's trials end up as :class:`TrialRecord` lists in completion order (all methods run
one trial at a time, so completion order is the order the budget was spent in). The budget is
the sum of optimizer steps consumed by all trials; a trial consumed the step of its last report
(pruning happens at a report). The pure helpers below turn records into the figures of
``search_efficiency.py``; tests call them directly.

A trial "went unstable" when any health report it delivered says UNSTABLE or counted a
non-finite loss or gradient, or when it reported a non-finite value. Its onset is the step of
the first such health check (the monitor sees a problem at most ``health.check_every - 1``
steps after it starts).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gradsweep.objectives.api import Reporter

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Report:
    """One ``ctx.report``: the value, the step, and the health report as a dict (or None)."""

    step: int
    value: float
    health: dict[str, Any] | None = None


def health_is_unstable(health: dict[str, Any] | None) -> bool:
    """Whether a health report (``HealthReport.to_dict()`` form) shows instability.

    True for an UNSTABLE verdict or any non-finite loss/gradient step in its window.
    """
    if not health:
        return False
    if str(health.get("verdict", "")).lower() == "unstable":
        return True
    metrics = health.get("metrics") or {}
    for key in ("health/nonfinite_steps", "health/nonfinite_loss_steps"):
        value = metrics.get(key)
        if value is not None and (not math.isfinite(float(value)) or float(value) > 0):
            return True
    return False


@dataclass
class TrialRecord:
    """What one trial reported, in order, and how it ended.

    Attributes:
        params: the sampled parameters (Optuna names), for re-running the config.
        reports: every report in step order.
        pruned: stopped early by the method's pruner or scheduler.
        final_value: the value of a trial that trained to the end (None when pruned or failed).
        kind: why it was pruned (``unstable`` / ``underperforming`` / ``paused``) when the method says.
        start_step: steps of this trial already counted in an earlier record (a thawed trial
            goes on from its pause; 0 for a trial that started from scratch).
        paused: the method paused the trial (stopped it with its checkpoint kept); ``pruned``
            is then True as well, since the record ends without a final value.
        thawed: a later record continues this paused trial (the method thawed it).
        thaw_of: for a continuation, the index (in the run's records) of the paused record it continues.
    """

    params: dict[str, Any]
    reports: list[Report] = field(default_factory=list)
    pruned: bool = False
    final_value: float | None = None
    kind: str | None = None
    start_step: int = 0
    paused: bool = False
    thawed: bool = False
    thaw_of: int | None = None

    @property
    def steps(self) -> int:
        """Optimizer steps this record consumed: the step of its last report less ``start_step``."""
        return max(max((r.step for r in self.reports), default=0) - self.start_step, 0)

    @property
    def onset(self) -> int | None:
        """Step at which instability was first seen, or None for a stable trial."""
        for r in self.reports:
            if health_is_unstable(r.health):
                return int(r.health.get("step", r.step)) if r.health else r.step
            if not math.isfinite(r.value):
                return r.step
        return None

    @property
    def unstable(self) -> bool:
        return self.onset is not None


def record_from_dict(data: dict[str, Any]) -> TrialRecord:
    """Inverse of ``dataclasses.asdict`` on a :class:`TrialRecord` (for records saved as JSON)."""
    reports = [Report(int(r["step"]), float(r["value"]), r.get("health")) for r in data.get("reports", [])]
    final = data.get("final_value")
    thaw_of = data.get("thaw_of")
    return TrialRecord(params=dict(data.get("params", {})), reports=reports, pruned=bool(data.get("pruned")),
                       final_value=None if final is None else float(final), kind=data.get("kind"),
                       start_step=int(data.get("start_step", 0)), paused=bool(data.get("paused")),
                       thawed=bool(data.get("thawed")), thaw_of=None if thaw_of is None else int(thaw_of))  # fmt: skip


class CountingReporter:
    """Wraps any :class:`gradsweep.objectives.api.Reporter`: records every report, then forwards it.

    The record is written before the inner reporter runs, so a report that prunes (raises
    :class:`gradsweep.objectives.api.TrialPruned`) is counted too.

    Args:
        inner: the reporter to forward to (None records only).
        declare_total: forward ``declare_total_steps`` (off: the pruner never learns which report is final).
    """

    def __init__(self, inner: Reporter | None = None, *, declare_total: bool = True) -> None:
        self.inner = inner
        self.declare_total = declare_total
        self.reports: list[Report] = []

    def report(self, value: float, step: int, health: Any | None) -> None:
        as_dict = health.to_dict(with_reasons=False) if health is not None else None
        self.reports.append(Report(int(step), float(value), as_dict))
        if self.inner is not None:
            self.inner.report(value, step, health)

    def declare_total_steps(self, total: int) -> None:
        """Forwarded to the inner reporter, unless ``declare_total`` is off (the final-report guard's ablation)."""
        if self.declare_total and self.inner is not None:
            self.inner.declare_total_steps(total)

    @property
    def steps(self) -> int:
        return max((r.step for r in self.reports), default=0)


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)} but got {direction!r}")


def _better(a: float, b: float | None, direction: str) -> bool:
    return b is None or (a > b if direction == "maximize" else a < b)


def anytime_curve(records: Sequence[TrialRecord], budget: int, direction: str) -> list[tuple[int, float]]:
    """Best final value so far against cumulative steps, counting only trials done within ``budget``.

    Returns:
        ``[(cumulative steps when the best improved, new best), ...]``.

    Raises:
        ValueError: on an unknown ``direction`` or a negative ``budget``.
    """
    _check_direction(direction)
    if budget < 0:
        raise ValueError(f"budget must be >= 0 but got {budget}")
    spent, best, curve = 0, None, []
    for rec in records:
        spent += rec.steps
        if spent > budget:
            break
        if (
            rec.final_value is not None
            and math.isfinite(rec.final_value)
            and _better(rec.final_value, best, direction)
        ):
            best = rec.final_value
            curve.append((spent, best))
    return curve


def best_at_budget(records: Sequence[TrialRecord], budget: int, direction: str) -> float | None:
    """The best final value of the trials finished within ``budget`` (None if none finished)."""
    curve = anytime_curve(records, budget, direction)
    return curve[-1][1] if curve else None


def steps_to_target(records: Sequence[TrialRecord], target: float, budget: int, direction: str) -> float:
    """Cumulative steps at which the best final value first reaches ``target`` (``inf`` if never)."""
    for spent, best in anytime_curve(records, budget, direction):
        if best >= target if direction == "maximize" else best <= target:
            return float(spent)
    return math.inf


def spent_within(records: Sequence[TrialRecord], budget: int) -> list[tuple[TrialRecord, int]]:
    """Each trial with the steps it consumed inside ``budget`` (the last one may be cut)."""
    out, spent = [], 0
    for rec in records:
        if spent >= budget:
            break
        used = min(rec.steps, budget - spent)
        out.append((rec, used))
        spent += used
    return out


def unstable_share(records: Sequence[TrialRecord], budget: int) -> float:
    """Share of the steps spent within ``budget`` that went to trials that went unstable."""
    spent = spent_within(records, budget)
    total = sum(used for _, used in spent)
    return sum(used for rec, used in spent if rec.unstable) / total if total else 0.0


def steps_after_onset(records: Iterable[TrialRecord]) -> list[int]:
    """For each unstable trial: steps from the onset of instability to its last step (prune or end)."""
    return [rec.steps - rec.onset for rec in records if rec.onset is not None]


def top_quartile_threshold(values: Sequence[float], direction: str) -> float:
    """The value a trial must reach to be in the top quartile of ``values``.

    Raises:
        ValueError: on no values or an unknown ``direction``.
    """
    _check_direction(direction)
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        raise ValueError("top_quartile_threshold needs at least one finite value")
    if len(finite) == 1:
        return finite[0]
    q = statistics.quantiles(finite, n=4, method="inclusive")
    return q[2] if direction == "maximize" else q[0]


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite ``values`` (nan, nan for none)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), (statistics.stdev(finite) if len(finite) > 1 else 0.0)


def median_or_inf(values: Sequence[float]) -> float:
    """Median that treats ``inf`` (target never reached) as larger than any finite value."""
    if not values:
        return math.inf
    return float(statistics.median(sorted(values)))


def ratio(a: float, b: float) -> float:
    """``a / b`` with ``inf`` for an unreached numerator and ``nan`` for an unreached denominator."""
    if math.isinf(b) or b == 0:
        return math.nan
    return math.inf if math.isinf(a) else a / b


def ratio_note(
    ours: float, others: float, who: str = "gradsweep", rivals: str = "other method"
) -> str | None:
    """One line explaining a headline ratio that is not a number (``inf`` or ``nan``), else ``None``.

    ``ours`` and ``others`` are steps to the target (``inf`` = never reached), ``others`` the best
    of the rival methods (``nan`` = none ran).

    Example:
        >>> ratio_note(1596.0, math.inf)
        'note: no other method reached the target within the budget, so the ratio to the best of them is nan'
        >>> ratio_note(1596.0, 3264.0) is None
        True
    """
    if math.isinf(ours) and math.isinf(others):
        return f"note: neither {who} nor any {rivals} reached the target within the budget"
    if math.isinf(ours):
        return f"note: {who} did not reach the target within the budget (ratio inf)"
    if math.isinf(others):
        return (
            f"note: no {rivals} reached the target within the budget, so the ratio to the best of them is nan"
        )
    return None
