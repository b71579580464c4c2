"""Tower patterns are checked against the built-in objective's real model before any trial."""

from __future__ import annotations

import copy

import pytest
import yaml

from gradsweep.search.preflight import probe_config, tower_errors
from gradsweep.spaces.presets import preset_path
from gradsweep.spaces.space import parse_space


def _preset(name: str) -> dict:
    return yaml.safe_load(preset_path(name).read_text())


@pytest.mark.parametrize("name", ["contrastive", "moco", "finetune", "multitower", "segmentation"])
def test_presets_fit_their_models(name: str) -> None:
    # every preset's towers cover its objective's parameters exactly once
    assert tower_errors(parse_space(_preset(name))) == []


def test_pattern_typo_names_the_unmatched_parameters() -> None:
    data = _preset("contrastive")
    text = next(t for t in data["towers"] if t["name"] == "text_encoder")
    text["patterns"] = ["text_encodr.*"]
    errors = tower_errors(parse_space(data))
    # the unmatched parameters are listed, one line, naming the objective
    assert len(errors) == 1 and "match no tower: 'text_encoder." in errors[0] and "'contrastive'" in errors[0]


def test_two_towers_claiming_one_parameter() -> None:
    data = _preset("finetune")
    head = next(t for t in data["towers"] if t["name"] == "head")
    head["patterns"] = [*head["patterns"], "backbone.*"]
    errors = tower_errors(parse_space(data))
    # a parameter claimed twice names both towers
    assert len(errors) == 1 and "matches more than one tower" in errors[0]


def test_extra_tower_matching_nothing() -> None:
    data = _preset("moco")
    extra = copy.deepcopy(data["towers"][0])
    extra.update(name="ghost", patterns=["ghost.*"], lr=1e-3)
    data["towers"].append(extra)
    errors = tower_errors(parse_space(data))
    # a tower whose patterns match nothing is named with its patterns
    assert len(errors) == 1 and "tower 'ghost': glob patterns ['ghost.*'] match no parameter" in errors[0]


def test_user_objective_is_not_inspected() -> None:
    data = dict(_preset("moco"), objective="my_pkg.train:objective")
    # a user objective has no model to inspect before it runs
    assert tower_errors(parse_space(data)) == []


def test_probe_config_without_baselines_uses_low_ends() -> None:
    data = _preset("finetune")
    data.pop("baselines")
    config = probe_config(parse_space(data))
    # with no baseline, every float knob sits at its low end
    assert config.params["towers.head.lr"] == data["towers"][0]["lr"]["low"]
