"""The docstring examples of the engine's pure helpers run and stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "gradsweep.search.engine.ray.trainable",
    "gradsweep.search.engine.ray.runtime",
    "gradsweep.search.engine.algorithms",
    "gradsweep.search.engine.storage",
    "gradsweep.search.engine.request",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    # every example in the module's docstrings ran and printed what it shows
    assert result.attempted > 0 and result.failed == 0, result
