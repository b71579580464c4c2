"""The ``segmentation`` objective (seed 004): tiny-scale runs, resume, and the before/after reproduction.

The aggressive-GradScaler half of seed 004 needs fp16 on a CUDA GPU; on the CPU the scaler is
disabled and these tests pin the part that reproduces there: stage 2 at the stage-1 LR explodes.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gradsweep.objectives import segmentation
from gradsweep.objectives.api import NullReporter, TrialContext
from gradsweep.objectives.data.camouflage import make_camouflage
from gradsweep.objectives.health import Verdict
from gradsweep.spaces.sampling import baseline_config
from gradsweep.spaces.space import load_space
from gradsweep.spaces.trial_config import TrialConfig
from tests.objectives._support import Interrupted, StopAfter, run_on_cpu

EPOCHS = 4 + 8  # the preset's decoder_only + all stages


def _run(config: TrialConfig, checkpoint_dir: Path) -> tuple[float, NullReporter]:
    value, reporter, _ = run_on_cpu(segmentation, config, checkpoint_dir)
    return value, reporter


@pytest.fixture(scope="module")
def space():  # type: ignore[no-untyped-def]
    return load_space("segmentation")


@pytest.fixture(scope="module")
def after(space, tmp_path_factory: pytest.TempPathFactory) -> tuple[float, NullReporter]:  # type: ignore[no-untyped-def]
    return _run(baseline_config(space, "after"), tmp_path_factory.mktemp("seg_after"))


@pytest.fixture(scope="module")
def before(space, tmp_path_factory: pytest.TempPathFactory) -> tuple[float, NullReporter]:  # type: ignore[no-untyped-def]
    return _run(baseline_config(space, "before"), tmp_path_factory.mktemp("seg_before"))


def test_metadata_matches_preset(space) -> None:  # type: ignore[no-untyped-def]
    # the default metric is one of the objective's metrics and the preset names it
    assert (
        segmentation.DEFAULT_METRIC in segmentation.METRICS
        and space.metric.name == segmentation.DEFAULT_METRIC
    )
    # the preset file is the one the module declares, for this objective, in the same direction
    assert segmentation.PRESET == "segmentation.yaml" and space.objective == "segmentation"
    assert space.metric.direction == segmentation.DIRECTION


def test_tiny_run_returns_finite_iou_and_reports_health(after) -> None:  # type: ignore[no-untyped-def]
    value, reporter = after
    # IoU is a finite fraction
    assert math.isfinite(value) and 0.0 <= value <= 1.0
    # one report per epoch over both stages
    assert len(reporter.history) == EPOCHS
    keys = set(reporter.health_reports[-1].metrics)
    # the health report carries both towers' gradient norms and the GradScaler scale
    assert {"health/backbone/grad_norm_pre", "health/decoder/grad_norm_pre", "health/scaler/scale"} <= keys
    # the encoder is frozen in stage 1 and trained in stage 2
    first, last = reporter.health_reports[0], reporter.health_reports[-1]
    assert (
        first.metrics["health/backbone/steps_with_grad"]
        == 0
        < last.metrics["health/backbone/steps_with_grad"]
    )


def test_resume_mid_stage_two_gives_the_same_result(space, after, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = baseline_config(space, "after")
    with pytest.raises(Interrupted):
        segmentation.run(
            config, TrialContext(config, reporter=StopAfter(6), device="cpu", checkpoint_dir=tmp_path)
        )
    value, reporter = _run(config, tmp_path)
    # the second run continues after epoch 6 (inside stage 2), not from scratch
    assert len(reporter.history) == EPOCHS - 6
    # and reaches exactly the uninterrupted IoU
    assert value == after[0]


def test_four_micro_batches_of_four_train_like_batches_of_sixteen(space, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 19: seed 004 accumulates (2 x 4); the preset's 16 x 1 as 4 x 4 is the same training.

    One epoch of each stage (24 optimizer steps across the unfreeze) keeps it to about a second a
    run; over the full 144 steps float summation order drifts further (final IoU 0.4706 vs 0.4716).
    """
    after = baseline_config(space, "after")
    short = tuple(stage.model_copy(update={"epochs": 1}) for stage in after.stages)
    runs = {}
    for batch, accumulation in ((16, 1), (4, 4)):
        config = after.model_copy(
            update={"batch_size": batch, "accumulation_steps": accumulation, "stages": short}
        )
        value, reporter, ctx = run_on_cpu(segmentation, config, tmp_path / f"{batch}x{accumulation}")
        runs[accumulation] = (value, reporter, ctx.load_checkpoint()["model"])
    (value_1, reports_1, model_1), (value_4, reports_4, model_4) = runs[1], runs[4]
    # the same 12 optimizer steps an epoch: health checks at the same steps
    assert (
        [r.step for r in reports_4.health_reports] == [r.step for r in reports_1.health_reports] == [11, 23]
    )
    # the U-Net has no batch statistics: the weights agree to float32 summation order (measured 2e-7)
    for name, weight in model_1.items():
        torch.testing.assert_close(model_4[name], weight, rtol=1e-5, atol=1e-6)
    # and so does the held-out IoU (equal when measured)
    assert value_4 == pytest.approx(value_1, abs=1e-3)


def _exploding(report) -> bool:  # type: ignore[no-untyped-def]
    """A reason of the (relative) exploding rule: a tower's grad norm over 1000x its early norm."""
    return any("grad norm" in reason and "x its early norm" in reason for reason in report.reasons)


def test_before_spikes_in_stage_two_and_after_is_healthy(before, after) -> None:  # type: ignore[no-untyped-def]
    before_value, before_rep = before
    after_value, after_rep = after
    flagged = [r for r in before_rep.health_reports if r.verdict is not Verdict.HEALTHY]
    # seed 004's "before" (stage 2 at the stage-1 LR, clip 1.0) is flagged by the default rules,
    # with no health numbers in the preset ...
    assert flagged
    # ...only after the unfreeze: stage 1 (4 epochs of 12 steps) is clean
    assert min(r.step for r in flagged) >= 4 * 12
    # the first stage-2 epoch is a WARNING, not a prune, and says why: the decoder's gradient norm
    # against its own early norm, or a loss spike (which finding comes first depends on the CPU's
    # conv kernels at this scale: the small-scale test below has the sustained explosion)
    assert flagged[0].verdict is Verdict.WARNING
    assert _exploding(flagged[0]) or any(r.startswith("loss spike") for r in flagged[0].reasons)
    # the "after" config (multipliers 0.5 / backbone 0.05, clip 0.5) is healthy at every check
    assert all(r.verdict is Verdict.HEALTHY for r in after_rep.health_reports)
    # and segments better (the margin moves with the kernels too: 0.09 here, 0.025 under AVX2)
    assert after_value > before_value


@pytest.mark.slow
def test_at_small_scale_before_explodes_for_good_and_after_is_never_unstable(space, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The seed's explosion proper: sustained from the first stage-2 epoch (64 steps each at small scale)."""
    before_value, before_rep = _run(baseline_config(space, "before", scale="small"), tmp_path / "before")
    after_value, after_rep = _run(baseline_config(space, "after", scale="small"), tmp_path / "after")
    unstable = [r for r in before_rep.health_reports if r.verdict is Verdict.UNSTABLE]
    # UNSTABLE at the first report of stage 2 (stage 1 = 4 epochs = steps 0-255), for exploding
    # grads (relative to each tower's early norm), then a loss far above its start for 4 checks,
    # which is a hard rule: a sweep prunes the trial there and then, within stage 2's first 2 epochs
    assert unstable and unstable[0].step < 5 * 64 and unstable[0].step >= 4 * 64
    assert _exploding(unstable[0])
    hard = next(r for r in before_rep.health_reports if "divergence" in r.unstable_rules)
    assert hard.step < 6 * 64
    # and it stays there: most of stage 2's 8 reports are UNSTABLE (the exploding run's trajectory
    # depends on the CPU's kernels)
    assert len(unstable) > 8 // 2
    # the fix never reaches UNSTABLE
    assert not any(r.verdict is Verdict.UNSTABLE for r in after_rep.health_reports)
    assert after_value > before_value + 0.3


def test_scaler_is_inert_on_cpu(space) -> None:  # type: ignore[no-untyped-def]
    config = baseline_config(space, "before")
    ctx = TrialContext(config, device="cpu")
    trainer = ctx.trainer(segmentation.UNet(4), steps_per_epoch=2)
    # fp16 + GradScaler only act on CUDA: on the CPU the aggressive scaler cannot be reproduced
    assert str(config.amp.dtype) == "fp16" and not trainer.scaler.is_enabled()


def test_iou_and_dice_on_known_masks() -> None:
    pred = torch.zeros(1, 1, 2, 4, dtype=torch.bool)
    mask = torch.zeros(1, 1, 2, 4)
    pred[..., :2] = True  # 4 predicted pixels
    mask[..., 1:3] = 1.0  # 4 target pixels, 2 of them shared
    iou, dice = segmentation.iou_dice(pred, mask)
    # IoU = 2 / 6, Dice = 2 * 2 / 8
    assert iou == pytest.approx(1 / 3) and dice == pytest.approx(0.5)
    # two empty masks agree perfectly
    assert segmentation.iou_dice(torch.zeros_like(pred), torch.zeros_like(mask)) == (1.0, 1.0)


def test_seg_loss_is_low_for_confident_correct_logits() -> None:
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1.0
    good = segmentation.seg_loss((mask * 2 - 1) * 20, mask)
    bad = segmentation.seg_loss((1 - mask * 2) * 20, mask)
    # confident right answers cost almost nothing, confident wrong ones a lot
    assert good.item() < 0.01 < 1.0 < bad.item()


def test_camouflage_data_is_deterministic_and_shaped() -> None:
    images, masks = make_camouflage(6, size=16, seed=5)
    again, again_masks = make_camouflage(6, size=16, seed=5)
    other, _ = make_camouflage(6, size=16, seed=6)
    # the same seed gives the same images and masks; another seed gives other images
    assert torch.equal(images, again) and torch.equal(masks, again_masks) and not torch.equal(images, other)
    # RGB images and one-channel binary masks
    assert images.shape == (6, 3, 16, 16) and masks.shape == (6, 1, 16, 16)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    # every image holds an object that covers part, not all, of it
    cover = masks.mean(dim=(1, 2, 3))
    assert bool((cover > 0.02).all() and (cover < 0.6).all())
    # the object is camouflaged: its mean intensity is within one background std of the background's
    inside = (images * masks).sum(dim=(2, 3)) / masks.sum(dim=(2, 3))
    outside = (images * (1 - masks)).sum(dim=(2, 3)) / (1 - masks).sum(dim=(2, 3))
    assert bool(((inside - outside).abs() < images.std(dim=(2, 3))).all())


def test_bad_arguments_are_refused(space) -> None:  # type: ignore[no-untyped-def]
    # the data generator names the bad argument
    with pytest.raises(ValueError, match="size"):
        make_camouflage(2, size=4, seed=0)
    config = baseline_config(space, "after")
    bad = config.model_copy(update={"metric": config.metric.model_copy(update={"name": "accuracy"})})
    # a metric the objective does not compute is refused before training, listing the valid ones
    with pytest.raises(ValueError, match="iou, dice"):
        segmentation.run(bad, TrialContext(bad, device="cpu"))
    many = config.model_copy(update={"accumulation_steps": 193})
    # more micro-batches per step than the 192 tiny training images is refused, naming the limit
    with pytest.raises(ValueError, match="accumulation_steps must be at most 192"):
        segmentation.run(many, TrialContext(many, device="cpu"))
