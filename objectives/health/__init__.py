"""Gradient health on the training side: a cheap per-step monitor, pure statistics, rules, verdicts.

Torch-only and below the objectives that call it; nothing here imports :mod:`gradsweep.search`
(the pruner reads the reports back from the study through :mod:`gradsweep.search.health_attrs`).
One idea per module:

- :mod:`~gradsweep.objectives.health.stats`: pure helpers (norm aggregation, decay-to-grad ratio, spikes, stalls)
- :mod:`~gradsweep.objectives.health.decay`: AdamW decay vs gradient-driven step sizes per tower
- :mod:`~gradsweep.objectives.health.summary`: host-side summary of one check window
- :mod:`~gradsweep.objectives.health.rules`: rules turning summaries into verdicts with reasons (hard and soft)
- :mod:`~gradsweep.objectives.health.judge`: ``Judge``, the state that spans windows (baselines, history), for the monitor and offline replay
- :mod:`~gradsweep.objectives.health.recording`: ``capture()`` of raw check summaries, for offline replay
- :mod:`~gradsweep.objectives.health.verdict`: ``Verdict``, ``HealthReport``
- :mod:`~gradsweep.objectives.health.monitor`: ``HealthMonitor``
- :mod:`~gradsweep.objectives.health.loss_mean`: ``LossMean``, a step's mean loss over its micro-batches
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradsweep.objectives.health.monitor import HealthMonitor
    from gradsweep.objectives.health.rules import RuleContext, RuleResult, evaluate
    from gradsweep.objectives.health.verdict import HealthReport, Verdict, worst

# Loaded on first use (PEP 562): the monitor imports torch (~1.5 s), and the CLI's study commands
# and the driver's pruner need only the verdicts.
_EXPORTS = {
    "HealthMonitor": "monitor", "RuleContext": "rules", "RuleResult": "rules", "evaluate": "rules",
    "HealthReport": "verdict", "Verdict": "verdict", "worst": "verdict",
}  # fmt: skip
__all__ = ["HealthMonitor", "HealthReport", "RuleContext", "RuleResult", "Verdict", "evaluate", "worst"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
