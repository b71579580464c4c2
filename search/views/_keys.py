"""Names of the Optuna user attrs gradsweep writes (docs/ARCHITECTURE.md, Contract 4)."""

from __future__ import annotations

# study attrs
SPACE = "gradsweep.space"
OBJECTIVE = "gradsweep.objective"
METRIC = "gradsweep.metric"
DIRECTION = "gradsweep.direction"
VERSION = "gradsweep.version"
SCALE = "gradsweep.scale"

# trial attrs
CONFIG = "gradsweep.config"
HEALTH_LATEST = "gradsweep.health.latest"
HEALTH_HISTORY = "gradsweep.health.history"
PRUNE_KIND = "gradsweep.prune.kind"
PRUNE_REASON = "gradsweep.prune.reason"
PRUNE_STEP = "gradsweep.prune.step"
FAIL_REASON = "gradsweep.fail.reason"
RAY_TRIAL_ID = "gradsweep.ray.trial_id"
BASELINE = "gradsweep.baseline"
