"""The ``contrastive`` objective (seed 000): data, pure helpers, tiny runs, resume and before/after."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gradsweep.objectives import contrastive
from gradsweep.objectives.api import NullReporter, TrialContext
from gradsweep.objectives.data.captions import MOTIONS, Tokenizer, caption
from gradsweep.objectives.data.digits_clips import ClipSpec, digit_images, make_clips, render_clip
from gradsweep.objectives.health import Verdict
from gradsweep.spaces.sampling import baseline_config
from gradsweep.spaces.space import SearchSpace, load_space
from gradsweep.spaces.trial_config import MetricConfig, StageConfig, TrialConfig
from tests.objectives._support import Interrupted, StopAfter, run_on_cpu


def _run(config: TrialConfig, checkpoint_dir: Path | None = None) -> tuple[float, NullReporter]:
    value, reporter, _ = run_on_cpu(contrastive, config, checkpoint_dir)
    return value, reporter


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return load_space("contrastive")


@pytest.fixture(scope="module")
def before(space: SearchSpace) -> tuple[float, NullReporter]:
    return _run(baseline_config(space, "before"))


@pytest.fixture(scope="module")
def after(space: SearchSpace) -> tuple[float, NullReporter]:
    return _run(baseline_config(space, "after"))


# --- data ---------------------------------------------------------------------------------------
def test_clips_are_a_pure_function_of_the_seed() -> None:
    spec = ClipSpec(canvas=14, frames=4, n_train=16, n_eval=8)
    (a, _), (b, _), (c, _) = make_clips(spec, 3), make_clips(spec, 3), make_clips(spec, 4)
    # same seed, same clips and captions
    assert torch.equal(a.video, b.video) and a.captions == b.captions
    # another seed, other clips
    assert not torch.equal(a.video, c.video)
    # shapes: (N, T, 1, S, S) frames and (N, L) token ids
    assert tuple(a.video.shape) == (16, 4, 1, 14, 14) and a.tokens.shape[0] == 16


def test_render_clip_moves_and_turns_the_digit() -> None:
    image = digit_images()[0][7]
    spec = ClipSpec(canvas=14, frames=4, speed=2)
    rng = np.random.default_rng(0)
    cols = np.arange(14)

    def centre_x(frames: np.ndarray) -> np.ndarray:
        mass = frames.sum(axis=1)  # (T, S) column mass
        return (mass * cols).sum(axis=1) / mass.sum(axis=1)

    left = render_clip(image, "left", spec, rng)
    # the digit's centre moves left by `speed` pixels per frame
    assert np.allclose(np.diff(centre_x(left)), -2.0)
    turn = render_clip(image, "clockwise", spec, rng)
    # a rotation keeps the ink and changes the picture frame to frame
    assert np.isclose(turn[0].sum(), turn[1].sum()) and not np.allclose(turn[0], turn[1])
    with pytest.raises(ValueError, match="motion must be one of left, right"):
        render_clip(image, "diagonal", spec, rng)
    with pytest.raises(ValueError, match="canvas 10 too small for 4 frames at speed 2; need at least 14"):
        ClipSpec(canvas=10)


def test_captions_and_tokenizer() -> None:
    rng = np.random.default_rng(0)
    tok = Tokenizer.build()
    texts = [caption(d, m, rng) for d in range(10) for m in MOTIONS]
    # every generated word is in the vocabulary (no <unk>) and fits max_words
    assert all(1 not in tok.encode(t, length=tok.max_words) for t in texts)
    assert max(len(t.split()) for t in texts) <= tok.max_words
    # encode/decode round-trips and pads with 0
    assert tok.decode(tok.encode("a 7 moving to the left", length=9)) == "a 7 moving to the left"
    assert tok.encode("a 7", length=4)[2:] == [0, 0]
    with pytest.raises(ValueError, match=r"digit must be in 0\.\.9 but got 11"):
        caption(11, "left", rng)


# --- pure helpers -------------------------------------------------------------------------------
def test_retrieval_metrics_edge_cases() -> None:
    labels = torch.tensor([0, 1, 2])
    perfect = contrastive.retrieval_metrics(torch.eye(3), labels, labels)
    # the right item first: every metric is 1
    assert perfect == {"recall_at_1": 1.0, "recall_at_5": 1.0, "ndcg_at_5": 1.0}
    worst = contrastive.retrieval_metrics(-torch.eye(3), labels, labels)
    # the right item last of three: a miss at 1, a hit at 5, NDCG 1/log2(4)
    assert (
        worst["recall_at_1"] == 0.0 and worst["recall_at_5"] == 1.0 and math.isclose(worst["ndcg_at_5"], 0.5)
    )
    nan = contrastive.retrieval_metrics(torch.full((3, 3), math.nan), labels, labels)
    # a diverged model (NaN similarities) retrieves nothing
    assert nan == {"recall_at_1": 0.0, "recall_at_5": 0.0, "ndcg_at_5": 0.0}


def test_info_nce_prefers_matching_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    v = torch.randn(8, 16, generator=g)
    scale = torch.tensor(10.0)
    # aligned pairs give a lower loss than shuffled ones
    assert contrastive.info_nce(v, v, scale) < contrastive.info_nce(v, v.roll(1, dims=0), scale)


# --- tiny runs ----------------------------------------------------------------------------------
def test_metadata_matches_preset(space: SearchSpace) -> None:
    # the preset scores the objective's default metric in its direction
    assert space.metric.name == contrastive.DEFAULT_METRIC and space.metric.direction == contrastive.DIRECTION


def test_tiny_run_returns_a_metric_and_reports_health(after: tuple[float, NullReporter]) -> None:
    value, reporter = after
    # a finite recall in [0, 1]
    assert 0.0 <= value <= 1.0
    # one report per epoch (20 epochs of 12 steps)
    assert [r.step for r in reporter.history] == [12 * (e + 1) for e in range(20)]
    keys = set(reporter.history[-1].health.metrics)
    # per-tower gradient health and the text embedding norm are reported
    assert {
        "health/text_encoder/grad_norm_pre",
        "health/text_encoder/decay_to_grad",
        "health/output/text_embedding/norm",
        "health/video_backbone/grad_norm_pre",
    } <= keys


def test_unknown_metric_is_refused(space: SearchSpace) -> None:
    config = baseline_config(space, "after").model_copy(update={"metric": MetricConfig(name="accuracy")})
    with pytest.raises(ValueError, match=r"metric\.name must be one of recall_at_1_v2t"):
        contrastive.run(config, TrialContext(config, device="cpu"))


def test_resume_after_a_crash_gives_the_same_result(space: SearchSpace, tmp_path: Path) -> None:
    config = baseline_config(space, "after").model_copy(
        update={"stages": (StageConfig(name="train", epochs=3),)}
    )
    straight, _ = _run(config)
    crash_ctx = TrialContext(config, reporter=StopAfter(2), device="cpu", checkpoint_dir=tmp_path)
    with pytest.raises(Interrupted):
        contrastive.run(config, crash_ctx)
    resumed, reporter = _run(config, tmp_path)
    # the rerun continued from epoch 2's checkpoint: only epoch 3 was trained and reported
    assert [r.step for r in reporter.history] == [36]
    # and ended exactly where an uninterrupted run ends
    assert resumed == straight


# --- seed 000 reproduction ----------------------------------------------------------------------
def test_before_flags_text_tower_starvation(before: tuple[float, NullReporter]) -> None:
    _, reporter = before
    final = reporter.history[-1].health
    # the health monitor calls the run unstable ...
    assert final.verdict == Verdict.UNSTABLE
    # ... because AdamW's decay dominates the text tower's update
    assert any(r.startswith("text_encoder decay-to-grad ratio") for r in final.reasons)
    assert final.metrics["health/text_encoder/decay_to_grad"] > 2.0
    first_unstable = next(
        r.step for r in reporter.history if r.health and r.health.verdict == Verdict.UNSTABLE
    )
    # and says so early enough for a pruner to save most of the run
    assert first_unstable <= 120


def test_after_is_healthy_and_retrieves_better(
    before: tuple[float, NullReporter], after: tuple[float, NullReporter]
) -> None:
    after_value, reporter = after
    # every check of the fixed config is healthy
    assert all(r.health.verdict == Verdict.HEALTHY for r in reporter.history if r.health is not None)
    # the text tower's decay no longer dominates
    assert reporter.history[-1].health.metrics["health/text_encoder/decay_to_grad"] < 1e-3
    # and recall@5 (video -> text) is clearly better than before
    assert after_value >= before[0] + 0.05
