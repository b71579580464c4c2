"""The ``moco`` objective (seed 001): tiny-scale runs, resume, and the before/after reproduction."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gradsweep.objectives import moco
from gradsweep.objectives.api import NullReporter, TrialContext
from gradsweep.objectives.data.digits_views import load_digits, split, two_views
from gradsweep.objectives.health import Verdict
from gradsweep.spaces.sampling import baseline_config
from gradsweep.spaces.space import load_space
from gradsweep.spaces.trial_config import TrialConfig
from tests.objectives._support import Interrupted, StopAfter, run_on_cpu


def _run(config: TrialConfig, checkpoint_dir: Path) -> tuple[float, NullReporter]:
    value, reporter, _ = run_on_cpu(moco, config, checkpoint_dir)
    return value, reporter


@pytest.fixture(scope="module")
def space():  # type: ignore[no-untyped-def]
    return load_space("moco")


@pytest.fixture(scope="module")
def after(space, tmp_path_factory: pytest.TempPathFactory) -> tuple[float, NullReporter]:  # type: ignore[no-untyped-def]
    return _run(baseline_config(space, "after"), tmp_path_factory.mktemp("moco_after"))


@pytest.fixture(scope="module")
def before(space, tmp_path_factory: pytest.TempPathFactory) -> tuple[float, NullReporter]:  # type: ignore[no-untyped-def]
    return _run(baseline_config(space, "before"), tmp_path_factory.mktemp("moco_before"))


def test_metadata_matches_preset(space) -> None:  # type: ignore[no-untyped-def]
    # the default metric is one of the objective's metrics and the preset names it
    assert moco.DEFAULT_METRIC in moco.METRICS and space.metric.name == moco.DEFAULT_METRIC
    # the preset file is the one the module declares, for this objective, in the same direction
    assert (
        moco.PRESET == "moco.yaml" and space.objective == "moco" and space.metric.direction == moco.DIRECTION
    )


def test_tiny_run_returns_finite_accuracy_and_reports_health(after) -> None:  # type: ignore[no-untyped-def]
    value, reporter = after
    # the kNN accuracy is a finite fraction
    assert math.isfinite(value) and 0.0 <= value <= 1.0
    # one report per epoch (30 at tiny scale), the last one being the returned value
    assert len(reporter.history) == 30 and reporter.history[-1].value == value
    keys = set(reporter.health_reports[-1].metrics)
    # the health report carries per-tower gradient norms for all three towers and the loss
    assert {f"health/{t}/grad_norm_pre" for t in ("backbone", "projector", "predictor")} | {
        "health/loss"
    } <= keys


def test_resume_from_checkpoint_gives_the_same_result(space, after, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = baseline_config(space, "after")
    with pytest.raises(Interrupted):
        moco.run(config, TrialContext(config, reporter=StopAfter(12), device="cpu", checkpoint_dir=tmp_path))
    value, reporter = _run(config, tmp_path)
    # the second run starts after the 12th epoch's checkpoint instead of from scratch
    assert len(reporter.history) == 30 - 12
    # and ends exactly where the uninterrupted run ended
    assert value == after[0]


def test_before_stalls_and_after_learns(before, after) -> None:  # type: ignore[no-untyped-def]
    before_value, before_rep = before
    after_value, after_rep = after
    stalled = [r for r in before_rep.health_reports if r.verdict is Verdict.UNSTABLE]
    # seed 001's "before" (summed loss, base LR 1.5e-4) is flagged by the loss_stall rule
    assert stalled and all(any("loss stalled" in reason for reason in r.reasons) for r in stalled)
    # the "after" config (mean loss, base LR 1.5e-3) never gets an unstable verdict
    assert all(r.verdict is not Verdict.UNSTABLE for r in after_rep.health_reports)
    # summing the two directions doubles the loss (~2 ln B instead of ~ln B at the start)
    first_before = before_rep.health_reports[0].metrics["health/loss"]
    first_after = after_rep.health_reports[0].metrics["health/loss"]
    assert 1.8 < first_before / first_after < 2.2
    # the after config's loss keeps falling (>5% below its start) while the before's barely moves (<3%)
    last_after = after_rep.health_reports[-1].metrics["health/loss"]
    last_before = before_rep.health_reports[-1].metrics["health/loss"]
    assert last_after < 0.95 * first_after and last_before > 0.97 * first_before
    # and the learned features are better for kNN on held-out digits
    assert after_value > before_value + 0.02


def test_symmetric_loss_sum_is_twice_the_mean() -> None:
    l12, l21 = torch.tensor(1.5), torch.tensor(2.5)
    # "sum" is the seed's bug: exactly twice the averaged loss
    assert moco.symmetric_loss(l12, l21, "sum").item() == pytest.approx(
        2 * moco.symmetric_loss(l12, l21, "mean").item()
    )
    # an unknown reduction is refused with the allowed values
    with pytest.raises(ValueError, match="sum, mean"):
        moco.symmetric_loss(l12, l21, "max")


def test_contrastive_loss_is_ln_batch_for_uninformative_keys() -> None:
    q = torch.randn(16, 8)
    k = torch.ones(16, 8)  # every key identical: no information about which is the positive
    # uniform logits give cross-entropy ln(B)
    assert moco.contrastive_loss(q, k, 0.2).item() == pytest.approx(math.log(16), rel=1e-5)


def test_knn_accuracy_on_separable_and_flipped_labels() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    queries = torch.tensor([[1.0, 0.05], [0.05, 1.0]])
    # neighbours on the same axis vote for the right class
    assert moco.knn_accuracy(bank, labels, queries, torch.tensor([0, 1]), k=2) == 1.0
    # with the true labels swapped every vote is wrong
    assert moco.knn_accuracy(bank, labels, queries, torch.tensor([1, 0]), k=2) == 0.0


def test_views_and_splits_are_deterministic() -> None:
    train, test = split(load_digits(), test_fraction=0.25, seed=3)
    again, _ = split(load_digits(), test_fraction=0.25, seed=3)
    # the same seed gives the same split, and train + test cover all 1797 digits
    assert torch.equal(train.x, again.x) and len(train) + len(test) == 1797
    a = two_views(train.x[:8], torch.Generator().manual_seed(0))
    b = two_views(train.x[:8], torch.Generator().manual_seed(0))
    # the same generator state gives the same two views, which differ from each other
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], a[1])
    # views stay images in [0, 1] with the input's shape
    assert a[0].shape == (8, 1, 8, 8) and a[0].min() >= 0 and a[0].max() <= 1


def test_unknown_loss_reduction_is_refused(space) -> None:  # type: ignore[no-untyped-def]
    config = baseline_config(space, "after")
    bad = config.model_copy(update={"extras": {**config.extras, "loss_reduction": "median"}})
    # a wrong extras.loss_reduction fails before any training, naming the field
    with pytest.raises(ValueError, match=r"extras\.loss_reduction"):
        moco.run(bad, TrialContext(bad, device="cpu"))
