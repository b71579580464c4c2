"""The shared typer app and consoles (stdout for results, stderr for messages)."""

from __future__ import annotations

import typer
from rich.console import Console

from gradsweep.version import __version__

app = typer.Typer(
    name="gradsweep",
    help="Hyperparameter search for multi-tower, multi-stage PyTorch training, with gradient-health pruning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
console_err = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"gradsweep {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """gradsweep: per-tower LR / warmup / clip / GradScaler search with gradient-health pruning."""
