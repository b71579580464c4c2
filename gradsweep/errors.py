"""User-facing errors: one clear line, exit code 1, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad input, missing file, unreachable store).

    The CLI prints ``error: <message>`` on one line and exits with status 1.
    """
