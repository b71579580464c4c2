"""HealthPruner: any Optuna pruner, plus "prune when the gradient-health verdict is unstable".

The health verdict reaches the pruner through the trial's user attrs (Contract 4:
``gradsweep.health.latest`` / ``gradsweep.health.history``, written by
:func:`gradsweep.search.health_attrs.write_health_attrs`), so the same pruner works in a plain
``study.optimize`` and on a Ray Tune driver. A prune stores ``gradsweep.prune.kind``
(``unstable`` | ``underperforming``), ``gradsweep.prune.reason`` and ``gradsweep.prune.step`` on the trial
(:func:`gradsweep.search.prune_attrs.write_prune_attrs`). A caller that holds the trial's latest
health report in memory (the Ray driver's bridge, its only writer) passes it to
:meth:`HealthPruner.decide_with` instead of having it read back from the trial.

Decision order in :meth:`HealthPruner.decide`:

1. the latest health report is UNSTABLE (and the trial's ``gradsweep.config`` does not set
   ``health.prune_on_unstable: false``) by a hard rule (non-finite, GradScaler storm, divergence)
   -> prune, kind ``unstable``, the rules' reasons; by soft rules only -> prune as the trial's
   ``health.soft_prune`` says: ``calibrated`` (the default) once the study's finished trials give
   one of those rules the evidence :mod:`gradsweep.search.calibration` asks for (the reason then
   cites it), ``always``, or ``never``; a soft flag that may not prune yet goes on to step 2;
   the same for the ``population`` rule, which only the sweep can run
   (:mod:`gradsweep.search.population`: a tower far over the finished healthy trials' norms at
   the same step), whose flag this pruner stores;
2. the report is the trial's last (its step reaches ``gradsweep.total_steps - 1``: the last
   step counted from 0 or 1; :meth:`gradsweep.objectives.api.TrialContext.trainer` declares the total) -> keep: the value is the trial's
   result, and stopping now would save no step but throw the result away (Optuna's pruners
   judge that report like any other: without this guard, 12 of 75 prunes of a benchmark run
   were at the final report, and the guard cut that run's false prunes from 8 to 1; see
   BENCHMARKS.md "Search efficiency");
3. otherwise the base pruner judges a view of the trial WITHOUT its non-finite intermediate
   values -> prune, kind ``underperforming``, with the comparison for Median/Percentile; with a
   :class:`~gradsweep.search.freeze_thaw.FreezeThawPruner` kind ``paused`` (the Ray engine keeps the
   checkpoint and may thaw it; :meth:`HealthPruner.prune`, the plain ``study.optimize`` path, stores it
   ``underperforming``: nothing there thaws a trial).

Why the filtering: in Optuna 5 ``PercentilePruner``/``MedianPruner`` prune a trial whose reported
values are all NaN (``nanmax`` of them is NaN -> ``return True``), ``SuccessiveHalvingPruner`` and
``HyperbandPruner`` prune at once on a NaN value at a rung, and ``ThresholdPruner`` prunes on NaN;
``WilcoxonPruner`` refuses to prune on any non-finite value. None of them crash, but a NaN metric
from an otherwise healthy trial (e.g. an empty validation batch) must not prune it: that is the
health rules' call. So non-finite values never reach the base pruner, and a trial with no finite
value yet is never pruned by it.

Note: wrapping a ``HyperbandPruner`` hides it from ``TPESampler``'s bracket-aware trial filter
(TPE checks ``isinstance(study.pruner, HyperbandPruner)``); sampling still works, over all trials.

Example:
    >>> import optuna
    >>> study = optuna.create_study(pruner=HealthPruner())
    >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    >>> len(study.trials)
    2
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner, PercentilePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from pydantic import ValidationError

from gradsweep.objectives.health.verdict import HARD_RULES, HealthReport, Verdict
from gradsweep.objectives.pruned import PruneKind
from gradsweep.search.attrs import CONFIG, HEALTH_FLAGS, TOTAL_STEPS
from gradsweep.search.calibration import evidence
from gradsweep.search.catchup import CatchUpPruner
from gradsweep.search.freeze_thaw import FreezeThawPruner
from gradsweep.search.health_attrs import read_flags, read_health
from gradsweep.search.population import population_finding, reference_norms, tower_norms
from gradsweep.search.prune_attrs import PruneRecord, write_prune_attrs
from gradsweep.spaces.health import HealthConfig

__all__ = ["DEFAULT_N_STARTUP_TRIALS", "HealthPruner", "PruneDecision", "PruneKind", "finite_view"]

#: Finished trials the default base pruner waits for (Optuna's own default for the median). Measured
#: in BENCHMARKS.md "Search efficiency": with 3, the median of a few early runs pruned 37 trials
#: that would have ended in the top quartile, and the sweep never reached the target.
DEFAULT_N_STARTUP_TRIALS = 5


@dataclass(frozen=True)
class PruneDecision:
    """A pruning decision with its reason.

    Attributes:
        prune: whether to stop the trial.
        kind: why (``None`` when not pruning).
        reason: one human line (also explains a decision not to prune).
    """

    prune: bool
    kind: PruneKind | None
    reason: str


def finite_view(trial: FrozenTrial) -> FrozenTrial:
    """A shallow copy of ``trial`` whose intermediate values are only the finite ones.

    The copy keeps ``_trial_id`` and ``number``, so base pruners that write system attrs
    (successive halving's rungs) still write to the real trial.
    """
    view = copy.copy(trial)
    view.intermediate_values = {s: v for s, v in trial.intermediate_values.items() if math.isfinite(v)}
    return view


class HealthPruner(BasePruner):
    """Prune unstable trials (health verdict) and underperforming ones (any base pruner).

    Args:
        base_pruner: an Optuna pruner (Median, Percentile, Hyperband, SuccessiveHalving,
            Wilcoxon, Patient, Threshold, Nop, ...); default
            :class:`~gradsweep.search.catchup.CatchUpPruner` with ``n_startup_trials=5``.
        prune_on_unstable: prune on an UNSTABLE verdict; a trial's ``gradsweep.config`` with
            ``health.prune_on_unstable: false`` overrides it for that trial.
        min_reports: finite reports a trial must have made before the base pruner judges it
            (the health rules judge from the first); 1 consults it at every report.

    Raises:
        TypeError: if ``base_pruner`` is not an ``optuna.pruners.BasePruner``.
        ValueError: if ``min_reports`` < 1.
    """

    def __init__(
        self, base_pruner: BasePruner | None = None, *, prune_on_unstable: bool = True, min_reports: int = 1
    ) -> None:
        if min_reports < 1:
            raise ValueError(f"min_reports must be at least 1 but got {min_reports}")
        self.min_reports = min_reports
        if base_pruner is None:
            base_pruner = CatchUpPruner(n_startup_trials=DEFAULT_N_STARTUP_TRIALS)
        if not isinstance(base_pruner, BasePruner):
            raise TypeError(
                f"base_pruner must be an optuna.pruners.BasePruner but got {type(base_pruner).__name__}"
            )
        self.base_pruner = base_pruner
        self.prune_on_unstable = prune_on_unstable
        self._reference_cache: tuple[tuple[int, int], dict[int, dict[str, list[float]]]] | None = None

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """:meth:`decide`, storing ``gradsweep.prune.kind/reason/step`` on the trial when pruning."""
        decision = self.decide(study, trial)
        if decision.kind is PruneKind.PAUSED:  # nothing thaws a trial in a plain study.optimize
            decision = PruneDecision(
                True,
                PruneKind.UNDERPERFORMING,
                decision.reason.replace("paused: ", "", 1) + " (FreezeThawPruner)",
            )
        if decision.prune and decision.kind is not None:
            step = trial.last_step
            if step is None:
                latest, _ = read_health(trial)
                step = latest.step if latest is not None else 0
            write_prune_attrs(
                study._storage, trial._trial_id, PruneRecord(decision.kind, decision.reason, int(step))
            )
        return decision.prune

    def decide(self, study: optuna.Study, trial: FrozenTrial) -> PruneDecision:
        """Decide whether ``trial`` should stop, and why (stores nothing).

        Args:
            study: the trial's study.
            trial: the trial as stored (its intermediate values and user attrs).

        Returns:
            The decision; ``reason`` names the rule, or the comparison with other trials.

        Raises:
            ValueError: if the trial's health attrs are malformed.
        """
        latest, _ = read_health(trial)
        return self.decide_with(study, trial, latest)

    def decide_with(
        self, study: optuna.Study, trial: FrozenTrial, latest: HealthReport | None
    ) -> PruneDecision:
        """:meth:`decide` with the trial's latest health report given, not read from its attrs.

        Args:
            study: the trial's study.
            trial: the trial as stored (its intermediate values, ``gradsweep.config`` and
                ``gradsweep.total_steps``).
            latest: the trial's latest health report (what ``gradsweep.health.latest`` holds),
                or None when it has reported none.

        Returns:
            The decision, as :meth:`decide` gives it.
        """
        flag_note = ""
        prunes_unstable = self._prunes_unstable(trial)
        if latest is not None and latest.verdict == Verdict.UNSTABLE and prunes_unstable:
            reason = "; ".join(latest.reasons) or f"health verdict unstable at step {latest.step}"
            allowed, flag_note = self._unstable_may_prune(study, trial, latest)
            if allowed:
                return PruneDecision(True, PruneKind.UNSTABLE, reason + flag_note)
        found = self._population(study, trial, latest) if prunes_unstable else None
        if found is not None:
            allowed, note = self._soft_may_prune(study, trial, ["population"])
            if allowed:
                return PruneDecision(True, PruneKind.UNSTABLE, found + note)
            flag_note += f"; {found}{note}"
        decision = self._base_decision(study, trial, latest)
        if flag_note and not decision.prune:
            return PruneDecision(False, None, decision.reason + flag_note)
        return decision

    def _population(self, study: optuna.Study, trial: FrozenTrial, latest: HealthReport | None) -> str | None:
        """The population rule's reason when it flags the trial now (the flag is stored), else None."""
        rule = self._health_config(trial).population
        if latest is None or not rule.enabled:
            return None
        _, history = read_health(trial)
        if not history or history[-1].step != latest.step:
            history = [*history, latest]
        reports = [(r.step, tower_norms(r.metrics)) for r in history]
        finding = population_finding(reports, self._reference(study), rule)
        if finding is None:
            return None
        flags = read_flags(trial)
        if "population" not in flags:
            study._storage.set_trial_user_attr(
                trial._trial_id, HEALTH_FLAGS, {**flags, "population": finding.step}
            )
        return finding.reason()

    def _base_decision(
        self, study: optuna.Study, trial: FrozenTrial, latest: HealthReport | None = None
    ) -> PruneDecision:
        """Steps 2-3 of :meth:`decide`: the final-report guard, then the base pruner."""
        total, step = trial.user_attrs.get(TOTAL_STEPS), trial.last_step
        if isinstance(total, int) and step is not None and step >= total - 1:  # 0- or 1-based step counts
            return PruneDecision(
                False, None, f"the report at step {step} is the trial's last; its value is the result"
            )
        view = finite_view(trial)
        name = type(self.base_pruner).__name__
        if not view.intermediate_values:
            return PruneDecision(False, None, "no finite intermediate value yet")
        if len(view.intermediate_values) < self.min_reports:
            return PruneDecision(False, None, f"{name} judges a trial from its report {self.min_reports} on")
        skipped = len(trial.intermediate_values) - len(view.intermediate_values)
        keep = PruneDecision(
            False,
            None,
            f"{name} keeps the trial"
            + (f" ({skipped} non-finite value(s) not shown to it)" if skipped else ""),
        )
        base = self.base_pruner
        if isinstance(base, FreezeThawPruner):
            judgement = base.judge(study, view, latest)
            if not judgement.pause:
                return PruneDecision(
                    False, None, f"{name} keeps the trial: {judgement.reason(view.last_step)}"
                )
            return PruneDecision(True, PruneKind.PAUSED, f"paused: {judgement.reason(view.last_step)}")
        if isinstance(base, CatchUpPruner) and type(base).prune is CatchUpPruner.prune:
            verdict = base.judge(study, view)  # judged once: its comparison is the reason
            if verdict is None or not verdict.prune:
                return keep
            reason = verdict.reason(
                base.quantile, study.direction == StudyDirection.MAXIMIZE, base.gain_factor
            )
            return PruneDecision(True, PruneKind.UNDERPERFORMING, f"{reason} ({name})")
        if not base.prune(study, view):
            return keep
        return PruneDecision(True, PruneKind.UNDERPERFORMING, self._explain(study, view))

    def _unstable_may_prune(
        self, study: optuna.Study, trial: FrozenTrial, latest: HealthReport
    ) -> tuple[bool, str]:
        """Whether an UNSTABLE report prunes now, and a note on the calibration evidence."""
        rules = list(latest.unstable_rules)
        if not rules or any(r in HARD_RULES for r in rules):
            return True, ""  # a hard rule (or a report from before rules were named) prunes at once
        return self._soft_may_prune(study, trial, rules)

    def _soft_may_prune(self, study: optuna.Study, trial: FrozenTrial, rules: list[str]) -> tuple[bool, str]:
        """Whether soft ``rules``' flags prune now (``health.soft_prune``), and a note on why."""
        health = self._health_config(trial)
        policy, alpha = health.soft_prune, health.false_prune_rate
        if policy == "always":
            return True, ""
        if policy == "never":
            return False, f"; soft flag ({', '.join(rules)}) not pruning: soft_prune is never"
        trials = study.get_trials(deepcopy=False)
        found = [evidence(trials, r, study.direction) for r in rules]
        allowed = [e for e in found if e.allows(alpha)]
        if allowed:
            return True, f" (calibrated: {allowed[0].describe()} <= {alpha:g})"
        best = min(found, key=lambda e: e.bound)
        return False, f"; soft flag not pruning yet: {best.describe()} > {alpha:g}"

    def _reference(self, study: optuna.Study) -> dict[int, dict[str, list[float]]]:
        """The population's norms, read again only when another trial has completed."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        key = (study._study_id, len(complete))
        if self._reference_cache is None or self._reference_cache[0] != key:
            self._reference_cache = (key, reference_norms(complete))
        return self._reference_cache[1]

    @staticmethod
    def _health(trial: FrozenTrial) -> dict[str, Any]:
        """The ``health`` section of the trial's ``gradsweep.config`` as stored ({} if none)."""
        config: Any = trial.user_attrs.get(CONFIG)
        health = config.get("health") if isinstance(config, dict) else None
        return health if isinstance(health, dict) else {}

    def _health_config(self, trial: FrozenTrial) -> HealthConfig:
        """The trial's :class:`HealthConfig`, its defaults where the stored config says nothing
        (or is not one: a study written by another version)."""
        try:
            return HealthConfig.model_validate(self._health(trial))
        except ValidationError:
            return HealthConfig()

    def _prunes_unstable(self, trial: FrozenTrial) -> bool:
        health = self._health(trial)
        if "prune_on_unstable" in health:
            return bool(health["prune_on_unstable"])
        return self.prune_on_unstable

    def _explain(self, study: optuna.Study, view: FrozenTrial) -> str:
        """The base pruner's comparison in words (exact for Median/Percentile; :meth:`decide`
        gives CatchUpPruner's own comparison)."""
        base, name = self.base_pruner, type(self.base_pruner).__name__
        step = view.last_step
        assert step is not None  # decide() only explains trials with finite values
        value = view.intermediate_values[step]
        if isinstance(base, PercentilePruner):
            return _percentile_reason(study, view, base, name)
        return f"value {value:.4g} at step {step} pruned by {name}"


def _percentile_reason(study: optuna.Study, view: FrozenTrial, base: PercentilePruner, name: str) -> str:
    step = view.last_step
    assert step is not None
    maximize = study.direction == StudyDirection.MAXIMIZE
    values = np.asarray(list(view.intermediate_values.values()), dtype=float)
    best = float(values.max() if maximize else values.min())
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    others = [t.intermediate_values[step] for t in completed if step in t.intermediate_values]
    others = [v for v in others if math.isfinite(v)]
    pct = float(base._percentile)
    label = "median" if pct == 50.0 else f"{pct:g}th percentile"
    if not others:
        return f"value {best:.4g} at step {step} pruned by {name}"
    ref = float(np.percentile(others, 100.0 - pct if maximize else pct))
    return f"value {best:.4g} at step {step} worse than {label} {ref:.4g} of {len(others)} trials ({name})"
