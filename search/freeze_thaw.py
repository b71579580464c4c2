"""FreezeThawPruner: pause a trial its learning curve says cannot reach the top, and thaw it if that changes.

``--pruner freeze-thaw``. At every report the trial's partial curve goes to the offline
learning-curve model (:func:`gradsweep.search.learning_curve.predict_final`), which predicts its
final value with an uncertainty from the curves of the study's finished trials and from the
trial's own curve. The trial is **paused** when the chance that it ends in the study's top quartile
is below ``p_pause`` (5%):

``P(final reaches the bar) = 1 - Phi((bar - mean) / std)`` (maximizing; mirrored when minimizing),

where the **bar** is the edge of the top quartile (``quantile`` 0.75, in the study's direction) of
the complete trials' final values together with the still-paused trials' predicted finals. Counting
the paused trials keeps the bar where the sweep's quartile is: the complete trials alone are the ones the
rule let through, and their quartile rises towards the best one as it pauses more (the same reason
:class:`~gradsweep.search.catchup.CatchUpPruner` counts its pruned trials). The bar is the top
quartile and not the best value so that a trial that would end second best is not lost: a pause
the scheduler never takes back is a prune, and the benchmark counts a paused trial that would have
ended in the top quartile as a lost winner.

A pause is not a kill: the Ray engine stops the trial, keeps its checkpoint and stores it PRUNED
with kind ``paused`` (:mod:`gradsweep.search.engine.ray.bridge`). Whenever a trial slot frees up,
the engine asks :meth:`FreezeThawPruner.choose_thaw` first: every paused trial is judged again with
what the study knows *now* (more finished curves, another bar), and the one most likely to reach
the bar is continued from its checkpoint if that chance is at least ``p_thaw``; otherwise the sampler
proposes a new config (``p_thaw`` = 10%, twice ``p_pause``, so that a trial is not thawed for one
report and paused again at the next). Hence "freeze-thaw": new configs vs more steps for an old
one, decided by one rule on one model.

Evidence the rule uses, and does not:

* the reported values (non-finite ones skipped) and the study's finished curves;
* the health verdict: an UNSTABLE trial is pruned by the health rules first (kind ``unstable``) and
  is never paused, so never thawed; a trial whose latest health report is WARNING (a soft rule
  flagged it) is judged on its mean prediction instead of its optimistic tail, i.e. it is paused
  once its *expected* final value is below the bar (a flagged tower is evidence the curve's upside
  is not there);
* until the model can say anything (fewer than 3 finished trials) the prediction's std is infinite
  and nothing is paused.

In a plain ``study.optimize`` (no engine to thaw) a pause is a prune.

Example:
    >>> import optuna
    >>> pruner = FreezeThawPruner()
    >>> study = optuna.create_study(direction="maximize", pruner=pruner)
    >>> def objective(trial):
    ...     top = trial.suggest_float("top", 0.0, 1.0)
    ...     for step in range(1, 9):
    ...         trial.report(top * (1 - 0.5 ** step), step)
    ...         if trial.should_prune():
    ...             raise optuna.TrialPruned()
    ...     return top * (1 - 0.5 ** 8)
    >>> for top in (0.9, 0.7, 0.8, 0.95, 0.3):
    ...     study.enqueue_trial({"top": top})
    >>> study.optimize(objective, n_trials=5)
    >>> [(t.state.name, max(t.intermediate_values)) for t in study.trials]
    [('COMPLETE', 8), ('COMPLETE', 8), ('COMPLETE', 8), ('COMPLETE', 8), ('PRUNED', 1)]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from gradsweep.objectives.health.verdict import HealthReport, Verdict
from gradsweep.search.attrs import PAUSE, TOTAL_STEPS
from gradsweep.search.health_attrs import read_health
from gradsweep.search.learning_curve import Curve, Prediction, predict_final
from gradsweep.search.thaw_attrs import is_paused, thawed_as

__all__ = [
    "DEFAULT_P_PAUSE",
    "DEFAULT_P_THAW",
    "FreezeThawPruner",
    "Judgement",
    "Thaw",
    "chance_to_beat",
    "curve_of",
]

#: Pause below this chance of reaching the bar (one-sided 95%).
DEFAULT_P_PAUSE = 0.05
#: Thaw at or above this chance: twice the pause's, so a trial is not thawed for one report and paused
#: again on the next (each thaw restarts a worker and loads a checkpoint).
DEFAULT_P_THAW = 0.10


def curve_of(trial: FrozenTrial) -> Curve:
    """The trial's reported curve (every intermediate value, in step order)."""
    steps = sorted(trial.intermediate_values)
    return Curve(tuple(int(s) for s in steps), tuple(float(trial.intermediate_values[s]) for s in steps))


def chance_to_beat(prediction: Prediction, bar: float, *, maximize: bool) -> float:
    """P(final value better than ``bar``) under a normal predictive distribution.

    Example:
        >>> round(chance_to_beat(Prediction(0.5, 0.1, "x"), 0.5, maximize=True), 2)
        0.5
        >>> chance_to_beat(Prediction(0.4, math.inf, "x"), 0.9, maximize=True)
        1.0
    """
    mean, std = prediction.mean, prediction.std
    if not math.isfinite(mean) or math.isinf(std):
        return 1.0  # the model cannot say: never pause on it
    gap = (mean - bar) if maximize else (bar - mean)
    if std <= 0:
        return 1.0 if gap > 0 else 0.0
    return 0.5 * math.erfc(-gap / (std * math.sqrt(2.0)))


@dataclass(frozen=True)
class Judgement:
    """One look at a trial: its predicted final value and whether to pause it.

    Attributes:
        pause: stop it now (its checkpoint kept).
        prediction: the learning-curve model's prediction.
        bar: the top quartile's edge it must reach (None before any trial finished).
        chance: P(final reaches the bar) (1.0 when there is no bar or no prediction).
        warning: the latest health report was WARNING (judged on the mean, not the tail).
    """

    pause: bool
    prediction: Prediction
    bar: float | None
    chance: float
    warning: bool = False

    def reason(self, step: int | None) -> str:
        """One line: the prediction against the bar."""
        p = self.prediction
        at = f" at step {step}" if step is not None else ""
        bar = f"{self.bar:.4g}" if self.bar is not None else "none yet"
        health = "; health WARNING: judged on the mean" if self.warning else ""
        return (
            f"predicted final {p.mean:.4g} +- {p.std:.2g}{at} ({p.source}); "
            f"chance to reach the top quartile {bar}: {self.chance:.1%}{health}"
        )


@dataclass(frozen=True)
class Thaw:
    """A paused trial chosen to go on, and why."""

    trial: FrozenTrial
    judgement: Judgement


class FreezeThawPruner(BasePruner):
    """Pause trials unlikely to reach the top quartile; pick the paused trial to thaw.

    Args:
        p_pause: pause below this chance to reach the bar (the top quartile's edge).
        p_thaw: thaw a paused trial at or above this chance (at least ``p_pause``).

    Raises:
        ValueError: if ``p_pause`` is not in (0, 1) or ``p_thaw`` not in [p_pause, 1).
    """

    def __init__(
        self, p_pause: float = DEFAULT_P_PAUSE, p_thaw: float = DEFAULT_P_THAW, *, quantile: float = 0.75
    ) -> None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1) but got {quantile}")
        self.quantile = quantile
        if not 0.0 < p_pause < 1.0:
            raise ValueError(f"p_pause must be in (0, 1) but got {p_pause}")
        if not p_pause <= p_thaw < 1.0:
            raise ValueError(f"p_thaw must be in [p_pause, 1) = [{p_pause}, 1) but got {p_thaw}")
        self.p_pause = p_pause
        self.p_thaw = p_thaw
        self._cache_key: tuple[int, int] | None = None
        self._cache: dict[int, float] = {}  # paused trial number -> its predicted final (the bar's)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """In a plain ``study.optimize`` a pause is a prune (nothing can thaw it)."""
        return self.judge(study, trial).pause

    @staticmethod
    def _maximize(study: optuna.Study) -> bool:
        return study.direction == StudyDirection.MAXIMIZE

    def _finished(self, study: optuna.Study, exclude: int) -> tuple[list[Curve], float | None]:
        """The complete trials' curves (references) and the bar without trial ``exclude``
        (None before a trial completed)."""
        refs, values, paused = self._population(study, exclude)
        return refs, self._bar(values, paused.values(), study)

    def _population(
        self, study: optuna.Study, exclude: int
    ) -> tuple[list[Curve], list[float], dict[int, float]]:
        """The complete trials' curves and finals, and the still-paused trials' predicted finals.

        The bar's values are the complete trials' finals and the still-paused trials' *predicted*
        finals (their means; a paused trial's partial value is not comparable with a final one).
        Predictions are cached per number of references: they change only when a trial completes.
        """
        maximize = self._maximize(study)
        trials = study.get_trials(deepcopy=False)
        refs: list[Curve] = []
        values: list[float] = []
        for t in trials:
            if t.number == exclude or t.state != TrialState.COMPLETE:
                continue
            if t.value is None or not math.isfinite(t.value):
                continue
            values.append(float(t.value))
            if t.intermediate_values:
                refs.append(curve_of(t))
        if not refs:  # no curve to predict from: no bar either
            return refs, [], {}
        continued = set(thawed_as(trials))
        key = (study._study_id, len(refs))
        if self._cache_key != key:
            self._cache_key, self._cache = key, {}
        paused: dict[int, float] = {}
        for t in trials:
            if t.number == exclude or not is_paused(t) or t.number in continued:
                continue
            if t.number not in self._cache:
                self._cache[t.number] = self._predict(t, refs, maximize).mean
            if math.isfinite(self._cache[t.number]):
                paused[t.number] = self._cache[t.number]
        return refs, values, paused

    def _bar(self, values: list[float], paused: Iterable[float], study: optuna.Study) -> float | None:
        """The top quartile's edge of the complete finals and the paused predictions (None without finals)."""
        if not values:
            return None
        q = self.quantile if self._maximize(study) else 1.0 - self.quantile
        return float(np.quantile([*values, *paused], q))

    @staticmethod
    def _final_step(curve: Curve, trial: FrozenTrial, refs: list[Curve]) -> int:
        """The step of the trial's final report: declared, else where the finished trials ended."""
        total = trial.user_attrs.get(TOTAL_STEPS)
        if isinstance(total, int):
            return total
        return max([c.steps[-1] for c in refs if c.steps] + list(curve.steps[-1:]), default=0)

    @classmethod
    def _predict(cls, trial: FrozenTrial, refs: list[Curve], maximize: bool) -> Prediction:
        curve = curve_of(trial)
        return predict_final(curve, cls._final_step(curve, trial, refs), refs, maximize=maximize)

    def judge(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        latest: HealthReport | None = None,
        *,
        references: tuple[list[Curve], float | None] | None = None,
    ) -> Judgement:
        """Predict ``trial``'s final value and decide whether to pause it (stores nothing).

        Args:
            study: the trial's study (its complete trials are the references).
            trial: the trial as stored (its intermediate values, ``gradsweep.total_steps``).
            latest: its latest health report, if known (WARNING: judged on the mean).
            references: the study's finished curves and the bar when the caller has them.
        """
        refs, bar = references if references is not None else self._finished(study, trial.number)
        maximize = self._maximize(study)
        curve = curve_of(trial)
        final_step = self._final_step(curve, trial, refs)
        prediction = predict_final(curve, final_step, refs, maximize=maximize)
        warning = latest is not None and latest.verdict == Verdict.WARNING
        if bar is None:
            return Judgement(False, prediction, None, 1.0, warning)
        if curve.steps and curve.steps[-1] >= final_step:  # the last report: stopping saves nothing
            return Judgement(False, prediction, bar, 1.0, warning)
        chance = chance_to_beat(prediction, bar, maximize=maximize)
        if warning and math.isfinite(prediction.mean) and math.isfinite(prediction.std):
            on_mean = Prediction(prediction.mean, 0.0, prediction.source)
            chance = min(chance, chance_to_beat(on_mean, bar, maximize=maximize))
        return Judgement(chance < self.p_pause, prediction, bar, chance, warning)

    def paused_trials(self, study: optuna.Study, *, exclude: Collection[int] = ()) -> list[FrozenTrial]:
        """Paused trials no trial continues (none thawed from them, none being thawed), minus ``exclude``.

        A thaw the sweep's interruption ended (FAIL ``interrupted``) does not count: its trial can be
        thawed again from its pause's checkpoint (``gradsweep resume``)."""
        trials = study.get_trials(deepcopy=False)
        continued = set(thawed_as(trials))
        return [
            t
            for t in trials
            if is_paused(t)
            and isinstance(t.user_attrs.get(PAUSE), dict)
            and t.number not in continued
            and t.number not in exclude
        ]

    def choose_thaw(self, study: optuna.Study, *, exclude: Collection[int] = ()) -> Thaw | None:
        """The paused trial most likely to reach the bar now, if that chance is at least ``p_thaw``.

        Args:
            study: the study.
            exclude: trial numbers not to choose (e.g. whose checkpoint is gone).
        """
        candidates: Sequence[FrozenTrial] = self.paused_trials(study, exclude=exclude)
        if not candidates:
            return None
        refs, values, paused = self._population(study, exclude=-1)
        best: Thaw | None = None
        for trial in candidates:
            latest, _ = read_health(trial)
            # the bar without the candidate's own prediction, as when it was paused (else a trial
            # just paused below p_pause could pass p_thaw at once on its own removal from the bar)
            others = (v for n, v in paused.items() if n != trial.number)
            judgement = self.judge(study, trial, latest, references=(refs, self._bar(values, others, study)))
            if judgement.chance < self.p_thaw:
                continue
            if best is None or judgement.chance > best.judgement.chance:
                best = Thaw(trial, judgement)
        return best
