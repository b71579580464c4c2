"""Multi-worker trials: what a trial of N DDP workers costs to start, and how its steps scale.

Two measurements, side by side in one run:

1. **Start-up per trial** (the engine): sweeps of the do-nothing objective
   (:mod:`benchmarks._trivial_objective`) with ``--workers-per-trial 1`` (Ray Tune's function
   trainable, one process) and ``--workers-per-trial 2`` (a Ray Train ``TorchTrainer`` per trial:
   two worker actors, a gloo process group), one trial at a time on the same local Ray start
   settings. The figure is the Tuner's wall time divided by the trials: start, four reports,
   the end, the study writes.
2. **Step time** (the training): the contrastive objective's model and loss (InfoNCE with the
   negatives gathered over the workers) trained for a fixed number of optimizer steps with the
   same global batch: one process with one thread, one process with N threads, and N DDP
   processes of one thread each (``torch.distributed`` with gloo on CPU, NCCL with ``--device
   cuda``), started with ``torch.multiprocessing`` so Ray's own start-up is not in it.

Run: ``python -m benchmarks.ddp`` (``--quick`` for a smoke run; ``--device cuda`` on a GPU machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._trivial_objective import TRIVIAL_SPACE


@dataclass(frozen=True)
class StepTiming:
    """Median seconds per optimizer step of one layout."""

    label: str
    workers: int
    threads: int
    seconds: float


# --- 1. start-up per trial ------------------------------------------------------------------
def startup_per_trial(workers: int, trials: int, root: Path) -> float:
    """Seconds per trial of a sweep of the do-nothing objective with ``workers`` per trial."""
    from gradsweep.search.engine.ray.launcher import LaunchRequest, launch
    from gradsweep.search.engine.ray.runtime import Resources
    from gradsweep.spaces.space import parse_space

    where = root / f"w{workers}"
    where.mkdir()
    request = LaunchRequest(
        space=parse_space(TRIVIAL_SPACE),
        n_trials=trials,
        storage=f"sqlite:///{where / 'study.db'}",
        runs_dir=where / "runs",
        seed=0,
        pruner="none",  # every trial runs its four reports
        resources=Resources(concurrency=1, workers_per_trial=workers),
    )
    summary = launch(request)
    if summary.complete != trials:
        raise RuntimeError(f"{workers} worker(s): {summary.complete} of {trials} trials completed")
    return summary.elapsed_s / trials


# --- 2. step time ---------------------------------------------------------------------------
def _train_steps(rank: int, workers: int, threads: int, steps: int, global_batch: int, device: str) -> float:
    """Median seconds per optimizer step of the contrastive model on this worker's shard."""
    import torch

    from gradsweep.objectives import contrastive
    from gradsweep.objectives.api import TrialContext
    from gradsweep.objectives.data.digits_clips import make_clips
    from gradsweep.objectives.distributed import Place
    from gradsweep.spaces.sampling import baseline_config
    from gradsweep.spaces.space import load_space

    torch.set_num_threads(threads)
    space = load_space("contrastive")
    config = baseline_config(space, "after", scale="small", seed=0, workers=workers)
    config = config.model_copy(update={"batch_size": global_batch // workers})
    dev = f"cuda:{rank}" if device == "cuda" else "cpu"
    ctx = TrialContext(config, device=dev, place=Place(rank, workers))
    train, _ = make_clips(contrastive.SCALES["small"].clips, seed=0)
    model = contrastive.build_model(config)
    trainer = ctx.trainer(model, steps_per_epoch=max(1, len(train) // config.global_batch))
    video, ids = train.video.to(ctx.device), train.tokens.to(ctx.device)
    times = []
    for i in range(steps + 3):  # three warm-up steps
        start = (i * config.global_batch) % (len(train) - config.global_batch)
        idx = ctx.shard(torch.arange(start, start + config.global_batch, device=ctx.device))
        began = time.perf_counter()
        with ctx.autocast():
            v, t, scale = trainer.wrapped(video[idx], ids[idx])
            loss = contrastive.info_nce(v, t, scale)
        trainer.step(loss)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def _worker(rank: int, workers: int, port: int, args: tuple[Any, ...], queue: Any) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    device = args[-1]
    dist.init_process_group("nccl" if device == "cuda" else "gloo", rank=rank, world_size=workers)
    try:
        queue.put((rank, _train_steps(rank, workers, *args)))
    finally:
        dist.destroy_process_group()


def step_time(workers: int, threads: int, steps: int, global_batch: int, device: str) -> float:
    """Median seconds per step over ``workers`` processes (the slowest rank's median)."""
    if workers == 1:
        return _train_steps(0, 1, threads, steps, global_batch, device)
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    spawn = mp.get_context("spawn")
    queue = spawn.Queue()
    args = (threads, steps, global_batch, device)
    procs = [spawn.Process(target=_worker, args=(r, workers, port, args, queue)) for r in range(workers)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return max(seconds for _, seconds in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ddp", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few trials and steps (a smoke run)")
    parser.add_argument("--workers", type=int, default=2, help="DDP workers per trial (default 2)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--global-batch", type=int, default=128, help="examples per step over all workers")
    parser.add_argument("--skip-startup", action="store_true", help="only the step times (no Ray)")
    args = parser.parse_args(argv)
    n = args.workers
    trials = 2 if args.quick else 6
    steps = 5 if args.quick else 30
    if args.global_batch % n:
        parser.error(f"--global-batch must be a multiple of --workers ({n})")
    print(
        f"multi-worker trials: {n} workers, device {args.device}, global batch {args.global_batch}",
        flush=True,
    )

    if not args.skip_startup:
        with tempfile.TemporaryDirectory(prefix="gradsweep-ddp-bench-") as tmp:
            one = startup_per_trial(1, trials, Path(tmp))
            many = startup_per_trial(n, trials, Path(tmp))
        print(f"start-up per trial ({trials} trials of the do-nothing objective, one at a time):")
        print(f"  1 worker (function trainable): {one:.2f} s")
        print(
            f"  {n} workers (Ray Train TorchTrainer): {many:.2f} s  ({many / one:.2f}x, +{many - one:.2f} s)"
        )

    layouts = [
        ("1 process, 1 thread", 1, 1),
        (f"1 process, {n} threads", 1, n),
        (f"{n} DDP workers, 1 thread each", n, 1),
    ]
    if args.device == "cuda":
        layouts = [("1 process, 1 GPU", 1, 1), (f"{n} DDP workers, 1 GPU each", n, 1)]
    timings = [
        StepTiming(label, w, t, step_time(w, t, steps, args.global_batch, args.device))
        for label, w, t in layouts
    ]
    base = timings[0].seconds
    print(f"step time, contrastive small (median of {steps} optimizer steps, same global batch):")
    for timing in timings:
        print(
            f"  {timing.label}: {timing.seconds * 1000:.1f} ms/step  (speed-up {base / timing.seconds:.2f}x)"
        )
    best_single = min(t.seconds for t in timings if t.workers == 1)
    print(f"{n} DDP workers vs the best single process: {best_single / timings[-1].seconds:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
