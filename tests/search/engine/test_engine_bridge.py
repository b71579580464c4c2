"""The driver-side study owner, driven by hand (no Ray): ask, report, prune, tell, reconcile."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from optuna.trial import TrialState

from gradsweep.search.engine.ray.bridge import StudyBridge
from gradsweep.search.engine.study import Baseline, enqueue_baselines
from gradsweep.search.prune_attrs import PruneRecord
from gradsweep.search.pruner import HealthPruner

from ._support import make_bridge


def _bridge(n_trials: int = 4, seed: int | None = 0, **kwargs: object) -> StudyBridge:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    pruner = HealthPruner(optuna.pruners.MedianPruner(n_startup_trials=1))
    return make_bridge(study, pruner, n_trials=n_trials, seed=seed, **kwargs)


def _final(value: float) -> dict[str, object]:
    return {"gs_final": True, "gs_outcome": "complete", "gs_value": value, "gs_step": 3}


def test_ask_gives_one_optuna_trial_per_ray_trial_and_stops_at_n() -> None:
    bridge = _bridge(n_trials=2)
    first, second = bridge.ask("ray-a"), bridge.ask("ray-b")
    # each Ray trial gets its own Optuna trial number and a resolved config
    assert first is not None and second is not None and (first["gs_trial"], second["gs_trial"]) == (0, 1)
    # the resolved config carries the sampled params it came from
    assert first["gs_config"]["towers"][0]["lr"] == first["gs_config"]["params"]["towers.all.lr"]
    trial = bridge.study.trials[0]
    # the Optuna trial knows its Ray trial id and stores the resolved config
    assert trial.user_attrs["gradsweep.ray.trial_id"] == "ray-a" and "gradsweep.config" in trial.user_attrs
    # after n_trials the searcher is told to finish
    assert bridge.ask("ray-c") is None


def test_enqueued_baselines_come_first() -> None:
    bridge = _bridge(n_trials=2)
    enqueue_baselines(bridge.study, [Baseline("before", {"towers.all.lr": 500.0})])
    config = bridge.ask("ray-a")
    # the baseline's params are the first trial's, tagged with its name
    assert config is not None and config["gs_config"]["params"] == {"towers.all.lr": 500.0}
    # the trial is tagged with the baseline name
    assert bridge.study.trials[0].user_attrs["gradsweep.baseline"] == "before"


def test_unstable_health_report_stops_and_stores_pruned_with_reason() -> None:
    bridge = _bridge()
    bridge.ask("ray-a")
    health = {
        "step": 10,
        "verdict": "unstable",
        "reasons": ["non-finite loss at step 10"],
        "metrics": {"health/loss": math.inf},
    }
    stop = bridge.on_result(
        "ray-a", {"gs_value": -1e9, "gs_step": 10, "gs_final": False, "gs_health": json.dumps(health)}
    )
    # the scheduler is told to stop the trial
    assert stop
    trial = bridge.study.trials[0]
    # the health report was written to the trial before the decision (Contract 4)
    assert trial.user_attrs["gradsweep.health.latest"]["verdict"] == "unstable"
    # and the intermediate value at its step
    assert trial.intermediate_values == {10: -1e9}
    outcome = bridge.finish("ray-a", {"gs_value": -1e9, "gs_step": 10, "gs_final": False})
    trial = bridge.study.trials[0]
    # the stopped trial is PRUNED (not COMPLETE) with kind, reason and step
    assert outcome is not None and trial.state == TrialState.PRUNED
    # the kind is the health one
    assert trial.user_attrs["gradsweep.prune.kind"] == "unstable"
    # the reason is the rule's line
    assert trial.user_attrs["gradsweep.prune.reason"] == "non-finite loss at step 10"
    # the step is the report's
    assert trial.user_attrs["gradsweep.prune.step"] == 10
    # the tally counts it by kind
    assert bridge.tally.pruned["unstable"] == 1 and bridge.tally.running == 0


def test_base_pruner_prunes_underperforming_trial() -> None:
    bridge = _bridge()
    bridge.ask("good")
    bridge.on_result("good", {"gs_value": 1.0, "gs_step": 0})
    bridge.finish("good", _final(1.0))
    bridge.ask("bad")
    # a value below the median of finished trials stops the trial
    assert bridge.on_result("bad", {"gs_value": 0.1, "gs_step": 0})
    bridge.finish("bad", None)
    bad = bridge.study.trials[1]
    # ... and stores it PRUNED "underperforming"
    assert bad.state == TrialState.PRUNED and bad.user_attrs["gradsweep.prune.kind"] == "underperforming"


def test_the_decision_uses_the_health_report_the_bridge_holds_not_a_read_back() -> None:
    bridge = _bridge(n_trials=1)
    bridge.ask("a")
    healthy = {"step": 5, "verdict": "healthy", "reasons": [], "metrics": {"health/loss": 1.0}}
    # a healthy report: stored, and the trial goes on
    assert not bridge.on_result(
        "a", {"gs_value": 0.5, "gs_step": 5, "gs_final": False, "gs_health": json.dumps(healthy)}
    )
    tid = bridge.study.trials[0]._trial_id
    # the stored report is the one sent (Contract 4 is kept)
    assert bridge.study.trials[0].user_attrs["gradsweep.health.latest"] == healthy
    tampered = {**healthy, "verdict": "unstable", "reasons": ["written behind the bridge's back"]}
    bridge.storage.set_trial_user_attr(tid, "gradsweep.health.latest", tampered)
    # a result without a new report: the pruner judges the report the bridge holds (healthy), so the
    # trial goes on; a pruner reading the health attrs back would have pruned it on the tampered one
    assert not bridge.on_result("a", {"gs_value": 0.5, "gs_step": 6, "gs_final": False})


def test_an_objective_raised_prune_is_stored_by_the_prune_attr_writer() -> None:
    bridge = _bridge(n_trials=1)
    bridge.ask("a")
    result = {
        "gs_final": True,
        "gs_outcome": "pruned",
        "gs_kind": "unstable",
        "gs_reason": "gave up",
        "gs_step": 2,
    }
    bridge.finish("a", result)
    trial = bridge.study.trials[0]
    prune_attrs = {k: v for k, v in trial.user_attrs.items() if k.startswith("gradsweep.prune.")}
    # PRUNED with exactly the attrs of the one writer's record
    assert trial.state == TrialState.PRUNED and prune_attrs == PruneRecord("unstable", "gave up", 2).attrs()


def test_nan_error_and_completion_are_final_states() -> None:
    bridge = _bridge(n_trials=3, abort_after=0)
    for rid in ("nan", "err", "ok"):
        bridge.ask(rid)
    bridge.finish("nan", _final(math.nan))
    bridge.on_error("err", 'Traceback\n  File "o.py", line 3, in f\nRuntimeError: boom')
    bridge.finish("err", None, error=True)
    bridge.finish("ok", _final(0.5))
    nan, err, ok = bridge.study.trials
    # NaN: FAIL with the non-finite reason (never RUNNING)
    assert (
        nan.state == TrialState.FAIL
        and nan.user_attrs["gradsweep.fail.reason"] == "non-finite objective value"
    )
    # error: FAIL with the exception line first
    assert err.state == TrialState.FAIL and err.user_attrs["gradsweep.fail.reason"].startswith(
        "RuntimeError: boom"
    )
    # a finite value: COMPLETE, and the best so far
    assert ok.state == TrialState.COMPLETE and bridge.tally.best_number == 2


def test_error_before_a_successful_retry_is_forgotten() -> None:
    bridge = _bridge(n_trials=1)
    bridge.ask("r")
    bridge.on_error("r", "RuntimeError: first attempt")  # Ray retried the trial
    bridge.finish("r", _final(0.3))
    # the retried trial completes; the earlier error does not turn it into FAIL
    assert bridge.study.trials[0].state == TrialState.COMPLETE


def test_all_failing_first_trials_abort_the_sweep() -> None:
    bridge = _bridge(n_trials=10, abort_after=2)
    for rid in ("a", "b"):
        bridge.ask(rid)
        bridge.finish(rid, None, error=True)
    # after the first 2 trials all failed, no more trials are asked for
    assert bridge.aborted and bridge.ask("c") is None


def test_reconcile_marks_live_trials_interrupted() -> None:
    bridge = _bridge(n_trials=2)
    bridge.ask("a")
    bridge.ask("b")
    bridge.finish("a", _final(1.0))
    numbers = bridge.reconcile("interrupted")
    # only the live trial is reconciled, to FAIL "interrupted"
    assert numbers == [1]
    # the live one is FAIL now
    assert bridge.study.trials[1].state == TrialState.FAIL
    # with the reason "interrupted"
    assert bridge.study.trials[1].user_attrs["gradsweep.fail.reason"] == "interrupted"


@pytest.mark.parametrize("seed", [0, 5])
def test_same_seed_samples_same_configs(seed: int) -> None:
    def configs() -> list[float]:
        bridge = _bridge(n_trials=3, seed=seed)
        out = []
        for rid in ("a", "b", "c"):
            config = bridge.ask(rid)
            # every ask within n_trials gives a config
            assert config is not None
            out.append(config["gs_config"]["params"]["towers.all.lr"])
            bridge.finish(rid, _final(0.0))
        return out

    # a seeded sweep samples the same configs each time
    assert configs() == configs()


@pytest.mark.parametrize(
    "pruner", ["median", "percentile", "hyperband", "successive_halving", "wilcoxon", "patient", "none"]
)
def test_every_base_pruner_decides_on_the_driver(pruner: str) -> None:
    from gradsweep.search.engine.algorithms import make_base_pruner

    bridge = _bridge(n_trials=6)
    bridge.decider = HealthPruner(make_base_pruner(pruner, n_startup_trials=1))
    for i, rid in enumerate("abcdef"):
        bridge.ask(rid)
        stopped = False
        for step in range(4):
            if bridge.on_result(rid, {"gs_value": float(i % 3) - step * (i % 2), "gs_step": step}):
                stopped = True
                break
        bridge.finish(rid, None if stopped else _final(float(i % 3)))
    states = {t.state for t in bridge.study.trials}
    # each pruner runs under the bridge and every trial ends COMPLETE or PRUNED
    assert states <= {TrialState.COMPLETE, TrialState.PRUNED} and len(bridge.study.trials) == 6


def test_declared_total_steps_are_stored_and_the_final_report_is_never_pruned() -> None:
    bridge = _bridge()
    bridge.ask("good")
    bridge.on_result("good", {"gs_value": 1.0, "gs_step": 0})
    bridge.finish("good", _final(1.0))
    bridge.ask("last")
    # the worker sends the step of its final report with each result; the driver stores it once
    assert not bridge.on_result("last", {"gs_value": 0.1, "gs_step": 3, "gs_total_steps": 3})
    assert bridge.study.trials[1].user_attrs["gradsweep.total_steps"] == 3
    # below the median, but at its final report: kept, the value is the trial's result
    bridge.finish("last", _final(0.1))
    assert bridge.study.trials[1].state == TrialState.COMPLETE and bridge.study.trials[1].value == 0.1
