"""GPU figures at ``full`` scale: steps/s per objective, utilization with fractional GPUs, monitor overhead.

Three parts, each side by side in one run:

* **Steps/s** (``throughput``): every built-in objective's recommended config (the preset's
  ``after`` baseline, as ``gradsweep try`` runs it) at ``--scale`` (``full`` on CUDA), once with the preset's AMP
  (bf16; fp16 with a GradScaler for segmentation) and once with AMP off (fp32), ABBA-ordered over ``--repeats`` after one
  warm-up trial per objective (data generation, CUDA context, kernel autotuning); medians. End to
  end (the whole trial) and steady (first to last report) steps/s, and AMP / fp32. On CPU only
  the preset's config runs (``ctx.autocast()`` is CUDA-only, so AMP and fp32 are the same there).
* **Sweep with fractional GPUs** (``sweep``): ``--sweep-trials`` trials of ``--sweep-objective``
  through ``gradsweep launch``'s engine on a local Ray, once per ``--gpus-per-trial`` value
  (default ``1,0.5,0.25``: 1, 2 and 4 trials on the GPU at once), no base pruner (every trial
  trains to the end, so the runs do the same work per trial), while ``nvidia-smi`` samples GPU 0
  every ``--sample-ms``: sweep wall, trials/min, optimizer steps/s summed over trials, mean and
  median utilization, share of samples with a kernel running, peak memory; throughput relative
  to the first value. Run it with one GPU visible (``CUDA_VISIBLE_DEVICES=0``): with more, Ray
  spreads the trials over them and GPU 0's utilization no longer describes the sweep.
* **Monitor on CUDA** (``monitor``): ``benchmarks/health_overhead.py --device cuda`` in its
  ``clip`` mode (what the Trainer does) and ``own`` mode.

Usage::

    .venv/bin/python -m benchmarks.gpu                       # all three, on a machine with a CUDA GPU and Ray
    .venv/bin/python -m benchmarks.gpu --skip-sweep          # without Ray (steps/s and monitor only)
    .venv/bin/python -m benchmarks.gpu --quick               # 1 repeat, an 8-trial small-scale sweep, quick monitor
    .venv/bin/python -m benchmarks.gpu --device cpu --skip-sweep --quick   # steps/s (small) and monitor on CPU

Without a CUDA GPU (and ``--device cpu`` not given) it says so in one line and exits 2; the sweep
part also needs ``nvidia-smi`` on the PATH. The last lines are the headline figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks._gpu_sampler import GpuBenchError, SmiSampler, UtilSummary, smi_command, summarize
from benchmarks._throughput import Throughput, measure
from gradsweep.objectives.registry import BUILTINS

REPO = Path(__file__).resolve().parent.parent

FP32 = "none"


@dataclass(frozen=True)
class SweepFigure:
    """One fractional-GPU sweep: ``gpus_per_trial``, what it did, and GPU 0's utilization meanwhile.

    Attributes:
        concurrency: the most trials that ran at once (from the study's start/end times).
    """

    gpus_per_trial: float
    concurrency: int
    trials: int
    steps: int
    wall_s: float
    util: UtilSummary

    @property
    def trials_per_min(self) -> float:
        return 60.0 * self.trials / self.wall_s

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s


def parse_fractions(text: str) -> list[float]:
    """``--gpus-per-trial`` values: comma-separated numbers in (0, 1].

    Raises:
        ValueError: one line naming the bad value.

    Example:
        >>> parse_fractions("1,0.5, 0.25")
        [1.0, 0.5, 0.25]
    """
    values = []
    for part in (p.strip() for p in text.split(",")):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(
                f"--gpus-per-trial: {part!r} is not a number (comma-separated values in (0, 1])"
            ) from None
        if not 0 < value <= 1:
            raise ValueError(
                f"--gpus-per-trial: {value:g} is outside (0, 1] (one GPU is shared by 1/value trials)"
            )
        values.append(value)
    return values  # never empty: "" splits into [""], which is not a number


def peak_overlap(spans: Sequence[tuple[float, float]]) -> int:
    """The most intervals ``(start, end)`` open at one moment (trials that ran at once).

    Example:
        >>> peak_overlap([(0, 10), (1, 5), (2, 3), (6, 9)])
        3
        >>> peak_overlap([(0, 1), (1, 2)])
        1
    """
    events = sorted(
        [(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans]
    )  # an end sorts before a start
    peak = now = 0
    for _, delta in events:
        now += delta
        peak = max(peak, now)
    return peak


def median_throughput(runs: Sequence[Throughput]) -> tuple[float, float]:
    """(median end-to-end steps/s, median steady steps/s) over ``runs``."""
    return statistics.median(r.steps_per_s for r in runs), statistics.median(
        r.steady_steps_per_s for r in runs
    )


def throughput_part(objectives: Sequence[str], *, scale: str, device: str, repeats: int,
                    compare_amp: bool = True) -> dict[str, dict[str, list[Throughput]]]:  # fmt: skip
    """Per objective, the timed runs with the preset's AMP (``"amp"``) and, with ``compare_amp``,
    with AMP off (``"fp32"``), ABBA-ordered after one warm-up run."""
    keys = ("amp", "fp32") if compare_amp else ("amp",)
    results: dict[str, dict[str, list[Throughput]]] = {}
    for name in objectives:
        warm = measure(name, scale=scale, device=device)
        print(
            f"[steps/s] {name}: warm-up {warm.steps} steps in {warm.wall_s:.1f} s (not counted)", flush=True
        )
        runs: dict[str, list[Throughput]] = {key: [] for key in keys}
        for i in range(repeats):
            for key in keys if i % 2 == 0 else keys[::-1]:
                t = measure(name, scale=scale, device=device, amp=None if key == "amp" else FP32)
                runs[key].append(t)
                print(f"[steps/s] {name} amp {t.amp} on {t.device}: {t.steps} steps, {t.wall_s:.2f} s, "
                      f"{t.steps_per_s:.1f} steps/s end to end, {t.steady_steps_per_s:.1f} steady; "
                      f"value {t.value:.4f}", flush=True)  # fmt: skip
        results[name] = runs
    return results


def throughput_table(results: dict[str, dict[str, list[Throughput]]]) -> list[str]:
    """Markdown rows: objective, steps, AMP dtype, end-to-end and steady steps/s (AMP / fp32), AMP / fp32."""
    rows = ["| objective | steps per trial | AMP | steps/s end to end (AMP / fp32) | steady steps/s (AMP / fp32) | AMP / fp32 (end to end; steady) |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for name, runs in results.items():
        amp_e, amp_s = median_throughput(runs["amp"])
        first = runs["amp"][0]
        if "fp32" in runs:
            fp_e, fp_s = median_throughput(runs["fp32"])
            rows.append(f"| {name} | {first.steps} | {first.amp} | {amp_e:.1f} / {fp_e:.1f} | "
                        f"{amp_s:.1f} / {fp_s:.1f} | {amp_e / fp_e:.2f}; {amp_s / fp_s:.2f} |")  # fmt: skip
        else:
            rows.append(
                f"| {name} | {first.steps} | {first.amp} (no-op off CUDA) | {amp_e:.1f} / - | {amp_s:.1f} / - | - |"
            )
    return rows


def sweep_part(
    objective: str,
    *,
    n_trials: int,
    fractions: Sequence[float],
    scale: str,
    sample_ms: int,
    sampler_command: Sequence[str] | None = None,
    cpu_fallback: bool = False,
) -> list[SweepFigure]:
    """One engine sweep per ``gpus_per_trial`` value while ``nvidia-smi`` samples the GPUs.

    Args:
        sampler_command: the sampling command (default :func:`smi_command`); tests on machines
            without a GPU pass one that prints lines in ``nvidia-smi``'s format.
        cpu_fallback: run the trials on CPU when there is no GPU (``--cpu-fallback``; tests only:
            the figures then say nothing about a GPU).

    Raises:
        GpuBenchError: Ray is not installed, or ``nvidia-smi`` is missing or printed nothing.
    """
    try:
        import ray  # noqa: F401
    except ImportError:
        raise GpuBenchError(
            "the sweep part needs Ray (pip install -e .); pass --skip-sweep to leave it out"
        ) from None
    import optuna

    from benchmarks._engine_overhead import open_spans
    from benchmarks._engine_runs import record_from_trial
    from benchmarks._ray_local import start_local_ray
    from gradsweep.search.engine.ray.launcher import LaunchRequest, launch
    from gradsweep.search.engine.ray.runtime import Resources, stop_ray
    from gradsweep.spaces.space import load_space

    command = list(sampler_command) if sampler_command is not None else smi_command(sample_ms)
    figures: list[SweepFigure] = []
    with tempfile.TemporaryDirectory(prefix="gradsweep-bench-gpu-") as tmp:
        root = Path(tmp)
        start_local_ray()
        try:
            for i, fraction in enumerate(fractions):
                resources = Resources(cpus_per_trial=1.0, gpus_per_trial=fraction, cpu_fallback=cpu_fallback)
                url = f"sqlite:///{root}/gpu{i}.db"
                request = LaunchRequest(space=load_space(objective), n_trials=n_trials, storage=url, study="gpu",
                                        objective=objective, scale=scale, pruner="none", seed=0,
                                        resources=resources, runs_dir=root / f"runs{i}")  # fmt: skip
                with SmiSampler(command) as smi:
                    t0 = time.monotonic()
                    summary = launch(request)
                    wall = time.monotonic() - t0
                trials = optuna.load_study(study_name="gpu", storage=url).get_trials(deepcopy=False)
                steps = sum(record_from_trial(t).steps for t in trials)
                if summary.failed:
                    raise GpuBenchError(f"--gpus-per-trial {fraction:g}: {summary.failed} trial(s) failed; see why with "
                                        f"`gradsweep launch {objective} --scale {scale} -n 1 --gpus-per-trial {fraction:g}`")  # fmt: skip
                fig = SweepFigure(fraction, peak_overlap(open_spans(url, "gpu")), len(trials), steps, wall,
                                  summarize(smi.samples, index=0))  # fmt: skip
                figures.append(fig)
                print(f"[sweep] --gpus-per-trial {fraction:g}: {fig.trials} trials ({fig.concurrency} at most at once) in {wall:.1f} s = "
                      f"{fig.trials_per_min:.2f} trials/min, {fig.steps_per_s:.1f} steps/s; GPU 0 utilization mean "
                      f"{fig.util.mean_util_pct:.0f}%, median {fig.util.median_util_pct:.0f}%, busy "
                      f"{fig.util.busy_share:.0%} of {fig.util.samples} samples, peak memory "
                      f"{fig.util.peak_mem_mib:.0f} MiB", flush=True)  # fmt: skip
        finally:
            stop_ray(True)
    return figures


def monitor_part(device: str, quick: bool) -> dict[str, float]:
    """``health_overhead.py --device DEVICE`` in ``clip`` and ``own`` modes: the ratio of each."""
    from benchmarks.overhead import monitor_ratio

    ratios = {}
    for mode in ("clip", "own"):
        ratios[mode], out = monitor_ratio(mode, ["--device", device, *(["--quick"] if quick else [])])
        print(f"[monitor, mode {mode}] " + out.strip().replace("\n", "\n[monitor] "), flush=True)
    return ratios


def _fail(message: str) -> None:
    print(f"gpu.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (steps/s only)")
    p.add_argument("--scale", default=None, choices=["tiny", "small", "full"],
                   help="steps/s part's scale (default: full on CUDA, small on CPU)")  # fmt: skip
    p.add_argument("--objectives", default=",".join(BUILTINS), help="steps/s part: comma-separated built-ins")
    p.add_argument("--repeats", type=int, default=2, help="steps/s part: AMP/fp32 pairs per objective")
    p.add_argument(
        "--sweep-objective", default="multitower", help="sweep part: a built-in objective (its preset space)"
    )
    p.add_argument("--sweep-trials", type=int, default=16)
    p.add_argument("--sweep-scale", default="full", choices=["tiny", "small", "full"])
    p.add_argument(
        "--gpus-per-trial", default="1,0.5,0.25", help="sweep part: comma-separated values in (0, 1]"
    )
    p.add_argument("--sample-ms", type=int, default=200, help="nvidia-smi sampling interval")
    p.add_argument(
        "--quick", action="store_true", help="1 repeat, a small-scale sweep of 8 trials, quick monitor"
    )
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-sweep", action="store_true")
    p.add_argument("--skip-monitor", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.sweep_trials, args.sweep_scale = 1, 8, "small"
    try:
        fractions = parse_fractions(args.gpus_per_trial)
    except ValueError as exc:
        _fail(str(exc))
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    unknown = [o for o in [*objectives, args.sweep_objective] if o not in BUILTINS]
    if unknown:
        _fail(f"unknown objective {unknown[0]!r}; built-ins: {', '.join(BUILTINS)}")
    if args.repeats < 1 or args.sweep_trials < 1:
        _fail("--repeats and --sweep-trials must be at least 1")
    on_cuda = args.device.startswith("cuda")
    if not on_cuda and args.device != "cpu":
        _fail(f"--device {args.device!r}: use cuda, cuda:N or cpu")
    if on_cuda and not torch.cuda.is_available():
        _fail("no CUDA GPU here (torch.cuda.is_available() is False); run it on a GPU machine, or pass "
              "--device cpu --skip-sweep for the steps/s part on CPU")  # fmt: skip
    if not on_cuda and not args.skip_sweep:
        _fail("the sweep part measures GPU utilization and needs --device cuda; pass --skip-sweep on CPU")
    if not on_cuda:
        torch.set_num_threads(1)
    args.scale = args.scale or ("full" if on_cuda else "small")
    name = torch.cuda.get_device_name(torch.device(args.device)) if on_cuda else "CPU, 1 torch thread"
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    headline: list[str] = []

    if not args.skip_throughput:
        # ctx.autocast() is CUDA-only: off CUDA the preset's AMP and fp32 run the same kernels
        results = throughput_part(objectives, scale=args.scale, device=args.device, repeats=args.repeats,
                                  compare_amp=on_cuda)  # fmt: skip
        print("\n".join(throughput_table(results)))
        parts = []
        for obj, runs in results.items():
            amp_e, _ = median_throughput(runs["amp"])
            vs = f" ({amp_e / median_throughput(runs['fp32'])[0]:.2f}x fp32)" if "fp32" in runs else ""
            parts.append(f"{obj} {amp_e:.1f}{vs}")
        headline.append(f"steps/s end to end ({args.scale}, {args.device}, preset AMP): " + ", ".join(parts))

    if not args.skip_sweep:
        try:
            figures = sweep_part(args.sweep_objective, n_trials=args.sweep_trials, fractions=fractions,
                                 scale=args.sweep_scale, sample_ms=args.sample_ms)  # fmt: skip
        except GpuBenchError as exc:
            _fail(str(exc))
        first = figures[0]
        headline.append("sweep with fractional GPUs (" + args.sweep_objective + f", {args.sweep_scale}): " + ", ".join(
            f"{f.gpus_per_trial:g} GPU/trial ({f.concurrency} at once) {f.trials_per_min:.2f} trials/min ({f.steps_per_s / first.steps_per_s:.2f}x), "
            f"utilization {f.util.mean_util_pct:.0f}%" for f in figures))  # fmt: skip

    if not args.skip_monitor:
        ratios = monitor_part(args.device, args.quick)
        headline.append(f"monitor overhead ratio on {args.device}: {ratios['clip']:.3f} (clip mode, as in the Trainer); "
                        f"{ratios['own']:.3f} (monitor computes the norms itself)")  # fmt: skip

    print()
    for line in headline:
        print(line)


if __name__ == "__main__":
    main()
