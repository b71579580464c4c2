"""Faults inside a trial under a real local Ray: a SIGKILLed worker, out-of-memory, NaN reports, damaged checkpoints.

Issue 8, faults 1, 5 and 9. Each sweep runs two baselines, ``mild`` and ``severe``: one
trial that must recover and one that must end FAIL with its reason, in the same sweep.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from optuna.trial import TrialState

from gradsweep.search.engine.ray.launcher import LaunchRequest, launch
from gradsweep.search.engine.ray.runtime import Resources
from gradsweep.spaces.space import load_space
from tests.search.engine._support import load

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("shared_ray")]


def _sweep(space: Path, tmp_path: Path, *, max_failures: int = 0, pruner: str = "none") -> dict[str, object]:
    request = LaunchRequest(
        space=load_space(space),
        n_trials=2,
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        runs_dir=tmp_path / "runs",
        baselines=("mild", "severe"),
        pruner=pruner,
        abort_after=0,
        resources=Resources(concurrency=2, max_failures=max_failures, checkpoint_every_s=0.0),
    )
    launch(request)
    trials = load(request.storage).get_trials()
    # exactly the two requested trials exist: no retry created a second Optuna trial
    assert [t.number for t in trials] == [0, 1]
    return {t.user_attrs["gradsweep.baseline"]: t for t in trials}


def test_sigkilled_worker_is_retried_from_checkpoint_or_fails_with_reason(
    fault_space, faulty: Path, tmp_path: Path
) -> None:
    by_name = _sweep(fault_space("kill_worker"), tmp_path, max_failures=1)
    mild, severe = by_name["mild"], by_name["severe"]
    # the worker killed once was retried and resumed from its checkpoint (value 1.0), COMPLETE
    assert mild.state == TrialState.COMPLETE and mild.value == 1.0
    # the retry ran in a new worker process (the first one was killed)
    assert len(set((faulty.parent / "attempts-mild").read_text().split())) == 2
    # the worker killed on every attempt ran 1 + max_failures times and then ended FAIL
    assert (
        len((faulty.parent / "attempts-severe").read_text().split()) == 2 and severe.state == TrialState.FAIL
    )
    reason = severe.user_attrs["gradsweep.fail.reason"]
    # its reason says the worker process died (Ray's own words, first line kept), not just "error"
    assert "worker process has died" in reason.splitlines()[0], reason
    # each trial's steps were stored once, although the retry reported them again
    assert sorted(mild.intermediate_values) == [0, 1, 2, 3]


def test_out_of_memory_fails_that_trial_only(fault_space, tmp_path: Path) -> None:
    by_name = _sweep(fault_space("out_of_memory"), tmp_path)
    severe, mild = by_name["severe"], by_name["mild"]
    reason = severe.user_attrs["gradsweep.fail.reason"]
    # the allocation over the process limit ends its trial FAIL, with a reason about memory
    assert severe.state == TrialState.FAIL and "memory" in reason.lower(), reason
    # the reason leads with the exception line, not Ray's wrapper
    assert reason.splitlines()[0].startswith(("RuntimeError", "MemoryError")), reason
    # the other trial of the sweep completed normally
    assert mild.state == TrialState.COMPLETE and mild.value == 0.5


def test_nan_intermediate_values_are_recorded_and_inf_result_fails(fault_space, tmp_path: Path) -> None:
    by_name = _sweep(fault_space("nan_reports"), tmp_path, pruner="median")
    mild, severe = by_name["mild"], by_name["severe"]
    for trial in (mild, severe):
        values = trial.intermediate_values
        # NaN and inf reports do not crash the trial; they are stored as reported, at their steps
        assert math.isnan(values[0]) and values[1] == math.inf and values[2] == 0.25
    # after NaN reports, a finite return value completes the trial with that value
    assert mild.state == TrialState.COMPLETE and mild.value == 0.25
    # an inf return value ends FAIL with the non-finite reason (never COMPLETE, never RUNNING)
    assert (
        severe.state == TrialState.FAIL
        and severe.user_attrs["gradsweep.fail.reason"] == "non-finite objective value"
    )


def test_damaged_checkpoint_on_retry_falls_back_with_a_warning(
    fault_space, faulty: Path, tmp_path: Path
) -> None:
    by_name = _sweep(fault_space("corrupt_then_crash"), tmp_path, max_failures=1)
    mild, severe = by_name["mild"], by_name["severe"]
    # newest checkpoint truncated: the retry resumed from the previous good one (step 0)
    assert mild.state == TrialState.COMPLETE and mild.value == 0.0
    # ... and a warning named the skipped file
    assert "skipping unreadable checkpoint" in (faulty.parent / "warnings-mild").read_text()
    # every checkpoint garbled: the retry started from scratch (-1.0), no crash of the sweep
    assert severe.state == TrialState.COMPLETE and severe.value == -1.0
    # ... with a warning for each unreadable file
    assert (faulty.parent / "warnings-severe").read_text().count("skipping unreadable checkpoint") == 2
