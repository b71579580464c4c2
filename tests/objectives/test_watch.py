"""StepWatch: a loop that calls optimizer.step() itself gets the health reports trainer.step gives."""

from __future__ import annotations

import math
from collections.abc import Callable

import optuna
import pytest
import torch
import torch.nn.functional as F

from gradsweep.objectives.api import TrialContext
from gradsweep.objectives.health import HealthReport
from gradsweep.objectives.health.monitor import HealthMonitor
from gradsweep.objectives.watch import ClosureStep, MissingClip, MissingLoss, StepWatch
from gradsweep.search.engine.optuna_reporter import OptunaReporter
from gradsweep.search.pruner import HealthPruner
from gradsweep.spaces.health import HealthConfig
from gradsweep.spaces.trial_config import ClipConfig, MetricConfig, StageConfig, TowerConfig, TrialConfig


def two_tower_config(*, lr: float = 0.05, clip: float | None = 0.5, steps: int = 12) -> TrialConfig:
    """Two towers with their own LR and clip; global clip ``clip``; a check every 3 steps."""
    return TrialConfig(
        objective="user",
        metric=MetricConfig(name="neg_mse"),
        towers=[
            TowerConfig(name="body", patterns=["0.*"], lr=lr, weight_decay=0.01, clip_max_norm=2.0),
            TowerConfig(name="head", patterns=["2.*"], lr=lr * 0.5),
        ],
        clip=ClipConfig(max_norm=clip),
        stages=[StageConfig(name="train", steps=steps)],
        health=HealthConfig(check_every=3),
    )


def model_and_data(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=g)
    y = (x @ torch.randn(8, 1, generator=g)) * 5.0
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)), x, y


def with_trainer_step(config: TrialConfig) -> tuple[list[HealthReport], torch.nn.Module]:
    model, x, y = model_and_data()
    ctx = TrialContext(config, device="cpu")
    trainer = ctx.trainer(model, steps_per_epoch=1)
    reports = []
    for i in range(trainer.total_steps):
        batch = slice((i % 4) * 16, (i % 4 + 1) * 16)
        report = trainer.step(F.mse_loss(model(x[batch]), y[batch]))
        if report is not None:
            reports.append(report)
    return reports, model


def with_own_step(
    config: TrialConfig, *, clip_with_watch: bool = True
) -> tuple[list[HealthReport], torch.nn.Module]:
    model, x, y = model_and_data()
    ctx = TrialContext(config, device="cpu")
    trainer = ctx.trainer(model, steps_per_epoch=1)
    opt, sched, scaler = trainer.optimizer, trainer.scheduler, trainer.scaler
    watch = trainer.watch()
    reports, seen = [], None
    for i in range(trainer.total_steps):
        batch = slice((i % 4) * 16, (i % 4 + 1) * 16)
        loss = F.mse_loss(model(x[batch]), y[batch])
        scaler.scale(loss).backward()
        watch.loss(loss)
        scaler.unscale_(opt)
        if clip_with_watch:
            watch.clip()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sched.step()
        if trainer.latest_health is not seen:
            seen = trainer.latest_health
            reports.append(seen)
    return reports, model


def test_own_step_with_hooks_gives_the_same_health_reports_as_trainer_step() -> None:
    config = two_tower_config()
    expected, model_a = with_trainer_step(config)
    got, model_b = with_own_step(config)
    # one report per check_every=3 optimizer steps on both paths
    assert [r.step for r in got] == [r.step for r in expected] == [2, 5, 8, 11]
    # clipping triggered, so pre- and post-clip norms differ (the comparison below means something)
    assert (
        expected[0].metrics["health/grad_norm_global"] > expected[0].metrics["health/grad_norm_global_post"]
    )
    # the same verdicts, reasons and every metric, to float tolerance
    for a, b in zip(expected, got, strict=True):
        assert (a.verdict, a.reasons) == (b.verdict, b.reasons)
        assert a.metrics.keys() == b.metrics.keys()
        for key in a.metrics:
            assert math.isclose(a.metrics[key], b.metrics[key], rel_tol=1e-6, abs_tol=1e-9), key
    # and the same trained weights
    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_without_watch_clip_the_monitor_sees_the_gradients_at_the_step() -> None:
    # no clipping configured: the gradients at optimizer.step() are the pre-clip ones
    config = two_tower_config(clip=None)
    config = config.model_copy(
        update={"towers": tuple(t.model_copy(update={"clip_max_norm": None}) for t in config.towers)}
    )
    expected, _ = with_trainer_step(config)
    got, _ = with_own_step(config, clip_with_watch=False)
    # every grad-norm metric matches the trainer's
    for a, b in zip(expected, got, strict=True):
        for key in a.metrics:
            assert math.isclose(a.metrics[key], b.metrics[key], rel_tol=1e-5, abs_tol=1e-9), key


def test_a_step_without_a_loss_is_refused_with_what_to_do() -> None:
    model, x, y = model_and_data()
    trainer = TrialContext(two_tower_config(), device="cpu").trainer(model, steps_per_epoch=1)
    trainer.watch()
    F.mse_loss(model(x), y).backward()
    # optimizer.step() without watch.loss() names the missing call
    with pytest.raises(MissingLoss, match=r"call watch\.loss\(loss\)"):
        trainer.optimizer.step()


def test_trainer_step_refuses_while_a_watch_is_attached_and_works_after_remove() -> None:
    model, x, y = model_and_data()
    trainer = TrialContext(two_tower_config(), device="cpu").trainer(model, steps_per_epoch=1)
    watch = trainer.watch()
    # both paths at once would observe each step twice
    with pytest.raises(RuntimeError, match="observe each step twice"):
        trainer.step(F.mse_loss(model(x), y))
    watch.remove()
    trainer.optimizer.zero_grad()
    trainer.step(F.mse_loss(model(x), y))
    # after remove() the hook is gone and trainer.step counts its own step
    assert trainer.global_step == 1


def test_own_step_loop_is_pruned_as_unstable_with_the_reason_trainer_step_gets() -> None:
    # an LR that makes the loss non-finite: both loops must be pruned at the same step, same reason
    config = two_tower_config(lr=1e6, clip=None)

    def objective(own: bool) -> Callable[[optuna.Trial], float]:
        def run(trial: optuna.Trial) -> float:
            ctx = TrialContext(config, reporter=OptunaReporter(trial), device="cpu")
            model, x, y = model_and_data()
            trainer = ctx.trainer(model, steps_per_epoch=1)
            watch = trainer.watch() if own else None
            for _ in range(trainer.total_steps):
                loss = F.mse_loss(model(x), y) * 1e6
                if watch is None:
                    trainer.step(loss)
                else:
                    loss.backward()
                    watch.loss(loss)
                    watch.clip()
                    trainer.optimizer.step()
                    trainer.optimizer.zero_grad()
                    trainer.scheduler.step()
                ctx.report(-loss.item(), trainer.global_step)
            return -loss.item()

        return run

    outcomes = []
    for own in (False, True):
        study = optuna.create_study(direction="maximize", pruner=HealthPruner())
        study.optimize(objective(own), n_trials=1, catch=())
        trial = study.trials[0]
        outcomes.append((trial.state, trial.user_attrs.get("gradsweep.prune.reason"), trial.last_step))
    # the trainer.step loop is pruned for health
    assert outcomes[0][0] == optuna.trial.TrialState.PRUNED
    # the own-step loop gets the same decision, reason and step
    assert outcomes[1] == outcomes[0]


def test_a_step_the_grad_scaler_skips_is_observed_too() -> None:
    # an enabled GradScaler (CPU loss scaling) skips optimizer.step() on non-finite gradients,
    # so the optimizer hook never fires; the watch's wrap of scaler.step observes it anyway
    model, x, y = model_and_data()
    config = two_tower_config(clip=None)
    trainer = TrialContext(config, device="cpu").trainer(model, steps_per_epoch=1)
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=16.0)
    monitor = HealthMonitor(
        trainer.optimizer, HealthConfig(check_every=3), towers=config.towers, scaler=scaler
    )
    watch = StepWatch(trainer.optimizer, monitor, scaler=scaler)
    stepped = []
    trainer.optimizer.register_step_post_hook(lambda *_: stepped.append(True))
    reports = []
    for i in range(3):
        loss = F.mse_loss(model(x), y) * (float("inf") if i == 1 else 1.0)
        scaler.scale(loss).backward()
        watch.loss(loss)
        scaler.step(trainer.optimizer)
        scaler.update()
        trainer.optimizer.zero_grad()
        reports.append(watch.latest_health)
    # the optimizer stepped twice: the scaler skipped the step with infinite gradients
    assert len(stepped) == 2
    # all three steps were observed, and the check counts the skipped one
    assert watch.global_step == 3 and reports[-1] is not None
    assert reports[-1].metrics["health/scaler/skipped_steps"] == 1.0
    watch.remove()
    # remove() puts the scaler's own step back
    assert "step" not in vars(scaler)


def test_a_closure_step_is_refused_since_its_gradients_come_after_the_hook() -> None:
    model, x, y = model_and_data()
    trainer = TrialContext(two_tower_config(), device="cpu").trainer(model, steps_per_epoch=1)
    watch = trainer.watch()

    def closure() -> torch.Tensor:
        loss = F.mse_loss(model(x), y)
        loss.backward()
        watch.loss(loss)
        return loss

    # the hook would judge the previous step's gradients: refused, pointing at what works
    with pytest.raises(ClosureStep, match=r"call backward\(\) before optimizer\.step\(\)"):
        trainer.optimizer.step(closure)


def test_a_step_without_watch_clip_is_refused_when_the_config_clips() -> None:
    model, x, y = model_and_data()
    trainer = TrialContext(two_tower_config(clip=0.5), device="cpu").trainer(model, steps_per_epoch=1)
    watch = trainer.watch()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    watch.loss(loss)
    # the searched clip would silently do nothing: refused, naming what the config clips and the call
    with pytest.raises(
        MissingClip, match=r"clip\.max_norm 0\.5, towers\.body\.clip_max_norm 2.*call watch\.clip\(\)"
    ):
        trainer.optimizer.step()
