"""HealthMonitor on a real two-tower model: each pathology produced for real, a few dozen steps."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch
from torch import nn

from gradsweep.objectives.health import HealthMonitor, HealthReport, Verdict
from gradsweep.spaces.apply import Clipper, build_optimizer
from gradsweep.spaces.trial_config import ClipConfig, TowerConfig, TrialConfig


class TwoTower(nn.Module):
    def __init__(self, text_scale: float = 1.0) -> None:
        super().__init__()
        self.video = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
        self.text = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
        self.text_scale = text_scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.video(x), self.text(x) * self.text_scale


def _config(
    health: dict[str, Any] | None = None,
    *,
    lr: float = 1e-2,
    text_wd: float = 0.0,
    optimizer: str = "adamw",
    clip: float | None = None,
    video_clip: float | None = None,
    text_frozen: bool = False,
) -> TrialConfig:
    return TrialConfig(
        objective="test",
        optimizer={"name": optimizer},
        towers=[
            TowerConfig(name="video", patterns=["video.*"], lr=lr, clip_max_norm=video_clip),
            TowerConfig(name="text", patterns=["text.*"], lr=lr, weight_decay=text_wd, frozen=text_frozen),
        ],
        clip=ClipConfig(max_norm=clip),
        health={"check_every": 4, **(health or {})},
    )


def _train(
    config: TrialConfig,
    steps: int,
    *,
    model: TwoTower | None = None,
    loss_scale: float = 1.0,
    target_scale: float = 1.0,
    seed: int = 0,
) -> tuple[list[HealthReport], HealthMonitor]:
    torch.manual_seed(seed)
    model = model or TwoTower()
    opt = build_optimizer(model, config)
    clipper = Clipper(opt, config)
    monitor = HealthMonitor(opt, config.health, clip=config.clip, towers=config.towers)
    x = torch.randn(32, 8)
    y = torch.randn(32, 4) * target_scale
    reports = []
    for step in range(steps):
        v, t = model(x)
        monitor.observe_output("text_embedding", t)
        loss = loss_scale * nn.functional.mse_loss(v + t, y)
        loss.backward()
        report = monitor.observe(loss.detach(), clipper.clip(), step=step)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if report is not None:
            reports.append(report)
    return reports, monitor


def test_healthy_run_reports_every_k_steps_with_documented_keys() -> None:
    reports, _ = _train(_config(), 12)
    # one report per 4 steps, at the window's last step
    assert [r.step for r in reports] == [3, 7, 11]
    # an ordinary run is healthy
    assert all(r.verdict == Verdict.HEALTHY for r in reports), [r.reasons for r in reports]
    keys = set(reports[-1].metrics)
    for key in (
        "health/text/grad_norm_pre",
        "health/text/grad_norm_post",
        "health/video/param_norm",
        "health/text/decay_to_grad",
        "health/grad_norm_global",
        "health/nonfinite_steps",
        "health/scaler/scale",
        "health/scaler/skipped_steps",
        "health/loss",
        "health/output/text_embedding/norm",
    ):
        # every documented key is present
        assert key in keys, key
    # every key is documented in the monitor's table
    doc = (
        HealthMonitor.__module__ and __import__("gradsweep.objectives.health.monitor", fromlist=["x"]).__doc__
    )
    for key in keys:
        pattern = re.sub(r"^health/(video|text)/", "health/<tower>/", key).replace("text_embedding", "<name>")
        assert f"``{pattern}``" in doc, pattern


def test_metrics_match_direct_computation() -> None:
    torch.manual_seed(0)
    model = TwoTower()
    config = _config(health={"check_every": 1})
    opt = build_optimizer(model, config)
    monitor = HealthMonitor(opt, config.health, towers=config.towers)
    x, y = torch.randn(32, 8), torch.randn(32, 4)
    v, t = model(x)
    monitor.observe_output("emb", t)
    loss = nn.functional.mse_loss(v + t, y)
    loss.backward()
    report = monitor.observe(loss.detach(), step=0)
    text_grads = torch.cat([p.grad.flatten() for p in model.text.parameters()])
    all_grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    # without a ClipResult the monitor measures the gradients itself, per tower and globally
    assert report.metrics["health/text/grad_norm_pre"] == pytest.approx(float(text_grads.norm()), rel=1e-5)
    assert report.metrics["health/grad_norm_global"] == pytest.approx(float(all_grads.norm()), rel=1e-5)
    # parameter norms and the output hook's mean row norm are exact
    text_params = torch.cat([p.detach().flatten() for p in model.text.parameters()])
    assert report.metrics["health/text/param_norm"] == pytest.approx(float(text_params.norm()), rel=1e-5)
    assert report.metrics["health/output/emb/norm"] == pytest.approx(
        float(t.detach().norm(dim=-1).mean()), rel=1e-5
    )
    # the loss is read back from the device buffer
    assert report.metrics["health/loss"] == pytest.approx(loss.detach().item())


def test_huge_lr_gives_nonfinite_and_unstable() -> None:
    reports, _ = _train(_config(lr=1e4, optimizer="sgd"), 40, target_scale=10.0)
    bad = [r for r in reports if r.verdict == Verdict.UNSTABLE]
    # SGD at lr=1e4 diverges to inf/NaN within 40 steps and the monitor calls it unstable
    assert bad, [r.metrics["health/loss"] for r in reports]
    # the reason names the non-finite quantity and the step
    assert re.search(r"non-finite (loss|gradients).* at step \d+", bad[0].reasons[0]), bad[0].reasons
    # the counts say how many steps of the window were non-finite
    assert bad[0].metrics["health/nonfinite_steps"] >= 1


def test_tiny_gradient_with_large_weight_decay_is_decay_dominated() -> None:
    config = _config(health={"decay_dominance": {"sustain": 3}}, lr=1e-3, text_wd=5.0)
    reports, _ = _train(config, 16, loss_scale=1e-9)
    # AdamW's decay step dwarfs the update driven by a 1e-9-scaled gradient
    assert reports[0].metrics["health/text/decay_to_grad"] > 2.0
    # first check warns, third sustained check is unstable with the ratio rule's reason
    assert reports[0].verdict == Verdict.WARNING
    assert reports[2].verdict == Verdict.UNSTABLE
    assert any(
        re.fullmatch(r"text decay-to-grad ratio \S+ > 2 for 3 checks \(steps 3-11\)", r)
        for r in reports[2].reasons
    ), reports[2].reasons
    # the video tower has no weight decay: ratio 0
    assert reports[2].metrics["health/video/decay_to_grad"] == 0.0


def test_normal_gradient_with_small_weight_decay_is_not_decay_dominated() -> None:
    reports, _ = _train(_config(text_wd=0.01), 8)
    # the control: same model, ordinary loss and decay
    assert all(r.metrics["health/text/decay_to_grad"] < 1.0 for r in reports)


def test_vanishing_tower_flagged_after_sustain_with_reason() -> None:
    config = _config(health={"vanishing": {"tower_floors": {"text": 1e-6}, "sustain": 3}})
    reports, _ = _train(config, 12, model=TwoTower(text_scale=1e-9))
    # first check: warning only
    assert reports[0].verdict == Verdict.WARNING
    # third check: unstable, reason in the documented format
    assert reports[2].verdict == Verdict.UNSTABLE
    assert re.fullmatch(r"text grad norm \S+ < 1e-06 for 3 checks \(steps 3-11\)", reports[2].reasons[0])
    # the healthy video tower is not mentioned
    assert not any(r.startswith("video") for r in reports[2].reasons)


@pytest.mark.parametrize("how", ["requires_grad", "config"])
def test_frozen_tower_is_not_vanishing(how: str) -> None:
    config = _config(health={"vanishing": {"sustain": 1, "threshold": 1e-3}}, text_frozen=how == "config")
    model = TwoTower()
    if how == "requires_grad":
        model.text.requires_grad_(False)  # what a stage that does not train the tower does
    reports, _ = _train(config, 8, model=model)
    # the frozen tower has no gradient steps
    assert reports[-1].metrics["health/text/steps_with_grad"] == 0
    # and is not flagged vanishing: the run stays healthy
    assert all(r.verdict == Verdict.HEALTHY for r in reports), [r.reasons for r in reports]


def test_exploding_relative_to_tower_clip() -> None:
    config = _config(health={"exploding": {"sustain": 2, "clip_multiple": 5.0}}, video_clip=0.01)
    reports, _ = _train(config, 8, target_scale=100.0)
    # pre-clip norm comes from the ClipResult; post-clip is held at the tower's max_norm
    assert reports[-1].metrics["health/video/grad_norm_pre"] > 0.05
    assert reports[-1].metrics["health/video/grad_norm_post"] <= 0.01 + 1e-6
    # with clip_multiple set (off by default), sustained over 2 checks: a warning that names the
    # clip multiple (clipping absorbs it; no prune)
    assert reports[1].verdict == Verdict.WARNING
    assert re.fullmatch(
        r"video grad norm \S+ > 0\.05 \(5x clip max_norm 0\.01\) for 2 checks \(steps 3-7\)",
        reports[1].reasons[0],
    ), reports[1].reasons


def test_gradscaler_overflow_storm_on_cpu() -> None:
    torch.manual_seed(0)
    model = nn.Linear(8, 1)
    opt = torch.optim.AdamW([{"params": model.parameters(), "tower": "all"}], lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    config = _config(health={"check_every": 5, "scaler_overflow": {"max_streak": 8}}).health
    monitor = HealthMonitor(opt, config, scaler=scaler)
    x = torch.randn(64, 8)
    reports = []
    for step in range(20):
        loss = model(x).sum() * 1e37  # finite loss whose scaled gradients overflow float32
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        report = monitor.observe(loss.detach(), step=step)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        if report:
            reports.append(report)
    # every step overflowed: the scaler skipped them and the scale fell
    assert reports[0].metrics["health/scaler/skipped_steps"] == 5
    assert reports[-1].metrics["health/scaler/scale"] < 2.0**16 / 2**10
    # finite loss + enabled scaler: the first window is not called non-finite
    assert reports[0].verdict == Verdict.HEALTHY
    # the streak (carried across windows) exceeds max_streak: unstable with a scaler reason
    assert reports[1].verdict == Verdict.UNSTABLE
    assert any("GradScaler skipped 10 steps in a row > 8" in r for r in reports[1].reasons), reports[
        1
    ].reasons


def test_loss_spike_single_check_warns() -> None:
    torch.manual_seed(0)
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD([{"params": model.parameters(), "tower": "all"}], lr=1e-2)
    monitor = HealthMonitor(opt, _config(health={"loss_spike": {"sustain": 2}}).health)
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    reports = []
    for step in range(16):
        xb = x * (30.0 if step == 13 else 1.0)  # one corrupted batch
        loss = nn.functional.mse_loss(model(xb), y)
        loss.backward()
        report = monitor.observe(loss.detach(), step=step)
        opt.zero_grad()  # no update: a constant-ish loss, then the spike
        if report:
            reports.append(report)
    # no spike before the corrupted batch
    assert reports[2].verdict == Verdict.HEALTHY
    # one spike (not yet sustained) warns, naming the step
    assert reports[3].verdict == Verdict.WARNING
    assert any(r.startswith("loss spike") and "at step 13" in r for r in reports[3].reasons)


def test_state_dict_round_trip_mid_window() -> None:
    config = _config(health={"vanishing": {"threshold": 1e-7, "sustain": 3}})
    _, mon_a = _train(config, 6, model=TwoTower(text_scale=1e-9))
    state = mon_a.state_dict()
    torch.manual_seed(1)
    model = TwoTower(text_scale=1e-9)
    opt = build_optimizer(model, config)
    mon_b = HealthMonitor(opt, config.health, clip=config.clip, towers=config.towers)
    mon_b.load_state_dict(state)
    # the restored monitor keeps its history and pending window: the next report continues them
    x, y = torch.randn(32, 8), torch.randn(32, 4)
    report = None
    for step in (6, 7):
        v, t = model(x)
        nn.functional.mse_loss(v + t, y).backward()
        report = mon_b.observe(1.0, step=step)
        opt.zero_grad()
    assert report is not None and report.step == 7 and report.metrics["health/steps"] == 4
    # two checks of vanishing text so far (one restored, one new) -> "for 2 checks"
    assert any("for 2 checks (steps 3-7)" in r for r in report.reasons), report.reasons
    # a monitor over different towers refuses the state
    other = HealthMonitor(
        torch.optim.SGD([{"params": [nn.Parameter(torch.ones(1))], "tower": "x"}], lr=1.0), config.health
    )
    with pytest.raises(ValueError, match="towers"):
        other.load_state_dict(state)


def test_disabled_monitor_and_flush() -> None:
    reports, _ = _train(_config(health={"enabled": False}), 8)
    # a disabled monitor never reports
    assert reports == []
    _, mon = _train(_config(), 6)
    report = mon.flush(step=99)
    # flush judges the partial window (2 steps) at the given step
    assert report is not None and report.step == 99 and report.metrics["health/steps"] == 2
    # and an empty window gives nothing
    assert mon.flush() is None
    # the NaN-free healthy loss is finite in the report
    assert math.isfinite(report.metrics["health/loss"])


def test_decay_and_update_steps_match_adamw_state() -> None:
    from gradsweep.objectives.health.decay import decay_and_update_steps

    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5, 3))
    opt = torch.optim.AdamW([{"params": [w], "tower": "t", "weight_decay": 0.5}], lr=0.1, eps=1e-8)
    for _ in range(3):
        w.grad = torch.randn(5, 3)
        opt.step()
    w.grad = torch.randn(5, 3)
    decay, update = decay_and_update_steps(opt, {"t": 0}, torch.device("cpu"))
    st = opt.state[w]
    step = float(st["step"])
    m_hat = st["exp_avg"] / (1 - 0.9**step)
    v_hat = st["exp_avg_sq"] / (1 - 0.999**step)
    # decay step is lr * wd * ||w||
    assert float(decay[0]) == pytest.approx(0.1 * 0.5 * float(w.detach().norm()), rel=1e-5)
    # the gradient-driven step is lr * ||m_hat / (sqrt(v_hat) + eps)|| from AdamW's state
    assert float(update[0]) == pytest.approx(0.1 * float((m_hat / (v_hat.sqrt() + 1e-8)).norm()), rel=1e-5)
    sgd = torch.optim.SGD([{"params": [w], "tower": "t", "weight_decay": 0.5}], lr=0.1)
    # without Adam state (plain SGD, no momentum) it falls back to lr * ||g||
    assert float(decay_and_update_steps(sgd, {"t": 0}, torch.device("cpu"))[1][0]) == pytest.approx(
        0.1 * float(w.grad.norm()), rel=1e-5
    )
