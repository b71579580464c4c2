"""The live view of a running sweep (a Ray Tune callback on the driver, drawn with rich).

One line per state, refreshed as results arrive::

    sweep contrastive  12/20 finished  running 2  complete 8  pruned 3 (unstable 2, underperforming 1)  failed 1
    best 0.8125 (trial 7)  elapsed 1m02s  eta 41s

:func:`progress_line` is the pure text of that view (also the ``--quiet`` summary line).
"""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.live import Live
from rich.text import Text

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
    best = f"best {tally.best_value:.4g} (trial {tally.best_number})" if tally.best_value is not None else "best -"
    return (
        f"sweep {name}  {tally.finished}/{tally.target} finished  running {tally.running}  "
        f"complete {tally.complete}  pruned {pruned}{f' ({kinds})' if kinds else ''}  failed {tally.failed}  "
        f"{best}  elapsed {format_duration(now - tally.started)}  eta {format_duration(tally.eta_s())}"
    )


class ProgressView(Callback):
    """A rich ``Live`` line kept up to date from the bridge's :class:`Tally`.

    Args:
        name: the study name shown.
        tally: the live counts (owned by the bridge).
        console: where to draw (stderr by default, so stdout stays clean for ``--json``).
    """

    def __init__(self, name: str, tally: Tally, console: Console | None = None) -> None:
        self.name = name
        self.tally = tally
        self.console = console or Console(stderr=True)
        self._live: Live | None = None
        self._last = 0.0

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles its callbacks with the tuner settings: the console and live display stay out."""
        state = self.__dict__.copy()
        state["_live"] = None
        state["console"] = None
        return state

    def _render(self) -> Text:
        return Text(progress_line(self.name, self.tally))

    def setup(self, **info: Any) -> None:
        self._live = Live(self._render(), console=self.console, refresh_per_second=2, transient=False)
        self._live.start()

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if self._live is not None and now - self._last > 0.5:
            self._last = now
            self._live.update(self._render())

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Draw the last state and stop the live display (safe to call twice)."""
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None
            if not self.console.is_terminal:  # a terminal moves on by itself; a log needs the newline
                self.console.line()
