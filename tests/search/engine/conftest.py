"""Fixtures for the sweep engine tests: objective files, spaces, one shared local Ray.

The objectives are cheap on purpose (pure Python, or a 4-parameter linear model) so the tests
exercise the engine's mechanics, not training; ``test_engine_contrastive`` runs the one real
tiny objective.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ._support import OBJECTIVES, space_data


@pytest.fixture(scope="session")
def objectives_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The objectives module, written once per session."""
    path = tmp_path_factory.mktemp("engine_objectives") / "engine_objs.py"
    path.write_text(OBJECTIVES)
    return path


@pytest.fixture
def make_space(tmp_path: Path, objectives_file: Path) -> Any:
    """``make_space(fn, **overrides) -> Path`` of a space YAML whose objective is ``fn`` of the objectives file."""

    def make(fn: str, **overrides: Any) -> Path:
        path = tmp_path / f"space-{fn}.yaml"
        path.write_text(yaml.safe_dump(space_data(f"{objectives_file}:{fn}", **overrides)))
        return path

    return make


@pytest.fixture(scope="module")
def shared_ray() -> Iterator[None]:
    """One local Ray for a whole test module (4 logical CPUs so two trials fit on 2 cores)."""
    import ray

    from gradsweep.search.engine.ray.runtime import quiet_environment

    quiet_environment()
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        logging_level="ERROR",
    )
    try:
        yield
    finally:
        ray.shutdown()
