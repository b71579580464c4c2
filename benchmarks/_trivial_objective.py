"""An objective that does no work, for timing the sweep engine itself (``overhead.py --trivial``).

It reports four intermediate values and returns the fifth over a one-knob space, so a sweep of
it costs only the engine: Ray start, actor scheduling, result round trips and the driver's
study writes. Loaded by file path (``TRIVIAL_SPEC``), also on Ray workers: it imports nothing
from ``benchmarks``.

Example:
    >>> trivial_space().name
    'overhead'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradsweep.spaces.space import SearchSpace, parse_space
from gradsweep.spaces.trial_config import TrialConfig

TRIVIAL_SPEC = f"{Path(__file__).resolve()}:trivial"
TRIVIAL_SPACE: dict[str, Any] = {
    "name": "overhead",
    "objective": TRIVIAL_SPEC,
    "metric": {"name": "value", "direction": "maximize"},
    "towers": [
        {"name": "all", "patterns": ["*"], "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}}
    ],
    "stages": [{"name": "train", "steps": 4}],
}


def trivial(config: TrialConfig, ctx: Any) -> float:
    """Report four intermediate values, then return the final one (no training)."""
    value = -abs(config.towers[0].lr - 0.01)
    for step in range(4):
        ctx.report(value, step)
    return value


def trivial_space() -> SearchSpace:
    """The one-knob space :func:`trivial` is swept over."""
    return parse_space(TRIVIAL_SPACE)
