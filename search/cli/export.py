"""``gradsweep export``: write the best trial's resolved TrialConfig (plus provenance) to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gradsweep.errors import UserError
from gradsweep.search.cli._app import app, console
from gradsweep.search.cli._study_args import DEFAULT_STORAGE, StorageOpt, StudyOpt
from gradsweep.search.export import ExportFormat, export_document, resolve_format, write_export
from gradsweep.search.views import load_study
from gradsweep.search.views.trials import format_value


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="File to write (.yaml/.yml or .json).")],
    storage: StorageOpt = DEFAULT_STORAGE,
    study: StudyOpt = None,
    top: Annotated[
        int, typer.Option("--top", min=1, help="Export the K best complete trials (list under configs:).")
    ] = 1,
    fmt: Annotated[
        ExportFormat | None, typer.Option("--format", help="yaml or json (default: from the --out suffix).")
    ] = None,
    trial: Annotated[
        int | None,
        typer.Option(
            "--trial",
            min=0,
            help="Export this trial instead of the best, whatever its state (e.g. a pruned one).",
        ),
    ] = None,
) -> None:
    """Export the best complete trial's resolved config (or any finished trial's) with its provenance.

    The file loads with TrialConfig.load(path) and works as [bold]--config[/] of gradsweep try and [bold]--baseline[/] of gradsweep launch.

    Example: [bold]gradsweep export --study demo --out best.yaml[/]; [bold]--trial 3[/] exports trial 3 (a pruned one, to run it again)
    """
    if trial is not None and top != 1:
        raise UserError("--trial exports one trial; leave out --top")
    chosen = resolve_format(out, fmt)  # refuse a bad suffix/format pair before reading anything
    loaded = load_study(storage, study)
    doc = export_document(loaded, storage_url=storage, top=top, trial=trial)
    path = write_export(doc, out, chosen)
    prov = doc["provenance"]
    extra = len(doc.get("configs", [])) - 1
    more = f" (and {extra} more under configs:)" if extra > 0 else ""
    if prov.get("state") not in (None, "COMPLETE"):
        more += f" ({prov['state'].lower()})"
    console.print(
        f"wrote {path}: trial #{prov['trial']} of study {prov['study']}, "
        f"{prov['metric'] or 'value'} {format_value(prov['value'])}{more}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    console.print(
        f"reproduce it: gradsweep try --config {path}", highlight=False, soft_wrap=True, markup=False
    )
