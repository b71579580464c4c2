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

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote_plus

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
# ``scheme://user:password@host``: the password runs to the last ``@`` before the host, so an
# unencoded ``@`` or ``/`` in it (or an ``@`` in the user name) does not leave part of it in clear.
_USERINFO = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/\s]*:)(?P<pw>\S*)(?P<tail>@[^@\s/?#]*(?=[/?#\s]|$))"
)
# ``key=value`` as in a URL's query (``?password=...&sslpassword=...``) or libpq's conninfo
# (``host=h password='...'``), the value bare or quoted.
_PARAM = re.compile(
    r"(?P<head>(?:^|(?<=[?&;\s]))(?P<key>[\w.%+-]+)\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^&;#\s]*)"
)
# A parameter is a credential when its name (percent-decoded, any case) contains one of these:
# password, passwd, sslpassword, pwd, secret, token, a key, or a whole connection string.
_SECRET_KEYS = ("pass", "pwd", "secret", "token", "credential", "key", "dsn", "conninfo")
_T = TypeVar("_T")


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``.

    Works on a bare URL and on any message that embeds one (driver errors often do). Masked:
    the password of the user info (``user:***@host``, also when it holds an unencoded ``@`` or
    ``/``) and every credential parameter, in a URL's query (``?password=***``,
    ``&sslpassword=***``, any case, percent-encoded names too) or in libpq's ``key=value`` form.

    Args:
        text: a URL such as ``postgresql+psycopg://user:secret@host/db`` or a message.

    Returns:
        The text with passwords masked; text without a password is unchanged.
    """
    return _PARAM.sub(_mask_param, _USERINFO.sub(r"\g<head>***\g<tail>", text))


def _mask_param(match: re.Match[str]) -> str:
    key = unquote_plus(match["key"]).lower()
    if any(word in key for word in _SECRET_KEYS):
        return f"{match['head']}***"
    return match[0]


def is_memory_sqlite(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite database (``sqlite://``, ``:memory:``, ``mode=memory``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0].lower() != "sqlite":
        return False
    path, _, query = rest.partition("?")
    path = path[1:] if path.startswith("/") else path  # sqlite:///name.db -> name.db
    return path in ("", ":memory:", "file::memory:") or "mode=memory" in query


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


def check_url(url: str) -> None:
    """Refuse a store URL that would go wrong before anything is opened (one line, no password).

    Raises:
        UserError: not a URL; an in-memory SQLite database (every result would be lost when the
            command ends); an unencoded ``@`` in the user name or password (what follows it
            would be taken for the host).
    """
    masked = mask_url(url)
    if "://" not in url:
        raise UserError(f"storage must be a URL such as sqlite:///gradsweep.db, got {masked!r}")
    if is_memory_sqlite(url):
        raise UserError(
            f"storage {masked} is an in-memory SQLite database: every result would be lost when "
            "the command ends; pass a file URL such as sqlite:///gradsweep.db"
        )
    try:
        host = sqlalchemy.engine.make_url(url).host
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise UserError(f"storage {masked} is not a valid URL: {_first_line(exc)}") from None
    if host and "@" in host:
        raise UserError(
            f"storage URL {url.split('://', 1)[0]}://... has an unencoded '@' in its user name or "
            "password: percent-encode it as %40 (for example user:p%40ss@host)"
        )


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


def retry_for(
    fn: Callable[[], _T],
    *,
    wait_s: float,
    retry_on: tuple[type[BaseException], ...],
    first_backoff_s: float = CONNECT_BACKOFF_S,
    max_backoff_s: float = 8.0,
    sleep: Callable[[float], None] = time.sleep,
) -> _T:
    """Call ``fn`` until it succeeds or ``wait_s`` seconds of pauses have passed.

    The pauses double from ``first_backoff_s`` up to ``max_backoff_s``; the last one is cut so the
    pauses add up to ``wait_s`` (a database restart mid-sweep is ridden out; a store that stays
    down ends in the last error). ``wait_s = 0`` tries once.

    Example:
        >>> calls, pauses = [], []
        >>> def flaky():
        ...     calls.append(1)
        ...     if len(calls) < 3:
        ...         raise ConnectionError("down")
        ...     return "ok"
        >>> retry_for(flaky, wait_s=30, retry_on=(ConnectionError,), sleep=pauses.append), pauses
        ('ok', [1.0, 2.0])

    Raises:
        Exception: the last error once ``wait_s`` is used up.
    """
    waited, pause = 0.0, first_backoff_s
    while True:
        try:
            return fn()
        except retry_on:
            if waited >= wait_s:
                raise
            step = min(pause, max_backoff_s, wait_s - waited)
            sleep(step)
            waited += step
            pause *= 2


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
        raise UserError(
            f"cannot switch study store {mask_url(str(storage.url))} to WAL mode (journal mode is {mode})"
        )


def _read_only_creator(path: Path) -> Callable[[], sqlite3.Connection]:
    """Connections to ``path`` that never write: ``mode=ro``, or ``immutable=1`` where SQLite
    could not open it read-only (a WAL store in a read-only directory without its ``-shm`` file)."""
    uri = path.resolve().as_uri()
    try:
        with contextlib.closing(sqlite3.connect(f"{uri}?mode=ro", uri=True)) as probe:
            probe.execute("SELECT count(*) FROM sqlite_master").fetchall()
        query = "mode=ro"
    except sqlite3.Error:
        # a WAL store whose -shm file is missing and cannot be made here: no writer has it
        # open, so the file holds every commit; read it as it is
        query = "immutable=1"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(
            f"{uri}?{query}", uri=True, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False
        )

    return connect


def open_storage(
    url: str = DEFAULT_STORAGE, *, create: bool = True, read_only: bool = False
) -> optuna.storages.RDBStorage:
    """Open (and if needed create) the study store at ``url``.

    Args:
        url: SQLAlchemy URL: ``sqlite:///path.db`` or ``postgresql+psycopg://user:pw@host/db``.
        create: when False, a missing SQLite file is an error instead of a new store.
        read_only: the caller only reads (``status``, ``best``, ``trials``, ``export``): an
            existing SQLite file this process cannot write is opened read-only (no WAL switch, no
            schema creation) instead of refused. Implies ``create=False``.

    Returns:
        An ``optuna.storages.RDBStorage`` (WAL + busy timeout on SQLite; pre-ping on PostgreSQL).

    Raises:
        UserError: one line (password masked) when the URL is malformed or in-memory, or the
            store is unreachable, read-only (unless ``read_only``), missing (``create=False``), or
            holds an older Optuna schema (the message says to run ``optuna storage upgrade``;
            nothing is upgraded here).
    """
    masked = mask_url(url)
    check_url(url)
    create = create and not read_only
    path = sqlite_file(url)
    kwargs = engine_kwargs_for(url)
    wal = path is not None
    if path is not None:
        if not create and not path.is_file():
            raise UserError(f"no study store at {path}; run `gradsweep launch` first or pass --storage URL")
        try:
            check_sqlite_writable(path)
        except UserError:
            if not read_only:
                raise
            kwargs, wal = {"creator": _read_only_creator(path)}, False  # a reader needs no write access
    try:
        storage = with_retries(
            lambda: optuna.storages.RDBStorage(url, engine_kwargs=kwargs),
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
    if wal:
        try:
            _enable_wal(storage)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise UserError(f"cannot open study store {masked}: {_first_line(exc)}") from exc
    return storage
