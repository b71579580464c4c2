"""``gradsweep status | trials | best | objectives``: read a study (or the built-ins) and show it."""

from __future__ import annotations

import csv
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gradsweep.errors import UserError
from gradsweep.search.attrs import CONFIG
from gradsweep.search.cli._app import app, console
from gradsweep.search.cli._study_args import DEFAULT_STORAGE, JsonOpt, StorageOpt, StudyOpt, echo_json
from gradsweep.search.thaw_attrs import PAUSED
from gradsweep.search.views import (
    SortKey,
    StudySummary,
    best_trials,
    format_knobs,
    load_study,
    study_direction,
    summarize,
    trial_row,
    trial_rows,
)
from gradsweep.search.views.trials import format_value

_NONE = "-"


@app.command()
def status(
    storage: StorageOpt = DEFAULT_STORAGE,
    study: StudyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a study: trials by state, prune reasons, failures, the best trial, running trials.

    Example: [bold]gradsweep status --storage sqlite:///gradsweep.db --study demo[/]
    """
    loaded = load_study(storage, study)
    summary = summarize(loaded.study_name, loaded.trials, study_direction(loaded), loaded.user_attrs)
    if as_json:
        echo_json(summary.to_dict())
        return
    _print_status(summary)


def _print_status(s: StudySummary) -> None:
    about = ", ".join(
        part
        for part in (
            f"objective {s.objective}" if s.objective else "",
            f"metric {s.metric}" if s.metric else "",
            s.direction,
            f"scale {s.scale}" if s.scale else "",
        )
        if part
    )
    console.print(f"[bold]study {escape(s.study)}[/] ({escape(about)}): {s.total} trials", highlight=False)
    counts = "  ".join(f"{state.lower()} {n}" for state, n in s.counts.items())
    console.print(f"  {counts}", highlight=False)
    for line in (s.config_line(), s.pause_line()):  # freeze-thaw: configs, not trials; pauses and thaws
        if line:
            console.print(f"  {line}", highlight=False)
    groups = [g for g in s.prune_groups if g.kind != PAUSED]  # the paused ones: their own table
    if groups:
        table = Table(title=f"pruned ({sum(g.count for g in groups)})", title_justify="left")
        for col in ("kind", "rule", "count", "trials", "example"):
            table.add_column(col, overflow="fold")
        for g in groups:
            table.add_row(
                escape(g.kind),
                escape(g.rule_label),
                str(g.count),
                _numbers(g.trials),
                escape(g.example_label),
            )
        console.print(table)
    if s.pauses:
        _print_pauses(s)
    if s.flagged:
        table = Table(
            title="flagged by soft health rules, not pruned",
            title_justify="left",
        )
        for col in ("rule", "trials", "example"):
            table.add_column(col, overflow="fold")
        for f in s.flagged:
            numbers = ", ".join(f"#{n} ({state})" for n, state in f.trials)
            table.add_row(escape(f.rule), numbers, escape(f.example))
        console.print(table)
    if s.failures:
        table = Table(title=f"failed ({len(s.failures)})", title_justify="left")
        table.add_column("trial")
        table.add_column("error", overflow="fold")
        for f in s.failures:
            table.add_row(f"#{f.number}", escape(f.reason))
        console.print(table)
    if s.best is None:
        console.print("best: none yet (no complete trial)", highlight=False)
    else:
        tag = f" (baseline {s.best.baseline})" if s.best.baseline else ""
        tag += f" (thaw of #{s.best.thaw_of})" if s.best.thaw_of is not None else ""
        console.print(
            f"best: trial #{s.best.number}{tag} value {format_value(s.best.value)}  "
            f"{format_knobs(s.best.params, limit=8)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if s.running:
        table = Table(title=f"running ({len(s.running)})", title_justify="left")
        for col in ("trial", "step", "health", "reasons"):
            table.add_column(col, overflow="fold")
        for r in s.running:
            table.add_row(
                f"#{r.number}",
                _NONE if r.step is None else str(r.step),
                escape(r.verdict or "no report yet"),
                escape("; ".join(r.reasons)) or _NONE,
            )
        console.print(table)


def _print_pauses(s: StudySummary) -> None:
    table = Table(title=f"paused ({len(s.pauses)})", title_justify="left")
    for col in ("trial", "step", "thawed as", "config ends", "reason"):
        table.add_column(col, overflow="fold", no_wrap=col != "reason")
    for p in s.pauses:
        ends = p.ends if p.ends_at == p.number else f"{p.ends} (#{p.ends_at})"
        table.add_row(
            f"#{p.number}" + (f" (thaw of #{p.thaw_of})" if p.thaw_of is not None else ""),
            _NONE if p.step is None else str(p.step),
            _NONE if p.thawed_as is None else f"#{p.thawed_as}",
            escape(ends),
            escape(p.reason),
        )
    console.print(table)


@app.command()
def trials(
    storage: StorageOpt = DEFAULT_STORAGE,
    study: StudyOpt = None,
    sort: Annotated[
        SortKey, typer.Option("--sort", help="Order rows by value (best first), number or duration.")
    ] = SortKey.NUMBER,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (params as param:NAME columns).")] = False,
) -> None:
    """List the trials of a study: number, state, value, reason, key knobs, duration.

    With --pruner freeze-thaw a paused trial shows as PAUSED ("thawed as #M" once a later trial
    continues it from its checkpoint), and that continuation as "thaw of #N".

    Example: [bold]gradsweep trials --study demo --sort value --csv > trials.csv[/]
    """
    if as_json and as_csv:
        raise typer.BadParameter("give --json or --csv, not both", param_hint="--json/--csv")
    loaded = load_study(storage, study)
    rows = trial_rows(loaded.trials, sort=sort, direction=study_direction(loaded))
    if as_json:
        echo_json([r.to_dict() for r in rows])
        return
    if as_csv:
        names = sorted({p for r in rows for p in r.params})
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(
            [
                "number",
                "state",
                "value",
                "kind",
                "reason",
                "duration_s",
                "thaw_of",
                "thawed_as",
                *(f"param:{n}" for n in names),
            ]
        )
        for r in rows:
            writer.writerow(
                [
                    r.number,
                    r.state,
                    _cell(r.value),
                    _cell(r.kind),
                    _cell(r.reason),
                    _cell(r.duration_s),
                    _cell(r.thaw_of),
                    _cell(r.thawed_as),
                    *(_cell(r.params.get(n)) for n in names),
                ]
            )
        return
    table = Table(title=escape(f"study {loaded.study_name}: {len(rows)} trials"), title_justify="left")
    for col in ("#", "state", "value", "reason", "key knobs", "duration"):
        table.add_column(col, overflow="fold", no_wrap=col in ("#", "state", "value", "duration"))
    for r in rows:
        # "thaw of #N" / "thawed as #M" first, then the stored reason
        reason = "; ".join(part for part in (r.thaw_note, r.reason) if part)
        table.add_row(
            str(r.number),
            r.shown_state,
            _NONE if r.value is None else format_value(r.value),
            escape(reason or _NONE),
            escape(format_knobs(r.params, sep="\n") or _NONE),
            _duration(r.duration_s),
        )
    console.print(table)


@app.command()
def best(
    storage: StorageOpt = DEFAULT_STORAGE,
    study: StudyOpt = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many of the best complete trials.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Show the best COMPLETE trial(s); pruned and failed trials are never 'best'.

    Example: [bold]gradsweep best --study demo --top 3 --json[/]
    """
    loaded = load_study(storage, study)
    chosen = best_trials(loaded.trials, study_direction(loaded), top=top)
    if not chosen:
        raise UserError(
            f"study {loaded.study_name!r} has no complete trial yet ({len(loaded.trials)} trials); "
            "see `gradsweep status` for pruned and failed ones"
        )
    rows = [trial_row(t) for t in chosen]
    if as_json:
        echo_json(
            [
                {
                    "number": r.number,
                    "value": r.value,
                    "params": r.params,
                    "duration_s": r.duration_s,
                    "baseline": r.baseline,
                    "thaw_of": r.thaw_of,
                    "config": t.user_attrs.get(CONFIG),
                }
                for r, t in zip(rows, chosen, strict=True)
            ]
        )
        return
    direction = study_direction(loaded)
    for rank, r in enumerate(rows, start=1):
        tag = f" (baseline {r.baseline})" if r.baseline else ""
        tag += f" (thaw of #{r.thaw_of})" if r.thaw_of is not None else ""
        console.print(
            f"[bold]#{rank}[/] trial {r.number}{tag}: value {format_value(r.value)} ({direction}), "
            f"ran {_duration(r.duration_s)}",
            highlight=False,
        )
        for name, value in sorted(r.params.items()):
            console.print(f"    {name} = {format_value(value)}", highlight=False, markup=False)


@app.command()
def objectives(as_json: JsonOpt = False) -> None:
    """List the built-in objectives with their metrics and presets.

    Example: [bold]gradsweep objectives[/]
    """
    from gradsweep.objectives.registry import list_objectives

    infos = list_objectives()
    if as_json:
        echo_json(
            [
                {
                    "name": i.name,
                    "description": i.description,
                    "metrics": list(i.metrics),
                    "default_metric": i.default_metric,
                    "direction": i.direction,
                    "preset": i.preset,
                }
                for i in infos
            ]
        )
        return
    table = Table(title="built-in objectives", title_justify="left")
    for col in ("name", "metrics (default first)", "direction", "preset", "what it trains"):
        table.add_column(col, overflow="fold")
    for i in infos:
        metrics = [i.default_metric, *(m for m in i.metrics if m != i.default_metric)]
        table.add_row(
            *(escape(x) for x in (i.name, ", ".join(metrics), i.direction, i.preset, i.description))
        )
    console.print(table)
    console.print(
        "Your own: --objective package.module:function or path/to/file.py:function", highlight=False
    )


def _numbers(numbers: list[int], limit: int = 8) -> str:
    text = ", ".join(f"#{n}" for n in numbers[:limit])
    return text + (f" +{len(numbers) - limit}" if len(numbers) > limit else "")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return _NONE
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def _cell(value: object) -> str:
    return "" if value is None else str(value)
