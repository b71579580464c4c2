"""Pure helpers of gradsweep.objectives.health.stats with zeros, NaN, inf and empty inputs."""

from __future__ import annotations

import math

import pytest
import torch

from gradsweep.objectives.health.stats import (
    aggregate_norms,
    decay_to_grad_ratio,
    is_stalled,
    longest_true_run,
    robust_z_score,
    segment_norms,
    spike_scores,
)


def test_aggregate_l2_matches_norm_of_concatenation() -> None:
    parts = [torch.randn(5), torch.randn(3, 2), torch.zeros(4)]
    norms = torch.stack([p.norm() for p in parts])
    # the L2 norm of per-part norms is the norm of everything concatenated
    assert float(aggregate_norms(norms)) == pytest.approx(
        float(torch.cat([p.flatten() for p in parts]).norm())
    )


def test_aggregate_inf_and_general_p() -> None:
    # the inf-norm aggregate is the max part norm
    assert float(aggregate_norms(torch.tensor([1.0, 7.0, 3.0]), math.inf)) == 7.0
    # a general p-norm combines as (sum n^p)^(1/p)
    assert float(aggregate_norms(torch.tensor([1.0, 2.0]), 3.0)) == pytest.approx((1 + 8) ** (1 / 3))


def test_aggregate_edge_cases() -> None:
    # an empty group has norm 0
    assert float(aggregate_norms(torch.zeros(0))) == 0.0
    # all-zero grads give 0, not NaN
    assert float(aggregate_norms(torch.zeros(3))) == 0.0
    # NaN propagates for L2 and inf norms
    assert math.isnan(float(aggregate_norms(torch.tensor([1.0, math.nan]))))
    assert math.isnan(float(aggregate_norms(torch.tensor([1.0, math.nan]), math.inf)))
    # inf propagates
    assert math.isinf(float(aggregate_norms(torch.tensor([1.0, math.inf]))))
    # a non-positive norm type is rejected with its name
    with pytest.raises(ValueError, match="norm_type"):
        aggregate_norms(torch.ones(2), 0.0)


def test_segment_norms_per_tower() -> None:
    norms = torch.tensor([3.0, 4.0, 1.0, math.nan])
    seg = torch.tensor([0, 0, 1, 2])
    out = segment_norms(norms, seg, 4)
    # tower 0 combines 3 and 4 into 5; tower 1 is its single part
    assert out[:2].tolist() == pytest.approx([5.0, 1.0])
    # a NaN part poisons only its own tower; an empty segment is 0
    assert math.isnan(float(out[2])) and float(out[3]) == 0.0
    # the inf norm takes the max per segment
    assert segment_norms(norms[:3], seg[:3], 2, math.inf).tolist() == [4.0, 1.0]
    # empty inputs give zeros
    assert segment_norms(torch.zeros(0), torch.zeros(0, dtype=torch.long), 2).tolist() == [0.0, 0.0]
    # mismatched shapes are rejected
    with pytest.raises(ValueError, match="same shape"):
        segment_norms(torch.ones(2), torch.zeros(3, dtype=torch.long), 1)


def test_decay_to_grad_ratio_edges() -> None:
    # an ordinary ratio
    assert decay_to_grad_ratio(2.0, 0.5) == 4.0
    # no decay means no dominance, also 0/0
    assert decay_to_grad_ratio(0.0, 1.0) == 0.0 and decay_to_grad_ratio(0.0, 0.0) == 0.0
    # decay with no gradient-driven update is infinitely dominant
    assert decay_to_grad_ratio(1.0, 0.0) == math.inf
    # NaN in, NaN out
    assert math.isnan(decay_to_grad_ratio(math.nan, 1.0)) and math.isnan(decay_to_grad_ratio(1.0, math.nan))


def test_robust_z_score() -> None:
    ref = [1.0, 1.1, 0.9, 1.0, 1.05]
    # median 1.0, MAD 0.05: 1.5 is ~6.7 robust sigmas above
    assert robust_z_score(1.5, ref) == pytest.approx(0.5 / (1.4826 * 0.05))
    # too few finite references score 0 (NaN/inf references are ignored)
    assert robust_z_score(100.0, [1.0, math.nan, math.inf, 1.0]) == 0.0
    # a flat history uses the 1%-of-median floor instead of dividing by zero
    assert robust_z_score(1.1, [1.0] * 6) == pytest.approx(10.0)
    # zeros everywhere: the absolute floor keeps it finite and a zero loss scores 0
    assert robust_z_score(0.0, [0.0] * 6) == 0.0
    # an infinite loss is an infinite spike, NaN stays NaN
    assert robust_z_score(math.inf, ref) == math.inf and math.isnan(robust_z_score(math.nan, ref))


def test_spike_scores_carry_reference() -> None:
    scores, ref = spike_scores([1.0, 1.0, 1.0, 1.0, 1.0, 9.0, math.nan], [], window=10)
    # the first five losses have no reference yet; the sixth is a spike
    assert scores[:5] == [0.0] * 5 and scores[5] > 100
    # NaN is scored NaN and not added to the reference
    assert math.isnan(scores[6]) and ref == [1.0] * 5 + [9.0]
    # the reference is bounded by the window
    assert spike_scores([2.0] * 5, ref, window=3)[1] == [2.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="window"):
        spike_scores([], [], window=0)


def test_is_stalled() -> None:
    # steady improvement is not a stall
    assert not is_stalled([5, 4, 3, 2, 1], window=2, min_delta=1e-3)
    # a flat tail longer than the window is
    assert is_stalled([5, 1, 1, 1, 1], window=3, min_delta=1e-3)
    # too little history is never a stall, non-finite values are ignored
    assert not is_stalled([1, 1, math.nan], window=2, min_delta=0.0)
    assert not is_stalled([], window=1, min_delta=0.0)
    with pytest.raises(ValueError, match="min_delta"):
        is_stalled([1.0], window=1, min_delta=-1.0)


def test_longest_true_run_across_calls() -> None:
    # a run continues from the previous window through carry
    assert longest_true_run([True, True, False, True], carry=3) == (5, 1)
    # an empty window keeps the carried run open
    assert longest_true_run([], carry=2) == (2, 2)
