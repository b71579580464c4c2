"""The ``health:`` section of a search space: gradient-health rules and their thresholds.

The defaults are scale-free: every threshold is relative to what the run itself measured (its loss
at the start, its best loss so far, each tower's gradient norm over its first steps, the robust
spread of its recent losses), so a model nobody tuned them for is judged on its own terms.
Absolute numbers (``exploding.threshold``, ``vanishing.tower_floors``) remain as explicit
overrides. The relative defaults were chosen on the health-transfer benchmark
(``benchmarks/health_transfer.py``, BENCHMARKS.md "Health transfer").

Rules are *hard* (``nonfinite``, ``scaler_overflow``, ``divergence``, and ``dead``: no gradient
reaching any tower, found by the vanishing rule; they prune at once) or
*soft* (the others): a soft rule's sustained finding is an ``unstable`` flag that prunes only when
``soft_prune`` allows it; ``calibrated`` (the default) lets a soft rule prune once the sweep's own
finished trials show that trials it flagged rarely end in the top quartile
(``gradsweep.search.calibration``).

Example YAML::

    health:
      check_every: 25
      exploding: {factor: 1000.0, sustain: 3}             # relative to the tower's first steps
      exploding: {threshold: 100.0}                        # or an absolute line as an override
      vanishing: {tower_floors: {text_encoder: 1.0e-6}}
      soft_prune: calibrated                               # or always | never
"""

from __future__ import annotations

from typing import Literal

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
    """A tower's grad norm under ``ratio`` x its own early norm (or an absolute floor), sustained.

    Every training tower under ``threshold`` at once (no gradient reaches the model) for
    ``dead_sustain`` checks is the hard finding ``dead``: exactly zero gradients need less evidence
    than small ones.
    """

    ratio: float = Field(default=1e-4, ge=0.0, lt=1.0)
    threshold: float = Field(default=1e-12, ge=0.0, description="absolute floor for every tower")
    tower_floors: dict[str, float] = Field(default_factory=dict)
    sustain: int = Field(default=5, ge=1)
    dead_sustain: int = Field(default=3, ge=1)


class ExplodingRule(_Rule):
    """A tower's mean pre-clip grad norm over ``factor`` x its early norm (the smallest of its first
    steps' norms), or over the absolute ``threshold`` when one is set, sustained.

    ``clip_multiple`` (off by default) warns when the pre-clip norm sits over that multiple of the
    clip ``max_norm`` (seed 004's early sign); it never prunes: clipping exists to absorb such norms,
    and runs that clip at every step (as many transformers do) would warn all the time.
    """

    factor: float = Field(default=1000.0, gt=1.0)
    threshold: float | None = Field(default=None, gt=0.0)
    clip_multiple: float | None = Field(default=None, gt=1.0)
    sustain: int = Field(default=3, ge=1)


class DivergenceRule(_Rule):
    """The loss level (median loss of a check window) above the run's starting loss, sustained.

    The starting loss is the run's first finite loss (the model as initialized, the same for every
    learning rate), with the next four averaged in (a median) when they are within 1.5x of it:
    one batch alone is a noisy start, and a learning rate far past stable can blow the loss up from
    the second step on. A level that has come back down by more than ``recovery`` of its
    excursion above the start (from the highest level since it crossed the line, on a log scale
    for positive losses) is recovering and only warns, for at most ``2 x sustain`` checks over the
    line: a high learning rate's early "catapult"
    (the loss jumps 2-14x, then falls below its start within four checks) ended in the top
    quartile in the health-transfer bank. The defaults (margin 0.1, sustain 4, recovery 0.2) are
    measured there (BENCHMARKS.md "Health transfer"). ``margin`` is relative: the level must exceed
    ``start + margin * |start|``. A hard rule: a run whose loss is worse than its untrained model's
    for ``sustain`` checks is pruned at once.
    """

    margin: float = Field(default=0.1, ge=0.0)
    sustain: int = Field(default=4, ge=1)
    recovery: float = Field(default=0.2, gt=0.0, le=1.0, description="1.0: no recovery guard")


class LossRegressRule(_Rule):
    """The loss level gave back more than ``fraction`` of the progress made from the start to the
    best level so far, sustained (a soft rule). Judged once that progress is at least
    ``min_progress`` x the starting loss's size (below it, the gap is batch noise)."""

    fraction: float = Field(default=0.5, gt=0.0)
    min_progress: float = Field(default=0.05, ge=0.0)
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


class PopulationRule(_Rule):
    """A tower's grad norm over ``factor`` x the largest of the sweep's finished healthy trials at the
    same report step, for ``sustain`` reports, with at least ``min_trials`` of them there (a soft
    rule the pruner runs: only the sweep sees the other trials; ``gradsweep.search.population``)."""

    factor: float = Field(default=10.0, gt=1.0)
    min_trials: int = Field(default=5, ge=1)
    sustain: int = Field(default=2, ge=1)


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
    divergence: DivergenceRule = DivergenceRule()
    loss_regress: LossRegressRule = LossRegressRule()
    population: PopulationRule = PopulationRule()
    soft_prune: Literal["calibrated", "always", "never"] = Field(
        default="calibrated",
        description="when a soft rule's unstable flag prunes: once the sweep's evidence allows, always, never",
    )
    false_prune_rate: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="calibrated: bound on flagged trials ending in the top quartile",
    )
