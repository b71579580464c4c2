"""``accumulation_steps``: the effective batch and LR it gives, and how it is searched and saved."""

from __future__ import annotations

import optuna
import pytest

from gradsweep.spaces.sampling import baseline_config, resolve, suggest
from gradsweep.spaces.space import parse_space
from gradsweep.spaces.trial_config import ScheduleConfig, TowerConfig, TrialConfig
from tests.spaces.test_space_validation import BASE, _set

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _config(**fields: object) -> TrialConfig:
    return TrialConfig(objective="x", towers=[TowerConfig(name="all", patterns=["*"], lr=1e-3)], **fields)


def test_default_is_one_micro_batch_per_step() -> None:
    config = _config(batch_size=32)
    # without the key every optimizer step is one batch, as before accumulation existed
    assert config.accumulation_steps == 1 and config.effective_batch == 32


def test_linear_lr_scaling_uses_the_effective_batch() -> None:
    scaling = ScheduleConfig(lr_scaling="linear", reference_batch=256)
    accumulated = _config(batch_size=64, accumulation_steps=4, schedule=scaling)
    # 64 x 4 = 256 examples per optimizer step: the reference batch, so the LR is the base LR
    assert accumulated.effective_batch == 256 and accumulated.effective_lr("all") == pytest.approx(1e-3)
    # the micro-batch alone would have given a quarter of it
    assert _config(batch_size=64, schedule=scaling).effective_lr("all") == pytest.approx(2.5e-4)
    # without lr_scaling the accumulation leaves the LR alone
    assert _config(batch_size=64, accumulation_steps=4).effective_lr("all") == 1e-3


def test_searched_accumulation_is_sampled_and_resolved() -> None:
    data = _set(BASE, "accumulation_steps", {"type": "categorical", "choices": [1, 2]})
    data = _set(data, "baselines/before/accumulation_steps", 2)
    space = parse_space(data)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        params = suggest(space, trial)
        config = resolve(space, params)
        # the sampled value lands in the config and in its params
        assert (
            config.accumulation_steps == params["accumulation_steps"] == config.params["accumulation_steps"]
        )
        seen.add(config.accumulation_steps)
        study.tell(trial, 0.0)
    # both choices are drawn
    assert seen == {1, 2}
    # a baseline names it like any other knob
    assert baseline_config(space, "before").accumulation_steps == 2


def test_space_says_whether_it_accumulates() -> None:
    # a plain 1 (the default) never accumulates; a plain 4 always does
    assert (
        not parse_space(BASE).accumulates() and parse_space(_set(BASE, "accumulation_steps", 4)).accumulates()
    )
    # a knob accumulates when one of its values is over 1
    searched = _set(BASE, "accumulation_steps", {"type": "categorical", "choices": [1, 2]})
    assert parse_space(_set(searched, "baselines/before/accumulation_steps", 1)).accumulates()


def test_plain_value_resolves_and_round_trips_through_export_formats() -> None:
    space = parse_space(_set(BASE, "accumulation_steps", 4))
    config = baseline_config(space, "before")
    # a plain value is fixed: not a parameter, but in the config
    assert config.accumulation_steps == 4 and "accumulation_steps" not in config.params
    # export writes it ...
    assert config.to_dict()["accumulation_steps"] == 4
    # ... and `try --config` reads it back, from YAML or JSON
    assert TrialConfig.from_yaml(config.to_yaml()) == config == TrialConfig.from_json(config.to_json())
