"""`gradsweep try` on the built-in contrastive objective at tiny scale: export -> try reproduces."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch

from gradsweep.objectives.api import TrialContext, run_objective
from gradsweep.objectives.registry import load_objective
from gradsweep.search.cli.try_ import REPRODUCE_TOLERANCE
from gradsweep.search.engine.optuna_reporter import OptunaReporter
from gradsweep.spaces.trial_config import MetricConfig, TowerConfig, TrialConfig

TOWERS = ("video_backbone", "video_attention_pool", "video_aggregator", "text_encoder")


def _config(lr: float) -> TrialConfig:
    return TrialConfig(
        objective="contrastive",
        scale="tiny",
        seed=3,
        metric=MetricConfig(name="recall_at_5_v2t"),
        towers=[
            *(TowerConfig(name=t, patterns=[f"{t}.*"], lr=lr, weight_decay=0.01) for t in TOWERS),
            TowerConfig(name="temperature", patterns=["temperature*"], lr=lr),
        ],
        params={"lr": lr},
    )


@pytest.mark.slow
def test_contrastive_export_then_try(gradsweep: Callable, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    study = optuna.create_study(study_name="c", storage=url, direction="maximize")
    fn = load_objective("contrastive")

    def objective(trial: optuna.Trial) -> float:
        config = _config(trial.suggest_float("lr", 1e-3, 1e-3))
        trial.set_user_attr("gradsweep.config", config.to_dict())
        return run_objective(fn, config, TrialContext(config, reporter=OptunaReporter(trial), device="cpu"))

    study.optimize(objective, n_trials=1)
    out = tmp_path / "best.yaml"
    # the real objective's trial exports
    assert gradsweep("export", "--storage", url, "--out", out).code == 0
    ran = gradsweep("try", "--config", out, "--scale", "tiny", "--json")
    result = json.loads(ran.out)
    # same seed and scale on CPU: the metric is reproduced within the tolerance
    assert ran.code == 0 and abs(result["value"] - study.best_value) <= REPRODUCE_TOLERANCE
    # the JSON carries the value and the health verdict key
    assert {"value", "verdict", "reproduction"} <= set(result) and result["reproduction"]["reproduced"]


def test_recommended_config_is_the_presets_after_baseline() -> None:
    from gradsweep.search.cli.try_ import recommended_config
    from gradsweep.spaces.sampling import baseline_config
    from gradsweep.spaces.space import load_space

    config = recommended_config("contrastive", scale="tiny", seed=3)
    # without --config, try runs the preset's resolved `after` baseline with the overrides applied
    assert config == baseline_config(load_space("contrastive"), "after", scale="tiny", seed=3)
    # and it is the contrastive objective's config
    assert (config.objective, config.scale, config.seed) == ("contrastive", "tiny", 3)
