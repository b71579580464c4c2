"""Scale-free rules on synthetic windows fed through the Judge: baselines come from the run itself."""

from __future__ import annotations

import math

import pytest

from gradsweep.objectives.health.judge import EARLY_STEPS, Judge
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
    boom = [_window(19 + 10 * i, [2.0] * 10, enc=[5000.0] * 10, dec=[0.6] * 10) for i in range(3)]
    results = _run(HealthConfig(), [early, *boom])
    # early norm = the smallest of the first 5 steps' norms (1.0); 5000 > 1000 x 1 for 3 checks
    assert [worst(r.verdict for r in rs) for rs in results] == [
        Verdict.HEALTHY, Verdict.WARNING, Verdict.WARNING, Verdict.UNSTABLE,
    ]  # fmt: skip
    last = results[-1][0]
    assert last.rule == "exploding" and not last.hard
    assert last.reason == "enc grad norm 5e+03 > 1e+03 (1000x its early norm 1) for 3 checks (steps 19-39)"


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


def test_divergence_is_hard_and_needs_the_level_over_the_start_for_sustain_checks() -> None:
    windows = [
        _window(9, [4.2, 4.1, 4.3, 4.2, 4.0, 3.0, 2.5, 2.4, 2.3, 2.2]),  # start = median(first 5) = 4.2
        _window(19, [13.0, 49.0, 20.0, 2.0, 30.0] * 2),  # a spike inside a window: median 20 > 4.2
        _window(29, [15.0] * 10),
        _window(39, [16.0] * 10),
        _window(49, [14.0] * 10),
    ]
    results = _run(HealthConfig(), windows)
    assert results[0] == []
    # over the line for 1-3 checks: divergence warns (the spikes in them are the loss_spike rule's)
    assert [[r.verdict for r in rs if r.rule == "divergence"] for rs in results[1:4]] == [
        [Verdict.WARNING]
    ] * 3
    diverged = next(r for r in results[4] if r.rule == "divergence")
    assert diverged.hard and "divergence" in HARD_RULES
    # 14 is down from the excursion's peak of 20 by 23% of its height over the start on a log scale
    # (log 20/14 over log 20/4.2): more than the recovery default (20%), so the fourth check warns
    assert diverged.verdict == Verdict.WARNING
    assert (
        diverged.reason == "loss 14 above its start 4.2 + 0.1x for 4 checks (steps 19-49), recovering from 20"
    )
    # with the level staying up it is unstable at the fourth check
    stuck = [*windows[:4], _window(49, [17.0] * 10)]
    diverged = next(r for r in _run(HealthConfig(), stuck)[4] if r.rule == "divergence")
    assert diverged.verdict == Verdict.UNSTABLE
    assert diverged.reason == "loss 17 above its start 4.2 + 0.1x for 4 checks (steps 19-49)"


def test_a_catapult_that_comes_back_down_is_not_pruned() -> None:
    # a high LR's early catapult (finetune in the health-transfer bank): up 4x, then back below the start
    levels = [2.3, 3.0, 7.9, 5.3, 2.5, 1.1, 0.9]
    windows = [_window(9, [1.7] * 10)] + [_window(19 + 10 * i, [x] * 10) for i, x in enumerate(levels)]
    results = _run(HealthConfig(), windows)
    assert not any(r.verdict == Verdict.UNSTABLE for rs in results for r in rs), results
    # at the fourth check over the line it is 5.3, down from 7.9: recovering, a warning with the reason
    assert any("recovering from 7.9" in r.reason for r in results[4])


def test_an_early_explosion_does_not_raise_the_start_past_the_first_losses() -> None:
    # LR far too high: step 0 is the model at init, steps 1-4 already blow up, then it never recovers
    windows = [
        _window(9, [4.2, 40.0, 4.3, 90.0, 4.1] + [60.0] * 5),
        *[_window(19 + 10 * i, [55.0 + i] * 10) for i in range(3)],
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
    results = _run(HealthConfig(), noisy)  # the default margin: 10% over the start
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
        *[_window(19 + 10 * i, [9.0] * 10, enc=[3000.0] * 10) for i in range(4)],
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


def test_a_hard_finding_stands_at_later_checks_and_survives_a_state_round_trip() -> None:
    # a loss that exploded, then dipped (as a diverged loss does): a report made at the dip must
    # still see the divergence, or the pruner, which reads the latest check, would miss it
    windows = [_window(9, [1.4] * 10)] + [
        _window(19 + 10 * i, [x] * 10) for i, x in enumerate([3e3, 2e5, 7e4, 4e4, 8e3])
    ]
    judge = Judge(HealthConfig(), RuleContext())
    results = [judge.judge(w) for w in windows]
    assert [r.verdict for r in results[4] if r.rule == "divergence"] == [Verdict.UNSTABLE]
    later = [r for r in results[5] if r.rule == "divergence"]
    assert [r.verdict for r in later] == [Verdict.UNSTABLE] and later[0].reason.endswith(
        "(unstable since step 49)"
    )
    restored = Judge(HealthConfig(), RuleContext())
    restored.load_state_dict(judge.state_dict())
    after = restored.judge(_window(69, [1.0] * 10))
    assert [r.rule for r in after if r.verdict == Verdict.UNSTABLE] == ["divergence"]
