"""A real read-only filesystem for tests: a directory bind-mounted read-only.

The tests run as root, and root ignores file modes, so ``chmod`` cannot make a store
unwritable; a read-only bind mount can.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def read_only_view(src: Path, where: Path) -> Iterator[Path]:
    """``src`` as seen through the read-only mount point ``where`` (created), unmounted afterwards."""
    where.mkdir()
    if subprocess.run(["mount", "--bind", str(src), str(where)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here to make a read-only filesystem")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(where)], check=True, capture_output=True)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


__all__ = ["read_only_view"]
