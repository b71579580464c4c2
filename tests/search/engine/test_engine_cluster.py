"""Two Ray nodes on one machine, one PostgreSQL study: trials land on both nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState

from gradsweep.search.engine.ray.launcher import LaunchRequest, launch
from gradsweep.search.engine.ray.runtime import Resources
from gradsweep.spaces.space import load_space

from ._support import load

pytestmark = [pytest.mark.ray, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def two_node_cluster() -> Iterator[str]:
    """A head and a worker node, one CPU each, on this machine; yields the head's address.

    Ray replaces a loopback address with the machine's own when connecting, so the nodes keep
    the machine's address (the traffic still stays on this machine).
    """
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()


def test_trials_run_on_both_nodes_into_one_postgres_study(
    two_node_cluster: str, fresh_pg_url: str, make_space, objectives_file: Path, tmp_path: Path
) -> None:
    request = LaunchRequest(
        space=load_space(make_space("where")),
        n_trials=4,
        storage=fresh_pg_url,
        runs_dir=tmp_path / "runs",
        resources=Resources(address=two_node_cluster, concurrency=2, cpus_per_trial=1),
    )
    summary = launch(request)
    trials = load(fresh_pg_url).get_trials()
    nodes = {p.read_text() for p in (objectives_file.parent / "nodes").iterdir()}
    # all trials finished COMPLETE in the one PostgreSQL study
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    # with one CPU per node and two trials at once, both nodes ran trials
    assert len(nodes) == 2
    # the summary names the store without a password
    assert summary.storage.startswith("postgresql+psycopg://")
