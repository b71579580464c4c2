"""Gradient health: a cheap per-step monitor, pure statistics, rules and verdicts.

Re-exports the public API; one idea per module:

- :mod:`~search.health.stats`: pure helpers (norm aggregation, decay-to-grad ratio, spikes, stalls)
- :mod:`~search.health.decay`: AdamW decay vs gradient-driven step sizes per tower
- :mod:`~search.health.summary`: host-side summary of one check window
- :mod:`~search.health.rules`: rules turning summaries into verdicts with reasons
- :mod:`~search.health.verdict`: ``Verdict``, ``PruneKind``, ``HealthReport``
- :mod:`~search.health.monitor`: ``HealthMonitor``
- :mod:`~search.health.attrs`: the health user attrs of a trial (Contract 4)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.health.attrs import (
        HEALTH_HISTORY,
        HEALTH_LATEST,
        read_health,
        record_health,
        write_health_attrs,
    )
    from search.health.monitor import HealthMonitor
    from search.health.rules import RuleContext, RuleResult, evaluate
    from search.health.verdict import HealthReport, PruneKind, Verdict, worst

# Loaded on first use (PEP 562): the monitor imports torch (~1.5 s), and the CLI's study commands
# and the driver's pruner need only the attrs and verdicts.
_EXPORTS = {
    "HEALTH_HISTORY": "attrs", "HEALTH_LATEST": "attrs", "read_health": "attrs", "record_health": "attrs",
    "write_health_attrs": "attrs", "HealthMonitor": "monitor", "RuleContext": "rules", "RuleResult": "rules",
    "evaluate": "rules", "HealthReport": "verdict", "PruneKind": "verdict", "Verdict": "verdict", "worst": "verdict",
}  # fmt: skip
__all__ = [
    "HEALTH_HISTORY",
    "HEALTH_LATEST",
    "HealthMonitor",
    "HealthReport",
    "PruneKind",
    "RuleContext",
    "RuleResult",
    "Verdict",
    "evaluate",
    "read_health",
    "record_health",
    "worst",
    "write_health_attrs",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'search.health' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"search.health.{module}"), name)
    globals()[name] = value
    return value
