"""``gradsweep launch`` and ``gradsweep resume``: run a sweep on Ray Tune into an Optuna study."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from search.cli._app import app, console, console_err
from search.engine.algorithms import DEFAULT_PRUNER
from search.engine.ray_runtime import Resources
from search.engine.storage import DEFAULT_STORAGE
from search.errors import UserError
from spaces.space import SpaceError, load_space

if TYPE_CHECKING:
    from search.engine.summary import SweepSummary

STORAGE_ENV = "GRADSWEEP_STORAGE"
_RES = "Resources"
_OUT = "Output"


def _resources(
    cpus: float, gpus: float, concurrency: int | None, cpu_fallback: bool, address: str | None, max_failures: int
) -> Resources:
    return Resources(
        cpus_per_trial=cpus,
        gpus_per_trial=gpus,
        concurrency=concurrency,
        cpu_fallback=cpu_fallback,
        address=address,
        max_failures=max_failures,
    )


def _progress(off: bool) -> Any:
    if off:
        return None
    from search.engine.progress import ProgressView

    return lambda name, tally: ProgressView(name, tally, console_err)


def _report(summary: SweepSummary, *, quiet: bool, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), sort_keys=True))
    elif quiet:
        typer.echo(summary.line())
    else:
        if summary.best_value is not None:
            console.print(f"best trial {summary.best_number}: value {summary.best_value:.6g}", highlight=False)
            for key, value in (summary.best_params or {}).items():
                console.print(f"  {key} = {value}", highlight=False)
        else:
            console.print("no trial completed", highlight=False)
        pruned = ", ".join(f"{k} {n}" for k, n in sorted(summary.pruned.items())) or "0"
        console.print(
            f"{summary.finished}/{summary.target} finished: complete {summary.complete}, pruned {pruned}, "
            f"failed {summary.failed}",
            highlight=False,
        )
        console.print(f"study {summary.study!r} in {summary.storage}", highlight=False)
        console.print(f"ray results: {summary.results_dir}", highlight=False)
    if summary.aborted:
        console_err.print(f"[bold red]stopped early:[/] {summary.aborted}", highlight=False)
        for line in summary.first_failures:
            console_err.print(f"  {line}", highlight=False, soft_wrap=True)
    if summary.interrupted:
        console_err.print(f"interrupted; continue with: {summary.resume_command}", highlight=False, soft_wrap=True)
    if summary.interrupted:
        raise typer.Exit(130)
    if summary.aborted:
        raise typer.Exit(1)


@app.command("launch")
def launch_cmd(
    space: str = typer.Argument(..., help="Search space YAML file or preset name."),
    n_trials: int = typer.Option(20, "--n-trials", "-n", help="Trials to run."),
    objective: str | None = typer.Option(
        None, help="Objective: a built-in name, pkg.module:fn or path/file.py:fn (default: the space's)."
    ),
    scale: str | None = typer.Option(None, help="tiny | small | full (default: the space's)."),
    storage: str = typer.Option(
        DEFAULT_STORAGE,
        envvar=STORAGE_ENV,
        help="Optuna study store URL (sqlite:///... or postgresql+psycopg://...).",
    ),
    study: str | None = typer.Option(None, help="Study name (default: the space's name)."),
    join: bool = typer.Option(False, "--join", help="Add trials to an existing study even if its space differs."),
    sampler: str = typer.Option("tpe", help="tpe | random | gp | cmaes."),
    pruner: str = typer.Option(
        DEFAULT_PRUNER, help="Base pruner the health rules wrap: catchup | median | percentile | hyperband | successive_halving | wilcoxon | patient | none."
    ),
    seed: int | None = typer.Option(None, help="Seed for the sampler and every trial (reproducible configs)."),
    baseline: list[str] = typer.Option(
        [], "--baseline", help="Config file with `params` or a baseline name of the space (repeatable); runs first."
    ),
    concurrency: int | None = typer.Option(None, help="Trials at once (default: CPUs / cpus-per-trial).", rich_help_panel=_RES),
    cpus_per_trial: float = typer.Option(1.0, help="CPUs per trial.", rich_help_panel=_RES),
    gpus_per_trial: float = typer.Option(0.0, help="GPUs per trial; 0.25 puts four trials on one GPU.", rich_help_panel=_RES),
    cpu_fallback: bool = typer.Option(False, "--cpu-fallback", help="Run on CPU if no GPU is found.", rich_help_panel=_RES),
    max_failures: int = typer.Option(0, help="Retries of a crashing trial from its checkpoint.", rich_help_panel=_RES),
    address: str | None = typer.Option(None, help="Running Ray cluster to use (default: start a local Ray).", rich_help_panel=_RES),
    timeout: float | None = typer.Option(None, help="Wall-clock budget in seconds.", rich_help_panel=_RES),
    runs_dir: Path = typer.Option(Path("gradsweep_runs"), help="Where Ray keeps trial directories.", rich_help_panel=_OUT),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live view; one summary line at the end.", rich_help_panel=_OUT),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON.", rich_help_panel=_OUT),
) -> None:
    """Run a sweep: Ray Tune runs the trials, Optuna samples and prunes, the study keeps everything.

    Example: [bold]gradsweep launch contrastive --scale tiny -n 8 --baseline before --seed 0[/]
    """
    try:
        loaded = load_space(space)
    except SpaceError as exc:
        raise UserError(exc.first_line()) from None
    from search.engine.launcher import LaunchRequest

    request = LaunchRequest(
        space=loaded,
        n_trials=n_trials,
        storage=storage,
        study=study,
        objective=objective,
        scale=scale,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        baselines=tuple(baseline),
        join=join,
        resources=_resources(cpus_per_trial, gpus_per_trial, concurrency, cpu_fallback, address, max_failures),
        runs_dir=runs_dir,
        timeout_s=timeout,
    )
    from search.engine.launcher import launch  # imports Ray: only when a sweep runs

    _report(launch(request, progress=_progress(quiet or as_json)), quiet=quiet, as_json=as_json)


@app.command("resume")
def resume_cmd(
    study: str = typer.Option(..., help="Study to continue."),
    storage: str = typer.Option(DEFAULT_STORAGE, envvar=STORAGE_ENV, help="Optuna study store URL."),
    n_trials: int | None = typer.Option(
        None, "--n-trials", "-n", help="Finished trials wanted in all (default: the launch's target)."
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run interrupted trials' configs again."),
    concurrency: int | None = typer.Option(None, help="Trials at once.", rich_help_panel=_RES),
    cpus_per_trial: float = typer.Option(1.0, help="CPUs per trial.", rich_help_panel=_RES),
    gpus_per_trial: float = typer.Option(0.0, help="GPUs per trial.", rich_help_panel=_RES),
    cpu_fallback: bool = typer.Option(False, "--cpu-fallback", help="Run on CPU if no GPU is found.", rich_help_panel=_RES),
    max_failures: int = typer.Option(0, help="Retries of a crashing trial.", rich_help_panel=_RES),
    address: str | None = typer.Option(None, help="Running Ray cluster to use.", rich_help_panel=_RES),
    timeout: float | None = typer.Option(None, help="Wall-clock budget in seconds.", rich_help_panel=_RES),
    runs_dir: Path = typer.Option(Path("gradsweep_runs"), help="Where Ray keeps trial directories.", rich_help_panel=_OUT),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live view; one summary line.", rich_help_panel=_OUT),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON.", rich_help_panel=_OUT),
) -> None:
    """Continue an interrupted sweep until its number of finished trials is reached.

    Trials left RUNNING by a killed driver are stored FAIL "interrupted" first; finished trials
    are never re-run.

    Example: [bold]gradsweep resume --study contrastive --storage sqlite:///gradsweep.db --retry-failed[/]
    """
    from search.engine.resume import ResumeRequest

    request = ResumeRequest(
        study=study,
        storage=storage,
        n_trials=n_trials,
        retry_failed=retry_failed,
        resources=_resources(cpus_per_trial, gpus_per_trial, concurrency, cpu_fallback, address, max_failures),
        runs_dir=runs_dir,
        timeout_s=timeout,
    )
    from search.engine.resume import resume  # imports Ray: only when a sweep runs

    _report(resume(request, progress=_progress(quiet or as_json)), quiet=quiet, as_json=as_json)
