"""Ends a local Ray's process groups when the driver that started them dies without stopping them.

Run as a script (``python reaper.py PGID...``, standard library only) by
:func:`~gradsweep.search.engine.ray.runtime.start_reaper`, in a session of its own, with a pipe
from the driver as stdin. The kernel already ends the GCS and the raylet with the driver
(``PR_SET_PDEATHSIG``), but not the raylet's children (the dashboard and runtime-env agents,
idle workers), which would linger for minutes after a driver killed by SIGKILL or SIGBUS
(an unwritable SQLite ``-shm`` file). On end of input without a ``stop`` line first, the
reaper sends SIGTERM, then SIGKILL, to every process group it was given (each Ray process
the driver started leads its own group, and its children stay in it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

GRACE_S = 1.0


def reap(groups: list[int]) -> None:
    """SIGTERM each process group, then SIGKILL what is left after :data:`GRACE_S`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in groups:
            with contextlib.suppress(OSError):  # already gone
                os.killpg(pgid, sig)
        if sig == signal.SIGTERM:
            time.sleep(GRACE_S)


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # lives exactly as long as the driver's pipe
    groups = [int(a) for a in argv if a.isdigit() and int(a) > 1]
    told_stop = False
    for line in sys.stdin:
        told_stop = told_stop or line.strip() == "stop"
    if not told_stop:
        reap(groups)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
