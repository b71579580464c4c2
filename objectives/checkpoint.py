"""Atomic, rotating trial checkpoints read back with ``torch.load(weights_only=True)``.

A checkpoint is any ``state_dict``-style tree of tensors, numbers, strings, lists and dicts.
:meth:`CheckpointStore.save` writes ``ckpt-000001.pt`` (numbers grow) through a temporary
file and ``os.replace``, so a crash mid-write never leaves a half-written checkpoint under
the final name, and keeps the newest ``keep`` files. :meth:`CheckpointStore.load` returns the
newest checkpoint that loads; a corrupted or truncated file is skipped with a warning.

Example:
    >>> import tempfile
    >>> store = CheckpointStore(tempfile.mkdtemp())
    >>> _ = store.save({"epoch": 1})
    >>> store.load()
    {'epoch': 1}
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^ckpt-(\d{6,})\.pt$")
_log = logging.getLogger("gradsweep.checkpoint")


class CheckpointStore:
    """A directory of numbered checkpoints, newest ``keep`` retained.

    Args:
        directory: where the files live (created on first save).
        keep: how many checkpoints to keep (at least 1).

    Raises:
        ValueError: if ``keep`` < 1.
    """

    def __init__(self, directory: str | os.PathLike[str], *, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1 but got {keep}")
        self.directory = Path(directory)
        self.keep = keep

    def paths(self) -> list[Path]:
        """Existing checkpoint files, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def newest_number(self) -> int:
        """The number of the newest checkpoint file (0 when there is none); each save adds one."""
        paths = self.paths()
        return int(_NAME.match(paths[-1].name).group(1)) if paths else 0  # type: ignore[union-attr]

    def save(self, state: dict[str, Any]) -> Path:
        """Write ``state`` as the next checkpoint and drop the ones beyond ``keep``.

        Args:
            state: the tree to save (tensors, numbers, strings, lists, dicts).

        Returns:
            The path of the new checkpoint.
        """

        def write(path: Path) -> None:
            with open(path, "wb") as fh:
                torch.save(state, fh)
                fh.flush()
                os.fsync(fh.fileno())

        return self.save_with(write)

    def save_with(self, write: Callable[[Path], None]) -> Path:
        """Let ``write(path)`` write the next checkpoint (e.g. ``lightning.Trainer.save_checkpoint``).

        ``write`` writes a temporary path, which is then renamed to the next number, so a crash
        mid-write leaves no half-written checkpoint under the final name; the ones beyond ``keep``
        are dropped.

        Returns:
            The path of the new checkpoint.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        number = self.newest_number() + 1
        final = self.directory / f"ckpt-{number:06d}.pt"
        tmp = self.directory / f".{final.name}.tmp-{os.getpid()}"
        try:
            write(tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return final

    def load(self) -> dict[str, Any] | None:
        """Return the newest checkpoint that loads, or ``None`` when there is none.

        A file that fails to load (truncated, corrupted, or holding objects that
        ``weights_only`` refuses) is skipped with a warning naming it; the previous one is tried.
        """
        for path in reversed(self.paths()):
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # any unreadable file: fall back to the previous one
                _log.warning("skipping unreadable checkpoint %s: %s", path, str(exc).splitlines()[0])
                continue
            if not isinstance(state, dict):
                _log.warning("skipping checkpoint %s: holds %s, not a dict", path, type(state).__name__)
                continue
            return state
        return None
