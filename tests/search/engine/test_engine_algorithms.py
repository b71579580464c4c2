"""Samplers and base pruners by name."""

from __future__ import annotations

import optuna
import pytest

from gradsweep.errors import UserError
from gradsweep.search.catchup import CatchUpPruner
from gradsweep.search.engine.algorithms import DEFAULT_PRUNER, SamplerName, make_base_pruner, make_sampler


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("tpe", optuna.samplers.TPESampler),
        ("random", optuna.samplers.RandomSampler),
        ("gp", optuna.samplers.GPSampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
    ],
)
def test_samplers_by_name(name: str, cls: type) -> None:
    # each name builds its Optuna sampler
    assert isinstance(make_sampler(name, seed=0), cls)


def test_tpe_is_multivariate_with_constant_liar() -> None:
    sampler = make_sampler("tpe", seed=0)
    # parallel trials see each other (constant liar) and parameters are modelled jointly
    assert sampler._constant_liar and sampler._multivariate


def test_seeded_sampler_repeats_its_configs() -> None:
    def sample(seed: int) -> list[float]:
        study = optuna.create_study(sampler=make_sampler(SamplerName.TPE, seed=seed, n_startup_trials=2))
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
        return [t.params["x"] for t in study.trials]

    # the same seed gives the same sequence, another seed another one
    assert sample(3) == sample(3) and sample(3) != sample(4)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("catchup", CatchUpPruner),
        ("median", optuna.pruners.MedianPruner),
        ("percentile", optuna.pruners.PercentilePruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
        ("successive-halving", optuna.pruners.SuccessiveHalvingPruner),
        ("wilcoxon", optuna.pruners.WilcoxonPruner),
        ("patient", optuna.pruners.PatientPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_pruners_by_name(name: str, cls: type) -> None:
    # each name builds its Optuna pruner
    assert isinstance(make_base_pruner(name), cls)


def test_the_default_pruner_is_catchup_waiting_for_five_finished_trials() -> None:
    pruner = make_base_pruner(DEFAULT_PRUNER)
    # the default --pruner is the catch-up rule: top-quartile bar, gains x 1.5, after 5 finished trials
    assert isinstance(pruner, CatchUpPruner)
    assert (pruner.quantile, pruner.gain_factor, pruner.n_startup_trials) == (0.75, 1.5, 5)


def test_unknown_names_list_the_choices() -> None:
    # a typo is one line listing the samplers
    with pytest.raises(UserError, match="--sampler must be one of tpe, random, gp, cmaes"):
        make_sampler("tpee")
    # ... and the pruners
    with pytest.raises(UserError, match="--pruner must be one of catchup, median, percentile"):
        make_base_pruner("mediann")


def test_sampler_warning_names_the_samplers_that_ignore_pruned_trials() -> None:
    from gradsweep.search.engine.algorithms import sampler_warning

    # TPE and random search need no warning
    assert sampler_warning("tpe") is None and sampler_warning("random") is None
    # GP and CMA-ES get one line naming the flag and the way out
    for name in ("gp", "CMAES"):
        text = sampler_warning(name)
        assert text is not None and text.startswith(f"--sampler {name.lower()} ") and "\n" not in text
        assert "--sampler tpe" in text
