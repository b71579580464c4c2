"""The optimizer over a config's tower groups: AdamW or SGD.

Example:
    >>> import torch
    >>> from gradsweep.spaces.trial_config import TowerConfig, TrialConfig
    >>> cfg = TrialConfig(objective="x", towers=[TowerConfig(name="all", patterns=["*"], lr=1e-3)])
    >>> type(build_optimizer(torch.nn.Linear(2, 2), cfg)).__name__
    'AdamW'
"""

from __future__ import annotations

import torch
from torch import nn

from gradsweep.spaces.apply.param_groups import build_param_groups
from gradsweep.spaces.trial_config import TrialConfig

OPTIMIZERS = ("adamw", "sgd")


def build_optimizer(model: nn.Module, config: TrialConfig) -> torch.optim.Optimizer:
    """Build AdamW or SGD over :func:`build_param_groups` ``(model, config)``.

    AdamW takes ``config.optimizer.betas``/``eps`` unless a tower overrides them; SGD takes
    ``momentum`` and ``nesterov``. Group LRs start at each tower's base LR (0 for frozen towers);
    a :class:`~gradsweep.spaces.apply.scheduler.StagedScheduler` then owns them.

    Args:
        model: the module to optimise.
        config: the resolved trial config.

    Returns:
        The optimizer; its ``param_groups`` keep the ``tower``/``group``/``decay``/``base_lr`` keys.

    Raises:
        ValueError: from :func:`build_param_groups`, for an unknown optimizer name, or for
            Nesterov SGD without momentum.
    """
    groups = build_param_groups(model, config)
    opt = config.optimizer
    if opt.name == "adamw":
        return torch.optim.AdamW(groups, lr=0.0, betas=tuple(opt.betas), eps=opt.eps, weight_decay=0.0)
    if opt.name == "sgd":
        if opt.nesterov and opt.momentum <= 0.0:
            raise ValueError("optimizer.nesterov needs optimizer.momentum > 0 but momentum is 0")
        return torch.optim.SGD(groups, lr=0.0, momentum=opt.momentum, nesterov=opt.nesterov, weight_decay=0.0)
    raise ValueError(f"optimizer.name must be one of {OPTIMIZERS} but got {opt.name!r}")
