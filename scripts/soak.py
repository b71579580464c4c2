"""Soak: one long sweep of tiny trials against PostgreSQL, then check that nothing was lost.

Runs the real ``gradsweep launch`` (local Ray) with ``--n-trials`` cheap trials at
``--concurrency`` into a fresh PostgreSQL database, then checks exact counts: every trial
number 0..N-1 exactly once, each in a final state, none RUNNING or WAITING, the finished
count equal to N. Prints the wall time, throughput and the database size
(``pg_database_size``) as a Markdown row for BENCHMARKS.md. Not part of the test suite.

Example::

    .venv/bin/python scripts/soak.py --trials 200 --concurrency 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ADMIN_URL = os.environ.get("GRADSWEEP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
GRADSWEEP = str(Path(sys.executable).parent / "gradsweep")

OBJECTIVE = '''
"""The soak's objective: a few microseconds of arithmetic and three reports per trial."""
import math


def tiny(config, ctx):
    value = -abs(math.log10(config.towers[0].lr) + 2.0)
    for step in range(3):
        ctx.report(value, step)
    return value
'''


def space(objective: str) -> dict[str, Any]:
    """A one-tower space over the LR (the soak measures the machinery, not training)."""
    return {
        "name": "soak",
        "objective": objective,
        "metric": {"name": "score", "direction": "maximize"},
        "scale": "tiny",
        "seed": 0,
        "optimizer": {"name": "sgd"},
        "towers": [
            {"name": "all", "patterns": ["*"], "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}}
        ],
        "stages": [{"name": "train", "steps": 3}],
    }


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def check(url: str, n: int) -> dict[str, Any]:
    """Exact counts of the soak study; raises AssertionError on anything lost, doubled or stuck."""
    import optuna
    from optuna.trial import TrialState

    trials = optuna.load_study(study_name="soak", storage=url).get_trials(deepcopy=False)
    numbers = sorted(t.number for t in trials)
    states = Counter(t.state.name for t in trials)
    if numbers != list(range(n)):
        raise AssertionError(
            f"trial numbers are not exactly 0..{n - 1}: {len(numbers)} trials, {len(set(numbers))} distinct"
        )
    stuck = [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    if stuck:
        raise AssertionError(f"trials left RUNNING/WAITING: {stuck}")
    return {"trials": len(trials), "states": dict(states)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--cpus-per-trial", type=float, default=0.5, help="0.5 fits 4 trials on 2 cores")
    parser.add_argument(
        "--admin-url", default=ADMIN_URL, help="PostgreSQL URL allowed to CREATE/DROP DATABASE"
    )
    parser.add_argument("--keep", action="store_true", help="keep the soak database afterwards")
    args = parser.parse_args(argv)

    import psycopg

    name = f"gradsweep_soak_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_conninfo(args.admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{args.admin_url.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(_conninfo(url)) as conn:  # an empty database is not zero bytes: the baseline
        empty = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
    work = Path(tempfile.mkdtemp(prefix="gradsweep-soak-"))
    try:
        (work / "soak_objective.py").write_text(OBJECTIVE)
        (work / "soak.yaml").write_text(yaml.safe_dump(space(f"{work / 'soak_objective.py'}:tiny")))
        cmd = [
            GRADSWEEP,
            "launch",
            str(work / "soak.yaml"),
            "-n",
            str(args.trials),
            "--concurrency",
            str(args.concurrency),
            "--cpus-per-trial",
            str(args.cpus_per_trial),
            "--seed",
            "0",
            "--storage",
            url,
            "--runs-dir",
            str(work / "runs"),
            "--json",
        ]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        started = time.monotonic()
        result = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return result.returncode
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        counts = check(url, args.trials)
        with psycopg.connect(_conninfo(url)) as conn:
            size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        report = {
            "trials": args.trials,
            "concurrency": args.concurrency,
            "wall_s": round(wall, 1),
            "trials_per_s": round(args.trials / wall, 2),
            "db_bytes": size,
            "db_mib": round(size / 2**20, 2),
            "db_empty_bytes": empty,
            "db_growth_mib": round((size - empty) / 2**20, 2),
            "finished": summary.get("finished"),
            **counts,
        }
        print(json.dumps(report, sort_keys=True))
        print(
            f"| {args.trials} | {args.concurrency} | {wall:.0f} s | {args.trials / wall:.2f} | "
            f"{size / 2**20:.1f} MiB ({(size - empty) / 2**20:.1f} MiB over an empty database) | {counts['states']} |"
        )
        return 0
    finally:
        if not args.keep:
            with psycopg.connect(_conninfo(args.admin_url), autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
                )
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    raise SystemExit(main())
