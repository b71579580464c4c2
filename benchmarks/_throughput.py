"""Training throughput of one trial: optimizer steps per second, end to end and between reports.

A built-in objective runs its recommended config (the preset's ``after`` baseline, as
``gradsweep try`` does) once, on a given device and scale, with the preset's AMP setting or
another one. Two rates come out:

* **end to end**: the trial's optimizer steps over the whole objective call (data generation,
  model build, every evaluation, the final metric): what a sweep pays per trial;
* **steady**: the steps between the first and the last report over the time between them
  (training plus the per-epoch evaluations, without the set-up before the first report).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from gradsweep.objectives.api import NullReporter, TrialContext, run_objective
from gradsweep.objectives.health import HealthReport
from gradsweep.objectives.registry import load_objective
from gradsweep.search.cli.try_ import recommended_config
from gradsweep.spaces.trial_config import TrialConfig


class TimedReporter(NullReporter):
    """A :class:`NullReporter` that also notes when each report arrived (``time.perf_counter``)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def report(self, value: float, step: int, health: HealthReport | None) -> None:
        self.times.append(time.perf_counter())
        super().report(value, step, health)


@dataclass(frozen=True)
class Throughput:
    """One trial's steps and times (see the module docstring for the two rates)."""

    objective: str
    amp: str
    scale: str
    device: str
    steps: int
    wall_s: float
    steady_steps: int
    steady_s: float
    value: float

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def steady_steps_per_s(self) -> float:
        return self.steady_steps / self.steady_s if self.steady_s > 0 else math.nan


def with_amp(config: TrialConfig, dtype: str | None) -> TrialConfig:
    """``config`` with ``amp.dtype`` set to ``dtype`` (``bf16``, ``fp16``, ``none``); None keeps it."""
    if dtype is None:
        return config
    data = config.to_dict()
    return TrialConfig.from_dict({**data, "amp": {**(data.get("amp") or {}), "dtype": dtype}})


def steps_of(reporter: NullReporter) -> int:
    """The trial's optimizer steps: the total the trainer declared, else the last report's step."""
    if reporter.total_steps is not None:
        return reporter.total_steps
    return max((r.step for r in reporter.history), default=0)


def steady_span(reporter: TimedReporter) -> tuple[int, float]:
    """(steps, seconds) from the first report to the last; (0, 0.0) with fewer than two reports."""
    if len(reporter.history) < 2:
        return 0, 0.0
    return reporter.history[-1].step - reporter.history[0].step, reporter.times[-1] - reporter.times[0]


def measure(objective: str, *, scale: str, device: str, amp: str | None = None, seed: int = 0) -> Throughput:
    """Run ``objective``'s recommended config once and time it.

    Args:
        amp: ``amp.dtype`` for this run (None: the preset's).

    Raises:
        UserError: ``objective`` is not a built-in (no preset to take a config from).
    """
    config = with_amp(recommended_config(objective, scale=scale, seed=seed), amp)
    fn = load_objective(objective)
    reporter = TimedReporter()
    ctx = TrialContext(config, reporter=reporter, device=device)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    started = time.perf_counter()
    value = run_objective(fn, config, ctx)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    wall = time.perf_counter() - started
    steady_steps, steady_s = steady_span(reporter)
    return Throughput(objective, str(config.amp.dtype), str(config.scale), str(ctx.device), steps_of(reporter),
                      wall, steady_steps, steady_s, value)  # fmt: skip
