"""Pure schedule math against closed-form values and torch's own schedulers."""

from __future__ import annotations

import math

import pytest
import torch

from gradsweep.spaces.apply.schedule_math import (
    PlateauState,
    linear_warmup,
    onecycle,
    plateau_factor,
    warmup_constant,
    warmup_cosine,
    warmup_length,
)


def test_warmup_cosine_closed_form() -> None:
    total, warmup, lo = 110, 10, 0.1
    # warmup starts at 0 and rises linearly
    assert warmup_cosine(0, total, warmup, lo) == 0.0
    assert warmup_cosine(5, total, warmup, lo) == pytest.approx(0.5)
    # warmup end is the peak
    assert warmup_cosine(10, total, warmup, lo) == pytest.approx(1.0)
    # halfway through the decay the cosine is at the midpoint between 1 and min ratio
    assert warmup_cosine(60, total, warmup, lo) == pytest.approx(lo + (1 - lo) * 0.5)
    # a quarter of the way: min + (1-min) * (1 + cos(pi/4)) / 2
    assert warmup_cosine(35, total, warmup, lo) == pytest.approx(
        lo + (1 - lo) * (1 + math.cos(math.pi / 4)) / 2
    )
    # the horizon ends at exactly the min ratio, and stays there past the end
    assert warmup_cosine(110, total, warmup, lo) == pytest.approx(lo)
    assert warmup_cosine(500, total, warmup, lo) == pytest.approx(lo)


def test_warmup_cosine_edges() -> None:
    # no warmup: starts at 1
    assert warmup_cosine(0, 10) == 1.0
    # all warmup: no decay phase, factor 1 afterwards
    assert warmup_cosine(10, 10, 10) == 1.0
    # invalid arguments are rejected with the field values in the message
    with pytest.raises(ValueError, match="warmup=11, total=10"):
        warmup_cosine(0, 10, 11)
    # a min ratio outside [0, 1] is rejected
    with pytest.raises(ValueError, match="min_ratio"):
        warmup_cosine(0, 10, 0, 1.5)


def test_warmup_length_and_constant() -> None:
    # steps are clamped to the horizon; a fraction rounds down
    assert warmup_length(100, 150, None) == 100 and warmup_length(100, None, 0.25) == 25
    assert warmup_length(100, None, None) == 0
    # both given is an error
    with pytest.raises(ValueError, match="not both"):
        warmup_length(100, 5, 0.1)
    # constant: warmup from 0, then 1 forever
    assert [warmup_constant(s, 4) for s in (0, 2, 4, 1000)] == [0.0, 0.5, 1.0, 1.0]
    # warmup 0 means no warmup
    assert linear_warmup(0, 0) == 1.0


@pytest.mark.parametrize(
    ("total", "pct", "div", "final_div"), [(100, 0.3, 25.0, 1e4), (37, 0.25, 10.0, 100.0), (8, 0.5, 5.0, 2.0)]
)
def test_onecycle_matches_torch(total: int, pct: float, div: float, final_div: float) -> None:
    max_lr = 0.4
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=max_lr,
        total_steps=total,
        pct_start=pct,
        div_factor=div,
        final_div_factor=final_div,
        anneal_strategy="cos",
        cycle_momentum=False,
    )
    torch_lrs = []
    for _ in range(total):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [max_lr * onecycle(s, total, pct, div, final_div) for s in range(total)]
    # every step's LR equals OneCycleLR's (same phases, same cosine annealing)
    assert ours == pytest.approx(torch_lrs, rel=1e-12, abs=1e-15)


def test_onecycle_closed_form_points() -> None:
    # starts at 1/div, peaks at 1 on step pct*total - 1, ends at 1/(div*final_div) on the last step
    assert onecycle(0, 100, 0.3, 25.0, 1e4) == pytest.approx(1 / 25)
    assert onecycle(29, 100, 0.3, 25.0, 1e4) == pytest.approx(1.0)
    assert onecycle(99, 100, 0.3, 25.0, 1e4) == pytest.approx(1 / 25 / 1e4)
    # past the end the factor is clamped instead of extrapolated
    assert onecycle(150, 100, 0.3, 25.0, 1e4) == pytest.approx(1 / 25 / 1e4)
    # a zero-length first phase (torch would divide by zero) yields the phase's end value
    assert onecycle(0, 4, 0.25, 25.0, 1e4) == pytest.approx(1.0)
    # pct_start must lie strictly inside (0, 1)
    with pytest.raises(ValueError, match="pct_start"):
        onecycle(0, 10, 1.0)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_plateau_state_matches_reduce_on_plateau(mode: str) -> None:
    values = [1.0, 0.9, 0.9, 0.95, 0.9, 0.7, 0.7, 0.7, 0.7, float("nan"), 0.6, 0.6, 0.6, 0.6]
    if mode == "max":
        values = [-v for v in values]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    torch_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, factor=0.5, patience=2, threshold=1e-4
    )
    ours = PlateauState(mode=mode, patience=2, threshold=1e-4)
    for v in values:
        torch_sched.step(v)
        ours.update(v)
    # the number of reductions equals what ReduceLROnPlateau did to the LR (each halves it)
    assert 0.5**ours.reductions == pytest.approx(opt.param_groups[0]["lr"])
    # and the patience state agrees
    assert ours.num_bad == torch_sched.num_bad_epochs


def test_plateau_reduces_after_patience_and_resets() -> None:
    s = PlateauState(mode="max", patience=2, threshold=0.0)
    # improvement, then patience bad evaluations do not reduce; the next one does
    assert [s.update(v) for v in (0.5, 0.4, 0.4, 0.4)] == [False, False, False, True]
    assert s.reductions == 1
    # reset forgets best and counters (a restarted schedule)
    s.reset()
    assert (s.best, s.num_bad, s.reductions) == (None, 0, 0)
    # factor ** reductions after warmup, floored at min ratio; warmup still from 0
    assert plateau_factor(10, 4, 0.1, 2) == pytest.approx(0.01)
    assert plateau_factor(10, 4, 0.1, 5, min_ratio=1e-3) == pytest.approx(1e-3)
    assert plateau_factor(2, 4, 0.1, 5, min_ratio=1e-3) == pytest.approx(0.5)
    # an unknown mode is rejected eagerly
    with pytest.raises(ValueError, match="plateau mode"):
        PlateauState(mode="up")  # type: ignore[arg-type]
