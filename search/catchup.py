"""CatchUpPruner: stop a trial only when no finished trial ever caught up from as far behind.

The median rule compares a trial's value at step ``s`` with the other trials' values at ``s``,
so it stops slow starters (long warmup, a high LR that pays off late) that would have ended on
top. This rule compares where the trial *could still end*, measured on the finished trials:

* ``bar``: the ``quantile`` (default 0.75: the edge of the top quartile, in the study's
  direction) of the finished trials' final values together with the pruned trials' best values
  (``bar_counts_pruned``, the default: the finished trials alone are the ones the rule let
  through, and their quartile rises above the sweep's as it prunes more);
* ``gain(s)``: the largest improvement any finished trial made from its best value up to step
  ``s`` to its final value;
* the trial is pruned when ``best_so_far(s) + gain_factor * gain(s) < bar`` (maximizing;
  mirrored when minimizing).

A pruned trial would have had to improve more after ``s`` than ``gain_factor`` (1.5) times the
best any finished trial did to reach the bar. Gains shrink as training goes on, so the rule is
lenient at the first reports (it stops configs that are hopeless, e.g. still at chance) and
strict near the end. Measured in BENCHMARKS.md ("Choosing the default base pruner", 6 sampler
seeds, the bar from finished trials only): none of its 97 prunes would have ended in its run's
top quartile, against 56 of 256 for ``MedianPruner(n_startup_trials=5)``; with
``gain_factor=1.0`` it pruned more and reached the target sooner on 5 of 6 seeds but never on
the sixth, at 8 false prunes of 144. On the segmentation preset that survivors-only bar made
24 false prunes of 151 (6 seeds); counting the pruned trials (the default now) made 2 of 96 at
the same speed, and cost the multitower benchmark 4-6% more steps to the target (BENCHMARKS.md,
"Two more objectives").

Example:
    >>> import optuna
    >>> study = optuna.create_study(direction="maximize", pruner=CatchUpPruner(n_startup_trials=1))
    >>> def objective(trial):
    ...     start = trial.suggest_float("start", 0.0, 1.0)
    ...     for step in range(1, 4):
    ...         trial.report(start + 0.1 * step, step)
    ...         if trial.should_prune():
    ...             raise optuna.TrialPruned()
    ...     return start + 0.3
    >>> study.enqueue_trial({"start": 0.9})
    >>> study.enqueue_trial({"start": 0.1})
    >>> study.optimize(objective, n_trials=2)
    >>> [t.state.name for t in study.trials]
    ['COMPLETE', 'PRUNED']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = ["CatchUpPruner", "CatchUpVerdict"]


@dataclass(frozen=True)
class CatchUpVerdict:
    """One judgement of :class:`CatchUpPruner` (values in the study's own sign).

    Attributes:
        prune: whether the trial should stop.
        best: the trial's best finite value so far.
        gain: the largest later improvement a finished trial made from this step (0 if none did),
            times the pruner's ``gain_factor``.
        bar: the quantile (in the study's direction: 0.75 is the best quartile's edge) of the finished
            trials' final values the trial must still be able to reach.
        finished: how many finished trials the bar and the gain come from.
        step: the step judged.
        pruned: how many pruned trials the bar's quantile also counted (``bar_counts_pruned``).
    """

    prune: bool
    best: float
    gain: float
    bar: float
    finished: int
    step: int
    pruned: int = 0

    def reason(self, quantile: float, maximize: bool, gain_factor: float = 1.0) -> str:
        """One line: the comparison that pruned (or kept) the trial, worded for the direction.

        The bar is the ``quantile`` of the results counted in the study's direction, so 0.75 is
        the edge of the best quartile: the 75th percentile of a maximized metric, the 25th of a
        minimized one (a loss). The line names it that way, e.g. ``best-quartile final value``.

        Args:
            quantile: the pruner's ``quantile``.
            maximize: the study's direction.
            gain_factor: the pruner's ``gain_factor`` (:attr:`gain` is already multiplied by it;
                the line shows the factor and the finished trial's own gain).
        """
        share = (1.0 - quantile) * 100.0
        label = "median" if quantile == 0.5 else "best-quartile" if quantile == 0.75 else f"best-{share:.3g}%"
        of = f"{self.finished} finished trials" + (
            f" and {self.pruned} pruned ones at their best" if self.pruned else ""
        )
        times = f"{gain_factor:g} x " if gain_factor != 1.0 else ""
        raw = self.gain / gain_factor
        if maximize:
            return (f"best {self.best:.4g} by step {self.step} + {times}the largest later gain of a finished "
                    f"trial {raw:.4g} < {self.bar:.4g}, the {label} final value of {of} (higher is better)")  # fmt: skip
        return (f"best {self.best:.4g} by step {self.step} - {times}the largest later drop of a finished "
                f"trial {raw:.4g} > {self.bar:.4g}, the {label} final value of {of} (lower is better)")  # fmt: skip


def best_by(values: Mapping[int, float], step: int, sign: float) -> float | None:
    """The best finite value (times ``sign``) reported at or before ``step``; None if there is none."""
    seen = [sign * v for s, v in values.items() if s <= step and math.isfinite(v)]
    return max(seen) if seen else None


class CatchUpPruner(BasePruner):
    """Prune when the trial cannot reach the finished trials' bar even with their best late gain.

    Args:
        quantile: which final value a trial must still be able to reach, as a quantile of the
            finished trials' results (and the pruned ones' best values) in the study's direction
            (0.75, the default: the top quartile's edge; 0.5: the median result, more lenient).
        gain_factor: the largest finished trial's gain is multiplied by this before comparing
            (default 1.5; > 1 leaves room for a trial that gains more than any finished one
            did: the largest of a few samples underestimates what the next trial can do).
        n_startup_trials: finished trials needed before pruning.
        n_warmup_steps: steps of each trial before it may be pruned.
        bar_counts_pruned: also count the pruned trials in the bar's quantile, at their best
            reported value. The finished trials alone are a selected sample (the pruner removed
            the weaker ones), so their quantile rises as the sweep prunes more and sits above the
            sweep's own top quartile; the pruned trials' best values pull it back down. On by
            default (measured in BENCHMARKS.md, "Two more objectives"); False gives the
            survivors-only bar of earlier versions.

    Raises:
        ValueError: if ``quantile`` is not in (0, 1), or a count is negative.
    """

    def __init__(
        self,
        quantile: float = 0.75,
        *,
        gain_factor: float = 1.5,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        bar_counts_pruned: bool = True,
    ) -> None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1) but got {quantile}")
        if gain_factor < 1.0:
            raise ValueError(f"gain_factor must be >= 1 but got {gain_factor}")
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0 but got {n_startup_trials}")
        if n_warmup_steps < 0:
            raise ValueError(f"n_warmup_steps must be >= 0 but got {n_warmup_steps}")
        self.quantile = quantile
        self.gain_factor = gain_factor
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self.bar_counts_pruned = bar_counts_pruned

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        verdict = self.judge(study, trial)
        return verdict is not None and verdict.prune

    def judge(self, study: optuna.Study, trial: FrozenTrial) -> CatchUpVerdict | None:
        """The comparison at the trial's last step, or None when the rule cannot judge yet."""
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return None
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        best = best_by(trial.intermediate_values, step, sign)
        if best is None:
            return None
        finals: list[float] = []
        gains: list[float] = []
        pruned: list[float] = []  # the pruned trials' best values (``bar_counts_pruned``)
        states = (
            (TrialState.COMPLETE, TrialState.PRUNED) if self.bar_counts_pruned else (TrialState.COMPLETE,)
        )
        for done in study.get_trials(deepcopy=False, states=states):  # one read of the study per report
            if done.state == TrialState.PRUNED:
                then = (
                    best_by(done.intermediate_values, done.last_step, sign)
                    if done.last_step is not None
                    else None
                )
                if then is not None:
                    pruned.append(then)
                continue
            if done.value is None or not math.isfinite(done.value):
                continue
            finals.append(sign * done.value)
            then = best_by(done.intermediate_values, step, sign)
            if then is not None:
                gains.append(sign * done.value - then)
        if len(finals) < max(self.n_startup_trials, 1) or not gains:
            return None  # too few finished trials, or none reported by this step: nothing to measure against
        bar = float(np.quantile(finals + pruned, self.quantile))
        gain = max(max(gains), 0.0) * self.gain_factor
        return CatchUpVerdict(
            best + gain < bar, sign * best, gain, sign * bar, len(finals), int(step), len(pruned)
        )
