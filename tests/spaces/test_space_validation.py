"""Every validation rule of a search space: a table of bad YAMLs and the message each must give."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from gradsweep.spaces.space import SpaceError, parse_space, space_warnings

BASE = yaml.safe_load(
    """
name: demo
objective: contrastive
metric: {name: recall_at_5_v2t, direction: maximize}
batch_size: {type: categorical, choices: [32, 64]}
towers:
  - name: video
    patterns: ["video.*"]
    lr: {type: float, low: 1.0e-5, high: 3.0e-3, log: true}
    weight_decay: {type: float, low: 1.0e-6, high: 1.0e-1, log: true}
  - name: text
    patterns: ["text.*"]
    lr: {tie: video, ratio: {type: float, low: 0.05, high: 2.0, log: true}}
schedule:
  kind: {type: categorical, choices: [cosine, onecycle]}
  warmup_fraction: 0.1
  onecycle: {pct_start: {type: float, low: 0.1, high: 0.5}}
stages:
  - {name: head, steps: 10, train: [text]}
  - {name: full, steps: 20, lr_multipliers: {"*": {type: float, low: 0.1, high: 1.0}}}
extras: {loss_variant: {type: categorical, choices: [einsum, stable]}, depth: {type: int, low: 1, high: 4}}
baselines:
  before: {batch_size: 32, towers.video.lr: 1.0e-4, towers.video.weight_decay: 1.0e-2,
           towers.text.lr_ratio: 0.2, schedule.kind: cosine, stages.full.lr_multipliers.*: 0.5,
           extras.loss_variant: einsum, extras.depth: 2}
"""
)


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node: Any = out
    parts = path.split("/")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


class _Delete:
    """Marks a key to remove (its repr is stable, so test ids match across pytest-xdist workers)."""

    def __repr__(self) -> str:
        return "<delete>"


_DELETE = _Delete()

CASES = [
    # (path to change, new value, fragment the first error line must contain)
    ("towers/0/lr/low", 1.0, "towers[0].lr: low (1) must be < high (0.003)"),
    ("towers/0/weight_decay/low", 0.0, "towers[0].weight_decay: log scale needs low > 0"),
    ("towers/0/lr/step", 1e-5, "towers[0].lr: log and step cannot be combined"),
    ("batch_size/choices", [], "batch_size: choices must list at least one value"),
    ("batch_size/choices", [32, 32], "batch_size: choices repeat 32"),
    ("towers/1/lr/tie", "vidoe", "towers[1].lr.tie: unknown tower 'vidoe'; towers are: video, text"),
    ("towers/1/lr/tie", "text", "towers[1].lr.tie: tower 'text' cannot be tied to itself"),
    ("towers/1/lr/ratio", -0.5, "towers[1].lr.ratio: must be >= 0"),
    ("stages/0/train", ["txt"], "stages[0].train: unknown tower 'txt'"),
    ("stages/1/lr_multipliers", {"vid": 0.5}, "stages[1].lr_multipliers: unknown tower 'vid'"),
    ("stages/1/lr_multipliers", {"*": -1.0}, "stages[1].lr_multipliers.*: multipliers must be >= 0"),
    (
        "stages/1/lr_multipliers",
        {"*": {"type": "float", "low": -1.0, "high": 1.0}},
        "multipliers must be >= 0",
    ),
    ("stages/0/epochs", 3, "stages[0]: give exactly one of epochs or steps"),
    ("towers/1/name", "video", "towers[1].name: tower 'video' is defined twice"),
    ("schedule/warmup_fraction", 1.5, "schedule.warmup_fraction: Input should be less than 1"),
    ("schedule/warmup_steps", 30, "schedule: give warmup_steps or warmup_fraction, not both"),
    ("schedule/kind/choices", ["cosine", "cosin"], "schedule.kind: value 'cosin' is not allowed here"),
    ("schedule/flavour", "x", "schedule.flavour: unknown key"),
    ("towers/0/lr/type", "flaot", "towers[0].lr: unknown parameter type 'flaot'"),
    ("towers/0/lr", {"low": 1.0, "high": 2.0}, "towers[0].lr: a parameter needs `type:`"),
    ("extras/depth/high", 1, "extras.depth: low (1) must be < high (1)"),
    ("towers", [], "towers: List should have at least 1 item"),
    ("metric", _DELETE, "metric: required field is missing"),
    ("towers/0/patterns", [], "towers[0].patterns: List should have at least 1 item"),
    ("towers/0/clip_max_norm", -1.0, "towers[0].clip_max_norm: Input should be greater than 0"),
    ("amp", {"dtype": "fp8"}, "amp.dtype: Input should be 'none', 'bf16' or 'fp16'"),
    ("baselines/before/towers.video.lr", 5.0, "baselines.before.towers.video.lr: 5.0 is outside the space"),
    ("baselines/before/towers.vid.lr", 1e-4, "baselines.before.towers.vid.lr: unknown parameter"),
    ("baselines/before/extras.depth", _DELETE, "baselines.before.extras.depth: missing"),
    ("baselines/before/extras.depth", 2.5, "baselines.before.extras.depth: 2.5 is outside the space"),
    # issue 18: input that passed validation and then broke a run
    ("extras/depth/step", 5, "extras.depth.step: step 5 is larger than the range high - low = 3"),
    (
        "stages/1/lr_multipliers/*/step",
        2.0,
        "stages[1].lr_multipliers.*.step: step 2 is larger than the range",
    ),
    ("batch_size/choices", [32, True, 32.0], "batch_size: choices repeat 32 and 32.0"),
    ("batch_size/choices", [1, True], "batch_size: choices repeat 1 and True"),
    ("batch_size/choices", [16, "16"], "batch_size: choices repeat 16 and '16'"),
    ("stages/0/train", [], "stages[0].train: trains no tower (it lists no tower)"),
    ("towers/1/frozen", True, "stages[0].train: trains no tower (every tower it names is frozen)"),
    ("towers/0/lr", float("inf"), "towers[0].lr: inf is not a finite number"),
    ("towers/0/lr", float("nan"), "towers[0].lr: nan is not a finite number"),
    ("towers/0/lr/high", float("inf"), "towers[0].lr.high: inf is not a finite number"),
    ("towers/1/lr/ratio", "inf", "towers[1].lr.ratio: inf is not a finite number"),
    ("clip", {"norm_type": {"type": "float", "low": 1.0, "high": float("inf")}}, "clip.norm_type.high: inf"),
    (
        "health",
        {"exploding": {"threshold": float("inf")}},
        "health.exploding.threshold: inf is not a finite number",
    ),
    (
        "baselines/before/towers.video.lr",
        float("nan"),
        "baselines.before.towers.video.lr: nan is not a finite",
    ),
    # issue 19: gradient accumulation takes a whole number of micro-batches, at least 1
    ("accumulation_steps", 0, "accumulation_steps: Input should be greater than or equal to 1"),
    ("accumulation_steps", -1, "accumulation_steps: Input should be greater than or equal to 1"),
    ("accumulation_steps", 1.5, "accumulation_steps: Input should be a valid integer"),
    ("accumulation_steps", "x", "accumulation_steps: Input should be a valid integer"),
    (
        "accumulation_steps",
        {"type": "int", "low": 0, "high": 4},
        "accumulation_steps: Input should be greater than or equal to 1",
    ),
    (
        "accumulation_steps",
        {"type": "categorical", "choices": [1, 0]},
        "accumulation_steps: value 0 is not allowed here",
    ),
    ("towers/0/name", "v" * 201, "towers[0].name: at most 200 characters, got 201"),
    ("stages/0/name", "s" * 201, "stages[0].name: at most 200 characters, got 201"),
]


@pytest.mark.parametrize(("path", "value", "fragment"), CASES, ids=[c[0] + "=" + repr(c[1]) for c in CASES])
def test_bad_space_gives_one_line_naming_the_field(path: str, value: Any, fragment: str) -> None:
    bad = _set(BASE, path, value)
    with pytest.raises(SpaceError) as info:
        parse_space(bad)
    lines = info.value.errors
    # the expected message names the YAML path and what is allowed
    assert any(fragment in line for line in lines), lines
    # every problem is one line without Pydantic's noise
    assert all("\n" not in line and "pydantic" not in line.lower() for line in lines)


def test_warmup_longer_than_training_is_refused() -> None:
    bad = _set(_set(BASE, "schedule/warmup_fraction", _DELETE), "schedule/warmup_steps", 30)
    with pytest.raises(SpaceError) as info:
        parse_space(bad)
    # 30 warmup steps against 10 + 20 training steps is named with both numbers
    assert "schedule.warmup_steps: 30 is not shorter than training (30 steps over 2 stage(s))" in str(
        info.value
    )


def test_warmup_longer_than_a_restarted_schedule_is_refused() -> None:
    bad = _set(_set(BASE, "schedule/warmup_fraction", _DELETE), "schedule/warmup_steps", 25)
    bad = _set(bad, "stages/1/schedule", "restart")
    with pytest.raises(SpaceError) as info:
        parse_space(bad)
    # 25 warmup steps fit the 30 of training, but not the 20 of the schedule that restarts at 'full'
    assert (
        "schedule.warmup_steps: 25 is not shorter than training (20 steps from stage 'full', "
        "whose schedule restarts)" in str(info.value)
    )


def test_warmup_with_epoch_stages_is_a_warning_not_an_error() -> None:
    data = _set(_set(BASE, "schedule/warmup_fraction", _DELETE), "schedule/warmup_steps", 1000)
    data = _set(_set(data, "stages", [{"name": "all", "epochs": 2}]), "baselines", {})
    # the length of training depends on the objective's steps per epoch: valid, with one warning
    assert [w.split(":")[0] for w in space_warnings(parse_space(data))] == ["schedule.warmup_steps"]


def test_only_norm_type_may_be_infinite() -> None:
    for norm in (float("inf"), {"type": "categorical", "choices": [2.0, float("inf")]}):
        # clip.norm_type: .inf is the max-norm, as a value or a choice
        assert parse_space(_set(_set(BASE, "clip", {"norm_type": norm}), "baselines", {})).clip is not None
    with pytest.raises(SpaceError):
        parse_space(_set(BASE, "clip", {"norm_type": float("nan")}))


def test_base_space_is_valid() -> None:
    space = parse_space(BASE)
    # the reference space of this table validates, so each case above fails for its own reason
    assert space.tower_names() == ["video", "text"]


def test_not_a_mapping() -> None:
    with pytest.raises(SpaceError) as info:
        parse_space(["a", "list"])
    # a YAML list at top level is named as such
    assert "must be a YAML mapping, got list" in info.value.errors[0]


# Issue 19, point 4 (what tripped a new user): "no clipping" as a choice, YAML 1.1 exponents.


def _with_clip_choices(choices: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["clip"] = {"max_norm": {"type": "categorical", "choices": choices}}
    return data


def test_null_is_a_choice_where_the_setting_allows_none() -> None:
    from gradsweep.spaces.sampling import check_params, resolve

    data = _with_clip_choices([None, 1.0])
    data["baselines"]["before"]["clip.max_norm"] = None
    space = parse_space(data)
    # the space validates, the baseline's null is accepted, and null resolves to "no clipping"
    params = check_params(space, dict(space.baselines["before"]))
    assert params["clip.max_norm"] is None and resolve(space, params).clip.max_norm is None
    assert resolve(space, {**params, "clip.max_norm": 1.0}).clip.max_norm == 1.0


def test_the_word_none_is_text_and_says_to_write_null() -> None:
    data = _with_clip_choices(["none", 1.0])
    data["baselines"] = {}
    with pytest.raises(SpaceError) as info:
        parse_space(data)
    # one line, naming the field, telling what to write instead
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith("clip.max_norm:") and "write null" in info.value.errors[0]


def test_null_where_a_number_is_needed_is_one_line() -> None:
    data = copy.deepcopy(BASE)
    data["towers"][0]["lr"] = {"type": "categorical", "choices": [None, 1.0e-3]}
    data["baselines"] = {}
    with pytest.raises(SpaceError) as info:
        parse_space(data)
    # one line for the one bad value (not the tied tower's or the tower list's knock-on errors)
    assert info.value.errors == [
        "towers[0].lr: value null is not allowed here (towers[0].lr: Input should be a valid number)"
    ]


def test_exponent_numbers_without_a_sign_are_numbers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gradsweep.spaces.space import load_space

    path = tmp_path / "space.yaml"
    path.write_text(
        "name: exp\nobjective: contrastive\nmetric: {name: recall_at_5_v2t, direction: maximize}\n"
        "towers:\n  - name: all\n    patterns: ['*']\n"
        "    lr: {type: float, low: 1e-5, high: 3E-3, log: true}\n"
        "    weight_decay: {type: categorical, choices: [1e-4, 1.0e-2, 0.5]}\n"
        "extras: {width: {type: categorical, choices: [1.0e6, 2e6]}}\n"
    )
    raw = yaml.safe_load(path.read_text())
    # PyYAML alone (YAML 1.1) reads an exponent without a sign or without a dot as text ...
    assert raw["towers"][0]["weight_decay"]["choices"] == ["1e-4", 0.01, 0.5]
    assert raw["extras"]["width"]["choices"] == ["1.0e6", "2e6"]
    # ... gradsweep's reader reads numbers, as YAML 1.2 and JSON do
    space = load_space(path)
    assert space.towers[0].weight_decay.choices == [1e-4, 1e-2, 0.5]
    assert space.extras["width"].choices == [1e6, 2e6]
    assert (space.towers[0].lr.low, space.towers[0].lr.high) == (1e-5, 3e-3)
