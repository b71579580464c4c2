"""GPU utilization and memory, sampled from ``nvidia-smi`` while something runs.

``nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits -lms N``
prints one line per GPU every N ms (``0, 37, 2048``: index, percent of the interval a kernel ran,
MiB in use); :class:`SmiSampler` reads them on a thread while a sweep runs, and
:func:`summarize` turns them into the figures ``benchmarks/gpu.py`` prints.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

SMI_FIELDS = "index,utilization.gpu,memory.used"


class GpuBenchError(RuntimeError):
    """A GPU figure cannot be measured here (no GPU, no nvidia-smi); the message says what to do."""


@dataclass(frozen=True)
class GpuSample:
    """One ``nvidia-smi`` line: GPU ``index``, utilization in percent, memory in use in MiB."""

    index: int
    util_pct: float
    mem_mib: float


def parse_smi_line(line: str) -> GpuSample | None:
    """One line of the query above, or None for a line that is not one (a header, ``[N/A]``, blank).

    Example:
        >>> parse_smi_line("0, 37, 2048")
        GpuSample(index=0, util_pct=37.0, mem_mib=2048.0)
        >>> parse_smi_line("0, [N/A], 2048") is None
        True
    """
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 3:
        return None
    try:
        return GpuSample(int(parts[0]), float(parts[1]), float(parts[2]))
    except ValueError:
        return None


@dataclass(frozen=True)
class UtilSummary:
    """Utilization over a run.

    Attributes:
        samples: how many samples (per GPU: one per interval).
        mean_util_pct / median_util_pct: over the samples.
        busy_share: share of samples with utilization above 0 (a kernel ran in that interval).
        peak_mem_mib: the most memory in use at any sample.
    """

    samples: int
    mean_util_pct: float
    median_util_pct: float
    busy_share: float
    peak_mem_mib: float


def summarize(samples: Sequence[GpuSample], index: int | None = None) -> UtilSummary:
    """Summarize the samples of GPU ``index`` (all GPUs when None).

    Raises:
        GpuBenchError: no sample (nvidia-smi printed nothing usable while the run lasted).

    Example:
        >>> summarize([GpuSample(0, 0.0, 100.0), GpuSample(0, 80.0, 900.0), GpuSample(0, 100.0, 500.0)])
        UtilSummary(samples=3, mean_util_pct=60.0, median_util_pct=80.0, busy_share=0.6666666666666666, peak_mem_mib=900.0)
    """
    picked = [s for s in samples if index is None or s.index == index]
    if not picked:
        raise GpuBenchError(
            "nvidia-smi gave no utilization sample during the run (is the GPU visible to it?)"
        )
    utils = [s.util_pct for s in picked]
    return UtilSummary(
        samples=len(picked),
        mean_util_pct=statistics.fmean(utils),
        median_util_pct=statistics.median(utils),
        busy_share=sum(u > 0 for u in utils) / len(utils),
        peak_mem_mib=max(s.mem_mib for s in picked),
    )


def smi_command(interval_ms: int) -> list[str]:
    """The ``nvidia-smi`` command line that prints a sample per GPU every ``interval_ms``.

    Raises:
        GpuBenchError: ``nvidia-smi`` is not on the PATH.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise GpuBenchError(
            "nvidia-smi not found on the PATH: GPU utilization needs the NVIDIA driver's tools"
        )
    return [exe, f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits", "-lms", str(interval_ms)]


class SmiSampler:
    """Collect :class:`GpuSample` lines from a sampling command while a ``with`` block runs.

    Args:
        command: the sampling command (:func:`smi_command`); it must print lines until stopped.
    """

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)
        self.samples: list[GpuSample] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> SmiSampler:
        self._proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self._reader = threading.Thread(target=self._read, name="smi-sampler", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            sample = parse_smi_line(line)
            if sample is not None:
                self.samples.append(sample)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
