"""Health verdicts, prune kinds, and the report the monitor hands out every k steps.

Example:
    >>> r = HealthReport(step=25, verdict=Verdict.WARNING, reasons=["x"], metrics={"health/loss": 1.0})
    >>> HealthReport.from_dict(r.to_dict()) == r
    True
    >>> worst([Verdict.HEALTHY, Verdict.UNSTABLE, Verdict.WARNING])
    <Verdict.UNSTABLE: 'unstable'>
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """How healthy a trial's training is, from best to worst."""

    HEALTHY = "healthy"
    WARNING = "warning"
    UNSTABLE = "unstable"

    @property
    def severity(self) -> int:
        """0 for healthy, 1 for warning, 2 for unstable."""
        return _SEVERITY[self]

    @classmethod
    def parse(cls, value: str) -> Verdict:
        """The verdict named ``value``.

        Raises:
            ValueError: naming the allowed values when ``value`` is not one.
        """
        try:
            return cls(str(value).lower())
        except ValueError:
            allowed = ", ".join(v.value for v in cls)
            raise ValueError(f"verdict must be one of {allowed} but got {value!r}") from None


#: Rules whose ``unstable`` prunes at once: non-finite values, a GradScaler storm, a loss worse
#: than the untrained model's, no gradient reaching any tower (``dead``, found by the vanishing rule). The others are soft: their ``unstable`` is a flag that prunes as
#: ``HealthConfig.soft_prune`` allows (``gradsweep.search.calibration``).
HARD_RULES = frozenset({"nonfinite", "scaler_overflow", "divergence", "dead"})

_SEVERITY = {Verdict.HEALTHY: 0, Verdict.WARNING: 1, Verdict.UNSTABLE: 2}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The most severe of ``verdicts`` (``HEALTHY`` for none)."""
    return max(verdicts, key=lambda v: v.severity, default=Verdict.HEALTHY)


@dataclass(frozen=True)
class HealthReport:
    """One health check: a verdict with human reasons and a flat dict of metrics.

    Attributes:
        step: the optimizer step of the check (the last step of its window).
        verdict: the worst verdict of all rules.
        reasons: one line per rule that did not find the trial healthy, worst first.
        unstable_rules: the rules that found the trial unstable (:data:`~gradsweep.objectives.health.rules.HARD_RULES`
            prune at once; the others are calibrated flags).
        metrics: namespaced keys (see :class:`gradsweep.objectives.health.monitor.HealthMonitor`) to floats;
            non-finite values are kept (they are the point of a health check).
    """

    step: int
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    unstable_rules: list[str] = field(default_factory=list)

    def to_dict(self, *, with_reasons: bool = True) -> dict[str, Any]:
        """JSON-able dict ``{"step", "verdict", "reasons", "metrics"}`` (Contract 4), plus
        ``"unstable_rules"`` when any rule found the trial unstable.

        Args:
            with_reasons: leave out ``reasons`` (history entries) when ``False``.
        """
        entry: dict[str, Any] = {
            "step": int(self.step),
            "verdict": str(self.verdict),
            "metrics": {k: float(v) for k, v in self.metrics.items()},
        }
        if with_reasons:
            entry["reasons"] = list(self.reasons)
        if self.unstable_rules:
            entry["unstable_rules"] = list(self.unstable_rules)
        return entry

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthReport:
        """Inverse of :meth:`to_dict`; ``reasons`` may be missing (history entries).

        Raises:
            ValueError: if ``step`` or ``verdict`` is missing or ``verdict`` is unknown.
        """
        for key in ("step", "verdict"):
            if key not in data:
                raise ValueError(f"health entry needs {key!r}; got keys {sorted(data)}")
        metrics = {str(k): _as_float(v) for k, v in dict(data.get("metrics") or {}).items()}
        return cls(
            step=int(data["step"]),
            verdict=Verdict.parse(data["verdict"]),
            reasons=[str(r) for r in data.get("reasons") or []],
            metrics=metrics,
            unstable_rules=[str(r) for r in data.get("unstable_rules") or []],
        )


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
