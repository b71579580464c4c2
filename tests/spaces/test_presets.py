"""The five seed presets load, and their before/after baselines resolve into TrialConfigs."""

from __future__ import annotations

import pytest

from gradsweep.spaces.presets import list_presets, preset_path
from gradsweep.spaces.sampling import baseline_config
from gradsweep.spaces.space import load_space

SEED_PRESETS = ["contrastive", "finetune", "moco", "multitower", "segmentation"]


def test_every_seed_scenario_has_a_preset() -> None:
    # one preset per seed scenario ships with the package
    assert set(SEED_PRESETS) <= set(list_presets())


@pytest.mark.parametrize("name", SEED_PRESETS)
def test_preset_loads_and_baselines_resolve(name: str) -> None:
    space = load_space(name)
    # a preset names the objective it belongs to
    assert space.objective == name
    # each preset expresses the seed's "before" and "after" as parameter sets of its own space
    assert {"before", "after"} <= set(space.baselines)
    before, after = baseline_config(space, "before"), baseline_config(space, "after")
    # the two baselines are different configurations
    assert before.params != after.params
    # loading by file path gives the same space as loading by preset name
    assert load_space(preset_path(name)) == space


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ValueError) as info:
        preset_path("nope")
    # the message lists what exists
    assert "presets: contrastive" in str(info.value)
