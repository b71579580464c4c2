"""Objectives for multi-worker trial tests; each test copies this file into its own directory.

Record files go next to the copy (``Path(__file__).parent``), one per rank, so a test can see
what every worker did. The LR picks the case: ``lr < 1`` the "good"/"mild" one, ``lr >= 1`` the
"bad"/"severe" one.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def _tag(config: Any) -> str:
    return "bad" if float(config.params["towers.all.lr"]) >= 1 else "good"


def _note(name: str, text: str) -> None:
    with open(HERE / name, "a") as fh:
        fh.write(text + "\n")


def diverging(config: Any, ctx: Any) -> float:
    """Linear regression on each worker's shard through DDP; an LR of 500 blows the gradients up.

    Every report's step is written to ``reports-<tag>-rank<r>`` after ``ctx.report`` returns,
    so the test sees the last report each worker got through.
    """
    import torch

    tag = _tag(config)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(config.global_batch * 8, 4, generator=gen)
    y = x.sum(dim=1, keepdim=True)
    model = torch.nn.Linear(4, 1)
    trainer = ctx.trainer(model, steps_per_epoch=8)
    value = float("nan")
    for step in range(trainer.total_steps):
        start = (step % 8) * config.global_batch
        idx = ctx.shard(torch.arange(start, start + config.global_batch))
        loss = torch.nn.functional.mse_loss(trainer.wrapped(x[idx]), y[idx])
        report = trainer.step(loss)
        value = -float(loss.detach())
        if report is not None:
            ctx.report(value if math.isfinite(value) else -1e9, step)
            _note(f"reports-{tag}-rank{ctx.rank}", str(step))
        time.sleep(0.02)
    return value if math.isfinite(value) else -1e9


def kill_rank1(config: Any, ctx: Any) -> float:
    """Rank 1 SIGKILLs itself at step 2: once ("good", after rank 0's checkpoint of step 1), or on every attempt.

    Returns 1.0 when the workers resumed from the checkpoint, 0.0 when they started from scratch.
    """
    tag = _tag(config)
    _note(f"attempts-{tag}-rank{ctx.rank}", str(os.getpid()))
    state = ctx.load_checkpoint()  # rank 0 wrote it; every rank loads it on a retry
    start = int(state["step"]) + 1 if state else 0
    _note(f"starts-{tag}-rank{ctx.rank}", str(start))
    for step in range(start, 4):
        ctx.report(float(step), step)
        if step == 1:
            ctx.save_checkpoint({"step": step})  # written by rank 0 only
            ctx.report(float(step), step)  # hands it to Ray
        if step == 2 and ctx.rank == 1:
            marker = HERE / f"killed-{tag}"
            if tag == "bad" or not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.2)
    return 1.0 if state else 0.0
