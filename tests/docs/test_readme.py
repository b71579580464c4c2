"""The README's commands, run in order in a scratch directory, so the tour cannot rot.

Every line of a ```bash block is either run here (the `gradsweep ...` tour at `tiny` scale) or
listed in NOT_RUN with the reason it cannot run on a CI machine.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Lines that need what CI does not have, with why; everything else in a bash block runs.
NOT_RUN = {
    "make sweep": "runs the same launch at small scale; the tour's first launch line is its tiny twin (checked below)",
    "make test": "is this test suite",
    "pip install": "cluster section: installs Ray's launcher on a workstation",
    "ray ": "cluster section: needs an AWS account (the cluster config is validated by tests/search/engine)",
    "optuna-dashboard": "cluster section: the same server `gradsweep dashboard` starts (run below)",
    "gradsweep launch examples/lightning/": "run with these arguments, and its outcome checked, by "
    "tests/examples/test_lightning_example.py (which reads this line)",
    "gradsweep launch contrastive --scale tiny -n 1 --baseline after --seed 0 --workers-per-trial": "run with "
    "these arguments, and its value checked against one process, by tests/search/engine/test_engine_ddp.py "
    "(which reads this line)",
    "gradsweep launch moco --scale full": "needs a GPU cluster (four GPUs per trial)",
}


def bash_lines(text: str) -> list[str]:
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for raw in joined.splitlines():
            line = raw.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def example_blocks(text: str, language: str = "python") -> list[tuple[str, list[str]]]:
    """The README's ```LANGUAGE blocks that name an example file on their first line, with their lines."""
    found = []
    for block in re.findall(rf"```{language}\n(.*?)```", text, flags=re.S):
        first, *rest = block.splitlines()
        if first.startswith("# examples/"):
            found.append((first[2:].strip(), rest))
    return found


def test_readme_code_is_the_examples_code() -> None:
    blocks = example_blocks((REPO / "README.md").read_text())
    # the three ways to bring a loop each show their example: trainer.step, own step, Lightning
    assert [path for path, _ in blocks] == [
        "examples/byo/my_objective.py",
        "examples/own_step/my_loop.py",
        "examples/lightning/two_tower.py",
    ]
    spaces = example_blocks((REPO / "README.md").read_text(), "yaml")
    # "Bring your own objective" shows an example's space (objective path, baselines, check_every)
    assert [path for path, _ in spaces] == ["examples/own_step/space.yaml"]
    for path, lines in blocks + spaces:
        source = [line.strip() for line in (REPO / path).read_text().splitlines()]
        at = 0
        for line in (line.strip() for line in lines):
            if not line or line == "...":
                continue
            # every shown line is in the example, in the order shown (so the README cannot drift)
            assert line in source[at:], f"{path}: README line not in the example (after line {at}): {line}"
            at = source.index(line, at) + 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_dashboard(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    port = free_port()
    args = [a if a != "8080" else str(port) for a in args]
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline, status = time.time() + 60, None
        while time.time() < deadline and status is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    status = resp.status
            except OSError:
                time.sleep(0.5)
        # the dashboard answers on 127.0.0.1 at the printed port
        assert status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def check_first_launch(cwd: Path, n_trials: int) -> None:
    """What the tour says of its first sweep (the seed's before/after baselines), read from the store."""
    import optuna
    from optuna.trial import TrialState

    url = f"sqlite:///{cwd / 'gradsweep.db'}"
    trials = optuna.load_study(study_name="contrastive", storage=url).get_trials()
    by_baseline = {t.user_attrs.get("gradsweep.baseline"): t for t in trials}
    # the requested number of trials ran, each in a final state
    assert len(trials) == n_trials and all(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for t in trials
    )
    before, after = by_baseline["before"], by_baseline["after"]
    # the seed's "before" config (starved text tower, decay dominating) is flagged by the soft
    # decay_dominance rule, its reason naming the tower; a 4-trial sweep has no evidence that lets a
    # soft rule prune, so it completes (the README says so)
    assert before.state == TrialState.COMPLETE and before.user_attrs["gradsweep.health.flags"].keys() == {
        "decay_dominance"
    }
    reasons = [r for e in before.user_attrs["gradsweep.health.history"] for r in e.get("reasons", [])]
    assert any(r.startswith("text_encoder decay-to-grad ratio") for r in reasons)
    # the "after" config completes with a recall in [0, 1]
    assert after.state == TrialState.COMPLETE and 0.0 <= after.value <= 1.0
    out = subprocess.run(
        [str(BIN / "optuna"), "trials", "--study-name", "contrastive", "--storage", url, "-f", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Optuna's own CLI reads the study
    assert out.returncode == 0 and out.stdout.count('"number"') == n_trials


@pytest.mark.slow
def test_readme_tour_runs(tmp_path: Path) -> None:
    lines = bash_lines((REPO / "README.md").read_text())
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", COLUMNS="120")
    env.pop("GRADSWEEP_STORAGE", None)
    ran = []
    for line in lines:
        if any(line.startswith(prefix) for prefix in NOT_RUN):
            continue
        # only gradsweep commands remain, and each of them runs
        assert line.startswith("gradsweep "), f"README line neither run nor explained: {line}"
        args = shlex.split(line)
        if args[1] == "dashboard":
            run_dashboard(args, tmp_path, env)
        else:
            result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
            # each README command succeeds as written
            assert result.returncode == 0, f"{line}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            if args[1] == "launch" and "launch" not in ran:
                check_first_launch(tmp_path, n_trials=int(args[args.index("-n") + 1]))
        ran.append(args[1])
    # the whole tour ran: launch, status, trials, best, export, try, report, dashboard, resume, validate
    assert {
        "launch",
        "status",
        "trials",
        "best",
        "export",
        "try",
        "report",
        "dashboard",
        "resume",
        "validate",
    } <= set(ran)
    # the exported file and the report exist where the README says
    assert (tmp_path / "best.yaml").exists() and (tmp_path / "report.html").exists()


def test_make_sweep_is_the_tours_launch_at_small_scale() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^sweep:.*\n\t(.+)$", makefile, flags=re.M)
    readme_launch = next(
        line
        for line in bash_lines((REPO / "README.md").read_text())
        if line.startswith("gradsweep launch contrastive")
    )
    # make sweep launches the contrastive preset with the seed's before/after baselines, like the tour
    assert recipe and "gradsweep launch contrastive --scale small" in recipe.group(1)
    assert (
        "--baseline before --baseline after" in recipe.group(1)
        and "--baseline before --baseline after" in readme_launch
    )
