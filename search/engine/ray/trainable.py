"""The Ray Tune function trainable: one objective run on a worker, reported back to the driver.

The worker never touches the study. :class:`RayReporter` sends each ``ctx.report`` to the
driver with ``ray.tune.report`` (value, step and the latest health report, as JSON); the
driver's scheduler decides pruning and stops the trial. When the objective returns, a final
result says how it ended (``complete`` with its value, ``fail`` for a non-finite value,
``pruned`` if the objective raised :class:`gradsweep.objectives.api.TrialPruned` itself). Any other
exception propagates so Ray can retry the trial from its checkpoint (``--max-failures``).

Checkpoints: the objective writes through ``ctx.save_checkpoint`` into a local directory.
A report after a new checkpoint hands that directory to Ray, which persists it, at most once
per ``checkpoint_every_s`` (``--checkpoint-every``) counted from the trial's start: Ray reports
synchronously, so every persisted checkpoint (a copy of the directory, then Ray rewriting its
experiment state) is time the trial waits. A retried trial gets the newest persisted
checkpoint back through ``ray.tune.get_checkpoint()`` into a fresh local directory. The final
report carries none: nothing resumes a finished trial.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray.tune

from gradsweep.objectives.api import NonFiniteValue, TrialContext, TrialPruned, run_objective
from gradsweep.objectives.checkpoint import CheckpointStore
from gradsweep.objectives.distributed import SINGLE, Place
from gradsweep.objectives.registry import load_objective
from gradsweep.search.engine.outcome import (
    NON_FINITE,
    R_CKPT_STEP,
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
from gradsweep.search.engine.ray.bridge import C_CONFIG, C_DEVICE, C_OBJECTIVE, C_RESUME
from gradsweep.spaces.trial_config import TrialConfig


class PersistClock:
    """When the next checkpoint may be handed to Ray: ``every_s`` after the last one, or the start.

    Args:
        every_s: seconds between persisted checkpoints (0: every one).
        clock: monotonic seconds (injectable for tests).

    Example:
        >>> now = [0.0]
        >>> persist = PersistClock(10.0, clock=lambda: now[0])
        >>> persist.due()
        False
        >>> now[0] = 10.0
        >>> persist.due()
        True
    """

    def __init__(self, every_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = float(every_s)
        self._clock = clock
        self._last = clock()

    def due(self) -> bool:
        """Whether ``every_s`` has passed since the start or the last :meth:`mark`."""
        return self._clock() - self._last >= self.every_s

    def mark(self) -> None:
        """A checkpoint was handed to Ray now."""
        self._last = self._clock()


#: How a result reaches the driver: ``ray.tune.report``, or ``ray.train.report`` on a DDP worker.
Send = Callable[..., None]
#: The checkpoint Ray hands a retried trial: ``ray.tune.get_checkpoint`` or ``ray.train.get_checkpoint``.
GetCheckpoint = Callable[[], Any]


class RayReporter:
    """Reporter for objectives running inside a Ray Tune trial (never raises; the driver prunes).

    Args:
        number: the Optuna trial number (sent with every result).
        checkpoint_dir: the directory ``ctx.save_checkpoint`` writes, or None.
        checkpoint_every_s: hand a new checkpoint to Ray at most this often (0: every one).
        send: what sends a result (default ``ray.tune.report``).
        is_main: False on a DDP worker other than rank 0: it reports as every worker must (Ray
            Train takes rank 0's results) but never hands a checkpoint to Ray.
    """

    def __init__(
        self,
        number: int,
        checkpoint_dir: Path | None = None,
        *,
        checkpoint_every_s: float = 0.0,
        send: Send | None = None,
        is_main: bool = True,
    ) -> None:
        self.number = number
        self._send: Send = send if send is not None else ray.tune.report
        self.is_main = is_main
        self.checkpoint_dir = checkpoint_dir
        self.persist = PersistClock(checkpoint_every_s)
        self._last_health_step: int | None = None
        # a checkpoint is new when its file number is: numbers grow with every save, while
        # modification times can tie on filesystems with coarse timestamps
        self._store = CheckpointStore(checkpoint_dir) if checkpoint_dir is not None else None
        self._last_ckpt = self._store.newest_number() if self._store is not None else 0
        self.last_step = 0
        self.total_steps: int | None = None

    def declare_total_steps(self, total: int) -> None:
        """Sent with every report; the driver stores ``gradsweep.total_steps`` from the first."""
        self.total_steps = int(total)

    def _checkpoint(self) -> ray.tune.Checkpoint | None:
        if self._store is None or not self.is_main or not self.persist.due():
            return None
        newest = self._store.newest_number()
        if newest <= self._last_ckpt:
            return None
        self._last_ckpt = newest
        self.persist.mark()
        return ray.tune.Checkpoint.from_directory(str(self.checkpoint_dir))

    def report(self, value: float, step: int, health: Any | None) -> None:
        metrics: dict[str, Any] = {
            R_TRIAL: self.number,
            R_VALUE: float(value),
            R_STEP: int(step),
            R_FINAL: False,
        }
        if health is not None and health.step != self._last_health_step:
            self._last_health_step = health.step
            metrics[R_HEALTH] = json.dumps(health.to_dict())
        if self.total_steps is not None:
            metrics[R_TOTAL] = self.total_steps
        self.last_step = int(step)
        checkpoint = self._checkpoint()
        if checkpoint is not None:
            metrics[R_CKPT_STEP] = int(step)
        self._send(metrics, checkpoint=checkpoint)

    def final(
        self, outcome: FinalState, *, value: float = math.nan, kind: str = "", reason: str = ""
    ) -> None:
        """Report how the run ended (the driver stores the final Optuna state from it)."""
        self._send(
            {
                R_TRIAL: self.number,
                R_VALUE: value,
                R_STEP: self.last_step,
                R_FINAL: True,
                R_OUTCOME: str(outcome),
                R_KIND: kind,
                R_REASON: reason,
            }
        )


def _restore_checkpoint(into: Path, get_checkpoint: GetCheckpoint, resume_from: str | None = None) -> None:
    """Copy the checkpoint Ray hands a retried trial into ``into``; else, for a thawed trial, the
    paused trial's persisted checkpoint at ``resume_from``."""
    checkpoint = get_checkpoint()
    if checkpoint is None and resume_from:
        checkpoint = ray.tune.Checkpoint(resume_from)
    if checkpoint is None:
        return
    with checkpoint.as_directory() as src:
        shutil.copytree(src, into, dirs_exist_ok=True)


def run_trial(
    config: dict[str, Any],
    *,
    checkpoint_every_s: float,
    send: Send,
    get_checkpoint: GetCheckpoint,
    place: Place = SINGLE,
    device: str | None = None,
) -> None:
    """Run one objective for the driver: restore the newest checkpoint, train, report how it ended.

    Args:
        config: ``gs_trial`` (Optuna number), ``gs_config`` (TrialConfig dict),
            ``gs_objective`` (spec), ``gs_device`` (``cuda``/``cpu``).
        checkpoint_every_s: seconds between checkpoints handed to Ray.
        send: how results reach the driver.
        get_checkpoint: the checkpoint of a retried trial (None on a first attempt).
        place: this worker's rank and world size (a DDP worker), a single process by default.
        device: the worker's device (``cuda:1``), default ``gs_device``.
    """
    number = int(config[R_TRIAL])
    trial_config = TrialConfig.from_dict(config[C_CONFIG])
    objective = load_objective(str(config[C_OBJECTIVE]))
    workdir = Path(tempfile.mkdtemp(prefix=f"gradsweep-trial-{number}-"))
    try:
        ckpt_dir = workdir / "checkpoints"
        ckpt_dir.mkdir()
        # every worker of a DDP trial loads rank 0's; a thawed trial starts from its pause's
        _restore_checkpoint(ckpt_dir, get_checkpoint, config.get(C_RESUME))
        reporter = RayReporter(
            number, ckpt_dir, checkpoint_every_s=checkpoint_every_s, send=send, is_main=place.is_main
        )
        ctx = TrialContext(
            trial_config,
            reporter=reporter,
            device=device or str(config[C_DEVICE]),
            checkpoint_dir=ckpt_dir,
            place=place,
        )
        try:
            value = run_objective(objective, trial_config, ctx)
        except TrialPruned as exc:
            reporter.final(FinalState.PRUNED, kind=exc.kind, reason=exc.reason)
            return
        except NonFiniteValue:
            reporter.final(FinalState.FAIL, reason=NON_FINITE)
            return
        reporter.final(FinalState.COMPLETE, value=value)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def gradsweep_trainable(config: dict[str, Any], checkpoint_every_s: float = 0.0) -> None:
    """Run one objective as a Ray Tune trial (the config comes from the driver's searcher).

    Args:
        config: see :func:`run_trial`.
        checkpoint_every_s: seconds between checkpoints handed to Ray (``tune.with_parameters``).
    """
    run_trial(
        config,
        checkpoint_every_s=checkpoint_every_s,
        send=ray.tune.report,
        get_checkpoint=ray.tune.get_checkpoint,
    )
