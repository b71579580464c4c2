"""The pure rules that give each finished Ray trial one final Optuna state."""

from __future__ import annotations

import math

import pytest

from gradsweep.search.engine.outcome import (
    INTERRUPTED,
    NON_FINITE,
    FinalState,
    classify,
    summarize_error,
)
from gradsweep.search.prune_attrs import PruneRecord


def _final(outcome: str = "complete", value: float = 0.5, **extra: object) -> dict[str, object]:
    return {"gs_final": True, "gs_outcome": outcome, "gs_value": value, "gs_step": 3, **extra}


def test_finite_final_value_completes() -> None:
    outcome = classify(_final(value=0.25))
    # a finite value is COMPLETE with that value and no attrs
    assert outcome.state is FinalState.COMPLETE and outcome.value == 0.25 and outcome.attrs == {}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_value_fails_with_reason(value: float) -> None:
    outcome = classify(_final(value=value))
    # NaN / inf is FAIL "non-finite objective value", never COMPLETE
    assert outcome.state is FinalState.FAIL and outcome.attrs["gradsweep.fail.reason"] == NON_FINITE


def test_pending_prune_wins_over_a_late_final_result() -> None:
    outcome = classify(_final(value=0.9), pending=PruneRecord("unstable", "grad norm inf", 40))
    # the scheduler stopped the trial: PRUNED with kind, reason and step, even if a value arrived
    assert outcome.state is FinalState.PRUNED
    # with kind, reason and step
    assert outcome.attrs == {
        "gradsweep.prune.kind": "unstable",
        "gradsweep.prune.reason": "grad norm inf",
        "gradsweep.prune.step": 40,
    }


def test_objective_raised_prune_is_pruned() -> None:
    outcome = classify(_final("pruned", math.nan, gs_kind="unstable", gs_reason="non-finite loss at step 3"))
    # a TrialPruned raised inside the objective is PRUNED with its own kind and reason
    assert outcome.state is FinalState.PRUNED and outcome.reason == "non-finite loss at step 3"


def test_error_and_missing_final_result_fail() -> None:
    # an error is FAIL with the exception line first
    assert classify(None, error='Traceback\n  File "x.py", line 1\nValueError: bad').reason.startswith(
        "ValueError: bad"
    )
    # a trial stopped before its final result (Ctrl-C, timeout) is FAIL "interrupted"
    assert classify({"gs_value": 1.0, "gs_final": False}).reason == INTERRUPTED
    # no result at all is interrupted too
    assert classify(None).reason == INTERRUPTED


def test_summarize_error_keeps_exception_line_and_innermost_frames() -> None:
    frames = "\n".join(f'  File "m{i}.py", line {i}, in f{i}\n    code{i}()' for i in range(10))
    text = f"ray::ImplicitFunc.train() (pid=1)\nTraceback (most recent call last):\n{frames}\nKeyError: 'x'"
    short = summarize_error(text, max_lines=3)
    # the exception line leads, followed by the two innermost frames only
    assert short.splitlines() == [
        "KeyError: 'x'",
        'File "m8.py", line 8, in f8',
        'File "m9.py", line 9, in f9',
    ]
    # empty text still gives a reason
    assert summarize_error("") == "error"
    # a bad limit is refused
    with pytest.raises(ValueError, match="max_lines"):
        summarize_error("x", max_lines=0)
