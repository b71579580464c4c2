"""A Ray node lost mid-sweep (issue 8, fault 4): two raylets on this machine, the worker one killed under a trial."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from gradsweep.search.engine.ray.launcher import LaunchRequest, launch
from gradsweep.search.engine.ray.runtime import Resources
from gradsweep.spaces.space import load_space
from tests.search.engine._support import load

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture
def two_nodes() -> Iterator[tuple[Any, Any]]:
    """A head and a worker node, one CPU each; dead nodes are noticed within seconds."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
        },
    )
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster, worker
    finally:
        cluster.shutdown()


def _kill_when_busy(
    cluster: Any, worker: Any, started: Path, killed: list[str], timeout_s: float = 120
) -> None:
    """Remove ``worker`` (no graceful drain) as soon as a trial has started on it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = started.read_text().splitlines() if started.exists() else []
        mine = [ln for ln in lines if ln.split()[0] == worker.node_id]
        if mine:
            time.sleep(0.7)  # let it report a step or two
            killed.append(mine[0].split()[2])
            cluster.remove_node(worker, allow_graceful=False)
            return
        time.sleep(0.2)


def test_lost_node_trials_are_rescheduled_or_recorded(
    two_nodes: tuple[Any, Any], fault_space, faulty: Path, tmp_path: Path
) -> None:
    cluster, worker = two_nodes
    started = faulty.parent / "started"
    killed: list[str] = []
    killer = threading.Thread(target=_kill_when_busy, args=(cluster, worker, started, killed), daemon=True)
    killer.start()
    request = LaunchRequest(
        space=load_space(fault_space("sleepy")),
        n_trials=4,
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        runs_dir=tmp_path / "runs",
        pruner="none",
        seed=0,
        abort_after=0,
        resources=Resources(address=cluster.address, concurrency=2, max_failures=1, checkpoint_every_s=0.0),
    )
    summary = launch(request)
    killer.join(timeout=5)
    trials = load(request.storage).get_trials()
    # the worker node was really removed while one of its trials ran
    assert killed, "no trial started on the worker node"
    # the sweep finished: all 4 trials are in a final state, none RUNNING, numbers 0..3
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and all(t.state.is_finished() for t in trials)
    # ... and counted as finished (not "interrupted")
    assert summary.finished == 4 and not summary.interrupted
    hit = [t for t in trials if f"{t.params['towers.all.lr']:.6g}" == killed[0]]
    (victim,) = hit
    attempts = [ln for ln in started.read_text().splitlines() if ln.split()[2] == killed[0]]
    # the trial on the lost node was rescheduled (ran again elsewhere, COMPLETE) or recorded FAIL with a reason
    rescheduled = victim.state == TrialState.COMPLETE and len(attempts) == 2
    recorded = victim.state == TrialState.FAIL and victim.user_attrs.get("gradsweep.fail.reason")
    assert rescheduled or recorded, (victim.state, victim.user_attrs, attempts)
    # the other trials completed normally
    assert all(t.state == TrialState.COMPLETE for t in trials if t.number != victim.number)
