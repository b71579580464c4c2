"""Space -> Optuna distributions -> sampled params -> TrialConfig, and back through YAML."""

from __future__ import annotations

import math

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradsweep.spaces.sampling import baseline_config, check_params, distributions, knobs, resolve, suggest
from gradsweep.spaces.space import SpaceError, parse_space
from gradsweep.spaces.trial_config import TrialConfig
from tests.spaces.test_space_validation import BASE

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def space():
    return parse_space(BASE)


def test_knob_names_are_dotted_paths_with_named_list_entries(space) -> None:
    names = [k.name for k in knobs(space) if k.searched]
    # list entries are addressed by name and a tie's ratio gets its own parameter
    assert names == [
        "batch_size",
        "towers.video.lr",
        "towers.video.weight_decay",
        "towers.text.lr_ratio",
        "schedule.kind",
        "schedule.onecycle.pct_start",
        "stages.full.lr_multipliers.*",
        "extras.loss_variant",
        "extras.depth",
    ]


def test_distributions_match_the_yaml(space) -> None:
    dists = distributions(space)
    # a log float becomes a log FloatDistribution with the same bounds
    assert dists["towers.video.lr"] == optuna.distributions.FloatDistribution(1e-5, 3e-3, log=True)
    # an int knob becomes an IntDistribution
    assert dists["extras.depth"] == optuna.distributions.IntDistribution(1, 4)


def test_onecycle_knob_exists_only_when_onecycle_is_chosen(space) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {"cosine": set(), "onecycle": set()}
    for _ in range(30):
        trial = study.ask()
        params = suggest(space, trial)
        seen[params["schedule.kind"]].add("schedule.onecycle.pct_start" in params)
        study.tell(trial, 0.0)
    # define-by-run: the conditional knob is sampled with onecycle and never with cosine
    assert seen == {"cosine": {False}, "onecycle": {True}}


def test_tie_multiplies_the_target_lr(space) -> None:
    config = baseline_config(space, "before")
    # text lr = video lr (1e-4) * ratio (0.2)
    assert math.isclose(config.tower("text").lr, 2e-5)
    # the params the config came from travel with it, for enqueueing as a baseline
    assert config.params["towers.text.lr_ratio"] == 0.2


def test_inactive_subtree_keeps_defaults(space) -> None:
    config = baseline_config(space, "before")
    # schedule.kind=cosine leaves onecycle at TrialConfig's defaults and out of params
    assert config.schedule.onecycle.pct_start == 0.3
    assert "schedule.onecycle.pct_start" not in config.params


def test_check_params_drops_inactive_and_refuses_missing(space) -> None:
    params = dict(BASE["baselines"]["before"], **{"schedule.onecycle.pct_start": 0.2})
    # a knob that is inactive under schedule.kind=cosine is dropped, not an error
    assert "schedule.onecycle.pct_start" not in check_params(space, params)
    params["schedule.kind"] = "onecycle"
    del params["schedule.onecycle.pct_start"]
    with pytest.raises(SpaceError) as info:
        check_params(space, params)
    # once onecycle is chosen its knob must be given
    assert "schedule.onecycle.pct_start: missing" in str(info.value)


def test_resolve_refuses_missing_params(space) -> None:
    with pytest.raises(SpaceError) as info:
        resolve(space, {"batch_size": 32})
    # the first missing parameter is named
    assert "missing parameter 'towers.video.lr'" in str(info.value)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), sampler=st.sampled_from(["random", "tpe"]))
def test_sampled_configs_validate_and_round_trip(space, seed: int, sampler: str) -> None:
    smp = (
        optuna.samplers.RandomSampler(seed=seed)
        if sampler == "random"
        else optuna.samplers.TPESampler(seed=seed, n_startup_trials=1)
    )
    study = optuna.create_study(sampler=smp)
    for _ in range(2):
        trial = study.ask()
        params = suggest(space, trial)
        config = resolve(space, params)
        # the sampled params are accepted back as a baseline of the same space
        assert check_params(space, config.params) == params
        # YAML and JSON round trips give the identical config
        assert TrialConfig.from_yaml(config.to_yaml()) == config
        assert TrialConfig.from_json(config.to_json()) == config
        # every tower LR is finite and non-negative after ties
        assert all(t.lr >= 0 and math.isfinite(t.lr) for t in config.towers)
        study.tell(trial, 0.0)


def test_trial_config_load_accepts_export_shape(tmp_path, space) -> None:
    import yaml

    config = baseline_config(space, "before")
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump({"config": config.to_dict(), "provenance": {"study": "s"}}))
    # a file with top-level `config:` (what export writes) loads as the same TrialConfig
    assert TrialConfig.load(path) == config


def test_space_to_dict_round_trips_without_warnings(space) -> None:
    import warnings

    from gradsweep.spaces.sampling import space_to_dict

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = space_to_dict(space)
    # the stored form of a space (study attrs) parses back into the same space, ties included
    assert parse_space(data) == space


def test_the_optimizer_is_a_searchable_knob_while_tower_and_stage_names_stay_structure() -> None:
    data = {
        "name": "opt",
        "objective": "contrastive",
        "metric": {"name": "loss", "direction": "minimize"},
        "optimizer": {"name": {"type": "categorical", "choices": ["adamw", "sgd"]}},
        "towers": [{"name": "all", "patterns": ["*"], "lr": 1e-3}],
        "stages": [{"name": "train", "epochs": 1}],
    }
    space = parse_space(data)
    # the optimizer's name is sampled; the tower's and the stage's names are not knobs
    assert list(distributions(space)) == ["optimizer.name"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    chosen = {resolve(space, suggest(space, study.ask())).optimizer.name for _ in range(12)}
    assert chosen == {"adamw", "sgd"}
    # a choice outside the optimizers is refused before any trial, naming the field
    bad = {**data, "optimizer": {"name": {"type": "categorical", "choices": ["adamw", "lion"]}}}
    with pytest.raises(SpaceError, match=r"optimizer.name: value 'lion' is not allowed here"):
        parse_space(bad)
