"""Non-finite floats become strings in what gradsweep prints as JSON and exports."""

from __future__ import annotations

import doctest
import json
import math

from gradsweep.search import json_safe as module
from gradsweep.search.json_safe import json_safe


def test_non_finite_floats_become_strings_at_any_depth() -> None:
    data = {"a": [1.0, math.nan, {"b": (math.inf, -math.inf)}], "c": "nan", "d": 2}
    # every non-finite float is its str, tuples become lists, the rest is unchanged
    assert json_safe(data) == {"a": [1.0, "nan", {"b": ["inf", "-inf"]}], "c": "nan", "d": 2}
    # the result is standard JSON (no NaN / Infinity tokens)
    json.dumps(json_safe(data), allow_nan=False)


def test_docstring_example() -> None:
    result = doctest.testmod(module)
    # the module's example ran and printed what it shows
    assert result.attempted > 0 and result.failed == 0
