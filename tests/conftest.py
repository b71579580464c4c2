"""Suite-wide fixtures: one torch thread (2-core CI), and fresh PostgreSQL databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# A local Ray per test process: with pytest-xdist another worker may hold a `ray.cluster_utils.Cluster`,
# whose head writes /tmp/ray/ray_current_cluster, and `ray.init()` without an address would join it.
# An explicit address (the cluster tests') is unaffected.
os.environ.setdefault("RAY_ADDRESS", "local")

PG_ADMIN_URL = os.environ.get(
    "GRADSWEEP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(1)


def _admin_conninfo() -> str:
    return PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A SQLAlchemy URL of a new, empty PostgreSQL database, dropped after the test."""
    import psycopg

    name = f"gradsweep_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


# Files whose tests share no costly module fixture: under pytest-xdist their tests spread over the
# workers one by one instead of holding one worker for the whole file.
SPLIT_FILES = frozenset(
    {
        "tests/benchmarks/test_scripts_smoke.py",
        "tests/benchmarks/test_gpu_bench.py",
        "tests/docs/test_readme.py",
        "tests/search/engine/test_engine_interrupt.py",
        "tests/search/engine/test_engine_cli.py",
    }
)


def _xdist_group(item: pytest.Item) -> str:
    path = item.nodeid.split("::", 1)[0]
    return item.nodeid if path in SPLIT_FILES else path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Schedule for ``pytest -n N --dist loadgroup`` (``make test``); without xdist the marks do nothing.

    Each file is one group (its module fixtures, e.g. a shared local Ray or a before/after run,
    start once), except :data:`SPLIT_FILES`, whose tests are groups of their own. Groups with a
    ``slow`` test go first, so the longest work starts early and the workers finish together.
    """
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_xdist_group(item)))
    slow = {_xdist_group(item) for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: _xdist_group(item) not in slow)  # stable: file order kept within
