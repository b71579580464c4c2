"""``scripts/gpu_check.sh`` and ``benchmarks/gpu_check.py`` on a machine without a GPU (issue 22).

What runs here: the one-line refusals (the shell script's, in a subprocess; the Python module's,
in-process), the assembly of the JSON and the summary from part results, the argument checks,
and the parts' logic on CPU with tiny configs: timed steps through the optimizer hook, a seed's
``before`` run and its pathology, the plain-Optuna sweep with worker processes (the one stand-in:
a subprocess printing ``nvidia-smi``'s format, as in test_gpu_bench.py), and pytest through the
``tests`` part. None of the CUDA paths (sync debug mode, peak memory, fp16 kernels) runs here.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import benchmarks.gpu_check as gc

REPO = Path(__file__).resolve().parents[2]
NO_CUDA = not torch.cuda.is_available()
FAKE_SMI = [
    sys.executable,
    "-u",
    "-c",
    "import time\nwhile True:\n    print('0, 40, 1000'); time.sleep(0.02)",
]


def test_doctests_of_the_module() -> None:
    result = doctest.testmod(gc)
    assert result.attempted >= 8 and result.failed == 0


@pytest.mark.skipif(not NO_CUDA, reason="pins the refusal on a machine without CUDA")
def test_shell_script_refuses_without_cuda_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(REPO / "scripts/gpu_check.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"gpu_check.sh: no CUDA GPU here (torch.cuda.is_available() is False with {sys.executable}); "
        "run it on a GPU machine"
    ]
    assert proc.stdout == "" and not (tmp_path / "out").exists()  # refused before writing anything


@pytest.mark.skipif(not NO_CUDA, reason="pins the refusal on a machine without CUDA")
def test_module_refuses_cuda_without_gpu_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        gc.main(["run", "steps", "--work", str(tmp_path / "w")])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); run it on a GPU machine, "
        "or pass --device cpu"
    ]
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "steps", "--device", "tpu"], "gpu_check: --device 'tpu': use cuda, cuda:N or cpu"),
        (["run", "steps", "--device", "cpu", "--objectives", "resnet"], "gpu_check: unknown objective 'resnet'; built-ins: "),
        (["run", "sweep", "--device", "cpu", "--sweep-objective", "x"], "gpu_check: unknown objective 'x'"),
        (["assemble", "--out", "o", "--budgets", "tests=9,gpu=3"], "gpu_check: --budgets: 'gpu=3': use PART=SECONDS"),
        (["run", "steps", "--device", "cpu", "--steps", "0"], "gpu_check run: error: argument --steps: '0' must be above 0"),
        (["run", "seeds", "--device", "cpu", "--max-seconds", "x"], "gpu_check run: error: argument --max-seconds: 'x' is not a number"),
        (["run", "gpu", "--device", "cpu"], "gpu_check run: error: argument part: invalid choice: 'gpu'"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_in_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        gc.main([*argv, "--work", str(tmp_path / "w")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(message)
    assert not (tmp_path / "w").exists()


def test_assemble_names_missing_timed_out_and_broken_parts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "tests.json").write_text(json.dumps(gc.part_result("ok", figures={"passed": 40, "failed": 0,
                                                                               "skipped": 0, "errors": 0})))  # fmt: skip
    (work / "steps.rc").write_text("124\n")  # killed by timeout, no result
    (work / "monitor.rc").write_text("1\n")  # crashed before writing
    (work / "seeds.json").write_text("{not json")
    partial = gc.part_result("failed", reason="interrupted (partial)", figures={"runs": []})
    (work / "sweep.json").write_text(json.dumps(partial))
    gc.main(["assemble", "--work", str(work), "--out", str(tmp_path / "out"), "--budgets", "steps=150,tests=100",
             "--device-name", "NVIDIA H200"])  # fmt: skip
    doc = json.loads((tmp_path / "out/gpu_check.json").read_text())
    parts = doc["parts"]
    assert list(parts) == list(gc.PARTS)
    assert parts["tests"]["status"] == "ok"
    assert parts["steps"] == gc.part_result(
        "failed", reason="ran past its budget of 150 s (rc 124) and wrote no result"
    )
    assert parts["monitor"]["reason"] == "exited with rc 1 and wrote no result (see gpu_check.log)"
    assert parts["seeds"]["status"] == "failed" and "not JSON" in parts["seeds"]["reason"]
    assert parts["sweep"]["reason"] == "interrupted (partial)"
    assert (doc["ok"], doc["counts"]) == (False, {"ok": 1, "failed": 4, "skipped": 0})
    assert doc["meta"]["device"] == "NVIDIA H200" and doc["meta"]["budgets_s"] == {"steps": 150, "tests": 100}
    text = (tmp_path / "out/gpu_check.txt").read_text()
    assert text == capsys.readouterr().out
    assert text.splitlines()[:3] == [
        "gpu check on NVIDIA H200",
        "tests: ok",
        "  passed 40, failed 0, skipped 0, errors 0",
    ]
    assert text.splitlines()[-1] == "NOT ALL OK: 1 ok, 4 failed, 0 skipped"


def test_summary_of_a_full_run() -> None:
    steps = {"runs": [{"objective": "segmentation", "amp": "fp16", "steps_per_s": 812.25, "steps_timed": 200,
                       "peak_mem_mib": 1530.4, "host_sync": {"synced": False}, "error": None},
                      {"objective": "moco", "amp": "none", "steps_per_s": 90.0, "steps_timed": 50, "peak_mem_mib": 99.0,
                       "host_sync": {"synced": True, "where": "objectives/trainer.py:88 in step"}, "error": None}]}  # fmt: skip
    parts = {name: gc.part_result("ok", seconds=12.4) for name in gc.PARTS}
    parts["steps"] = gc.part_result("failed", reason="host sync in moco none", figures=steps, seconds=100.0)
    lines = gc.summary_lines(gc.assemble(parts, {"device": "H200"}))
    assert lines[2:5] == [
        "steps: failed in 100 s (host sync in moco none)",
        "  segmentation fp16: 812.2 steps/s over 200 steps, peak 1530 MiB, no host sync",
        "  moco none: 90.0 steps/s over 50 steps, peak 99 MiB, host sync at objectives/trainer.py:88 in step",
    ]
    assert lines[-1] == "NOT ALL OK: 4 ok, 1 failed, 0 skipped"
    assert gc.summary_lines(gc.assemble(parts | {"steps": gc.part_result("ok")}, {}))[-1].startswith(
        "ALL OK: 5 ok"
    )
    with pytest.raises(ValueError, match="status 'fine'"):
        gc.part_result("fine")


def test_makefile_wheels_are_the_check_needs_and_no_ray() -> None:
    text = (REPO / "Makefile").read_text()
    block = re.search(r"^GPU_WHEELS \?=(.*?)\ngpu-wheels:", text, re.S | re.M)
    assert block is not None
    names = {w.split("==")[0] for w in block.group(1).replace("\\", " ").split()}
    assert {"optuna", "alembic", "sqlalchemy", "colorlog", "mako", "pydantic", "pydantic-core"} <= names
    assert not any(n.startswith("ray") for n in names)
    assert re.search(r"^gpu-check:\n\tscripts/gpu_check\.sh$", text, re.M)


def _args(**kw: object) -> SimpleNamespace:
    return SimpleNamespace(device="cpu", **kw)


def test_steps_part_times_a_fixed_number_of_steps_on_cpu() -> None:
    torch.set_num_threads(1)
    saved: list[dict] = []
    result = gc.steps_part(_args(objectives=["finetune"], scale="tiny", warm=5, steps=20, max_seconds=60.0,
                                 sync_steps=3), saved.append)  # fmt: skip
    assert result["status"] == "ok", result
    [run] = result["figures"]["runs"]
    assert (run["objective"], run["amp"], run["steps_timed"], run["error"]) == ("finetune", "bf16", 20, None)
    assert run["steps_per_s"] > 0 and run["peak_mem_mib"] is None
    assert run["host_sync"] == {
        "checked": False,
        "synced": None,
        "where": None,
        "message": None,
    }  # CPU: not checked
    assert saved and saved[-1]["figures"]["runs"] == [run]  # written after each run, for a part cut off later


def test_timed_steps_reports_the_steps_of_a_trial_shorter_than_the_window() -> None:
    torch.set_num_threads(1)
    run = gc.timed_steps("finetune", amp="none", scale="tiny", device="cpu", warm=170, steps=1000, max_seconds=60.0,
                         sync_steps=0)  # fmt: skip
    assert run["amp"] == "none" and run["steps_timed"] == 10  # the tiny trial has 180 steps


def test_seed_003_before_shows_its_pathology_and_is_flagged_on_cpu() -> None:
    torch.set_num_threads(1)
    run = gc.seed_run("003", "before", scale="tiny", device="cpu")
    assert (run["objective"], run["amp"], run["flagged"], run["as_expected"]) == (
        "multitower",
        "fp16",
        True,
        True,
    )
    assert "explosion" in run["pathology"] and run["worst_verdict"] == "unstable"


def test_sweep_part_runs_worker_processes_on_one_journal_study(tmp_path: Path) -> None:
    result = gc.sweep_part(_args(sweep_objective="finetune", sweep_scale="tiny", workers=2, trials_per_worker=1,
                                 sampler_command=json.dumps(FAKE_SMI)), lambda _: None)  # fmt: skip
    assert result["status"] == "ok", result
    f = result["figures"]
    assert (f["workers"], f["trials"], f["complete"], f["worker_rcs"]) == (2, 2, 2, [0, 0])
    assert f["util"]["mean_util_pct"] == 40.0 and f["util"]["peak_mem_mib"] == 1000.0


def test_tests_part_counts_pytest_results() -> None:
    result = gc.tests_part(_args(test_paths=["tests/spaces/apply/test_apply_amp.py"]), lambda _: None)
    assert result["status"] == "ok", result
    f = result["figures"]
    assert f["rc"] == 0 and f["tests"] == f["passed"] + f["skipped"] > 0 and f["failed"] == 0
    assert f["skipped"] == (1 if NO_CUDA else 0)  # its "needs CUDA" test
