"""Study-store throughput: concurrent writer processes on PostgreSQL, one writer on SQLite.

A "trial" here is what a sweep writes for one trial: ``ask``, one sampled parameter, two user
attrs (writer, index), three intermediate values, ``tell``. Writers start together (a barrier);
the clock runs from the barrier to the last writer's end. Afterwards the study is read back and
checked: exactly ``writers x trials`` COMPLETE trials, each (writer, index) pair exactly once with
its value (zero lost or duplicated writes), and the errors each writer saw (lock errors counted
apart).
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import optuna

from gradsweep.search.engine.storage import open_storage

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@dataclass(frozen=True)
class StoreResult:
    """Throughput and integrity of one store run."""

    label: str
    writers: int
    trials_per_writer: int
    seconds: float
    stored: int
    complete: int
    lost: int
    duplicated: int
    errors: int
    lock_errors: int

    @property
    def trials_per_s(self) -> float:
        return self.writers * self.trials_per_writer / self.seconds


def _one_trial(study: optuna.Study, writer: int, index: int) -> None:
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("writer", writer)
    trial.set_user_attr("index", index)
    for step in (1, 2, 3):
        trial.report(x * step, step)
    study.tell(trial, x)


def _writer(url: str, study_name: str, writer: int, n: int, barrier: Any, out: Any) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=study_name, storage=open_storage(url, create=False))
    errors = locks = 0
    barrier.wait()
    for index in range(n):
        try:
            _one_trial(study, writer, index)
        except Exception as exc:  # counted, not hidden: the result reports every one
            errors += 1
            locks += "lock" in str(exc).lower()
    out.put((writer, errors, locks, time.monotonic()))


def _check(url: str, study_name: str, writers: int, n: int) -> tuple[int, int, int, int]:
    study = optuna.load_study(study_name=study_name, storage=open_storage(url, create=False))
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pairs = Counter(
        (t.user_attrs.get("writer"), t.user_attrs.get("index"))
        for t in complete
        if t.value == t.params.get("x")
    )
    wanted = {(w, i) for w in range(writers) for i in range(n)}
    lost = len(wanted - set(pairs))
    duplicated = sum(c - 1 for c in pairs.values() if c > 1)
    return len(trials), len(complete), lost, duplicated


def run_store(url: str, label: str, *, writers: int, trials_per_writer: int) -> StoreResult:
    """Run ``writers`` processes of ``trials_per_writer`` trials each against ``url`` and check the study."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name = f"store-bench-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=open_storage(url))
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(writers + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(url, name, w, trials_per_writer, barrier, out))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.monotonic()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    seconds = max(r[3] for r in results) - start
    stored, complete, lost, duplicated = _check(url, name, writers, trials_per_writer)
    return StoreResult(label, writers, trials_per_writer, seconds, stored, complete, lost, duplicated,
                       sum(r[1] for r in results), sum(r[2] for r in results))  # fmt: skip


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new PostgreSQL database on 127.0.0.1:5432 (user postgres), dropped afterwards; yields its URL."""
    import psycopg

    name = f"gradsweep_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.format(name=name)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
