"""Run a bridge's trials with Ray Tune: Tuner wiring, Ctrl-C handling, reconciliation.

On the first SIGINT (or SIGTERM) the runner asks Tune to stop every trial; trials that did
not finish are stored FAIL with reason ``interrupted``, and the signal is kept for the exit
status (128 + its number). A second signal raises ``KeyboardInterrupt`` at once. A local Ray
runs in sessions of its own (:func:`~gradsweep.search.engine.ray.runtime.own_session`), so a
SIGTERM to the launch's process group (``timeout``, schedulers) reaches the driver only.
Whatever happens, no trial this run started is left RUNNING (``finally`` reconciliation, or
the cut-off watchdog of :class:`_Signals` when the signal ended the local Ray too).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ray import tune
from ray.tune.stopper import Stopper

from gradsweep.search.engine.outcome import INTERRUPTED, R_TRIAL
from gradsweep.search.engine.ray.bridge import StudyBridge
from gradsweep.search.engine.ray.ddp import LOOP_CONFIG, ddp_trainer, gs_config
from gradsweep.search.engine.ray.runtime import RayInfo, Resources, local_ray_lost
from gradsweep.search.engine.ray.scheduler import PruningScheduler
from gradsweep.search.engine.ray.searcher import StudySearcher
from gradsweep.search.engine.ray.trainable import gradsweep_trainable
from gradsweep.search.engine.request import run_dir


class _StopFlag(Stopper):
    """Stops the whole experiment once :attr:`event` is set (by a signal)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None  # the signal that set the flag (SIGINT, SIGTERM)

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.event = threading.Event()
        self.signum = None

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.event.is_set()


@dataclass(frozen=True)
class RunResult:
    """How the Ray part of a sweep ended."""

    interrupted: bool
    reconciled: list[int]
    experiment_dir: Path
    elapsed_s: float
    signum: int | None = None  # the signal that interrupted it, if one did


def trial_name(trial: Any) -> str:
    """Ray trial name: the Optuna trial number."""
    return f"trial_{int(gs_config(trial.config)[R_TRIAL]):05d}"


def trial_dirname(trial: Any) -> str:
    """Ray trial directory: Optuna number and Ray trial id (each id leads to the other)."""
    return f"trial_{int(gs_config(trial.config)[R_TRIAL]):05d}_{trial.trial_id}"


#: Called by the cut-off watchdog with the trials it recorded; prints and returns the exit status.
Abandon = Callable[["RunResult"], int]


class _Signals:
    """Route SIGINT/SIGTERM to the stop flag while a sweep runs; restore afterwards.

    After the first signal a watchdog thread checks whether the local Ray died too (a signal to
    every process of the job). Then Tune cannot stop its trials, and Ray would end this process
    a minute later without a word: the watchdog records the cut-off trials in the store itself,
    hands the result to ``abandon`` (which prints the summary) and exits with its status.
    """

    def __init__(self, flag: _StopFlag, cut_off: Callable[[], int] | None = None) -> None:
        self.flag = flag
        self.cut_off = cut_off
        self.done = threading.Event()
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.flag.event.is_set():
            raise KeyboardInterrupt
        self.flag.signum = signum
        self.flag.event.set()
        if self.cut_off is not None:
            threading.Thread(target=self._watch, name="gradsweep-cutoff", daemon=True).start()

    def _watch(self) -> None:
        while not self.done.wait(0.5):
            if local_ray_lost() and not self.done.is_set() and self.cut_off is not None:
                code = 128 + (self.flag.signum or signal.SIGINT)
                try:
                    code = self.cut_off()
                finally:  # Ray is gone: waiting on would only end in Ray's own abort
                    os._exit(code)

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run_trials(
    bridge: StudyBridge,
    *,
    info: RayInfo,
    resources: Resources,
    runs_dir: Path,
    study_name: str,
    timeout_s: float | None = None,
    callbacks: list[Any] | None = None,
    abandon: Abandon | None = None,
) -> RunResult:
    """Run the bridge's trials on the Ray that :func:`~gradsweep.search.engine.ray.runtime.start_ray` set up.

    Args:
        bridge: the study owner (samples, records, prunes).
        info: device and concurrency from ``start_ray``.
        resources: per-trial CPUs, failure retries and how often checkpoints are persisted.
        runs_dir: Ray results go to ``runs_dir / run_dir_name(study_name) / run-<time>``.
        study_name: the study (names the results directory).
        timeout_s: wall-clock budget; trials still running then are stored ``interrupted``.
        callbacks: extra Ray Tune callbacks (the progress view).
        abandon: after a signal that ended the local Ray too, called with the trials recorded
            as interrupted; prints the summary and returns the exit status (see :class:`_Signals`).

    Returns:
        Whether the run was interrupted, and which trials were reconciled to FAIL.
    """
    started = time.monotonic()
    flag = _StopFlag()
    bridge.on_store_error = flag.event.set  # a store that stops taking writes stops the sweep
    storage_path = run_dir(runs_dir, study_name)  # one safe directory, whatever the study's name
    storage_path.mkdir(parents=True, exist_ok=True)
    run_name = time.strftime("run-%Y%m%d-%H%M%S") + f"-{os.getpid()}"  # two launches in one second differ
    if bridge.thawer is not None:  # a pause keeps the checkpoint of the report that paused it
        resources = dataclasses.replace(resources, checkpoint_every_s=0.0)
    if resources.distributed:  # each trial a Ray Train job of N DDP workers
        trainable: Any = ddp_trainer(resources, device=info.device)
    else:
        trainable = tune.with_resources(
            tune.with_parameters(gradsweep_trainable, checkpoint_every_s=resources.checkpoint_every_s),
            {"cpu": resources.cpus_per_trial, "gpu": info.gpus_per_trial},
        )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=StudySearcher(bridge, nest=LOOP_CONFIG if resources.distributed else None),
            scheduler=PruningScheduler(bridge),
            # thawed trials are Ray trials too: the searcher says when it is finished
            num_samples=-1 if bridge.thawer is not None else max(bridge.n_trials, 1),
            max_concurrent_trials=info.concurrency,
            # a reused TorchTrainer actor runs the next trial with the first trial's config
            # (Ray 2.60: its train_loop_config is bound when the actor is built)
            reuse_actors=not resources.distributed,
            time_budget_s=timeout_s,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=run_name,
            storage_path=str(storage_path),
            verbose=0,
            stop=flag,
            callbacks=list(callbacks or []),
            failure_config=tune.FailureConfig(max_failures=resources.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    reconciled: list[int] = []

    def cut_off() -> int:
        for cb in callbacks or []:  # the live view gives the terminal back first
            close = getattr(cb, "close", None)
            if callable(close):
                close()
        done = bridge.reconcile(INTERRUPTED)
        result = RunResult(True, done, storage_path / run_name, time.monotonic() - started, flag.signum)
        return abandon(result) if abandon is not None else 128 + (flag.signum or signal.SIGINT)

    try:
        if bridge.n_trials > 0 or bridge.thawer is not None:  # a resume may only thaw paused trials
            with _Signals(flag, cut_off):
                tuner.fit()
    except KeyboardInterrupt:
        flag.event.set()
    finally:
        reconciled = bridge.reconcile(INTERRUPTED)
        for cb in callbacks or []:
            close = getattr(cb, "close", None)
            if callable(close):
                close()
    interrupted = flag.event.is_set() or bool(reconciled)
    return RunResult(
        interrupted, reconciled, storage_path / run_name, time.monotonic() - started, flag.signum
    )
