"""match_parameters and the no-decay rule, called directly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradsweep.spaces.apply.matching import match_parameters, no_decay_reason, parameter_modules
from gradsweep.spaces.trial_config import NoDecayRule, TowerConfig

NAMES = ["backbone.0.weight", "backbone.0.bias", "head.weight", "head.bias", "temperature"]


def _towers(*specs: tuple[str, list[str]], kind: str = "glob") -> list[TowerConfig]:
    return [TowerConfig(name=n, patterns=p, pattern_kind=kind, lr=1e-3) for n, p in specs]


def test_glob_maps_every_name_to_its_tower() -> None:
    towers = _towers(("backbone", ["backbone.*"]), ("head", ["head.*"]), ("temperature", ["temperature"]))
    owner = match_parameters(NAMES, towers)
    # each name lands in the tower whose glob covers it, input order kept
    assert owner == {
        "backbone.0.weight": "backbone",
        "backbone.0.bias": "backbone",
        "head.weight": "head",
        "head.bias": "head",
        "temperature": "temperature",
    }


def test_glob_star_crosses_dots() -> None:
    # fnmatch's * matches across dotted levels, so one pattern covers a whole subtree
    assert match_parameters(["a.b.c.weight"], _towers(("a", ["a.*"]))) == {"a.b.c.weight": "a"}


def test_regex_uses_fullmatch() -> None:
    towers = _towers(("backbone", [r"backbone\..*"]), ("rest", [r"head\..*", "temperature"]), kind="regex")
    owner = match_parameters(NAMES, towers)
    # regex towers split the names with full matches
    assert owner["backbone.0.bias"] == "backbone" and owner["temperature"] == "rest"
    # a regex that only matches a prefix does not count (fullmatch, not search)
    with pytest.raises(ValueError, match="match no tower"):
        match_parameters(["head.weight.extra"], _towers(("h", [r"head\.weight"]), kind="regex"))


def test_overlap_names_parameter_and_both_towers() -> None:
    towers = _towers(
        ("backbone", ["backbone.*"]), ("biases", ["*.bias"]), ("rest", ["head.*", "temperature"])
    )
    with pytest.raises(ValueError) as err:
        match_parameters(NAMES, towers)
    # the message names the doubly matched parameter and the two towers
    assert (
        "'backbone.0.bias'" in str(err.value)
        and "'backbone'" in str(err.value)
        and "'biases'" in str(err.value)
    )


def test_unmatched_lists_up_to_five_and_suggests_pattern() -> None:
    names = [f"extra.{i}.weight" for i in range(7)] + ["head.weight"]
    with pytest.raises(ValueError) as err:
        match_parameters(names, _towers(("head", ["head.*"])))
    msg = str(err.value)
    # count, the first five names, the remainder and a suggested glob are in the message
    assert "7 trainable parameter(s) match no tower" in msg
    assert "'extra.4.weight'" in msg and "'extra.5.weight'" not in msg and "(and 2 more)" in msg
    assert "extra.*" in msg and "catch-all" in msg


def test_optional_names_may_stay_unmatched() -> None:
    # names that do not require grad are allowed to match nothing
    owner = match_parameters(
        ["head.weight", "frozen_table"], _towers(("head", ["head.*"])), optional={"frozen_table"}
    )
    assert owner == {"head.weight": "head"}


def test_tower_matching_nothing_names_tower_and_patterns() -> None:
    towers = _towers(("head", ["head.*", "backbone.*", "temperature"]), ("ghost", ["ghost.*", "phantom"]))
    with pytest.raises(ValueError) as err:
        match_parameters(NAMES, towers)
    # the empty tower and its patterns are named
    assert "'ghost'" in str(err.value) and "['ghost.*', 'phantom']" in str(err.value)


def test_invalid_regex_is_value_error() -> None:
    # a broken regex is reported against its tower, not as re.error
    with pytest.raises(ValueError, match="tower 'bad': invalid regex"):
        match_parameters(NAMES, _towers(("bad", ["(unclosed"]), kind="regex"))


class ScaleNorm(nn.Module):
    """A custom norm layer (not a torch class) with a 2-D gain."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4, 4))


def test_no_decay_reasons() -> None:
    rule = NoDecayRule(names=("*.pos_embed",))
    linear, norm, emb = nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Embedding(5, 4)
    # the first applicable rule wins: names, bias, norm, embedding, scalar
    assert no_decay_reason("enc.pos_embed", 3, None, rule) == "name"
    assert no_decay_reason("l.bias", 1, linear, rule) == "bias"
    assert no_decay_reason("bn.weight", 1, norm, rule) == "norm"
    assert no_decay_reason("e.weight", 2, emb, rule) == "embedding"
    assert no_decay_reason("temperature", 0, None, rule) == "scalar"
    # a matrix weight of a Linear decays
    assert no_decay_reason("l.weight", 2, linear, rule) is None
    # a custom class whose name ends in Norm counts as a norm layer, even with a 2-D parameter
    assert no_decay_reason("n.scale", 2, ScaleNorm(), rule) == "norm"


def test_no_decay_rule_switches() -> None:
    off = NoDecayRule(bias=False, norm=False, embedding=False, scalars=False)
    # with every switch off, biases, norms, embeddings and scalars decay
    assert no_decay_reason("l.bias", 1, nn.Linear(2, 2), off) is None
    assert no_decay_reason("n.weight", 1, nn.LayerNorm(2), off) is None
    assert no_decay_reason("e.weight", 2, nn.Embedding(3, 2), off) is None
    assert no_decay_reason("t", 0, None, off) is None


def test_parameter_modules_maps_full_names_to_owner() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.LayerNorm(2)))
    owners = parameter_modules(model)
    # nested names resolve to the module that registers the parameter
    assert isinstance(owners["1.0.weight"], nn.LayerNorm) and isinstance(owners["0.bias"], nn.Linear)
