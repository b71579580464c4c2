"""Objectives that produce faults for real; each test copies this file into its own directory.

Marker and record files go next to the copy (``Path(__file__).parent``), so tests never share
state. The mode of a fault is chosen by the trial's LR: ``lr < 1`` is the "mild" case and
``lr >= 1`` the "severe" one, so one sweep with two baselines covers both.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import signal
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def _lr(config: Any) -> float:
    return float(config.params["towers.all.lr"])


def _note(name: str, text: str) -> None:
    with open(HERE / name, "a") as fh:
        fh.write(text + "\n")


def kill_worker(config: Any, ctx: Any) -> float:
    """SIGKILL the worker process mid-trial: once (lr < 1, after a checkpoint) or on every attempt.

    Returns 1.0 when it resumed from its checkpoint, 0.0 when it started from scratch.
    """
    severe = _lr(config) >= 1
    tag = "severe" if severe else "mild"
    _note(f"attempts-{tag}", str(os.getpid()))
    state = ctx.load_checkpoint()
    start = int(state["step"]) + 1 if state else 0
    for step in range(start, 4):
        ctx.report(float(step), step)
        if severe and step >= 2:  # every attempt, including one resumed from the checkpoint
            os.kill(os.getpid(), signal.SIGKILL)
        if step == 1:
            ctx.save_checkpoint({"step": step})
            ctx.report(float(step), step)  # hands the checkpoint to Ray
            marker = HERE / f"killed-{tag}"
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
    return 1.0 if state else 0.0


def out_of_memory(config: Any, ctx: Any) -> float:
    """lr >= 1: allocate far more than the process's address-space limit allows; else a plain trial."""
    import torch

    if _lr(config) < 1:
        ctx.report(0.5, 0)
        return 0.5
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as fh:
        vm_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm_kb * 1024 + (256 << 20), hard))
    try:
        ctx.report(0.0, 0)
        big = torch.empty(1 << 33, dtype=torch.float32)  # 32 GiB
        return float(big.numel())
    finally:  # the worker process is reused by later trials: give the limit back
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def nan_reports(config: Any, ctx: Any) -> float:
    """Reports NaN and inf intermediate values, then returns 0.25 (lr < 1) or inf (lr >= 1)."""
    ctx.report(float("nan"), 0)
    ctx.report(float("inf"), 1)
    ctx.report(0.25, 2)
    return 0.25 if _lr(config) < 1 else float("inf")


def corrupt_then_crash(config: Any, ctx: Any) -> float:
    """Save two checkpoints, damage them, crash once; the retry says which checkpoint it got.

    lr < 1 truncates only the newest file (the retry must fall back to step 0); lr >= 1 garbles
    both (the retry must start from scratch). Warnings the retry logs go to ``warnings-<tag>``.
    Returns the step the retry resumed after, or -1.0 when it started from scratch.
    """
    severe = _lr(config) >= 1
    tag = "severe" if severe else "mild"
    marker = HERE / f"crashed-{tag}"
    handler = logging.FileHandler(HERE / f"warnings-{tag}")
    logger = logging.getLogger("gradsweep.checkpoint")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        state = ctx.load_checkpoint()
    finally:
        logger.removeHandler(handler)
        handler.close()
    if marker.exists():  # the retry
        ctx.report(1.0, 5)
        return float(state["step"]) if state else -1.0
    ctx.save_checkpoint({"step": 0})
    ctx.report(0.0, 0)  # Ray persists checkpoint 1
    ctx.save_checkpoint({"step": 1})
    files = sorted(ctx.checkpoints.paths())
    for path in files if severe else files[-1:]:  # damaged as written (a crash mid-copy, a full disk)
        data = path.read_bytes()
        path.write_bytes(b"garbage" if severe else data[: len(data) // 3])
    ctx.report(1.0, 1)  # checkpoint 2 is new: Ray persists the damaged directory
    marker.write_text("x")
    raise RuntimeError("simulated crash after a damaged checkpoint")


def sleepy(config: Any, ctx: Any) -> float:
    """Writes its node id and pid, then reports slowly (for node loss and restarts)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    _note("started", f"{node} {os.getpid()} {_lr(config):.6g}")
    value = -abs(math.log10(_lr(config)) + 2.0)
    for step in range(int(os.environ.get("RELIABILITY_STEPS", "6"))):
        time.sleep(0.5)
        ctx.save_checkpoint({"step": step})
        ctx.report(value, step)
    return value


def quick(config: Any, ctx: Any) -> float:
    """A cheap, well-behaved objective: best at lr = 1e-2, two reports."""
    value = -abs(math.log10(_lr(config)) + 2.0)
    ctx.report(value, 0)
    ctx.report(value, 1)
    return value
