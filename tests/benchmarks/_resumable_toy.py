"""A resumable toy objective for the rival-method tests: no training, a checkpoint before each report.

It reports once per step for :data:`TOTAL` steps and, like the built-in objectives, saves its
progress before each report and resumes from the newest checkpoint, so a paused trial goes on
where it stopped. Loaded by file path (:data:`TOY_SPEC`), also on Ray workers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gradsweep.spaces.space import SearchSpace, parse_space
from gradsweep.spaces.trial_config import TrialConfig

TOTAL = 9
TOY_SPEC = f"{Path(__file__).resolve()}:toy"
TOY_SPACE: dict[str, Any] = {
    "name": "resumable_toy",
    "objective": TOY_SPEC,
    "metric": {"name": "value", "direction": "maximize"},
    "towers": [
        {"name": "all", "patterns": ["*"], "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}}
    ],
    "stages": [{"name": "train", "steps": TOTAL}],
}


def toy(config: TrialConfig, ctx: Any) -> float:
    """Value ``-|log10(lr) + 2| + step / 100`` at steps 1..TOTAL, resumed from the newest checkpoint."""
    state = ctx.load_checkpoint() or {"step": 0}
    value = math.nan
    for step in range(int(state["step"]) + 1, TOTAL + 1):
        value = -abs(math.log10(config.towers[0].lr) + 2) + step / 100
        ctx.save_checkpoint({"step": step})
        ctx.report(value, step)
    return value


def toy_space() -> SearchSpace:
    """The one-knob space :func:`toy` is swept over."""
    return parse_space(TOY_SPACE)
