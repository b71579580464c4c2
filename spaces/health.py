"""The ``health:`` section of a search space: gradient-health rules and their thresholds.

Defaults come from the seeds: text-tower grad norm under 1e-6 (seed 000), AdamW decay-to-grad
ratio over 2 (seed 000), explosion at 5x the clip max-norm (seed 004), non-finite loss or grads
unstable at once (seeds 003, 004).

Example YAML::

    health:
      check_every: 25
      vanishing: {threshold: 1.0e-7, tower_floors: {text_encoder: 1.0e-6}, sustain: 5}
      exploding: {threshold: 100.0, clip_multiple: 5.0, sustain: 3}
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True


class NonFiniteRule(_Rule):
    """Non-finite loss or gradients: unstable after ``tolerance`` + 1 non-finite steps in a check window.

    With fp16 AMP a few skipped steps are normal GradScaler behaviour; those count under
    ``scaler_overflow`` instead, unless the loss itself is non-finite.
    """

    tolerance: int = Field(default=0, ge=0)


class VanishingRule(_Rule):
    threshold: float = Field(default=1e-7, ge=0.0)
    tower_floors: dict[str, float] = Field(default_factory=dict)
    sustain: int = Field(default=5, ge=1)


class ExplodingRule(_Rule):
    threshold: float = Field(default=1e3, gt=0.0)
    clip_multiple: float = Field(default=5.0, gt=1.0)
    sustain: int = Field(default=3, ge=1)


class DecayDominanceRule(_Rule):
    """AdamW decay-to-gradient ratio ``lr*wd*||w|| / ||gradient-driven update||``."""

    ratio: float = Field(default=2.0, gt=0.0)
    sustain: int = Field(default=5, ge=1)


class ScalerOverflowRule(_Rule):
    """GradScaler overflow storm: too many skipped steps in a row, or the scale collapsing."""

    max_streak: int = Field(default=20, ge=1)
    min_scale: float = Field(default=1.0, gt=0.0)


class LossSpikeRule(_Rule):
    z_score: float = Field(default=8.0, gt=0.0)
    window: int = Field(default=50, ge=5)
    sustain: int = Field(default=2, ge=1)


class LossStallRule(_Rule):
    """No relative improvement of the smoothed loss by ``min_delta`` over ``window`` checks."""

    enabled: bool = False
    window: int = Field(default=20, ge=2)
    min_delta: float = Field(default=1e-3, ge=0.0)


class HealthConfig(BaseModel):
    """Gradient-health monitoring and pruning settings for one trial."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # 25 by measurement: under 1% of a step on CPU with a 291-tensor model, flat beyond (BENCHMARKS.md)
    check_every: int = Field(default=25, ge=1, description="optimizer steps between host reads")
    prune_on_unstable: bool = True
    warmup_checks: int = Field(default=0, ge=0, description="checks before sustained rules may fire")
    history: int = Field(default=50, ge=1, description="summaries kept in the trial's user attrs")
    nonfinite: NonFiniteRule = NonFiniteRule()
    vanishing: VanishingRule = VanishingRule()
    exploding: ExplodingRule = ExplodingRule()
    decay_dominance: DecayDominanceRule = DecayDominanceRule()
    scaler_overflow: ScalerOverflowRule = ScalerOverflowRule()
    loss_spike: LossSpikeRule = LossSpikeRule()
    loss_stall: LossStallRule = LossStallRule()
