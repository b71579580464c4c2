"""Interrupting the driver (SIGINT, SIGKILL) and ``gradsweep resume``: nothing lost, nothing left RUNNING."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from gradsweep.search.engine.study import count_finished, is_interrupted

from ._support import load, subprocess_env

pytestmark = [pytest.mark.ray, pytest.mark.slow]

GRADSWEEP = [str(Path(sys.executable).parent / "gradsweep")]


def _start(space: Path, url: str, tmp_path: Path, n: int, pruner: str = "none") -> subprocess.Popen[bytes]:
    cmd = [*GRADSWEEP, "launch", str(space), "-n", str(n), "--storage", url, "--runs-dir", str(tmp_path / "runs"),
           "--quiet", "--seed", "0", "--pruner", pruner, "--concurrency", "2"]  # fmt: skip
    return subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=subprocess_env(ENGINE_TEST_SLEEP="0.4"),
        stdout=open(tmp_path / "launch.out", "wb"),
        stderr=open(tmp_path / "launch.err", "wb"),
        start_new_session=True,
    )


def _wait_for_complete(
    url: str, proc: subprocess.Popen[bytes], at_least: int, timeout_s: float = 120
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # the driver must still be running to be interrupted
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        try:
            done = load(url).get_trials(states=(TrialState.COMPLETE,))
        except KeyError:  # study not created yet
            done = []
        if len(done) >= at_least:
            return
        time.sleep(0.3)
    raise AssertionError("no trial completed in time")


def _resume(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [*GRADSWEEP, "resume", "--study", "engine-test", "--storage", url, "--runs-dir", str(tmp_path / "runs"),
           "--quiet", "--concurrency", "2", *extra]  # fmt: skip
    return subprocess.run(
        cmd,
        cwd=tmp_path,
        env=subprocess_env(ENGINE_TEST_SLEEP="0"),
        capture_output=True,
        text=True,
        timeout=240,
    )


def _finished_before(study: optuna.Study) -> dict[int, tuple[TrialState, float | None, object]]:
    return {
        t.number: (t.state, t.value, t.datetime_complete)
        for t in study.get_trials()
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and not is_interrupted(t))
    }


# freeze-thaw: its searcher may answer "not now" (WAIT) and Tune runs without a sample count
@pytest.mark.parametrize("pruner", ["none", "freeze-thaw"])
def test_sigint_records_interrupted_trials_and_resume_completes(
    make_space, tmp_path: Path, pruner: str
) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    proc = _start(make_space("slow_quality"), url, tmp_path, n=6, pruner=pruner)
    try:
        _wait_for_complete(url, proc, at_least=1)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = (tmp_path / "launch.err").read_text()
    study = load(url)
    # Ctrl-C ends the driver with status 130 and says how to continue
    assert code == 130 and f"gradsweep resume --study engine-test --storage '{url}'" in err
    # no trial is left RUNNING; the ones cut off are FAIL "interrupted"
    assert not study.get_trials(states=(TrialState.RUNNING,))
    # the trials that were cut off are FAIL "interrupted"
    assert any(is_interrupted(t) for t in study.get_trials())
    kept = _finished_before(study)
    # some trials finished before the interrupt, not all
    assert 1 <= len(kept) < 6

    result = _resume(url, tmp_path)
    study = load(url)
    # resume finishes the sweep: 6 evaluated trials, none RUNNING
    assert result.returncode == 0, result.stderr
    # 6 evaluated trials, none RUNNING
    assert count_finished(study) == 6 and not study.get_trials(states=(TrialState.RUNNING,))
    # trials finished before the interrupt were kept as they were, not re-run
    # earlier results were kept as they were
    assert {n: v for n, v in _finished_before(study).items() if n in kept} == kept


def test_sigkill_then_resume_reconciles_stale_trials_and_retries_them(make_space, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    proc = _start(make_space("slow_quality"), url, tmp_path, n=4)
    try:
        _wait_for_complete(url, proc, at_least=1)
        time.sleep(0.5)
        proc.kill()  # SIGKILL: the driver gets no chance to clean up
        proc.wait(timeout=30)
    finally:  # anything left in the driver's group (Ray's processes have their own and a reaper)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    study = load(url)
    stale = [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]
    # a killed driver leaves its running trials RUNNING in the store
    assert stale
    kept = _finished_before(study)

    result = _resume(url, tmp_path, "--retry-failed")
    study = load(url)
    by_number = {t.number: t for t in study.get_trials()}
    # resume reconciled the stale trials to FAIL "interrupted" and none is RUNNING now
    assert result.returncode == 0, result.stderr
    # the stale trials are FAIL "interrupted" and none is RUNNING now
    assert all(is_interrupted(by_number[n]) for n in stale) and not study.get_trials(
        states=(TrialState.RUNNING,)
    )
    retried = {t.user_attrs.get("gradsweep.retry_of") for t in study.get_trials()}
    # with --retry-failed, each interrupted trial's config ran again
    assert set(stale) <= retried
    # the count is reached
    assert count_finished(study) == 4
    # earlier results were kept as they were
    assert {n: v for n, v in _finished_before(study).items() if n in kept} == kept
