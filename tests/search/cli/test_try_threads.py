"""``gradsweep try`` trains with a trial's torch threading, not torch's default (issue 19, point 4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from gradsweep.spaces.trial_config import MetricConfig, StageConfig, TowerConfig, TrialConfig
from tests._cli import run_cli

OBJECTIVE = "import torch\n\ndef threads(config, ctx):\n    return float(torch.get_num_threads())\n"


@pytest.fixture
def threads_config(tmp_path: Path) -> Iterator[Path]:
    """A config of a file objective whose metric is the torch thread count it runs with."""
    objective = tmp_path / "threads_obj.py"
    objective.write_text(OBJECTIVE)
    config = TrialConfig(
        objective=f"{objective}:threads",
        metric=MetricConfig(name="threads"),
        towers=[TowerConfig(name="all", patterns=["*"], lr=1e-3)],
        stages=[StageConfig(name="train", epochs=1)],
    )
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # torch's default on a bigger machine: not what a trial gets
    try:
        yield path
    finally:
        torch.set_num_threads(before)


def _threads(config: Path, *extra: str, env: dict[str, str | None]) -> float:
    result = run_cli(["try", "--config", str(config), "--json", *extra], env=env)
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)["value"]


def test_try_uses_one_thread_like_a_default_trial(threads_config: Path) -> None:
    # a trial with the default --cpus-per-trial 1 runs one torch thread (Ray sets OMP_NUM_THREADS=1)
    assert _threads(threads_config, env={"OMP_NUM_THREADS": None}) == 1.0


def test_try_cpus_sets_the_threads_like_cpus_per_trial(threads_config: Path) -> None:
    # --cpus 2 runs two threads, as --cpus-per-trial 2 gives a trial two
    assert _threads(threads_config, "--cpus", "2", env={"OMP_NUM_THREADS": None}) == 2.0
    # a fraction of a CPU still runs one thread (Ray's floor, at least 1)
    assert _threads(threads_config, "--cpus", "0.5", env={"OMP_NUM_THREADS": None}) == 1.0


def test_try_follows_omp_num_threads_when_set_like_a_trial(threads_config: Path) -> None:
    # Ray leaves a user's OMP_NUM_THREADS alone in its workers; try does the same by default
    assert _threads(threads_config, env={"OMP_NUM_THREADS": "2"}) == 2.0
    # after the command, the process's own thread count is back to what it was
    assert torch.get_num_threads() == 3


def test_try_refuses_cpus_that_are_not_positive(threads_config: Path) -> None:
    result = run_cli(["try", "--config", str(threads_config), "--cpus", "0"])
    # one line naming the option and what is allowed, no traceback
    assert (
        result.code == 1
        and result.error_lines == ["error: --cpus must be > 0, got 0"]
        and not result.traceback
    )
