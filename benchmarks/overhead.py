"""Overheads: the health monitor, the Ray Tune engine, and the study store.

* Monitor: monitored / bare step-time ratio, measured by ``benchmarks/health_overhead.py``
  (called here, not duplicated) in its ``clip`` mode (what the Trainer does) and its ``own``
  mode (the monitor computes the grad norms itself: the worst case).
* Engine: N short trials (the benchmark space at ``tiny`` scale, no pruning, one at a time)
  through ``gradsweep launch``'s engine on Ray vs the same sweep back to back in one plain Optuna
  process (``optimize_local``); per-trial overhead in seconds and sweep wall / sum of training
  time (a trial's objective call minus its time inside ``ctx.report``: under Ray a report waits
  for the driver). ``--checkpoint-every 60,0`` runs the engine once per setting, side by side
  (the first, here the default, makes the headline). ``--trivial`` sweeps a do-nothing objective
  (four reports, then a value) over a one-knob space instead: the engine's own cost.
* Store: 8 concurrent writer processes x 50 trials on PostgreSQL (127.0.0.1:5432, a fresh
  database, dropped afterwards) with exact counts, lost writes and lock errors; and SQLite with
  one writer (the sweep driver is SQLite's only writer); trials/s.

Usage::

    .venv/bin/python -m benchmarks.overhead --quick     # < 15 min on 2 CPU cores
    .venv/bin/python -m benchmarks.overhead --skip-monitor --trials 100

The last lines are the headline ratios (``monitor ...``, ``engine ...``, ``store ...``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import tempfile
from pathlib import Path

import optuna
import torch

from benchmarks import health_overhead
from benchmarks._engine_overhead import time_engine
from benchmarks._store_throughput import StoreResult, fresh_postgres, run_store
from benchmarks._trivial_objective import TRIVIAL_SPEC, trivial_space
from gradsweep.search.engine.ray.runtime import DEFAULT_CHECKPOINT_EVERY_S
from gradsweep.spaces.space import load_space

REPO = Path(__file__).resolve().parent.parent

DEFAULT_SPACE = REPO / "benchmarks" / "spaces" / "multitower_bench.yaml"
_RATIO = re.compile(r"health overhead ratio: ([0-9.]+)")


def monitor_ratio(mode: str, extra: list[str]) -> tuple[float, str]:
    """Run ``health_overhead.main`` in ``mode`` with ``extra`` arguments; returns its ratio and its output."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        health_overhead.main(["--mode", mode, *extra])
    out = buf.getvalue()
    match = _RATIO.search(out)
    if match is None:
        raise RuntimeError(f"health_overhead.py printed no ratio line:\n{out}")
    return float(match.group(1)), out


def _store_line(r: StoreResult) -> str:
    return (
        f"{r.label}: {r.writers} writer(s) x {r.trials_per_writer} trials in {r.seconds:.1f} s = {r.trials_per_s:.1f} trials/s; "
        f"stored {r.stored}, complete {r.complete}, lost {r.lost}, duplicated {r.duplicated}, "
        f"errors {r.errors} (lock errors {r.lock_errors})"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="health_overhead --quick and 20 engine trials (< 15 min)"
    )
    p.add_argument("--trials", type=int, default=None, help="engine trials (default 50; quick 20)")
    p.add_argument("--scale", default="tiny", choices=["tiny", "small", "full"], help="engine trials' scale")
    p.add_argument("--space", default=str(DEFAULT_SPACE))
    p.add_argument("--checkpoint-every", default=f"{DEFAULT_CHECKPOINT_EVERY_S:g}",
                   help="the engine's --checkpoint-every values, comma-separated: one Ray sweep each; the first "
                        "is the headline")  # fmt: skip
    p.add_argument("--trivial", action="store_true",
                   help="engine trials run a do-nothing objective over a one-knob space (the engine's own cost)")  # fmt: skip
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--writer-trials", type=int, default=50)
    p.add_argument(
        "--smoke", action="store_true", help="the smallest run of every part (for tests; figures meaningless)"
    )
    p.add_argument("--skip-monitor", action="store_true")
    p.add_argument("--skip-engine", action="store_true")
    p.add_argument("--skip-store", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n = args.trials or (20 if args.quick else 50)
    monitor_args = ["--quick"] if args.quick else []
    if args.smoke:
        n, args.writers, args.writer_trials = 2, 2, 3
        monitor_args = ["--pairs", "2", "--layers", "2", "--warmup", "1"]
    print("machine: 2 CPU cores shared with other jobs, no GPU; wall-time figures are noisy")
    headline: list[str] = []

    if not args.skip_monitor:
        ratios = {}
        for mode in ("clip", "own"):
            ratios[mode], out = monitor_ratio(mode, monitor_args)
            print(f"[monitor, mode {mode}] " + out.strip().replace("\n", "\n[monitor] "))
        headline.append(f"monitor overhead ratio: {ratios['clip']:.3f} (clip mode, as in the Trainer); "
                        f"{ratios['own']:.3f} (monitor computes the norms itself)")  # fmt: skip

    if not args.skip_engine:
        try:
            every = [float(x) for x in args.checkpoint_every.split(",") if x.strip()]
        except ValueError:
            p.error(f"--checkpoint-every: comma-separated seconds, got {args.checkpoint_every!r}")
        if args.trivial:
            space, scale, inner = trivial_space(), "tiny", TRIVIAL_SPEC
        else:
            space, scale, inner = load_space(args.space), args.scale, "multitower"
        engines, local, ray_start = time_engine(space, n, scale=scale, inner=inner, checkpoint_every=every)
        for t in (local, *engines):
            print(f"[engine] {t.label}: {t.n_trials} trials ({len(t.trial_s)} timed), sweep wall {t.wall_s:.1f} s, "
                  f"sum of training time {t.train_s:.1f} s (mean {t.train_s / max(len(t.trial_s), 1):.3f} s), "
                  f"ratio {t.ratio:.2f}, overhead {t.per_trial_overhead_s:.3f} s/trial: "
                  f"{t.inside_s / t.n_trials:.3f} s inside an open trial (ask -> tell, not training; "
                  f"of it {t.reporting_s / t.n_trials:.3f} s inside ctx.report), "
                  f"{t.between_s / t.n_trials:.3f} s with no trial open (start-up, scheduling, shutdown); "
                  f"from the 2nd trial on: ratio {t.steady_ratio:.2f}")  # fmt: skip
            if t is not local:
                print(f"[engine]   its wall / plain-Optuna sum of training time: {t.wall_s / local.train_s:.2f} "
                      f"(mean training per trial {t.train_s / n:.3f} s in Ray workers vs {local.train_s / n:.3f} s)")  # fmt: skip
        print(f"[engine] Ray start (not in the sweep walls): {ray_start:.1f} s")
        engine = engines[0]
        headline.append(f"engine: sweep wall / sum of training time {engine.ratio:.2f} under Ray (plain Optuna {local.ratio:.2f}); "
                        f"from the 2nd trial on {engine.steady_ratio:.2f} (plain Optuna {local.steady_ratio:.2f}); "
                        f"per-trial overhead {engine.per_trial_overhead_s:.2f} s (plain Optuna {local.per_trial_overhead_s:.2f} s)")  # fmt: skip

    if not args.skip_store:
        with fresh_postgres() as url:
            pg = run_store(url, "PostgreSQL", writers=args.writers, trials_per_writer=args.writer_trials)
        print("[store] " + _store_line(pg))
        with tempfile.TemporaryDirectory(prefix="gradsweep-bench-sqlite-") as tmp:
            lite = run_store(f"sqlite:///{tmp}/store.db", "SQLite", writers=1,
                             trials_per_writer=args.writers * args.writer_trials)  # fmt: skip
        print("[store] " + _store_line(lite))
        ok = pg.lost == 0 and pg.duplicated == 0 and pg.lock_errors == 0 and pg.errors == 0
        headline.append(f"store: PostgreSQL {pg.writers}x{pg.trials_per_writer} {pg.trials_per_s:.1f} trials/s "
                        f"({pg.complete}/{pg.writers * pg.trials_per_writer} complete, lost {pg.lost}, lock errors "
                        f"{pg.lock_errors}: {'OK' if ok else 'FAILED'}); SQLite single writer {lite.trials_per_s:.1f} trials/s")  # fmt: skip
    for line in headline:
        print(line)


if __name__ == "__main__":
    main()
