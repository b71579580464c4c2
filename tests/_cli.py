"""Run the ``gradsweep`` command line in this process, as the console script would.

A subprocess per refusal costs about 1.5 s of interpreter, torch and typer start-up; the same
call in-process costs milliseconds once the modules are imported. :func:`run_cli` calls
:func:`gradsweep.search.cli.main` (the console script's entry point, so the ``UserError`` ->
one ``error:`` line path is the real one) with its own working directory, environment and
captured streams. An exception that escapes ``main`` is what the console script would print as
a traceback: it is returned as ``traceback`` text rather than raised, so a test can assert it is
absent. Keep a few end-to-end runs of the real console script (``tests/test_packaging.py``, the
README tour); use this for tables of refusals.
"""

from __future__ import annotations

import contextlib
import io
import os
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CliResult:
    """What one in-process ``gradsweep`` call left: exit code, streams, escaped traceback."""

    code: int
    stdout: str
    stderr: str
    traceback: str = ""

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


@contextlib.contextmanager
def _environment(cwd: Path | None, env: Mapping[str, str | None]) -> Iterator[None]:
    old_cwd = Path.cwd()
    old_env = {key: os.environ.get(key) for key in env}
    try:
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(old_cwd)
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_cli(
    args: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str | None] | None = None
) -> CliResult:
    """Call the console script's ``main`` with ``args``; never raises for what it would print.

    ``env`` sets (or, with ``None``, removes) variables for the call only. Rich's consoles
    write to whatever ``sys.stdout`` / ``sys.stderr`` are at print time, so redirecting them
    captures everything the command prints. Not thread-safe (working directory, environment).
    """
    import sys

    from gradsweep.search.cli import main

    out, err = io.StringIO(), io.StringIO()
    code, escaped = 0, ""
    old_argv = sys.argv
    sys.argv = ["gradsweep", *args]
    try:
        with _environment(cwd, env or {}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # what the console script would show as a traceback
                code, escaped = 1, traceback.format_exc()
    finally:
        sys.argv = old_argv
    return CliResult(code=code, stdout=out.getvalue(), stderr=err.getvalue(), traceback=escaped)


__all__ = ["CliResult", "run_cli"]
