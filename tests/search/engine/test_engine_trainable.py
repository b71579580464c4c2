"""The worker side of a Ray trial: when a checkpoint is handed to Ray (no Ray needed here)."""

from __future__ import annotations

import os
from pathlib import Path

from gradsweep.search.engine.ray.trainable import PersistClock, RayReporter


def _save(directory: Path, n: int) -> None:
    """A checkpoint file with an mtime of n seconds (files written within one clock tick share one)."""
    path = directory / f"ckpt-{n:06d}.pt"
    path.write_bytes(b"x")
    os.utime(path, ns=(n * 10**9, n * 10**9))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_persist_clock_counts_from_the_start_and_from_each_mark() -> None:
    clock = FakeClock()
    persist = PersistClock(30.0, clock=clock)
    # not due before `every_s` has passed since the trial started
    clock.now = 129.9
    assert not persist.due()
    # due once it has
    clock.now = 130.0
    assert persist.due()
    # a mark starts the interval again
    persist.mark()
    clock.now = 159.0
    assert not persist.due()
    clock.now = 160.0
    assert persist.due()


def test_zero_interval_is_always_due() -> None:
    clock = FakeClock()
    persist = PersistClock(0.0, clock=clock)
    persist.mark()
    # with 0 every checkpoint is handed over, even at the same instant
    assert persist.due()


def test_reporter_hands_over_only_new_checkpoints_when_due(tmp_path: Path) -> None:
    clock = FakeClock()
    reporter = RayReporter(0, tmp_path, checkpoint_every_s=10.0)
    reporter.persist = PersistClock(10.0, clock=clock)
    # no checkpoint file yet: nothing to hand over, due or not
    clock.now = 200.0
    assert reporter._checkpoint() is None
    _save(tmp_path, 1)
    # a new file and the interval passed: handed over
    assert reporter._checkpoint() is not None
    # a newer file within the interval: held back
    _save(tmp_path, 2)
    clock.now = 205.0
    assert reporter._checkpoint() is None
    # ... and handed over once the interval has passed
    clock.now = 210.0
    assert reporter._checkpoint() is not None
    # the same file is never handed over twice
    clock.now = 400.0
    assert reporter._checkpoint() is None


def test_a_new_checkpoint_with_the_same_mtime_is_still_new(tmp_path: Path) -> None:
    # filesystems with coarse timestamps give two saves in one tick the same mtime; the file
    # number, not the mtime, tells that a checkpoint is new
    reporter = RayReporter(0, tmp_path, checkpoint_every_s=0.0)
    _save(tmp_path, 1)
    os.utime(tmp_path / "ckpt-000001.pt", ns=(5 * 10**9, 5 * 10**9))
    assert reporter._checkpoint() is not None
    _save(tmp_path, 2)
    os.utime(tmp_path / "ckpt-000002.pt", ns=(5 * 10**9, 5 * 10**9))
    assert reporter._checkpoint() is not None
    assert reporter._checkpoint() is None


def test_restored_checkpoints_are_not_handed_back(tmp_path: Path) -> None:
    # a retried trial starts from the checkpoints Ray gave back: those are not new, a later save is
    _save(tmp_path, 7)
    reporter = RayReporter(0, tmp_path, checkpoint_every_s=0.0)
    assert reporter._checkpoint() is None
    _save(tmp_path, 8)
    assert reporter._checkpoint() is not None
