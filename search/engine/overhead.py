"""Measure the engine's per-trial overhead: N trivial trials through Ray Tune vs plain ``study.optimize``.

The objective does no work (four reports, then a value), so the wall time is the engine's own
cost: Ray start, actor scheduling, result round trips and the study writes of the driver.

Usage::

    python -m gradsweep.search.engine.overhead --n-trials 20 --concurrency 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from gradsweep.spaces.space import SearchSpace, parse_space
from gradsweep.spaces.trial_config import TrialConfig

SPACE: dict[str, Any] = {
    "name": "overhead",
    "objective": "gradsweep.search.engine.overhead:trivial",
    "metric": {"name": "value", "direction": "maximize"},
    "towers": [{"name": "all", "patterns": ["*"], "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}}],
    "stages": [{"name": "train", "steps": 4}],
}


def trivial(config: TrialConfig, ctx: Any) -> float:
    """An objective that only reports: four intermediate values, then the final one."""
    value = -abs(config.towers[0].lr - 0.01)
    for step in range(4):
        ctx.report(value, step)
    return value


def space() -> SearchSpace:
    """The one-knob space the measurement sweeps."""
    return parse_space(SPACE)


def measure(n_trials: int, concurrency: int, workdir: Path) -> dict[str, float]:
    """Wall seconds of ``n_trials`` trivial trials via Ray (incl. its start) and via optimize_local."""
    from gradsweep.search.engine.launcher import LaunchRequest, launch
    from gradsweep.search.engine.local import optimize_local
    from gradsweep.search.engine.ray_runtime import Resources

    t0 = time.perf_counter()
    optimize_local(space(), n_trials, f"sqlite:///{workdir / 'local.db'}", pruner="none", seed=0)
    local_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = launch(
        LaunchRequest(
            space=space(),
            n_trials=n_trials,
            storage=f"sqlite:///{workdir / 'ray.db'}",
            pruner="none",
            seed=0,
            runs_dir=workdir / "runs",
            resources=Resources(concurrency=concurrency),
        )
    )
    ray_s = time.perf_counter() - t0
    return {
        "n_trials": n_trials,
        "concurrency": concurrency,
        "local_s": round(local_s, 2),
        "ray_s": round(ray_s, 2),
        "ray_driver_run_s": round(summary.elapsed_s, 2),
        "local_per_trial_s": round(local_s / n_trials, 3),
        "ray_per_trial_s": round(ray_s / n_trials, 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gradsweep-overhead-") as tmp:
        print(json.dumps(measure(args.n_trials, args.concurrency, Path(tmp))))


if __name__ == "__main__":
    main()
