"""Opening the study store: WAL SQLite, one-line errors, masked passwords, no silent upgrade."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gradsweep.errors import UserError
from gradsweep.search.engine.storage import mask_url, open_storage, retry_for, sqlite_file, with_retries
from tests._read_only import read_only_view


def test_mask_url_hides_passwords_in_urls_and_messages() -> None:
    # a URL's password is masked, user and host stay readable
    assert mask_url("postgresql+psycopg://me:s3cr%40t@db:5432/x") == "postgresql+psycopg://me:***@db:5432/x"
    # a message that embeds a URL is masked too
    assert "hunter2" not in mask_url("could not connect: postgresql://u:hunter2@h/db refused")
    # URLs without a password are unchanged
    assert mask_url("sqlite:///gradsweep.db") == "sqlite:///gradsweep.db"


def test_sqlite_file_parses_urls() -> None:
    # an absolute sqlite URL names its file
    assert sqlite_file("sqlite:////tmp/x.db") == Path("/tmp/x.db")
    # in-memory and non-SQLite URLs name none
    assert sqlite_file("sqlite://") is None and sqlite_file("postgresql://h/db") is None


def test_sqlite_store_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    storage = open_storage(f"sqlite:///{path}")
    # the file is in WAL mode (persistent, so readers do not block the driver)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # and the engine waits on a lock instead of failing at once
    assert storage.engine_kwargs["connect_args"]["timeout"] >= 10
    # every connection of the store syncs at WAL checkpoints, not at every commit (synchronous=NORMAL)
    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1


def test_missing_directory_is_one_line(tmp_path: Path) -> None:
    # a store in a directory that does not exist fails before anything is created
    with pytest.raises(UserError, match="does not exist"):
        open_storage(f"sqlite:///{tmp_path / 'nope' / 's.db'}")


def test_missing_store_is_refused_when_not_creating(tmp_path: Path) -> None:
    # resume-style opening does not create an empty store
    with pytest.raises(UserError, match="no study store"):
        open_storage(f"sqlite:///{tmp_path / 's.db'}", create=False)
    # and no file appeared
    assert not (tmp_path / "s.db").exists()


@contextlib.contextmanager
def _read_only_dir(tmp_path: Path) -> Iterator[Path]:
    src = tmp_path / "src"
    src.mkdir()
    open_storage(f"sqlite:///{src / 's.db'}")  # an existing store, then made read-only
    with read_only_view(src, tmp_path / "ro") as ro:
        yield ro


def test_read_only_store_is_one_line(tmp_path: Path) -> None:
    # a store on a read-only filesystem fails at open, before any trial
    with _read_only_dir(tmp_path) as ro, pytest.raises(UserError, match="read-only"):
        open_storage(f"sqlite:///{ro / 's.db'}")


def test_unreachable_postgres_is_one_line_without_password() -> None:
    url = "postgresql+psycopg://postgres:topsecret@127.0.0.1:1/nowhere"
    with pytest.raises(UserError) as info:
        open_storage(url)
    # one line, naming the store with its password masked
    assert "\n" not in str(info.value) and "postgres:***@127.0.0.1:1" in str(info.value)
    # the password appears nowhere in the message
    assert "topsecret" not in str(info.value)


def test_old_schema_asks_for_upgrade_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    open_storage(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'v3.0.0.d'")
    with pytest.raises(UserError, match="optuna storage upgrade"):
        open_storage(f"sqlite:///{path}")
    # nothing was upgraded behind the user's back
    assert (
        sqlite3.connect(path).execute("SELECT version_num FROM alembic_version").fetchone()[0] == "v3.0.0.d"
    )


def test_retry_for_rides_out_a_window_and_then_gives_up() -> None:
    calls: list[int] = []
    pauses: list[float] = []

    def down_for(n: int):  # type: ignore[no-untyped-def]
        def fn() -> str:
            calls.append(1)
            if len(calls) <= n:
                raise ConnectionError("restarting")
            return "ok"

        return fn

    # an outage shorter than the window is ridden out, the pauses doubling
    assert retry_for(down_for(4), wait_s=60, retry_on=(ConnectionError,), sleep=pauses.append) == "ok"
    assert pauses == [1.0, 2.0, 4.0, 8.0]
    calls.clear(), pauses.clear()
    # a longer one ends in its last error once the pauses add up to the window (8 s at most each)
    with pytest.raises(ConnectionError):
        retry_for(down_for(99), wait_s=20, retry_on=(ConnectionError,), sleep=pauses.append)
    assert pauses == [1.0, 2.0, 4.0, 8.0, 5.0] and sum(pauses) == 20
    calls.clear(), pauses.clear()
    # a zero window tries once
    with pytest.raises(ConnectionError):
        retry_for(down_for(99), wait_s=0, retry_on=(ConnectionError,), sleep=pauses.append)
    assert calls == [1] and pauses == []


def test_with_retries_is_bounded() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("transient")
        return "ok"

    # a transient failure is retried until it succeeds
    assert with_retries(flaky, attempts=3, backoff_s=0, retry_on=(ConnectionError,)) == "ok"
    calls.clear()
    # and gives up after the bound, re-raising the last error
    with pytest.raises(ConnectionError):
        with_retries(flaky, attempts=2, backoff_s=0, retry_on=(ConnectionError,))
    # after exactly the bounded number of tries
    assert len(calls) == 2
