"""Engine overhead: N short trials through the gradsweep engine under Ray vs plain ``study.optimize``.

Both runs use the same space, sampler seed, scale and objective, with no pruning and one trial at
a time; every trial appends its timings (the objective call and the part of it spent inside
``ctx.report``, measured on the worker) to a file (:mod:`benchmarks._timed_objective`). A trial's
training time is the objective call minus its reporting; overhead is what the sweep's wall time
adds on top of training (reporting included: under Ray the trial waits there for the driver).

With the do-nothing objective of :mod:`benchmarks._trivial_objective` as the inner one
(``overhead.py --trivial``), the sweep's wall time is the engine's own cost: Ray start, actor
scheduling, result round trips and the driver's study writes.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from benchmarks._ray_local import start_local_ray
from benchmarks._timed_objective import INNER_ENV, TIMES_ENV
from gradsweep.search.engine.local import optimize_local
from gradsweep.search.engine.ray.launcher import LaunchRequest, launch
from gradsweep.search.engine.ray.runtime import DEFAULT_CHECKPOINT_EVERY_S, Resources, start_ray, stop_ray
from gradsweep.spaces.space import SearchSpace

TIMED_SPEC = f"{Path(__file__).resolve().parent / '_timed_objective.py'}:run"


@dataclass(frozen=True)
class SweepTiming:
    """Wall time of a sweep, and the training and reporting time of its trials.

    Attributes:
        trial_s: each trial's training time (objective call minus time inside ``ctx.report``).
        report_s: each trial's time inside ``ctx.report``.
        spans: each trial's ``ask -> tell`` span in the study (POSIX seconds), by trial number;
            trials run one at a time, so this is also the order of ``trial_s``.
    """

    label: str
    n_trials: int
    wall_s: float
    trial_s: list[float]
    report_s: list[float] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)

    @property
    def open_s(self) -> float:
        """Sum of the trials' ``ask -> tell`` spans."""
        return sum(end - start for start, end in self.spans)

    @property
    def steady_ratio(self) -> float:
        """Wall / training from the second trial's ask to the last tell: without the first trial's
        start-up (a Ray worker's process and imports; the first data load in both paths)."""
        if len(self.spans) < 2 or len(self.trial_s) != len(self.spans):
            return float("nan")
        train = sum(self.trial_s[1:])
        return (self.spans[-1][1] - self.spans[1][0]) / train if train else float("nan")

    @property
    def inside_s(self) -> float:
        """Open-trial time (study ask -> tell) not spent training: dispatch, setup, reporting, tell."""
        return self.open_s - self.train_s

    @property
    def between_s(self) -> float:
        """Sweep wall time with no trial open: start-up, scheduling between trials, shutdown."""
        return self.wall_s - self.open_s

    @property
    def train_s(self) -> float:
        return sum(self.trial_s)

    @property
    def reporting_s(self) -> float:
        """Time the trials spent inside ``ctx.report`` (part of :attr:`inside_s`)."""
        return sum(self.report_s)

    @property
    def ratio(self) -> float:
        """Sweep wall time over the sum of trial training time."""
        return self.wall_s / self.train_s if self.train_s else float("nan")

    @property
    def per_trial_overhead_s(self) -> float:
        return (self.wall_s - self.train_s) / self.n_trials


def open_spans(url: str, study: str) -> list[tuple[float, float]]:
    """``(datetime_start, datetime_complete)`` as POSIX seconds for each finished trial, by number."""
    trials = sorted(
        optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False), key=lambda t: t.number
    )
    return [(t.datetime_start.timestamp(), t.datetime_complete.timestamp()) for t in trials
            if t.datetime_complete is not None and t.datetime_start is not None]  # fmt: skip


def read_times(path: Path) -> tuple[list[float], list[float]]:
    """(training seconds, reporting seconds) per trial from a ``_timed_objective`` times file."""
    train: list[float] = []
    report: list[float] = []
    for line in path.read_text().splitlines() if path.exists() else []:
        total, waited = (float(x) for x in line.split())
        train.append(total - waited)
        report.append(waited)
    return train, report


def time_engine(
    space: SearchSpace,
    n_trials: int,
    *,
    scale: str,
    inner: str = "multitower",
    checkpoint_every: Sequence[float] = (DEFAULT_CHECKPOINT_EVERY_S,),
) -> tuple[list[SweepTiming], SweepTiming, float]:
    """Run the same sweep in one plain Optuna process, then through the engine (Ray) once per setting.

    Args:
        checkpoint_every: the engine's ``--checkpoint-every`` values, one Ray sweep each.

    Returns:
        (engine timings in the order of ``checkpoint_every``, plain-Optuna timing, seconds Ray took to start).
    """
    with tempfile.TemporaryDirectory(prefix="gradsweep-bench-overhead-") as tmp:
        root = Path(tmp)
        os.environ[INNER_ENV] = inner
        os.environ[TIMES_ENV] = str(root / "local.txt")
        t0 = time.monotonic()
        optimize_local(space, n_trials, f"sqlite:///{root}/local.db", study="local", objective=TIMED_SPEC,
                       scale=scale, pruner="none", seed=0, device="cpu")  # fmt: skip
        local = SweepTiming("plain Optuna (optimize_local)", n_trials, time.monotonic() - t0,
                            *read_times(root / "local.txt"), open_spans(f"sqlite:///{root}/local.db", "local"))  # fmt: skip
        times = root / "ray.txt"  # set before Ray starts: its workers inherit the environment then
        os.environ[TIMES_ENV] = str(times)
        t0 = time.monotonic()
        start_local_ray()
        start_ray(
            Resources(cpus_per_trial=1.0, concurrency=1)
        )  # launch() then uses this Ray and leaves it running
        ray_start = time.monotonic() - t0
        engines: list[SweepTiming] = []
        try:
            for i, every in enumerate(checkpoint_every):
                done = len(read_times(times)[0])  # the runs share the file: each takes the lines it added
                resources = Resources(cpus_per_trial=1.0, concurrency=1, checkpoint_every_s=every)
                url = f"sqlite:///{root}/ray{i}.db"
                request = LaunchRequest(space=space, n_trials=n_trials, storage=url, study="ray", objective=TIMED_SPEC,
                                        scale=scale, pruner="none", seed=0, resources=resources,
                                        runs_dir=root / f"runs{i}")  # fmt: skip
                t0 = time.monotonic()
                launch(request)
                wall = time.monotonic() - t0
                train, report = read_times(times)
                engines.append(SweepTiming(f"gradsweep engine (Ray Tune, --checkpoint-every {every:g})", n_trials,
                                           wall, train[done:], report[done:], open_spans(url, "ray")))  # fmt: skip
        finally:
            stop_ray(True)
            for key in (INNER_ENV, TIMES_ENV):
                os.environ.pop(key, None)
    return engines, local, ray_start
