"""StagedScheduler: one schedule across stages, unfreezing, restart, plateau and resume."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from gradsweep.spaces.apply import StagedScheduler, build_optimizer
from gradsweep.spaces.apply.schedule_math import warmup_cosine
from gradsweep.spaces.trial_config import StageConfig, TrialConfig


def _lrs(opt: torch.optim.Optimizer) -> dict[str, float]:
    return {g["tower"]: g["lr"] for g in opt.param_groups}


def _backbone_trainable(model: nn.Module) -> bool:
    return all(p.requires_grad for p in model.backbone.parameters())


def test_two_stage_unfreeze_keeps_schedule(finetune_model, make_finetune_config) -> None:
    cfg = make_finetune_config()
    opt = build_optimizer(finetune_model, cfg)
    sched = StagedScheduler(opt, cfg, steps_per_epoch=5, model=finetune_model)
    # 10 head-only steps + 30 steps of everything
    assert sched.total_steps == 40 and sched.stage.name == "head_only"
    # in stage 1 the backbone is not trainable and its LR is 0
    assert not _backbone_trainable(finetune_model) and _lrs(opt)["backbone"] == 0.0
    seen = []
    for step in range(40):
        # the group LRs are what lr_at reports for this step
        assert _lrs(opt) == pytest.approx(sched.lr_at(step))
        seen.append((sched.stage_index, sched.schedule_factor(step), _lrs(opt)))
        sched.step()
    # the schedule is one warmup-cosine over all 40 steps: the unfreeze never resets it
    assert [f for _, f, _ in seen] == pytest.approx([warmup_cosine(s, 40, 4, 0.1) for s in range(40)])
    # at the boundary the backbone became trainable ...
    assert seen[9][0] == 0 and seen[10][0] == 1 and _backbone_trainable(finetune_model)
    # ... with lr = base * 0.1 * factor, and the head's LR only changed by its 0.5 multiplier
    assert seen[10][2]["backbone"] == pytest.approx(1e-3 * 0.1 * warmup_cosine(10, 40, 4, 0.1))
    assert seen[10][2]["head"] / 0.5 == pytest.approx(seen[9][2]["head"], rel=0.03)
    # the LR kept decaying across the boundary (no new warmup)
    assert seen[10][1] < seen[9][1]
    # past the end the factor sits at the min ratio
    assert sched.global_step == 40 and sched.schedule_factor(40) == pytest.approx(0.1)


def test_restart_stage_starts_fresh_schedule(finetune_model, make_finetune_config) -> None:
    cfg = make_finetune_config(
        stages=[
            StageConfig(name="head_only", steps=10, train=("head",)),
            StageConfig(name="all", steps=30, lr_multipliers={"*": 0.5, "backbone": 0.1}, schedule="restart"),
        ]
    )
    sched = StagedScheduler(build_optimizer(finetune_model, cfg), cfg, steps_per_epoch=5)
    factors = [sched.schedule_factor(s) for s in range(41)]
    # stage 1 follows the 40-step schedule, cut off at the restart
    assert factors[:10] == pytest.approx([warmup_cosine(s, 40, 4, 0.1) for s in range(10)])
    # stage 2 warms up again from 0 over a fresh 30-step horizon (seed 002's rebuild), ending at the min ratio
    assert factors[10:] == pytest.approx([warmup_cosine(s, 30, 4, 0.1) for s in range(31)])
    assert factors[10] == 0.0 and factors[14] == pytest.approx(1.0)


def test_training_loop_freezes_then_trains_backbone(finetune_model, make_finetune_config) -> None:
    cfg = make_finetune_config()
    opt = build_optimizer(finetune_model, cfg)
    sched = StagedScheduler(opt, cfg, steps_per_epoch=5, model=finetune_model)
    torch.manual_seed(0)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    start = [p.detach().clone() for p in finetune_model.backbone.parameters()]
    for _ in range(10):
        nn.functional.cross_entropy(finetune_model(x), y).backward()
        # the frozen backbone gets no gradient at all in stage 1
        assert all(p.grad is None for p in finetune_model.backbone.parameters())
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    # after 10 head-only steps the backbone is bit-identical
    assert all(torch.equal(a, b) for a, b in zip(start, finetune_model.backbone.parameters(), strict=True))
    for _ in range(5):
        nn.functional.cross_entropy(finetune_model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    # once unfrozen, the same optimizer (no rebuild) updates the backbone
    assert not all(
        torch.equal(a, b) for a, b in zip(start, finetune_model.backbone.parameters(), strict=True)
    )


def test_frozen_tower_stays_frozen_in_every_stage(finetune_model, make_finetune_config) -> None:
    base = make_finetune_config().model_dump(mode="json")
    base["towers"][0]["frozen"] = True
    cfg = TrialConfig.model_validate(base)
    opt = build_optimizer(finetune_model, cfg)
    sched = StagedScheduler(opt, cfg, steps_per_epoch=5)
    for _ in range(20):
        sched.step()
    # stage 2 trains "*", but a frozen tower stays frozen at lr 0
    assert sched.stage_index == 1 and not _backbone_trainable(finetune_model) and _lrs(opt)["backbone"] == 0.0
    # lr_at agrees for every step
    assert all(sched.lr_at(s)["backbone"] == 0.0 for s in range(41))


def test_epochs_use_steps_per_epoch(finetune_model, make_finetune_config) -> None:
    cfg = make_finetune_config(
        stages=[StageConfig(name="a", epochs=2, train=("head",)), StageConfig(name="b", epochs=3)]
    )
    sched = StagedScheduler(build_optimizer(finetune_model, cfg), cfg, steps_per_epoch=7)
    # stage lengths are epochs * steps_per_epoch
    assert sched.total_steps == 35 and sched.stage_bounds(1) == (14, 35)
    # the stage of a step follows the bounds; past the end it is the last stage
    assert [sched.stage_at(s) for s in (0, 13, 14, 34, 99)] == [0, 0, 1, 1, 1]


def test_onecycle_through_scheduler_matches_torch(finetune_model, make_finetune_config) -> None:
    cfg = make_finetune_config(
        schedule={"kind": "onecycle", "warmup_steps": 50, "onecycle": {"pct_start": 0.2, "div_factor": 10.0}},
        stages=[StageConfig(name="only", steps=25)],
    )
    opt = build_optimizer(finetune_model, cfg)
    sched = StagedScheduler(opt, cfg, steps_per_epoch=1)
    ref_opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-3)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        ref_opt, max_lr=1e-3, total_steps=25, pct_start=0.2, div_factor=10.0, cycle_momentum=False
    )
    for _ in range(25):
        # same LR as OneCycleLR at every step; warmup fields are ignored for onecycle
        assert _lrs(opt)["head"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12)
        ref_opt.step()
        ref.step()
        sched.step()


def test_plateau_reduces_after_patience(finetune_model, make_finetune_config) -> None:
    cfg = make_finetune_config(
        schedule={
            "kind": "plateau",
            "plateau": {"factor": 0.5, "patience": 2, "mode": "max", "threshold": 0.0},
        },
        stages=[StageConfig(name="only", steps=20)],
    )
    opt = build_optimizer(finetune_model, cfg)
    sched = StagedScheduler(opt, cfg, steps_per_epoch=1)
    sched.step()
    # best, then two evaluations within patience: no reduction
    assert [sched.step_metric(v) for v in (0.8, 0.7, 0.8)] == [False, False, False]
    assert _lrs(opt)["head"] == pytest.approx(1e-3)
    # the third evaluation without improvement halves every trained tower's LR
    assert sched.step_metric(0.79) is True
    assert _lrs(opt) == pytest.approx({"backbone": 5e-4, "head": 5e-4})
    sched.step()
    # the reduction persists over later steps
    assert _lrs(opt)["head"] == pytest.approx(5e-4)


def test_step_metric_is_noop_for_other_kinds(finetune_model, make_finetune_config) -> None:
    cfg = make_finetune_config()
    opt = build_optimizer(finetune_model, cfg)
    sched = StagedScheduler(opt, cfg, steps_per_epoch=1)
    before = _lrs(opt)
    # cosine ignores metrics, so a trainer can call step_metric unconditionally
    assert [sched.step_metric(0.0) for _ in range(10)] == [False] * 10 and _lrs(opt) == before


def test_state_dict_round_trip_resumes_same_lrs(make_finetune_model, make_finetune_config) -> None:
    cfg = make_finetune_config(
        schedule={
            "kind": "plateau",
            "warmup_steps": 3,
            "plateau": {"factor": 0.5, "patience": 0, "threshold": 0.0},
        },
    )

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer, StagedScheduler]:
        model = make_finetune_model()
        opt = build_optimizer(model, cfg)
        return model, opt, StagedScheduler(opt, cfg, steps_per_epoch=1, model=model)

    _, opt_a, sched_a = fresh()
    for step in range(15):
        sched_a.step()
        if step % 4 == 0:
            sched_a.step_metric(-step)
    state = json.loads(json.dumps(sched_a.state_dict()))
    model_b, opt_b, sched_b = fresh()
    # the fresh scheduler starts in stage 1 with the backbone frozen
    assert sched_b.stage_index == 0 and not _backbone_trainable(model_b)
    sched_b.load_state_dict(state)
    # after loading: same step, stage, trainability and LRs
    assert (sched_b.global_step, sched_b.stage_index) == (15, 1) and _backbone_trainable(model_b)
    assert _lrs(opt_b) == pytest.approx(_lrs(opt_a))
    seq_a, seq_b = [], []
    for step in range(25):
        for sched, seq, opt in ((sched_a, seq_a, opt_a), (sched_b, seq_b, opt_b)):
            sched.step()
            if step % 3 == 0:
                sched.step_metric(1.0)
            seq.append(_lrs(opt))
    # both continue with the same LR sequence, plateau reductions included
    assert seq_b == seq_a
    assert sched_b.state_dict() == sched_a.state_dict()


def test_load_state_dict_rejects_other_plan(finetune_model, make_finetune_config) -> None:
    cfg = make_finetune_config()
    sched = StagedScheduler(build_optimizer(finetune_model, cfg), cfg, steps_per_epoch=1)
    state = sched.state_dict() | {"total_steps": 99}
    # a state saved under another stage plan cannot be resumed silently
    with pytest.raises(ValueError, match="total_steps=99"):
        sched.load_state_dict(state)


def test_constructor_validation(finetune_model, make_finetune_config) -> None:
    cfg = make_finetune_config()
    opt = build_optimizer(finetune_model, cfg)
    # steps_per_epoch must be positive
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 1"):
        StagedScheduler(opt, cfg, steps_per_epoch=0)
    # a plain optimizer without tower groups is refused with a hint
    with pytest.raises(ValueError, match="build_optimizer"):
        StagedScheduler(torch.optim.SGD(finetune_model.parameters(), lr=0.1), cfg, steps_per_epoch=1)
    finetune_model.register_parameter("extra", nn.Parameter(torch.zeros(2)))
    # a trainable model parameter outside the optimizer is named
    with pytest.raises(ValueError, match="'extra'"):
        StagedScheduler(opt, cfg, steps_per_epoch=1, model=finetune_model)


def test_restart_forgets_plateau_reductions(finetune_model, make_finetune_config) -> None:
    cfg = make_finetune_config(
        schedule={"kind": "plateau", "plateau": {"factor": 0.5, "patience": 0, "threshold": 0.0}},
        stages=[StageConfig(name="a", steps=5), StageConfig(name="b", steps=5, schedule="restart")],
    )
    opt = build_optimizer(finetune_model, cfg)
    sched = StagedScheduler(opt, cfg, steps_per_epoch=1)
    for v in (1.0, 0.5, 0.4):
        sched.step_metric(v)
    # two evaluations without improvement (patience 0) quartered the LR in stage a
    assert _lrs(opt)["head"] == pytest.approx(2.5e-4)
    for _ in range(5):
        sched.step()
    # the restarted stage b starts from the full LR again, and stage a's history is kept for lr_at
    assert sched.stage_index == 1 and _lrs(opt)["head"] == pytest.approx(1e-3)
    assert sched.lr_at(2)["head"] == pytest.approx(2.5e-4)
    # a later improvement-free evaluation counts from scratch: best is reset, so the first value is "better"
    assert sched.step_metric(0.1) is False
