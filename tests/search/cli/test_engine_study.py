"""The read-side commands on a study the sweep engine wrote (gradsweep.search.engine.local, no Ray)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from gradsweep.search.cli.try_ import REPRODUCE_TOLERANCE
from gradsweep.spaces.trial_config import TrialConfig

OBJECTIVE = """
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

SPACE = """
name: byo
objective: {objective}
metric: {{name: neg_mse, direction: maximize}}
scale: tiny
towers:
  - {{name: encoder, patterns: ["0.*"], lr: {{type: float, low: 1.0e-3, high: 10.0, log: true}}}}
  - {{name: head, patterns: ["2.*"], lr: {{type: float, low: 1.0e-3, high: 10.0, log: true}}}}
stages: [{{name: train, epochs: 4}}]
health: {{check_every: 5, exploding: {{threshold: 50.0}}}}
baselines:
  unstable: {{towers.encoder.lr: 10.0, towers.head.lr: 10.0}}
"""


@pytest.fixture(scope="module")
def engine_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from gradsweep.search.engine.local import optimize_local
    from gradsweep.spaces.space import load_space

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("engine")
    (root / "obj.py").write_text(OBJECTIVE)
    (root / "space.yaml").write_text(SPACE.format(objective=f"{root / 'obj.py'}:objective"))
    url = f"sqlite:///{root / 'e.db'}"
    optimize_local(load_space(root / "space.yaml"), 5, url, baselines=("unstable",), seed=0)
    return url


def test_status_of_engine_study(gradsweep: Callable, engine_url: str) -> None:
    data = json.loads(gradsweep("status", "--storage", engine_url, "--json").out)
    # every trial is in a final state and counted
    assert data["total"] == 5 and data["counts"]["RUNNING"] == 0
    # the unstable baseline is pruned for health, with the engine's reason grouped by rule: its loss
    # ran over its start and stayed there for 8 checks, too long to be a catapult (a hard rule)
    groups = [g for g in data["prune_groups"] if g["kind"] == "unstable" and 0 in g["trials"]]
    assert len(groups) == 1 and groups[0]["rule"] == "divergence" and "above its start" in groups[0]["key"]
    # the study attrs the engine wrote are shown
    assert (data["metric"], data["direction"], data["scale"]) == ("neg_mse", "maximize", "tiny")


def test_report_of_engine_study(engine_url: str) -> None:
    from gradsweep.search.report import collect
    from gradsweep.search.views import load_study

    data = collect(load_study(engine_url, None))
    pruned = [c for c in data.curves if c.prune is not None and c.prune.kind == "unstable" and c.number == 0]
    # the health-pruned baseline has curves per tower with its prune point and reason
    assert len(pruned) == 1 and {"encoder", "head"} <= set(pruned[0].series)
    assert "above its start" in pruned[0].prune.reason and pruned[0].prune.step in range(0, 41)


def test_export_then_try_on_engine_study(gradsweep: Callable, engine_url: str, tmp_path: Path) -> None:
    out = tmp_path / "best.yaml"
    # the engine's best trial exports
    assert gradsweep("export", "--storage", engine_url, "--out", out).code == 0
    config = TrialConfig.load(out)
    result = json.loads(gradsweep("try", "--config", out, "--json").out)
    # and gradsweep try reproduces its value
    assert abs(result["value"] - config.provenance["value"]) <= REPRODUCE_TOLERANCE
    assert result["reproduction"]["reproduced"] is True
