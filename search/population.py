"""The sweep's own yardstick: a tower's gradient norm against the finished healthy trials at the same step.

The monitor's rules judge a run against its own first steps; this one judges it against its
peers, which only the sweep can see. Its reference: for every health report step, each tower's
``grad_norm_pre`` in the COMPLETE trials that no rule ever flagged (``gradsweep.health.flags``
empty). A trial is flagged ``population`` when, at each of its last ``sustain`` reports, a tower's
norm sits over ``factor`` x the largest reference value at that step, with at least
``min_trials`` references there. It is a soft rule: the flag prunes only as ``soft_prune`` allows
(:mod:`gradsweep.search.calibration`), so a sweep with few finished trials only records it.

Reports line up across trials when their checks do (the same ``check_every`` and reporting
steps, as in one sweep of one space); a step no finished trial reported at is not judged.

Example:
    >>> ref = {24: {"enc": [1.0, 2.0, 1.5, 1.2, 0.9]}, 49: {"enc": [0.8, 1.1, 1.0, 0.9, 1.2]}}
    >>> finding = population_finding([(24, {"enc": 40.0}), (49, {"enc": 30.0})], ref)
    >>> finding.reason()
    'enc grad norm 30 > 12 (10x the largest of 5 finished healthy trials at step 49) for 2 reports (steps 24-49)'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from gradsweep.search.health_attrs import read_flags, read_health
from gradsweep.spaces.health import PopulationRule

__all__ = [
    "PopulationFinding",
    "population_finding",
    "reference_norms",
    "tower_norms",
]

_PREFIX, _SUFFIX = "health/", "/grad_norm_pre"

Reference = Mapping[int, Mapping[str, Sequence[float]]]


@dataclass(frozen=True)
class PopulationFinding:
    """A tower over the population's line at each of the trial's last reports."""

    tower: str
    value: float
    line: float
    factor: float
    trials: int
    step: int
    first_step: int
    reports: int

    def reason(self) -> str:
        """One human line, in the monitor's style."""
        span = (
            f"for {self.reports} reports (steps {self.first_step}-{self.step})"
            if self.reports > 1
            else f"at step {self.step}"
        )
        return (
            f"{self.tower} grad norm {self.value:.2g} > {self.line:.2g} ({self.factor:g}x the largest of "
            f"{self.trials} finished healthy trials at step {self.step}) {span}"
        )


def tower_norms(metrics: Mapping[str, float]) -> dict[str, float]:
    """``{tower: grad_norm_pre}`` from a health report's metrics."""
    out = {}
    for key, value in metrics.items():
        if key.startswith(_PREFIX) and key.endswith(_SUFFIX) and key.count("/") == 2:
            out[key[len(_PREFIX) : -len(_SUFFIX)]] = float(value)
    return out


def reference_norms(trials: Iterable[FrozenTrial]) -> dict[int, dict[str, list[float]]]:
    """Per report step and tower, the finite ``grad_norm_pre`` of the complete, never-flagged trials."""
    out: dict[int, dict[str, list[float]]] = {}
    for t in trials:
        if t.state != TrialState.COMPLETE or read_flags(t):
            continue
        _, history = read_health(t)
        for report in history:
            for tower, value in tower_norms(report.metrics).items():
                if math.isfinite(value):
                    out.setdefault(report.step, {}).setdefault(tower, []).append(value)
    return out


def population_finding(
    history: Sequence[tuple[int, Mapping[str, float]]],
    reference: Reference,
    rule: PopulationRule | None = None,
) -> PopulationFinding | None:
    """Whether a tower of the trial sits over the population's line at each of its last reports.

    Args:
        history: the trial's reports as ``(step, {tower: grad_norm_pre})``, oldest first.
        reference: :func:`reference_norms` (or the same shape built another way).
        rule: ``factor`` (the line is that times the largest reference value at the step),
            ``min_trials`` (references needed at a step to judge it) and ``sustain`` (reports in
            a row); the defaults of ``health.population`` when None.

    Returns:
        The finding for the tower furthest over its line, or None.
    """
    rule = rule if rule is not None else PopulationRule()
    factor, min_trials, sustain = rule.factor, rule.min_trials, rule.sustain
    if len(history) < sustain:
        return None
    recent = history[-sustain:]
    best: PopulationFinding | None = None
    for tower in recent[-1][1]:
        ratios = []
        for step, norms in recent:
            refs = reference.get(step, {}).get(tower, [])
            value = norms.get(tower, math.nan)
            if len(refs) < min_trials or not math.isfinite(value):
                break
            line = factor * max(refs)
            if not value > line:
                break
            ratios.append((value / line, value, line, len(refs), step))
        if len(ratios) < sustain:
            continue
        _, value, line, n, step = ratios[-1]
        finding = PopulationFinding(tower, value, line, factor, n, step, recent[0][0], sustain)
        if best is None or value / line > best.value / best.line:
            best = finding
    return best
