"""A PostgreSQL connection dropped while the driver's sampler or pruner reads the study.

The restart test in ``test_postgres_faults.py`` restarts the server at a moment it cannot choose;
once (sixth session, a clean-clone CI run) the restart landed while TPE was reading the trials to
sample the next config, a read the driver did not retry, and the sweep died. These tests drop the
connection for real at exactly that moment: a SQLAlchemy hook on the store's engine has the
server terminate the driver's backend (``pg_terminate_backend``, as a restart does) just before
the first query of the armed call runs, so that query fails with ``AdminShutdown``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import optuna
import psycopg
import pytest
import sqlalchemy
from optuna.trial import TrialState

from gradsweep.objectives.health.verdict import HealthReport
from gradsweep.search.engine.storage import open_storage
from gradsweep.search.pruner import HealthPruner
from tests.conftest import _admin_conninfo
from tests.search.engine._support import make_bridge

pytestmark = [pytest.mark.postgres]


class ConnectionKiller:
    """Terminates the backend of the next statement run on ``engine`` after :meth:`arm`."""

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.armed = False
        self.killed = 0
        sqlalchemy.event.listen(engine, "before_cursor_execute", self._before)
        self.engine = engine

    def arm(self) -> None:
        self.armed = True

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.armed:
            return
        self.armed = False
        pid = conn.connection.dbapi_connection.info.backend_pid
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        self.killed += 1

    def close(self) -> None:
        sqlalchemy.event.remove(self.engine, "before_cursor_execute", self._before)


class ArmingTPE(optuna.samplers.TPESampler):
    """TPE that arms the killer on its first relative-search-space call (which reads the trials)."""

    def __init__(self, killer: ConnectionKiller, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.killer = killer
        self.calls = 0

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            self.killer.arm()
        return super().infer_relative_search_space(study, trial)


class ArmingDecider:
    """A health pruner whose first decision reads the study after the killer is armed."""

    def __init__(self, killer: ConnectionKiller) -> None:
        self.killer = killer
        self.inner = HealthPruner(optuna.pruners.MedianPruner(n_startup_trials=1))
        self.calls = 0

    def decide_with(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, latest: HealthReport | None
    ) -> Any:
        self.calls += 1
        if self.calls == 1:
            self.killer.arm()
            study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))  # what a base pruner reads first
        return self.inner.decide_with(study, trial, latest)


@pytest.fixture
def store(fresh_pg_url: str) -> Iterator[tuple[optuna.storages.RDBStorage, ConnectionKiller]]:
    storage = open_storage(fresh_pg_url)
    killer = ConnectionKiller(storage.engine)
    try:
        yield storage, killer
    finally:
        killer.close()
        storage.engine.dispose()


def _final(value: float) -> dict[str, object]:
    return {"gs_final": True, "gs_outcome": "complete", "gs_value": value, "gs_step": 3}


def test_a_connection_dropped_while_tpe_samples_costs_a_retry_not_the_sweep(store) -> None:  # type: ignore[no-untyped-def]
    storage, killer = store
    sampler = ArmingTPE(killer, seed=0, n_startup_trials=0, multivariate=True, constant_liar=True)
    study = optuna.create_study(storage=storage, direction="maximize", sampler=sampler)
    bridge = make_bridge(study, HealthPruner(), n_trials=2)

    config = bridge.ask("ray-a")
    # the server really dropped the driver's connection inside the sampler's read ...
    assert killer.killed == 1 and sampler.calls >= 2
    # ... and the ask went through: one trial, with its params and config stored
    assert config is not None and config["gs_trial"] == 0
    [trial] = study.get_trials()
    assert trial.state == TrialState.RUNNING and trial.params and "gradsweep.config" in trial.user_attrs
    bridge.finish("ray-a", _final(0.5))
    # the sweep goes on: the next trial is trial 1, no second trial 0, nothing failed
    assert bridge.ask("ray-b") is not None
    assert [(t.number, t.state) for t in study.get_trials()] == [
        (0, TrialState.COMPLETE),
        (1, TrialState.RUNNING),
    ]


def test_a_connection_dropped_while_the_pruner_reads_costs_a_retry(store) -> None:  # type: ignore[no-untyped-def]
    storage, killer = store
    study = optuna.create_study(
        storage=storage, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    decider = ArmingDecider(killer)
    bridge = make_bridge(study, decider, n_trials=1)
    bridge.ask("ray-a")

    stop = bridge.on_result("ray-a", {"gs_value": 0.4, "gs_step": 1, "gs_final": False})
    # the connection was dropped inside the decision's read, and the decision was made again
    assert killer.killed == 1 and decider.calls == 2 and stop is False
    # the report was stored once
    assert study.get_trials()[0].intermediate_values == {1: 0.4}
