"""Search efficiency: gradsweep against the tools users would pick instead, at the same step budget.

The benchmark runs on several objectives (``--objectives``, each a space preset name or YAML path,
optionally ``NAME@SCALE``; by default, all at ``small`` scale: ``benchmarks/spaces/multitower_bench.yaml``,
the multitower objective of seed 003 with both loss variants and LRs up to 0.3, so unstable configs
occur; the ``segmentation`` and ``finetune`` presets; and ``benchmarks/spaces/unseen_twotower.yaml``,
a two-tower recommender no default was tuned on, :mod:`benchmarks.unseen.twotower`). On each one,
every method samples the same space, trains the same objective at the same scale with the same
data seed, runs one trial at a time, and stops when its trials have consumed the same budget of
optimizer steps (the same number of full trials on every objective):

=================  ==============================================================================
``tpe_nop``        Optuna TPE, no pruning (the reference: its best value at budget is the target)
``random_fifo``    Ray Tune random search (``BasicVariantGenerator``), FIFO, no pruning
``ray_asha``       Ray Tune random search with ASHA (``max_t`` = a full trial, grace = one report)
``tpe_median``     Optuna TPE + ``MedianPruner()`` in a plain ``study.optimize``
``tpe_hyperband``  Optuna TPE + ``HyperbandPruner()`` in a plain ``study.optimize``
``gradsweep``      TPE + ``HealthPruner(CatchUpPruner)`` (the default ``--pruner catchup``) under Ray
                   Tune through the gradsweep engine
``ray_hyperband``  Ray Tune random search with ``HyperBandScheduler`` (``max_t`` = a full trial,
                   reduction factor 3): it pauses trials and resumes them from checkpoints
``topk``           one report interval for each of ``n`` random configs (Optuna ``RandomSampler``),
                   then the best ``k = max(1, round(budget trials / 3))`` to the end from their
                   checkpoints (arXiv 2307.15422; :mod:`benchmarks._topk_runs`)
``syne_asha``      Syne Tune's ``ASHA`` (stopping type; grace = one report, reduction factor 3)
``syne_bohb``      Syne Tune's ``BOHB`` (ASHA with kernel-density configs; Syne Tune 0.16 has no
                   MOBSTER or DyHPO any more). Both Syne Tune methods need ``make bench-deps`` and
                   are skipped without it (:mod:`benchmarks._syne_runs`)
=================  ==============================================================================

Ablations, on request: ``gradsweep_median`` (the engine with ``--pruner median``, the default
before ``catchup``) and ``gradsweep_health_only`` (``--pruner none``: the health rules alone).

All TPE methods use gradsweep's TPE settings (multivariate, constant liar, 10 startup trials), so
they differ only in pruning. A trial's value counts only if it trained to the end within the
budget. Pruned trials are re-run to completion once to count false prunes (pruned trials that
would have ended in the run's top quartile). A paused trial (freeze-thaw) that was later thawed is
no prune; one never thawed is, and a false prune of that kind is a **lost winner**.

Each objective gets its own target (the median over seeds of its no-pruning TPE's best value at
budget), table and plot; a summary table over objectives follows, judging ``--ours`` (default
``gradsweep_ft`` when it runs, else ``gradsweep``) against the reference and the best *other*
method (gradsweep's own variants are never "other"). ``--json`` keeps every objective's records;
``--from-json`` recomputes the tables from them.

Usage::

    .venv/bin/python -m benchmarks.search_efficiency --quick      # 8-trial budget
    .venv/bin/python -m benchmarks.search_efficiency              # small scale, 30-trial budget
    .venv/bin/python -m benchmarks.search_efficiency --objectives finetune,segmentation@tiny

Before the last line come one line per objective and the issue's targets, met or not. The last
line is ``budget to target vs no-pruning TPE: X.XX (vs best other method: Y.YY)``: X is the median
over objectives of the judged method's steps to target over the no-pruning TPE's, Y the worst
(largest) over objectives of its ratio to the best other method (objectives where that ratio is
undefined, because no other method reached the target, left out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch

from benchmarks._common import (
    CountingReporter,
    TrialRecord,
    best_at_budget,
    median_or_inf,
    ratio_note,
    record_from_dict,
)
from benchmarks._efficiency_report import (
    MethodStats,
    ObjectiveSummary,
    false_prunes,
    median_and_worst,
    method_stats,
    objective_line,
    plot_curves,
    summarize_objective,
    summary_table,
    table,
    targets_line,
)
from benchmarks._optuna_runs import Rerunner, RunSpec, run_optuna
from gradsweep.objectives.api import TrialContext, run_objective
from gradsweep.objectives.registry import load_objective
from gradsweep.search.engine.algorithms import DEFAULT_PRUNER
from gradsweep.spaces.sampling import resolve, suggest
from gradsweep.spaces.space import SearchSpace, load_space

REPO = Path(__file__).resolve().parent.parent

DEFAULT_SPACE = REPO / "benchmarks" / "spaces" / "multitower_bench.yaml"
DEFAULT_PLOT = REPO / "benchmarks" / "figures" / "search_efficiency.png"
#: the issue-21 run: segmentation and finetune at ``tiny`` (a ``small`` trial takes 13-50 s on 2 CPU cores)
DEFAULT_OBJECTIVES = (
    "benchmarks/spaces/multitower_bench.yaml",
    "finetune@tiny",
    "benchmarks/spaces/unseen_twotower.yaml",
    "segmentation@tiny",
)
SCALES = ("tiny", "small", "full")
OURS_FT = "gradsweep_ft"
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
    "gradsweep_ft",
    "ray_hyperband",
    "topk",
    "syne_asha",
    "syne_bohb",
)
#: the methods issue 21 names (random_fifo and the gradsweep_median/health_only ablations on request)
DEFAULT_METHODS = (
    "tpe_nop",
    "ray_asha",
    "tpe_median",
    "tpe_hyperband",
    "ray_hyperband",
    "topk",
    "syne_asha",
    "syne_bohb",
    "gradsweep",
    "gradsweep_ft",
)
LABELS = {
    "tpe_nop": "TPE, no pruning (reference)",
    "random_fifo": "Ray Tune random + FIFO",
    "ray_asha": "Ray Tune random + ASHA",
    "tpe_median": "Optuna TPE + MedianPruner",
    "tpe_hyperband": "Optuna TPE + HyperbandPruner",
    "gradsweep": "gradsweep (TPE + HealthPruner(catchup), Ray)",
    "gradsweep_median": "gradsweep with --pruner median (the earlier default)",
    "gradsweep_health_only": "gradsweep, health rules only (base pruner none)",
    "gradsweep_ft": "gradsweep --pruner freeze-thaw (pause, learning-curve model, thaw)",
    "ray_hyperband": "Ray Tune random + HyperBand (pauses)",
    "topk": "one interval each, then top k (random)",
    "syne_asha": "Syne Tune ASHA",
    "syne_bohb": "Syne Tune BOHB (ASHA + KDE)",
}
RAY_METHODS = (
    "random_fifo",
    "ray_asha",
    "gradsweep",
    "gradsweep_median",
    "gradsweep_health_only",
    "gradsweep_ft",
    "ray_hyperband",
)
ENGINE_PRUNERS = {
    "gradsweep": DEFAULT_PRUNER,
    "gradsweep_median": "median",
    "gradsweep_health_only": "none",
    "gradsweep_ft": "freeze_thaw",
}


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
    if method in ("random_fifo", "ray_asha", "ray_hyperband"):
        from benchmarks._ray_runs import run_ray

        kind = {"random_fifo": "fifo", "ray_asha": "asha", "ray_hyperband": "hyperband"}[method]
        return run_ray(spec, kind, full_steps=full_steps, interval=interval)
    if method == "topk":
        from benchmarks._topk_runs import run_topk

        return run_topk(spec, full_steps=full_steps, interval=interval)
    if method in ("syne_asha", "syne_bohb"):
        from benchmarks._syne_runs import run_syne, syne_missing

        missing = syne_missing()
        if missing:
            print(f"  {method}: skipped, {missing}", flush=True)
            return []
        return run_syne(spec, method.removeprefix("syne_"), full_steps=full_steps, interval=interval)
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


def add_problem_args(
    p: argparse.ArgumentParser,
    *,
    budget_help: str,
    budget_default: float | None,
    space_default: str | None = str(DEFAULT_SPACE),
) -> None:
    """The options that fix the problem every method solves: space, scale, budget, data seed.

    Shared with ``pruner_ablation.py``, so both scripts read the same flags the same way.
    """
    p.add_argument("--space", default=space_default, help="preset name or YAML path")
    p.add_argument("--scale", default="small", choices=list(SCALES))
    p.add_argument("--budget-trials", type=float, default=budget_default, help=budget_help)
    p.add_argument("--config-seed", type=int, default=0, help="the objective's data/init seed")


def parse_objectives(text: str, default_scale: str) -> list[tuple[str, str]]:
    """``--objectives``: comma-separated preset names or YAML paths, each optionally ``@scale``.

    Example:
        >>> parse_objectives("finetune, benchmarks/spaces/x.yaml@tiny", "small")
        [('finetune', 'small'), ('benchmarks/spaces/x.yaml', 'tiny')]
    """
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        source, sep, scale = item.rpartition("@")
        if not sep:
            source, scale = item, default_scale
        if scale not in SCALES:
            raise ValueError(f"{item!r}: the scale after '@' must be one of {', '.join(SCALES)}")
        out.append((source, scale))
    if not out:
        raise ValueError("--objectives names no objective")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="budget of 8 full trials instead of 30 (< 15 min)")
    p.add_argument("--seeds", type=int, default=3, help="repetitions per method (sampler seeds 0..n-1)")
    add_problem_args(
        p, budget_help="budget in full trials (30; quick 8)", budget_default=None, space_default=None
    )
    p.add_argument(
        "--objectives",
        default=None,
        help="comma-separated preset names or space YAML paths, each optionally NAME@SCALE (default: "
        + ", ".join(DEFAULT_OBJECTIVES)
        + "; --space X is --objectives X)",
    )
    p.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help="comma-separated subset of " + ", ".join(METHODS)
    )
    p.add_argument(
        "--ours",
        default=None,
        help="the method judged by the summary and the last line (default gradsweep_ft if it runs, else gradsweep)",
    )
    p.add_argument(
        "--rerun",
        choices=["all", "gradsweep", "none"],
        default=None,
        help="whose pruned trials to re-run for the false-prune count (default all; quick gradsweep)",
    )
    p.add_argument(
        "--plot", default=str(DEFAULT_PLOT), help="PNG path ('' for none; one per objective, suffixed)"
    )
    p.add_argument("--json", default="", help="also write the per-run records and figures here")
    p.add_argument(
        "--target",
        type=float,
        default=None,
        help="override the target (one objective only; default: the reference's)",
    )
    p.add_argument(
        "--from-json", default="", help="recompute the tables and plots from an earlier --json file"
    )
    args = p.parse_args(argv)
    if args.space is not None and args.objectives is not None:
        p.error("give --objectives or --space (one objective), not both")
    text = args.objectives if args.objectives is not None else args.space or ",".join(DEFAULT_OBJECTIVES)
    try:
        args.objectives = parse_objectives(text, args.scale)
    except ValueError as exc:
        p.error(f"--objectives: {exc}")
    if args.target is not None and len(args.objectives) > 1:
        p.error("--target needs a single objective")
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        p.error(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if REFERENCE not in args.methods:
        args.methods.insert(0, REFERENCE)
    syne = [m for m in args.methods if m.startswith("syne_")]
    if syne:
        from benchmarks._syne_runs import syne_missing

        missing = syne_missing()
        if missing is not None:  # an optional benchmark dependency: the run goes on without them
            print(f"{', '.join(syne)}: skipped, {missing}")
            args.methods = [m for m in args.methods if m not in syne]
    args.ours_given = args.ours is not None
    if args.ours is None:
        args.ours = OURS_FT if OURS_FT in args.methods else GRADSWEEP
    elif args.ours not in METHODS:
        p.error(f"--ours: unknown {args.ours}; choose from {', '.join(METHODS)}")
    elif args.ours not in args.methods:
        args.methods.append(args.ours)
    if args.rerun is None:
        args.rerun = "gradsweep" if args.quick else "all"
    if args.budget_trials is None:
        args.budget_trials = 8.0 if args.quick else 30.0
    return args


@dataclass
class ObjectiveRuns:
    """One objective's problem and every method's runs on it.

    Attributes:
        source: the preset name or YAML path it was given as (``--objectives``).
        scale: its scale.
        space: the loaded space.
        label: its name in the tables (the space's name, with ``@scale`` when that name repeats).
        budget: the step budget of every run.
        interval: steps between reports.
        full_steps: steps of a full trial (0 when read from an old ``--json`` file).
        runs: method -> one record list per seed.
        walls: method -> wall seconds per seed.
    """

    source: str
    scale: str
    space: SearchSpace
    label: str
    budget: int = 0
    interval: int = 1
    full_steps: int = 0
    runs: dict[str, list[list[TrialRecord]]] = field(default_factory=dict)
    walls: dict[str, list[float]] = field(default_factory=dict)


def _load_space(source: str) -> SearchSpace:
    """``load_space``, reading a relative path that is not under the working directory from the repository."""
    if not Path(source).exists() and (REPO / source).exists():
        return load_space(REPO / source)
    return load_space(source)


def _objectives(pairs: list[tuple[str, str]]) -> list[ObjectiveRuns]:
    spaces = [(source, scale, _load_space(source)) for source, scale in pairs]
    names = [space.name for _, _, space in spaces]
    return [
        ObjectiveRuns(
            source, scale, space, space.name if names.count(space.name) == 1 else f"{space.name}@{scale}"
        )
        for source, scale, space in spaces
    ]


class _RayOnDemand:
    """Starts the benchmark's local Ray at the first Ray method and keeps it up over every objective."""

    def __init__(self) -> None:
        self.up = False

    def ensure(self) -> None:
        if not self.up:
            _start_ray()
            self.up = True

    def close(self) -> None:
        if self.up:
            import ray

            ray.shutdown()
            self.up = False


def collect(args: argparse.Namespace, obj: ObjectiveRuns, ray: _RayOnDemand) -> None:
    """Run every method once per seed on ``obj`` (budget and interval set); fills its runs and walls."""
    direction = obj.space.metric.direction
    obj.runs = {m: [] for m in args.methods}
    obj.walls = {m: [] for m in args.methods}
    for seed in range(args.seeds):
        spec = RunSpec(obj.space, obj.scale, seed, args.config_seed, obj.budget)
        for method in args.methods:
            if method in RAY_METHODS:
                ray.ensure()
            t0 = time.monotonic()
            records = run_method(method, spec, full_steps=obj.full_steps, interval=obj.interval)
            obj.walls[method].append(time.monotonic() - t0)
            obj.runs[method].append(records)
            best = best_at_budget(records, obj.budget, direction)
            print(f"  seed {seed} {method:<14s} {len(records):3d} trials, {sum(r.steps for r in records):6d} steps, "
                  f"best {best if best is not None else float('nan'):.4f}, {obj.walls[method][-1]:.0f} s", flush=True)  # fmt: skip


def _interval_of(runs: dict[str, list[list[TrialRecord]]]) -> int:
    gaps = [
        b.step - a.step
        for rs in runs.values()
        for recs in rs
        for r in recs
        for a, b in zip(r.reports, r.reports[1:], strict=False)
    ]
    return min((g for g in gaps if g > 0), default=1)


def load_runs(path: Path, pairs: list[tuple[str, str]]) -> list[ObjectiveRuns]:
    """Every objective's records, wall seconds, budget and report interval from a ``--json`` file.

    A file of the single-objective format (before ``--objectives``) is read as the first of ``pairs``.
    """
    data = json.loads(path.read_text())
    entries = data.get("objectives")
    if entries is None:
        source, scale = pairs[0]
        entries = [{**data, "space": source, "scale": scale}]
    out = []
    for objective, entry in zip(
        _objectives([(e["space"], e["scale"]) for e in entries]), entries, strict=True
    ):
        runs = {m: [[record_from_dict(r) for r in recs] for recs in rs] for m, rs in entry["runs"].items()}
        objective.runs = runs
        objective.walls = {m: [float(entry["stats"][m]["wall_s"])] * len(rs) for m, rs in runs.items()}
        objective.budget = int(entry["budget"])
        objective.interval = int(entry.get("interval") or _interval_of(runs))
        objective.full_steps = int(entry.get("full_steps") or 0)
        out.append(objective)
    return out


@dataclass
class ObjectiveResult:
    """What one objective came to: its target, every method's figures and the judged method's summary."""

    obj: ObjectiveRuns
    target: float
    target_text: str
    stats: dict[str, MethodStats]
    summary: ObjectiveSummary

    def to_dict(self) -> dict[str, Any]:
        o = self.obj
        return {"objective": o.label, "space": o.source, "scale": o.scale, "direction": o.space.metric.direction,
                "budget": o.budget, "interval": o.interval, "full_steps": o.full_steps, "target": self.target,
                "target_text": self.target_text, "summary": self.summary.to_dict(),
                "stats": {m: s.to_dict() for m, s in self.stats.items()},
                "runs": {m: [[asdict(r) for r in recs] for recs in rs] for m, rs in o.runs.items()}}  # fmt: skip


def _plot_path(plot: str, label: str, several: bool) -> Path:
    path = Path(plot)
    return path.with_name(f"{path.stem}_{label}{path.suffix}") if several else path


def evaluate(args: argparse.Namespace, obj: ObjectiveRuns, several: bool) -> ObjectiveResult:
    """Target, false-prune re-runs, figures and table of one objective; prints them."""
    direction = obj.space.metric.direction
    ref_bests = [best_at_budget(r, obj.budget, direction) for r in obj.runs.get(REFERENCE, [])]
    found = [b for b in ref_bests if b is not None]
    target = median_or_inf(found) if found else math.nan
    target_text = "median over seeds of the no-pruning TPE's best value at the full budget"
    if args.target is not None:
        target, target_text = args.target, "given with --target"
    rerunner = Rerunner(obj.space, obj.scale, args.config_seed)
    stats: dict[str, MethodStats] = {}
    for method, method_runs in obj.runs.items():
        check = args.rerun == "all" or (args.rerun == "gradsweep" and method.startswith(GRADSWEEP))
        fp = false_prunes(method_runs, rerunner, direction) if check else None
        stats[method] = method_stats(
            method, method_runs, obj.walls[method], obj.budget, target, direction, obj.interval, fp
        )
    print()
    print(f"{obj.label} ({obj.scale}): target = {target:.4f} ({target_text})")
    print(table(stats, LABELS, obj.budget, obj.interval))
    if args.plot:
        path = _plot_path(args.plot, obj.label, several)
        plot_curves(
            obj.runs, LABELS, obj.budget, direction, path, title=f"{obj.space.name} at {obj.scale} scale"
        )
        print(f"plot: {path}")
    summary = summarize_objective(obj.label, obj.scale, stats, args.ours, target, direction, REFERENCE)
    note = ratio_note(summary.ours_steps, summary.best_other_steps, args.ours) if args.ours in stats else None
    if note:
        print(note)
    if args.ours in stats:
        g = stats[args.ours]
        fp_text = (
            "not checked"
            if g.false_prunes is None
            else f"{g.false_prunes} of {g.false_checked} ({g.false_prunes_unstable} of them unstable-kind)"
        )
        lost = "not checked" if g.lost_winners is None else f"{g.lost_winners} of {g.lost_checked}"
        print(f"{args.ours}: best at budget {g.best_mean:.4f} vs reference {stats[REFERENCE].best_mean:.4f}; "
              f"unstable trials pruned within one report interval: {g.fast_unstable_prunes}/{g.unstable_trials}; "
              f"false prunes: {fp_text}; paused {g.paused}, thawed {g.thawed}, lost winners {lost}")  # fmt: skip
    return ObjectiveResult(obj, target, target_text, stats, summary)


def main(argv: list[str] | None = None) -> dict[str, dict[str, MethodStats]]:
    """Run (or, with ``--from-json``, re-read) every objective; returns each one's figures by label."""
    args = parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.monotonic()
    if args.from_json:
        objectives = load_runs(Path(args.from_json), args.objectives)
        ran = {m for o in objectives for m in o.runs}
        args.methods = [m for m in METHODS if m in ran] + sorted(ran - set(METHODS))
        if not args.ours_given:
            args.ours = OURS_FT if OURS_FT in ran else GRADSWEEP
        print(f"records of {args.from_json}: {', '.join(o.label for o in objectives)}")
    else:
        objectives = _objectives(args.objectives)
    several = len(objectives) > 1
    results: list[ObjectiveResult] = []
    ray = _RayOnDemand()
    try:
        for obj in objectives:
            direction = obj.space.metric.direction
            if not args.from_json:
                obj.full_steps, obj.interval = calibrate(obj.space, obj.scale, args.config_seed)
                obj.budget = round(args.budget_trials * obj.full_steps)
                print(f"\nobjective {obj.label}: space {obj.space.name} (objective {obj.space.objective}, {direction} "
                      f"{obj.space.metric.name}) at scale {obj.scale}; a full trial = {obj.full_steps} steps, a report "
                      f"every {obj.interval}; budget {obj.budget} steps (= {args.budget_trials:g} full trials); "
                      f"seeds {args.seeds}; one trial at a time; torch threads 1", flush=True)  # fmt: skip
                collect(args, obj, ray)
            results.append(evaluate(args, obj, several))
    finally:
        ray.close()
    summaries = [r.summary for r in results]
    median, worst = median_and_worst(summaries)
    print()
    print(
        f"summary over {len(summaries)} objective(s), judged method {args.ours} ({LABELS.get(args.ours, args.ours)})"
    )
    print(summary_table(summaries, LABELS))
    if args.json:
        data = {"ours": args.ours, "seeds": args.seeds, "methods": args.methods,
                "median_vs_reference": median, "worst_vs_best_other": worst,
                "objectives": [r.to_dict() for r in results]}  # fmt: skip
        Path(args.json).write_text(json.dumps(data, default=str))
    print(
        f"wall time {time.monotonic() - started:.0f} s (2 shared CPU cores: wall times are noisy; budgets are in steps)"
    )
    print(targets_line(summaries))
    for s in summaries:
        print(objective_line(s))
    print(f"budget to target vs no-pruning TPE: {median:.2f} (vs best other method: {worst:.2f})")
    return {r.obj.label: r.stats for r in results}


if __name__ == "__main__":
    main()
