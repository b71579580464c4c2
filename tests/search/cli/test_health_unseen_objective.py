"""A sweep of an objective gradsweep has never seen, with no ``health:`` section: the default rules alone
prune its diverging baseline as ``unstable`` with a reason naming the loss, and its good one completes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests._cli import run_cli

OBJECTIVE = """
import torch
import torch.nn.functional as F
from torch import nn


def objective(config, ctx):
    g = torch.Generator().manual_seed(config.seed)
    x = torch.randn(1024, 16, generator=g)
    y = (x[:, :8] * torch.randn(8, generator=g)).argmax(dim=1)
    model = nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 8))
    steps_per_epoch = 1024 // config.batch_size
    trainer = ctx.trainer(model, steps_per_epoch=steps_per_epoch)
    value = float("nan")
    for step in range(trainer.total_steps):
        idx = torch.randint(0, 1024, (config.batch_size,), generator=g)
        trainer.step(F.cross_entropy(model(x[idx]), y[idx]))
        if (step + 1) % steps_per_epoch == 0:
            with torch.no_grad():
                value = F.cross_entropy(model(x), y).item()
            ctx.report(value, step)
    return value
"""

SPACE = """
name: unseen-mlp
objective: {objective}:objective
metric: {{name: loss, direction: minimize}}
batch_size: 64
towers:
  - name: body
    patterns: ["0.*", "2.*"]
    lr: {{type: float, low: 1.0e-4, high: 3.0, log: true}}
  - name: head
    patterns: ["4.*"]
    lr: {{tie: body, ratio: 1.0}}
schedule: {{kind: constant, warmup_fraction: 0.0}}
stages: [{{name: train, epochs: 12}}]
baselines:
  good: {{towers.body.lr: 3.0e-3}}
  diverging: {{towers.body.lr: 3.0}}
"""


@pytest.mark.slow
@pytest.mark.ray
def test_default_rules_prune_the_diverging_baseline_of_an_unseen_objective(tmp_path: Path) -> None:
    (tmp_path / "unseen.py").write_text(textwrap.dedent(OBJECTIVE))
    (tmp_path / "space.yaml").write_text(SPACE.format(objective="unseen.py"))
    url = f"sqlite:///{tmp_path / 'unseen.db'}"
    ran = run_cli(
        [
            "launch",
            "space.yaml",
            "-n",
            "2",
            "--baseline",
            "good",
            "--baseline",
            "diverging",
            "--storage",
            url,
            "-q",
        ],
        cwd=tmp_path,
    )
    assert ran.code == 0 and not ran.traceback, ran.stderr[-2000:]
    trials = {
        t.user_attrs.get("gradsweep.baseline"): t
        for t in optuna.load_study(study_name="unseen-mlp", storage=url).get_trials()
    }
    diverging, good = trials["diverging"], trials["good"]
    # the space has no health section: the defaults alone call the loss's run-away unstable, a
    # hard rule, so the trial stops there: 12 epochs of 16 steps = 192 steps; the loss is over its
    # start from the first check (step 24), divergence needs 4 checks (step 99), and the prune
    # lands at the next report (step 111)
    assert diverging.state == TrialState.PRUNED, diverging.user_attrs.get("gradsweep.health.latest")
    assert diverging.user_attrs["gradsweep.prune.kind"] == "unstable"
    reason = diverging.user_attrs["gradsweep.prune.reason"]
    assert reason.startswith("loss ") and "above its start" in reason, reason
    assert diverging.user_attrs["gradsweep.prune.step"] <= 111
    assert diverging.user_attrs["gradsweep.health.flags"].keys() >= {"divergence"}
    # the good baseline learns and completes, never flagged
    assert good.state == TrialState.COMPLETE and good.value < 1.0
    assert "gradsweep.health.flags" not in good.user_attrs
