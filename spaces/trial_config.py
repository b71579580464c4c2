"""The resolved, JSON-able configuration one trial trains with.

A :class:`TrialConfig` holds concrete values only (no ranges): it is what the search
space resolves a sampled parameter set into, what an objective receives, what
``gradsweep export`` writes and what ``gradsweep try --config`` reads back.

Example:
    >>> cfg = TrialConfig(objective="moco", towers=[TowerConfig(name="all", patterns=["*"], lr=1e-3)])
    >>> TrialConfig.from_yaml(cfg.to_yaml()) == cfg
    True
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gradsweep.spaces.health import HealthConfig
from gradsweep.spaces.yaml_io import load_yaml_text, read_text_file

Scalar = bool | int | float | str


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleKind(StrEnum):
    COSINE = "cosine"
    ONECYCLE = "onecycle"
    CONSTANT = "constant"
    PLATEAU = "plateau"


class AmpDtype(StrEnum):
    NONE = "none"
    BF16 = "bf16"
    FP16 = "fp16"


class NoDecayRule(_Frozen):
    """Which parameters of a tower get ``weight_decay = 0``.

    Attributes:
        bias: every parameter whose name ends in ``bias``.
        norm: every parameter of a normalisation layer (LayerNorm, BatchNorm, GroupNorm, RMSNorm).
        embedding: every ``nn.Embedding`` weight.
        scalars: every parameter with fewer than two dimensions that is not covered above
            (learnable temperatures, gains).
        names: extra glob patterns of parameter names that never decay.
    """

    bias: bool = True
    norm: bool = True
    embedding: bool = True
    scalars: bool = True
    names: tuple[str, ...] = ()


class TowerConfig(_Frozen):
    """One tower (parameter group) with its resolved optimiser settings."""

    name: str
    patterns: tuple[str, ...] = Field(min_length=1)
    pattern_kind: Literal["glob", "regex"] = "glob"
    lr: float = Field(ge=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    betas: tuple[float, float] | None = None
    eps: float | None = Field(default=None, gt=0.0)
    no_decay: NoDecayRule = NoDecayRule()
    frozen: bool = False
    clip_max_norm: float | None = Field(default=None, gt=0.0)


class OptimizerConfig(_Frozen):
    name: Literal["adamw", "sgd"] = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(default=1e-8, gt=0.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    nesterov: bool = False


class OneCycleConfig(_Frozen):
    pct_start: float = Field(default=0.3, gt=0.0, lt=1.0)
    div_factor: float = Field(default=25.0, gt=0.0)
    final_div_factor: float = Field(default=1e4, gt=0.0)


class PlateauConfig(_Frozen):
    factor: float = Field(default=0.1, gt=0.0, lt=1.0)
    patience: int = Field(default=2, ge=0)
    threshold: float = Field(default=1e-4, ge=0.0)
    mode: Literal["min", "max"] = "max"


class ScheduleConfig(_Frozen):
    """LR schedule shared by every tower (each tower keeps its own base LR).

    ``lr_scaling="linear"`` applies the MoCo/Goyal rule ``lr = base_lr * batch / reference_batch``,
    where ``batch`` is the effective batch of one optimizer step (:attr:`TrialConfig.effective_batch`:
    ``batch_size * accumulation_steps``). Warmup and decay count optimizer steps, not micro-batches.
    Warmup is given as ``warmup_steps`` or ``warmup_fraction`` of the schedule's horizon, not both.
    """

    kind: ScheduleKind = ScheduleKind.COSINE
    warmup_steps: int | None = Field(default=None, ge=0)
    warmup_fraction: float | None = Field(default=None, ge=0.0, lt=1.0)
    min_lr_ratio: float = Field(default=0.0, ge=0.0, le=1.0)
    lr_scaling: Literal["none", "linear"] = "none"
    reference_batch: int = Field(default=256, ge=1)
    onecycle: OneCycleConfig = OneCycleConfig()
    plateau: PlateauConfig = PlateauConfig()

    @model_validator(mode="after")
    def _one_warmup(self) -> ScheduleConfig:
        if self.warmup_steps is not None and self.warmup_fraction is not None:
            raise ValueError("give warmup_steps or warmup_fraction, not both")
        return self


class ClipConfig(_Frozen):
    """Global gradient clipping (per-tower limits live on each tower)."""

    max_norm: float | None = Field(default=None, gt=0.0)
    norm_type: float = Field(default=2.0, gt=0.0)


class ScalerConfig(_Frozen):
    """``torch.amp.GradScaler`` settings; used only when ``amp.dtype == "fp16"``."""

    init_scale: float = Field(default=2.0**16, gt=0.0)
    growth_factor: float = Field(default=2.0, gt=1.0)
    backoff_factor: float = Field(default=0.5, gt=0.0, lt=1.0)
    growth_interval: int = Field(default=2000, ge=1)


class AmpConfig(_Frozen):
    dtype: AmpDtype = AmpDtype.NONE
    scaler: ScalerConfig = ScalerConfig()


class StageConfig(_Frozen):
    """One training stage.

    Attributes:
        name: label shown in reports.
        epochs / steps: the stage's length (exactly one of them).
        train: towers that receive updates; ``["*"]`` means all non-frozen towers.
        lr_multipliers: per-tower LR multiplier for this stage; the key ``"*"`` applies to
            every tower without its own entry.
        schedule: ``continue`` keeps the LR schedule's progress across the stage boundary;
            ``restart`` starts a fresh schedule over the stage (seed 002's rebuilt OneCycle).
    """

    name: str
    epochs: int | None = Field(default=None, ge=1)
    steps: int | None = Field(default=None, ge=1)
    train: tuple[str, ...] = ("*",)
    lr_multipliers: dict[str, float] = Field(default_factory=dict)
    schedule: Literal["continue", "restart"] = "continue"

    @model_validator(mode="after")
    def _one_length(self) -> StageConfig:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(f"stage {self.name!r}: give exactly one of epochs or steps")
        if any(m < 0 for m in self.lr_multipliers.values()):
            raise ValueError(f"stage {self.name!r}: lr_multipliers must be >= 0")
        return self

    def multiplier(self, tower: str) -> float:
        return self.lr_multipliers.get(tower, self.lr_multipliers.get("*", 1.0))

    def trains(self, tower: str) -> bool:
        return "*" in self.train or tower in self.train


class MetricConfig(_Frozen):
    name: str
    direction: Literal["maximize", "minimize"] = "maximize"


class TrialConfig(_Frozen):
    """Everything one training run needs, with concrete values.

    ``params`` keeps the flat sampled values (Optuna parameter name -> value) the config
    was resolved from, so a config can be enqueued into a study as a baseline.
    ``provenance`` is filled by export (study, trial number, value, version, space).
    ``batch_size`` is the micro-batch of one forward/backward on one worker; ``accumulation_steps``
    micro-batches on each of ``workers`` DDP workers make one optimizer step (:attr:`effective_batch`).
    ``workers`` is set by the engine from ``--workers-per-trial`` (1: a single process).
    """

    objective: str
    scale: Literal["tiny", "small", "full"] = "tiny"
    seed: int = 0
    metric: MetricConfig = MetricConfig(name="value")
    optimizer: OptimizerConfig = OptimizerConfig()
    batch_size: int = Field(default=64, ge=1)
    accumulation_steps: int = Field(default=1, ge=1)
    workers: int = Field(default=1, ge=1)
    towers: tuple[TowerConfig, ...] = Field(min_length=1)
    schedule: ScheduleConfig = ScheduleConfig()
    clip: ClipConfig = ClipConfig()
    amp: AmpConfig = AmpConfig()
    stages: tuple[StageConfig, ...] = (StageConfig(name="train", epochs=1),)
    extras: dict[str, Scalar] = Field(default_factory=dict)
    health: HealthConfig = HealthConfig()
    params: dict[str, Scalar | None] = Field(default_factory=dict)
    provenance: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _towers_consistent(self) -> TrialConfig:
        names = [t.name for t in self.towers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tower names must be unique, repeated: {', '.join(dupes)}")
        known = set(names)
        for stage in self.stages:
            for ref in (*stage.train, *stage.lr_multipliers):
                if ref != "*" and ref not in known:
                    raise ValueError(
                        f"stage {stage.name!r} names unknown tower {ref!r}; towers are: {', '.join(names)}"
                    )
        return self

    def tower(self, name: str) -> TowerConfig:
        for t in self.towers:
            if t.name == name:
                return t
        raise KeyError(f"no tower {name!r}; towers are: {', '.join(t.name for t in self.towers)}")

    @property
    def effective_batch(self) -> int:
        """Examples per optimizer step: ``batch_size * accumulation_steps * workers``.

        Example:
            >>> cfg = TrialConfig(objective="moco", batch_size=2, accumulation_steps=4, workers=2,
            ...                   towers=[TowerConfig(name="all", patterns=["*"], lr=1e-3)])
            >>> cfg.effective_batch
            16
        """
        return self.batch_size * self.accumulation_steps * self.workers

    @property
    def global_batch(self) -> int:
        """Examples in one forward/backward over all workers: ``batch_size * workers``."""
        return self.batch_size * self.workers

    def for_workers(self, workers: int) -> TrialConfig:
        """This config on ``workers`` DDP workers with the same global batch (``batch_size`` per worker).

        Example:
            >>> cfg = TrialConfig(objective="moco", batch_size=32, workers=2,
            ...                   towers=[TowerConfig(name="all", patterns=["*"], lr=1e-3)])
            >>> one = cfg.for_workers(1)
            >>> one.batch_size, one.workers, one.effective_batch == cfg.effective_batch
            (64, 1, True)
        """
        return self.model_copy(update={"workers": workers, "batch_size": self.global_batch // workers})

    def effective_lr(self, tower: str) -> float:
        """Base LR of ``tower`` after the batch-size scaling rule (before schedule and stage multipliers).

        ``lr_scaling: linear`` scales by :attr:`effective_batch` (the batch of one optimizer step,
        over all workers).
        """
        lr = self.tower(tower).lr
        if self.schedule.lr_scaling == "linear":
            lr = lr * self.effective_batch / self.schedule.reference_batch
        return lr

    def extra(self, name: str, default: Scalar | None = None) -> Any:
        return self.extras.get(name, default)

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, text: str) -> TrialConfig:
        return cls.model_validate(json.loads(text))

    @classmethod
    def from_yaml(cls, text: str) -> TrialConfig:
        return cls.model_validate(load_yaml_text(text))

    @classmethod
    def load(cls, path: str | Path) -> TrialConfig:
        """Read a TrialConfig from a ``.yaml``/``.yml``/``.json`` file (export writes these).

        Raises:
            gradsweep.spaces.yaml_io.YamlFileError: unreadable, not UTF-8, not valid YAML, or an alias bomb.
            pydantic.ValidationError: the data is not a TrialConfig.
        """
        text = read_text_file(path)
        data = json.loads(text) if str(path).endswith(".json") else load_yaml_text(text)
        if isinstance(data, dict) and "config" in data and "objective" not in data:
            data = data["config"]  # an export file with a top-level "config" key
        return cls.model_validate(data)
