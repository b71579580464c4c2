"""The docstring examples of the health modules, the objective API's small modules and the pruner run and stay true."""

from __future__ import annotations

import doctest
import importlib

import optuna
import pytest

MODULES = [
    *(
        f"gradsweep.objectives.health.{name}"
        for name in ("stats", "verdict", "summary", "rules", "decay", "monitor")
    ),
    "gradsweep.objectives.pruned",
    "gradsweep.objectives.reporting",
    "gradsweep.objectives.run",
    "gradsweep.search.health_attrs",
    "gradsweep.search.pruner",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    # every example in the module's docstrings ran and printed what it shows
    assert result.attempted > 0 and result.failed == 0, result
