"""Capture every health monitor's raw check summaries, for replaying the rules offline.

``benchmarks/health_transfer.py`` trains many runs to completion with pruning off and then lets
the rules judge the recorded checks as they would have live. Inside :func:`capture`, each
:class:`~gradsweep.objectives.health.monitor.HealthMonitor` of this thread appends a
:class:`Recorded` entry per check: the window's summary as the monitor measured it (before any
state that spans windows is filled in), plus what the rules need besides it.

Example:
    >>> import torch
    >>> from gradsweep.spaces.health import HealthConfig
    >>> from gradsweep.objectives.health.monitor import HealthMonitor
    >>> from gradsweep.objectives.health.recording import capture
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD([{"params": model.parameters(), "tower": "all"}], lr=0.1)
    >>> with capture() as records:
    ...     mon = HealthMonitor(opt, HealthConfig(check_every=1))
    ...     model(torch.ones(1, 2)).sum().backward()
    ...     _ = mon.observe(torch.tensor(1.0), step=0)
    >>> [(r.summary.step, r.summary.towers["all"].norms) for r in records]
    [(0, [1.73...])]
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gradsweep.objectives.health.rules import RuleContext
from gradsweep.objectives.health.summary import CheckSummary

_local = threading.local()


@dataclass(frozen=True)
class Recorded:
    """One check of one monitor.

    Attributes:
        monitor: ``id()`` of the monitor (a run that rebuilds its monitor shows two ids).
        summary: the window's raw summary (a copy; derived fields are not filled in).
        context: clip limits, frozen towers and scaler state (``checks_done`` is not meaningful).
    """

    monitor: int
    summary: CheckSummary
    context: RuleContext


@contextmanager
def capture() -> Iterator[list[Recorded]]:
    """Collect the raw summaries of every check made in this thread while the block runs."""
    previous = getattr(_local, "sink", None)
    sink: list[Recorded] = []
    _local.sink = sink
    try:
        yield sink
    finally:
        _local.sink = previous


def emit(monitor: object, summary: CheckSummary, context: RuleContext) -> None:
    """Append a copy of ``summary`` to the active :func:`capture` list, if any (monitor-side)."""
    sink = getattr(_local, "sink", None)
    if sink is not None:
        sink.append(Recorded(id(monitor), copy.deepcopy(summary), context))
