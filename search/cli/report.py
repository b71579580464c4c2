"""``gradsweep report``: a self-contained HTML report of a study, and optionally PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gradsweep.errors import UserError
from gradsweep.search.cli._app import app, console
from gradsweep.search.cli._study_args import DEFAULT_STORAGE, StorageOpt, StudyOpt
from gradsweep.search.report import collect, write_html, write_pngs
from gradsweep.search.thaw_attrs import PAUSED
from gradsweep.search.views import load_study


def _check_out(out: Path) -> None:
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output directory {parent} does not exist")
    if out.is_dir():
        raise UserError(f"{out} is a directory; give a file name such as {out / 'report.html'}")


def _check_png_dir(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise UserError(f"--png {directory} is a file; give a directory")
    parent = directory.parent if str(directory.parent) else Path(".")
    if not directory.exists() and not parent.is_dir():
        raise UserError(f"--png directory {directory} cannot be created: {parent} does not exist")


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
    storage: StorageOpt = DEFAULT_STORAGE,
    study: StudyOpt = None,
    png: Annotated[
        Path | None, typer.Option("--png", help="Also write each plot as PNG into this directory (created).")
    ] = None,
) -> None:
    """Write an HTML report: history, parallel coordinates, importances, LR vs value, health curves.

    The page is self-contained (plotly.js inline); open it in any browser, offline.

    Example: [bold]gradsweep report --study demo --out report.html --png plots[/]
    """
    _check_out(out)
    if png is not None:
        _check_png_dir(png)
    loaded = load_study(storage, study)
    data = collect(loaded)
    write_html(data, out)
    pruned = sum(g.count for g in data.prune_groups if g.kind != PAUSED)
    paused = f", {len(data.summary.pauses)} paused" if data.summary.pauses else ""
    console.print(
        f"wrote {out} ({len(data.curves)} health curves, {pruned} pruned trials{paused})",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    if png is not None:
        png.mkdir(exist_ok=True)
        paths = write_pngs(data, png)
        console.print(f"wrote {len(paths)} PNG files to {png}", highlight=False, soft_wrap=True, markup=False)
