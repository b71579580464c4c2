"""The docstring examples of search.health and search.pruner run and stay true."""

from __future__ import annotations

import doctest
import importlib

import optuna
import pytest

MODULES = [
    "search.health.stats", "search.health.verdict", "search.health.summary", "search.health.rules",
    "search.health.decay", "search.health.monitor", "search.health.attrs", "search.pruner",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    # every example in the module's docstrings ran and printed what it shows
    assert result.attempted > 0 and result.failed == 0, result
