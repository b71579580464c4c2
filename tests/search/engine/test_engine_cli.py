"""``gradsweep launch`` / ``resume`` at the command line: help with examples, one-line errors."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from gradsweep.search.engine.outcome import FinalState
from gradsweep.search.engine.progress import format_duration, progress_line
from gradsweep.search.engine.tally import Tally

from ._support import subprocess_env

GRADSWEEP = str(Path(sys.executable).parent / "gradsweep")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRADSWEEP, *args], cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", ["launch", "resume"])
def test_help_has_an_example(command: str, tmp_path: Path) -> None:
    result = _run(command, "--help", cwd=tmp_path)
    # each command's help shows a runnable example
    assert result.returncode == 0 and "Example: gradsweep " + command in " ".join(result.stdout.split())


def test_bad_input_is_one_error_line_and_exit_1(make_space, tmp_path: Path) -> None:
    space = make_space("lr_quality")
    result = _run("launch", str(space), "-n", "2", "--sampler", "bayes", cwd=tmp_path)
    # a typo in a flag value: exit 1, one `error:` line listing the choices, no traceback
    assert result.returncode == 1
    # one `error:` line listing the choices, no traceback
    assert (
        result.stderr.strip().startswith("error: --sampler must be one of")
        and len(result.stderr.strip().splitlines()) == 1
    )
    # and no store was created in the working directory
    assert not (tmp_path / "gradsweep.db").exists()


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--checkpoint-every", "-5"), ("--max-failures", "-1"), ("--store-wait", "-1"), ("--store-wait", "inf")],
)
def test_bad_resource_value_is_one_line_naming_the_flag(
    make_space, tmp_path: Path, flag: str, value: str
) -> None:
    result = _run("launch", str(make_space("lr_quality")), "-n", "2", flag, value, cwd=tmp_path)
    # a negative retry setting: exit 1, one `error:` line that names the flag and what it must be
    assert result.returncode == 1 and result.stderr.strip().startswith(f"error: {flag} must be >= 0")
    assert len(result.stderr.strip().splitlines()) == 1
    # nothing was written
    assert not (tmp_path / "gradsweep.db").exists()


def test_gp_sampler_is_warned_about_before_anything_runs(make_space, tmp_path: Path) -> None:
    # a bad --concurrency stops the launch right after the warning, before Ray or a store
    result = _run(
        "launch",
        str(make_space("lr_quality")),
        "-n",
        "2",
        "--sampler",
        "gp",
        "--concurrency",
        "0",
        cwd=tmp_path,
    )
    lines = result.stderr.strip().splitlines()
    # first a one-line warning that the GP sampler does not learn from pruned trials, then the error
    assert lines[0].startswith("warning: --sampler gp models finished trials only") and lines[1].startswith(
        "error: --concurrency"
    )
    assert result.returncode == 1 and len(lines) == 2


def test_resume_of_unknown_study_is_one_line(make_space, tmp_path: Path) -> None:
    result = _run("resume", "--study", "nope", "--storage", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path)
    # resuming against a store that does not exist says so in one line
    assert (
        result.returncode == 1
        and "no study store" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )


def test_progress_line_shows_counts_best_and_eta() -> None:
    tally = Tally(target=10, direction="maximize", started=time.monotonic() - 30)
    tally.running, tally.complete, tally.failed = 2, 3, 1
    tally.pruned = Counter({"unstable": 1})
    tally.best_value, tally.best_number = 0.8125, 7
    line = progress_line("demo", tally, now=tally.started + 30)
    # running / complete / pruned by kind / failed, best value and its trial, elapsed and ETA
    assert "5/10 finished" in line and "running 2" in line and "pruned 1 (unstable 1)" in line
    # failed, best value with its trial, elapsed and ETA
    assert (
        "failed 1" in line and "best 0.8125 (trial 7)" in line and "elapsed 30s" in line and "eta 30s" in line
    )


def test_format_duration() -> None:
    # seconds, minutes and hours read naturally; unknown is "?"
    assert [format_duration(s) for s in (None, 42, 185, 3720)] == ["?", "42s", "3m05s", "1h02m"]


def test_unreachable_ray_address_fails_fast_without_a_store(make_space, tmp_path: Path) -> None:
    from ._support import free_port

    space = make_space("lr_quality")
    started = time.monotonic()
    result = _run("launch", str(space), "-n", "1", "--address", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    # nothing listens there: one line, exit 1, in seconds rather than Ray's minutes of retries
    assert result.returncode == 1 and "cannot reach the Ray cluster" in result.stderr
    # no store was created
    assert not (tmp_path / "gradsweep.db").exists() and time.monotonic() - started < 60


def test_tally_counts_configs_not_thaws() -> None:
    from gradsweep.search.engine.outcome import INTERRUPTED, Outcome, failed, pruned

    tally = Tally(target=3, direction="maximize", started=time.monotonic() - 30)
    tally.add(0, pruned("paused", "paused: predicted final 0.1", 20))
    tally.add(1, pruned("paused", "paused: predicted final 0.2", 20))
    tally.add(2, pruned("unstable", "loss is nan", 5))
    # three configs, two of them paused
    assert (tally.finished, tally.pruned) == (3, Counter({"paused": 2, "unstable": 1}))
    tally.add(3, pruned("paused", "paused: predicted final 0.3", 40), thaw_of=0)
    tally.add(4, Outcome(FinalState.COMPLETE, value=0.9), thaw_of=3)
    # #0 paused, thawed as #3, paused again, thawed as #4, complete: still one config, now complete
    assert (tally.finished, tally.complete, tally.pruned["paused"]) == (3, 1, 1)
    assert tally.thaws == Counter({"paused": 1, "complete": 1}) and tally.best_number == 4
    # an interrupted thaw leaves its config paused
    tally.add(5, failed(INTERRUPTED), thaw_of=1)
    assert (tally.finished, tally.failed, tally.pruned["paused"]) == (3, 0, 1)
    # the thaw of a trial another run paused is counted as a thaw only
    tally.add(6, Outcome(FinalState.COMPLETE, value=0.5), thaw_of=99)
    assert (tally.finished, tally.complete, tally.thaws["complete"]) == (3, 1, 2)
    line = progress_line("ft", tally, now=tally.started + 30)
    # the line counts configs; paused ones and thaws apart from the prunes
    assert "3/3 finished" in line and "complete 1  pruned 1 (unstable 1)  paused 1  thaws 4  failed 0" in line
