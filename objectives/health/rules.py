"""Health rules: each reads the history of check summaries and returns verdicts with human reasons.

Rules and their thresholds come from :class:`gradsweep.spaces.health.HealthConfig`:

| rule | kind | unstable when | warning when |
|---|---|---|---|
| ``nonfinite`` | hard | more than ``tolerance`` non-finite loss steps (or non-finite gradient steps without an enabled GradScaler) in one window | never (it acts at once) |
| ``scaler_overflow`` | hard | GradScaler skipped more than ``max_streak`` steps in a row, or its scale fell under ``min_scale`` | never |
| ``divergence`` | hard | the loss level (window median) above the run's starting loss (its first loss, with the next four that stay near it) by more than ``margin`` x its size, for ``sustain`` checks, and not recovering (back down by over ``recovery`` of its excursion, for at most ``2 x sustain`` checks) | not yet sustained, or recovering |
| ``exploding`` | soft | a tower's (or the global) mean pre-clip grad norm over ``factor`` x its early norm (or over ``threshold`` when set), for ``sustain`` checks | not yet sustained, or (when ``clip_multiple`` is set) over that multiple of its clip ``max_norm`` |
| ``vanishing`` (``dead``) | soft (``dead``: hard) | every training tower's grad norm under ``threshold`` (1e-12: no gradient at all) for ``dead_sustain`` (3) checks is ``dead``; else a tower's grad norm under ``max(ratio x early norm, threshold, tower_floors[tower])`` for ``sustain`` checks | not yet sustained |
| ``decay_dominance`` | soft | a tower's AdamW decay-to-grad ratio over ``ratio`` for ``sustain`` checks | not yet sustained |
| ``loss_spike`` | soft | a robust loss z-score over ``z_score`` in ``sustain`` checks in a row | not yet sustained |
| ``loss_regress`` | soft | the loss level gave back more than ``fraction`` of the progress from the first loss to the best level, for ``sustain`` checks | not yet sustained |
| ``loss_stall`` | soft | (off by default) no relative improvement by ``min_delta`` over ``window`` checks | never |

A tower's *early norm* is the smallest positive finite pre-clip norm of its first
:data:`~gradsweep.objectives.health.judge.EARLY_STEPS` steps with gradients: the first is the
model as initialized, whatever the learning rate. A *hard* rule's ``unstable`` prunes at once; a
*soft* rule's ``unstable`` is a flag that prunes only as ``HealthConfig.soft_prune`` allows
(:mod:`gradsweep.search.calibration`).

Frozen towers (``TowerConfig.frozen``, or no gradients in the window) are never judged vanishing or
decay-dominated. Until ``warmup_checks`` checks have passed, sustained rules give at most WARNING.

Example:
    >>> from gradsweep.spaces.health import HealthConfig
    >>> from gradsweep.objectives.health.summary import CheckSummary, TowerSummary
    >>> s = CheckSummary(first_step=0, step=24, n_steps=25,
    ...                  towers={"text": TowerSummary(steps_with_grad=25, grad_norm_pre=3.1e-7)})
    >>> config = HealthConfig(vanishing={"tower_floors": {"text": 1e-6}})
    >>> [(str(r.verdict), r.reason) for r in evaluate([s], config, RuleContext())]
    [('warning', 'text grad norm 3.1e-07 < 1e-06 for 1 check (step 24)')]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gradsweep.objectives.health.stats import is_stalled
from gradsweep.objectives.health.summary import CheckSummary
from gradsweep.objectives.health.verdict import HARD_RULES, Verdict
from gradsweep.spaces.health import HealthConfig


@dataclass(frozen=True)
class RuleResult:
    """One rule's finding: a verdict, the rule's name and one human line."""

    verdict: Verdict
    rule: str
    reason: str

    @property
    def hard(self) -> bool:
        """Whether the rule prunes at once (:data:`HARD_RULES`) rather than flagging."""
        return self.rule in HARD_RULES


@dataclass(frozen=True)
class RuleContext:
    """What the rules know besides the summaries.

    Attributes:
        tower_clip: per-tower clip ``max_norm`` (``None`` = no per-tower clipping).
        global_clip: global clip ``max_norm`` or ``None``.
        frozen: towers configured as frozen (never vanishing).
        scaler_enabled: an enabled GradScaler turns non-finite gradients into skipped steps.
        checks_done: checks so far including the current one (for ``warmup_checks``).
    """

    tower_clip: dict[str, float | None] = field(default_factory=dict)
    global_clip: float | None = None
    frozen: frozenset[str] = frozenset()
    scaler_enabled: bool = False
    checks_done: int = 1


def _g(x: float) -> str:
    return f"{x:.2g}"


def _span(count: int, first: CheckSummary, last: CheckSummary) -> str:
    if count == 1:
        return f"for 1 check (step {last.step})"
    return f"for {count} checks (steps {first.step}-{last.step})"


def _sustained(
    history: Sequence[CheckSummary], violation: Callable[[CheckSummary], str | None]
) -> tuple[int, CheckSummary | None, str | None]:
    """Checks in a row (ending now) for which ``violation`` returns a description."""
    count, first, latest = 0, None, None
    for s in reversed(history):
        text = violation(s)
        if text is None:
            break
        count, first = count + 1, s
        latest = latest if latest is not None else text
    return count, first, latest


def _sustained_result(
    rule: str,
    history: Sequence[CheckSummary],
    violation: Callable[[CheckSummary], str | None],
    sustain: int,
    config: HealthConfig,
    ctx: RuleContext,
) -> list[RuleResult]:
    return _run_result(rule, history, _sustained(history, violation), sustain, config, ctx)


def _run_result(
    rule: str,
    history: Sequence[CheckSummary],
    run: tuple[int, CheckSummary | None, str | None],
    sustain: int,
    config: HealthConfig,
    ctx: RuleContext,
) -> list[RuleResult]:
    """:func:`_sustained_result` for a run :func:`_sustained` already measured."""
    count, first, text = run
    if count == 0 or first is None or text is None:
        return []
    fire = count >= sustain and ctx.checks_done > config.warmup_checks
    verdict = Verdict.UNSTABLE if fire else Verdict.WARNING
    return [RuleResult(verdict, rule, f"{text} {_span(count, first, history[-1])}")]


def nonfinite_rule(
    history: Sequence[CheckSummary], config: HealthConfig, ctx: RuleContext
) -> list[RuleResult]:
    """Non-finite loss (or gradients without a GradScaler) beyond ``tolerance`` steps: unstable at once."""
    s = history[-1]
    grad_steps = 0 if ctx.scaler_enabled else s.nonfinite_grad_steps
    if s.nonfinite_loss_steps + grad_steps <= config.nonfinite.tolerance:
        return []
    parts = []
    if s.nonfinite_loss_steps:
        parts.append(
            f"non-finite loss at step {s.first_nonfinite_loss_step} ({s.nonfinite_loss_steps} of {s.n_steps} steps)"
        )
    if grad_steps:
        bad = [t for t, ts in s.towers.items() if ts.nonfinite_steps] or ["global"]
        parts.append(
            f"non-finite gradients in {', '.join(bad)} at step {s.first_nonfinite_grad_step} "
            f"({grad_steps} of {s.n_steps} steps)"
        )
    return [RuleResult(Verdict.UNSTABLE, "nonfinite", "; ".join(parts))]


def exploding_rule(
    history: Sequence[CheckSummary], config: HealthConfig, ctx: RuleContext
) -> list[RuleResult]:
    """Pre-clip grad norm over ``factor`` x the tower's early norm, or over the absolute
    ``threshold`` when one is set (sustained: unstable); over ``clip_multiple`` x the clip max-norm
    is a warning only (clipping exists to absorb such norms, seed 004's early warning)."""
    rule = config.exploding

    def over(
        name: str, value_of: Callable[[CheckSummary], float], bound_of: Callable[[CheckSummary], float]
    ) -> Callable[[CheckSummary], str | None]:
        def violation(s: CheckSummary) -> str | None:
            v, (bound, why) = value_of(s), bound_of(s)
            if not (math.isfinite(v) and math.isfinite(bound) and v > bound):
                return None
            return f"{name} grad norm {_g(v)} > {_g(bound)}{why}"

        return violation

    def line(early_of: Callable[[CheckSummary], float]) -> Callable[[CheckSummary], tuple[float, str]]:
        if rule.threshold is not None:
            return lambda s: (rule.threshold, "")

        def relative(s: CheckSummary) -> tuple[float, str]:
            early = early_of(s)
            return rule.factor * early, f" ({rule.factor:g}x its early norm {_g(early)})"

        return relative

    def check(
        name: str,
        value_of: Callable[[CheckSummary], float],
        early_of: Callable[[CheckSummary], float],
        max_norm: float | None,
    ) -> list[RuleResult]:
        out = _sustained_result(
            "exploding", history, over(name, value_of, line(early_of)), rule.sustain, config, ctx
        )
        if out or max_norm is None or rule.clip_multiple is None:
            return out
        clip_line = rule.clip_multiple * max_norm
        why = f" ({rule.clip_multiple:g}x clip max_norm {max_norm:g})"
        soft = _sustained_result(
            "exploding", history, over(name, value_of, lambda s: (clip_line, why)), rule.sustain, config, ctx
        )
        return [RuleResult(Verdict.WARNING, r.rule, r.reason) for r in soft]

    def tower_early(s: CheckSummary, towers: Sequence[str]) -> float:
        """The global early norm: the towers' early norms combined (L2)."""
        parts = [s.towers[t].early_norm for t in towers if t in s.towers]
        parts = [x for x in parts if math.isfinite(x)]
        return math.sqrt(sum(x * x for x in parts)) if parts else math.nan

    out: list[RuleResult] = []
    towers = list(history[-1].towers)
    for tower in towers:
        out += check(
            tower,
            lambda s, t=tower: s.towers[t].grad_norm_pre if t in s.towers else math.nan,
            lambda s, t=tower: s.towers[t].early_norm if t in s.towers else math.nan,
            ctx.tower_clip.get(tower),
        )
    if not out:  # a tower explosion already explains the global one
        out += check(
            "global", lambda s: s.grad_norm_global, lambda s: tower_early(s, towers), ctx.global_clip
        )
    return out


def vanishing_rule(
    history: Sequence[CheckSummary], config: HealthConfig, ctx: RuleContext
) -> list[RuleResult]:
    """A tower that has gradients but whose norm stays under ``ratio`` x its early norm (or an
    absolute floor), sustained. When every training tower sits under the absolute floor
    (``threshold``, 1e-12: no gradient reaches the model at all), the finding is ``dead``, a hard
    rule: such a run cannot learn any more."""
    rule = config.vanishing
    towers = [t for t in history[-1].towers if t not in ctx.frozen]

    def dead(s: CheckSummary) -> str | None:
        live = [s.towers[t] for t in towers if t in s.towers and s.towers[t].steps_with_grad > 0]
        if not live or not all(
            math.isfinite(ts.grad_norm_pre) and ts.grad_norm_pre < rule.threshold for ts in live
        ):
            return None
        return f"no gradient reaches the model: every tower's grad norm < {_g(rule.threshold)}"

    found = _sustained_result("dead", history, dead, rule.dead_sustain, config, ctx)
    if found:
        return found
    out: list[RuleResult] = []
    for tower in towers:
        absolute = max(rule.threshold, rule.tower_floors.get(tower, 0.0))

        def violation(s: CheckSummary, t: str = tower, absolute: float = absolute) -> str | None:
            ts = s.towers.get(t)
            if ts is None or ts.steps_with_grad == 0 or not math.isfinite(ts.grad_norm_pre):
                return None
            relative = rule.ratio * ts.early_norm if math.isfinite(ts.early_norm) else 0.0
            floor = max(absolute, relative)
            if not ts.grad_norm_pre < floor:
                return None
            why = f" ({rule.ratio:g}x its early norm {_g(ts.early_norm)})" if relative > absolute else ""
            return f"{t} grad norm {_g(ts.grad_norm_pre)} < {_g(floor)}{why}"

        out += _sustained_result("vanishing", history, violation, rule.sustain, config, ctx)
    return out


def decay_dominance_rule(
    history: Sequence[CheckSummary], config: HealthConfig, ctx: RuleContext
) -> list[RuleResult]:
    """AdamW decay step larger than ``ratio`` x the gradient-driven step, sustained."""
    rule = config.decay_dominance
    out: list[RuleResult] = []
    for tower in history[-1].towers:
        if tower in ctx.frozen:
            continue

        def violation(s: CheckSummary, t: str = tower) -> str | None:
            ts = s.towers.get(t)
            if ts is None or ts.steps_with_grad == 0 or math.isnan(ts.decay_to_grad):
                return None
            r = ts.decay_to_grad
            return f"{t} decay-to-grad ratio {_g(r)} > {_g(rule.ratio)}" if r > rule.ratio else None

        out += _sustained_result("decay_dominance", history, violation, rule.sustain, config, ctx)
    return out


def scaler_overflow_rule(
    history: Sequence[CheckSummary], config: HealthConfig, ctx: RuleContext
) -> list[RuleResult]:
    """GradScaler overflow storm: a long run of skipped steps, or the scale collapsing."""
    rule = config.scaler_overflow
    s = history[-1]
    if not ctx.scaler_enabled:
        return []
    out = []
    if s.overflow_streak > rule.max_streak:
        out.append(
            RuleResult(
                Verdict.UNSTABLE,
                "scaler_overflow",
                f"GradScaler skipped {s.overflow_streak} steps in a row > {rule.max_streak} (at step {s.step})",
            )
        )
    if math.isfinite(s.min_scale) and s.min_scale < rule.min_scale:
        out.append(
            RuleResult(
                Verdict.UNSTABLE,
                "scaler_overflow",
                f"GradScaler scale {_g(s.min_scale)} < {_g(rule.min_scale)} (steps {s.first_step}-{s.step})",
            )
        )
    return out


def loss_spike_rule(
    history: Sequence[CheckSummary], config: HealthConfig, ctx: RuleContext
) -> list[RuleResult]:
    """Robust z-score of a step loss against the running median/MAD, sustained over checks."""
    rule = config.loss_spike

    def violation(s: CheckSummary) -> str | None:
        z = s.loss_spike_z
        if not (z > rule.z_score):  # NaN-safe
            return None
        return f"loss spike {s.loss_spike_value:.4g} at step {s.loss_spike_step} (z {_g(z)} > {_g(rule.z_score)})"

    return _sustained_result("loss_spike", history, violation, rule.sustain, config, ctx)


def loss_stall_rule(
    history: Sequence[CheckSummary], config: HealthConfig, ctx: RuleContext
) -> list[RuleResult]:
    """No relative improvement of the per-check mean loss over ``window`` checks."""
    rule = config.loss_stall
    losses = [s.mean_loss for s in history]
    if ctx.checks_done <= config.warmup_checks or not is_stalled(losses, rule.window, rule.min_delta):
        return []
    finite = [x for x in losses if math.isfinite(x)]
    recent = history[-rule.window]
    return [
        RuleResult(
            Verdict.UNSTABLE,
            "loss_stall",
            f"loss stalled: best {min(finite[-rule.window :]):.4g} over {rule.window} checks is not "
            f"{rule.min_delta:g} below {min(finite[: -rule.window]):.4g} (steps {recent.step}-{history[-1].step})",
        )
    ]


def divergence_rule(
    history: Sequence[CheckSummary], config: HealthConfig, ctx: RuleContext
) -> list[RuleResult]:
    """The loss level above the run's starting loss (plus ``margin`` x its size) for ``sustain``
    checks, and not recovering: hard. A level that has come back down by more than ``recovery`` of
    its excursion's height (from the highest level of the checks above the line toward the start,
    on a log scale for positive losses) is recovering, as a high learning rate's early "catapult"
    does, and stays a warning, for at most ``2 x sustain`` checks over the line."""
    rule = config.divergence

    def over(s: CheckSummary) -> str | None:
        level, start = s.loss_level, s.loss_start
        if not (math.isfinite(level) and math.isfinite(start)):
            return None
        if not level > start + rule.margin * abs(start):
            return None
        return f"loss {level:.4g} above its start {start:.4g}" + (
            f" + {rule.margin:g}x" if rule.margin else ""
        )

    run = _sustained(history, over)
    found = _run_result("divergence", history, run, rule.sustain, config, ctx)
    if not found or found[0].verdict != Verdict.UNSTABLE or rule.recovery >= 1.0:
        return found
    count = run[0]
    excursion = [s.loss_level for s in list(history)[-count:]]
    start, peak, now = history[-1].loss_start, max(excursion), excursion[-1]
    # a catapult comes back under the line within a few checks; twice the sustain is no catapult
    if count < 2 * rule.sustain and _fell_back(start, peak, now, rule.recovery):
        reason = f"{found[0].reason}, recovering from {peak:.4g}"
        return [RuleResult(Verdict.WARNING, "divergence", reason)]
    return found


def _fell_back(start: float, peak: float, now: float, fraction: float) -> bool:
    """Whether ``now`` has come down from ``peak`` by more than ``fraction`` of the way back to
    ``start``, on a log scale when all three are positive (a loss that blew up a millionfold and fell
    by half has not recovered), else on a linear one."""
    if start > 0.0 and now > 0.0:
        start, peak, now = math.log(start), math.log(peak), math.log(now)
    return now < peak - fraction * (peak - start)


def loss_regress_rule(
    history: Sequence[CheckSummary], config: HealthConfig, ctx: RuleContext
) -> list[RuleResult]:
    """The loss level gave back more than ``fraction`` of the progress from the start to the best."""
    rule = config.loss_regress

    def violation(s: CheckSummary) -> str | None:
        level, start, best = s.loss_level, s.loss_start, s.loss_best
        if not (math.isfinite(level) and math.isfinite(start) and math.isfinite(best)):
            return None
        if not start - best > rule.min_progress * abs(start):
            return None
        given_back = (level - best) / (start - best)
        if not given_back > rule.fraction:
            return None
        return f"loss {level:.4g} gave back {given_back:.0%} of its progress from {start:.4g} to {best:.4g}"

    return _sustained_result("loss_regress", history, violation, rule.sustain, config, ctx)


#: (config attribute, rule) in evaluation order; a disabled rule is skipped.
RULES: tuple[
    tuple[str, Callable[[Sequence[CheckSummary], HealthConfig, RuleContext], list[RuleResult]]], ...
] = (
    ("nonfinite", nonfinite_rule),
    ("exploding", exploding_rule),
    ("vanishing", vanishing_rule),
    ("decay_dominance", decay_dominance_rule),
    ("scaler_overflow", scaler_overflow_rule),
    ("loss_spike", loss_spike_rule),
    ("loss_stall", loss_stall_rule),
    ("divergence", divergence_rule),
    ("loss_regress", loss_regress_rule),
)


def history_needed(config: HealthConfig) -> int:
    """How many summaries the rules look back over (the monitor keeps this many)."""
    return 1 + max(
        config.exploding.sustain,
        config.vanishing.sustain,
        config.vanishing.dead_sustain,
        config.decay_dominance.sustain,
        config.loss_spike.sustain,
        config.loss_stall.window + 1,
        config.divergence.sustain,
        config.loss_regress.sustain,
    )


def evaluate(history: Sequence[CheckSummary], config: HealthConfig, ctx: RuleContext) -> list[RuleResult]:
    """Run every enabled rule over ``history`` (oldest first, the current check last).

    Args:
        history: check summaries; must not be empty.
        config: the rules' thresholds.
        ctx: clip limits, frozen towers, scaler state, checks so far.

    Returns:
        The non-healthy findings, most severe first, hard rules before soft ones within a
        severity (stable otherwise): a prune's reason starts with the finding that pruned.

    Raises:
        ValueError: if ``history`` is empty.
    """
    if not history:
        raise ValueError("history must hold at least the current check summary")
    results: list[RuleResult] = []
    for attr, rule in RULES:
        if getattr(config, attr).enabled:
            results += rule(history, config, ctx)
    return sorted(results, key=lambda r: (-r.verdict.severity, not r.hard))
