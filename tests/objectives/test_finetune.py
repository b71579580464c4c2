"""The ``finetune`` objective (seed 002): tiny-scale runs, resume, and the before/after reproduction."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from gradsweep.objectives import finetune
from gradsweep.objectives.api import NullReporter, TrialContext
from gradsweep.objectives.health import Verdict
from gradsweep.spaces.apply import StagedScheduler, build_optimizer
from gradsweep.spaces.sampling import baseline_config
from gradsweep.spaces.space import load_space
from gradsweep.spaces.trial_config import TrialConfig
from tests.objectives._support import Interrupted, StopAfter, run_on_cpu

STAGE1_EPOCHS, STAGE2_EPOCHS = 3, 12  # the preset's head_only / unfrozen stages


def _run(config: TrialConfig, checkpoint_dir: Path) -> tuple[float, NullReporter, list[dict[str, Any]]]:
    value, reporter, ctx = run_on_cpu(finetune, config, checkpoint_dir)
    state = ctx.load_checkpoint()
    assert state is not None
    return value, reporter, state["extra"]["history"]


@pytest.fixture(scope="module")
def space():  # type: ignore[no-untyped-def]
    return load_space("finetune")


@pytest.fixture(scope="module")
def after(space, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return _run(baseline_config(space, "after"), tmp_path_factory.mktemp("ft_after"))


@pytest.fixture(scope="module")
def before(space, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return _run(baseline_config(space, "before"), tmp_path_factory.mktemp("ft_before"))


def test_metadata_matches_preset(space) -> None:  # type: ignore[no-untyped-def]
    # the default metric is one of the objective's metrics and the preset names it
    assert finetune.DEFAULT_METRIC in finetune.METRICS and space.metric.name == finetune.DEFAULT_METRIC
    # the preset file is the one the module declares, for this objective, in the same direction
    assert finetune.PRESET == "finetune.yaml" and space.objective == "finetune"
    assert space.metric.direction == finetune.DIRECTION


def test_tiny_run_returns_finite_accuracy_and_reports_health(after) -> None:  # type: ignore[no-untyped-def]
    value, reporter, history = after
    # the accuracy is a finite fraction, above chance (0.2) for five classes
    assert math.isfinite(value) and 0.2 < value <= 1.0
    # one report per epoch over both stages
    assert len(reporter.history) == STAGE1_EPOCHS + STAGE2_EPOCHS == len(history)
    keys = set(reporter.health_reports[-1].metrics)
    # the health report carries both towers' gradient norms
    assert {"health/head/grad_norm_pre", "health/backbone/grad_norm_pre"} <= keys
    # the backbone gets no gradient while frozen in stage 1, and gradients once unfrozen
    first, last = reporter.health_reports[0], reporter.health_reports[-1]
    assert (
        first.metrics["health/backbone/steps_with_grad"]
        == 0
        < last.metrics["health/backbone/steps_with_grad"]
    )


def test_resume_mid_stage_two_gives_the_same_result(space, after, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = baseline_config(space, "after")
    with pytest.raises(Interrupted):
        finetune.run(
            config, TrialContext(config, reporter=StopAfter(6), device="cpu", checkpoint_dir=tmp_path)
        )
    value, reporter, history = _run(config, tmp_path)
    # the second run continues after epoch 6 (inside the unfrozen stage), not from scratch
    assert len(reporter.history) == STAGE1_EPOCHS + STAGE2_EPOCHS - 6
    # it reaches exactly the uninterrupted accuracy, with the same per-epoch history
    assert value == after[0] and history == after[2]


def _boundary(history: list[dict[str, Any]], tower: str) -> tuple[float, float]:
    """(LR on the last step of stage 1, LR on the first step of stage 2) of ``tower``."""
    return history[STAGE1_EPOCHS - 1][f"lr_last/{tower}"], history[STAGE1_EPOCHS][f"lr_first/{tower}"]


def test_before_resets_the_schedule_at_the_unfreeze(before) -> None:  # type: ignore[no-untyped-def]
    _, _, history = before
    head_end, head_start = _boundary(history, "head")
    # seed 002: the rebuilt OneCycle drops the head LR back to ~max_lr / 25 at the unfreeze
    assert head_start < 0.1 * head_end
    # and the unfrozen backbone trains at head LR / 100 (the seed's 1e-5 next to 1e-3)
    assert history[STAGE1_EPOCHS]["lr_first/backbone"] == pytest.approx(head_start * 0.01)
    # the frozen backbone has LR 0 throughout stage 1
    assert all(h["lr_first/backbone"] == 0.0 for h in history[:STAGE1_EPOCHS])


def test_after_keeps_schedule_progress_and_backbone_at_a_tenth(after) -> None:  # type: ignore[no-untyped-def]
    _, _, history = after
    head_end, head_start = _boundary(history, "head")
    # the schedule continues across the unfreeze: no jump in the head LR
    assert head_start == pytest.approx(head_end, rel=0.1)
    # the backbone LR is tied to a tenth of the head LR
    assert history[STAGE1_EPOCHS]["lr_first/backbone"] == pytest.approx(head_start * 0.1)


def test_scheduler_built_from_the_presets_shows_the_reset(space) -> None:  # type: ignore[no-untyped-def]
    steps_per_epoch = 10
    boundary = STAGE1_EPOCHS * steps_per_epoch
    lrs = {}
    for name in ("before", "after"):
        config = baseline_config(space, name)
        model = finetune.Classifier(4, 8, 5)
        sched = StagedScheduler(build_optimizer(model, config), config, steps_per_epoch, model=model)
        lrs[name] = (sched.lr_at(boundary - 1)["head"], sched.lr_at(boundary)["head"])
    # restart: the first unfrozen step runs at a small fraction of the last head-only step's LR
    assert lrs["before"][1] < 0.1 * lrs["before"][0]
    # continue: the two steps have nearly the same LR
    assert lrs["after"][1] == pytest.approx(lrs["after"][0], rel=0.05)


def test_after_beats_before_and_both_stay_healthy(before, after) -> None:  # type: ignore[no-untyped-def]
    # both runs are numerically healthy: the damage of seed 002 is in the schedule, not the gradients
    assert all(r.verdict is not Verdict.UNSTABLE for r in before[1].health_reports + after[1].health_reports)
    # continuing the schedule with backbone = head / 10 reaches a clearly better accuracy
    assert after[0] > before[0] + 0.05


def test_pretrained_backbone_is_cached_and_deterministic() -> None:
    a = finetune.pretrained_backbone(0, "tiny")
    # the second call is served from the per-process cache
    assert finetune.pretrained_backbone(0, "tiny") is a
    fresh = finetune.pretrained_backbone.__wrapped__(0, "tiny")
    # recomputing it gives bit-identical weights
    assert all(torch.equal(a[k], fresh[k]) for k in a)


def test_unknown_metric_is_refused(space) -> None:  # type: ignore[no-untyped-def]
    config = baseline_config(space, "after")
    bad = config.model_copy(update={"metric": config.metric.model_copy(update={"name": "iou"})})
    # a metric the objective does not compute is refused before training, naming the valid one
    with pytest.raises(ValueError, match=r"metric\.name must be one of accuracy"):
        finetune.run(bad, TrialContext(bad, device="cpu"))
