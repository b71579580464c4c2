"""Scale-free rules on synthetic windows fed through the Judge: baselines come from the run itself."""

from __future__ import annotations

import math

import pytest

from gradsweep.objectives.health.judge import EARLY_STEPS, Judge, replay
from gradsweep.objectives.health.rules import RuleContext
from gradsweep.objectives.health.summary import CheckSummary, TowerSummary
from gradsweep.objectives.health.verdict import HARD_RULES, Verdict, worst
from gradsweep.spaces.health import HealthConfig


def _window(step: int, losses: list[float], **norms: list[float]) -> CheckSummary:
    towers = {}
    for name, values in norms.items():
        finite = [v for v in values if math.isfinite(v)]
        towers[name] = TowerSummary(
            steps_with_grad=len(values),
            grad_norm_pre=sum(finite) / len(finite) if finite else math.nan,
            norms=list(values),
        )
    n = len(losses)
    return CheckSummary(
        first_step=step - n + 1,
        step=step,
        n_steps=n,
        towers=towers,
        losses=list(losses),
        loss_steps=list(range(step - n + 1, step + 1)),
    )


def _run(config: HealthConfig, windows: list[CheckSummary]) -> list[list]:
    judge = Judge(config, RuleContext())
    return [judge.judge(w) for w in windows]


def test_large_steady_norms_are_healthy_where_an_absolute_line_would_fire() -> None:
    # a model whose gradients are ~3e4 from the first step on (a summed loss, say)
    windows = [
        _window(9 + 10 * i, [5.0 - 0.1 * i] * 10, enc=[3e4 * (1 + 0.1 * (j % 3)) for j in range(10)])
        for i in range(8)
    ]
    assert all(results == [] for results in _run(HealthConfig(), windows))
    # the same run under an explicit absolute override of 1e3 is unstable after 3 checks
    flagged = _run(HealthConfig(exploding={"threshold": 1e3}), windows)
    assert flagged[2][0].verdict == Verdict.UNSTABLE and "> 1e+03" in flagged[2][0].reason


def test_exploding_is_relative_to_the_towers_early_norm_and_names_it() -> None:
    early = _window(9, [2.0] * 10, enc=[1.0, 2.0, 1.5, 1.2, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0], dec=[0.5] * 10)
    boom = [_window(19 + 10 * i, [2.0] * 10, enc=[500.0] * 10, dec=[0.6] * 10) for i in range(3)]
    results = _run(HealthConfig(), [early, *boom])
    # early norm = the smallest of the first 5 steps' norms (1.0); 500 > 100 x 1 for 3 checks
    assert [worst(r.verdict for r in rs) for rs in results] == [
        Verdict.HEALTHY, Verdict.WARNING, Verdict.WARNING, Verdict.UNSTABLE,
    ]  # fmt: skip
    last = results[-1][0]
    assert last.rule == "exploding" and not last.hard
    assert last.reason == "enc grad norm 5e+02 > 1e+02 (100x its early norm 1) for 3 checks (steps 19-39)"


def test_a_zero_initialized_towers_early_norm_skips_its_zero_steps() -> None:
    # a zero-initialized head gives the body zero gradients at step 0; the early norm is the first positive one
    w = _window(9, [1.0] * 10, body=[0.0, 0.2, 0.3, 0.3, 0.3] + [0.3] * 5)
    judge = Judge(HealthConfig(), RuleContext())
    judge.judge(w)
    assert judge.history[-1].towers["body"].early_norm == 0.2


def test_vanishing_is_relative_to_the_early_norm() -> None:
    start = _window(9, [1.0] * 10, text=[1e-8] * 10, video=[1.0] * 10)  # tiny but its own normal
    steady = [_window(19 + 10 * i, [1.0] * 10, text=[1.2e-8] * 10, video=[1.0] * 10) for i in range(6)]
    assert all(r == [] for r in _run(HealthConfig(), [start, *steady]))
    dead = [_window(19 + 10 * i, [1.0] * 10, text=[1e-13] * 10, video=[1.0] * 10) for i in range(5)]
    results = _run(HealthConfig(), [start, *dead])
    assert results[-1][0].verdict == Verdict.UNSTABLE and results[-1][0].rule == "vanishing"
    assert "1e-13 < 1e-12" in results[-1][0].reason


def test_divergence_is_hard_and_needs_the_level_above_the_start_for_sustain_checks() -> None:
    windows = [
        _window(9, [4.2, 4.1, 4.3, 4.2, 4.0, 3.0, 2.5, 2.4, 2.3, 2.2]),  # start = median(first 5) = 4.2
        _window(19, [13.0, 49.0, 20.0, 2.0, 30.0] * 2),  # a spike inside a window: median 20 > 4.2
        _window(29, [15.0] * 10),
    ]
    results = _run(HealthConfig(), windows)
    assert results[0] == [] and worst(r.verdict for r in results[1]) == Verdict.WARNING
    diverged = next(r for r in results[2] if r.rule == "divergence")
    assert diverged.verdict == Verdict.UNSTABLE and diverged.hard and "divergence" in HARD_RULES
    assert diverged.reason == "loss 15 above its start 4.2 for 2 checks (steps 19-29)"


def test_an_early_explosion_does_not_raise_the_start_past_the_first_losses() -> None:
    # LR far too high: step 0 is the model at init, steps 1-4 already blow up, then it never recovers
    windows = [
        _window(9, [4.2, 40.0, 4.3, 90.0, 4.1] + [60.0] * 5),
        _window(19, [55.0] * 10),
        _window(29, [58.0] * 10),
    ]
    results = _run(HealthConfig(), windows)
    assert any(r.rule == "divergence" for r in results[0])  # the first window is already above 4.2
    diverged = next(r for r in results[-1] if r.rule == "divergence")
    # the start is the median of 4.2, 4.3 and 4.1: the blown-up losses are left out
    assert diverged.verdict == Verdict.UNSTABLE and "above its start 4.2" in diverged.reason


def test_a_noisy_run_that_does_not_learn_is_not_divergence_with_a_margin() -> None:
    noisy = [
        _window(9 + 10 * i, [1.0 + 0.05 * ((i * 7 + j * 3) % 5 - 2) for j in range(10)]) for i in range(8)
    ]
    results = _run(HealthConfig(divergence={"margin": 0.1}), noisy)
    assert all(not any(r.rule == "divergence" for r in rs) for rs in results)


def test_loss_regress_needs_real_progress_and_gives_back_more_than_the_fraction() -> None:
    learn = [_window(9, [4.0] * 5 + [3.0] * 5), _window(19, [2.0] * 10), _window(29, [1.0] * 10)]
    relapse = [_window(39 + 10 * i, [3.0] * 10) for i in range(3)]  # gave back 2/3 of 4.0 -> 1.0
    results = _run(HealthConfig(), [*learn, *relapse])
    assert [worst(r.verdict for r in rs) for rs in results[3:]] == [
        Verdict.WARNING, Verdict.WARNING, Verdict.UNSTABLE,
    ]  # fmt: skip
    found = results[-1][0]
    assert found.rule == "loss_regress" and not found.hard
    assert found.reason == "loss 3 gave back 67% of its progress from 4 to 1 for 3 checks (steps 39-59)"
    # a run that barely moved (1% progress) is never judged for regress
    flat = [
        _window(9, [4.0] * 10),
        _window(19, [3.96] * 10),
        *[_window(29 + 10 * i, [3.99] * 10) for i in range(4)],
    ]
    assert all(not any(r.rule == "loss_regress" for r in rs) for rs in _run(HealthConfig(), flat))


def test_judge_state_round_trip_continues_the_same_decisions() -> None:
    windows = [
        _window(9, [4.2] * 10, enc=[1.0] * 10),
        *[_window(19 + 10 * i, [9.0] * 10, enc=[300.0] * 10) for i in range(4)],
    ]
    config = HealthConfig()
    whole = _run(config, windows)
    first = Judge(config, RuleContext())
    for w in windows[:2]:
        first.judge(CheckSummary.from_dict(w.to_dict()))
    second = Judge(config, RuleContext())
    second.load_state_dict(first.state_dict())
    rest = [second.judge(CheckSummary.from_dict(w.to_dict())) for w in windows[2:]]
    assert [[(r.rule, r.verdict, r.reason) for r in rs] for rs in rest] == [
        [(r.rule, r.verdict, r.reason) for r in rs] for rs in whole[2:]
    ]


def test_replay_leaves_the_recorded_summaries_unchanged() -> None:
    windows = [_window(9, [1.0] * 10, enc=[1.0] * 10)]
    before = windows[0].to_dict()
    steps = replay(windows, HealthConfig(), RuleContext())
    assert steps == [(9, [])] and windows[0].to_dict() == before
    assert math.isnan(windows[0].towers["enc"].early_norm)


@pytest.mark.parametrize("bad", [{"factor": 1.0}, {"threshold": 0.0}])
def test_exploding_config_refuses_meaningless_lines(bad: dict) -> None:
    with pytest.raises(ValueError, match="exploding"):
        HealthConfig(exploding=bad)


def test_early_steps_is_five() -> None:
    # the docs (spaces/health.py, rules table) say "first five"
    assert EARLY_STEPS == 5


def test_no_gradient_in_any_tower_is_dead_a_hard_rule() -> None:
    start = _window(9, [4.2] * 10, enc=[1.0] * 10, dec=[0.5] * 10)
    flat = [_window(19 + 10 * i, [4.2] * 10, enc=[0.0] * 10, dec=[2e-24] * 10) for i in range(5)]
    results = _run(HealthConfig(), [start, *flat])
    last = results[-1]
    assert [(r.rule, r.verdict, r.hard) for r in last] == [("dead", Verdict.UNSTABLE, True)]
    assert (
        last[0].reason
        == "no gradient reaches the model: every tower's grad norm < 1e-12 for 5 checks (steps 19-59)"
    )
    # one tower still learning: the other is vanishing (soft), not dead
    half = [_window(19 + 10 * i, [4.2] * 10, enc=[0.0] * 10, dec=[0.4] * 10) for i in range(5)]
    assert [(r.rule, r.hard) for r in _run(HealthConfig(), [start, *half])[-1]] == [("vanishing", False)]
