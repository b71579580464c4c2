"""``gradsweep validate SPACE``: check a search space and summarise it on one screen."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from gradsweep.errors import UserError
from gradsweep.search.cli._app import app, console, console_err
from gradsweep.spaces.sampling import knobs
from gradsweep.spaces.space import SearchSpace, SpaceError, load_space, space_warnings


def space_summary(space: SearchSpace) -> Table:
    """A rich table: one row per knob (fixed ones included) with its range and scale."""
    table = Table(
        title=f"space {space.name!r}: objective {space.objective}, "
        f"metric {space.metric.name} ({space.metric.direction}), scale {space.scale}",
        title_justify="left",
        show_lines=False,
    )
    table.add_column("parameter", no_wrap=True)
    table.add_column("values", no_wrap=True)
    table.add_column("when", overflow="fold")
    for k in knobs(space):
        when = f"{k.condition[0]} = {k.condition[1]}" if k.condition else ""
        table.add_row(k.name, k.param.describe(), when)
    towers = ", ".join(f"{t.name}{' (frozen)' if t.frozen else ''}" for t in space.towers)
    stages = " -> ".join(f"{s.name}[{'all' if '*' in s.train else ','.join(s.train)}]" for s in space.stages)
    table.caption = f"towers: {towers}\nstages: {stages}\nbaselines: {', '.join(space.baselines) or 'none'}"
    table.caption_justify = "left"
    return table


@app.command()
def validate(
    space: list[str] = typer.Argument(..., help="Search space YAML file(s) or preset name(s)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only `ok` or the errors."),
) -> None:
    """Validate search space YAML files and print a summary of each.

    Example: [bold]gradsweep validate spaces/presets/contrastive.yaml[/]
    """
    from gradsweep.objectives.registry import check_accumulation, check_metric, check_objective_file
    from gradsweep.search.preflight import tower_errors  # imports torch: only when a command runs

    failed = False
    for item in space:
        try:
            loaded = load_space(item)
            errors = tower_errors(loaded)
            try:
                check_objective_file(loaded.objective)
            except UserError as exc:
                errors.append(str(exc))
            try:
                check_metric(loaded.objective, loaded.metric.name)
            except UserError as exc:
                errors.append(str(exc))
            try:
                check_accumulation(loaded.objective, loaded.accumulates())
            except UserError as exc:
                errors.append(str(exc))
            if errors:
                raise SpaceError(errors, item)
        except SpaceError as exc:
            failed = True
            for line in exc.errors:
                console_err.print(
                    f"[bold red]error:[/] {escape(f'{item}: {line}')}", highlight=False, soft_wrap=True
                )
            continue
        for line in space_warnings(loaded):
            console_err.print(
                f"[bold yellow]warning:[/] {escape(f'{item}: {line}')}", highlight=False, soft_wrap=True
            )
        console.print(
            f"ok {item}", highlight=False, soft_wrap=True
        )  # one line a script can read, however long the path
        if not quiet:
            console.print(space_summary(loaded))
    if failed:
        raise typer.Exit(1)
