"""How a finished Ray trial becomes exactly one final Optuna state (pure, tested directly).

The trainable ends every normal run with a *final* result (``gs_final``) that says what
happened; the driver adds what only it knows (a pending prune from the scheduler, a crash).
:func:`classify` turns that into an :class:`Outcome`:

| what happened | Optuna state | attrs |
|---|---|---|
| the scheduler stopped it (health or base pruner) | PRUNED | ``gradsweep.prune.kind/reason/step`` |
| the objective raised ``TrialPruned`` itself | PRUNED | same |
| a finite value came back | COMPLETE | |
| NaN / inf came back | FAIL | ``gradsweep.fail.reason = "non-finite objective value"`` |
| it raised (after ``--max-failures`` retries) | FAIL | ``gradsweep.fail.reason`` = the error, short |
| it stopped without a final result (Ctrl-C, timeout) | FAIL | ``gradsweep.fail.reason = "interrupted"`` |

Example:
    >>> classify({"gs_final": True, "gs_outcome": "complete", "gs_value": 0.5}).state
    <FinalState.COMPLETE: 'complete'>
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gradsweep.objectives.run import NON_FINITE
from gradsweep.search.attrs import FAIL_REASON
from gradsweep.search.prune_attrs import PruneRecord

# keys of the Ray result dicts the trainable reports
R_TRIAL = "gs_trial"
R_VALUE = "gs_value"
R_STEP = "gs_step"
R_HEALTH = "gs_health"
R_FINAL = "gs_final"
R_OUTCOME = "gs_outcome"
R_KIND = "gs_kind"
R_REASON = "gs_reason"
R_CKPT_STEP = "gs_checkpoint_step"  # sent with a report that hands Ray a new checkpoint: its step
R_TOTAL = "gs_total_steps"  # the step of the final report: sent with every report, stored once by the driver

INTERRUPTED = "interrupted"
MAX_REASON_CHARS = 2000


class FinalState(StrEnum):
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAIL = "fail"


@dataclass(frozen=True)
class Outcome:
    """The one final state of a trial, with its value and why it ended.

    Attributes:
        state: COMPLETE, PRUNED or FAIL.
        value: the objective's value (COMPLETE only).
        prune: the prune (PRUNED only), stored by :func:`~gradsweep.search.prune_attrs.write_prune_attrs`.
        fail_reason: ``gradsweep.fail.reason`` (FAIL only).
    """

    state: FinalState
    value: float | None = None
    prune: PruneRecord | None = None
    fail_reason: str | None = None

    @property
    def attrs(self) -> dict[str, Any]:
        """The user attrs this outcome stores (Contract 4)."""
        if self.prune is not None:
            return self.prune.attrs()
        return {FAIL_REASON: self.fail_reason} if self.fail_reason is not None else {}

    @property
    def reason(self) -> str:
        """Why it ended (prune or fail reason), or ``""`` for COMPLETE."""
        return self.prune.reason if self.prune is not None else self.fail_reason or ""


def pruned(kind: str, reason: str, step: int) -> Outcome:
    """A PRUNED outcome with Contract 4's attrs."""
    return Outcome(FinalState.PRUNED, prune=PruneRecord(kind, reason, int(step)))


def failed(reason: str) -> Outcome:
    """A FAIL outcome whose ``gradsweep.fail.reason`` is ``reason`` (capped in length)."""
    return Outcome(FinalState.FAIL, fail_reason=reason[:MAX_REASON_CHARS])


def summarize_error(text: str, *, max_lines: int = 8) -> str:
    """A short, useful form of a traceback: the exception line first, then the innermost frames.

    Ray wraps worker errors in its own text (``ray::ImplicitFunc.train() (pid=..)``); the user
    wants the final ``ValueError: ...`` line and where it came from.

    Args:
        text: a formatted traceback, possibly wrapped by Ray.
        max_lines: lines kept in all (at least 1).

    Returns:
        At most ``max_lines`` lines; ``"error"`` for empty text.

    Raises:
        ValueError: if ``max_lines`` < 1.
    """
    if max_lines < 1:
        raise ValueError(f"max_lines must be at least 1 but got {max_lines}")
    lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "error"
    last = lines[-1].strip()
    frames = [ln for ln in lines[:-1] if ln.lstrip().startswith("File ")]
    kept = [last, *(f.strip() for f in frames[-(max_lines - 1) :])] if max_lines > 1 else [last]
    return "\n".join(kept)


def classify(
    result: dict[str, Any] | None,
    *,
    pending: PruneRecord | None = None,
    error: str | None = None,
) -> Outcome:
    """Decide the final state of one trial.

    Args:
        result: the trial's last (flattened) Ray result, or None when there is none.
        pending: the prune the driver's scheduler decided, if any (it wins: the trial was
            stopped because of it).
        error: the trial's error text when it raised (after all retries).

    Returns:
        The :class:`Outcome`.
    """
    if pending is not None:
        return Outcome(FinalState.PRUNED, prune=pending)
    if error is not None:
        return failed(summarize_error(error))
    if not result or not result.get(R_FINAL):
        return failed(INTERRUPTED)
    outcome = str(result.get(R_OUTCOME, ""))
    if outcome == FinalState.PRUNED:
        return pruned(
            str(result.get(R_KIND) or "unstable"),
            str(result.get(R_REASON) or "pruned"),
            int(result.get(R_STEP) or 0),
        )
    if outcome == FinalState.FAIL:
        return failed(str(result.get(R_REASON) or "error"))
    value = result.get(R_VALUE)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return failed(f"objective returned no number (got {value!r})")
    if not math.isfinite(float(value)):
        return failed(NON_FINITE)
    return Outcome(FinalState.COMPLETE, value=float(value))
