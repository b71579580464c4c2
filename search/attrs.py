"""Names of the Optuna user attrs gradsweep writes: the one home of docs/ARCHITECTURE.md, Contract 4.

The study is the source of truth; these keys are how every component (objective reporters, the
pruner, the engine, the views, export) finds what the others stored.
"""

from __future__ import annotations

# study attrs
SPACE = "gradsweep.space"
SPACE_KEYS = (
    "gradsweep.space.keys"  # the top-level keys the space file wrote (export omits unwritten defaults)
)
OBJECTIVE = "gradsweep.objective"
METRIC = "gradsweep.metric"
DIRECTION = "gradsweep.direction"
VERSION = "gradsweep.version"
SCALE = "gradsweep.scale"
SWEEP = "gradsweep.sweep"

# trial attrs
CONFIG = "gradsweep.config"
HEALTH_LATEST = "gradsweep.health.latest"
HEALTH_HISTORY = "gradsweep.health.history"
#: ``{rule: first step}`` of every rule that ever found the trial unstable (the calibration's evidence)
HEALTH_FLAGS = "gradsweep.health.flags"
PRUNE_KIND = "gradsweep.prune.kind"
PRUNE_REASON = "gradsweep.prune.reason"
PRUNE_STEP = "gradsweep.prune.step"
TOTAL_STEPS = "gradsweep.total_steps"  # the step of the trial's final report (its Trainer's total_steps)
FAIL_REASON = "gradsweep.fail.reason"
RAY_TRIAL_ID = "gradsweep.ray.trial_id"
BASELINE = "gradsweep.baseline"
RETRY_OF = "gradsweep.retry_of"
#: on a trial the freeze-thaw scheduler paused (stored PRUNED, kind ``paused``): ``{"step": the pause's
#: report step, "checkpoint": the persisted checkpoint's path, "checkpoint_step": the step it holds}``
PAUSE = "gradsweep.pause"
#: on a thawed trial: the number of the paused trial it continues from that trial's checkpoint
THAW_OF = "gradsweep.thaw_of"
