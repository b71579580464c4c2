"""Fixtures for the fault suite: the engine's shared Ray and spaces, and a per-test faulty objective file."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.search.engine._support import space_data
from tests.search.engine.conftest import shared_ray

__all__ = ["shared_ray"]

FAULTY = Path(__file__).parent / "_faulty.py"


@pytest.fixture
def faulty(tmp_path: Path) -> Path:
    """A private copy of ``_faulty.py`` (its marker files land next to it, in this test's directory)."""
    target = tmp_path / "objs" / "faulty.py"
    target.parent.mkdir()
    shutil.copy(FAULTY, target)
    return target


@pytest.fixture
def fault_space(tmp_path: Path, faulty: Path) -> Any:
    """``fault_space(fn, **overrides) -> Path``: a space YAML whose objective is ``fn`` of the faulty file.

    Baselines: ``mild`` (lr 0.01) and ``severe`` (lr 5.0), the two modes of each fault.
    """

    def make(fn: str, **overrides: Any) -> Path:
        overrides.setdefault("baselines", {"mild": {"towers.all.lr": 0.01}, "severe": {"towers.all.lr": 5.0}})
        path = tmp_path / f"space-{fn}.yaml"
        path.write_text(yaml.safe_dump(space_data(f"{faulty}:{fn}", **overrides)))
        return path

    return make
