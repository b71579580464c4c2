"""Parameter kinds of a search space: ``float``, ``int``, ``categorical`` and ``fixed``.

Anywhere a search space holds a value, it may hold a plain scalar (a fixed value) or one of
these knobs, told apart by their ``type`` tag (a Pydantic discriminated union with
``extra="forbid"``). Tower learning rates may also be tied to another tower's LR
(:class:`TieParam`).

Example:
    >>> FloatParam(type="float", low=1e-5, high=1e-2, log=True).to_distribution()
    FloatDistribution(high=0.01, log=True, low=1e-05, step=None)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

Scalar = bool | int | float | str
#: A parameter's value: a scalar, or None (YAML ``null``) for "none" where a setting allows it.
ParamValue = Scalar | None


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_step(step: float | None, info: ValidationInfo) -> float | None:
    """A step wider than ``high - low`` leaves one value (Optuna pins the knob to ``low``)."""
    low, high = info.data.get("low"), info.data.get("high")
    if step is None or low is None or high is None or not low < high:
        return step
    if step > (high - low) * (1 + 1e-9):  # float bounds: 0.3 - 0.1 < 0.2
        raise ValueError(
            f"step {step:g} is larger than the range high - low = {high - low:g}, so the knob could "
            f"only take low ({low:g}); use a step of at most {high - low:g}, or a plain value"
        )
    return step


class FloatParam(_Param):
    """A float searched in ``[low, high]``, on a log scale if ``log``, in steps of ``step`` if given."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0.0)

    _step_fits = field_validator("step")(_check_step)

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        if not self.low < self.high:
            raise ValueError(
                f"low ({self.low:g}) must be < high ({self.high:g}); use a plain value for a fixed one"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got low={self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined; drop one of them")
        return self

    def to_distribution(self) -> BaseDistribution:
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def probe_values(self) -> list[Scalar]:
        return [self.low, self.high]

    def describe(self) -> str:
        scale = "log" if self.log else "linear"
        step = f", step {self.step:g}" if self.step else ""
        return f"float [{self.low:g}, {self.high:g}] {scale}{step}"


class IntParam(_Param):
    """An integer searched in ``[low, high]`` (inclusive)."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, ge=1)

    _step_fits = field_validator("step")(_check_step)

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        if not self.low < self.high:
            raise ValueError(
                f"low ({self.low}) must be < high ({self.high}); use a plain value for a fixed one"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low >= 1, got low={self.low}")
        if self.log and self.step != 1:
            raise ValueError("log and step cannot be combined; drop one of them")
        return self

    def to_distribution(self) -> BaseDistribution:
        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def probe_values(self) -> list[Scalar]:
        return [self.low, self.high]

    def describe(self) -> str:
        return f"int [{self.low}, {self.high}] {'log' if self.log else 'linear'}"


class CategoricalParam(_Param):
    """One of ``choices``: scalars, or ``null`` for "none" where the setting allows it.

    ``clip: {max_norm: {type: categorical, choices: [null, 1.0]}}`` searches "no clipping"
    against a max-norm of 1; a setting that needs a value refuses ``null`` when the space is
    validated (its probe), naming the setting.
    """

    type: Literal["categorical"]
    choices: list[ParamValue]

    @model_validator(mode="after")
    def _check(self) -> CategoricalParam:
        if not self.choices:
            raise ValueError("choices must list at least one value")
        dupes = _colliding(self.choices)
        if dupes:
            raise ValueError(
                f"choices repeat {', '.join(dupes)} (equal values, or equal once written as text, "
                "are one choice to the study store); give each choice once"
            )
        return self

    def to_distribution(self) -> BaseDistribution:
        return CategoricalDistribution(self.choices)

    def probe_values(self) -> list[ParamValue]:
        return list(self.choices)

    def describe(self) -> str:
        return "one of " + ", ".join("null" if c is None else str(c) for c in self.choices)


def _colliding(choices: list[ParamValue]) -> list[str]:
    """The choices that collide with another one: ``==`` (``1``, ``True``, ``1.0``) or the same text (``16``, ``"16"``).

    Optuna keeps a categorical value as its index, but compares choices with ``==`` and a
    YAML or JSON export writes ``16`` and ``"16"`` alike, so both kinds of twins are one choice.
    """
    out: list[str] = []
    for i, c in enumerate(choices):
        for other in choices[:i]:
            if c == other or str(c) == str(other):
                out.append(f"{other!r} and {c!r}" if repr(c) != repr(other) else repr(c))
                break
    return out


class FixedParam(_Param):
    """A fixed value written as a knob (same as writing the plain value)."""

    type: Literal["fixed"]
    value: Scalar

    def probe_values(self) -> list[Scalar]:
        return [self.value]

    def describe(self) -> str:
        return f"fixed {self.value}"


Param = Annotated[FloatParam | IntParam | CategoricalParam | FixedParam, Field(discriminator="type")]
SearchedParam = FloatParam | IntParam | CategoricalParam


class TieParam(_Param):
    """A tower LR tied to another tower's: ``lr = <tie>.lr * ratio`` (ratio may be searched)."""

    tie: str
    ratio: Annotated[
        Annotated[Param, Tag("__param__")] | Annotated[float, Tag("__value__")],
        Discriminator(lambda v: "__param__" if isinstance(v, dict | BaseModel) else "__value__"),
    ] = 1.0


def _knob_tag(value: Any) -> str:
    if isinstance(value, dict | BaseModel):
        if (isinstance(value, dict) and "tie" in value) or isinstance(value, TieParam):
            return "__tie__"
        return "__param__"
    return "__value__"


Knob = Annotated[
    Annotated[Param, Tag("__param__")] | Annotated[Scalar, Tag("__value__")],
    Discriminator(_knob_tag),
]
"""A plain scalar or a parameter knob."""

LrKnob = Annotated[
    Annotated[Param, Tag("__param__")]
    | Annotated[TieParam, Tag("__tie__")]
    | Annotated[float, Tag("__value__")],
    Discriminator(_knob_tag),
]
"""A tower LR: a plain float, a knob, or a tie to another tower."""

TAGS = frozenset({"__param__", "__value__", "__tie__"})
