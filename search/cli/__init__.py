"""The ``gradsweep`` command line.

Each command lives in its own module and registers itself on :data:`app`;
:func:`main` turns :class:`search.errors.UserError` (and Pydantic/YAML input errors
raised through it) into one ``error:`` line and exit status 1.
"""

from __future__ import annotations

import sys

# Command modules register themselves on `app` when imported.
from search.cli import validate as _validate  # noqa: F401
from search.cli._app import app, console_err
from search.errors import UserError
from spaces.space import SpaceError


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except UserError as exc:
        console_err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except SpaceError as exc:
        console_err.print(f"[bold red]error:[/] {exc.first_line()}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console_err.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            console_err.print("aborted")
            sys.exit(130)
        raise
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
