"""Checks that need more than the YAML: do the space's tower patterns fit the objective's model?

``gradsweep validate`` and ``gradsweep launch`` run these before any study is touched, so a
pattern typo, an unmatched parameter or two towers claiming one parameter is one clear line,
not a failed first trial.
"""

from __future__ import annotations

from gradsweep.spaces.apply import match_parameters
from gradsweep.spaces.params import CategoricalParam, FixedParam, FloatParam, IntParam
from gradsweep.spaces.sampling import check_params, resolve, searched_knobs
from gradsweep.spaces.space import SearchSpace, SpaceError
from gradsweep.spaces.trial_config import TrialConfig


def probe_config(space: SearchSpace) -> TrialConfig:
    """A representative config of ``space``: its first baseline, else every knob at its low end."""
    if space.baselines:
        name = next(iter(space.baselines))
        return resolve(space, check_params(space, space.baselines[name], where=f"baselines.{name}"))
    params: dict[str, object] = {}
    for k in searched_knobs(space):
        p = k.param
        if isinstance(p, FloatParam | IntParam):
            params[k.name] = p.low
        elif isinstance(p, CategoricalParam):
            params[k.name] = p.choices[0]
        elif isinstance(p, FixedParam):
            params[k.name] = p.value
    return resolve(space, params)


def tower_errors(space: SearchSpace, objective: str | None = None) -> list[str]:
    """Problems between the towers' patterns and the objective's model (built-ins only).

    A user objective (``module:fn`` / ``file.py:fn``) has no model to inspect before it runs;
    its patterns are checked when the trial builds its optimizer.

    Returns:
        One line per problem, each starting with ``towers:``; empty when all is well.
    """
    from gradsweep.objectives.registry import BUILTINS, builtin_module

    name = objective or space.objective
    if name not in BUILTINS:
        return []
    build = getattr(builtin_module(name), "build_model", None)
    if build is None:
        return []
    try:
        config = probe_config(space)
    except SpaceError as exc:
        return exc.errors
    model = build(config)
    names = [n for n, _ in model.named_parameters()]
    frozen_by_model = [n for n, p in model.named_parameters() if not p.requires_grad]
    try:
        match_parameters(names, config.towers, optional=frozen_by_model)
    except ValueError as exc:
        return [f"towers: {exc} (objective {name!r})"]
    return []
