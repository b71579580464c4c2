"""The text of a running sweep's live view: one line of counts, best value, elapsed and ETA.

The view itself (a Ray Tune callback on the driver, drawn with rich) is
:class:`gradsweep.search.engine.ray.progress.ProgressView`; it shows::

    sweep contrastive  12/20 finished  running 2  complete 8  pruned 3 (unstable 2, underperforming 1)  failed 1
    best 0.8125 (trial 7)  elapsed 1m02s  eta 41s

With ``--pruner freeze-thaw`` it adds ``paused N  thaws M`` after ``pruned``: the configs left
paused and the finished thaws of paused trials (``finished`` counts configs, not thaws; the
bridge must pass ``thaw_of`` to :meth:`Tally.add <gradsweep.search.engine.tally.Tally.add>`).

:func:`progress_line` is the pure text of that view (also the ``--quiet`` summary line).
"""

from __future__ import annotations

import time

from gradsweep.search.engine.tally import Tally
from gradsweep.search.thaw_attrs import PAUSED


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s`` or ``42s``; ``?`` for None."""
    if seconds is None:
        return "?"
    s = round(max(seconds, 0.0))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def progress_line(name: str, tally: Tally, *, now: float | None = None) -> str:
    """One-line state of the sweep ``name``: counts, best value and trial, elapsed and ETA."""
    now = time.monotonic() if now is None else now
    kinds = sorted((k, n) for k, n in tally.pruned.items() if k != PAUSED)
    pruned = sum(n for _, n in kinds)
    pauses = ""
    if tally.pruned.get(PAUSED) or tally.thaws:  # freeze-thaw: configs left paused, and the thaws
        pauses = f"paused {tally.pruned.get(PAUSED, 0)}  thaws {sum(tally.thaws.values())}  "
    named = ", ".join(f"{k} {n}" for k, n in kinds)
    best = (
        f"best {tally.best_value:.4g} (trial {tally.best_number})"
        if tally.best_value is not None
        else "best -"
    )
    return (
        f"sweep {name}  {tally.finished}/{tally.target} finished  running {tally.running}  "
        f"complete {tally.complete}  pruned {pruned}{f' ({named})' if named else ''}  {pauses}failed {tally.failed}  "
        f"{best}  elapsed {format_duration(now - tally.started)}  eta {format_duration(tally.eta_s())}"
    )
