"""The live view of a running sweep: a Ray Tune callback on the driver, drawn with rich.

It redraws :func:`gradsweep.search.engine.progress.progress_line` from the bridge's tally as
results arrive (at most twice a second).
"""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.live import Live
from rich.text import Text

from gradsweep.search.engine.progress import progress_line
from gradsweep.search.engine.tally import Tally


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
