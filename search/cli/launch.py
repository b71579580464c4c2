"""``gradsweep launch`` and ``gradsweep resume``: run a sweep on Ray Tune into an Optuna study."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from gradsweep.errors import UserError
from gradsweep.search.cli._app import app, console, console_err
from gradsweep.search.engine.algorithms import DEFAULT_PRUNER, sampler_warning
from gradsweep.search.engine.ray.runtime import DEFAULT_CHECKPOINT_EVERY_S, DEFAULT_STORE_WAIT_S, Resources
from gradsweep.search.engine.storage import DEFAULT_STORAGE
from gradsweep.spaces.space import SpaceError, load_space, space_warnings

if TYPE_CHECKING:
    from gradsweep.search.engine.summary import SweepSummary

STORAGE_ENV = "GRADSWEEP_STORAGE"
_RES = "Resources"
_OUT = "Output"

# The options `launch` and `resume` share, declared once.
Storage = Annotated[
    str,
    typer.Option(
        envvar=STORAGE_ENV, help="Optuna study store URL (sqlite:///... or postgresql+psycopg://...)."
    ),
]
Concurrency = Annotated[
    int | None, typer.Option(help="Trials at once (default: CPUs / cpus-per-trial).", rich_help_panel=_RES)
]
CpusPerTrial = Annotated[float, typer.Option(help="CPUs per trial.", rich_help_panel=_RES)]
GpusPerTrial = Annotated[
    float, typer.Option(help="GPUs per trial; 0.25 puts four trials on one GPU.", rich_help_panel=_RES)
]
WorkersPerTrial = Annotated[
    int,
    typer.Option(
        help="DDP workers per trial: each trial one Ray Train job (gloo on CPU, NCCL on GPU); batch_size is per worker.",
        rich_help_panel=_RES,
    ),
]
CpusPerWorker = Annotated[
    float | None,
    typer.Option(help="CPUs per worker with --workers-per-trial (default 1).", rich_help_panel=_RES),
]
GpusPerWorker = Annotated[
    float | None,
    typer.Option(
        help="GPUs per worker with --workers-per-trial (0 or a whole number; default 0).",
        rich_help_panel=_RES,
    ),
]
CpuFallback = Annotated[
    bool, typer.Option("--cpu-fallback", help="Run on CPU if no GPU is found.", rich_help_panel=_RES)
]
MaxFailures = Annotated[
    int,
    typer.Option(
        help="Retries of a crashing trial from its last persisted checkpoint.", rich_help_panel=_RES
    ),
]
CheckpointEvery = Annotated[
    float,
    typer.Option(
        "--checkpoint-every",
        help="Seconds between the checkpoints Ray keeps for a retry (0: every one the objective saves).",
        rich_help_panel=_RES,
    ),
]
StoreWait = Annotated[
    float,
    typer.Option(
        "--store-wait",
        help="Seconds a sweep waits for a study store that stopped answering (a database restart) before it stops.",
        rich_help_panel=_RES,
    ),
]
Address = Annotated[
    str | None,
    typer.Option(
        help="Running Ray cluster to use (default: $RAY_ADDRESS if set and not 'local', else start a new local Ray).",
        rich_help_panel=_RES,
    ),
]
Timeout = Annotated[float | None, typer.Option(help="Wall-clock budget in seconds.", rich_help_panel=_RES)]
RunsDir = Annotated[Path, typer.Option(help="Where Ray keeps trial directories.", rich_help_panel=_OUT)]
Quiet = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No live view; one summary line at the end.", rich_help_panel=_OUT),
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print the final summary as JSON.", rich_help_panel=_OUT)
]

#: The Resources options of `launch` and `resume` (parameter name -> ``Resources`` field).
RESOURCE_OPTIONS = {
    "cpus_per_trial": "cpus_per_trial",
    "gpus_per_trial": "gpus_per_trial",
    "concurrency": "concurrency",
    "cpu_fallback": "cpu_fallback",
    "address": "address",
    "max_failures": "max_failures",
    "checkpoint_every": "checkpoint_every_s",
    "store_wait": "store_wait_s",
    "workers_per_trial": "workers_per_trial",
    "cpus_per_worker": "cpus_per_worker",
    "gpus_per_worker": "gpus_per_worker",
}


def resources_from(params: Mapping[str, Any]) -> Resources:
    """The :class:`Resources` a `launch` or `resume` command line asks for.

    Args:
        params: the command's parameters by name (``typer.Context.params``).

    Raises:
        UserError: a value out of range (the message names the flag).
    """
    return Resources(**{field: params[option] for option, field in RESOURCE_OPTIONS.items()})


def keep_storage_from_workers() -> None:
    """Drop ``GRADSWEEP_STORAGE`` from this process's environment once the option has been read.

    Every process of a local Ray (GCS, raylet, workers, agents) starts with the environment of
    the process that starts it; without the variable there, no trial can read the store URL.
    """
    os.environ.pop(STORAGE_ENV, None)


def _progress(off: bool) -> Any:
    if off:
        return None
    from gradsweep.search.engine.ray.progress import ProgressView

    return lambda name, tally: ProgressView(name, tally, console_err)


def _report(summary: SweepSummary, *, quiet: bool, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), sort_keys=True))
    elif quiet:
        typer.echo(summary.line())
    else:
        if summary.best_value is not None:
            console.print(
                f"best trial {summary.best_number}: value {summary.best_value:.6g}", highlight=False
            )
            for key, value in (summary.best_params or {}).items():
                console.print(f"  {key} = {value}", highlight=False)
        else:
            console.print("no trial completed", highlight=False)
        kinds = sorted((k, n) for k, n in summary.pruned.items() if k != "paused")  # paused: pause_counts
        pruned = ", ".join(f"{k} {n}" for k, n in kinds) or "0"
        pauses = summary.pause_counts(", ")
        console.print(
            f"{summary.finished}/{summary.target} finished: complete {summary.complete}, pruned {pruned}, "
            f"{pauses + ', ' if pauses else ''}{summary.counts(', ')}",
            highlight=False,
        )
        console.print(f"study {summary.study!r} in {summary.storage}", highlight=False)
        console.print(f"ray results: {summary.results_dir}", highlight=False)
    if summary.aborted:
        console_err.print(f"[bold red]stopped early:[/] {summary.aborted}", highlight=False)
        for line in summary.first_failures:
            console_err.print(f"  {line}", highlight=False, soft_wrap=True)
    if summary.interrupted:
        console_err.print(
            f"interrupted; continue with: {summary.resume_command}", highlight=False, soft_wrap=True
        )
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


@app.command("launch")
def launch_cmd(
    ctx: typer.Context,
    space: str = typer.Argument(..., help="Search space YAML file or preset name."),
    n_trials: int = typer.Option(20, "--n-trials", "-n", help="Trials to run."),
    objective: str | None = typer.Option(
        None, help="Objective: a built-in name, pkg.module:fn or path/file.py:fn (default: the space's)."
    ),
    scale: str | None = typer.Option(None, help="tiny | small | full (default: the space's)."),
    storage: Storage = DEFAULT_STORAGE,
    study: str | None = typer.Option(None, help="Study name (default: the space's name)."),
    join: bool = typer.Option(
        False, "--join", help="Add trials to an existing study even if its space differs."
    ),
    sampler: str = typer.Option(
        "tpe", help="tpe | random | gp | cmaes (gp and cmaes never learn from pruned trials; tpe does)."
    ),
    pruner: str = typer.Option(
        DEFAULT_PRUNER,
        help="Base pruner the health rules wrap: catchup | median | percentile | hyperband | successive_halving | wilcoxon | patient | freeze-thaw (pause, keep the checkpoint, thaw on a learning-curve model) | none.",
    ),
    seed: int | None = typer.Option(
        None, help="Seed for the sampler and every trial (reproducible configs)."
    ),
    baseline: list[str] = typer.Option(
        [],
        "--baseline",
        help="Config file with `params` or a baseline name of the space (repeatable); runs first.",
    ),
    concurrency: Concurrency = None,
    cpus_per_trial: CpusPerTrial = 1.0,
    gpus_per_trial: GpusPerTrial = 0.0,
    workers_per_trial: WorkersPerTrial = 1,
    cpus_per_worker: CpusPerWorker = None,
    gpus_per_worker: GpusPerWorker = None,
    cpu_fallback: CpuFallback = False,
    max_failures: MaxFailures = 0,
    checkpoint_every: CheckpointEvery = DEFAULT_CHECKPOINT_EVERY_S,
    store_wait: StoreWait = DEFAULT_STORE_WAIT_S,
    address: Address = None,
    timeout: Timeout = None,
    runs_dir: RunsDir = Path("gradsweep_runs"),
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Run a sweep: Ray Tune runs the trials, Optuna samples and prunes, the study keeps everything.

    Example: [bold]gradsweep launch contrastive --scale tiny -n 8 --baseline before --seed 0[/]
    """
    keep_storage_from_workers()
    try:
        loaded = load_space(space)
    except SpaceError as exc:
        raise UserError(exc.first_line()) from None
    warnings = [sampler_warning(sampler), *space_warnings(loaded)]  # an unknown sampler: one error line
    for warning in filter(None, warnings):
        console_err.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    from gradsweep.search.engine.ray.launcher import LaunchRequest

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
        resources=resources_from(ctx.params),
        runs_dir=runs_dir,
        timeout_s=timeout,
    )
    from gradsweep.search.engine.ray.launcher import launch  # imports Ray: only when a sweep runs

    _report(launch(request, progress=_progress(quiet or as_json)), quiet=quiet, as_json=as_json)


@app.command("resume")
def resume_cmd(
    ctx: typer.Context,
    study: str = typer.Option(..., help="Study to continue."),
    storage: Storage = DEFAULT_STORAGE,
    n_trials: int | None = typer.Option(
        None, "--n-trials", "-n", help="Finished trials wanted in all (default: the launch's target)."
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run interrupted trials' configs again."),
    concurrency: Concurrency = None,
    cpus_per_trial: CpusPerTrial = 1.0,
    gpus_per_trial: GpusPerTrial = 0.0,
    workers_per_trial: WorkersPerTrial = 1,
    cpus_per_worker: CpusPerWorker = None,
    gpus_per_worker: GpusPerWorker = None,
    cpu_fallback: CpuFallback = False,
    max_failures: MaxFailures = 0,
    checkpoint_every: CheckpointEvery = DEFAULT_CHECKPOINT_EVERY_S,
    store_wait: StoreWait = DEFAULT_STORE_WAIT_S,
    address: Address = None,
    timeout: Timeout = None,
    runs_dir: RunsDir = Path("gradsweep_runs"),
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Continue an interrupted sweep until its number of finished trials is reached.

    Trials left RUNNING by a killed driver are stored FAIL "interrupted" first; finished trials
    are never re-run.

    Example: [bold]gradsweep resume --study contrastive --storage sqlite:///gradsweep.db --retry-failed[/]
    """
    keep_storage_from_workers()
    from gradsweep.search.engine.ray.resume import ResumeRequest

    request = ResumeRequest(
        study=study,
        storage=storage,
        n_trials=n_trials,
        retry_failed=retry_failed,
        resources=resources_from(ctx.params),
        runs_dir=runs_dir,
        timeout_s=timeout,
    )
    from gradsweep.search.engine.ray.resume import resume  # imports Ray: only when a sweep runs

    _report(resume(request, progress=_progress(quiet or as_json)), quiet=quiet, as_json=as_json)
