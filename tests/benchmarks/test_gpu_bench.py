"""``benchmarks/gpu.py`` and its helpers, on a machine without a GPU.

What runs for real here: the steps/s part on CPU (real objectives), the sweep part through the
real engine on a real local Ray with ``cpu_fallback``, and the sampler reading a real
subprocess. The one stand-in is that subprocess: this machine has no ``nvidia-smi``, so a Python
one-liner prints lines in its ``--format=csv,noheader,nounits`` format. The figures of these runs
mean nothing; they pin the plumbing and the one-line refusals.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks._gpu_sampler import GpuBenchError, GpuSample, SmiSampler, parse_smi_line, summarize
from benchmarks._throughput import TimedReporter, measure, steady_span, steps_of, with_amp
from benchmarks.gpu import parse_fractions, peak_overlap, sweep_part, throughput_table
from gradsweep.search.cli.try_ import recommended_config

REPO = Path(__file__).resolve().parents[2]
NO_CUDA = not torch.cuda.is_available()

# prints "0, 40, 1000" / "1, 0, 10" pairs every 20 ms until killed, as nvidia-smi -lms does
FAKE_SMI = [sys.executable, "-u", "-c",
            "import time\nwhile True:\n    print('0, 40, 1000'); print('1, 0, 10'); time.sleep(0.02)"]  # fmt: skip


def _script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("0, 37, 2048", GpuSample(0, 37.0, 2048.0)),
        ("3,100,81559\n", GpuSample(3, 100.0, 81559.0)),
        ("0, [N/A], 2048", None),
        ("index, utilization.gpu [%], memory.used [MiB]", None),
        ("", None),
        ("0, 37", None),
    ],
)
def test_parse_smi_line(line: str, expected: GpuSample | None) -> None:
    assert parse_smi_line(line) == expected


def test_summarize_picks_one_gpu_and_refuses_no_samples() -> None:
    samples = [
        GpuSample(0, 0.0, 100.0),
        GpuSample(1, 90.0, 5.0),
        GpuSample(0, 50.0, 300.0),
        GpuSample(0, 100.0, 200.0),
    ]
    s = summarize(samples, index=0)
    assert (s.samples, s.mean_util_pct, s.median_util_pct, s.peak_mem_mib) == (3, 50.0, 50.0, 300.0)
    assert s.busy_share == pytest.approx(2 / 3)
    assert summarize(samples).samples == 4
    with pytest.raises(GpuBenchError, match="no utilization sample"):
        summarize(samples, index=2)


def test_sampler_reads_a_running_command_and_stops_it() -> None:
    with SmiSampler(FAKE_SMI) as smi:
        deadline = time.monotonic() + 10  # a loaded machine may start the subprocess slowly
        while len(smi.samples) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert smi._proc is not None and smi._proc.poll() is not None  # stopped on exit
    assert {s.index for s in smi.samples} == {0, 1}
    assert summarize(smi.samples, index=0).mean_util_pct == 40.0


def test_peak_overlap_counts_trials_open_at_once() -> None:
    assert peak_overlap([]) == 0
    assert peak_overlap([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]) == 1  # back to back, not at once
    assert peak_overlap([(0.0, 4.0), (1.0, 5.0), (2.0, 6.0), (4.5, 7.0)]) == 3


def test_parse_fractions_names_the_bad_value() -> None:
    assert parse_fractions("1, 0.5,0.25") == [1.0, 0.5, 0.25]
    for text, fragment in (
        ("1,x", "'x' is not a number"),
        ("0", "0 is outside (0, 1]"),
        ("1.5", "1.5 is outside"),
    ):
        with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            parse_fractions(text)


def test_with_amp_changes_only_the_dtype() -> None:
    config = recommended_config("segmentation", scale="tiny", seed=0)
    off = with_amp(config, "none")
    assert str(config.amp.dtype) == "fp16" and str(off.amp.dtype) == "none"
    assert off.amp.scaler == config.amp.scaler
    assert off.to_dict() | {"amp": None} == config.to_dict() | {"amp": None}
    assert with_amp(config, None) is config


def test_steps_and_steady_span_of_a_reporter() -> None:
    r = TimedReporter()
    assert steps_of(r) == 0 and steady_span(r) == (0, 0.0)
    r.report(0.1, 10, None)
    r.report(0.2, 30, None)
    assert steps_of(r) == 30
    steps, seconds = steady_span(r)
    assert steps == 20 and seconds >= 0
    r.declare_total_steps(40)
    assert steps_of(r) == 40


def test_measure_runs_the_recommended_config_on_cpu() -> None:
    torch.set_num_threads(1)
    t = measure("finetune", scale="tiny", device="cpu", amp="none")
    assert (t.objective, t.amp, t.scale, t.device) == ("finetune", "none", "tiny", "cpu")
    assert (
        t.steps == 180 and 0 < t.steady_steps < t.steps
    )  # 2 + 3 epochs of 36 steps; reports after each epoch
    assert t.steps_per_s > 0 and t.steady_steps_per_s > 0
    assert "| finetune | 180 | none |" in throughput_table({"finetune": {"amp": [t], "fp32": [t]}})[2]


@pytest.mark.skipif(not NO_CUDA, reason="pins the refusal on a machine without CUDA")
def test_script_refuses_without_cuda_in_one_line() -> None:
    proc = _script()
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gpu.py: no CUDA GPU here (torch.cuda.is_available() is False); run it on a GPU machine, or pass "
        "--device cpu --skip-sweep for the steps/s part on CPU"
    ]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--device", "cpu"],
            "gpu.py: the sweep part measures GPU utilization and needs --device cuda; pass --skip-sweep on CPU",
        ),
        (
            ["--device", "cpu", "--skip-sweep", "--objectives", "resnet"],
            "gpu.py: unknown objective 'resnet'; built-ins: ",
        ),
        (["--gpus-per-trial", "0.5,2"], "gpu.py: --gpus-per-trial: 2 is outside (0, 1]"),
        (["--device", "tpu"], "gpu.py: --device 'tpu': use cuda, cuda:N or cpu"),
    ],
)
def test_script_bad_input_is_one_line(args: list[str], message: str) -> None:
    proc = _script(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message)


def test_script_steps_per_s_on_cpu_ends_with_its_headline() -> None:
    proc = _script("--device", "cpu", "--scale", "tiny", "--skip-sweep", "--skip-monitor", "--objectives", "finetune",
                   "--repeats", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert "| finetune | 180 | bf16 (no-op off CUDA) |" in "\n".join(lines)
    assert lines[-1].startswith("steps/s end to end (tiny, cpu, preset AMP): finetune ")


def test_sweep_part_through_the_real_engine(tmp_path: Path) -> None:
    """Real Ray and engine; trials fall back to CPU, the sampler is the stand-in above."""
    figures = sweep_part("finetune", n_trials=2, fractions=[0.5], scale="tiny", sample_ms=20,
                         sampler_command=FAKE_SMI, cpu_fallback=True)  # fmt: skip
    [fig] = figures
    assert (fig.gpus_per_trial, fig.trials) == (0.5, 2)
    assert fig.steps == 2 * 180  # each trial's last report is at its 180th step
    assert fig.concurrency >= 1 and fig.wall_s > 0 and fig.trials_per_min > 0  # 2 at once needs 2 free CPUs
    assert fig.util.mean_util_pct == 40.0 and fig.util.peak_mem_mib == 1000.0  # GPU 0's lines only
