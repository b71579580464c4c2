"""The text of a running sweep's live view: one line of counts, best value, elapsed and ETA.

The view itself (a Ray Tune callback on the driver, drawn with rich) is
:class:`gradsweep.search.engine.ray.progress.ProgressView`; it shows::

    sweep contrastive  12/20 finished  running 2  complete 8  pruned 3 (unstable 2, underperforming 1)  failed 1
    best 0.8125 (trial 7)  elapsed 1m02s  eta 41s

:func:`progress_line` is the pure text of that view (also the ``--quiet`` summary line).
"""

from __future__ import annotations

import time

from gradsweep.search.engine.tally import Tally


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
    pruned = sum(tally.pruned.values())
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(tally.pruned.items()))
    best = (
        f"best {tally.best_value:.4g} (trial {tally.best_number})"
        if tally.best_value is not None
        else "best -"
    )
    return (
        f"sweep {name}  {tally.finished}/{tally.target} finished  running {tally.running}  "
        f"complete {tally.complete}  pruned {pruned}{f' ({kinds})' if kinds else ''}  failed {tally.failed}  "
        f"{best}  elapsed {format_duration(now - tally.started)}  eta {format_duration(tally.eta_s())}"
    )
