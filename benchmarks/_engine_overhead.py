"""Engine overhead: N short trials through the gradsweep engine under Ray vs plain ``study.optimize``.

Both runs use the same space, sampler seed, scale and objective, with no pruning and one trial at
a time; every trial appends its training time (the objective call, measured on the worker) to a
file (:mod:`benchmarks._timed_objective`). Overhead is what the sweep's wall time adds on top.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna

from benchmarks._ray_local import start_local_ray
from benchmarks._timed_objective import INNER_ENV, TIMES_ENV
from search.engine.launcher import LaunchRequest, launch
from search.engine.local import optimize_local
from search.engine.ray_runtime import Resources, start_ray, stop_ray
from spaces.space import SearchSpace

TIMED_SPEC = f"{Path(__file__).resolve().parent / '_timed_objective.py'}:run"


@dataclass(frozen=True)
class SweepTiming:
    """Wall time of a sweep and the training time of its trials."""

    label: str
    n_trials: int
    wall_s: float
    trial_s: list[float]
    open_s: float = 0.0

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
    def ratio(self) -> float:
        """Sweep wall time over the sum of trial training time."""
        return self.wall_s / self.train_s if self.train_s else float("nan")

    @property
    def per_trial_overhead_s(self) -> float:
        return (self.wall_s - self.train_s) / self.n_trials


def _open_seconds(url: str, study: str) -> float:
    """Sum over the study's finished trials of ``datetime_complete - datetime_start``."""
    trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    return sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials
               if t.datetime_complete is not None and t.datetime_start is not None)  # fmt: skip


def _read_times(path: Path) -> list[float]:
    return [float(line) for line in path.read_text().split()] if path.exists() else []


def time_engine(space: SearchSpace, n_trials: int, *, scale: str, inner: str = "multitower") -> tuple[SweepTiming, SweepTiming, float]:
    """Run the same sweep through the engine (Ray) and in one plain Optuna process.

    Returns:
        (engine timing, plain-Optuna timing, seconds Ray took to start).
    """
    with tempfile.TemporaryDirectory(prefix="gradsweep-bench-overhead-") as tmp:
        root = Path(tmp)
        os.environ[INNER_ENV] = inner
        os.environ[TIMES_ENV] = str(root / "local.txt")
        t0 = time.monotonic()
        optimize_local(space, n_trials, f"sqlite:///{root}/local.db", study="local", objective=TIMED_SPEC,
                       scale=scale, pruner="none", seed=0, device="cpu")  # fmt: skip
        local = SweepTiming("plain Optuna (optimize_local)", n_trials, time.monotonic() - t0,
                            _read_times(root / "local.txt"), _open_seconds(f"sqlite:///{root}/local.db", "local"))  # fmt: skip
        os.environ[TIMES_ENV] = str(root / "ray.txt")  # set before Ray starts: workers inherit it
        t0 = time.monotonic()
        resources = Resources(cpus_per_trial=1.0, concurrency=1)
        start_local_ray()
        start_ray(resources)  # sizes the sweep; launch() then uses this Ray and leaves it running
        ray_start = time.monotonic() - t0
        try:
            request = LaunchRequest(space=space, n_trials=n_trials, storage=f"sqlite:///{root}/ray.db", study="ray",
                                    objective=TIMED_SPEC, scale=scale, pruner="none", seed=0, resources=resources,
                                    runs_dir=root / "runs")  # fmt: skip
            t0 = time.monotonic()
            launch(request)
            engine = SweepTiming("gradsweep engine (Ray Tune)", n_trials, time.monotonic() - t0,
                                 _read_times(root / "ray.txt"), _open_seconds(f"sqlite:///{root}/ray.db", "ray"))  # fmt: skip
        finally:
            stop_ray(True)
            for key in (INNER_ENV, TIMES_ENV):
                os.environ.pop(key, None)
    return engine, local, ray_start
