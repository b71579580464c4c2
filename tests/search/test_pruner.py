"""HealthPruner in real Optuna studies (in-memory and SQLite): health prunes, base prunes, NaN values."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn

from gradsweep.objectives.health import HealthMonitor, HealthReport, Verdict
from gradsweep.search.attrs import HEALTH_HISTORY, HEALTH_LATEST, PRUNE_KIND, PRUNE_REASON, PRUNE_STEP
from gradsweep.search.health_attrs import write_health_attrs
from gradsweep.search.pruner import HealthPruner, PruneKind
from gradsweep.spaces.health import HealthConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)
REASON = "text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 400-500)"


def _report(step: int, verdict: Verdict = Verdict.HEALTHY, reasons: list[str] | None = None) -> HealthReport:
    return HealthReport(
        step, verdict, reasons or [], {"health/loss": 1.0, "health/text_encoder/grad_norm_pre": 1e-3}
    )


def _objective(
    values: Callable[[int], list[float]], *, unstable_at: int | None = None, history: int = 3
) -> Callable[[optuna.Trial], float]:
    """Reports values[number] step by step with a health report each step; prunes when told."""

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        vals = values(trial.number)
        for step, value in enumerate(vals):
            bad = unstable_at is not None and trial.number == unstable_at and step >= 2
            report = _report(step, Verdict.UNSTABLE if bad else Verdict.HEALTHY, [REASON] if bad else [])
            write_health_attrs(trial, report, history)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return vals[-1] if math.isfinite(vals[-1]) else 0.0  # the metric may be NaN mid-run only

    return objective


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_unstable_verdict_prunes_and_survives_in_storage(storage: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}" if storage == "sqlite" else None
    study = optuna.create_study(storage=url, study_name="s", direction="maximize", pruner=HealthPruner())
    study.optimize(_objective(lambda n: [0.5] * 6, unstable_at=1, history=3), n_trials=3)
    if url is not None:  # read everything back from the file, as `gradsweep status` would
        study = optuna.load_study(study_name="s", storage=url)
    t = study.trials[1]
    # the unstable trial is pruned as soon as its verdict turns unstable (step 2)
    assert t.state == optuna.trial.TrialState.PRUNED and t.last_step == 2
    # kind, reason and step are stored on the trial
    assert t.user_attrs[PRUNE_KIND] == "unstable"
    assert t.user_attrs[PRUNE_REASON] == REASON
    assert t.user_attrs[PRUNE_STEP] == 2
    # the latest health summary and its bounded history are stored too
    assert t.user_attrs[HEALTH_LATEST]["verdict"] == "unstable"
    assert t.user_attrs[HEALTH_LATEST]["reasons"] == [REASON]
    assert [e["step"] for e in study.trials[0].user_attrs[HEALTH_HISTORY]] == [3, 4, 5]
    # healthy neighbours complete and carry no prune attrs
    assert (
        study.trials[0].state == optuna.trial.TrialState.COMPLETE
        and PRUNE_KIND not in study.trials[0].user_attrs
    )


def test_underperforming_prune_with_median_reason() -> None:
    study = optuna.create_study(
        direction="maximize", pruner=HealthPruner(optuna.pruners.MedianPruner(n_startup_trials=5))
    )
    curves = {n: [0.3, 0.35, 0.4] for n in range(5)} | {5: [0.1, 0.2, 0.21]}
    study.optimize(_objective(lambda n: curves[n]), n_trials=6)
    t = study.trials[5]
    # the worse-than-median trial is pruned at its first report (best 0.1 < median 0.3)
    assert t.state == optuna.trial.TrialState.PRUNED
    assert t.user_attrs[PRUNE_KIND] == "underperforming"
    # the reason spells out the comparison the MedianPruner made
    assert (
        t.user_attrs[PRUNE_REASON] == "value 0.1 at step 0 worse than median 0.3 of 5 trials (MedianPruner)"
    )


def test_percentile_and_generic_reasons() -> None:
    study = optuna.create_study(
        direction="minimize", pruner=HealthPruner(optuna.pruners.PercentilePruner(25.0, n_startup_trials=1))
    )
    curves = {0: [1.0, 0.5], 1: [1.0, 0.4], 2: [5.0, 5.0]}
    study.optimize(_objective(lambda n: curves[n]), n_trials=3)
    # a percentile pruner's reason names the percentile
    assert (
        study.trials[2].user_attrs[PRUNE_REASON]
        == "value 5 at step 0 worse than 25th percentile 1 of 2 trials (PercentilePruner)"
    )
    study = optuna.create_study(pruner=HealthPruner(optuna.pruners.ThresholdPruner(upper=1.0)))
    study.optimize(_objective(lambda n: [2.0]), n_trials=1)
    # other pruners get a generic line naming the pruner, value and step
    assert study.trials[0].user_attrs[PRUNE_REASON] == "value 2 at step 0 pruned by ThresholdPruner"


def test_nan_values_do_not_prune_healthy_trials_but_bare_median_does() -> None:
    curves = {0: [0.5, 0.5], 1: [0.5, 0.5], 2: [0.5, 0.5], 3: [math.nan, math.nan, 0.6]}
    bare = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=3))
    bare.optimize(_objective(lambda n: curves[n]), n_trials=4)
    # the hazard being guarded: Optuna's MedianPruner prunes a trial whose values are all NaN
    assert bare.trials[3].state == optuna.trial.TrialState.PRUNED
    study = optuna.create_study(direction="maximize", pruner=HealthPruner())
    study.optimize(_objective(lambda n: curves[n]), n_trials=4)
    # wrapped, the healthy trial with NaN values runs to completion
    assert study.trials[3].state == optuna.trial.TrialState.COMPLETE
    # the NaN intermediate values are still stored as reported
    assert math.isnan(study.trials[3].intermediate_values[0])


def test_nan_value_with_unstable_verdict_prunes_as_unstable() -> None:
    study = optuna.create_study(pruner=HealthPruner())
    trial = study.ask()
    write_health_attrs(trial, _report(0, Verdict.UNSTABLE, ["non-finite loss at step 0 (1 of 25 steps)"]), 5)
    trial.report(math.nan, 0)
    # NaN plus an unstable verdict is pruned as unstable with the rule's reason
    assert trial.should_prune()
    attrs = study.trials[0].user_attrs
    assert attrs[PRUNE_KIND] == "unstable" and attrs[PRUNE_REASON].startswith("non-finite loss")


@pytest.mark.parametrize(
    "base",
    [
        optuna.pruners.MedianPruner(n_startup_trials=1),
        optuna.pruners.PercentilePruner(50.0, n_startup_trials=1),
        optuna.pruners.SuccessiveHalvingPruner(min_resource=1),
        optuna.pruners.HyperbandPruner(min_resource=1, max_resource=4),
        optuna.pruners.WilcoxonPruner(),
        optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(n_startup_trials=1), patience=0),
        optuna.pruners.ThresholdPruner(lower=-1.0),
        optuna.pruners.NopPruner(),
    ],
    ids=lambda p: type(p).__name__,
)
def test_nan_values_never_crash_or_prune_any_base(base: optuna.pruners.BasePruner) -> None:
    study = optuna.create_study(pruner=HealthPruner(base))
    # trials 0 and 1 report only NaN; trial 2 mixes NaN and inf into finite values
    curves = {0: [math.nan] * 4, 1: [math.nan] * 4, 2: [1.0, math.nan, math.inf, 1.0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(_objective(lambda n: curves[n]), n_trials=3, catch=())
    # no crash (catch=() re-raises) and every healthy trial ran to completion despite NaN/inf values
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3, [
        t.user_attrs.get(PRUNE_REASON) for t in study.trials
    ]


def test_prune_on_unstable_false_in_trial_config_is_respected() -> None:
    study = optuna.create_study(pruner=HealthPruner())
    trial = study.ask()
    trial.set_user_attr("gradsweep.config", {"health": {"prune_on_unstable": False}})
    write_health_attrs(trial, _report(3, Verdict.UNSTABLE, [REASON]), 5)
    trial.report(1.0, 3)
    decision = HealthPruner().decide(study, study.trials[0])
    # the trial opted out of health pruning: not pruned, and the decision says who kept it
    assert not decision.prune and decision.kind is None and "CatchUpPruner keeps" in decision.reason


def test_decide_with_judges_the_given_report_not_the_stored_one() -> None:
    study = optuna.create_study(pruner=HealthPruner())
    trial = study.ask()
    write_health_attrs(trial, _report(3, Verdict.HEALTHY), 5)
    trial.report(1.0, 3)
    frozen = study.trials[0]
    decision = HealthPruner().decide_with(study, frozen, _report(3, Verdict.UNSTABLE, [REASON]))
    # the report handed in decides (unstable, with its reason), whatever the trial's attrs say
    assert decision.prune and decision.kind == PruneKind.UNSTABLE and decision.reason == REASON
    # decide() is decide_with() on the stored report
    assert HealthPruner().decide(study, frozen) == HealthPruner().decide_with(
        study, frozen, _report(3, Verdict.HEALTHY)
    )


def test_end_to_end_with_a_real_monitor_huge_lr(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e2e.db'}"

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-3, 1e4, log=True)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        opt = torch.optim.SGD([{"params": model.parameters(), "tower": "all"}], lr=lr)
        config = HealthConfig(check_every=5)
        monitor = HealthMonitor(opt, config)
        x, y = torch.randn(32, 4), torch.randn(32, 1) * 10
        for step in range(40):
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            report = monitor.observe(loss.detach(), step=step)
            opt.step()
            opt.zero_grad()
            if report is not None:
                write_health_attrs(trial, report, config.history)
                trial.report(-report.metrics["health/loss"], step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return -loss.item()

    study = optuna.create_study(storage=url, study_name="e2e", pruner=HealthPruner(), direction="maximize")
    study.enqueue_trial({"lr": 1e-2})
    study.enqueue_trial({"lr": 1e4})
    study.optimize(objective, n_trials=2)
    trials = optuna.load_study(study_name="e2e", storage=url).trials
    # the sane LR completes; the huge LR goes non-finite and is pruned as unstable, from storage
    assert trials[0].state == optuna.trial.TrialState.COMPLETE
    assert trials[1].state == optuna.trial.TrialState.PRUNED
    assert trials[1].user_attrs[PRUNE_KIND] == PruneKind.UNSTABLE.value
    assert "non-finite" in trials[1].user_attrs[PRUNE_REASON]


def test_rejects_non_pruner() -> None:
    # a wrong base is refused eagerly with the expected type
    with pytest.raises(TypeError, match="BasePruner"):
        HealthPruner("median")  # type: ignore[arg-type]


def test_min_reports_lets_a_slow_starter_report_twice_before_the_median_judges() -> None:
    study = optuna.create_study(
        direction="maximize",
        pruner=HealthPruner(optuna.pruners.MedianPruner(n_startup_trials=5), min_reports=2),
    )
    curves = {n: [0.3, 0.35, 0.4] for n in range(5)} | {5: [0.1, 0.2, 0.21]}
    study.optimize(_objective(lambda n: curves[n]), n_trials=6)
    t = study.trials[5]
    # the median only judges from the second report on: pruned at step 1, not step 0
    assert t.state == optuna.trial.TrialState.PRUNED and t.last_step == 1
    # the reason is the comparison made at that report
    assert (
        t.user_attrs[PRUNE_REASON] == "value 0.2 at step 1 worse than median 0.35 of 5 trials (MedianPruner)"
    )


def test_min_reports_does_not_delay_health_prunes() -> None:
    study = optuna.create_study(direction="maximize", pruner=HealthPruner(min_reports=5))
    study.optimize(_objective(lambda n: [0.3, 0.3, 0.3, 0.3], unstable_at=0), n_trials=1)
    # an unstable verdict prunes at once whatever min_reports says
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED and study.trials[0].last_step == 2


def test_min_reports_must_be_positive() -> None:
    # zero reports before judging is refused with the value named
    with pytest.raises(ValueError, match="min_reports must be at least 1 but got 0"):
        HealthPruner(min_reports=0)
