"""A private PostgreSQL server for the fault suite: password authentication, and ours to restart.

The shared server on 127.0.0.1:5432 trusts every local connection (a wrong password cannot be
produced there) and other tests use it (restarting it would break them). This one is made with
``initdb`` in a temporary directory, listens on a free port, requires SCRAM passwords on TCP,
and is stopped and deleted afterwards. Under root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.search.engine._support import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
ROLE = "gs_sweeper"
PASSWORD = "Pw-7f3c9e1d-do-not-leak"
DATABASE = "gs_faults"


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return str((versions[0] if versions else BIN) / name)


@dataclass
class PrivatePostgres:
    """One throwaway PostgreSQL cluster (``start`` / ``restart`` / ``stop``)."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=timeout, check=True)

    def url(self, *, password: str = PASSWORD, role: str = ROLE, database: str = DATABASE) -> str:
        """A SQLAlchemy URL for ``role`` with ``password`` (the right one by default)."""
        return f"postgresql+psycopg://{role}:{password}@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, action: str, *options: str) -> None:
        """``pg_ctl ACTION`` on this server's data directory, port and socket dir, waiting up to 60 s."""
        server = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-l", log, "-w", "-t", "60", *options, "-o", server, action
        )

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        """Restart the server (fast shutdown: every open connection is cut)."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-w", "-m", "immediate", "stop")

    def sql(self, statement: str, *, database: str = "postgres") -> str:
        """Run ``statement`` as the superuser over the private socket (no password needed there); its output."""
        return self._run(
            _bin("psql"),
            "-h",
            str(self.root),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            statement,
        ).stdout.strip()


def create_private_postgres() -> PrivatePostgres:
    """Initialise, start and populate a private server: role ``ROLE`` WITH PASSWORD, database ``DATABASE``.

    Raises:
        subprocess.CalledProcessError: ``initdb`` or the server failed (the test then errors, never skips).
    """
    root = Path(tempfile.mkdtemp(prefix="gs-pg-"))
    root.chmod(0o777)
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
    server = PrivatePostgres(root, free_port())
    server._run(
        _bin("initdb"),
        "-D",
        str(server.data),
        "-U",
        "postgres",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "-E",
        "UTF8",
        "--no-sync",
        timeout=120,
    )
    server.start()
    server.sql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
    server.sql(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
    return server


def destroy(server: PrivatePostgres) -> None:
    """Stop the server and delete its files."""
    try:
        server.stop()
    finally:
        shutil.rmtree(server.root, ignore_errors=True)
