"""Judge: the state that spans check windows, and the rules' verdict on each new window.

The monitor measures one window at a time (:func:`~gradsweep.objectives.health.summary.summarize_window`);
what the rules compare it with lives here: the recent checks, the loss-spike reference, the open
GradScaler skip streak, the run's starting loss and best loss level, and each tower's early norm.
The monitor and the offline replay of recorded runs (``benchmarks/health_transfer.py``'s
``judge_run``, one Judge per monitor of a run) feed raw summaries through the same :class:`Judge`,
so a replay decides exactly as the live run would have.

Example:
    >>> from gradsweep.spaces.health import HealthConfig
    >>> from gradsweep.objectives.health.summary import CheckSummary, TowerSummary
    >>> judge = Judge(HealthConfig(), RuleContext())
    >>> def window(step, loss):
    ...     tower = TowerSummary(steps_with_grad=1, grad_norm_pre=1.0, norms=[1.0])
    ...     return CheckSummary(first_step=step, step=step, n_steps=1, towers={"all": tower},
    ...                         losses=[loss], loss_steps=[step])
    >>> [str(worst(r.verdict for r in judge.judge(window(i, x)))) for i, x in enumerate([2.0, 9, 9, 9, 9, 1.0])]
    ['healthy', 'warning', 'warning', 'warning', 'unstable', 'unstable']

The loss ran over its start (2.0) for four checks: ``divergence``, a hard rule, whose verdict then
stands at every later check, though the loss came back down.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import replace
from typing import Any

from gradsweep.objectives.health.rules import RuleContext, RuleResult, evaluate, history_needed
from gradsweep.objectives.health.stats import longest_true_run, spike_scores
from gradsweep.objectives.health.summary import CheckSummary
from gradsweep.objectives.health.verdict import Verdict, worst
from gradsweep.spaces.health import HealthConfig

__all__ = ["EARLY_STEPS", "Judge", "starting_loss", "worst"]

#: The first steps that set a run's baselines: a tower's early norm is the smallest positive finite
#: pre-clip norm of its first EARLY_STEPS steps with gradients (the first is the model as
#: initialized, whatever the learning rate; a smaller later one means a zero-initialized layer was
#: still waking up); the starting loss comes from the first EARLY_STEPS finite losses
#: (:func:`starting_loss`).
EARLY_STEPS = 5


class Judge:
    """Feeds raw window summaries through the rules, keeping what spans windows.

    Args:
        config: the rules and their thresholds.
        context: clip limits, frozen towers and scaler state (``checks_done`` is kept here).
    """

    def __init__(self, config: HealthConfig, context: RuleContext) -> None:
        self.config = config
        self.context = context
        self.history: deque[CheckSummary] = deque(maxlen=history_needed(config))
        self.checks = 0
        self._loss_reference: list[float] = []
        self._streak = 0
        self._loss_best = math.nan
        self._early: dict[str, list[float]] = {}
        self._early_losses: list[float] = []
        self._latched: dict[str, str] = {}  # hard rule -> its first unstable reason

    def judge(self, summary: CheckSummary) -> list[RuleResult]:
        """Fill in ``summary``'s cross-window fields, append it, and run the rules.

        Returns:
            The rules' non-healthy findings, most severe first.
        """
        self._fill(summary)
        self.checks += 1
        self.history.append(summary)
        ctx = replace(self.context, checks_done=self.checks)
        return self._latch(evaluate(list(self.history), self.config, ctx), summary.step)

    def _latch(self, results: list[RuleResult], step: int) -> list[RuleResult]:
        """A hard rule's UNSTABLE stands at every later check: the run is done for, and a report
        that comes between two checks must not miss it (a diverged loss can dip and look as if it
        were recovering at the next check)."""
        now = {r.rule for r in results if r.hard and r.verdict == Verdict.UNSTABLE}
        for r in results:
            if r.rule in now and r.rule not in self._latched:
                self._latched[r.rule] = f"{r.reason} (unstable since step {step})"
        held = [
            RuleResult(Verdict.UNSTABLE, rule, reason)
            for rule, reason in self._latched.items()
            if rule not in now
        ]
        if not held:
            return results
        kept = [r for r in results if r.rule not in {h.rule for h in held}]
        return sorted(held + kept, key=lambda r: (-r.verdict.severity, not r.hard))

    def _fill(self, s: CheckSummary) -> None:
        longest, self._streak = longest_true_run(s.skipped_flags, carry=self._streak)
        s.overflow_streak = longest
        scores, self._loss_reference = spike_scores(
            s.losses, self._loss_reference, self.config.loss_spike.window
        )
        finite = [(z, i) for i, z in enumerate(scores) if not math.isnan(z)]
        if finite:
            z, i = max(finite)
            s.loss_spike_z, s.loss_spike_step, s.loss_spike_value = z, s.loss_steps[i], s.losses[i]
        if len(self._early_losses) < EARLY_STEPS:
            self._early_losses += [x for x in s.losses if math.isfinite(x)][
                : EARLY_STEPS - len(self._early_losses)
            ]
        s.loss_start, s.loss_best = starting_loss(self._early_losses), self._loss_best
        level = s.loss_level
        if math.isfinite(level) and not (level >= self._loss_best):  # NaN-safe minimum
            self._loss_best = level
        for name, ts in s.towers.items():
            seen = self._early.setdefault(name, [])
            for v in ts.norms:
                if len(seen) >= EARLY_STEPS:
                    break
                seen.append(v)
            positive = [v for v in seen if math.isfinite(v) and v > 0.0]
            ts.early_norm = min(positive) if positive else math.nan

    def state_dict(self) -> dict[str, Any]:
        """Host-side state (plain data)."""
        return {
            "history": [s.to_dict() for s in self.history],
            "loss_reference": list(self._loss_reference),
            "streak": self._streak,
            "checks": self.checks,
            "loss_best": self._loss_best,
            "early": {k: list(v) for k, v in self._early.items()},
            "early_losses": list(self._early_losses),
            "latched": dict(self._latched),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (older checkpoints without the newer keys load too)."""
        self.history.clear()
        self.history.extend(CheckSummary.from_dict(d) for d in state["history"])
        self._loss_reference = [float(x) for x in state["loss_reference"]]
        self._streak = int(state["streak"])
        self.checks = int(state["checks"])
        self._loss_best = float(state.get("loss_best", math.nan))
        self._early_losses = [float(x) for x in state.get("early_losses", [])]
        self._latched = {str(k): str(v) for k, v in dict(state.get("latched", {})).items()}
        self._early = {str(k): [float(x) for x in v] for k, v in dict(state.get("early", {})).items()}


def starting_loss(early: list[float]) -> float:
    """The run's starting loss from its first finite losses (NaN for none).

    The first loss is the model as initialized, whatever the learning rate; the next ones are
    averaged in (a median, against batch noise) only when they sit within half the first one's
    size above it: a learning rate far past stable can blow the loss up from the second step on
    (a two-layer MLP at Adam LR 3 went from 2.1 to 25-39 at steps 1-4), and those must not raise
    the line the loss is judged against.

    Example:
        >>> starting_loss([2.1, 25.4, 30.2, 35.2, 28.0])
        2.1
        >>> starting_loss([2.1, 2.3, 1.9, 2.0, 2.2])
        2.1
    """
    if not early:
        return math.nan
    first = early[0]
    return statistics.median([first] + [x for x in early[1:] if x <= first + 0.5 * abs(first)])
