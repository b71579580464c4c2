"""Which base pruner should gradsweep wrap? Variants of the health pruner side by side, plain Optuna.

The search-efficiency benchmark runs gradsweep through Ray Tune; choosing between base pruners
needs many more runs than that affords, so this script runs each variant in a plain
``study.optimize`` (``benchmarks._optuna_runs.run_optuna``: the same TPE sampler, objective,
space, budget in steps and false-prune check as ``search_efficiency.py``). The engine makes the
same decisions from the same study as ``study.optimize`` does: ``health_median`` here reproduced
the Ray sweep's per-seed values, trials, prunes and false prunes exactly (BENCHMARKS.md).

============================  ==========================================================================
``tpe_nop``                   TPE, no pruning (the reference; its median best value is the target)
``tpe_median``                TPE + Optuna's ``MedianPruner()`` (no health rules)
``health_median``             ``HealthPruner(MedianPruner(n_startup_trials=5))``
``health_median_noguard``     the same without the final-report guard (the default before ``catchup``)
``catchup``                   ``HealthPruner()``: ``CatchUpPruner()`` (0.75 bar over the finished trials
                              and the pruned ones at their best, gains x 1.5, 5 startup trials), the default
``catchup_noguard``           the same without the final-report guard
``catchup_barpruned``         ``CatchUpPruner(bar_counts_pruned=True)``: the same as ``catchup`` since the
                              fifth session (the name the fourth session's runs used)
``catchup_survivors``         ``CatchUpPruner(bar_counts_pruned=False)``: the bar from the finished trials
                              only, the default of sessions 2-4
============================  ==========================================================================

The variants below keep the survivors-only bar (``bar_counts_pruned=False``) they were measured with:

============================  ==========================================================================
``catchup_gain100``           ``gain_factor=1.0``: the finished trials' largest gain as is
``catchup_gain100_noguard``   the same without the final-report guard
``catchup_gain125``           ``gain_factor=1.25``
``catchup_q50``               ``CatchUpPruner(0.5, gain_factor=1.0)``: the median final value as the bar
``catchup_startup3``          ``gain_factor=1.0, n_startup_trials=3``
``catchup_startup3_gain150``  ``n_startup_trials=3``: the default's margin, 3 startup trials
``catchup_startup4_gain150``  ``n_startup_trials=4``
============================  ==========================================================================

A variant may name another sampler after ``@`` (the reference always uses gradsweep's TPE):

=================  ==============================================================================
``@tpe``           gradsweep's TPE (``make_sampler("tpe")``: multivariate, constant liar, 10 random
                   start-up trials; in Optuna 5 the same as ``TPESampler()``'s defaults); the default
``@tpe_startup5``  the same TPE with 5 random start-up trials
``@gp``            Optuna's ``GPSampler`` (10 random start-up trials; it models finished trials only)
=================  ==============================================================================

Usage::

    .venv/bin/python -m benchmarks.pruner_ablation --seeds 0,1,2 --variants tpe_nop,tpe_median,catchup
    .venv/bin/python -m benchmarks.pruner_ablation --seeds 0,1,2 --variants tpe_nop@tpe_startup5,catchup@gp

The last line compares the default (``catchup``) with the reference and the best non-gradsweep variant.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import optuna
import torch

from benchmarks._common import TrialRecord, best_at_budget, median_or_inf, ratio, ratio_note
from benchmarks._efficiency_report import false_prunes, method_stats, table
from benchmarks._optuna_runs import Rerunner, RunSpec, run_optuna
from benchmarks.search_efficiency import add_problem_args, calibrate
from gradsweep.search.catchup import CatchUpPruner
from gradsweep.search.engine.algorithms import make_sampler
from gradsweep.search.pruner import HealthPruner
from gradsweep.spaces.space import load_space

REPO = Path(__file__).resolve().parent.parent


def _survivors(quantile: float = 0.75, **kwargs: float) -> CatchUpPruner:
    """The catch-up rule with the bar from the finished trials only (as the older variants ran)."""
    return CatchUpPruner(quantile, bar_counts_pruned=False, **kwargs)  # type: ignore[arg-type]


REFERENCE = "tpe_nop"
DEFAULT = "catchup"
Variant = tuple[Callable[[], optuna.pruners.BasePruner], bool]  # (pruner factory, declare total steps)
VARIANTS: dict[str, Variant] = {
    "tpe_nop": (optuna.pruners.NopPruner, True),
    "tpe_median": (optuna.pruners.MedianPruner, True),
    "health_median": (lambda: HealthPruner(optuna.pruners.MedianPruner(n_startup_trials=5)), True),
    "health_median_noguard": (lambda: HealthPruner(optuna.pruners.MedianPruner(n_startup_trials=5)), False),
    "catchup": (HealthPruner, True),
    "catchup_noguard": (HealthPruner, False),
    "catchup_barpruned": (lambda: HealthPruner(CatchUpPruner(bar_counts_pruned=True)), True),
    "catchup_survivors": (lambda: HealthPruner(_survivors()), True),
    "catchup_gain100": (lambda: HealthPruner(_survivors(gain_factor=1.0)), True),
    "catchup_gain100_noguard": (lambda: HealthPruner(_survivors(gain_factor=1.0)), False),
    "catchup_gain125": (lambda: HealthPruner(_survivors(gain_factor=1.25)), True),
    "catchup_q50": (lambda: HealthPruner(_survivors(0.5, gain_factor=1.0)), True),
    "catchup_startup3": (lambda: HealthPruner(_survivors(gain_factor=1.0, n_startup_trials=3)), True),
    "catchup_startup3_gain150": (lambda: HealthPruner(_survivors(n_startup_trials=3)), True),
    "catchup_startup4_gain150": (lambda: HealthPruner(_survivors(n_startup_trials=4)), True),
}

SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: make_sampler("tpe", seed=seed),
    "tpe_startup5": lambda seed: make_sampler("tpe", seed=seed, n_startup_trials=5),
    "gp": lambda seed: make_sampler("gp", seed=seed),
}


def split_variant(name: str) -> tuple[str, str]:
    """``"catchup@gp"`` -> ``("catchup", "gp")``; no ``@`` means gradsweep's TPE.

    Example:
        >>> split_variant("catchup@gp"), split_variant("tpe_nop")
        (('catchup', 'gp'), ('tpe_nop', 'tpe'))
    """
    pruner, _, sampler = name.partition("@")
    return pruner, sampler or "tpe"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="tpe_nop,tpe_median,health_median_noguard,catchup",
                   help="comma-separated subset of " + ", ".join(VARIANTS) + "; append @SAMPLER for another "
                        "sampler (" + ", ".join(SAMPLERS) + ")")  # fmt: skip
    p.add_argument("--seeds", default="0,1,2", help="sampler seeds, comma-separated")
    add_problem_args(p, budget_help="budget in full trials", budget_default=30.0)
    p.add_argument(
        "--no-rerun", action="store_true", help="skip re-running pruned trials (no false-prune count)"
    )
    p.add_argument("--json", default="", help="also write the per-run records here")
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if split_variant(v)[0] not in VARIANTS]
    if unknown:
        p.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    bad = [v for v in args.variants if split_variant(v)[1] not in SAMPLERS]
    if bad:
        p.error(f"--variants: unknown sampler in {', '.join(bad)}; choose from {', '.join(SAMPLERS)}")
    if REFERENCE not in args.variants:
        args.variants.insert(0, REFERENCE)
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.error(f"--seeds: comma-separated integers, got {args.seeds!r}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(args.space)
    direction = space.metric.direction
    full_steps, interval = calibrate(space, args.scale, args.config_seed)
    budget = round(args.budget_trials * full_steps)
    print(f"space {space.name} at scale {args.scale}: a full trial = {full_steps} steps, budget {budget} steps; "
          f"seeds {args.seeds}; plain study.optimize, one trial at a time", flush=True)  # fmt: skip
    started = time.monotonic()
    runs: dict[str, list[list[TrialRecord]]] = {}
    walls: dict[str, list[float]] = {}
    for name in args.variants:
        pruner, sampler = split_variant(name)
        make, declare = VARIANTS[pruner]
        runs[name], walls[name] = [], []
        for seed in args.seeds:
            t0 = time.monotonic()
            spec = RunSpec(space, args.scale, seed, args.config_seed, budget)
            records = run_optuna(spec, make(), declare_total=declare, sampler=SAMPLERS[sampler](seed))
            walls[name].append(time.monotonic() - t0)
            runs[name].append(records)
            best = best_at_budget(records, budget, direction)
            print(f"  {name:<22s} seed {seed}: {len(records):3d} trials, best {best if best is not None else float('nan'):.4f}",
                  flush=True)  # fmt: skip
    ref_bests = [b for b in (best_at_budget(r, budget, direction) for r in runs[REFERENCE]) if b is not None]
    target = median_or_inf(ref_bests)
    rerunner = None if args.no_rerun else Rerunner(space, args.scale, args.config_seed)
    stats = {}
    for name in args.variants:
        fp = false_prunes(runs[name], rerunner, direction)
        stats[name] = method_stats(name, runs[name], walls[name], budget, target, direction, interval, fp)
    print()
    print(f"target = {target:.4f} (median over seeds of {REFERENCE}'s best value at the full budget)")
    print(table(stats, {}, budget, interval))
    if args.json:
        data = {"budget": budget, "interval": interval, "target": target, "seeds": args.seeds,
                "stats": {m: s.to_dict() for m, s in stats.items()},
                "runs": {m: [[asdict(r) for r in recs] for recs in rs] for m, rs in runs.items()}}  # fmt: skip
        Path(args.json).write_text(json.dumps(data, default=str))
    print(f"wall time {time.monotonic() - started:.0f} s")
    if DEFAULT in stats:
        ours = stats[DEFAULT].steps_to_target
        others = [s.steps_to_target for m, s in stats.items() if m.startswith("tpe_") and m != REFERENCE]
        best_other = min(others) if others else float("nan")
        note = ratio_note(ours, best_other, who=DEFAULT, rivals="plain-Optuna variant")
        if note:
            print(note)
        print(f"catchup: budget to target vs no-pruning TPE: {ratio(ours, stats[REFERENCE].steps_to_target):.2f} "
              f"(vs best plain-Optuna variant: {ratio(ours, best_other):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
