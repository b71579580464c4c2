"""``gradsweep try``: run one config without a search and show its metric and health.

It also reproduces an exported best config: with the same seed and scale on CPU the metric
matches the exported trial's value within :data:`REPRODUCE_TOLERANCE`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml
from pydantic import ValidationError

from gradsweep.errors import UserError
from gradsweep.objectives.run import NonFiniteValue
from gradsweep.search.cli._app import app, console, console_err
from gradsweep.search.cli._study_args import JsonOpt, echo_json
from gradsweep.spaces.trial_config import TrialConfig
from gradsweep.spaces.yaml_io import YamlFileError

# Absolute tolerance for "same seed, same scale -> same metric" on CPU. Runs are seeded and
# deterministic on one machine (the metric is usually bit-identical); the slack covers float
# reductions whose order depends on the thread count of the process that ran the trial.
REPRODUCE_TOLERANCE = 1e-4
#: What else than the config can move the metric. Measured in the sixth session: a seeded
#: segmentation run took another path with oneDNN's AVX-512 kernels than with its AVX2 ones.
MISMATCH_HINT = (
    "(same seed and scale? a GPU, or a CPU with other vector instructions, e.g. AVX-512 vs AVX2, "
    "runs other kernels and can change the metric)"
)
_RANK = {"healthy": 0, "warning": 1, "unstable": 2}
_KEY_METRICS = 10

Scale = Literal["tiny", "small", "full"]


def load_config_file(path: Path) -> TrialConfig:
    """Read a TrialConfig (or an export file) with one-line errors.

    Raises:
        UserError: missing file, not UTF-8, unreadable YAML/JSON, an alias bomb, or a config that
            does not validate.
    """
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        return TrialConfig.load(path)
    except YamlFileError as exc:
        raise UserError(f"{path}: not a valid config file: {exc}") from None
    except ValidationError as exc:
        if _params_only(path):
            raise UserError(
                f"{path} holds only `params:` (a baseline); run it with --space SPACE --baseline {path}"
            ) from None
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise UserError(f"{path}: {where}: {err['msg']}") from exc
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a valid config file: {first}") from exc


def _params_only(path: Path) -> bool:
    """Whether ``path`` is a ``params:`` file (what ``--baseline`` reads), not a TrialConfig."""
    from gradsweep.spaces.yaml_io import read_yaml_file

    try:
        data = read_yaml_file(path)
    except YamlFileError:
        return False
    return isinstance(data, dict) and set(data) == {"params"}


def check_config_objective(path: Path, config: TrialConfig, objective: str) -> None:
    """Refuse running ``config`` with a built-in objective it was not made for.

    A config names its objective; ``--objective`` may override it (another implementation of the
    same training, a user objective). Two different built-ins, or a built-in that never reports
    the config's metric, or gradient accumulation for a built-in that does not accumulate, fail
    in the objective's first lines: say so in one line instead.

    Raises:
        UserError: naming the config's objective and the one asked for, the metric, or
            ``accumulation_steps``.
    """
    from gradsweep.objectives.registry import BUILTINS, check_accumulation, check_metric

    if objective in BUILTINS and config.objective in BUILTINS and objective != config.objective:
        raise UserError(
            f"{path}: the config is for objective {config.objective!r}, not {objective!r}; "
            f"drop --objective to run {config.objective!r}, or give a config of {objective!r}"
        )
    try:
        check_metric(objective, config.metric.name)
        check_accumulation(objective, config.accumulation_steps > 1)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def overrides(scale: str | None, seed: int | None) -> dict[str, Any]:
    """The config fields ``--scale`` and ``--seed`` replace (those given)."""
    return {k: v for k, v in (("scale", scale), ("seed", seed)) if v is not None}


def recommended_config(objective: str, *, scale: str | None, seed: int | None) -> TrialConfig:
    """The built-in objective's recommended config: its preset's ``after`` baseline, resolved.

    Raises:
        UserError: the objective is not a built-in (give --config), or its preset has no ``after``.
    """
    from gradsweep.objectives.registry import BUILTINS, describe
    from gradsweep.spaces.sampling import baseline_config
    from gradsweep.spaces.space import SpaceError, load_space

    if objective not in BUILTINS:
        raise UserError(
            f"objective {objective!r} has no preset; give --config FILE (built-ins: {', '.join(BUILTINS)})"
        )
    preset = describe(objective).preset
    name = preset[: -len(".yaml")] if preset.endswith(".yaml") else preset
    try:
        space = load_space(name)
        return baseline_config(space, "after", **overrides(scale, seed))
    except SpaceError as exc:
        raise UserError(f"preset {name!r} of objective {objective!r}: {exc.first_line()}") from exc


def space_config(
    space_spec: str, baseline: str | None, *, scale: str | None, seed: int | None
) -> TrialConfig:
    """One of a space's configs, resolved: a baseline named in the space, or a ``params:`` file.

    With no ``baseline``, a space with exactly one baseline runs that one.

    Raises:
        UserError: the space does not load, the baseline is unknown or outside the space, or
            there is no single baseline to pick.
    """
    from gradsweep.search.engine.request import resolve_baselines
    from gradsweep.spaces.sampling import resolve
    from gradsweep.spaces.space import SpaceError, load_space

    try:
        space = load_space(space_spec)
    except SpaceError as exc:
        raise UserError(exc.first_line()) from None
    if baseline is None:
        if len(space.baselines) != 1:
            have = ", ".join(space.baselines) or "none in the space"
            raise UserError(
                f"--space {space_spec}: give --baseline NAME or a params file to say which config to run "
                f"(baselines: {have})"
            )
        baseline = next(iter(space.baselines))
    (chosen,) = resolve_baselines(space, (baseline,))
    try:
        return resolve(space, chosen.params, **overrides(scale, seed))
    except SpaceError as exc:
        raise UserError(exc.first_line()) from None


def health_summary(reports: list[Any]) -> dict[str, Any]:
    """Verdict, reasons and key metrics of the last health report, plus the worst verdict seen."""
    if not reports:
        return {"verdict": None, "worst_verdict": None, "step": None, "reasons": [], "metrics": {}}
    last = reports[-1]
    worst = max(reports, key=lambda r: _RANK.get(str(r.verdict).lower(), -1))
    metrics = {k: float(v) for k, v in sorted(last.metrics.items())}
    return {
        "verdict": str(last.verdict),
        "worst_verdict": str(worst.verdict),
        "worst_reasons": list(worst.reasons),
        "step": int(last.step),
        "reasons": list(last.reasons),
        "metrics": metrics,
    }


def _key_rank(key: str) -> int:
    """Order of health metrics: loss, global norm, tower norms, decay ratios, non-finite counts, the rest."""
    ranks = (
        ("health/loss",),
        ("health/grad_norm_global",),
        ("/grad_norm_pre",),
        ("/decay_to_grad",),
        ("health/nonfinite_steps_total", "health/scaler/scale"),
    )
    for rank, keys in enumerate(ranks):
        if any(key == k or (k.startswith("/") and key.endswith(k)) for k in keys):
            return rank
    return len(ranks)


def key_metrics(metrics: dict[str, float], limit: int = _KEY_METRICS) -> dict[str, float]:
    """The few metrics worth a glance (see :func:`_key_rank`), at most ``limit``."""
    picked = [k for k in metrics if _key_rank(k) < 5]
    picked.sort(key=lambda k: (_key_rank(k), k))
    return {k: metrics[k] for k in picked[:limit]}


def reproduction(config: TrialConfig, value: float) -> dict[str, Any] | None:
    """Compare ``value`` with the exported trial's value in ``config.provenance``, if any."""
    prov = config.provenance or {}
    if prov.get("state", "COMPLETE") != "COMPLETE":
        return None  # a pruned or failed trial's value is not a finished run's: nothing to reproduce
    expected = prov.get("value")
    if not isinstance(expected, int | float) or not math.isfinite(expected):
        return None
    diff = abs(value - float(expected))
    return {
        "study": prov.get("study"),
        "trial": prov.get("trial"),
        "expected": float(expected),
        "abs_diff": diff,
        "tolerance": REPRODUCE_TOLERANCE,
        "reproduced": diff <= REPRODUCE_TOLERANCE,
    }


@app.command(name="try")
def try_(
    objective: Annotated[
        str | None,
        typer.Option(
            "--objective",
            help="Built-in name, package.module:function or path/file.py:function "
            "(default: the config's objective).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TrialConfig or export file (default: the preset's 'after')."),
    ] = None,
    space: Annotated[
        str | None,
        typer.Option("--space", help="A space file or preset: run one of its baselines (see --baseline)."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="With --space: a baseline name of the space, or a params file (default: its only baseline).",
        ),
    ] = None,
    scale: Annotated[Scale | None, typer.Option("--scale", help="Override the config's scale.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override the config's seed.")] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda, cuda:1 (default: cuda if present).")
    ] = None,
    cpus: Annotated[
        float | None,
        typer.Option(
            "--cpus",
            help="CPUs to train with, as launch's --cpus-per-trial: torch threads = CPUs rounded down, "
            "at least 1 (default: what a trial gets, OMP_NUM_THREADS if set, else 1).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one config without a search; print its metric and gradient-health report.

    Without --config it runs the objective's recommended preset config. With an exported config it also says whether the exported value is reproduced (same seed and scale, within 1e-4 on CPU). With --space it runs one of the space's baselines (or a params file), e.g. your own objective's starting config. It trains with a trial's torch threads (one by default, as launch's default --cpus-per-trial 1), not torch's default of one per core, so its time and metric match the sweep's.

    Example: [bold]gradsweep try --config best.yaml --scale tiny[/]; [bold]gradsweep try --space space.yaml --baseline start[/]
    """
    import torch

    from gradsweep.objectives.api import NullReporter, TrialContext, run_objective
    from gradsweep.objectives.registry import load_objective
    from gradsweep.search.engine.ray.runtime import trial_threads

    if config is not None and space is not None:
        raise UserError("give --config FILE or --space SPACE, not both")
    if baseline is not None and space is None:
        raise UserError("--baseline needs --space SPACE (the space its params belong to)")
    if config is None and objective is None and space is None:
        raise UserError("give --objective NAME, --config FILE or --space SPACE")
    if cpus is not None and not (math.isfinite(cpus) and cpus > 0):
        raise UserError(f"--cpus must be > 0, got {cpus:g}")
    if space is not None:
        cfg = space_config(space, baseline, scale=scale, seed=seed)
    elif config is not None:
        cfg = load_config_file(config)
        update = overrides(scale, seed)
        if update:
            cfg = TrialConfig.from_dict({**cfg.to_dict(), **update})
    else:
        cfg = recommended_config(str(objective), scale=scale, seed=seed)
    cfg, note = one_process(cfg)
    if note:
        console_err.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    spec = objective or cfg.objective
    if config is not None or space is not None:
        check_config_objective(config or Path(str(space)), cfg, spec)
    fn = load_objective(spec)
    reporter = NullReporter()
    ctx = TrialContext(cfg, reporter=reporter, device=device)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(trial_threads(1.0) if cpus is None else trial_threads(cpus, env={}))
    started = time.perf_counter()
    try:
        value = run_objective(fn, cfg, ctx)
    except NonFiniteValue as exc:
        raise UserError(f"{spec}: {exc}") from exc
    finally:
        torch.set_num_threads(threads_before)
    elapsed = time.perf_counter() - started
    health = health_summary(reporter.health_reports)
    result = {
        "objective": spec,
        "metric": cfg.metric.name,
        "direction": cfg.metric.direction,
        "value": value,
        "scale": cfg.scale,
        "seed": cfg.seed,
        "device": str(ctx.device),
        "elapsed_s": round(elapsed, 3),
        **health,
        "reproduction": reproduction(cfg, value),
    }
    if as_json:
        echo_json(result)
        return
    _print(result)


def one_process(cfg: TrialConfig) -> tuple[TrialConfig, str | None]:
    """A config of a multi-worker trial as one process with the same global batch, and a note saying so.

    ``try`` trains in one process; N workers of ``batch_size`` B compute the updates of one
    process with ``batch_size`` N*B (a model without batch statistics; BatchNorm normalises
    over N*B here instead of each worker's B): :meth:`TrialConfig.for_workers`.

    Example:
        >>> from gradsweep.spaces.trial_config import TowerConfig
        >>> cfg = TrialConfig(objective="x", batch_size=32, workers=2, towers=[TowerConfig(name="a", patterns=["*"], lr=1e-3)])
        >>> one, note = one_process(cfg)
        >>> one.batch_size, one.workers, one.effective_batch == cfg.effective_batch
        (64, 1, True)
    """
    if cfg.workers == 1:
        return cfg, None
    one = cfg.for_workers(1)
    note = (
        f"the config is for {cfg.workers} DDP workers of batch_size {cfg.batch_size}; it trains here as one "
        f"process with their global batch, batch_size {one.batch_size} (the same updates, except that batch "
        "statistics such as BatchNorm's see the whole batch)"
    )
    return one, note


def _print(r: dict[str, Any]) -> None:
    console.print(
        f"[bold]{r['metric']}[/] = {r['value']:.6g} ({r['direction']}; objective {r['objective']}, "
        f"scale {r['scale']}, seed {r['seed']}, {r['device']}, {r['elapsed_s']:.1f}s)",
        highlight=False,
    )
    if r["verdict"] is None:
        console.print("health: no report (the objective reported no health checks)", highlight=False)
    else:
        console.print(
            f"health: {r['verdict']} at step {r['step']} (worst seen: {r['worst_verdict']})", highlight=False
        )
        for reason in r["reasons"] or r.get("worst_reasons") or []:
            console.print(f"  - {reason}", highlight=False, soft_wrap=True, markup=False)
        for key, value in key_metrics(r["metrics"]).items():
            console.print(f"  {key} = {value:.4g}", highlight=False)
    rep = r["reproduction"]
    if rep is not None:
        word = "reproduces" if rep["reproduced"] else "does NOT reproduce"
        line = (
            f"{word} trial #{rep['trial']} of study {rep['study']}: expected {rep['expected']:.6g}, "
            f"|diff| {rep['abs_diff']:.2g} (tolerance {rep['tolerance']:g})"
        )
        if not rep["reproduced"]:
            line += f" {MISMATCH_HINT}"
        (console if rep["reproduced"] else console_err).print(
            line, highlight=False, soft_wrap=True, markup=False
        )
