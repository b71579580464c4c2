"""Calling an objective: :func:`run_objective` checks that it returned one finite number.

A NaN or infinite result raises :class:`NonFiniteValue`, a type the engine catches (the trial is
stored FAIL with ``gradsweep.fail.reason = "non-finite objective value"``); nothing matches on
message text. Torch-free (the driver imports :data:`NON_FINITE`).

Example:
    >>> run_objective(lambda config, ctx: 0.5, None, None)
    0.5
    >>> run_objective(lambda config, ctx: float("nan"), None, None)
    Traceback (most recent call last):
    ...
    gradsweep.objectives.run.NonFiniteValue: non-finite objective value: nan
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gradsweep.objectives.context import TrialContext
    from gradsweep.spaces.trial_config import TrialConfig

NON_FINITE = "non-finite objective value"

Objective = Callable[["TrialConfig", "TrialContext"], float]


class NonFiniteValue(ValueError):
    """The objective returned NaN or an infinity (a ``ValueError``, as before it had a type).

    Attributes:
        value: the value returned.
    """

    def __init__(self, value: float) -> None:
        super().__init__(f"{NON_FINITE}: {value}")
        self.value = value


def run_objective(objective: Objective, config: TrialConfig, ctx: TrialContext) -> float:
    """Call ``objective`` and check that it returned a finite number.

    Raises:
        TypeError: if the value is not a real number.
        NonFiniteValue: if it is NaN or infinite (message ``non-finite objective value: nan``).
    """
    value = objective(config, ctx)
    if not isinstance(value, numbers.Real) and callable(getattr(value, "numel", None)) and value.numel() == 1:
        value = value.item()  # a one-element tensor or array
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"objective must return a float but returned {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise NonFiniteValue(value)
    return value
