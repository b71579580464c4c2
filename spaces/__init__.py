"""Search spaces over per-tower optimisation settings, and their application to any model.

Public API: :func:`load_space`, :class:`SearchSpace`, :class:`SpaceError`, :func:`suggest`,
:func:`resolve`, :func:`check_params`, :class:`TrialConfig`; ``gradsweep.spaces.apply`` builds the optimiser,
scheduler, scaler and clipper for an ``nn.Module``.
"""

from __future__ import annotations

from gradsweep.spaces.sampling import baseline_config, check_params, distributions, knobs, resolve, suggest
from gradsweep.spaces.space import SearchSpace, SpaceError, load_space, parse_space
from gradsweep.spaces.trial_config import TrialConfig

__all__ = [
    "SearchSpace",
    "SpaceError",
    "TrialConfig",
    "baseline_config",
    "check_params",
    "distributions",
    "knobs",
    "load_space",
    "parse_space",
    "resolve",
    "suggest",
]
