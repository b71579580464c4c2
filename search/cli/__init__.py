"""The ``gradsweep`` command line.

Each command lives in its own module and registers itself on :data:`app`;
:func:`main` turns :class:`gradsweep.errors.UserError` (and Pydantic/YAML input errors
raised through it) into one ``error:`` line and exit status 1.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from gradsweep.errors import UserError
from gradsweep.objectives.origin import announcing

# Command modules register themselves on `app` when imported.
from gradsweep.search.cli import dashboard as _dashboard  # noqa: F401
from gradsweep.search.cli import export as _export  # noqa: F401
from gradsweep.search.cli import inspect as _inspect  # noqa: F401
from gradsweep.search.cli import launch as _launch  # noqa: F401
from gradsweep.search.cli import report as _report  # noqa: F401
from gradsweep.search.cli import try_ as _try  # noqa: F401
from gradsweep.search.cli import validate as _validate  # noqa: F401
from gradsweep.search.cli._app import app, console_err
from gradsweep.spaces.space import SpaceError


def _note_objective_code(origin: str) -> None:
    console_err.print(
        f"note: running objective code from {origin}", highlight=False, soft_wrap=True, markup=False
    )


def main() -> None:
    """Run the CLI; usage errors exit 2 (click), user errors exit 1 with one line.

    Objective code that is not a built-in (a file or module named by ``--objective``, a space
    file, a stored study or an exported config) is named on stderr before it runs.
    """
    try:
        with announcing(_note_objective_code):
            app()  # standalone mode: click handles usage errors (exit 2) and typer.Exit codes
    except UserError as exc:
        console_err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except SpaceError as exc:
        console_err.print(f"[bold red]error:[/] {escape(exc.first_line())}", highlight=False, soft_wrap=True)
        sys.exit(1)


__all__ = ["app", "main"]
