"""End-to-end sweeps: the tiny contrastive objective on SQLite, and concurrent trials on PostgreSQL."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from gradsweep.search.engine.ray.launcher import LaunchRequest, launch
from gradsweep.search.engine.ray.runtime import Resources
from gradsweep.spaces.space import load_space

from ._support import load

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("shared_ray")]

FINAL = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@pytest.mark.slow
def test_tiny_contrastive_sweep_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'contrastive.db'}"
    request = LaunchRequest(
        space=load_space("contrastive"),
        n_trials=3,
        storage=url,
        scale="tiny",
        seed=0,
        baselines=("before", "after"),
        runs_dir=tmp_path / "runs",
        resources=Resources(concurrency=2),
    )
    summary = launch(request)
    trials = load(url, "contrastive").get_trials()
    by_baseline = {t.user_attrs.get("gradsweep.baseline"): t for t in trials}
    # the requested number of trials ran and every one is in a final state
    assert len(trials) == 3 and all(t.state in FINAL for t in trials)
    before = by_baseline["before"]
    # the seed's "before" config (starved text tower, decay dominating) is pruned for health
    assert before.state == TrialState.PRUNED and before.user_attrs["gradsweep.prune.kind"] == "unstable"
    # its stored reason names the text tower
    assert "text_encoder" in before.user_attrs["gradsweep.prune.reason"]
    after = by_baseline["after"]
    # the "after" config completes with a recall in [0, 1]
    assert after.state == TrialState.COMPLETE and 0.0 <= after.value <= 1.0
    # the summary names where the study lives
    assert summary.storage == url and summary.best_value is not None
    # Optuna's own CLI reads the study
    cli = Path(sys.executable).parent / "optuna"
    out = subprocess.run(
        [str(cli), "trials", "--study-name", "contrastive", "--storage", url, "-f", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    # Optuna's own CLI reads the study
    assert out.returncode == 0 and out.stdout.count('"number"') == 3


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
