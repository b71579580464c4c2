"""examples/lightning: a LightningModule swept through `gradsweep launch` on local Ray."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests._cli import run_cli
from tests.docs.test_readme import bash_lines

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.ray
def test_the_lightning_example_sweeps_and_its_diverging_baseline_is_pruned_for_health(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples" / "lightning", tmp_path / "examples" / "lightning")
    url = f"sqlite:///{tmp_path / 'lt.db'}"
    readme = next(
        line
        for line in bash_lines((REPO / "README.md").read_text())
        if line.startswith("gradsweep launch examples/lightning/")
    )
    # the README's launch line, as written (its test leaves this line to this test)
    ran = run_cli([*shlex.split(readme)[1:], "--storage", url, "-q"], cwd=tmp_path)
    # the sweep ran to the end through the real console entry point
    assert ran.code == 0 and not ran.traceback, ran.stderr[-2000:]
    trials = optuna.load_study(study_name="lightning-two-tower", storage=url).get_trials()
    by_baseline = {t.user_attrs.get("gradsweep.baseline"): t for t in trials}
    diverging = by_baseline["diverging"]
    # the diverging baseline (logit scale runs away, the softmax saturates, no gradient reaches any
    # tower) is pruned for health by the hard "dead" finding, in a 3-trial sweep with no evidence
    assert diverging.state == TrialState.PRUNED
    assert diverging.user_attrs["gradsweep.prune.kind"] == "unstable"
    assert diverging.user_attrs["gradsweep.prune.reason"].startswith("no gradient reaches the model")
    # before its last epoch: pruning saved compute
    assert diverging.last_step < 32
    # every other trial completed with a finite validation loss
    others = [t for t in trials if t is not diverging]
    assert len(others) == 2 and all(t.state == TrialState.COMPLETE and t.value < 10 for t in others)
    # each trial's Lightning checkpoints reached Ray with its reports (what a retried trial resumes from)
    assert len({p.parent for p in (tmp_path / "gradsweep_runs").rglob("checkpoint_*/ckpt-*.pt")}) >= 3
