"""The read-side commands on a PostgreSQL store (the cluster setup), password masked."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy

from tests.search.views.study_factory import build_study

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    name = f"gradsweep_views_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sqlalchemy.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")
    url = f"postgresql+psycopg://postgres:secret@127.0.0.1:5432/{name}"
    build_study(url, running=False)
    yield url
    sqlalchemy.create_engine(url).dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


@pytest.mark.postgres
def test_status_and_export_on_postgres(gradsweep: Callable, pg_url: str, tmp_path: Path) -> None:
    ran = gradsweep("status", "--storage", pg_url, "--json")
    # status reads the study from PostgreSQL
    assert ran.code == 0 and json.loads(ran.out)["best"]["number"] == 2
    out = tmp_path / "best.yaml"
    # export works there too
    assert gradsweep("export", "--storage", pg_url, "--out", out).code == 0
    # and the password in the URL never reaches the exported file
    assert "secret" not in out.read_text() and "postgres:***@127.0.0.1" in out.read_text()
