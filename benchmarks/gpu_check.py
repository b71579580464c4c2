"""The GPU check: one prepared run that proves the CUDA paths in a short GPU window (issue 22).

``scripts/gpu_check.sh`` (``make gpu-check``) runs each part in its own process under its own time
budget, then assembles their results into ONE JSON file and a short text summary. The parts:

* ``tests``: pytest of the tests that skip without CUDA, and the objectives' tiny-scale tests with
  ``GRADSWEEP_TEST_DEVICE`` set to the device (``tests/objectives/_support.run_on_cpu`` reads it);
* ``steps``: each built-in objective's recommended config (its preset's ``after`` baseline) at
  ``--scale`` (``full``), with the preset's AMP and with AMP off: after ``--warm`` optimizer steps,
  ``--steps`` steps (or ``--max-seconds``) are timed with ``torch.cuda.synchronize()`` at both ends
  (steps/s, peak GPU memory), then ``--sync-steps`` more run under
  ``torch.cuda.set_sync_debug_mode("error")``: any host sync inside them is recorded with where it
  happened;
* ``monitor``: ``benchmarks/health_overhead.py --device DEVICE`` in its ``clip`` and ``own`` modes
  (monitored / bare step time, interleaved; target <= 1.01);
* ``seeds``: seeds 003 (``multitower``) and 004 (``segmentation``) in fp16: each ``before``
  baseline must show its pathology (non-finite loss, GradScaler overflow storm, or exploding grad
  norms) and be flagged by the health monitor; each ``after`` must stay healthy (finite, no pathology, never UNSTABLE);
* ``sweep``: a plain-Optuna sweep (no Ray) of one objective's preset space: ``--workers``
  processes share the device and one JournalFile study, while ``nvidia-smi`` samples GPU 0.

Usage (what the shell script runs)::

    python -m benchmarks.gpu_check run PART --work DIR [--device cuda] [options]   # writes DIR/PART.json
    python -m benchmarks.gpu_check assemble --work DIR --out OUT                    # OUT/gpu_check.{json,txt}

``run`` with a CUDA device where there is none refuses in one line (exit 2). ``--device cpu``
runs the same logic on CPU (the tests do; the figures then say nothing about a GPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PARTS = ("tests", "steps", "monitor", "seeds", "sweep")
#: The tests that skip without CUDA (``grep -rn "needs CUDA" tests``) and the objectives' tests
#: (none of them imports Ray).
CUDA_TESTS = (
    "tests/spaces/apply/test_apply_cuda_loop.py",
    "tests/spaces/apply/test_apply_amp.py",
    "tests/spaces/apply/test_apply_clipping.py",
)
OBJECTIVE_TESTS = tuple(
    f"tests/objectives/test_{name}.py"
    for name in ("contrastive", "finetune", "moco", "multitower", "segmentation")
)
#: seed -> (objective, its preset); their ``before``/``after`` baselines are the seed's configs.
SEEDS = {"003": "multitower", "004": "segmentation"}
STATUSES = ("ok", "failed", "skipped")


class GpuCheckError(RuntimeError):
    """A part cannot run or did not give what it checks; the message is one line."""


class _Stop(BaseException):
    """Ends a timed trial from the optimizer hook (a BaseException: objectives catch Exception)."""


# --- results, assembly, summary (pure) ------------------------------------------------------
def part_result(status: str, *, reason: str = "", figures: dict[str, Any] | None = None,
                seconds: float | None = None) -> dict[str, Any]:  # fmt: skip
    """One part's entry: ``status`` (ok/failed/skipped), ``reason`` (why not ok), its figures.

    Example:
        >>> part_result("skipped", reason="no nvidia-smi")
        {'status': 'skipped', 'reason': 'no nvidia-smi', 'figures': {}, 'seconds': None}
    """
    if status not in STATUSES:
        raise ValueError(f"status {status!r}: use one of {', '.join(STATUSES)}")
    return {"status": status, "reason": reason, "figures": figures or {}, "seconds": seconds}


def missing_part(rc: int | None, budget_s: int | None) -> dict[str, Any]:
    """The entry of a part that wrote no result: timed out (rc 124/137), crashed, or never ran.

    Example:
        >>> missing_part(124, 90)["reason"]
        'ran past its budget of 90 s (rc 124) and wrote no result'
    """
    if rc is None:
        return part_result("skipped", reason="not run")
    if rc in (124, 137):
        return part_result(
            "failed", reason=f"ran past its budget of {budget_s} s (rc {rc}) and wrote no result"
        )
    return part_result("failed", reason=f"exited with rc {rc} and wrote no result (see gpu_check.log)")


def assemble(parts: dict[str, dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """The one JSON document: ``meta``, every part of :data:`PARTS` (missing ones 'not run'), ``ok``.

    Example:
        >>> doc = assemble({"tests": part_result("ok")}, {"device": "cpu"})
        >>> doc["ok"], doc["parts"]["sweep"]["status"], doc["counts"]
        (False, 'skipped', {'ok': 1, 'failed': 0, 'skipped': 4})
    """
    full = {name: parts.get(name) or part_result("skipped", reason="not run") for name in PARTS}
    counts = {s: sum(p["status"] == s for p in full.values()) for s in STATUSES}
    return {"meta": meta, "ok": counts["ok"] == len(PARTS), "counts": counts, "parts": full}


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _detail(name: str, figures: dict[str, Any]) -> list[str]:
    """Headline figures of one part, as short lines."""
    lines = []
    if name == "tests" and figures:
        lines.append(f"passed {figures.get('passed')}, failed {figures.get('failed')}, "
                     f"skipped {figures.get('skipped')}, errors {figures.get('errors')}")  # fmt: skip
    if name == "steps":
        for run in figures.get("runs", []):
            sync = run.get("host_sync") or {}
            synced = {True: f"host sync at {sync.get('where')}", False: "no host sync"}.get(
                sync.get("synced"), "sync not checked"
            )
            lines.append(f"{run.get('objective')} {run.get('amp')}: {_fmt(run.get('steps_per_s'))} steps/s "
                         f"over {run.get('steps_timed')} steps, peak {_fmt(run.get('peak_mem_mib'), '.0f')} MiB, "
                         f"{synced}" + (f"; error: {run['error']}" if run.get("error") else ""))  # fmt: skip
    if name == "monitor":
        for mode, ratio in (figures.get("ratios") or {}).items():
            lines.append(f"{mode}: ratio {_fmt(ratio, '.3f')} (target <= {figures.get('target')})")
    if name == "seeds":
        for run in figures.get("runs", []):
            lines.append(f"seed {run.get('seed')} {run.get('baseline')}: worst verdict {run.get('worst_verdict')}, "
                         f"pathology {','.join(run.get('pathology') or []) or 'none'}, value {_fmt(run.get('value'), '.4f')}"
                         f" -> {'as expected' if run.get('as_expected') else 'NOT as expected'}")  # fmt: skip
    if name == "sweep" and figures:
        util = figures.get("util") or {}
        lines.append(f"{figures.get('objective')}: {figures.get('complete')}/{figures.get('trials')} trials complete "
                     f"with {figures.get('workers')} workers in {_fmt(figures.get('wall_s'))} s; GPU 0 utilization mean "
                     f"{_fmt(util.get('mean_util_pct'), '.0f')}%, peak memory {_fmt(util.get('peak_mem_mib'), '.0f')} MiB")  # fmt: skip
    return lines


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """The short text summary: the device, one line per part, its figures indented, the verdict.

    Example:
        >>> doc = assemble({"monitor": part_result("ok", figures={"ratios": {"clip": 1.004}, "target": 1.01})},
        ...                {"device": "H200"})
        >>> summary_lines(doc)[:3]
        ['gpu check on H200', 'tests: skipped (not run)', 'steps: skipped (not run)']
        >>> summary_lines(doc)[3:5]
        ['monitor: ok', '  clip: ratio 1.004 (target <= 1.01)']
    """
    meta = doc.get("meta", {})
    lines = [f"gpu check on {meta.get('device', '?')}"]
    for name, part in doc["parts"].items():
        took = f" in {part['seconds']:.0f} s" if part.get("seconds") is not None else ""
        why = f" ({part['reason']})" if part.get("reason") else ""
        lines.append(f"{name}: {part['status']}{took}{why}")
        lines.extend("  " + line for line in _detail(name, part.get("figures") or {}))
    c = doc["counts"]
    lines.append(
        f"{'ALL OK' if doc['ok'] else 'NOT ALL OK'}: {c['ok']} ok, {c['failed']} failed, {c['skipped']} skipped"
    )
    return lines


def load_parts(work: Path, budgets: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    """Each part's ``WORK/PART.json``; a part without one gets :func:`missing_part` from ``WORK/PART.rc``."""
    parts = {}
    for name in PARTS:
        result = work / f"{name}.json"
        rc_file = work / f"{name}.rc"
        if result.is_file():
            try:
                parts[name] = json.loads(result.read_text())
                continue
            except ValueError as exc:
                parts[name] = part_result("failed", reason=f"{result.name} is not JSON: {exc}")
                continue
        rc = int(rc_file.read_text().strip()) if rc_file.is_file() else None
        parts[name] = missing_part(rc, (budgets or {}).get(name))
    return parts


# --- helpers shared by the parts --------------------------------------------------------------
def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))}; torch {torch.__version__}"
    return f"CPU; torch {torch.__version__}"


def preset_config(objective: str, baseline: str, *, scale: str, amp: str | None = None, seed: int = 0) -> Any:
    """``objective``'s preset baseline (``before``/``after``) at ``scale``, with ``amp.dtype`` set when given.

    (``benchmarks._throughput`` has the same with ``recommended_config``, but importing it imports
    the CLI and plotly, which the GPU machine lacks.)
    """
    from gradsweep.objectives.registry import describe
    from gradsweep.spaces.sampling import baseline_config
    from gradsweep.spaces.space import load_space

    preset = describe(objective).preset
    space = load_space(preset.removesuffix(".yaml"))
    config = baseline_config(space, baseline, scale=scale, seed=seed)
    if amp is None:
        return config
    data = config.to_dict()
    return type(config).from_dict({**data, "amp": {**(data.get("amp") or {}), "dtype": amp}})


def _where(exc: BaseException) -> str:
    """The innermost frame of the repository's own code in ``exc``'s traceback (``file:line in func``)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(REPO) in f.filename]
    if not frames:
        return "?"
    f = frames[-1]
    return f"{Path(f.filename).relative_to(REPO)}:{f.lineno} in {f.name}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# --- part: steps ---------------------------------------------------------------------------------
def timed_steps(objective: str, *, amp: str | None, scale: str, device: str, warm: int, steps: int,
                max_seconds: float, sync_steps: int) -> dict[str, Any]:  # fmt: skip
    """Time ``steps`` optimizer steps after ``warm`` (stopping early at ``max_seconds``), then run
    ``sync_steps`` more under ``set_sync_debug_mode("error")`` (CUDA only) and stop the trial.

    Steps are counted by a global optimizer post-step hook, for the optimizers that
    ``build_optimizer`` made from the config (their groups have a ``tower`` key); an objective's
    own helper optimizers (finetune's pretraining) are not counted, but the time they take inside the
    window is. A step the GradScaler skips (overflow) is not counted either.
    """
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from gradsweep.objectives.api import NullReporter, TrialContext, run_objective
    from gradsweep.objectives.registry import load_objective

    config = preset_config(objective, "after", scale=scale, amp=amp)
    ctx = TrialContext(config, reporter=NullReporter(), device=device)
    on_cuda = ctx.device.type == "cuda"
    st: dict[str, Any] = {"n": 0, "t0": None, "t1": None, "timed": 0, "sync_on": False, "sync_from": None}

    def sync() -> None:
        if on_cuda:
            torch.cuda.synchronize(ctx.device)

    def hook(opt: Any, _args: Any, _kwargs: Any) -> None:
        if not all(
            "tower" in g for g in opt.param_groups
        ):  # not the config's optimizer (e.g. a pretraining one)
            return
        st["n"] += 1
        if st["n"] == warm:
            sync()
            st["t0"] = time.perf_counter()
            if on_cuda:
                torch.cuda.reset_peak_memory_stats(ctx.device)
        elif st["t0"] is not None and st["t1"] is None:
            if st["n"] - warm >= steps or time.perf_counter() - st["t0"] >= max_seconds:
                sync()
                st["t1"], st["timed"] = time.perf_counter(), st["n"] - warm
                if not on_cuda or sync_steps <= 0:
                    raise _Stop
                st["sync_on"], st["sync_from"] = True, st["n"]
                torch.cuda.set_sync_debug_mode("error")
        elif st["sync_on"] and st["n"] - st["sync_from"] >= sync_steps:
            torch.cuda.set_sync_debug_mode(0)
            st["sync_on"] = False
            raise _Stop

    out: dict[str, Any] = {"objective": objective, "amp": str(config.amp.dtype), "scale": scale,
                           "device": str(ctx.device), "error": None}  # fmt: skip
    sync_info: dict[str, Any] = {
        "checked": on_cuda and sync_steps > 0,
        "synced": None,
        "where": None,
        "message": None,
    }
    handle = register_optimizer_step_post_hook(hook)
    fn = load_objective(objective)
    try:
        run_objective(fn, config, ctx)
    except _Stop:
        pass
    except Exception as exc:
        if st["sync_on"] and "synchroniz" in str(exc).lower():
            sync_info.update(synced=True, where=_where(exc), message=_one_line(exc))
        else:
            out["error"] = _one_line(exc) + f" at {_where(exc)}"
    finally:
        handle.remove()
        if on_cuda:
            torch.cuda.set_sync_debug_mode(0)
    if st["t0"] is not None and st["t1"] is None:  # the trial ended before the timed window did
        sync()
        st["t1"], st["timed"] = time.perf_counter(), st["n"] - warm
    if (
        sync_info["checked"]
        and sync_info["synced"] is None
        and st["sync_from"] is not None
        and not out["error"]
    ):
        sync_info["synced"] = False
    seconds = (st["t1"] - st["t0"]) if st["t0"] is not None else None
    out.update(
        steps_timed=st["timed"],
        seconds=seconds,
        steps_per_s=(st["timed"] / seconds) if seconds else None,
        peak_mem_mib=(torch.cuda.max_memory_allocated(ctx.device) / 2**20) if on_cuda else None,
        host_sync=sync_info,
    )
    return out


def steps_part(args: argparse.Namespace, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Every objective in ``args.objectives``, preset AMP then fp32 (AMP is a no-op off CUDA: one run)."""
    runs: list[dict[str, Any]] = []
    amps: Sequence[str | None] = (None, "none") if args.device.startswith("cuda") else (None,)
    for name in args.objectives:
        for amp in amps:
            run = timed_steps(name, amp=amp, scale=args.scale, device=args.device, warm=args.warm,
                              steps=args.steps, max_seconds=args.max_seconds, sync_steps=args.sync_steps)  # fmt: skip
            runs.append(run)
            print(f"[steps] {json.dumps(run)}", flush=True)
            save(part_result("failed", reason="interrupted (partial)", figures={"runs": runs}))
    bad = [f"{r['objective']} {r['amp']}: {r['error']}" for r in runs if r["error"]]
    synced = [f"{r['objective']} {r['amp']}" for r in runs if r["host_sync"]["synced"]]
    reason = "; ".join([*(f"error in {b}" for b in bad), *(f"host sync in {s}" for s in synced)])
    return part_result("failed" if reason else "ok", reason=reason, figures={"runs": runs, "warm": args.warm})


# --- part: tests -----------------------------------------------------------------------------------
def junit_counts(xml_text: str) -> dict[str, int]:
    """``tests/failures/errors/skipped/passed`` summed over a JUnit XML report's test suites.

    Example:
        >>> junit_counts('<testsuites><testsuite tests="5" failures="1" errors="0" skipped="2"/></testsuites>')
        {'tests': 5, 'failed': 1, 'errors': 0, 'skipped': 2, 'passed': 2}
    """
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml_text)
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    out = {
        "tests": total["tests"],
        "failed": total["failures"],
        "errors": total["errors"],
        "skipped": total["skipped"],
    }
    out["passed"] = out["tests"] - out["failed"] - out["errors"] - out["skipped"]
    return out


def tests_part(args: argparse.Namespace, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """pytest of :data:`CUDA_TESTS` and :data:`OBJECTIVE_TESTS` (the latter on ``args.device``)."""
    paths = list(args.test_paths or (*CUDA_TESTS, *OBJECTIVE_TESTS))
    with tempfile.TemporaryDirectory(prefix="gpu-check-tests-") as tmp:
        xml = Path(tmp) / "junit.xml"
        env = {**os.environ, "GRADSWEEP_TEST_DEVICE": args.device}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *paths]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        print(proc.stdout[-6000:] + proc.stderr[-2000:], flush=True)
        if not xml.is_file():
            return part_result("failed", reason=f"pytest wrote no report (rc {proc.returncode})")
        counts = junit_counts(xml.read_text())
    failed = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    figures = {**counts, "rc": proc.returncode, "failures": failed[:20], "paths": paths}
    if args.device.startswith("cuda") and counts["skipped"]:
        figures["note"] = "some tests skipped on CUDA: see gpu_check.log"
    ok = proc.returncode == 0 and counts["tests"] > 0
    return part_result(
        "ok" if ok else "failed", reason="" if ok else f"pytest rc {proc.returncode}", figures=figures
    )


# --- part: monitor ---------------------------------------------------------------------------------
def parse_ratio(stdout: str) -> float:
    """The ratio from ``health_overhead.py``'s last line ``health overhead ratio: X``.

    Example:
        >>> parse_ratio("k=10 ...\\nhealth overhead ratio: 1.004\\n")
        1.004
    """
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("health overhead ratio:"):
            return float(line.split(":", 1)[1])
    raise GpuCheckError("health_overhead.py printed no 'health overhead ratio:' line")


def monitor_part(args: argparse.Namespace, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    ratios: dict[str, float] = {}
    for mode in ("clip", "own"):
        cmd = [sys.executable, "-m", "benchmarks.health_overhead", "--device", args.device, "--mode", mode,
               "--pairs", str(args.pairs)]  # fmt: skip
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        print(proc.stdout + proc.stderr[-2000:], flush=True)
        if proc.returncode != 0:
            raise GpuCheckError(f"health_overhead.py --mode {mode} exited with rc {proc.returncode}")
        ratios[mode] = parse_ratio(proc.stdout)
    figures = {"ratios": ratios, "target": 1.01, "pairs": args.pairs}
    over = ratios["clip"] > 1.01
    return part_result("failed" if over else "ok", reason=f"clip ratio {ratios['clip']:.3f} > 1.01" if over else "",
                       figures=figures)  # fmt: skip


# --- part: seeds -------------------------------------------------------------------------------------
def pathologies(value: float, reasons: Sequence[str]) -> list[str]:
    """Which of the seeds' pathologies a run shows: its value and its health reasons.

    Example:
        >>> pathologies(float("nan"), ["image_tower grad norm 3e+02 > 100 for 2 checks"])
        ['non-finite', 'explosion']
        >>> pathologies(0.5, ["GradScaler skipped 9 steps in a row > 5 (at step 40)"])
        ['scaler-overflow']
    """
    found = []
    if not math.isfinite(value) or any("non-finite" in r for r in reasons):
        found.append("non-finite")
    if any("GradScaler" in r for r in reasons):
        found.append("scaler-overflow")
    if any("grad norm" in r and ">" in r for r in reasons):
        found.append("explosion")
    return found


def seed_run(seed: str, baseline: str, *, scale: str, device: str) -> dict[str, Any]:
    """Seed ``seed``'s ``baseline`` config in fp16 with a recording reporter: value, verdicts, pathology."""
    from gradsweep.objectives.api import NullReporter, TrialContext, run_objective
    from gradsweep.objectives.health.verdict import Verdict
    from gradsweep.objectives.registry import load_objective

    objective = SEEDS[seed]
    config = preset_config(objective, baseline, scale=scale, amp="fp16")
    reporter = NullReporter()
    ctx = TrialContext(config, reporter=reporter, device=device)
    error = None
    try:
        value = float(run_objective(load_objective(objective), config, ctx))
    except Exception as exc:  # NonFiniteValue for a non-finite metric; anything else is recorded
        value, error = math.nan, _one_line(exc)
    reports = reporter.health_reports
    rank = {Verdict.HEALTHY: 0, Verdict.WARNING: 1, Verdict.UNSTABLE: 2}
    worst = max(reports, key=lambda r: rank[r.verdict], default=None)
    reasons = sorted({reason for r in reports for reason in r.reasons})
    found = pathologies(value, reasons)
    worst_verdict = str(worst.verdict) if worst else None
    flagged = worst_verdict in ("warning", "unstable")
    if baseline == "before":
        expected = flagged and bool(found)
    else:
        # healthy: no pathology, a finite value, never UNSTABLE (a WARNING, e.g. one loss spike, is allowed)
        expected = worst_verdict != "unstable" and not found and math.isfinite(value) and error is None
    return {"seed": seed, "objective": objective, "baseline": baseline, "scale": scale, "amp": "fp16",
            "value": value, "error": error, "worst_verdict": worst_verdict, "flagged": flagged,
            "reasons": reasons[:10], "pathology": found, "as_expected": expected}  # fmt: skip


def seeds_part(args: argparse.Namespace, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    runs = []
    for seed in SEEDS:
        for baseline in ("before", "after"):
            run = seed_run(seed, baseline, scale=args.seed_scale, device=args.device)
            runs.append(run)
            print(f"[seeds] {json.dumps(run)}", flush=True)
            save(part_result("failed", reason="interrupted (partial)", figures={"runs": runs}))
    bad = [f"seed {r['seed']} {r['baseline']}" for r in runs if not r["as_expected"]]
    reason = "not as expected: " + ", ".join(bad) if bad else ""
    return part_result("failed" if bad else "ok", reason=reason, figures={"runs": runs})


# --- part: sweep -----------------------------------------------------------------------------------
def sweep_worker(
    storage_path: str, study: str, objective: str, *, trials: int, scale: str, device: str
) -> None:
    """One worker process: ``trials`` trials of ``objective``'s preset space on a shared study."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from gradsweep.objectives.api import NullReporter, TrialContext, run_objective
    from gradsweep.objectives.registry import describe, load_objective
    from gradsweep.spaces.sampling import resolve, suggest
    from gradsweep.spaces.space import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(describe(objective).preset.removesuffix(".yaml"))
    fn = load_objective(objective)
    storage = JournalStorage(JournalFileBackend(storage_path))
    s = optuna.load_study(study_name=study, storage=storage)

    def run(trial: optuna.Trial) -> float:
        config = resolve(space, suggest(space, trial), scale=scale)
        value = run_objective(fn, config, TrialContext(config, reporter=NullReporter(), device=device))
        return float(value)

    s.optimize(run, n_trials=trials, catch=(Exception,))


def sweep_part(args: argparse.Namespace, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """``args.workers`` worker processes x ``args.trials_per_worker`` trials, ``nvidia-smi`` sampling."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from benchmarks._gpu_sampler import SmiSampler, smi_command, summarize
    from gradsweep.objectives.registry import describe

    direction = _direction(describe(args.sweep_objective).preset)
    command = json.loads(args.sampler_command) if args.sampler_command else smi_command(200)
    with tempfile.TemporaryDirectory(prefix="gpu-check-sweep-") as tmp:
        path = str(Path(tmp) / "journal.log")
        optuna.create_study(study_name="gpu-check", storage=JournalStorage(JournalFileBackend(path)),
                            direction=direction, sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip
        cmd = [sys.executable, "-m", "benchmarks.gpu_check", "sweep-worker", "--journal", path,
               "--sweep-objective", args.sweep_objective, "--trials-per-worker", str(args.trials_per_worker),
               "--sweep-scale", args.sweep_scale, "--device", args.device]  # fmt: skip
        with SmiSampler(command) as smi:
            t0 = time.monotonic()
            procs = [subprocess.Popen(cmd, cwd=REPO) for _ in range(args.workers)]
            rcs = [p.wait() for p in procs]
            wall = time.monotonic() - t0
        trials = optuna.load_study(
            study_name="gpu-check", storage=JournalStorage(JournalFileBackend(path))
        ).trials
    states = [t.state.name for t in trials]
    util = summarize(smi.samples, index=0).__dict__ if smi.samples else None
    figures = {"objective": args.sweep_objective, "scale": args.sweep_scale, "workers": args.workers,
               "trials": len(trials), "complete": states.count("COMPLETE"), "fail": states.count("FAIL"),
               "wall_s": wall, "trials_per_min": 60 * len(trials) / wall if wall > 0 else None,
               "worker_rcs": rcs, "util": util}  # fmt: skip
    problems = []
    if any(rcs):
        problems.append(f"worker rcs {rcs}")
    if figures["complete"] != args.workers * args.trials_per_worker:
        problems.append(f"{figures['complete']} of {args.workers * args.trials_per_worker} trials complete")
    if util is None:
        problems.append("no nvidia-smi sample")
    return part_result("failed" if problems else "ok", reason="; ".join(problems), figures=figures)


def _direction(preset: str) -> str:
    from gradsweep.spaces.space import load_space

    return str(load_space(preset.removesuffix(".yaml")).metric.direction)


# --- command line ----------------------------------------------------------------------------------
RUNNERS: dict[str, Callable[[argparse.Namespace, Callable[[dict[str, Any]], None]], dict[str, Any]]] = {
    "tests": tests_part,
    "steps": steps_part,
    "monitor": monitor_part,
    "seeds": seeds_part,
    "sweep": sweep_part,
}


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be above 0")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one part, writing WORK/PART.json")
    run.add_argument("part", choices=PARTS)
    run.add_argument("--work", type=Path, required=True)
    run.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    run.add_argument("--objectives", default=None, help="steps: comma-separated built-ins (default: all)")
    run.add_argument("--scale", default="full", choices=["tiny", "small", "full"], help="steps: scale")
    run.add_argument("--warm", type=_positive(int), default=20, help="steps: untimed steps first")
    run.add_argument("--steps", type=_positive(int), default=200, help="steps: timed steps per run")
    run.add_argument(
        "--max-seconds", type=_positive(float), default=10.0, help="steps: cap on one timed window"
    )
    run.add_argument(
        "--sync-steps", type=int, default=3, help="steps: steps under set_sync_debug_mode('error')"
    )
    run.add_argument("--pairs", type=_positive(int), default=20, help="monitor: bare/monitored block pairs")
    run.add_argument("--seed-scale", default="small", choices=["tiny", "small", "full"], help="seeds: scale")
    run.add_argument("--sweep-objective", default="multitower")
    run.add_argument("--sweep-scale", default="small", choices=["tiny", "small", "full"])
    run.add_argument("--workers", type=_positive(int), default=4, help="sweep: processes sharing the device")
    run.add_argument("--trials-per-worker", type=_positive(int), default=2)
    run.add_argument("--sampler-command", default=None, help="sweep: JSON list replacing nvidia-smi (tests)")
    run.add_argument(
        "--test-paths", nargs="*", default=None, help="tests: pytest paths (default: the CUDA set)"
    )
    asm = sub.add_parser("assemble", help="merge WORK/*.json into OUT/gpu_check.json and OUT/gpu_check.txt")
    asm.add_argument("--work", type=Path, required=True)
    asm.add_argument("--out", type=Path, required=True)
    asm.add_argument("--device-name", default=None)
    asm.add_argument("--budgets", default="", help="PART=SECONDS,... (to name a timed-out part's budget)")
    worker = sub.add_parser("sweep-worker")
    worker.add_argument("--journal", required=True)
    worker.add_argument("--sweep-objective", required=True)
    worker.add_argument("--trials-per-worker", type=int, required=True)
    worker.add_argument("--sweep-scale", required=True)
    worker.add_argument("--device", required=True)
    return p


def parse_budgets(text: str) -> dict[str, int]:
    """``tests=90,steps=150`` -> ``{"tests": 90, "steps": 150}``.

    Raises:
        ValueError: one line naming the bad entry.
    """
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, value = item.partition("=")
        if name not in PARTS or not value.isdigit():
            raise ValueError(f"--budgets: {item!r}: use PART=SECONDS with PART one of {', '.join(PARTS)}")
        out[name] = int(value)
    return out


def _refuse(message: str) -> None:
    print(f"gpu_check: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "sweep-worker":
        sweep_worker(args.journal, "gpu-check", args.sweep_objective, trials=args.trials_per_worker,
                     scale=args.sweep_scale, device=args.device)  # fmt: skip
        return
    if args.command == "assemble":
        try:
            budgets = parse_budgets(args.budgets)
        except ValueError as exc:
            _refuse(str(exc))
        doc = assemble(load_parts(args.work, budgets), {"device": args.device_name or "?", "budgets_s": budgets,
                                                         "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")})  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
        text = "\n".join(summary_lines(doc)) + "\n"
        (args.out / "gpu_check.txt").write_text(text)
        print(text, end="")
        return
    from gradsweep.objectives.registry import BUILTINS

    on_cuda = args.device.startswith("cuda")
    if not on_cuda and args.device != "cpu":
        _refuse(f"--device {args.device!r}: use cuda, cuda:N or cpu")
    names = [o.strip() for o in (args.objectives or ",".join(BUILTINS)).split(",") if o.strip()]
    unknown = [o for o in [*names, args.sweep_objective] if o not in BUILTINS]
    if unknown:
        _refuse(f"unknown objective {unknown[0]!r}; built-ins: {', '.join(BUILTINS)}")
    args.objectives = names
    import torch

    if on_cuda and not torch.cuda.is_available():
        _refuse(
            "no CUDA GPU here (torch.cuda.is_available() is False); run it on a GPU machine, or pass --device cpu"
        )
    if not on_cuda:
        torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    target = args.work / f"{args.part}.json"

    def save(result: dict[str, Any]) -> None:
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, default=str))
        tmp.replace(target)

    print(f"[{args.part}] on {_device_name(args.device)}", flush=True)
    t0 = time.monotonic()
    try:
        result = RUNNERS[args.part](args, save)
    except Exception as exc:  # a failing part is recorded; the others still run
        traceback.print_exc()
        result = part_result("failed", reason=f"{_one_line(exc)} at {_where(exc)}")
    result["seconds"] = time.monotonic() - t0
    save(result)
    print(
        f"[{args.part}] {result['status']}" + (f": {result['reason']}" if result["reason"] else ""),
        flush=True,
    )


if __name__ == "__main__":
    main()
