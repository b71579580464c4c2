"""Options shared by the commands that read a study: ``--storage`` and ``--study``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gradsweep.search.engine.storage import DEFAULT_STORAGE
from gradsweep.search.json_safe import json_safe

StorageOpt = Annotated[
    str,
    typer.Option(
        "--storage",
        help="Study store URL (sqlite:///file.db or postgresql+psycopg://user@host/db).",
        show_default=True,
    ),
]
StudyOpt = Annotated[
    str | None,
    typer.Option("--study", help="Study name; may be left out when the store holds exactly one study."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]

__all__ = ["DEFAULT_STORAGE", "JsonOpt", "StorageOpt", "StudyOpt", "echo_json"]


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (non-finite floats as strings)."""
    typer.echo(json.dumps(json_safe(data), indent=2, default=str))
