"""The Ray Tune function trainable: one objective run on a worker, reported back to the driver.

The worker never touches the study. :class:`RayReporter` sends each ``ctx.report`` to the
driver with ``ray.tune.report`` (value, step and the latest health report, as JSON); the
driver's scheduler decides pruning and stops the trial. When the objective returns, a final
result says how it ended (``complete`` with its value, ``fail`` for a non-finite value,
``pruned`` if the objective raised :class:`objectives.api.TrialPruned` itself). Any other
exception propagates so Ray can retry the trial from its checkpoint (``--max-failures``).

Checkpoints: the objective writes through ``ctx.save_checkpoint`` into a local directory;
each report after a new checkpoint hands that directory to Ray, which persists it; a retried
trial gets it back through ``ray.tune.get_checkpoint()`` into a fresh local directory.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import ray.tune

from objectives.api import TrialContext, TrialPruned, run_objective
from objectives.registry import load_objective
from search.engine.bridge import C_CONFIG, C_DEVICE, C_OBJECTIVE
from search.engine.outcome import (
    NON_FINITE,
    R_FINAL,
    R_HEALTH,
    R_KIND,
    R_OUTCOME,
    R_REASON,
    R_STEP,
    R_TOTAL,
    R_TRIAL,
    R_VALUE,
    FinalState,
)
from spaces.trial_config import TrialConfig


def _newest_mtime(directory: Path) -> float:
    files = [p.stat().st_mtime_ns for p in directory.glob("ckpt-*.pt")] if directory.is_dir() else []
    return max(files, default=0)


class RayReporter:
    """Reporter for objectives running inside a Ray Tune trial (never raises; the driver prunes).

    Args:
        number: the Optuna trial number (sent with every result).
        checkpoint_dir: the directory ``ctx.save_checkpoint`` writes, or None.
    """

    def __init__(self, number: int, checkpoint_dir: Path | None = None) -> None:
        self.number = number
        self.checkpoint_dir = checkpoint_dir
        self._last_health_step: int | None = None
        self._last_ckpt = _newest_mtime(checkpoint_dir) if checkpoint_dir is not None else 0
        self.last_step = 0
        self.total_steps: int | None = None

    def declare_total_steps(self, total: int) -> None:
        """Sent with every report; the driver stores ``gradsweep.total_steps`` from the first."""
        self.total_steps = int(total)

    def _checkpoint(self) -> ray.tune.Checkpoint | None:
        if self.checkpoint_dir is None:
            return None
        newest = _newest_mtime(self.checkpoint_dir)
        if newest <= self._last_ckpt:
            return None
        self._last_ckpt = newest
        return ray.tune.Checkpoint.from_directory(str(self.checkpoint_dir))

    def report(self, value: float, step: int, health: Any | None) -> None:
        metrics: dict[str, Any] = {R_TRIAL: self.number, R_VALUE: float(value), R_STEP: int(step), R_FINAL: False}
        if health is not None and health.step != self._last_health_step:
            self._last_health_step = health.step
            metrics[R_HEALTH] = json.dumps(health.to_dict())
        if self.total_steps is not None:
            metrics[R_TOTAL] = self.total_steps
        self.last_step = int(step)
        ray.tune.report(metrics, checkpoint=self._checkpoint())

    def final(self, outcome: FinalState, *, value: float = math.nan, kind: str = "", reason: str = "") -> None:
        """Report how the run ended (the driver stores the final Optuna state from it)."""
        ray.tune.report(
            {
                R_TRIAL: self.number,
                R_VALUE: value,
                R_STEP: self.last_step,
                R_FINAL: True,
                R_OUTCOME: str(outcome),
                R_KIND: kind,
                R_REASON: reason,
            },
            checkpoint=self._checkpoint(),
        )


def _restore_checkpoint(into: Path) -> None:
    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is None:
        return
    with checkpoint.as_directory() as src:
        shutil.copytree(src, into, dirs_exist_ok=True)


def gradsweep_trainable(config: dict[str, Any]) -> None:
    """Run one objective as a Ray Tune trial (the config comes from the driver's searcher).

    Args:
        config: ``gs_trial`` (Optuna number), ``gs_config`` (TrialConfig dict),
            ``gs_objective`` (spec), ``gs_device`` (``cuda``/``cpu``).
    """
    number = int(config[R_TRIAL])
    trial_config = TrialConfig.from_dict(config[C_CONFIG])
    objective = load_objective(str(config[C_OBJECTIVE]))
    workdir = Path(tempfile.mkdtemp(prefix=f"gradsweep-trial-{number}-"))
    try:
        ckpt_dir = workdir / "checkpoints"
        ckpt_dir.mkdir()
        _restore_checkpoint(ckpt_dir)
        reporter = RayReporter(number, ckpt_dir)
        ctx = TrialContext(trial_config, reporter=reporter, device=str(config[C_DEVICE]), checkpoint_dir=ckpt_dir)
        try:
            value = run_objective(objective, trial_config, ctx)
        except TrialPruned as exc:
            reporter.final(FinalState.PRUNED, kind=exc.kind, reason=exc.reason)
            return
        except ValueError as exc:
            if not str(exc).startswith(NON_FINITE):
                raise
            reporter.final(FinalState.FAIL, reason=NON_FINITE)
            return
        reporter.final(FinalState.COMPLETE, value=value)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
