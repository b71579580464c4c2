"""An objective that runs a built-in one and appends its own wall time to a file.

Used by ``overhead.py`` to get the training time of every trial, wherever the trial ran (a
Ray worker inherits the driver's environment): ``$GRADSWEEP_BENCH_TIMES`` names the file (one
``seconds`` line per trial) and ``$GRADSWEEP_BENCH_INNER`` the built-in objective (default
``multitower``). Spec: ``benchmarks/_timed_objective.py:run``.
"""

from __future__ import annotations

import os
import time

from objectives.api import TrialContext
from objectives.registry import load_objective
from spaces.trial_config import TrialConfig

TIMES_ENV = "GRADSWEEP_BENCH_TIMES"
INNER_ENV = "GRADSWEEP_BENCH_INNER"


def run(config: TrialConfig, ctx: TrialContext) -> float:
    """Run the inner objective; append its wall time to ``$GRADSWEEP_BENCH_TIMES``."""
    inner = load_objective(os.environ.get(INNER_ENV, "multitower"))
    t0 = time.perf_counter()
    try:
        return inner(config, ctx)
    finally:
        path = os.environ.get(TIMES_ENV)
        if path:
            with open(path, "a") as fh:  # one short line per trial: an atomic append
                fh.write(f"{time.perf_counter() - t0:.6f}\n")
