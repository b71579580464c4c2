"""Optimizer parameter groups: one per tower x {decay, no_decay}.

Each group dict carries, besides ``params``/``lr``/``weight_decay`` (what torch reads):

| key | value |
|---|---|
| ``tower`` | tower name |
| ``group`` | ``"<tower>/decay"`` / ``"<tower>/no_decay"``; just ``"<tower>"`` when the tower has one kind only (a ``temperature`` scalar) |
| ``decay`` | whether the group's weights decay |
| ``base_lr`` | ``config.effective_lr(tower)``: the LR before schedule and stage multipliers |
| ``betas`` / ``eps`` | only when the tower overrides the optimizer's (AdamW only) |

Frozen towers (``tower.frozen``): their parameters get ``requires_grad=False`` and still go
into groups, with ``lr = 0``. Keeping them in the optimizer means a later stage or a resumed
run never has to rebuild it (seed 002's bug came from rebuilding optimizer and scheduler at an
unfreeze); AdamW skips parameters whose ``.grad`` is None, so they cost nothing while frozen.
From here on, tower membership and the stage plan (see ``StagedScheduler``), not the model's
original ``requires_grad`` flags, decide what trains; parameters that do not require grad and
match no tower are left out.

Example:
    >>> import torch
    >>> from gradsweep.spaces.trial_config import TowerConfig, TrialConfig
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    >>> cfg = TrialConfig(objective="x", towers=[TowerConfig(name="all", patterns=["*"], lr=1e-3, weight_decay=0.1)])
    >>> [(g["group"], len(g["params"]), g["weight_decay"]) for g in build_param_groups(model, cfg)]
    [('all/decay', 1, 0.1), ('all/no_decay', 3, 0.0)]
"""

from __future__ import annotations

from typing import Any

from torch import nn

from gradsweep.spaces.apply.matching import match_parameters, no_decay_reason, parameter_modules
from gradsweep.spaces.trial_config import TowerConfig, TrialConfig


def _group_name(tower: str, decay: bool, split: bool) -> str:
    if not split:
        return tower
    return f"{tower}/{'decay' if decay else 'no_decay'}"


def _extra_hparams(tower: TowerConfig, config: TrialConfig) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if tower.betas is None and tower.eps is None:
        return extra
    if config.optimizer.name != "adamw":
        raise ValueError(
            f"tower {tower.name!r} sets betas/eps, which only optimizer.name 'adamw' uses; "
            f"optimizer.name is {config.optimizer.name!r}"
        )
    if tower.betas is not None:
        extra["betas"] = tuple(tower.betas)
    if tower.eps is not None:
        extra["eps"] = tower.eps
    return extra


def build_param_groups(model: nn.Module, config: TrialConfig) -> list[dict[str, Any]]:
    """Split ``model``'s parameters into per-tower decay / no-decay optimizer groups.

    Args:
        model: any module; its ``named_parameters()`` names are matched against tower patterns.
        config: the resolved trial config (towers, no-decay rules, LR scaling).

    Returns:
        Groups in tower order, decay before no_decay, empty ones omitted (keys in the module
        docstring). Parameters of frozen towers get ``requires_grad=False`` as a side effect.

    Raises:
        ValueError: a trainable parameter matched by no tower or by two towers, a tower
            matching nothing (see :func:`match_parameters`), or betas/eps on a tower with SGD.
    """
    named = list(model.named_parameters())
    owner = match_parameters(
        (n for n, _ in named),
        config.towers,
        optional={n for n, p in named if not p.requires_grad},
    )
    modules = parameter_modules(model)
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in named:
        tower_name = owner.get(name)
        if tower_name is None:
            continue
        rule = config.tower(tower_name).no_decay
        decay = no_decay_reason(name, param.ndim, modules.get(name), rule) is None
        buckets.setdefault((tower_name, decay), []).append(param)

    groups: list[dict[str, Any]] = []
    for tower in config.towers:
        kinds = [d for d in (True, False) if (tower.name, d) in buckets]
        base_lr = config.effective_lr(tower.name)
        extra = _extra_hparams(tower, config)
        for decay in kinds:
            params = buckets[(tower.name, decay)]
            if tower.frozen:
                for p in params:
                    p.requires_grad_(False)
            groups.append(
                {
                    "params": params,
                    "lr": 0.0 if tower.frozen else base_lr,
                    "weight_decay": tower.weight_decay if decay else 0.0,
                    "tower": tower.name,
                    "group": _group_name(tower.name, decay, split=len(kinds) > 1),
                    "decay": decay,
                    "base_lr": base_lr,
                    **extra,
                }
            )
    return groups
