"""Overhead of the HealthMonitor on a small transformer: bare training loop vs the same loop monitored.

The two loops run INTERLEAVED in one process (ABBA-ordered blocks of steps on the same model and
optimizer), so drift and other load on a shared machine hit both alike. Each block's per-step time
is its time over its steps; the reported ratio is the median over pairs of
``monitored block / adjacent bare block``. On CPU the clock is the process's CPU time by default
(``--clock cpu``): with one torch thread it is the work done, not the time other processes held
the cores; ``--clock wall`` (the default on CUDA, with synchronisation) measures wall time.
Each monitored block of ``k`` steps contains exactly one health check, so checks are amortised.

Modes:
    own   the monitor measures the gradient norms itself (no ClipResult): the worst case.
    clip  (default) both loops clip with ``gradsweep.spaces.apply.Clipper`` and the monitor reuses its
          ClipResult: what ``gradsweep.objectives.api.Trainer`` does, so this is the marginal cost of monitoring.

Usage::

    .venv/bin/python -m benchmarks.health_overhead --quick          # < 2 min on 1 CPU thread
    .venv/bin/python -m benchmarks.health_overhead --sweep-k --quick
    .venv/bin/python -m benchmarks.health_overhead --device cuda

The last line is ``health overhead ratio: X.XXX``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from gradsweep.objectives.health import HealthMonitor
from gradsweep.spaces.apply import Clipper, build_optimizer
from gradsweep.spaces.health import HealthConfig
from gradsweep.spaces.trial_config import ClipConfig, TowerConfig, TrialConfig


class TinyLM(nn.Module):
    """Embedding + ``layers``-deep TransformerEncoder + head: ~12 parameter tensors per layer."""

    def __init__(self, vocab: int, width: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        layer = nn.TransformerEncoderLayer(
            width, nhead=4, dim_feedforward=2 * width, batch_first=True, dropout=0.0
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)))  # (B, T, vocab)


def _config(width: int, k: int) -> TrialConfig:
    towers = [
        TowerConfig(name="embed", patterns=["embed.*"], lr=1e-3, weight_decay=0.01),
        TowerConfig(name="encoder", patterns=["encoder.*"], lr=1e-3, weight_decay=0.01),
        TowerConfig(name="head", patterns=["head.*"], lr=1e-3, weight_decay=0.01),
    ]
    return TrialConfig(
        objective="bench", towers=towers, clip=ClipConfig(max_norm=1.0), health=HealthConfig(check_every=k)
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args: argparse.Namespace, k: int, pairs: int) -> tuple[float, float, float, float]:
    """Median per-step seconds (bare, monitored), the median paired ratio, and mean observe() seconds."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = TinyLM(args.vocab, args.width, args.layers).to(device)
    config = _config(args.width, k)
    opt = build_optimizer(model, config)
    clipper = Clipper(opt, config) if args.mode == "clip" else None
    monitor = HealthMonitor(opt, config.health, clip=config.clip, towers=config.towers)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq + 1), device=device)
    x, y = tokens[:, :-1], tokens[:, 1:]
    step_no = [0]
    observe_time = [0.0, 0]

    def step(monitored: bool) -> None:
        logits = model(x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, args.vocab), y.reshape(-1))
        loss.backward()
        clip = clipper.clip() if clipper is not None else None
        if monitored:
            t0 = clock()
            monitor.observe(loss.detach(), clip, step=step_no[0])
            observe_time[0] += clock() - t0
            observe_time[1] += 1
        opt.step()
        opt.zero_grad(set_to_none=True)
        step_no[0] += 1

    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    def block(monitored: bool) -> float:
        _sync(device)
        t0 = clock()
        for _ in range(args.block):
            step(monitored)
        _sync(device)
        return (clock() - t0) / args.block

    for _ in range(args.warmup):
        step(True)
        step(False)
    observe_time[:] = [0.0, 0]
    bare, mon, ratios = [], [], []
    run: Callable[[bool], float] = block
    for i in range(pairs):
        if i % 2 == 0:  # ABBA order cancels "first block of a pair" effects
            b, m = run(False), run(True)
        else:
            m, b = run(True), run(False)
        bare.append(b)
        mon.append(m)
        ratios.append(m / b)
    return (
        statistics.median(bare),
        statistics.median(mon),
        statistics.median(ratios),
        observe_time[0] / observe_time[1],
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer pairs (under 2 minutes on one CPU thread)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--mode", choices=["own", "clip"], default="clip")
    p.add_argument(
        "--k", type=int, default=HealthConfig().check_every, help="check_every (default: HealthConfig's)"
    )
    p.add_argument("--sweep-k", action="store_true", help="measure several k values first")
    p.add_argument(
        "--pairs", type=int, default=None, help="bare/monitored block pairs (default 30, quick 10)"
    )
    p.add_argument("--block", type=int, default=None, help="steps per block (default max(k, 10))")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default=None,
        help="cpu: process CPU time (default on cpu: robust to other load on a shared machine); "
        "wall: perf_counter with device sync (default on cuda)",
    )
    args = p.parse_args(argv)
    if args.clock is None:
        args.clock = "wall" if args.device.startswith("cuda") else "cpu"
    torch.set_num_threads(args.threads)
    pairs = args.pairs or (10 if args.quick else 30)
    n_tensors = sum(1 for _ in TinyLM(args.vocab, args.width, args.layers).parameters())
    print(
        f"model: {args.layers}-layer transformer width {args.width}, {n_tensors} parameter tensors; "
        f"device {args.device}, threads {args.threads}, mode {args.mode}, clock {args.clock}"
    )
    if args.sweep_k:
        for k in (1, 5, 10, 25, 50, 100):
            args.block = max(k, 10)
            b, m, r, o = measure(args, k, 4)
            print(
                f"sweep k={k:<4d} bare {b * 1e3:.2f} ms/step  monitored {m * 1e3:.2f} ms/step  ratio {r:.3f}  "
                f"observe() {o * 1e6:.0f} us/step = {o / b:.2%} of a bare step"
            )
    args.block = args.block if args.block and not args.sweep_k else max(args.k, 10)
    b, m, r, o = measure(args, args.k, pairs)
    print(
        f"k={args.k} block={args.block} pairs={pairs}: bare {b * 1e3:.2f} ms/step, monitored {m * 1e3:.2f} ms/step "
        f"(ratio of medians {m / b:.3f})"
    )
    print(
        f"observe() itself: {o * 1e6:.0f} us/step on average incl. checks = {o / b:.2%} of a bare step "
        f"(direct estimate of the ratio: {1 + o / b:.3f})"
    )
    print(f"health overhead ratio: {r:.3f}")


if __name__ == "__main__":
    main()
