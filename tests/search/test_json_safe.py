"""Non-finite floats become strings in what gradsweep prints as JSON and exports."""

from __future__ import annotations

import json
import math

from gradsweep.search.json_safe import json_safe


def test_non_finite_floats_become_strings_at_any_depth() -> None:
    data = {"a": [1.0, math.nan, {"b": (math.inf, -math.inf)}], "c": "nan", "d": 2}
    # every non-finite float is its str, tuples become lists, the rest is unchanged
    assert json_safe(data) == {"a": [1.0, "nan", {"b": ["inf", "-inf"]}], "c": "nan", "d": 2}
    # the result is standard JSON (no NaN / Infinity tokens)
    json.dumps(json_safe(data), allow_nan=False)
