"""The Optuna study store: open it safely, fail early with one line, never leak a password.

SQLite (the default, ``sqlite:///gradsweep.db`` in the working directory) is opened with WAL
journaling (``synchronous=NORMAL``) and a busy timeout; the sweep driver is its only writer. PostgreSQL
(``postgresql+psycopg://user:pw@host/db``) is the multi-node store, opened with connection
pre-ping and a bounded number of connection retries.

Every message that names a URL goes through :func:`mask_url`.

Example:
    >>> mask_url("postgresql+psycopg://me:secret@db:5432/sweeps")
    'postgresql+psycopg://me:***@db:5432/sweeps'
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
import sqlalchemy.event
import sqlalchemy.exc

from gradsweep.errors import UserError

DEFAULT_STORAGE = "sqlite:///gradsweep.db"
SQLITE_BUSY_TIMEOUT_S = 60.0
CONNECT_ATTEMPTS = 3
CONNECT_BACKOFF_S = 1.0

# Two sweeps opening one new PostgreSQL database at once race to create Optuna's tables: the
# loser sees a duplicate type/table/version row. A second try finds the tables and goes on.
_OPEN_RETRY_ON = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.IntegrityError,
    sqlalchemy.exc.ProgrammingError,
)
_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<tail>@)")
_T = TypeVar("_T")


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``.

    Works on a bare URL and on any message that embeds one (driver errors often do).

    Args:
        text: a URL such as ``postgresql+psycopg://user:secret@host/db`` or a message.

    Returns:
        The text with passwords masked; text without a password is unchanged.
    """
    return _PASSWORD.sub(r"\g<head>***\g<tail>", text)


def sqlite_file(url: str) -> Path | None:
    """The file a ``sqlite:///path`` URL names, or None (not SQLite, or in-memory)."""
    if not url.startswith("sqlite:"):
        return None
    rest = url.split("sqlite:", 1)[1]
    if not rest.startswith("///"):
        return None
    path = rest[3:].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return mask_url(line)


def check_sqlite_writable(path: Path) -> None:
    """Refuse a SQLite file the driver could not write, before anything is created.

    WAL mode needs to create ``-wal``/``-shm`` files beside the database, so the directory
    must be writable too.

    Raises:
        UserError: the parent directory is missing or read-only, or the file is read-only.
    """
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"cannot create study store {path}: directory {parent} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"study store {path} is read-only; pass a writable --storage")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"study store directory {parent} is read-only; pass a writable --storage")


def engine_kwargs_for(url: str) -> dict[str, object]:
    """SQLAlchemy engine options for ``url``: busy timeout on SQLite, pre-ping elsewhere."""
    if url.startswith("sqlite:"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    kwargs: dict[str, object] = {"pool_pre_ping": True, "pool_recycle": 300}
    if url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": 10}
    return kwargs


def with_retries(
    fn: Callable[[], _T],
    *,
    attempts: int = CONNECT_ATTEMPTS,
    backoff_s: float = CONNECT_BACKOFF_S,
    retry_on: tuple[type[BaseException], ...] = (sqlalchemy.exc.OperationalError,),
) -> _T:
    """Call ``fn`` up to ``attempts`` times, sleeping ``backoff_s * 2**i`` between tries.

    Args:
        fn: the operation (opening a connection, one storage write).
        attempts: how many tries in all (at least 1).
        backoff_s: first pause in seconds.
        retry_on: exception types worth another try (transient connection errors).

    Returns:
        What ``fn`` returns.

    Raises:
        ValueError: if ``attempts`` < 1.
        Exception: the last error when every try failed.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1 but got {attempts}")
    for i in range(attempts):
        try:
            return fn()
        except retry_on:
            if i == attempts - 1:
                raise
            time.sleep(backoff_s * 2**i)
    raise AssertionError("unreachable")  # pragma: no cover


def _sync_normal(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _enable_wal(storage: optuna.storages.RDBStorage) -> None:
    """WAL journaling (a file setting), and ``synchronous=NORMAL`` on every connection.

    In WAL mode ``NORMAL`` syncs at checkpoints instead of at every commit. The store stays
    consistent after any crash; after a power cut or an OS crash (not a killed process) the
    last commits may be rolled back, which ``gradsweep resume`` handles like an interruption.
    """
    sqlalchemy.event.listen(storage.engine, "connect", _sync_normal)
    storage.engine.dispose()  # connections opened before the listener reconnect with it
    with storage.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode=WAL").scalar()
    if str(mode).lower() != "wal":  # e.g. a file on a filesystem without shared memory
        raise UserError(f"cannot switch study store {storage.url} to WAL mode (journal mode is {mode})")


def open_storage(url: str = DEFAULT_STORAGE, *, create: bool = True) -> optuna.storages.RDBStorage:
    """Open (and if needed create) the study store at ``url``.

    Args:
        url: SQLAlchemy URL: ``sqlite:///path.db`` or ``postgresql+psycopg://user:pw@host/db``.
        create: when False, a missing SQLite file is an error instead of a new store.

    Returns:
        An ``optuna.storages.RDBStorage`` (WAL + busy timeout on SQLite; pre-ping on PostgreSQL).

    Raises:
        UserError: one line (password masked) when the store is unreachable, read-only,
            missing (``create=False``), or holds an older Optuna schema (the message says to run
            ``optuna storage upgrade``; nothing is upgraded here).
    """
    masked = mask_url(url)
    if "://" not in url:
        raise UserError(f"storage must be a URL such as sqlite:///gradsweep.db, got {masked!r}")
    path = sqlite_file(url)
    if path is not None:
        if not create and not path.is_file():
            raise UserError(f"no study store at {path}; run `gradsweep launch` first or pass --storage URL")
        check_sqlite_writable(path)
    try:
        storage = with_retries(
            lambda: optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs_for(url)),
            attempts=1 if path is not None else CONNECT_ATTEMPTS,
            retry_on=_OPEN_RETRY_ON,
        )
    except RuntimeError as exc:
        if "optuna storage upgrade" in str(exc):
            raise UserError(
                f"study store {masked} was written by an older Optuna; back it up, then run "
                f"`optuna storage upgrade --storage '{masked}'`"
            ) from exc
        raise UserError(f"cannot open study store {masked}: {_first_line(exc)}") from exc
    except ImportError as exc:
        raise UserError(
            f"cannot open study store {masked}: database driver missing ({_first_line(exc)})"
        ) from exc
    except (sqlalchemy.exc.SQLAlchemyError, OSError, ValueError) as exc:
        raise UserError(f"cannot open study store {masked}: {_first_line(exc)}") from exc
    if path is not None:
        try:
            _enable_wal(storage)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise UserError(f"cannot open study store {masked}: {_first_line(exc)}") from exc
    return storage
