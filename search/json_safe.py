"""Plain data made safe for standard JSON: non-finite floats become strings.

``json.dumps`` writes ``NaN`` / ``Infinity``, which strict JSON readers refuse; what gradsweep
prints (``--json``) and exports writes them as ``"nan"``, ``"inf"``, ``"-inf"`` instead.

Example:
    >>> json_safe({"best": float("nan"), "values": [1.0, float("-inf")], "steps": (1, 2)})
    {'best': 'nan', 'values': [1.0, '-inf'], 'steps': [1, 2]}
"""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its ``str`` (dicts, lists and tuples walked; tuples become lists).

    Args:
        value: plain data (dicts, lists, tuples, numbers, strings, ...).

    Returns:
        The same data, JSON-standard.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
