from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml

from gradsweep.errors import UserError
from gradsweep.search.export import export_document, resolve_format, write_export
from gradsweep.spaces.trial_config import TrialConfig
from gradsweep.version import __version__


def test_export_yaml_round_trips_through_trialconfig_load(
    gradsweep: Callable, demo_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "best.yaml"
    ran = gradsweep("export", "--storage", demo_url, "--out", out)
    # the command succeeds and names the trial it exported
    assert ran.code == 0 and "trial #2" in ran.out
    config = TrialConfig.load(out)
    # the loaded config is the best trial's resolved config, params included
    study = optuna.load_study(study_name="demo", storage=demo_url)
    assert config.params == study.trials[2].params
    assert config.model_dump(exclude={"provenance"}) == TrialConfig.from_dict(
        study.trials[2].user_attrs["gradsweep.config"]
    ).model_dump(exclude={"provenance"})
    doc = yaml.safe_load(out.read_text())
    prov = doc["provenance"]
    # provenance names study, trial, value, version, space and the storage
    assert (prov["study"], prov["trial"], prov["value"], prov["gradsweep_version"]) == (
        "demo",
        2,
        0.73,
        __version__,
    )
    assert prov["space"]["name"] == "demo-space" and prov["storage"] == demo_url
    # the same provenance travels inside the config
    assert config.provenance is not None and config.provenance["trial"] == 2
    from gradsweep.search.engine.request import _params_from_file

    # `gradsweep launch --baseline best.yaml` reads the exported params back
    assert _params_from_file(out) == study.trials[2].params


def test_export_json_top_k(gradsweep: Callable, demo_url: str, tmp_path: Path) -> None:
    out = tmp_path / "best.json"
    ran = gradsweep("export", "--storage", demo_url, "--out", out, "--top", "3")
    doc = json.loads(out.read_text())
    # the K best configs are listed best first under configs:
    assert ran.code == 0 and [c["provenance"]["trial"] for c in doc["configs"]] == [2, 7, 6]
    # the best one still loads as a single TrialConfig
    assert TrialConfig.load(out).provenance["trial"] == 2
    # each listed config validates
    assert all(TrialConfig.from_dict(c["config"]).objective == "demo" for c in doc["configs"])


def test_export_format_flag_overrides_suffix(gradsweep: Callable, demo_url: str, tmp_path: Path) -> None:
    out = tmp_path / "best.yaml"
    # --format json writes JSON (which YAML readers accept too)
    assert gradsweep("export", "--storage", demo_url, "--out", out, "--format", "json").code == 0
    assert json.loads(out.read_text())["provenance"]["trial"] == 2
    # and it still loads through TrialConfig.load
    assert TrialConfig.load(out).params


def test_export_refuses_study_without_complete_trial(
    gradsweep: Callable, pruned_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "best.yaml"
    ran = gradsweep("export", "--storage", pruned_url, "--out", out)
    # one clear line, exit 1
    assert ran.code == 1 and ran.err.count("\n") == 1
    assert "error: study 'nothing-done' has no complete trial (2 pruned); nothing to export" in ran.err
    # and nothing is written
    assert not out.exists()


def test_export_bad_inputs(gradsweep: Callable, demo_url: str, tmp_path: Path) -> None:
    # a missing output directory is one line, exit 1
    ran = gradsweep("export", "--storage", demo_url, "--out", tmp_path / "no" / "best.yaml")
    assert ran.code == 1 and "error: output directory" in ran.err and "does not exist" in ran.err
    # an unknown --format is a usage error
    assert (
        gradsweep("export", "--storage", demo_url, "--out", tmp_path / "b.yaml", "--format", "toml").code == 2
    )
    # --out is required
    assert gradsweep("export", "--storage", demo_url).code == 2
    # yaml into a .json file would not load back: refused before anything is read
    ran = gradsweep("export", "--storage", demo_url, "--out", tmp_path / "b.json", "--format", "yaml")
    assert ran.code == 1 and "does not match b.json" in ran.err
    # --out naming a directory is refused
    ran = gradsweep("export", "--storage", demo_url, "--out", tmp_path)
    assert ran.code == 1 and "is a directory" in ran.err
    # none of these wrote a file
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_export_masks_password_in_provenance(demo_url: str) -> None:
    study = optuna.load_study(study_name="demo", storage=demo_url)
    doc = export_document(study, storage_url="postgresql+psycopg://me:hunter2@db/x", top=1)
    # the storage password never reaches the exported file
    assert doc["provenance"]["storage"] == "postgresql+psycopg://me:***@db/x"


def test_trial_without_recorded_config_is_refused(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    # a study not written by gradsweep has no config to export
    with pytest.raises(UserError, match=r"trial 0 has no recorded config \(gradsweep.config\)"):
        export_document(study, storage_url="sqlite:///x.db")


def test_resolve_format_and_atomic_write(tmp_path: Path) -> None:
    # the suffix picks the format when --format is left out
    assert resolve_format(Path("a.json"), None) == "json" and resolve_format(Path("a.yml"), None) == "yaml"
    out = write_export({"config": {"x": float("inf")}}, tmp_path / "a.json")
    # non-finite floats are written as strings, keeping standard JSON
    assert json.loads(out.read_text()) == {"config": {"x": "inf"}}
    # no temporary files are left beside the output
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_exported_config_applies_to_a_model(gradsweep: Callable, demo_url: str, tmp_path: Path) -> None:
    import torch

    from gradsweep.spaces.apply import StagedScheduler, build_optimizer

    out = tmp_path / "best.yaml"
    assert gradsweep("export", "--storage", demo_url, "--out", out).code == 0
    model = torch.nn.ModuleDict(
        {"video_backbone": torch.nn.Linear(4, 4), "text_encoder": torch.nn.Linear(4, 4)}
    )
    # the three lines of user code from the README
    config = TrialConfig.load(out)
    optimizer = build_optimizer(model, config)
    StagedScheduler(optimizer, config, steps_per_epoch=10, model=model)
    lrs = {g["tower"]: g["base_lr"] for g in optimizer.param_groups}
    # each tower trains with the exported trial's LR
    assert lrs == {
        "video_backbone": config.params["towers.video_backbone.lr"],
        "text_encoder": config.params["towers.text_encoder.lr"],
    }


def test_export_any_finished_trial_by_number(gradsweep: Callable, demo_url: str, tmp_path: Path) -> None:
    out = tmp_path / "t3.yaml"
    ran = gradsweep("export", "--storage", demo_url, "--out", out, "--trial", "3")
    # a pruned trial (3: non-finite loss) exports, and the line says which state it was in
    assert ran.code == 0 and "trial #3" in ran.out and "(pruned)" in ran.out, ran.err
    config = TrialConfig.load(out)
    study = optuna.load_study(study_name="demo", storage=demo_url)
    # its own resolved config and params, with its state in the provenance
    assert config.params == study.trials[3].params and config.provenance["state"] == "PRUNED"
    from gradsweep.search.engine.request import _params_from_file

    # it works as --baseline (to enqueue the pruned config again)
    assert _params_from_file(out) == study.trials[3].params
    # the best-trial export records COMPLETE
    best = tmp_path / "best.yaml"
    assert gradsweep("export", "--storage", demo_url, "--out", best).code == 0
    assert TrialConfig.load(best).provenance["state"] == "COMPLETE"


def test_export_trial_refusals(gradsweep: Callable, demo_url: str, tmp_path: Path) -> None:
    out = tmp_path / "t.yaml"
    # an unknown number names the trials there are
    ran = gradsweep("export", "--storage", demo_url, "--out", out, "--trial", "42")
    assert ran.code == 1 and "no trial 42 (trials: 0..9)" in ran.err and ran.err.count("\n") == 1
    # a RUNNING trial (9) is not a finished config
    ran = gradsweep("export", "--storage", demo_url, "--out", out, "--trial", "9")
    assert ran.code == 1 and "--trial 9 is RUNNING" in ran.err
    # --trial with --top is one line too
    ran = gradsweep("export", "--storage", demo_url, "--out", out, "--trial", "2", "--top", "2")
    assert ran.code == 1 and "leave out --top" in ran.err
    # nothing was written
    assert not out.exists()


def test_try_does_not_compare_a_pruned_trials_value() -> None:
    from gradsweep.search.cli.try_ import reproduction
    from tests.search.views.study_factory import config_for

    base = config_for(
        {"towers.video_backbone.lr": 1e-3, "towers.text_encoder.lr": 1e-4, "loss_variant": "einsum"}, seed=0
    )
    pruned = base.model_copy(
        update={"provenance": {"state": "PRUNED", "value": 0.1, "trial": 3, "study": "s"}}
    )
    complete = pruned.model_copy(update={"provenance": {**pruned.provenance, "state": "COMPLETE"}})
    # a pruned trial's value is where it stopped, not a finished run's: no verdict either way
    assert reproduction(pruned, 0.5) is None
    # a complete one (or an export from before the state was recorded) is compared
    assert reproduction(complete, 0.5)["reproduced"] is False
    legacy = pruned.model_copy(update={"provenance": {"value": 0.5, "trial": 3, "study": "s"}})
    assert reproduction(legacy, 0.5)["reproduced"] is True


@pytest.mark.parametrize("writes_batch", [False, True], ids=["unwritten", "written"])
def test_keys_the_space_left_unwritten_stay_out_of_the_export(writes_batch: bool) -> None:
    from gradsweep.search.engine.study import study_attrs
    from gradsweep.spaces import parse_space, resolve

    data = {
        "name": "byo",
        "objective": "my_loop.py:objective",
        "metric": {"name": "val_loss", "direction": "minimize"},
        "towers": [{"name": "all", "patterns": ["*"], "lr": {"type": "float", "low": 1e-4, "high": 1e-1}}],
    }
    if writes_batch:
        data["batch_size"] = 64  # the default value, written: the objective uses it
    space = parse_space(data)
    study = optuna.create_study(direction="minimize")
    for key, value in study_attrs(space, objective="my_loop.py:objective", scale="tiny").items():
        study.set_user_attr(key, value)
    trial = study.ask()
    trial.set_user_attr("gradsweep.config", resolve(space, {"towers.all.lr": 0.01}).to_dict())
    study.tell(trial, 0.5)
    config = export_document(study, storage_url="sqlite:///x.db")["config"]
    # batch_size is in the export only when the space wrote it; scale and accumulation_steps, unwritten, never
    assert ("batch_size" in config) is writes_batch
    assert "scale" not in config and "accumulation_steps" not in config
    # the file still loads as the config the trial trained with
    trained = TrialConfig.from_dict(study.trials[0].user_attrs["gradsweep.config"])
    assert TrialConfig.from_dict(config).model_copy(update={"provenance": None}) == trained
