"""End-to-end sweeps on the engine: concurrent trials on PostgreSQL (the tiny contrastive sweep on SQLite is the README tour's first launch, checked in tests/docs/test_readme.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from optuna.trial import TrialState

from gradsweep.search.engine.ray.launcher import LaunchRequest, launch
from gradsweep.search.engine.ray.runtime import Resources
from gradsweep.spaces.space import load_space

from ._support import load

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("shared_ray")]

FINAL = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@pytest.mark.postgres
def test_concurrent_sweep_on_postgres(make_space, fresh_pg_url: str, tmp_path: Path) -> None:
    # the server trusts local connections, so a password in the URL is accepted and must stay hidden
    url = fresh_pg_url.replace("postgres@", "postgres:sekrit-pw@")
    request = LaunchRequest(
        space=load_space(make_space("tiny_torch")),
        n_trials=4,
        storage=url,
        baselines=("bad", "good"),
        runs_dir=tmp_path / "runs",
        resources=Resources(concurrency=2),
    )
    summary = launch(request)
    trials = load(fresh_pg_url).get_trials()
    starts = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    # the count is reached and every trial is final
    assert len(trials) == 4 and all(t.state in FINAL for t in trials)
    # trials overlapped in time: at least two ran at once
    assert any(b[0] < a[1] for a, b in itertools.pairwise(starts))
    bad = next(t for t in trials if t.user_attrs.get("gradsweep.baseline") == "bad")
    # the unstable baseline is PRUNED for health, in PostgreSQL
    assert bad.state == TrialState.PRUNED and bad.user_attrs["gradsweep.prune.kind"] == "unstable"
    # with its reason
    assert bad.user_attrs["gradsweep.prune.reason"]
    # the password appears nowhere: not in the summary, the study, or any Ray result / checkpoint file
    assert "sekrit-pw" not in str(summary.to_dict()) and ":***@" in summary.storage
    # not in the study or trial attrs
    assert "sekrit-pw" not in str(load(fresh_pg_url).user_attrs) + str([t.user_attrs for t in trials])
    leaks = [p for p in (tmp_path / "runs").rglob("*") if p.is_file() and b"sekrit-pw" in p.read_bytes()]
    # not in any Ray result or checkpoint file
    assert leaks == []
