"""Objective specs: built-in names, ``package.module:function``, ``path/file.py:function``, and errors."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from gradsweep.errors import UserError
from gradsweep.objectives import contrastive
from gradsweep.objectives.api import NullReporter, TrialContext, run_objective
from gradsweep.objectives.registry import BUILTINS, check_accumulation, list_objectives, load_objective
from gradsweep.spaces.presets import list_presets
from gradsweep.spaces.trial_config import TrialConfig

# A complete bring-your-own objective: an existing loop plus the handful of gradsweep lines.
USER_OBJECTIVE = """
import torch
import torch.nn.functional as F


def objective(config, ctx):
    g = torch.Generator().manual_seed(config.seed)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 1))
    trainer = ctx.trainer(model, steps_per_epoch=4)                     # gradsweep
    x, y = x.to(ctx.device), y.to(ctx.device)
    for step in range(trainer.total_steps):
        batch = slice((step % 4) * 16, (step % 4 + 1) * 16)
        with ctx.autocast():                                             # gradsweep
            loss = F.mse_loss(model(x[batch]), y[batch])
        trainer.step(loss)                                               # gradsweep
        if (step + 1) % 4 == 0:
            with torch.no_grad():
                value = -F.mse_loss(model(x), y).item()
            ctx.report(value, step)                                      # gradsweep
    return value


class Objective:
    def __call__(self, config, ctx):
        return objective(config, ctx)


NOT_CALLABLE = 3
"""


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_objective.py"
    path.write_text(textwrap.dedent(USER_OBJECTIVE))
    return path


def test_builtin_names_resolve_to_their_run() -> None:
    # a built-in name loads that module's run()
    assert load_objective("contrastive") is contrastive.run
    # every built-in has metadata whose default metric is one of its metrics and whose preset exists
    for row in list_objectives():
        assert row.default_metric in row.metrics and row.preset.removesuffix(".yaml") in list_presets(), row
    # the rows come in BUILTINS order
    assert tuple(r.name for r in list_objectives()) == BUILTINS


def test_module_function_spec() -> None:
    # package.module:function imports the module and returns the attribute
    assert load_objective("gradsweep.objectives.contrastive:run") is contrastive.run


def test_file_spec_runs_end_to_end(user_file: Path, make_linear_config: Callable[..., TrialConfig]) -> None:
    fn = load_objective(f"{user_file}:objective")
    config = make_linear_config(steps=16, check_every=4, lr=3e-2)
    reporter = NullReporter()
    value = run_objective(fn, config, TrialContext(config, reporter=reporter, device="cpu"))
    # the user's loop returned a finite value and improved on the first report
    assert value > reporter.history[0].value
    # one report per epoch, each with the monitor's health summary
    assert [r.step for r in reporter.history] == [3, 7, 11, 15]
    assert all(
        r.health is not None and "health/all/grad_norm_pre" in r.health.metrics for r in reporter.history
    )


def test_file_spec_with_a_class_is_instantiated(user_file: Path) -> None:
    fn = load_objective(f"{user_file}:Objective")
    # a class named in the spec is instantiated; the instance is the objective
    assert callable(fn) and type(fn).__name__ == "Objective"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "contrastiv",
            "unknown objective 'contrastiv'; built-ins are: contrastive, moco, finetune, multitower, segmentation",
        ),
        ("", "empty objective"),
        ("nowhere/missing.py:objective", "objective file not found: nowhere/missing.py"),
        ("gradsweep.objectives.nope:run", "objective module not found: gradsweep.objectives.nope"),
        ("gradsweep.objectives.contrastive:walk", "gradsweep.objectives.contrastive has no function 'walk'"),
        (
            "gradsweep.objectives.contrastive:METRICS",
            "gradsweep.objectives.contrastive:METRICS is not callable (it is a tuple)",
        ),
        (":run", "bad objective ':run'"),
        ("train.py", "objective 'train.py' names no function; give train.py:function"),
    ],
)
def test_bad_specs_give_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        load_objective(spec)
    # the message names the problem on one line
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_missing_relative_objective_file_names_the_directory_it_was_looked_for_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "loop.py").write_text("def objective(config, ctx):\n    return 0.0\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as info:
        load_objective("loop.py:objective")
    # a space beside its objective, run from the folder above: the message says where it looked
    assert (
        f"objective file not found: loop.py (a relative path is read from the current directory, {tmp_path})"
        == str(info.value)
    )


def test_user_file_errors(user_file: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="has no function 'objectiv'"):
        load_objective(f"{user_file}:objectiv")
    with pytest.raises(UserError, match=r"my_objective.py:NOT_CALLABLE is not callable \(it is a int\)"):
        load_objective(f"{user_file}:NOT_CALLABLE")
    broken = tmp_path / "broken.py"
    broken.write_text("def objective(config, ctx)\n    return 1.0\n")
    with pytest.raises(UserError) as info:
        load_objective(f"{broken}:objective")
    # a syntax error in the user's file is reported as one line naming the file
    assert str(info.value).startswith(f"error importing objective file {broken}: SyntaxError")
    assert "\n" not in str(info.value)


def test_only_builtins_that_accumulate_take_accumulation_steps() -> None:
    # segmentation's loop steps per micro-batch: it takes accumulation
    check_accumulation("segmentation", True)
    # a user objective is trusted (its loop is known only when it runs)
    check_accumulation("my_pkg.train:objective", True)
    # a built-in that steps once per batch takes a space without accumulation
    check_accumulation("moco", False)
    # and refuses one with it, in one line naming the field and the objective
    with pytest.raises(
        UserError, match=r"^accumulation_steps: objective 'moco' does not accumulate gradients"
    ):
        check_accumulation("moco", True)
