"""From a search space to Optuna parameters and back to a resolved :class:`TrialConfig`.

* :func:`knobs` lists every knob with its Optuna parameter name (the dotted YAML path, list
  entries addressed by name: ``towers.text_encoder.lr_ratio``, ``stages.full.lr_multipliers.*``)
  and the condition under which it exists (``schedule.onecycle.*`` only when
  ``schedule.kind == onecycle``).
* :func:`suggest` samples define-by-run from an ``optuna.Trial``, so conditional knobs appear
  only when chosen.
* :func:`resolve` turns a parameter dict into a :class:`TrialConfig` (ties applied).
* :func:`check_params` validates a baseline parameter set against the space.

Example:
    >>> import optuna
    >>> from gradsweep.spaces.space import load_space
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> space = load_space("moco")
    >>> trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    >>> config = resolve(space, suggest(space, trial))
    >>> [tower.name for tower in config.towers]
    ['backbone', 'projector', 'predictor']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
from pydantic import BaseModel, ValidationError

from gradsweep.spaces.params import CategoricalParam, FixedParam, FloatParam, IntParam, ParamValue, TieParam
from gradsweep.spaces.space import SearchSpace, SpaceError, format_validation_error
from gradsweep.spaces.trial_config import TrialConfig

# Subtrees that exist only for one value of another knob: path prefix -> (path, value).
_CONDITIONS: dict[str, tuple[str, str]] = {
    "schedule.onecycle": ("schedule.kind", "onecycle"),
    "schedule.plateau": ("schedule.kind", "plateau"),
}
# Fields that are structure, not values, and never hold knobs.
_NOT_SEARCHED = frozenset(
    {
        "name",
        "patterns",
        "pattern_kind",
        "objective",
        "description",
        "metric",
        "health",
        "baselines",
        "train",
        "no_decay",
        "betas",
        "frozen",
        "scale",
        "seed",
    }
)


@dataclass(frozen=True)
class KnobSpec:
    """One knob of a space.

    Attributes:
        name: the Optuna parameter name (dotted path, list entries by name).
        yaml_path: where it is written in the YAML (list entries by index), for messages.
        param: the knob itself.
        condition: ``(path, value)`` that must hold for the knob to exist, or None.
    """

    name: str
    yaml_path: str
    param: FloatParam | IntParam | CategoricalParam | FixedParam
    condition: tuple[str, str] | None = None

    @property
    def searched(self) -> bool:
        return not isinstance(self.param, FixedParam)


def _is_knob(value: Any) -> bool:
    """A searched knob where a structural field name is reused (``optimizer.name`` is a knob; a
    tower's or a stage's ``name`` is structure)."""
    return isinstance(value, FloatParam | IntParam | CategoricalParam)


def _condition_for(name: str) -> tuple[str, str] | None:
    for prefix, cond in _CONDITIONS.items():
        if name == prefix or name.startswith(prefix + "."):
            return cond
    return None


def _walk(obj: Any, name: str, ypath: str, out: list[KnobSpec]) -> None:
    if isinstance(obj, TieParam):
        _walk(obj.ratio, name + "_ratio", ypath + ".ratio", out)
    elif isinstance(obj, FloatParam | IntParam | CategoricalParam | FixedParam):
        out.append(KnobSpec(name, ypath, obj, _condition_for(name)))
    elif isinstance(obj, BaseModel):
        for field in type(obj).model_fields:
            sub = getattr(obj, field)
            if field in _NOT_SEARCHED and not _is_knob(sub):
                continue
            _walk(sub, f"{name}.{field}" if name else field, f"{ypath}.{field}" if ypath else field, out)
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            key = getattr(item, "name", str(i))
            _walk(item, f"{name}.{key}", f"{ypath}[{i}]", out)
    elif isinstance(obj, dict):
        for key, sub in obj.items():
            _walk(sub, f"{name}.{key}", f"{ypath}.{key}", out)


def knobs(space: SearchSpace) -> list[KnobSpec]:
    """Every knob of ``space`` in sampling order (fixed knobs included)."""
    out: list[KnobSpec] = []
    _walk(space, "", "", out)
    return out


def searched_knobs(space: SearchSpace) -> list[KnobSpec]:
    return [k for k in knobs(space) if k.searched]


def distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions of every searched knob (conditional ones included)."""
    return {k.name: k.param.to_distribution() for k in searched_knobs(space)}


def _literal_at(space: SearchSpace, path: str) -> Any:
    obj: Any = space
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _condition_holds(space: SearchSpace, cond: tuple[str, str] | None, params: dict[str, Any]) -> bool:
    if cond is None:
        return True
    path, wanted = cond
    if path in params:
        return params[path] == wanted
    value = _literal_at(space, path)
    if isinstance(value, FixedParam):
        value = value.value
    return value == wanted


def active_knobs(space: SearchSpace, params: dict[str, Any]) -> list[KnobSpec]:
    """Searched knobs that exist given the (partial) parameter values."""
    return [k for k in searched_knobs(space) if _condition_holds(space, k.condition, params)]


def suggest(space: SearchSpace, trial: optuna.Trial) -> dict[str, ParamValue]:
    """Sample every active knob define-by-run; returns ``{param name: value}``."""
    params: dict[str, ParamValue] = {}
    for k in searched_knobs(space):
        if not _condition_holds(space, k.condition, params):
            continue
        p = k.param
        if isinstance(p, FloatParam):
            params[k.name] = trial.suggest_float(k.name, p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, IntParam):
            params[k.name] = trial.suggest_int(k.name, p.low, p.high, log=p.log, step=p.step)
        else:
            params[k.name] = trial.suggest_categorical(k.name, p.choices)
    return params


# --- resolution ------------------------------------------------------------------------------
def _materialize(obj: Any, name: str, space: SearchSpace, params: dict[str, Any], probe: bool) -> Any:
    if isinstance(obj, FixedParam):
        return obj.value
    if isinstance(obj, FloatParam | IntParam | CategoricalParam):
        if name not in params:
            raise SpaceError([f"missing parameter {name!r}"])
        return params[name]
    if isinstance(obj, TieParam):
        return {"tie": obj.tie, "ratio": _materialize(obj.ratio, name + "_ratio", space, params, probe)}
    if isinstance(obj, BaseModel):
        out: dict[str, Any] = {}
        for field in type(obj).model_fields:
            sub_name = f"{name}.{field}" if name else field
            if not probe and not _condition_holds(space, _CONDITIONS.get(sub_name), params):
                continue  # an inactive conditional subtree keeps TrialConfig's defaults
            value = getattr(obj, field)
            if field in _NOT_SEARCHED and not _is_knob(value):
                out[field] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
            else:
                out[field] = _materialize(value, sub_name, space, params, probe)
        return out
    if isinstance(obj, list):
        return [
            _materialize(item, f"{name}.{getattr(item, 'name', i)}", space, params, probe)
            for i, item in enumerate(obj)
        ]
    if isinstance(obj, dict):
        return {k: _materialize(v, f"{name}.{k}", space, params, probe) for k, v in obj.items()}
    return obj


def _config_data(space: SearchSpace, params: dict[str, Any], probe: bool) -> dict[str, Any]:
    data = _materialize(space, "", space, params, probe)
    for key in ("name", "description", "baselines"):
        data.pop(key, None)
    resolved = {t["name"]: t["lr"] for t in data["towers"] if not isinstance(t["lr"], dict)}
    for tower in data["towers"]:
        if isinstance(tower["lr"], dict):  # a tie: lr = target lr * ratio
            target = resolved.get(tower["lr"]["tie"])
            tower["lr"] = None if target is None else float(target) * float(tower["lr"]["ratio"])
    return data


def resolve(
    space: SearchSpace,
    params: dict[str, Any],
    *,
    scale: str | None = None,
    seed: int | None = None,
    workers: int | None = None,
) -> TrialConfig:
    """Build the concrete :class:`TrialConfig` for ``params`` (as from :func:`suggest`).

    ``scale``, ``seed`` and ``workers`` (the DDP workers of one trial) override the space's.

    Raises:
        SpaceError: a parameter is missing or a value is not allowed where it lands.
    """
    data = _config_data(space, params, probe=False)
    if scale is not None:
        data["scale"] = scale
    if seed is not None:
        data["seed"] = seed
    if workers is not None:
        data["workers"] = workers
    active = {k.name for k in active_knobs(space, params)}
    data["params"] = {k: v for k, v in params.items() if k in active}
    try:
        return TrialConfig.model_validate(data)
    except ValidationError as exc:
        raise SpaceError(format_validation_error(exc)) from None


# --- validation of knob domains and parameter sets -------------------------------------------
def _contains(param: FloatParam | IntParam | CategoricalParam, value: Any) -> bool:
    if isinstance(param, CategoricalParam):
        return any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in param.choices)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    if isinstance(param, IntParam) and int(value) != value:
        return False
    return param.low <= value <= param.high


def check_params(space: SearchSpace, params: dict[str, Any], *, where: str = "") -> dict[str, ParamValue]:
    """Validate a parameter set (a baseline) against ``space``; returns the active subset.

    Raises:
        SpaceError: unknown, missing or out-of-range parameters, one line each.
    """
    prefix = f"{where}." if where else ""
    every = {k.name: k for k in searched_knobs(space)}
    errors = [
        f"{prefix}{name}: unknown parameter; parameters are: {', '.join(every) or '(none: the space searches nothing)'}"
        for name in params
        if name not in every
    ]
    known = {n: v for n, v in params.items() if n in every}
    active = active_knobs(space, known)
    for k in active:
        if k.name not in known:
            errors.append(f"{prefix}{k.name}: missing; the space searches it ({k.param.describe()})")
        elif not _contains(k.param, known[k.name]):  # type: ignore[arg-type]
            errors.append(f"{prefix}{k.name}: {known[k.name]!r} is outside the space ({k.param.describe()})")
    if errors:
        raise SpaceError(errors)
    return {k.name: known[k.name] for k in active}


def probe_errors(space: SearchSpace) -> list[str]:
    """Errors that only show once values are plugged in: each knob's extremes and choices,
    and every baseline, are resolved into a TrialConfig."""

    def attempt(params: dict[str, Any]) -> set[str]:
        try:
            TrialConfig.model_validate({**_config_data(space, params, probe=True), "params": {}})
        except ValidationError as exc:
            return set(format_validation_error(exc))
        return set()

    specs = searched_knobs(space)
    # the base takes each knob's first value that is not null; every other value is a variation
    values = {k.name: k.param.probe_values() for k in specs}
    first = {name: next((i for i, v in enumerate(vs) if v is not None), 0) for name, vs in values.items()}
    base = {name: vs[first[name]] for name, vs in values.items()}
    errors = sorted(attempt(base))
    for k in specs:
        others = [v for i, v in enumerate(values[k.name]) if i != first[k.name]]
        for value in others if not errors else []:
            new = sorted(attempt({**base, k.name: value}) - set(errors))
            if new:  # one line per bad value: the knob's own error, else the first one it caused
                own = next((line for line in new if line.startswith(f"{k.yaml_path}:")), new[0])
                shown = "null" if value is None else repr(value)
                errors.append(f"{k.yaml_path}: value {shown} is not allowed here ({own})")
    for name, params in space.baselines.items():
        try:
            check_params(space, params, where=f"baselines.{name}")
        except SpaceError as exc:
            errors.extend(exc.errors)
    return errors


def baseline_config(space: SearchSpace, name: str, **overrides: Any) -> TrialConfig:
    """The TrialConfig of the space's baseline ``name`` (e.g. a seed's ``before``/``after``)."""
    if name not in space.baselines:
        have = ", ".join(space.baselines) or "none"
        raise SpaceError([f"baselines: no baseline {name!r} in space {space.name!r}; it has: {have}"])
    params = check_params(space, space.baselines[name], where=f"baselines.{name}")
    return resolve(space, params, **overrides)


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """The space as JSON-able data (stored in the study's user attrs)."""
    return space.model_dump(mode="json", exclude_defaults=False)
