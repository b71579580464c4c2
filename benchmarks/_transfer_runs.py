"""Collect the run bank of the health-transfer benchmark (issue 17, point 6).

For each objective (the five built-ins on a widened preset space, and the five of
:mod:`benchmarks.transfer` on their ``benchmarks/spaces/transfer_*.yaml``: ``NEW_OBJECTIVES`` and
the later ``FRESH_OBJECTIVES``) this samples configs at
random, trains each to the end with no pruner and the default :class:`HealthConfig` (the space's
own ``health:`` is replaced: only the checks are recorded, through
:func:`gradsweep.objectives.health.recording.capture`), on one torch thread, and appends one JSON
line per run to ``--out`` (format and labels: :mod:`benchmarks.transfer.bank`; read it back with
:func:`benchmarks.transfer.bank.load_bank`). A run already in the file (same objective, scale,
seed and index) is skipped, so an interrupted collection resumes where it stopped; each
objective's untrained metric (every LR 0) is computed once and kept in the file too.

Usage::

    .venv/bin/python -m benchmarks._transfer_runs --out bank.jsonl --runs 40 --seed 0
    .venv/bin/python -m benchmarks._transfer_runs --out quick.jsonl --quick      # < 10 min, 2 cores
    .venv/bin/python -m benchmarks._transfer_runs --out b.jsonl --objectives charlm,moco --runs 8

``--quick`` trains the built-ins at ``tiny`` scale (the new objectives at ``small``, their only
benchmark size) and defaults to 4 runs per objective. One line per run is printed:
``objective index label value seconds``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

from benchmarks.transfer.bank import label_run, read_lines
from gradsweep.objectives.registry import BUILTINS
from gradsweep.spaces.health import HealthConfig
from gradsweep.spaces.sampling import resolve, space_to_dict, suggest
from gradsweep.spaces.space import SearchSpace, load_space, parse_space
from gradsweep.spaces.trial_config import TrialConfig

SPACES_DIR = Path(__file__).resolve().parent / "spaces"
#: The objectives of :mod:`benchmarks.transfer`, by bank name.
NEW_OBJECTIVES = ("charlm", "digits_cnn", "digits_vae")
#: Objectives of :mod:`benchmarks.transfer` added after the health defaults were chosen (a blind check).
FRESH_OBJECTIVES = ("seq2seq", "tabular")
OBJECTIVES = (*BUILTINS, *NEW_OBJECTIVES, *FRESH_OBJECTIVES)
LR_FACTOR = 100.0


def widen_space(space: SearchSpace, lr_factor: float = LR_FACTOR) -> SearchSpace:
    """``space`` with every searched tower LR's upper bound times ``lr_factor``, and clipping on or off.

    A searched ``clip.max_norm`` range becomes the choices null (no clipping), its low, the
    geometric middle and its high; a categorical one gains null; a fixed max-norm ``v`` becomes
    the choices null and ``v``; no clipping stays so. Tied LR ratios, stage multipliers and the
    other knobs are unchanged. Baselines are dropped (their clip values may not be choices now).
    """
    data = space_to_dict(space)
    data["name"] = f"{space.name}_wide"
    data["baselines"] = {}
    for tower in data["towers"]:
        lr = tower["lr"]
        if isinstance(lr, dict) and lr.get("type") == "float":
            tower["lr"] = {**lr, "high": lr["high"] * lr_factor}
    clip = data["clip"]["max_norm"]
    if isinstance(clip, dict) and clip.get("type") == "float":
        low, high = float(clip["low"]), float(clip["high"])
        middle = float(f"{math.sqrt(low * high) if clip.get('log') else (low + high) / 2:.3g}")
        data["clip"]["max_norm"] = {"type": "categorical", "choices": [None, low, middle, high]}
    elif isinstance(clip, dict) and clip.get("type") == "categorical":
        if None not in clip["choices"]:
            data["clip"]["max_norm"] = {**clip, "choices": [None, *clip["choices"]]}
    elif isinstance(clip, dict) and clip.get("type") == "fixed":
        data["clip"]["max_norm"] = {"type": "categorical", "choices": [None, clip["value"]]}
    elif clip is not None:
        data["clip"]["max_norm"] = {"type": "categorical", "choices": [None, clip]}
    return parse_space(data, source=data["name"])


def space_for(name: str) -> SearchSpace:
    """The space the bank samples for objective ``name``."""
    if name in BUILTINS:
        return widen_space(load_space(name))
    if name in NEW_OBJECTIVES or name in FRESH_OBJECTIVES:
        return load_space(SPACES_DIR / f"transfer_{name}.yaml")
    raise ValueError(f"unknown objective {name!r}; the bank has: {', '.join(OBJECTIVES)}")


def scale_for(name: str, quick: bool) -> str:
    """Built-ins at ``small`` (``tiny`` with ``--quick``); the new objectives always at ``small``."""
    return "tiny" if quick and name in BUILTINS else "small"


def sampler_seed(name: str, seed: int, index: int) -> int:
    """The random sampler's seed of run ``index``: each run's config is drawn on its own (resumable)."""
    digest = hashlib.sha256(f"{name}:{seed}:{index}".encode()).hexdigest()
    return int(digest[:8], 16)


def sample_params(space: SearchSpace, name: str, seed: int, index: int) -> dict[str, Any]:
    """Run ``index``'s parameters: uniform (log-uniform where the knob says) over ``space``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.RandomSampler(seed=sampler_seed(name, seed, index))
    return dict(suggest(space, optuna.create_study(sampler=sampler).ask()))


def bank_config(
    space: SearchSpace, params: dict[str, Any], *, scale: str, seed: int, zero_lr: bool = False
) -> TrialConfig:
    """The config a bank run trains: ``params`` resolved, default health settings, optionally every LR 0."""
    data = resolve(space, params, scale=scale, seed=seed).to_dict()
    data["health"] = HealthConfig().model_dump(mode="json")
    if zero_lr:
        data["towers"] = [{**t, "lr": 0.0} for t in data["towers"]]
    return TrialConfig.model_validate(data)


def train(objective: str, config: TrialConfig) -> dict[str, Any]:
    """Train ``config`` to the end on the CPU: final value, every check, seconds, error, planned steps."""
    from gradsweep.objectives.api import NullReporter, TrialContext, run_objective
    from gradsweep.objectives.health.recording import capture
    from gradsweep.objectives.registry import load_objective

    fn = load_objective(objective)
    error, value, reporter = None, math.nan, NullReporter()
    start = time.perf_counter()
    with capture() as records:
        try:
            value = run_objective(fn, config, TrialContext(config, reporter=reporter, device="cpu"))
        except Exception as exc:  # a run's failure is data (non-finite values raise NonFiniteValue)
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    seconds = time.perf_counter() - start
    monitors: dict[int, int] = {}
    checks = []
    for r in records:
        ctx = r.context
        checks.append(
            {
                "monitor": monitors.setdefault(r.monitor, len(monitors)),
                "summary": r.summary.to_dict(),
                "context": {
                    "tower_clip": dict(ctx.tower_clip),
                    "global_clip": ctx.global_clip,
                    "frozen": sorted(ctx.frozen),
                    "scaler_enabled": ctx.scaler_enabled,
                },
            }
        )
    total = reporter.total_steps
    return {"value": value, "checks": checks, "seconds": seconds, "error": error, "total_steps": total}


def untrained_value(
    name: str, space: SearchSpace, *, scale: str, seed: int, lines: list[dict[str, Any]], out: Path
) -> float:
    """The objective's metric with every LR 0 (run 0's config), from the file or computed and appended."""
    for line in lines:
        if line.get("kind") == "untrained" and (line["objective"], line["scale"], line["seed"]) == (
            name,
            scale,
            seed,
        ):
            return float(line["value"])
    config = bank_config(space, sample_params(space, name, seed, 0), scale=scale, seed=seed, zero_lr=True)
    result = train(space.objective, config)
    row = {"kind": "untrained", "objective": name, "scale": scale, "seed": seed, "value": result["value"],
           "seconds": round(result["seconds"], 3), "error": result["error"]}  # fmt: skip
    append(out, row)
    print(f"{name:<13} untrained value {result['value']:.4g} ({result['seconds']:.1f}s)", flush=True)
    return float(result["value"])


def append(out: Path, row: dict[str, Any]) -> None:
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")


def run_index(
    name: str, space: SearchSpace, index: int, *, scale: str, seed: int, untrained: float
) -> dict[str, Any]:
    """Sample and train run ``index`` of objective ``name``; its bank line (a dict)."""
    params = sample_params(space, name, seed, index)
    config = bank_config(space, params, scale=scale, seed=seed)
    result = train(space.objective, config)
    direction = space.metric.direction
    return {
        "kind": "run",
        "objective": name,
        "scale": scale,
        "seed": seed,
        "index": index,
        "params": params,
        "tower_lrs": {t.name: t.lr for t in config.towers},
        "value": result["value"],
        "direction": direction,
        "untrained": untrained,
        "label": label_run(result["value"], direction, untrained, result["checks"], result["error"]),
        "checks": result["checks"],
        "total_steps": result["total_steps"],
        "seconds": round(result["seconds"], 3),
        "error": result["error"],
    }


def collect(out: Path, objectives: list[str], runs: int, seed: int, *, quick: bool = False) -> None:
    """Append every missing run of ``objectives`` (indices 0 .. runs-1) to ``out``."""
    import torch

    torch.set_num_threads(1)
    lines = read_lines(out)
    done = {(r["objective"], r["scale"], r["seed"], r["index"]) for r in lines if r.get("kind") == "run"}
    for name in objectives:
        space, scale = space_for(name), scale_for(name, quick)
        untrained = None
        for index in range(runs):
            if (name, scale, seed, index) in done:
                continue
            if untrained is None:
                untrained = untrained_value(name, space, scale=scale, seed=seed, lines=lines, out=out)
            row = run_index(name, space, index, scale=scale, seed=seed, untrained=untrained)
            append(out, row)
            error = f"  {row['error']}" if row["error"] else ""
            print(
                f"{name:<13} {index:>3} {row['label']:<9} {row['value']:>9.4g} {row['seconds']:6.1f}s{error}",
                flush=True,
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="the bank file (JSON lines; appended to, resumable)")
    p.add_argument(
        "--objectives", default=",".join(OBJECTIVES), help=f"comma-separated, of: {', '.join(OBJECTIVES)}"
    )
    p.add_argument("--runs", type=int, default=None, help="runs per objective (default 40; 4 with --quick)")
    p.add_argument("--seed", type=int, default=0, help="the objectives' data/init seed and the sampler's")
    p.add_argument("--quick", action="store_true", help="built-ins at tiny scale, 4 runs per objective")
    args = p.parse_args(argv)
    args.objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    unknown = [o for o in args.objectives if o not in OBJECTIVES]
    if unknown:
        p.error(f"unknown objective(s) {', '.join(unknown)}; choose from {', '.join(OBJECTIVES)}")
    if args.runs is None:
        args.runs = 4 if args.quick else 40
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    collect(Path(args.out), args.objectives, args.runs, args.seed, quick=args.quick)


if __name__ == "__main__":
    main()
