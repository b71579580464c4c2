"""Each benchmark script's smallest mode runs end to end and ends with its headline lines.

The figures of a run this small mean nothing; these tests pin that the scripts work against
the real engine, stores and objectives, and the format of the lines other tools read.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NUM = r"(?:[0-9]+\.[0-9]+|nan|inf)"


def _run(args: list[str], timeout: float) -> list[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [line for line in proc.stdout.splitlines() if line.strip()]


def test_search_efficiency_plain_optuna_methods_on_two_objectives(tmp_path: Path) -> None:
    plot = tmp_path / "curves.png"
    lines = _run(
        ["-m", "benchmarks.search_efficiency", "--scale", "tiny", "--seeds", "1", "--budget-trials", "1.5",
         "--objectives", "benchmarks/spaces/unseen_twotower.yaml,benchmarks/spaces/multitower_bench.yaml",
         "--methods", "tpe_nop,tpe_median,tpe_hyperband", "--rerun", "all", "--plot", str(plot)],
        timeout=180,
    )  # fmt: skip
    # the very last line is the headline ratio over objectives (nan: gradsweep did not run)
    assert re.fullmatch(
        rf"budget to target vs no-pruning TPE: {NUM} \(vs best other method: {NUM}\)", lines[-1]
    )
    # right before it, one line per objective, after the line of the targets
    assert lines[-3].startswith("unseen_twotower (tiny): gradsweep vs no-pruning TPE ")
    assert lines[-2].startswith("bench_multitower (tiny): gradsweep vs no-pruning TPE ")
    assert lines[-4].startswith("targets: median vs no-pruning TPE ")
    # each objective's table has one row per method
    assert sum(line.startswith("| Optuna TPE") or line.startswith("| TPE, no pruning") for line in lines) == 6
    # the summary table has one row per objective
    assert (
        sum(line.startswith(("| unseen_twotower | tiny", "| bench_multitower | tiny")) for line in lines) == 2
    )
    # one anytime plot per objective, as PNGs named after the objectives
    for name in ("unseen_twotower", "bench_multitower"):
        assert (tmp_path / f"curves_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pruner_ablation_runs_its_variants_and_ends_with_the_default_s_ratio() -> None:
    lines = _run(
        ["-m", "benchmarks.pruner_ablation", "--scale", "tiny", "--seeds", "0", "--budget-trials", "1.5",
         "--variants", "tpe_median,health_median_noguard,catchup"],
        timeout=120,
    )  # fmt: skip
    # the last line compares the default with the reference and the plain-Optuna variant
    assert re.fullmatch(
        rf"catchup: budget to target vs no-pruning TPE: {NUM} \(vs best plain-Optuna variant: {NUM}\)",
        lines[-1],
    )
    # one table row per variant, the reference added
    assert (
        sum(
            line.startswith(("| tpe_nop", "| tpe_median", "| health_median_noguard", "| catchup"))
            for line in lines
        )
        == 4
    )


@pytest.mark.ray
@pytest.mark.slow
def test_search_efficiency_ray_methods_and_gradsweep(tmp_path: Path) -> None:
    lines = _run(
        ["-m", "benchmarks.search_efficiency", "--scale", "tiny", "--seeds", "1", "--budget-trials", "1",
         "--space", "benchmarks/spaces/multitower_bench.yaml", "--methods", "random_fifo,ray_asha,gradsweep",
         "--rerun", "none", "--plot", ""],
        timeout=240,
    )  # fmt: skip
    # gradsweep ran, so both ratios are numbers or inf (never nan: the reference reaches its own target)
    match = re.fullmatch(
        r"budget to target vs no-pruning TPE: (\S+) \(vs best other method: (\S+)\)", lines[-1]
    )
    assert match is not None and match.group(1) != "nan", lines[-1]
    # the objective's line comes right before it, judging gradsweep (gradsweep_ft did not run)
    assert lines[-2].startswith("bench_multitower (tiny): gradsweep vs no-pruning TPE")
    # and the objective's section ends with gradsweep's own line
    assert any(line.startswith("gradsweep: best at budget") for line in lines)
    # every method ran one seed, and its trials trained (an erroring trainable reports 0 steps)
    seeds = [line for line in lines if " seed 0 " in line]
    assert len(seeds) == 4 and all(re.search(r"trials, +[1-9][0-9]* steps", line) for line in seeds), seeds


@pytest.mark.ray
@pytest.mark.postgres
@pytest.mark.slow
def test_overhead_smoke() -> None:
    lines = _run(["-m", "benchmarks.overhead", "--smoke"], timeout=300)
    # the last three lines are the headline figures, in this order
    assert lines[-3].startswith("monitor overhead ratio: ")
    # the engine line compares Ray with plain Optuna
    assert re.match(
        rf"engine: sweep wall / sum of training time {NUM} under Ray \(plain Optuna {NUM}\)", lines[-2]
    )
    # the store line reports exact counts with no lost writes or lock errors
    assert re.match(
        r"store: PostgreSQL 2x3 [0-9.]+ trials/s \(6/6 complete, lost 0, lock errors 0: OK\)", lines[-1]
    )


def test_health_transfer_collects_a_bank_and_reports_on_it(tmp_path: Path) -> None:
    bank = tmp_path / "bank.jsonl"
    lines = _run(
        ["-m", "benchmarks.health_transfer", "--quick", "--runs", "2", "--objectives", "finetune,digits_vae",
         "--bank", str(bank), "--orders", "2", "--variants", "exploding.factor=30"],
        timeout=300,
    )  # fmt: skip
    # the group rows (tuning has none of these two), the replayed sweeps per policy, the variant rows
    assert any(line.startswith("| held out (seen): ") and "| 4 (" in line for line in lines)
    assert sum(line.startswith(("| `never`", "| `calibrated`", "| `always`")) for line in lines) == 3
    assert any(line.startswith("| exploding.factor=30 / held out (seen)") for line in lines)
    assert re.fullmatch(r"bank: .*bank\.jsonl \(4 runs\); wall [0-9]+ s", lines[-1])
    # the bank holds one untrained line per objective and one line per run
    assert bank.read_text().count('"kind": "run"') == 4


def test_ddp_step_times_run_side_by_side() -> None:
    # the step-time part (two real gloo processes); the start-up part runs the engine that
    # tests/search/engine/test_engine_ddp.py covers
    lines = _run(["-m", "benchmarks.ddp", "--quick", "--skip-startup", "--global-batch", "32"], timeout=300)
    assert any(line.strip().startswith("2 DDP workers, 1 thread each:") for line in lines), lines
    assert lines[-1].startswith("2 DDP workers vs the best single process:") and lines[-1].endswith("x")
