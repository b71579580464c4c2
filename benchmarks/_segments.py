"""Records of a run whose method pauses trials and resumes them later (one trial running at a time).

A method that pauses (Ray Tune's HyperBand, the top-k baseline) trains a trial in segments: it
runs until a pause, other trials run, then it goes on from its checkpoint. Each segment becomes
its own :class:`~benchmarks._common.TrialRecord`, in the order the segments ran (the order the
budget was spent in), so a resumed trial's steps are counted once:

* a continuation has ``start_step`` = the step of the report its trial paused at, and
  ``thaw_of`` = the index of the segment it continues (which gets ``thawed=True``);
* a segment that reached the full trial's steps has the last value as ``final_value`` (None when
  it is not finite), even where the scheduler said PAUSE at that report (Ray's HyperBand pauses
  a finished trial until its bracket is done);
* any other segment that ended by a pause has ``paused=True, pruned=True, kind="paused"``;
* any other segment was stopped (``pruned=True``) or cut by the budget.

Example:
    >>> from benchmarks._common import Report
    >>> events = [("a", {}, Report(8, 0.1)), ("b", {}, Report(8, 0.3)), ("a", {}, Report(16, 0.2)),
    ...           ("b", {}, Report(16, 0.4)), ("b", {}, Report(24, 0.5))]
    >>> recs = segment_records(events, full_steps=24, paused={("a", 8), ("b", 8), ("a", 16)})
    >>> [(r.start_step, r.steps, r.paused, r.thawed, r.thaw_of, r.final_value) for r in recs]
    [(0, 8, True, True, None, None), (0, 8, True, True, None, None), (8, 8, True, False, 0, None), (8, 16, False, False, 1, 0.5)]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable
from typing import Any

from benchmarks._common import Report, TrialRecord

PAUSED = "paused"


def segment_records(
    events: Iterable[tuple[Hashable, dict[str, Any], Report]],
    *,
    full_steps: int,
    paused: Collection[tuple[Hashable, int]] = (),
    errored: Collection[Hashable] = (),
) -> list[TrialRecord]:
    """Split the reports of a run into one record per segment, in the order they arrived.

    Args:
        events: ``(trial key, params, report)`` for every report, in the order the driver got
            them. One trial runs at a time, so a new key (or a key seen before, after another
            one) starts a new segment.
        full_steps: steps of a trial trained to the end.
        paused: ``(trial key, step)`` of every report the method paused a trial at.
        errored: keys of trials that raised (their last segment is neither pruned nor finished).

    Returns:
        The segments as records (see the module docstring).
    """
    records: list[TrialRecord] = []
    keys: list[Hashable] = []
    latest: dict[Hashable, int] = {}
    current: Hashable | None = None
    for key, params, report in events:
        if not records or key != current:
            before = latest.get(key)
            record = TrialRecord(params=dict(params))
            if before is not None:
                prior = records[before]
                prior.thawed = True
                record.start_step = max((r.step for r in prior.reports), default=prior.start_step)
                record.thaw_of = before
            records.append(record)
            keys.append(key)
            latest[key] = len(records) - 1
            current = key
        records[-1].reports.append(report)
    pauses = set(paused)
    for index, (key, record) in enumerate(zip(keys, records, strict=True)):
        last = record.reports[-1]
        if last.step >= full_steps:  # trained to the end (a scheduler may still say PAUSE there)
            if key not in errored:
                record.final_value = last.value if math.isfinite(last.value) else None
        elif (key, last.step) in pauses:
            record.paused, record.pruned, record.kind = True, True, PAUSED
        elif key not in errored or latest[key] != index:
            record.pruned = True
    return records
