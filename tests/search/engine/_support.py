"""Helpers shared by the engine and reliability tests (objective source, spaces, bridges, study access, ports)."""

from __future__ import annotations

import os
import socket
import textwrap
from typing import Any

import optuna

from gradsweep.search.engine.ray.bridge import Decider, StudyBridge
from gradsweep.spaces.space import parse_space

OBJECTIVES = textwrap.dedent(
    '''
    """Objectives for the engine tests."""
    import math
    import os
    import time
    from pathlib import Path


    def lr_quality(config, ctx):
        """Best at lr = 1e-2; four reports of the same value."""
        value = -abs(math.log10(config.towers[0].lr) + 2.0)
        for step in range(4):
            ctx.report(value, step)
        return value


    def slow_quality(config, ctx):
        """Like lr_quality, but each report takes a while (for interrupts)."""
        value = -abs(math.log10(config.towers[0].lr) + 2.0)
        for step in range(6):
            time.sleep(float(os.environ.get("ENGINE_TEST_SLEEP", "0.5")))
            ctx.report(value, step)
        return value


    def prunes_itself(config, ctx):
        """Reports steps 0..2, then gives up itself (TrialPruned raised by the objective)."""
        from gradsweep.objectives.pruned import TrialPruned

        for step in range(3):
            ctx.report(0.1 * step, step)
        raise TrialPruned("unstable", "the objective gave up at step 2")


    def returns_nan(config, ctx):
        ctx.report(0.0, 0)
        return float("nan")


    def raises(config, ctx):
        raise RuntimeError("boom from the objective")


    def where(config, ctx):
        """Record the Ray node each trial ran on (one file per trial, next to this module).

        The first trial waits (up to 60 s) until a second one has started, so two trials overlap
        however slowly a loaded machine starts them: with one CPU per node they must be on both.
        """
        import ray

        node = ray.get_runtime_context().get_node_id()
        out = Path(__file__).parent / "nodes"
        out.mkdir(exist_ok=True)
        (out / f"{os.getpid()}-{time.monotonic_ns()}").write_text(node)
        deadline = time.monotonic() + 60
        while len(list(out.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        ctx.report(1.0, 0)
        return 1.0


    def crash_once(config, ctx):
        """Save a checkpoint at step 1, crash once, finish from the checkpoint on the retry."""
        marker = Path(__file__).parent / f"crashed-{config.params['towers.all.lr']:.6g}"
        state = ctx.load_checkpoint()
        start = int(state["step"]) + 1 if state else 0
        resumed = 1.0 if state else 0.0
        for step in range(start, 4):
            ctx.report(float(step), step)
            if step == 1:
                ctx.save_checkpoint({"step": step})
                ctx.report(float(step), step)  # hand the checkpoint to Ray
                if not marker.exists():
                    marker.write_text("x")
                    raise RuntimeError("simulated worker crash")
        return resumed


    def ft_curve(config, ctx):
        """Six reports of a curve the LR fixes (best 1.0 at 1e-2), a checkpoint at each; resumes from one.

        LRs above 0.05 learn late: at 0.05 until report 4, then up to their final value. At LR 0.011
        each report takes 20 s while a file ``slow`` is next to this module. Every step it trains is
        appended to ``steps-<lr>`` there (a thaw must not repeat one).
        """
        lr = config.towers[0].lr
        final = max(0.0, 1.0 - abs(math.log10(lr) + 2.0) / 4)
        state = ctx.load_checkpoint()
        start = int(state["k"]) + 1 if state else 1
        log = Path(__file__).parent / f"steps-{lr:.6g}"
        value = float("nan")
        for k in range(start, 7):
            if abs(lr - 0.011) < 1e-9 and (Path(__file__).parent / "slow").exists():
                time.sleep(20)  # the test interrupts the sweep during this trial
            with open(log, "a") as fh:
                fh.write(f"{k}\\n")
            value = final * k / 6 if lr <= 0.05 else (0.05 if k <= 4 else final * (k - 4) / 2)
            ctx.save_checkpoint({"k": k})
            ctx.report(value, k)
        return value


    def tiny_torch(config, ctx):
        """A linear regression trained with the real Trainer (real health reports)."""
        import torch

        gen = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=gen)
        y = x.sum(dim=1, keepdim=True)
        model = torch.nn.Linear(4, 1)
        trainer = ctx.trainer(model, steps_per_epoch=10)
        value = float("nan")
        for step in range(trainer.total_steps):
            with ctx.autocast():
                loss = torch.nn.functional.mse_loss(model(x.to(ctx.device)), y.to(ctx.device))
            report = trainer.step(loss)
            value = -float(loss.detach())
            if report is not None:
                ctx.report(value if math.isfinite(value) else -1e9, step)
        return value
    '''
)


def space_data(objective: str, **overrides: Any) -> dict[str, Any]:
    """A one-tower space over the LR (log 1e-4 .. 1e3), with baselines ``good`` and ``bad``."""
    data: dict[str, Any] = {
        "name": "engine-test",
        "objective": objective,
        "metric": {"name": "score", "direction": "maximize"},
        "scale": "tiny",
        "seed": 0,
        "optimizer": {"name": "sgd"},
        "towers": [
            {"name": "all", "patterns": ["*"], "lr": {"type": "float", "low": 1e-4, "high": 1e3, "log": True}}
        ],
        "stages": [{"name": "train", "steps": 30}],
        "health": {"check_every": 5},
        "baselines": {"good": {"towers.all.lr": 0.01}, "bad": {"towers.all.lr": 500.0}},
    }
    data.update(overrides)
    return data


def make_bridge(
    study: optuna.Study, decider: Decider, *, n_trials: int = 4, seed: int | None = 0, **kwargs: Any
) -> StudyBridge:
    """A driver-side bridge over ``study`` for the one-tower space of :func:`space_data` (objective never loaded)."""
    space = parse_space(space_data("unused.py:fn"))
    return StudyBridge(
        study, space, decider, objective="unused.py:fn", n_trials=n_trials, seed=seed, **kwargs
    )


def load(url: str, name: str = "engine-test") -> optuna.Study:
    """The study ``name`` at ``url``."""
    return optuna.load_study(study_name=name, storage=url)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a ``gradsweep`` subprocess (one thread, quiet Ray)."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}, **extra)
    return env
