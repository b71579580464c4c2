"""Every docstring example in the package runs and stays true.

The modules are found by reading the source for ``>>>`` (no import at collection time), so a
module that gains an example is tested without anyone adding it to a list here.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# the repository's top-level folders and the package names they install as
PACKAGES = {
    "gradsweep": "gradsweep",
    "spaces": "gradsweep.spaces",
    "objectives": "gradsweep.objectives",
    "search": "gradsweep.search",
}


def module_name(path: Path) -> str:
    """``search/engine/storage.py`` -> ``gradsweep.search.engine.storage``."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGES[parts[0]], *parts[1:]])


def modules_with_examples() -> list[str]:
    return sorted(
        module_name(path)
        for folder in PACKAGES
        for path in (REPO / folder).rglob("*.py")
        if ">>> " in path.read_text(encoding="utf-8")
    )


def test_examples_are_found_in_every_layer() -> None:
    found = modules_with_examples()
    # the discovery sees examples in each of the three layers (a broken walk would find none)
    assert all(
        any(name.startswith(f"gradsweep.{layer}.") for name in found)
        for layer in ("spaces", "objectives", "search")
    )
    # a package's __init__ is the package itself
    assert module_name(REPO / "spaces" / "apply" / "__init__.py") == "gradsweep.spaces.apply"
    assert module_name(REPO / "search" / "engine" / "storage.py") == "gradsweep.search.engine.storage"


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples(name: str) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    # every example in the module's own docstrings ran and printed what it shows
    assert result.failed == 0, result
    # and examples did run, unless every one is marked +SKIP (a sketch that needs a real study)
    runnable = [
        example
        for test in doctest.DocTestFinder().find(module)
        for example in test.examples
        if not example.options.get(doctest.SKIP)
    ]
    assert result.attempted == len(runnable) and (runnable or ">>> " in Path(module.__file__).read_text()), (
        name
    )
