"""An objective that runs a built-in one and appends its own timings to a file.

Used by ``overhead.py`` to get the training time of every trial, wherever the trial ran (a
Ray worker inherits the driver's environment): ``$GRADSWEEP_BENCH_TIMES`` names the file and
``$GRADSWEEP_BENCH_INNER`` the built-in objective (default ``multitower``). Spec:
``benchmarks/_timed_objective.py:run``.

Each trial appends one line, ``<objective seconds> <seconds inside ctx.report>``. The second
figure is reporting, not training: in plain Optuna it is the study writes and the prune
decision; under Ray Tune, whose function trainables report synchronously, it is the wait for
the driver to take the result (its study writes and decision, any checkpoint Ray persists)
and to let the trial go on.
"""

from __future__ import annotations

import os
import time
from typing import Any

from gradsweep.objectives.api import Reporter, TrialContext
from gradsweep.objectives.registry import load_objective
from gradsweep.spaces.trial_config import TrialConfig

TIMES_ENV = "GRADSWEEP_BENCH_TIMES"
INNER_ENV = "GRADSWEEP_BENCH_INNER"


class TimedReporter:
    """Forwards to ``inner`` and sums the seconds spent in :meth:`report`."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self.seconds = 0.0

    def report(self, value: float, step: int, health: Any | None) -> None:
        t0 = time.perf_counter()
        try:
            self.inner.report(value, step, health)
        finally:
            self.seconds += time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:  # declare_total_steps and the like reach the inner reporter
        return getattr(self.inner, name)


def run(config: TrialConfig, ctx: TrialContext) -> float:
    """Run the inner objective; append its timings to ``$GRADSWEEP_BENCH_TIMES``."""
    inner = load_objective(os.environ.get(INNER_ENV, "multitower"))
    timed = ctx.reporter = TimedReporter(ctx.reporter)
    t0 = time.perf_counter()
    try:
        return inner(config, ctx)
    finally:
        path = os.environ.get(TIMES_ENV)
        if path:
            with open(path, "a") as fh:  # one short line per trial: an atomic append
                fh.write(f"{time.perf_counter() - t0:.6f} {timed.seconds:.6f}\n")
