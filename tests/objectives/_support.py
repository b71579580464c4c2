"""Helpers shared by the objective tests: a simulated crash between epochs, and one CPU run."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from gradsweep.objectives.api import NullReporter, TrialContext
from gradsweep.spaces.trial_config import TrialConfig


class Interrupted(RuntimeError):
    """Stands in for a crash (or a killed worker) between two epochs."""


class StopAfter:
    """A reporter that crashes on its ``n``-th report (after that epoch's checkpoint was written)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    def report(self, value: float, step: int, health: object) -> None:
        self.calls += 1
        if self.calls >= self.n:
            raise Interrupted(f"interrupted at report {self.calls} (step {step})")

    def declare_total_steps(self, total: int) -> None:
        """Part of the :class:`~gradsweep.objectives.reporting.Reporter` protocol; nothing to do here."""


def run_on_cpu(
    objective: ModuleType, config: TrialConfig, checkpoint_dir: Path | None = None
) -> tuple[float, NullReporter, TrialContext]:
    """Run a built-in objective module on the CPU with a recording reporter.

    ``GRADSWEEP_TEST_DEVICE`` (set by ``benchmarks/gpu_check.py``'s ``tests`` part) runs it on another
    device instead, e.g. ``cuda``.
    """
    reporter = NullReporter()
    device = os.environ.get("GRADSWEEP_TEST_DEVICE", "cpu")
    ctx = TrialContext(config, reporter=reporter, device=device, checkpoint_dir=checkpoint_dir)
    return objective.run(config, ctx), reporter, ctx
