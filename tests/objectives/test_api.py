"""The objective API: TrialContext, Trainer, checkpoints, reporters and run_objective."""

from __future__ import annotations

import copy
import logging
import math
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import torch.nn.functional as F

from gradsweep.objectives.api import (
    DEVICE_ENV,
    NullReporter,
    Reporter,
    TrialContext,
    TrialPruned,
    resolve_device,
    run_objective,
)
from gradsweep.objectives.checkpoint import CheckpointStore
from gradsweep.objectives.health import HealthReport, Verdict
from gradsweep.search.engine.optuna_reporter import OptunaReporter
from gradsweep.search.pruner import HealthPruner
from gradsweep.spaces.trial_config import TrialConfig

Batch = tuple[torch.Tensor, torch.Tensor]


def _train(ctx: TrialContext, batch: Batch, *, nan_from: int | None = None, report: bool = True) -> float:
    """A bring-your-own loop: a linear model, one trainer step and one report per batch."""
    model = torch.nn.Linear(4, 1)
    trainer = ctx.trainer(model, steps_per_epoch=1)
    x, y = (t.to(ctx.device) for t in batch)
    loss = torch.zeros(())
    for step in range(trainer.total_steps):
        with ctx.autocast():
            loss = F.mse_loss(model(x), y)
        if nan_from is not None and step >= nan_from:
            loss = loss * math.nan
        trainer.step(loss)
        if report:
            ctx.report(-loss.item(), step)
    return -loss.item()


def test_trial_pruned_is_optuna_pruned_with_kind_and_reason() -> None:
    exc = TrialPruned("unstable", "non-finite loss at step 3")
    # it is the exception Optuna's optimize loop treats as "pruned"
    assert isinstance(exc, optuna.TrialPruned)
    # kind and reason travel with it
    assert (exc.kind, exc.reason) == ("unstable", "non-finite loss at step 3")
    with pytest.raises(ValueError, match="kind must be one of unstable, underperforming"):
        TrialPruned("bored", "x")


def test_device_from_argument_env_or_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_ENV, "meta")
    # the environment variable overrides the CUDA-if-available default
    assert resolve_device() == torch.device("meta")
    # an explicit device overrides the environment
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.delenv(DEVICE_ENV)
    # without either, CUDA when present else CPU
    assert resolve_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_context_seeds_every_generator(make_linear_config: Callable[..., TrialConfig]) -> None:
    draws = []
    for _ in range(2):
        TrialContext(make_linear_config(seed=7), device="cpu")
        draws.append((torch.rand(3).tolist(), float(np.random.rand()), random.random()))
    # the same seed gives the same torch, NumPy and Python draws
    assert draws[0] == draws[1]


def test_autocast_is_a_no_op_on_cpu(make_linear_config: Callable[..., TrialConfig]) -> None:
    config = TrialConfig.from_dict({**make_linear_config().to_dict(), "amp": {"dtype": "bf16"}})
    ctx = TrialContext(config, device="cpu")
    with ctx.autocast():
        out = torch.nn.Linear(2, 2)(torch.randn(1, 2))
    # bf16 autocast only applies on CUDA: CPU math stays float32
    assert out.dtype == torch.float32


def test_trainer_steps_schedule_and_reports_health(
    make_linear_config: Callable[..., TrialConfig], regression_batch: Batch
) -> None:
    ctx = TrialContext(make_linear_config(steps=6, check_every=2), device="cpu")
    model = torch.nn.Linear(4, 1)
    trainer = ctx.trainer(model, steps_per_epoch=3)
    x, y = regression_batch
    reports = [trainer.step(F.mse_loss(model(x), y)) for _ in range(trainer.total_steps)]
    # a report every check_every steps, None in between
    assert [r is not None for r in reports] == [False, True] * 3
    # per-tower keys of the monitor are in the report
    assert {"health/all/grad_norm_pre", "health/all/decay_to_grad", "health/loss"} <= set(reports[-1].metrics)
    # a plain regression is healthy
    assert reports[-1].verdict == Verdict.HEALTHY
    # the trainer and the context both expose the newest report
    assert trainer.latest_health is reports[-1] and ctx.latest_health is reports[-1]
    # gradients are cleared after each step and the scheduler advanced once per step
    assert all(p.grad is None for p in model.parameters()) and trainer.scheduler.global_step == 6
    # one stage of six steps, the one the scheduler is in
    assert [(s.name, s.steps, s.epochs) for s in trainer.stages()] == [("train", 6, 2)]
    assert trainer.stage.name == "train"


def test_trainer_state_dict_resumes_bit_for_bit(
    make_linear_config: Callable[..., TrialConfig], regression_batch: Batch
) -> None:
    config = make_linear_config(steps=8, check_every=2)
    x, y = regression_batch

    def fresh() -> tuple[torch.nn.Module, object]:
        ctx = TrialContext(config, device="cpu")
        model = torch.nn.Linear(4, 1)
        return model, ctx.trainer(model, steps_per_epoch=4)

    model, trainer = fresh()
    for _ in range(4):
        trainer.step(F.mse_loss(model(x), y))
    # deep copies: state_dict() shares the live optimizer tensors (torch.save would copy them)
    saved = copy.deepcopy({"model": model.state_dict(), "trainer": trainer.state_dict()})
    for _ in range(4):
        trainer.step(F.mse_loss(model(x), y))

    resumed_model, resumed = fresh()
    resumed_model.load_state_dict(saved["model"])
    resumed.load_state_dict(saved["trainer"])
    for _ in range(4):
        resumed.step(F.mse_loss(resumed_model(x), y))
    # optimizer moments, schedule position and monitor state all came back
    assert torch.equal(resumed_model.weight, model.weight) and resumed.global_step == trainer.global_step == 8


def test_checkpoint_store_keeps_the_newest_two(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    for epoch in range(4):
        store.save({"epoch": epoch, "w": torch.full((2,), float(epoch))})
    # only the two newest files remain, no temporary files
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["ckpt-000003.pt", "ckpt-000004.pt"]
    # load returns the newest
    assert store.load()["epoch"] == 3
    with pytest.raises(ValueError, match="keep must be at least 1"):
        CheckpointStore(tmp_path, keep=0)


def test_truncated_checkpoint_falls_back_to_the_previous(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = CheckpointStore(tmp_path)
    store.save({"epoch": 0})
    newest = store.save({"epoch": 1, "w": torch.zeros(1000)})
    newest.write_bytes(newest.read_bytes()[:100])  # a crash mid-copy, a full disk
    with caplog.at_level(logging.WARNING, logger="gradsweep.checkpoint"):
        state = store.load()
    # the previous good checkpoint is used
    assert state == {"epoch": 0}
    # and the skipped file is named in a warning
    assert "ckpt-000002.pt" in caplog.text


class _Opaque:
    """An arbitrary object: ``torch.load(weights_only=True)`` must refuse to unpickle it."""


def test_checkpoint_with_arbitrary_objects_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = CheckpointStore(tmp_path)
    store.save({"payload": _Opaque()})
    with caplog.at_level(logging.WARNING, logger="gradsweep.checkpoint"):
        # no pickled object is ever loaded
        assert store.load() is None
    # the refusal is logged
    assert "skipping unreadable checkpoint" in caplog.text


def test_context_checkpoints(make_linear_config: Callable[..., TrialConfig], tmp_path: Path) -> None:
    without = TrialContext(make_linear_config(), device="cpu")
    # without a directory, saving is a no-op and there is nothing to resume
    assert without.save_checkpoint({"a": 1}) is None and without.load_checkpoint() is None
    ctx = TrialContext(make_linear_config(), device="cpu", checkpoint_dir=tmp_path / "ckpt")
    ctx.save_checkpoint({"epoch": 2})
    # with one, the state comes back
    assert ctx.load_checkpoint() == {"epoch": 2}


def test_run_objective_checks_the_value(make_linear_config: Callable[..., TrialConfig]) -> None:
    config = make_linear_config()
    ctx = TrialContext(config, device="cpu")
    # a 1-element tensor is accepted as a float
    assert run_objective(lambda c, x: torch.tensor(0.5), config, ctx) == 0.5
    with pytest.raises(ValueError, match="non-finite objective value"):
        run_objective(lambda c, x: math.nan, config, ctx)
    with pytest.raises(TypeError, match="must return a float but returned str"):
        run_objective(lambda c, x: "0.5", config, ctx)  # type: ignore[arg-type, return-value]


def test_null_reporter_records_and_never_prunes() -> None:
    reporter = NullReporter()
    unstable = HealthReport(step=4, verdict=Verdict.UNSTABLE, reasons=["non-finite loss at step 3"])
    reporter.report(0.5, 4, unstable)
    reporter.report(0.6, 5, None)
    # it satisfies the Reporter protocol
    assert isinstance(reporter, Reporter)
    # every call is recorded, an unstable verdict included, without raising
    assert [(r.value, r.step) for r in reporter.history] == [(0.5, 4), (0.6, 5)]
    # health reports are listed in order
    assert reporter.health_reports == [unstable]


def test_optuna_reporter_prunes_unstable_trial_in_study_optimize(
    make_linear_config: Callable[..., TrialConfig], regression_batch: Batch
) -> None:
    config = make_linear_config(steps=8, check_every=2)
    raised: list[TrialPruned] = []

    def objective(trial: optuna.Trial) -> float:
        ctx = TrialContext(config, reporter=OptunaReporter(trial, history_limit=2), device="cpu")
        try:
            return _train(ctx, regression_batch, nan_from=2)
        except TrialPruned as exc:
            raised.append(exc)
            raise

    study = optuna.create_study(direction="maximize", pruner=HealthPruner())
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    # the NaN loss made the trial PRUNED, not FAILED
    assert trial.state == optuna.trial.TrialState.PRUNED
    # the pruner's kind and reason reached the exception the objective saw
    assert raised[0].kind == "unstable" and "non-finite loss" in raised[0].reason
    # and are stored on the trial (Contract 4)
    assert trial.user_attrs["gradsweep.prune.kind"] == "unstable"
    # the health attrs were written before the decision
    assert trial.user_attrs["gradsweep.health.latest"]["verdict"] == "unstable"
    # the history is bounded by history_limit
    assert len(trial.user_attrs["gradsweep.health.history"]) <= 2


def test_optuna_reporter_underperforming_from_a_plain_pruner(
    make_linear_config: Callable[..., TrialConfig], regression_batch: Batch
) -> None:
    config = make_linear_config(steps=4, check_every=2)
    raised: list[TrialPruned] = []

    def objective(trial: optuna.Trial) -> float:
        ctx = TrialContext(config, reporter=OptunaReporter(trial), device="cpu")
        try:
            return _train(ctx, regression_batch)
        except TrialPruned as exc:
            raised.append(exc)
            raise

    # every reported value (a negative MSE) is under the threshold
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.0))
    study.optimize(objective, n_trials=1)
    # a pruner that stores no reason still prunes through TrialPruned
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    # the kind defaults to underperforming and the reason names the pruner
    assert raised[0].kind == "underperforming" and "ThresholdPruner" in raised[0].reason


def test_optuna_reporter_completes_a_healthy_trial(
    make_linear_config: Callable[..., TrialConfig], regression_batch: Batch
) -> None:
    config = make_linear_config(steps=4, check_every=2)
    study = optuna.create_study(direction="maximize", pruner=HealthPruner())
    study.optimize(
        lambda t: _train(TrialContext(config, reporter=OptunaReporter(t), device="cpu"), regression_batch),
        n_trials=1,
    )
    trial = study.trials[0]
    # a healthy run completes with its intermediate values stored
    assert trial.state == optuna.trial.TrialState.COMPLETE and sorted(trial.intermediate_values) == [
        0,
        1,
        2,
        3,
    ]
    # its latest health is healthy
    assert trial.user_attrs["gradsweep.health.latest"]["verdict"] == "healthy"
    # building the trainer declared the step of the final report (the pruner leaves that report alone)
    assert trial.user_attrs["gradsweep.total_steps"] == 4


def test_declare_total_steps_reaches_reporters_that_take_it(
    make_linear_config: Callable[..., TrialConfig],
) -> None:
    config = make_linear_config(steps=6, check_every=2)
    reporter = NullReporter()
    ctx = TrialContext(config, reporter=reporter, device="cpu")
    ctx.trainer(torch.nn.Linear(4, 1), steps_per_epoch=2)
    # the trainer's total steps are declared when it is built
    assert reporter.total_steps == 6
    # an objective without a trainer may declare them itself; nonsense is refused
    ctx.declare_total_steps(9)
    assert reporter.total_steps == 9
    with pytest.raises(ValueError, match="total steps must be at least 1 but got 0"):
        ctx.declare_total_steps(0)

    class Plain:  # a reporter with only report() does not meet the Reporter protocol
        def report(self, value: float, step: int, health: object) -> None: ...

    # it is refused when the context is built, naming what is missing
    with pytest.raises(TypeError, match=r"reporter must define report.* and declare_total_steps"):
        TrialContext(config, reporter=Plain(), device="cpu")


def test_trainer_epochs_cover_every_stage_and_skip_resumed_ones(make_linear_config) -> None:
    from gradsweep.spaces.trial_config import StageConfig

    base = make_linear_config(steps=8, check_every=4)
    config = base.model_copy(
        update={"stages": (StageConfig(name="a", epochs=2), StageConfig(name="b", steps=5))}
    )
    trainer = TrialContext(config, reporter=NullReporter(), device="cpu").trainer(
        torch.nn.Linear(4, 1), steps_per_epoch=3
    )
    runs = [(r.epoch, r.stage.name, r.steps) for r in trainer.epochs()]
    # stage a: 2 epochs of 3 steps; stage b: 5 steps = one full epoch and a short one
    assert runs == [(1, "a", 3), (2, "a", 3), (3, "b", 3), (4, "b", 2)]
    # the epochs add up to the trainer's total steps
    assert sum(r[2] for r in runs) == trainer.total_steps
    # resuming after epoch 3 yields only what is left
    assert [r.epoch for r in trainer.epochs(start_epoch=3)] == [4]
