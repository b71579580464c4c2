"""Rules over synthetic check summaries: sustain, warmup, frozen towers, scaler, spikes, stalls."""

from __future__ import annotations

import math

from gradsweep.objectives.health.rules import RuleContext, evaluate
from gradsweep.objectives.health.summary import CheckSummary, TowerSummary, summarize_window
from gradsweep.objectives.health.verdict import Verdict, worst
from gradsweep.spaces.health import HealthConfig


def _summary(step: int, **towers: float) -> CheckSummary:
    return CheckSummary(
        first_step=step - 99,
        step=step,
        n_steps=100,
        towers={
            t: TowerSummary(steps_with_grad=100, grad_norm_pre=v, decay_to_grad=0.1)
            for t, v in towers.items()
        },
        losses=[1.0],
    )


def test_vanishing_warns_then_fires_after_sustain_with_reason() -> None:
    config = HealthConfig(vanishing={"tower_floors": {"text_encoder": 1e-6}, "sustain": 5})
    history = [_summary(s, text_encoder=3.1e-7, video=1.0) for s in (100, 200, 300, 400, 500)]
    results = evaluate(history[:4], config, RuleContext(checks_done=4))
    # four checks below the floor: a warning only
    assert [r.verdict for r in results] == [Verdict.WARNING]
    results = evaluate(history, config, RuleContext(checks_done=5))
    # the fifth makes it unstable, with tower, value, threshold, checks and steps
    assert results[0].verdict == Verdict.UNSTABLE
    assert results[0].reason == "text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 100-500)"


def test_sustain_counts_only_the_trailing_run() -> None:
    config = HealthConfig(vanishing={"threshold": 1e-7, "sustain": 2})
    history = [_summary(1, a=1e-9, b=1.0), _summary(2, a=1.0, b=1.0), _summary(3, a=1e-9, b=1.0)]
    # a healthy check in between resets the run: warning, not unstable
    assert worst(r.verdict for r in evaluate(history, config, RuleContext(checks_done=3))) == Verdict.WARNING


def test_warmup_caps_sustained_rules_at_warning() -> None:
    config = HealthConfig(warmup_checks=3, vanishing={"threshold": 1e-7, "sustain": 1})
    history = [_summary(1, a=1e-9, b=1.0)]
    # within warmup a sustained rule only warns
    assert evaluate(history, config, RuleContext(checks_done=2))[0].verdict == Verdict.WARNING
    # after warmup it fires
    assert evaluate(history, config, RuleContext(checks_done=4))[0].verdict == Verdict.UNSTABLE


def test_frozen_and_gradless_towers_are_never_vanishing() -> None:
    config = HealthConfig(vanishing={"sustain": 1})
    s = _summary(1, frozen_cfg=0.0)
    s.towers["no_grads"] = TowerSummary(steps_with_grad=0)
    # a tower frozen in the config, and one without gradients, raise nothing
    assert evaluate([s], config, RuleContext(frozen=frozenset({"frozen_cfg"}))) == []


def test_exploding_uses_clip_multiple_and_names_it() -> None:
    config = HealthConfig(exploding={"sustain": 1, "clip_multiple": 5.0, "threshold": 1e3})
    s = _summary(10, enc=12.0)
    results = evaluate([s], config, RuleContext(tower_clip={"enc": 1.0}))
    # 12 > 5 x clip max_norm 1: a warning (clipping absorbs it), and the reason says why
    assert results[0].verdict == Verdict.WARNING
    assert results[0].reason == "enc grad norm 12 > 5 (5x clip max_norm 1) for 1 check (step 10)"
    # over the absolute threshold it is unstable, whatever the clip
    big = _summary(10, enc=2e3)
    assert evaluate([big], config, RuleContext(tower_clip={"enc": 1.0}))[0].verdict == Verdict.UNSTABLE
    # without a clip limit the absolute threshold (the override, 1e3) applies, so 12 is fine
    assert evaluate([s], config, RuleContext()) == []


def test_nonfinite_is_unstable_at_once_and_respects_scaler() -> None:
    rows = [[1.0, 1.0, 1.0, 1.0, 0.5, 1.0], [math.inf, math.inf, math.inf, math.inf, 0.4, 1.0]]
    s = summarize_window(["all"], rows, steps=[7, 8], has_grad=[(True,), (True,)], scaler_enabled=False)
    results = evaluate([s], HealthConfig(), RuleContext())
    # one non-finite gradient step without a scaler is unstable on the first check
    assert results[0].verdict == Verdict.UNSTABLE
    assert results[0].reason == "non-finite gradients in all at step 8 (1 of 2 steps)"
    s2 = summarize_window(["all"], rows, steps=[7, 8], has_grad=[(True,), (True,)], scaler_enabled=True)
    # with an enabled GradScaler the same step is a skipped step, not instability
    assert s2.skipped_steps == 1 and evaluate([s2], HealthConfig(), RuleContext(scaler_enabled=True)) == []
    rows[0][4] = math.nan
    s3 = summarize_window(["all"], rows, steps=[7, 8], has_grad=[(True,), (True,)], scaler_enabled=True)
    # a non-finite loss is unstable even with a scaler
    assert (
        "non-finite loss at step 7"
        in evaluate([s3], HealthConfig(), RuleContext(scaler_enabled=True))[0].reason
    )


def test_scaler_storm_and_scale_collapse() -> None:
    s = _summary(40)
    s.overflow_streak, s.min_scale = 25, 0.5
    reasons = [r.reason for r in evaluate([s], HealthConfig(), RuleContext(scaler_enabled=True))]
    # both the streak and the collapsed scale are named
    assert any("skipped 25 steps in a row > 20" in r for r in reasons)
    assert any("scale 0.5 < 1" in r for r in reasons)
    # without an enabled scaler the rule is silent
    assert evaluate([s], HealthConfig(), RuleContext()) == []


def test_loss_stall_only_when_enabled() -> None:
    history = [_summary(i) for i in range(1, 8)]
    for s in history:
        s.losses = [1.0]
    # disabled by default
    assert evaluate(history, HealthConfig(), RuleContext(checks_done=7)) == []
    config = HealthConfig(loss_stall={"enabled": True, "window": 3})
    results = evaluate(history, config, RuleContext(checks_done=7))
    # a flat loss over the window is a stall, reported as unstable
    assert results[0].verdict == Verdict.UNSTABLE and results[0].reason.startswith("loss stalled")


def test_summary_round_trips_and_ignores_gradless_towers() -> None:
    rows = [[0.0, 2.0, 0.0, 2.0, 2.0, 2.0, 1.0, 1.0]]
    s = summarize_window(["frozen", "live"], rows, steps=[3], has_grad=[(False, True)], scaler_enabled=False)
    # the gradless tower has no steps and no norm; the live one has its value
    assert s.towers["frozen"].steps_with_grad == 0 and math.isnan(s.towers["frozen"].grad_norm_pre)
    assert s.towers["live"].grad_norm_pre == 2.0
    # to_dict/from_dict is lossless (state_dict relies on it)
    assert CheckSummary.from_dict(s.to_dict()) == s
