"""Security defaults (issue 8): what gradsweep's own Ray exposes, and no unpickling of files a run left behind.

The password half (never in logs, results, checkpoints, exports, errors) is
``test_postgres_faults.py::test_restart_mid_sweep_loses_nothing_and_the_password_leaks_nowhere``;
the ``gradsweep dashboard`` default host is ``tests/search/cli/test_dashboard.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("search", "objectives", "spaces")
# ways to turn bytes from disk into arbitrary Python objects
UNPICKLERS = re.compile(
    r"\b(pickle\.loads?|cloudpickle\.loads?|dill\.loads?|joblib\.load|pd\.read_pickle|np\.load\(.*allow_pickle=True"
    r"|Tuner\.restore|tune\.run\(.*resume|restore_from_dir\([^)]*\)\s*->\s*None:\s*\n\s+[^\s\"])"
)


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_no_code_path_unpickles_files_left_by_another_run() -> None:
    offenders = [f"{p.relative_to(ROOT)}" for p in _sources() if UNPICKLERS.search(p.read_text())]
    # nothing unpickles files from disk: no pickle/cloudpickle/joblib loads, no Tune experiment restore
    assert offenders == []


def test_every_torch_load_is_weights_only() -> None:
    calls = [(p, m.group(0)) for p in _sources() for m in re.finditer(r"torch\.load\([^)]*\)", p.read_text())]
    # checkpoints are read back with torch.load(weights_only=True) only (the call sites exist: the check is live)
    assert calls and all("weights_only=True" in call for _, call in calls), calls


def _listening_addresses() -> list[tuple[str, str]]:
    import psutil

    pids = {p.pid for p in psutil.Process().children(recursive=True)}
    out = []
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            out.append((conn.laddr.ip, psutil.Process(conn.pid).name()))
    return out


@pytest.mark.ray
def test_local_ray_starts_no_dashboard_and_listens_on_loopback_only() -> None:
    import ray

    from gradsweep.search.engine.ray.runtime import Resources, start_ray, stop_ray

    assert not ray.is_initialized()  # this module must own its Ray
    info = start_ray(Resources())
    try:
        node = ray._private.worker.global_worker.node
        # no Ray dashboard is started (so nothing serves Ray's job-submission API over HTTP)
        assert not node.address_info.get("webui_url")
        # the node advertises loopback only: other machines are never told to connect to it
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        listening = _listening_addresses()
        # every port Ray's processes listen on (GCS, raylet, workers, agents) is on loopback
        assert listening and all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip, _ in listening), (
            listening
        )
    finally:
        stop_ray(info.owned)
