"""Soft health rules prune only with the sweep's own evidence (real Optuna studies)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from gradsweep.objectives.health.verdict import HealthReport, Verdict
from gradsweep.search.attrs import CONFIG, HEALTH_FLAGS
from gradsweep.search.calibration import Evidence, evidence
from gradsweep.search.health_attrs import read_flags, write_health_attrs
from gradsweep.search.pruner import HealthPruner

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _finished(study: optuna.Study, value: float, flags: dict[str, int] | None = None) -> None:
    attrs = {HEALTH_FLAGS: flags} if flags else {}
    study.add_trial(
        create_trial(
            value=value, params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, user_attrs=attrs
        )
    )


def _flagged_running(
    study: optuna.Study, rules: list[str], health: dict | None = None
) -> optuna.trial.FrozenTrial:
    trial = study.ask({"x": FloatDistribution(0, 1)})
    if health is not None:
        trial.set_user_attr(CONFIG, {"health": health})
    report = HealthReport(50, Verdict.UNSTABLE, [f"{r} reason" for r in rules], {}, unstable_rules=rules)
    write_health_attrs(trial, report, limit=5)
    trial.report(1.0, 50)
    return study.trials[trial.number]


def test_the_bound_and_its_worded_evidence() -> None:
    assert Evidence("x", 9, 0).bound == pytest.approx(0.1)
    assert Evidence("x", 19, 1).bound == pytest.approx(0.1) and Evidence("x", 19, 2).bound > 0.1
    assert (
        Evidence("loss_spike", 1, 0).describe()
        == "loss_spike flagged 1 finished trial, 0 in the top quartile (bound 0.5)"
    )


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_evidence_counts_flagged_complete_trials_in_the_top_quartile(direction: str) -> None:
    study = optuna.create_study(direction=direction)
    good = (lambda v: v) if direction == "minimize" else (lambda v: -v)
    for v in range(8):  # values 0..7; the top quartile is the best two
        _finished(study, good(float(v)), {"exploding": 3} if v in (0, 5, 6, 7) else None)
    pruned = study.ask()
    pruned.set_user_attr(HEALTH_FLAGS, {"exploding": 1})
    study.tell(pruned, state=TrialState.PRUNED)  # pruned trials are not evidence: their end is unknown
    ev = evidence(study.trials, "exploding", study.direction)
    assert (ev.flagged, ev.top) == (4, 1)
    assert evidence(study.trials, "vanishing", study.direction) == Evidence("vanishing", 0, 0)


def test_flags_keep_the_first_step_of_each_rule() -> None:
    study = optuna.create_study()
    trial = study.ask()
    for step, rules in [(10, ["exploding"]), (20, ["exploding", "loss_spike"]), (30, [])]:
        report = HealthReport(
            step, Verdict.UNSTABLE if rules else Verdict.HEALTHY, [], {}, unstable_rules=rules
        )
        write_health_attrs(trial, report, limit=2)
    assert read_flags(study.trials[0]) == {"exploding": 10, "loss_spike": 20}


def test_a_soft_flag_waits_for_evidence_then_prunes_citing_it() -> None:
    study = optuna.create_study()
    pruner = HealthPruner()
    for v in range(4):
        _finished(study, float(v))  # healthy runs, values 0-3
    trial = _flagged_running(study, ["exploding"])
    decision = pruner.decide(study, trial)
    # no finished trial was flagged: the flag waits, and the reason says why
    assert not decision.prune
    assert (
        "soft flag not pruning yet: exploding flagged 0 finished trials, 0 in the top quartile (bound 1) > 0.1"
        in decision.reason
    )
    for v in range(9):
        _finished(study, 10.0 + v, {"exploding": 5})  # nine flagged runs, all worse than every healthy one
    trial = _flagged_running(study, ["exploding"])
    decision = pruner.decide(study, trial)
    assert decision.prune and decision.kind == "unstable"
    assert (
        decision.reason
        == "exploding reason (calibrated: exploding flagged 9 finished trials, 0 in the top quartile (bound 0.1) <= 0.1)"
    )


def test_one_flagged_winner_keeps_the_rule_from_pruning() -> None:
    study = optuna.create_study()
    for v in range(9):
        _finished(study, 10.0 + v, {"loss_spike": 5})
    _finished(study, 0.0, {"loss_spike": 5})  # a flagged run that ended best
    for v in range(10):
        _finished(study, 1.0 + v)
    assert not HealthPruner().decide(study, _flagged_running(study, ["loss_spike"])).prune


def test_hard_rules_prune_at_once_and_soft_policies_are_per_trial() -> None:
    study = optuna.create_study()
    pruner = HealthPruner()
    assert pruner.decide(study, _flagged_running(study, ["divergence"])).prune
    assert pruner.decide(study, _flagged_running(study, ["nonfinite", "exploding"])).prune
    assert pruner.decide(study, _flagged_running(study, ["exploding"], {"soft_prune": "always"})).prune
    never = pruner.decide(study, _flagged_running(study, ["exploding"], {"soft_prune": "never"}))
    assert not never.prune and "soft_prune is never" in never.reason
    # a looser bound lets less evidence prune: 3 flagged, none on top -> 0.25
    for v in range(3):
        _finished(study, 10.0 + v, {"exploding": 5})
    _finished(study, 0.0)
    loose = _flagged_running(study, ["exploding"], {"false_prune_rate": 0.25})
    assert (
        pruner.decide(study, loose).prune
        and not pruner.decide(study, _flagged_running(study, ["exploding"])).prune
    )


def test_a_report_without_rule_names_prunes_as_before() -> None:
    # reports written before rules were named (no unstable_rules) prune on UNSTABLE as they always did
    study = optuna.create_study()
    trial = study.ask()
    write_health_attrs(trial, HealthReport(3, Verdict.UNSTABLE, ["old reason"], {}), limit=3)
    assert HealthPruner().decide(study, study.trials[0]).prune


def _reporting(
    study: optuna.Study, norms: list[float], health: dict | None = None
) -> optuna.trial.FrozenTrial:
    """A trial whose reports at steps 24, 49, ... carry ``enc`` grad norms ``norms``; left running."""
    trial = study.ask({"x": FloatDistribution(0, 1)})
    if health is not None:
        trial.set_user_attr(CONFIG, {"health": health})
    for i, norm in enumerate(norms):
        step = 24 + 25 * i
        write_health_attrs(
            trial, HealthReport(step, Verdict.HEALTHY, [], {"health/enc/grad_norm_pre": norm}), limit=10
        )
        trial.report(1.0, step)
    return study.trials[trial.number]


def test_the_population_rule_flags_a_tower_far_over_the_finished_healthy_trials() -> None:
    from optuna.trial import TrialState

    study = optuna.create_study()
    pruner = HealthPruner()
    for i in range(5):  # five finished healthy trials with enc norms ~1
        t = _reporting(study, [1.0 + 0.1 * i, 0.9 + 0.1 * i])
        study.tell(t.number, 0.5 + 0.01 * i, state=TrialState.COMPLETE)
    odd = _reporting(study, [40.0, 30.0])
    decision = pruner.decide(study, odd)
    # a soft rule: flagged (stored), not pruned without evidence, and the reason says both
    assert not decision.prune
    assert (
        "enc grad norm 30 > 13 (10x the largest of 5 finished healthy trials at step 49) for 2 reports (steps 24-49)"
        in decision.reason
    )
    assert "soft flag not pruning yet: population flagged 0 finished trials" in decision.reason
    assert read_flags(study.trials[odd.number]) == {"population": 49}
    # with soft_prune: always it prunes, its reason grouped under the population rule
    always = _reporting(study, [40.0, 30.0], {"soft_prune": "always"})
    decision = pruner.decide(study, always)
    assert (
        decision.prune and decision.kind == "unstable" and decision.reason.startswith("enc grad norm 30 > 13")
    )
    from gradsweep.search.views.reasons import reason_rule

    assert reason_rule(decision.reason) == "population"
    # one report over the line is not sustained; a trial in line is never flagged; off when disabled
    assert "population" not in pruner.decide(study, _reporting(study, [1.0, 30.0])).reason
    in_line = _reporting(study, [1.1, 1.0])
    pruner.decide(study, in_line)
    assert not read_flags(study.trials[in_line.number])
    off = _reporting(study, [40.0, 30.0], {"population": {"enabled": False}})
    assert "population" not in pruner.decide(study, off).reason


def test_the_population_needs_min_trials_at_the_same_step() -> None:
    from optuna.trial import TrialState

    study = optuna.create_study()
    for _ in range(4):
        t = _reporting(study, [1.0, 1.0])
        study.tell(t.number, 0.5, state=TrialState.COMPLETE)
    # four finished trials are under the default min_trials (5): no finding
    assert "population" not in HealthPruner().decide(study, _reporting(study, [40.0, 30.0])).reason
