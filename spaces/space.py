"""The search space a user writes in YAML, validated by Pydantic.

A space mirrors :class:`gradsweep.spaces.trial_config.TrialConfig`, except that every tunable leaf may be
a knob (:mod:`gradsweep.spaces.params`) instead of a value, tower LRs may be tied to other towers, and a
``baselines`` section holds named parameter sets (e.g. a seed's "before" and "after" configs)
that a sweep enqueues first.

Errors name the YAML path of the field and what is allowed, one line each::

    towers[1].lr.low: low (0.1) must be < high (0.01); use a plain value for a fixed one

Example:
    >>> space = load_space("contrastive")          # a preset name or a path to a YAML file
    >>> space.objective
    'contrastive'
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gradsweep.spaces.health import HealthConfig
from gradsweep.spaces.params import TAGS, Knob, LrKnob, Param, ParamValue, TieParam
from gradsweep.spaces.trial_config import MetricConfig, NoDecayRule
from gradsweep.spaces.yaml_io import YamlFileError, read_yaml_file

#: The longest name a space may give a study, tower, stage or extra. Names end up in Optuna
#: parameter names (``stages.<stage>.lr_multipliers.<tower>``), which the study store keeps in
#: 512-character columns (PostgreSQL enforces it), and in the run directory's name.
MAX_NAME_LENGTH = 200


def _name() -> Any:
    return Field(min_length=1, max_length=MAX_NAME_LENGTH)


class SpaceError(ValueError):
    """A search space (or a parameter set) that does not validate; one line per problem."""

    def __init__(self, errors: list[str], source: str | None = None) -> None:
        self.errors = errors
        self.source = source
        super().__init__("\n".join(errors))

    def first_line(self) -> str:
        more = (
            f" (and {len(self.errors) - 1} more; run `gradsweep validate` to see all)"
            if len(self.errors) > 1
            else ""
        )
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.errors[0]}{more}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TowerSpace(_Section):
    name: str = _name()
    patterns: list[str] = Field(min_length=1)
    pattern_kind: Literal["glob", "regex"] = "glob"
    lr: LrKnob
    weight_decay: Knob = 0.0
    betas: tuple[float, float] | None = None
    eps: Knob | None = None
    no_decay: NoDecayRule = NoDecayRule()
    frozen: bool = False
    clip_max_norm: Knob | None = None


class OptimizerSpace(_Section):
    name: Knob = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: Knob = 1e-8
    momentum: Knob = 0.9
    nesterov: Knob = False


class OneCycleSpace(_Section):
    pct_start: Knob = 0.3
    div_factor: Knob = 25.0
    final_div_factor: Knob = 1e4


class PlateauSpace(_Section):
    factor: Knob = 0.1
    patience: Knob = 2
    threshold: Knob = 1e-4
    mode: Knob = "max"


class ScheduleSpace(_Section):
    # `kind` comes first: define-by-run samples it before the settings that depend on it.
    kind: Knob = "cosine"
    warmup_steps: Knob | None = None
    warmup_fraction: Knob | None = None
    min_lr_ratio: Knob = 0.0
    lr_scaling: Knob = "none"
    reference_batch: Knob = 256
    onecycle: OneCycleSpace = OneCycleSpace()
    plateau: PlateauSpace = PlateauSpace()


class ClipSpace(_Section):
    max_norm: Knob | None = None
    norm_type: Knob = 2.0


class ScalerSpace(_Section):
    init_scale: Knob = 2.0**16
    growth_factor: Knob = 2.0
    backoff_factor: Knob = 0.5
    growth_interval: Knob = 2000


class AmpSpace(_Section):
    dtype: Knob = "none"
    scaler: ScalerSpace = ScalerSpace()


class StageSpace(_Section):
    name: str = _name()
    epochs: Knob | None = None
    steps: Knob | None = None
    train: list[str] = Field(default_factory=lambda: ["*"])
    lr_multipliers: dict[str, Knob] = Field(default_factory=dict)
    schedule: Knob = "continue"


class SearchSpace(_Section):
    """A validated search space. See the module docstring and ``spaces/presets/`` for examples."""

    name: str = _name()
    objective: str = Field(min_length=1)
    description: str = ""
    metric: MetricConfig
    scale: Literal["tiny", "small", "full"] = "tiny"
    seed: int = 0
    optimizer: OptimizerSpace = OptimizerSpace()
    batch_size: Knob = 64
    accumulation_steps: Knob = 1
    towers: list[TowerSpace] = Field(min_length=1)
    schedule: ScheduleSpace = ScheduleSpace()
    clip: ClipSpace = ClipSpace()
    amp: AmpSpace = AmpSpace()
    stages: list[StageSpace] = Field(default_factory=lambda: [StageSpace(name="train", epochs=1)])
    extras: dict[str, Knob] = Field(default_factory=dict)
    health: HealthConfig = HealthConfig()
    baselines: dict[str, dict[str, ParamValue]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross_field(self) -> SearchSpace:
        errors = _cross_field_errors(self)
        if errors:
            raise ValueError("\n".join(errors))
        return self

    def tower_names(self) -> list[str]:
        return [t.name for t in self.towers]

    def accumulates(self) -> bool:
        """Whether some config of the space takes more than one micro-batch per optimizer step."""
        most = _knob_high(self.accumulation_steps)
        return most is not None and most > 1


# --- cross-field rules ----------------------------------------------------------------------
def _knob_low(value: Any) -> float | None:
    """Smallest number a knob can take (None for non-numeric)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    low = getattr(value, "low", None)
    if low is not None:
        return float(low)
    nums = [
        v for v in getattr(value, "choices", []) if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if nums:
        return float(min(nums))
    fixed = getattr(value, "value", None)
    return float(fixed) if isinstance(fixed, int | float) and not isinstance(fixed, bool) else None


def _knob_high(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    high = getattr(value, "high", None)
    if high is not None:
        return float(high)
    nums = [
        v for v in getattr(value, "choices", []) if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if nums:
        return float(max(nums))
    fixed = getattr(value, "value", None)
    return float(fixed) if isinstance(fixed, int | float) and not isinstance(fixed, bool) else None


def _cross_field_errors(space: SearchSpace) -> list[str]:
    errors: list[str] = []
    names = space.tower_names()
    allowed = ", ".join(names)
    for i, name in enumerate(names):
        if name in names[:i]:
            errors.append(f"towers[{i}].name: tower {name!r} is defined twice; tower names must be unique")
    tied = {t.name: t.lr.tie for t in space.towers if isinstance(t.lr, TieParam)}
    for i, tower in enumerate(space.towers):
        if not isinstance(tower.lr, TieParam):
            continue
        target = tower.lr.tie
        if target not in names:
            errors.append(f"towers[{i}].lr.tie: unknown tower {target!r}; towers are: {allowed}")
        elif target == tower.name:
            errors.append(f"towers[{i}].lr.tie: tower {target!r} cannot be tied to itself")
        elif target in tied:
            errors.append(
                f"towers[{i}].lr.tie: {target!r} is itself tied to {tied[target]!r}; tie to an untied tower"
            )
        low = _knob_low(tower.lr.ratio)
        if low is not None and low < 0:
            errors.append(f"towers[{i}].lr.ratio: must be >= 0, got {low:g}")
    for i, stage in enumerate(space.stages):
        if stage.name in [s.name for s in space.stages[:i]]:
            errors.append(
                f"stages[{i}].name: stage {stage.name!r} is defined twice; stage names must be unique"
            )
        if (stage.epochs is None) == (stage.steps is None):
            errors.append(f"stages[{i}]: give exactly one of epochs or steps")
        for ref in stage.train:
            if ref != "*" and ref not in names:
                errors.append(f"stages[{i}].train: unknown tower {ref!r}; towers are: {allowed} (or '*')")
        for ref, mult in stage.lr_multipliers.items():
            if ref != "*" and ref not in names:
                errors.append(
                    f"stages[{i}].lr_multipliers: unknown tower {ref!r}; towers are: {allowed} (or '*')"
                )
            low = _knob_low(mult)
            if low is not None and low < 0:
                errors.append(f"stages[{i}].lr_multipliers.{ref}: multipliers must be >= 0, got {low:g}")
    for i, stage in enumerate(space.stages):
        trained = [
            t.name for t in space.towers if ("*" in stage.train or t.name in stage.train) and not t.frozen
        ]
        if not trained:
            why = "it lists no tower" if not stage.train else "every tower it names is frozen"
            errors.append(
                f"stages[{i}].train: trains no tower ({why}); every step would fail with "
                "'does not require grad'; name a tower that is not frozen, or '*'"
            )
    for key in space.extras:
        if len(key) > MAX_NAME_LENGTH:
            errors.append(
                f"extras.{key[:20]}...: names are at most {MAX_NAME_LENGTH} characters, got {len(key)}"
            )
    errors.extend(_warmup_errors(space))
    if space.schedule.warmup_steps is not None and space.schedule.warmup_fraction is not None:
        errors.append("schedule: give warmup_steps or warmup_fraction, not both")
    return errors


def _warmup_errors(space: SearchSpace) -> list[str]:
    """A warmup that cannot fit the schedule it warms (the scheduler would cut it silently).

    Known only when every stage's length is in steps. A schedule runs from step 0 over all of
    training, and a stage with ``schedule: restart`` starts a new one over the rest of training
    (warmup included), so the shortest horizon is the one that counts.
    """
    warmup = space.schedule.warmup_steps
    if warmup is None or not all(s.steps is not None for s in space.stages):
        return []
    lengths = [_knob_low(s.steps) or 0 for s in space.stages]
    horizons = [(sum(lengths), f"{sum(lengths):g} steps over {len(space.stages)} stage(s)")]
    for i, stage in enumerate(space.stages):
        if i > 0 and stage.schedule == "restart":
            rest = sum(lengths[i:])
            horizons.append((rest, f"{rest:g} steps from stage {stage.name!r}, whose schedule restarts"))
    longest = _knob_high(warmup)
    total, what = min(horizons, key=lambda h: h[0])
    if longest is not None and longest >= total:
        return [
            f"schedule.warmup_steps: {longest:g} is not shorter than training ({what}); "
            "use fewer warmup steps"
        ]
    return []


def space_warnings(space: SearchSpace) -> list[str]:
    """Things that may go wrong but cannot be known from the space alone (one line each).

    A ``warmup_steps`` with stage lengths in epochs: training's length depends on the
    objective's steps per epoch, so a warmup longer than training is found (and cut to
    training's length) only when a trial runs.
    """
    warmup = _knob_high(space.schedule.warmup_steps)
    if warmup is None or all(s.steps is not None for s in space.stages):
        return []
    return [
        f"schedule.warmup_steps: stage lengths in epochs make training's length known only when a "
        f"trial runs; a warmup of {warmup:g} steps longer than training is cut to training's length "
        "(give stages in steps, or use warmup_fraction)"
    ]


#: The one field that may be infinite: ``clip.norm_type: .inf`` is the max-norm.
_INFINITE_OK = "clip.norm_type"


def _may_be_infinite(path: str, value: float) -> bool:
    if value != math.inf:
        return False
    for suffix in (".value", ".choices"):
        if suffix in path:
            path = path[: path.rindex(suffix)]
    return path.endswith(_INFINITE_OK)


def nonfinite_errors(data: Any, path: str = "") -> list[str]:
    """One line per non-finite number (``.inf``, ``-.inf``, ``.nan``) in a space, raw or validated.

    Every number of a space must be finite (an LR, a bound, a multiplier, a clip value...), except
    ``clip.norm_type``, which may be ``.inf`` (the max-norm). Walks dicts, lists and Pydantic models.
    """
    errors: list[str] = []
    if isinstance(data, float) and not math.isfinite(data) and not _may_be_infinite(path, data):
        errors.append(f"{path or '(top level)'}: {data} is not a finite number; give a finite value")
    elif isinstance(data, dict):
        for key, value in data.items():
            errors += nonfinite_errors(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            errors += nonfinite_errors(value, f"{path}[{i}]")
    elif isinstance(data, BaseModel):
        for name in type(data).model_fields:
            errors += nonfinite_errors(getattr(data, name), f"{path}.{name}" if path else name)
    return errors


# --- loading ---------------------------------------------------------------------------------
def format_validation_error(exc: ValidationError, data: Any = None) -> list[str]:
    """Turn a Pydantic error into one ``path: message`` line per problem (no Pydantic noise)."""
    lines: list[str] = []
    for err in exc.errors():
        parts: list[str] = []
        loc = list(err["loc"])
        skip_next = False
        for seg in loc:
            if skip_next:
                skip_next = False
                continue
            if seg == "__param__":
                skip_next = True  # the discriminator value (float/int/...) follows the tag
                continue
            if seg in TAGS:
                continue
            if isinstance(seg, int):
                parts.append(f"[{seg}]")
            else:
                parts.append(("." if parts else "") + str(seg))
        path = "".join(parts)
        msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key; check its spelling against the documented keys"
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown parameter type {err['input'].get('type')!r}; allowed: float, int, categorical, fixed"
        elif err["type"] == "union_tag_not_found":
            msg = "a parameter needs `type:` (float, int, categorical or fixed)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif (
            err["type"] in ("float_parsing", "int_parsing")
            and isinstance(err.get("input"), str)
            and err["input"].strip().lower() in ("none", "nil")
        ):
            msg = f"{err['input']!r} is text in YAML; write null (unquoted) for no value"
        elif err["type"] == "string_too_long":
            msg = (
                f"at most {err['ctx']['max_length']} characters, got {len(err['input'])}; use a shorter name"
            )
        for line in msg.splitlines():
            lines.append(f"{path}: {line}" if path else line)
    return lines


def parse_space(data: Any, *, source: str | None = None) -> SearchSpace:
    """Validate a space given as a dict (already parsed YAML).

    Raises:
        SpaceError: with one line per problem, each naming the YAML path.
    """
    from gradsweep.spaces.sampling import probe_errors  # local import: sampling depends on this module

    if not isinstance(data, dict):
        raise SpaceError([f"a search space must be a YAML mapping, got {type(data).__name__}"], source)
    errors = nonfinite_errors(data)  # before Pydantic, whose messages about NaN mislead
    if errors:
        raise SpaceError(errors, source)
    try:
        space = SearchSpace.model_validate(data)
    except ValidationError as exc:
        raise SpaceError(format_validation_error(exc, data), source) from None
    errors = nonfinite_errors(space) or probe_errors(space)  # "inf" as text parses as a float
    if errors:
        raise SpaceError(errors, source)
    return space


def load_space(path_or_preset: str | Path) -> SearchSpace:
    """Load and validate a search space from a YAML file or a preset name (``spaces/presets/``).

    Raises:
        SpaceError: the file is missing, is not YAML, or does not validate.
    """
    from gradsweep.spaces.presets import list_presets, preset_path

    text_path = Path(path_or_preset)
    if not text_path.exists():
        name = str(path_or_preset)
        if name in list_presets():
            text_path = preset_path(name)
        else:
            raise SpaceError(
                [f"no such file {name!r} and no preset of that name; presets: {', '.join(list_presets())}"]
            )
    source = str(path_or_preset)
    try:
        data = read_yaml_file(text_path)
    except YamlFileError as exc:
        raise SpaceError([str(exc)], source) from None
    return parse_space(data, source=source)


__all__ = [
    "MAX_NAME_LENGTH",
    "Param",
    "SearchSpace",
    "SpaceError",
    "format_validation_error",
    "load_space",
    "nonfinite_errors",
    "parse_space",
    "space_warnings",
]
