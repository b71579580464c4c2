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
from gradsweep.spaces.health import HealthConfig
from gradsweep.spaces.trial_config import MetricConfig, StageConfig, TowerConfig, TrialConfig

OBJECTIVE_FILE = """
import torch

def objective(config, ctx):
    g = torch.Generator().manual_seed(config.seed)
    x = torch.randn(64, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    trainer = ctx.trainer(model, steps_per_epoch=10)
    for step in range(trainer.total_steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        trainer.step(loss)
        ctx.report(-loss.item(), step)
    return -loss.item()
"""


def _config(spec: str, encoder_lr: float, head_lr: float, seed: int = 0) -> TrialConfig:
    return TrialConfig(
        objective=spec,
        seed=seed,
        metric=MetricConfig(name="neg_mse"),
        towers=[
            TowerConfig(name="encoder", patterns=["0.*"], lr=encoder_lr),
            TowerConfig(name="head", patterns=["2.*"], lr=head_lr),
        ],
        stages=[StageConfig(name="train", epochs=3)],
        health=HealthConfig(check_every=5),
        params={"towers.encoder.lr": encoder_lr, "towers.head.lr": head_lr},
    )


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """A real study of a file objective run with OptunaReporter (health attrs from the real monitor)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("try")
    path = root / "objective.py"
    path.write_text(OBJECTIVE_FILE)
    spec = f"{path}:objective"
    fn = load_objective(spec)
    url = f"sqlite:///{root / 'study.db'}"
    study = optuna.create_study(
        study_name="byo", storage=url, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1)
    )

    def objective(trial: optuna.Trial) -> float:
        config = _config(
            spec,
            trial.suggest_float("towers.encoder.lr", 1e-3, 1e-1, log=True),
            trial.suggest_float("towers.head.lr", 1e-3, 1e-1, log=True),
            seed=trial.number,
        )
        trial.set_user_attr("gradsweep.config", config.to_dict())
        return run_objective(fn, config, TrialContext(config, reporter=OptunaReporter(trial), device="cpu"))

    study.optimize(objective, n_trials=3)
    return url, spec, root


def test_export_then_try_reproduces_the_metric(gradsweep: Callable, swept: tuple[str, str, Path]) -> None:
    url, spec, root = swept
    out = root / "best.yaml"
    # export of the best trial succeeds
    assert gradsweep("export", "--storage", url, "--out", out).code == 0
    best = optuna.load_study(study_name="byo", storage=url).best_trial
    ran = gradsweep("try", "--config", out, "--objective", spec, "--json")
    result = json.loads(ran.out)
    # the same config, seed and scale give the same metric within the stated tolerance
    assert ran.code == 0 and abs(result["value"] - best.value) <= REPRODUCE_TOLERANCE
    # try says so itself
    assert result["reproduction"]["reproduced"] is True and result["reproduction"]["trial"] == best.number
    # the health report of the real monitor comes along
    assert result["verdict"] in ("healthy", "warning", "unstable") and result["step"] is not None
    assert "health/encoder/grad_norm_pre" in result["metrics"]


def test_a_value_that_does_not_reproduce_is_said_on_stderr(
    gradsweep: Callable, swept: tuple[str, str, Path]
) -> None:
    url, spec, root = swept
    out = root / "best_for_mismatch.yaml"
    assert gradsweep("export", "--storage", url, "--out", out).code == 0
    doctored = TrialConfig.load(out)
    expected = doctored.provenance["value"] + 0.5  # as if the exported run had ended elsewhere
    doctored = TrialConfig.from_dict(
        {**doctored.to_dict(), "provenance": {**doctored.provenance, "value": expected}}
    )
    path = root / "doctored.yaml"
    path.write_text(doctored.to_yaml())
    ran = gradsweep("try", "--config", path, "--objective", spec)
    # the run itself succeeded; the mismatch and what can cause it are on stderr, one line
    assert ran.code == 0 and "does NOT reproduce trial #" in ran.err and "|diff| 0.5" in ran.err
    assert "AVX-512 vs AVX2" in ran.err and "reproduces" not in ran.out
    # (after the note naming the objective file that ran, issue 18 item 4)
    assert (
        ran.err.splitlines()[0].startswith("note: running objective code from ") and ran.err.count("\n") == 2
    )


def test_try_table_output(gradsweep: Callable, swept: tuple[str, str, Path]) -> None:
    _, spec, root = swept
    config = root / "plain.yaml"
    config.write_text(_config(spec, 0.01, 0.01, seed=5).to_yaml())
    ran = gradsweep("try", "--config", config, "--seed", "7")
    # the objective comes from the config; metric, seed override and health verdict are printed
    assert ran.code == 0 and "neg_mse =" in ran.out and "seed 7" in ran.out and "health:" in ran.out


def test_report_draws_real_monitor_curves(gradsweep: Callable, swept: tuple[str, str, Path]) -> None:
    from gradsweep.search.report import collect
    from gradsweep.search.views import load_study

    url, _, _ = swept
    data = collect(load_study(url, "byo"))
    # every trial's health history from the real monitor becomes curves per tower
    assert len(data.curves) == 3 and set(data.curves[0].series) == {"encoder", "head", "global"}
    # LR vs value has both towers
    assert set(data.lr.towers) == {"encoder", "head"}


def test_try_bad_inputs(gradsweep: Callable, swept: tuple[str, str, Path], tmp_path: Path) -> None:
    _, spec, _ = swept
    # neither --objective nor --config
    ran = gradsweep("try")
    assert ran.code == 1 and "error: give --objective NAME, --config FILE or --space SPACE" in ran.err
    # a missing config file
    ran = gradsweep("try", "--config", tmp_path / "nope.yaml")
    assert ran.code == 1 and "error: config file not found" in ran.err and ran.err.count("\n") == 1
    # a config that does not validate names the field
    bad = tmp_path / "bad.yaml"
    bad.write_text("objective: x\ntowers: []\n")
    ran = gradsweep("try", "--config", bad)
    assert ran.code == 1 and "error:" in ran.err and "towers" in ran.err and ran.err.count("\n") == 1
    # text that is not YAML
    broken = tmp_path / "broken.yaml"
    broken.write_text("objective: [unclosed\n")
    ran = gradsweep("try", "--config", broken)
    assert ran.code == 1 and "not a valid config file" in ran.err
    # a file objective has no preset to fall back on
    ran = gradsweep("try", "--objective", spec)
    assert ran.code == 1 and "has no preset; give --config FILE" in ran.err
    # an unknown objective lists the built-ins
    ran = gradsweep("try", "--objective", "nope")
    assert ran.code == 1 and "built-ins" in ran.err
    # a bad --scale is a usage error
    assert gradsweep("try", "--objective", "contrastive", "--scale", "huge").code == 2


def test_health_summary_and_key_metrics() -> None:
    from gradsweep.objectives.health import HealthReport, Verdict
    from gradsweep.search.cli.try_ import health_summary, key_metrics

    reports = [
        HealthReport(
            5, Verdict.WARNING, ["text grad norm 1e-07 < 1e-06 for 1 check (step 5)"], {"health/loss": 2.0}
        ),
        HealthReport(10, Verdict.HEALTHY, [], {"health/loss": 1.0, "health/steps": 5.0}),
    ]
    summary = health_summary(reports)
    # the latest verdict is reported together with the worst one seen and its reasons
    assert (summary["verdict"], summary["worst_verdict"], summary["step"]) == ("healthy", "warning", 10)
    assert summary["worst_reasons"] == ["text grad norm 1e-07 < 1e-06 for 1 check (step 5)"]
    # no reports: the verdict is None, not a guess
    assert health_summary([])["verdict"] is None
    metrics = {
        "health/steps": 25.0,
        "health/t/grad_norm_pre_max": 1.0,
        "health/t/grad_norm_pre": 0.5,
        "health/loss": 1.0,
        "health/grad_norm_global": 0.7,
    }
    # the glance shows loss, global norm and tower norms in that order, not window bookkeeping
    assert list(key_metrics(metrics)) == ["health/loss", "health/grad_norm_global", "health/t/grad_norm_pre"]


def _space_with_quick_objective(tmp_path: Path) -> Path:
    import yaml

    from tests.search.engine._support import space_data

    objs = tmp_path / "objs.py"
    objs.write_text((Path(__file__).parents[2] / "reliability" / "_faulty.py").read_text())
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space_data(f"{objs}:quick")))
    return path


def test_try_runs_a_baseline_of_a_space(gradsweep: Callable, tmp_path: Path) -> None:
    space = _space_with_quick_objective(tmp_path)
    # a baseline named in the space (the quick objective scores -|log10(lr) + 2|: good has lr 1e-2)
    ran = gradsweep("try", "--space", space, "--baseline", "good", "--json")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["value"] == 0.0
    # a params file (what --baseline of launch reads) runs the same way
    params = tmp_path / "p.yaml"
    params.write_text("params:\n  towers.all.lr: 0.1\n")
    ran = gradsweep("try", "--space", space, "--baseline", params, "--json")
    assert ran.code == 0 and json.loads(ran.out)["value"] == -1.0, ran.err
    # given to --config, the params file is refused with the command that runs it
    ran = gradsweep("try", "--config", params)
    assert ran.code == 1 and f"run it with --space SPACE --baseline {params}" in ran.err


def test_try_space_refusals(gradsweep: Callable, tmp_path: Path) -> None:
    space = _space_with_quick_objective(tmp_path)
    cases = {
        # two baselines and none named: say which exist
        (
            "--space",
            space,
        ): "give --baseline NAME or a params file to say which config to run (baselines: bad, good)",
        ("--space", space, "--baseline", "nope"): "--baseline 'nope' is neither a file nor a baseline",
        ("--baseline", "good"): "--baseline needs --space SPACE",
        ("--space", space, "--config", tmp_path / "x.yaml"): "give --config FILE or --space SPACE, not both",
    }
    for args, fragment in cases.items():
        ran = gradsweep("try", *args)
        errors = [line for line in ran.err.splitlines() if line.startswith("error:")]
        # exit 1, one error line with the expected words
        assert ran.code == 1 and len(errors) == 1 and fragment in errors[0], (args, ran.err)


OWN_STEP_MISTAKES = """
import torch

def _setup(ctx):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    trainer = ctx.trainer(model, steps_per_epoch=2)
    return model, trainer, trainer.watch(), torch.randn(16, 8), torch.randn(16, 1)

def forgot_loss(config, ctx):
    model, trainer, watch, x, y = _setup(ctx)
    torch.nn.functional.mse_loss(model(x), y).backward()
    trainer.optimizer.step()
    return 0.0

def closure_step(config, ctx):
    model, trainer, watch, x, y = _setup(ctx)

    def closure():
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        watch.loss(loss)
        return loss

    trainer.optimizer.step(closure)
    return 0.0
"""


@pytest.mark.parametrize(
    ("function", "fragment"),
    [
        ("forgot_loss", "ran without a loss: call watch.loss(loss) after each backward()"),
        ("closure_step", "call backward() before optimizer.step()"),
    ],
)
def test_an_own_step_loop_that_breaks_the_watch_contract_gets_one_error_line(
    gradsweep: Callable, tmp_path: Path, function: str, fragment: str
) -> None:
    loop = tmp_path / "loop.py"
    loop.write_text(OWN_STEP_MISTAKES)
    config = tmp_path / "config.yaml"
    config.write_text(_config(f"{loop}:{function}", 1e-2, 1e-2).to_yaml())
    ran = gradsweep("try", "--config", config)
    errors = [line for line in ran.err.splitlines() if line.startswith("error:")]
    # exit 1 with one error line saying what to change, and no traceback (the fixture fails on one)
    assert ran.code == 1 and len(errors) == 1 and fragment in errors[0], ran.err
