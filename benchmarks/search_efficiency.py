"""Search efficiency: gradsweep against the tools users would pick instead, at the same step budget.

Every method samples the same space (``benchmarks/spaces/multitower_bench.yaml`` by default: the
multitower objective of seed 003 with both loss variants and LRs up to 0.3, so unstable configs
occur), trains the same objective at the same scale with the same data seed, runs one trial at a
time, and stops when its trials have consumed the same budget of optimizer steps:

=================  ==============================================================================
``tpe_nop``        Optuna TPE, no pruning (the reference: its best value at budget is the target)
``random_fifo``    Ray Tune random search (``BasicVariantGenerator``), FIFO, no pruning
``ray_asha``       Ray Tune random search with ASHA (``max_t`` = a full trial, grace = one report)
``tpe_median``     Optuna TPE + ``MedianPruner()`` in a plain ``study.optimize``
``tpe_hyperband``  Optuna TPE + ``HyperbandPruner()`` in a plain ``study.optimize``
``gradsweep``      TPE + ``HealthPruner(CatchUpPruner)`` (the default ``--pruner catchup``) under Ray
                   Tune through the gradsweep engine
=================  ==============================================================================

Ablations, on request: ``gradsweep_median`` (the engine with ``--pruner median``, the default
before ``catchup``) and ``gradsweep_health_only`` (``--pruner none``: the health rules alone).

All TPE methods use gradsweep's TPE settings (multivariate, constant liar, 10 startup trials), so
they differ only in pruning. A trial's value counts only if it trained to the end within the
budget. Pruned trials are re-run to completion once to count false prunes (pruned trials that
would have ended in the run's top quartile).

Usage::

    .venv/bin/python -m benchmarks.search_efficiency --quick      # < 15 min on 2 CPU cores
    .venv/bin/python -m benchmarks.search_efficiency              # small scale, 30-trial budget

The last line is ``budget to target vs no-pruning TPE: X.XX (vs best other method: Y.YY)``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import optuna
import torch

from benchmarks._common import (
    CountingReporter,
    TrialRecord,
    best_at_budget,
    median_or_inf,
    ratio,
    ratio_note,
    record_from_dict,
)
from benchmarks._efficiency_report import MethodStats, false_prunes, method_stats, plot_curves, table
from benchmarks._optuna_runs import Rerunner, RunSpec, run_optuna
from gradsweep.objectives.api import TrialContext, run_objective
from gradsweep.objectives.registry import load_objective
from gradsweep.search.engine.algorithms import DEFAULT_PRUNER
from gradsweep.spaces.sampling import resolve, suggest
from gradsweep.spaces.space import SearchSpace, load_space

REPO = Path(__file__).resolve().parent.parent

DEFAULT_SPACE = REPO / "benchmarks" / "spaces" / "multitower_bench.yaml"
DEFAULT_PLOT = REPO / "benchmarks" / "figures" / "search_efficiency.png"
REFERENCE = "tpe_nop"
GRADSWEEP = "gradsweep"
METHODS = (
    "tpe_nop",
    "random_fifo",
    "ray_asha",
    "tpe_median",
    "tpe_hyperband",
    "gradsweep",
    "gradsweep_median",
    "gradsweep_health_only",
)
DEFAULT_METHODS = METHODS[:6]  # the gradsweep_* variants are ablations, run on request
LABELS = {
    "tpe_nop": "TPE, no pruning (reference)",
    "random_fifo": "Ray Tune random + FIFO",
    "ray_asha": "Ray Tune random + ASHA",
    "tpe_median": "Optuna TPE + MedianPruner",
    "tpe_hyperband": "Optuna TPE + HyperbandPruner",
    "gradsweep": "gradsweep (TPE + HealthPruner(catchup), Ray)",
    "gradsweep_median": "gradsweep with --pruner median (the earlier default)",
    "gradsweep_health_only": "gradsweep, health rules only (base pruner none)",
}
RAY_METHODS = ("random_fifo", "ray_asha", "gradsweep", "gradsweep_median", "gradsweep_health_only")
ENGINE_PRUNERS = {"gradsweep": DEFAULT_PRUNER, "gradsweep_median": "median", "gradsweep_health_only": "none"}


def calibrate(space: SearchSpace, scale: str, config_seed: int) -> tuple[int, int]:
    """Steps of a full trial and steps between reports, from one unpruned trial (not counted)."""
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    config = resolve(space, suggest(space, trial), scale=scale, seed=config_seed)
    counter = CountingReporter()
    with contextlib.suppress(ValueError):
        run_objective(
            load_objective(space.objective), config, TrialContext(config, reporter=counter, device="cpu")
        )
    steps = [r.step for r in counter.reports]
    if not steps:
        raise ValueError(f"objective {space.objective!r} never called ctx.report; nothing to prune on")
    gaps = [b - a for a, b in zip([0, *steps], steps, strict=False) if b > a]
    return max(steps), min(gaps)


def run_method(method: str, spec: RunSpec, *, full_steps: int, interval: int) -> list[TrialRecord]:
    """Run one method once with ``spec`` (Ray must be up for the Ray methods)."""
    if method == "tpe_nop":
        return run_optuna(spec, optuna.pruners.NopPruner())
    if method == "tpe_median":
        return run_optuna(spec, optuna.pruners.MedianPruner())
    if method == "tpe_hyperband":
        return run_optuna(spec, optuna.pruners.HyperbandPruner())
    if method in ("random_fifo", "ray_asha"):
        from benchmarks._ray_runs import run_ray

        return run_ray(
            spec, "fifo" if method == "random_fifo" else "asha", full_steps=full_steps, interval=interval
        )
    if method in ENGINE_PRUNERS:
        from benchmarks._engine_runs import run_gradsweep

        return run_gradsweep(spec, base_pruner=ENGINE_PRUNERS[method])
    raise ValueError(f"method must be one of {', '.join(METHODS)} but got {method!r}")


def _start_ray() -> None:
    import ray

    import benchmarks._common
    import benchmarks._ray_runs
    from benchmarks._ray_local import start_local_ray
    from gradsweep.search.engine.ray.runtime import Resources, start_ray

    for module in (benchmarks._common, benchmarks._ray_runs):  # workers need not import `benchmarks`
        ray.cloudpickle.register_pickle_by_value(module)
    start_local_ray()
    start_ray(Resources(concurrency=1))  # sizes the sweep on the Ray started above


def add_problem_args(p: argparse.ArgumentParser, *, budget_help: str, budget_default: float | None) -> None:
    """The options that fix the problem every method solves: space, scale, budget, data seed.

    Shared with ``pruner_ablation.py``, so both scripts read the same flags the same way.
    """
    p.add_argument("--space", default=str(DEFAULT_SPACE), help="preset name or YAML path")
    p.add_argument("--scale", default="small", choices=["tiny", "small", "full"])
    p.add_argument("--budget-trials", type=float, default=budget_default, help=budget_help)
    p.add_argument("--config-seed", type=int, default=0, help="the objective's data/init seed")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="budget of 8 full trials instead of 30 (< 15 min)")
    p.add_argument("--seeds", type=int, default=3, help="repetitions per method (sampler seeds 0..n-1)")
    add_problem_args(p, budget_help="budget in full trials (30; quick 8)", budget_default=None)
    p.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help="comma-separated subset of " + ", ".join(METHODS)
    )
    p.add_argument(
        "--rerun",
        choices=["all", "gradsweep", "none"],
        default=None,
        help="whose pruned trials to re-run for the false-prune count (default all; quick gradsweep)",
    )
    p.add_argument("--plot", default=str(DEFAULT_PLOT), help="PNG path ('' for none)")
    p.add_argument("--json", default="", help="also write the per-run records and figures here")
    p.add_argument(
        "--target", type=float, default=None, help="override the target (default: the reference's)"
    )
    p.add_argument("--from-json", default="", help="recompute the table and plot from an earlier --json file")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        p.error(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if REFERENCE not in args.methods:
        args.methods.insert(0, REFERENCE)
    if args.rerun is None:
        args.rerun = "gradsweep" if args.quick else "all"
    if args.budget_trials is None:
        args.budget_trials = 8.0 if args.quick else 30.0
    return args


def collect(
    args: argparse.Namespace, space: SearchSpace, budget: int, full_steps: int, interval: int
) -> tuple[dict[str, list[list[TrialRecord]]], dict[str, list[float]]]:
    """Run every method once per seed; returns the records and wall seconds per method."""
    direction = space.metric.direction
    runs: dict[str, list[list[TrialRecord]]] = {m: [] for m in args.methods}
    walls: dict[str, list[float]] = {m: [] for m in args.methods}
    ray_up = False
    try:
        for seed in range(args.seeds):
            spec = RunSpec(space, args.scale, seed, args.config_seed, budget)
            for method in args.methods:
                if method in RAY_METHODS and not ray_up:
                    _start_ray()
                    ray_up = True
                t0 = time.monotonic()
                records = run_method(method, spec, full_steps=full_steps, interval=interval)
                walls[method].append(time.monotonic() - t0)
                runs[method].append(records)
                best = best_at_budget(records, budget, direction)
                print(f"  seed {seed} {method:<14s} {len(records):3d} trials, {sum(r.steps for r in records):6d} steps, "
                      f"best {best if best is not None else float('nan'):.4f}, {walls[method][-1]:.0f} s", flush=True)  # fmt: skip
    finally:
        if ray_up:
            import ray

            ray.shutdown()
    return runs, walls


def load_runs(path: Path) -> tuple[dict[str, list[list[TrialRecord]]], dict[str, list[float]], int, int]:
    """Records, wall seconds, budget and report interval from a ``--json`` file of an earlier run."""
    data = json.loads(path.read_text())
    runs = {m: [[record_from_dict(r) for r in recs] for recs in rs] for m, rs in data["runs"].items()}
    walls = {m: [float(data["stats"][m]["wall_s"])] * len(rs) for m, rs in runs.items()}
    gaps = [
        b.step - a.step
        for rs in runs.values()
        for recs in rs
        for r in recs
        for a, b in zip(r.reports, r.reports[1:], strict=False)
    ]
    interval = int(data.get("interval") or min((g for g in gaps if g > 0), default=1))
    return runs, walls, int(data["budget"]), interval


def main(argv: list[str] | None = None) -> dict[str, MethodStats]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(args.space)
    direction = space.metric.direction
    started = time.monotonic()
    if args.from_json:
        runs, walls, budget, interval = load_runs(Path(args.from_json))
        args.methods = [m for m in METHODS if m in runs]
        print(f"records of {args.from_json}: budget {budget} steps, a report every {interval} steps")
    else:
        full_steps, interval = calibrate(space, args.scale, args.config_seed)
        budget = round(args.budget_trials * full_steps)
        print(f"space {space.name} (objective {space.objective}, {direction} {space.metric.name}) at scale {args.scale}; "
              f"a full trial = {full_steps} steps, a report every {interval}; budget {budget} steps "
              f"(= {args.budget_trials:g} full trials); seeds {args.seeds}; one trial at a time; torch threads 1")  # fmt: skip
        runs, walls = collect(args, space, budget, full_steps, interval)
    ref_bests = [best_at_budget(r, budget, direction) for r in runs[REFERENCE]]
    target = (
        median_or_inf([b for b in ref_bests if b is not None])
        if any(b is not None for b in ref_bests)
        else math.nan
    )
    target_text = "median over seeds of the no-pruning TPE's best value at the full budget"
    if args.target is not None:
        target, target_text = args.target, "given with --target"
    rerunner = Rerunner(space, args.scale, args.config_seed)
    stats: dict[str, MethodStats] = {}
    for method in args.methods:
        check = args.rerun == "all" or (args.rerun == "gradsweep" and method.startswith(GRADSWEEP))
        fp = false_prunes(runs[method], rerunner, direction) if check else None
        stats[method] = method_stats(
            method, runs[method], walls[method], budget, target, direction, interval, fp
        )
    print()
    print(f"target = {target:.4f} ({target_text})")
    print(table(stats, LABELS, budget, interval))
    if args.plot:
        plot_curves(
            runs, LABELS, budget, direction, Path(args.plot), title=f"{space.name} at {args.scale} scale"
        )
        print(f"plot: {args.plot}")
    if args.json:
        data = {"budget": budget, "interval": interval, "target": target, "stats": {m: s.to_dict() for m, s in stats.items()},
                "runs": {m: [[asdict(r) for r in recs] for recs in rs] for m, rs in runs.items()}}  # fmt: skip
        Path(args.json).write_text(json.dumps(data, default=str))
    print(
        f"wall time {time.monotonic() - started:.0f} s (2 shared CPU cores: wall times are noisy; budgets are in steps)"
    )
    ref = stats[REFERENCE].steps_to_target
    others = [
        stats[m].steps_to_target for m in args.methods if m != REFERENCE and not m.startswith(GRADSWEEP)
    ]
    ours = stats[GRADSWEEP].steps_to_target if GRADSWEEP in stats else math.nan
    best_other = min(others) if others else math.nan
    note = ratio_note(ours, best_other) if GRADSWEEP in stats else None
    if note:
        print(note)
    if GRADSWEEP in stats:
        g = stats[GRADSWEEP]
        fp_text = (
            "not checked"
            if g.false_prunes is None
            else f"{g.false_prunes} of {g.false_checked} ({g.false_prunes_unstable} of them unstable-kind)"
        )
        print(f"gradsweep: best at budget {g.best_mean:.4f} vs reference {stats[REFERENCE].best_mean:.4f}; "
              f"unstable trials pruned within one report interval: {g.fast_unstable_prunes}/{g.unstable_trials}; "
              f"false prunes: {fp_text}")  # fmt: skip
    print(
        f"budget to target vs no-pruning TPE: {ratio(ours, ref):.2f} (vs best other method: {ratio(ours, best_other):.2f})"
    )
    return stats


if __name__ == "__main__":
    main()
