"""The ``multitower`` objective (seed 003): losses, views, tiny runs, resume and before/after."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gradsweep.objectives import multitower
from gradsweep.objectives.api import NullReporter, TrialContext
from gradsweep.objectives.data.captions import Tokenizer
from gradsweep.objectives.health import Verdict
from gradsweep.spaces.sampling import baseline_config
from gradsweep.spaces.space import SearchSpace, load_space
from gradsweep.spaces.trial_config import StageConfig, TrialConfig
from tests.objectives._support import Interrupted, StopAfter, run_on_cpu


def _run(config: TrialConfig, checkpoint_dir: Path | None = None) -> tuple[float, NullReporter]:
    value, reporter, _ = run_on_cpu(multitower, config, checkpoint_dir)
    return value, reporter


def _healths(reporter: NullReporter) -> list:  # type: ignore[type-arg]
    return [r.health for r in reporter.history if r.health is not None]


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return load_space("multitower")


@pytest.fixture(scope="module")
def before(space: SearchSpace) -> tuple[float, NullReporter]:
    return _run(baseline_config(space, "before"))


@pytest.fixture(scope="module")
def after(space: SearchSpace) -> tuple[float, NullReporter]:
    return _run(baseline_config(space, "after"))


# --- pure helpers -------------------------------------------------------------------------------
def _embeddings(scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 8, generator=g)
    return (
        a * scale,
        (a + 0.1 * torch.randn(6, 8, generator=g)) * scale,
        (a + 0.1 * torch.randn(6, 8, generator=g)) * scale,
    )


def test_einsum_loss_overflows_where_the_stable_loss_does_not() -> None:
    small, huge = _embeddings(0.3), _embeddings(3.0)
    temperature = torch.tensor(0.07)
    # with moderate logits the seed's loss is finite and prefers aligned triples
    aligned = multitower.einsum_loss(*small, temperature)
    shuffled = multitower.einsum_loss(small[0], small[1].roll(1, 0), small[2].roll(2, 0), temperature)
    assert math.isfinite(aligned.item()) and aligned < shuffled
    # larger embeddings push a logit past exp's range: the hand-written softmax gives NaN
    assert math.isnan(multitower.einsum_loss(*huge, temperature).item())
    # the stable variant normalises and clamps: finite at any scale, and scale-free
    stable_small = multitower.stable_loss(*small, torch.tensor(math.log(1 / 0.07)))
    stable_huge = multitower.stable_loss(*huge, torch.tensor(math.log(1 / 0.07)))
    assert math.isfinite(stable_huge.item()) and math.isclose(
        stable_small.item(), stable_huge.item(), rel_tol=1e-4
    )


def test_stable_loss_survives_zero_embeddings_and_a_runaway_scale() -> None:
    zeros = torch.zeros(4, 8, requires_grad=True)
    loss = multitower.stable_loss(zeros, zeros, zeros, torch.tensor(1e6))
    loss.backward()
    # eps-protected normalisation: no 0/0, and the clamped scale keeps exp in range
    assert math.isfinite(loss.item()) and torch.isfinite(zeros.grad).all()


def test_views_are_deterministic_and_share_the_digit() -> None:
    tok = Tokenizer.build()
    pool = np.arange(100)
    a = multitower.make_views(8, pool, np.random.default_rng(1), tok)
    b = multitower.make_views(8, pool, np.random.default_rng(1), tok)
    # same generator state, same views
    assert torch.equal(a.image, b.image) and torch.equal(a.tokens, b.tokens)
    # the image and its rotated view hold the same ink; the caption names the digit
    assert torch.allclose(a.image.sum((1, 2, 3)), a.rotated.sum((1, 2, 3)))
    words = [tok.decode(row.tolist()) for row in a.tokens]
    names = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    assert all(
        str(int(d)) in w.split() or names[int(d)] in w.split() for d, w in zip(a.digit, words, strict=True)
    )


# --- tiny runs ----------------------------------------------------------------------------------
def test_metadata_matches_preset(space: SearchSpace) -> None:
    # the preset scores the objective's default metric in its direction
    assert space.metric.name == multitower.DEFAULT_METRIC and space.metric.direction == multitower.DIRECTION


def test_tiny_run_returns_a_metric_and_reports_health(after: tuple[float, NullReporter]) -> None:
    value, reporter = after
    # a finite mean recall@1 in [0, 1]
    assert 0.0 <= value <= 1.0
    # one report per epoch (20 epochs of 16 steps), each with a health summary
    assert [r.step for r in reporter.history] == [16 * (e + 1) for e in range(20)]
    keys = set(_healths(reporter)[-1].metrics)
    assert {
        "health/image_tower/grad_norm_pre",
        "health/caption_tower/grad_norm_pre",
        "health/output/caption/norm",
        "health/nonfinite_steps",
    } <= keys


def test_unknown_loss_variant_is_refused(space: SearchSpace) -> None:
    config = baseline_config(space, "after")
    config = config.model_copy(update={"extras": {**config.extras, "loss_variant": "6d"}})
    with pytest.raises(ValueError, match=r"extras\.loss_variant must be one of einsum, stable but got '6d'"):
        multitower.run(config, TrialContext(config, device="cpu"))


def test_resume_after_a_crash_gives_the_same_result(space: SearchSpace, tmp_path: Path) -> None:
    config = baseline_config(space, "after").model_copy(
        update={"stages": (StageConfig(name="train", epochs=3),)}
    )
    straight, _ = _run(config)
    with pytest.raises(Interrupted):
        multitower.run(
            config, TrialContext(config, reporter=StopAfter(2), device="cpu", checkpoint_dir=tmp_path)
        )
    resumed, reporter = _run(config, tmp_path)
    # the rerun trained and reported only the third epoch
    assert [r.step for r in reporter.history] == [48]
    # and ended exactly where an uninterrupted run ends
    assert resumed == straight


# --- seed 003 reproduction ----------------------------------------------------------------------
def test_before_is_flagged_unstable_for_exploding_gradients(before: tuple[float, NullReporter]) -> None:
    _, reporter = before
    healths = _healths(reporter)
    # the einsum loss at lr 2e-3 without clipping is unstable within the first 50 steps
    first = next(h for h in healths if h.verdict == Verdict.UNSTABLE)
    assert first.step <= 50
    # the reasons name the towers whose gradients explode past the seed's line of 100
    assert any(r.startswith("image_tower grad norm") and "> 1e+02" in r for r in first.reasons)
    # and it stays unstable
    assert healths[-1].verdict == Verdict.UNSTABLE and healths[-1].metrics["health/grad_norm_global"] > 100.0


def test_after_is_healthy_and_retrieves_better(
    before: tuple[float, NullReporter], after: tuple[float, NullReporter]
) -> None:
    value, reporter = after
    healths = _healths(reporter)
    # the stable loss with lr 1e-4 and clip 1.0 is never unstable and ends healthy
    assert all(h.verdict != Verdict.UNSTABLE for h in healths) and healths[-1].verdict == Verdict.HEALTHY
    # its gradients stay two orders of magnitude under the einsum run's
    assert healths[-1].metrics["health/grad_norm_global"] < 10.0
    # and its mean recall@1 is clearly better (chance is about 0.1)
    assert value >= before[0] + 0.05
