"""build_param_groups and build_optimizer on a real two-tower model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradsweep.spaces.apply import build_optimizer, build_param_groups
from gradsweep.spaces.trial_config import TrialConfig

EXPECTED = {
    "video_backbone/decay": {"video_backbone.0.weight", "video_backbone.2.weight"},
    "video_backbone/no_decay": {
        "video_backbone.0.bias",
        "video_backbone.2.bias",
        "video_backbone.3.weight",
        "video_backbone.3.bias",
    },
    "text_encoder/decay": {"text_encoder.proj.weight"},
    "text_encoder/no_decay": {
        "text_encoder.embed.weight",
        "text_encoder.proj.bias",
        "text_encoder.norm.weight",
        "text_encoder.norm.bias",
    },
    "temperature": {"temperature"},
}


def _names_by_group(model: nn.Module, groups: list[dict]) -> dict[str, set[str]]:
    name_of = {id(p): n for n, p in model.named_parameters()}
    return {g["group"]: {name_of[id(p)] for p in g["params"]} for g in groups}


def test_each_parameter_in_exactly_one_group(two_tower, make_two_tower_config) -> None:
    groups = build_param_groups(two_tower, make_two_tower_config())
    ids = [id(p) for g in groups for p in g["params"]]
    # no parameter appears twice and none is missing
    assert len(ids) == len(set(ids)) == len(list(two_tower.parameters()))
    # the decay / no-decay split follows the rule: matrices decay; biases, norms, embeddings, scalars do not
    assert _names_by_group(two_tower, groups) == EXPECTED


def test_group_keys_lr_and_weight_decay(two_tower, make_two_tower_config) -> None:
    groups = {g["group"]: g for g in build_param_groups(two_tower, make_two_tower_config())}
    # groups come in tower order, decay first
    assert list(groups) == list(EXPECTED)
    # decay groups take the tower's weight decay, no_decay groups 0
    assert groups["video_backbone/decay"]["weight_decay"] == 0.05
    assert groups["text_encoder/decay"]["weight_decay"] == 0.01
    assert groups["text_encoder/no_decay"]["weight_decay"] == 0.0
    # a tower with only no-decay parameters gets a single group named after the tower, wd 0
    assert groups["temperature"]["weight_decay"] == 0.0 and groups["temperature"]["decay"] is False
    # lr and base_lr are the tower's LR; tower and decay keys are set
    assert groups["text_encoder/no_decay"]["lr"] == groups["text_encoder/no_decay"]["base_lr"] == 5e-4
    assert (
        groups["video_backbone/decay"]["tower"] == "video_backbone"
        and groups["video_backbone/decay"]["decay"]
    )


def test_linear_lr_scaling_sets_base_lr(two_tower, make_two_tower_config) -> None:
    cfg = make_two_tower_config(batch_size=512, schedule={"lr_scaling": "linear", "reference_batch": 256})
    groups = build_param_groups(two_tower, cfg)
    # base_lr is config.effective_lr: lr * batch / reference = 2x here
    assert {g["tower"]: g["base_lr"] for g in groups}["video_backbone"] == pytest.approx(2e-3)


def test_frozen_tower_stays_in_optimizer_with_lr_zero(two_tower, make_two_tower_config) -> None:
    cfg = make_two_tower_config()
    towers = [t.model_copy(update={"frozen": t.name == "text_encoder"}) for t in cfg.towers]
    groups = build_param_groups(two_tower, cfg.model_copy(update={"towers": tuple(towers)}))
    text = [g for g in groups if g["tower"] == "text_encoder"]
    # the frozen tower still has its groups, at lr 0, with its base_lr kept for later
    assert len(text) == 2 and all(g["lr"] == 0.0 and g["base_lr"] == 5e-4 for g in text)
    # its parameters no longer require grad; other towers are untouched
    assert not any(p.requires_grad for p in two_tower.text_encoder.parameters())
    assert all(p.requires_grad for p in two_tower.video_backbone.parameters())
    # building again (e.g. build_optimizer after build_param_groups) still finds the frozen tower
    assert len(build_param_groups(two_tower, cfg.model_copy(update={"towers": tuple(towers)}))) == 5


def test_model_frozen_unmatched_parameter_is_left_out(two_tower, make_two_tower_config) -> None:
    two_tower.register_parameter("lookup", nn.Parameter(torch.zeros(3), requires_grad=False))
    groups = build_param_groups(two_tower, make_two_tower_config())
    # a parameter the model itself froze may match no tower; it just stays out of the optimizer
    assert all(p is not two_tower.lookup for g in groups for p in g["params"])


def test_errors_name_the_culprits(two_tower, make_two_tower_config) -> None:
    base = make_two_tower_config().model_dump(mode="json")
    overlap = {
        **base,
        "towers": [*base["towers"][:2], {**base["towers"][2], "patterns": ["temperature", "*.bias"]}],
    }
    # overlap: the first doubly matched parameter and both towers are named
    with pytest.raises(
        ValueError,
        match=r"'video_backbone.0.bias' matches more than one tower: 'video_backbone' and 'temperature'",
    ):
        build_param_groups(two_tower, TrialConfig.model_validate(overlap))
    # unmatched: the text tower is missing, its parameters are listed with a suggestion
    missing = {**base, "towers": [base["towers"][0], base["towers"][2]]}
    with pytest.raises(ValueError, match=r"match no tower: 'text_encoder.embed.weight'.*text_encoder\.\*"):
        build_param_groups(two_tower, TrialConfig.model_validate(missing))
    empty = {**base, "towers": [*base["towers"], {"name": "audio", "patterns": ["audio.*"], "lr": 1e-3}]}
    # a tower matching nothing is named with its patterns
    with pytest.raises(ValueError, match=r"tower 'audio': glob patterns \['audio.\*'\] match no parameter"):
        build_param_groups(two_tower, TrialConfig.model_validate(empty))


def test_adamw_uses_config_and_tower_betas(two_tower, make_two_tower_config) -> None:
    cfg = make_two_tower_config(optimizer={"name": "adamw", "betas": [0.8, 0.95], "eps": 1e-6})
    base = cfg.model_dump(mode="json")
    base["towers"][1] = {**base["towers"][1], "betas": [0.9, 0.98], "eps": 1e-7}
    opt = build_optimizer(two_tower, TrialConfig.model_validate(base))
    by_tower = {g["tower"]: g for g in opt.param_groups}
    # AdamW with the optimizer-level betas/eps where the tower does not override them
    assert isinstance(opt, torch.optim.AdamW) and by_tower["video_backbone"]["betas"] == (0.8, 0.95)
    assert by_tower["video_backbone"]["eps"] == 1e-6
    # the text tower's own betas/eps win
    assert by_tower["text_encoder"]["betas"] == (0.9, 0.98) and by_tower["text_encoder"]["eps"] == 1e-7
    # the groups' extra keys survive into the optimizer
    assert [g["group"] for g in opt.param_groups] == list(EXPECTED)


def test_sgd_momentum_nesterov(two_tower, make_two_tower_config) -> None:
    opt = build_optimizer(
        two_tower, make_two_tower_config(optimizer={"name": "sgd", "momentum": 0.8, "nesterov": True})
    )
    # SGD with the config's momentum and nesterov flag, weight decay per group
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["momentum"] == 0.8 and g["nesterov"] for g in opt.param_groups)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0, 0.01, 0.0, 0.0]
    # nesterov without momentum is rejected before torch's own check
    with pytest.raises(ValueError, match=r"nesterov needs optimizer\.momentum > 0"):
        build_optimizer(
            two_tower, make_two_tower_config(optimizer={"name": "sgd", "momentum": 0.0, "nesterov": True})
        )


def test_sgd_with_tower_betas_is_rejected(two_tower, make_two_tower_config) -> None:
    base = make_two_tower_config(optimizer={"name": "sgd"}).model_dump(mode="json")
    base["towers"][0] = {**base["towers"][0], "betas": [0.9, 0.99]}
    # betas only mean something to AdamW
    with pytest.raises(ValueError, match=r"only optimizer\.name 'adamw' uses"):
        build_optimizer(two_tower, TrialConfig.model_validate(base))


def test_optimizer_steps_a_real_loss(two_tower, make_two_tower_config) -> None:
    opt = build_optimizer(two_tower, make_two_tower_config())
    torch.manual_seed(1)
    video, tokens = torch.randn(4, 3, 8), torch.randint(0, 20, (4, 5))
    before = {n: p.detach().clone() for n, p in two_tower.named_parameters()}
    two_tower(video, tokens).backward()
    opt.step()
    # every parameter moved after one AdamW step (every tower trains)
    assert all(not torch.equal(before[n], p) for n, p in two_tower.named_parameters())
