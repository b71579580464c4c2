"""The one study setup of both sweep paths (no Ray): prepare, open, reopen; and the Ray-free import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from gradsweep.errors import UserError
from gradsweep.search.engine.request import SweepRequest, validate_request
from gradsweep.search.engine.setup import prepare_sweep, reopen_sweep
from gradsweep.search.engine.study import find_study
from gradsweep.search.pruner import HealthPruner
from gradsweep.spaces.space import parse_space

from ._support import space_data


def _request(objectives_file: Path, tmp_path: Path, **kwargs: object) -> SweepRequest:
    space = parse_space(space_data(f"{objectives_file}:lr_quality"))
    return SweepRequest(space=space, n_trials=3, storage=f"sqlite:///{tmp_path / 's.db'}", **kwargs)  # type: ignore[arg-type]


def test_importing_the_ray_free_path_does_not_import_ray() -> None:
    modules = [
        "local",
        "setup",
        "request",
        "study",
        "outcome",
        "summary",
        "tally",
        "progress",
        "optuna_reporter",
    ]
    imports = "; ".join(f"import gradsweep.search.engine.{m}" for m in modules)
    code = f"import sys; {imports}; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    # the local sweep and its setup loaded ...
    assert {"gradsweep.search.engine.local", "gradsweep.search.engine.setup"} <= loaded
    # ... without Ray or any module of the Ray half
    assert "ray" not in loaded and not any(m.startswith("gradsweep.search.engine.ray") for m in loaded)


def test_prepare_writes_nothing_and_open_sets_up_the_study(objectives_file: Path, tmp_path: Path) -> None:
    request = _request(objectives_file, tmp_path, pruner="median", seed=3, baselines=("good",))
    prepared = prepare_sweep(request, validate_request(request))
    # preparing opens and checks the store but creates no study
    assert find_study(prepared.storage, "engine-test") is None
    sweep = prepared.open()
    # the study's pruner is the health pruner over the named base pruner, and it is the one that decides
    assert isinstance(sweep.study.pruner, HealthPruner) and sweep.pruner is sweep.study.pruner
    assert isinstance(sweep.pruner.base_pruner, optuna.pruners.MedianPruner)
    # the plan resume needs is stored, with the target counted from this run
    assert sweep.study.user_attrs["gradsweep.sweep"] == sweep.plan.to_dict() and sweep.plan.target == 3
    # the baseline waits first in the queue, tagged
    [waiting] = sweep.study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert waiting.user_attrs["gradsweep.baseline"] == "good"


def test_reopen_gives_the_same_pruner_and_the_stored_plan(objectives_file: Path, tmp_path: Path) -> None:
    request = _request(objectives_file, tmp_path, pruner="percentile")
    first = prepare_sweep(request, validate_request(request)).open()
    sweep = reopen_sweep(request.storage, first.study.study_name, target=5)
    # resume's study decides with the health pruner over the plan's base pruner, like launch's
    assert isinstance(sweep.study.pruner, HealthPruner) and sweep.pruner is sweep.study.pruner
    assert isinstance(sweep.pruner.base_pruner, optuna.pruners.PercentilePruner)
    # the new target replaces the plan's and is stored
    assert sweep.plan.target == 5 and sweep.study.user_attrs["gradsweep.sweep"]["target"] == 5


def test_reopen_refuses_an_unknown_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(study_name="other", storage=url)
    # an unknown study is one line that lists the studies there
    with pytest.raises(UserError, match=r"no study 'missing' in .*; studies there: other"):
        reopen_sweep(url, "missing")
