from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest


def test_status_table(gradsweep: Callable, demo_url: str) -> None:
    ran = gradsweep("status", "--storage", demo_url)
    # success with the study header and counts by state
    assert ran.code == 0 and "study demo" in ran.out and "pruned 4" in ran.out and "fail 1" in ran.out
    # prune groups, failures, best and running trials are all shown
    for text in (
        "text_encoder grad norm",
        "non-finite loss",
        "RuntimeError: shapes (4, 8) and (16,) mismatch",
        "best: trial #2 value 0.73",
        "warning",
    ):
        assert text in ran.out, text


def test_status_json(gradsweep: Callable, demo_url: str) -> None:
    ran = gradsweep("status", "--storage", demo_url, "--study", "demo", "--json")
    data = json.loads(ran.out)
    # JSON carries counts, grouped prunes, failures, best and running trials
    assert data["counts"]["PRUNED"] == 4 and data["best"]["number"] == 2
    assert {(g["kind"], g["key"], g["count"]) for g in data["prune_groups"]} >= {
        ("unstable", "text_encoder grad norm", 2)
    }
    assert data["failures"] == [{"number": 8, "reason": "RuntimeError: shapes (4, 8) and (16,) mismatch"}]
    assert data["running"][0]["verdict"] == "warning"


def test_trials_json_sorted_by_value(gradsweep: Callable, demo_url: str) -> None:
    ran = gradsweep("trials", "--storage", demo_url, "--sort", "value", "--json")
    rows = json.loads(ran.out)
    # one row per trial, best value first
    assert len(rows) == 10 and [r["number"] for r in rows[:4]] == [2, 7, 6, 0]
    # each row has the documented fields
    assert set(rows[0]) >= {"number", "state", "value", "reason", "params", "duration_s"}


def test_trials_csv(gradsweep: Callable, demo_url: str) -> None:
    ran = gradsweep("trials", "--storage", demo_url, "--csv")
    rows = list(csv.DictReader(io.StringIO(ran.out)))
    # CSV has a row per trial with params as columns
    assert len(rows) == 10 and "param:towers.text_encoder.lr" in rows[0]
    # a pruned trial's reason survives CSV quoting
    assert rows[1]["reason"].startswith("text_encoder grad norm 3.1e-07")


def test_trials_table(gradsweep: Callable, demo_url: str) -> None:
    ran = gradsweep("trials", "--storage", demo_url)
    # the table lists states and the key knobs
    assert ran.code == 0 and "COMPLETE" in ran.out and "FAIL" in ran.out and "loss_variant" in ran.out


def test_best_json_top(gradsweep: Callable, demo_url: str) -> None:
    ran = gradsweep("best", "--storage", demo_url, "--top", "2", "--json")
    best = json.loads(ran.out)
    # the K best complete trials with number, value and params
    assert [(b["number"], b["value"]) for b in best] == [(2, 0.73), (7, 0.66)]
    assert "towers.video_backbone.lr" in best[0]["params"]


def test_best_table(gradsweep: Callable, demo_url: str) -> None:
    ran = gradsweep("best", "--storage", demo_url)
    # the best trial and its knobs are printed
    assert ran.code == 0 and "trial 2: value 0.73" in ran.out and "towers.text_encoder.lr =" in ran.out


def test_best_with_no_complete_trial(gradsweep: Callable, pruned_url: str) -> None:
    ran = gradsweep("best", "--storage", pruned_url)
    # no complete trial: exit 1 with one plain error line
    assert ran.code == 1 and ran.err.count("\n") == 1
    assert "error: study 'nothing-done' has no complete trial yet" in ran.err


def test_objectives_lists_builtins(gradsweep: Callable) -> None:
    from gradsweep.objectives.registry import BUILTINS

    ran = gradsweep("objectives", "--json")
    names = [o["name"] for o in json.loads(ran.out)]
    # every built-in objective is listed with its metrics and preset
    assert names == list(BUILTINS)
    assert all(o["metrics"] and o["preset"] for o in json.loads(ran.out))


@pytest.mark.parametrize("command", ["status", "trials", "best", "export", "report"])
def test_missing_store(gradsweep: Callable, tmp_path: Path, command: str) -> None:
    extra = ["--out", str(tmp_path / "x.yaml")] if command in ("export", "report") else []
    if command == "report":
        extra = ["--out", str(tmp_path / "x.html")]
    ran = gradsweep(command, "--storage", f"sqlite:///{tmp_path / 'nope.db'}", *extra)
    # a missing store is one error line, exit 1, and nothing is created
    assert ran.code == 1 and ran.err.startswith("error: no study store at") and ran.err.count("\n") == 1
    assert not (tmp_path / "nope.db").exists() and not list(tmp_path.glob("x.*"))


@pytest.mark.parametrize("command", ["status", "trials", "best", "export", "report"])
def test_unknown_study(gradsweep: Callable, demo_url: str, tmp_path: Path, command: str) -> None:
    extra = (
        ["--out", str(tmp_path / ("x.html" if command == "report" else "x.yaml"))]
        if command in ("export", "report")
        else []
    )
    ran = gradsweep(command, "--storage", demo_url, "--study", "nope", *extra)
    # an unknown study names the studies that exist
    assert ran.code == 1 and "error: no study 'nope'" in ran.err and "studies there: demo" in ran.err


@pytest.mark.parametrize("command", ["status", "trials", "best"])
def test_several_studies_need_study(gradsweep: Callable, two_studies_url: str, command: str) -> None:
    ran = gradsweep(command, "--storage", two_studies_url)
    # several studies without --study: one line listing them
    assert ran.code == 1 and "pick one with --study: alpha, beta" in ran.err and ran.err.count("\n") == 1
    # naming one works
    assert gradsweep(command, "--storage", two_studies_url, "--study", "beta").code == 0


def test_usage_errors_exit_2(gradsweep: Callable, demo_url: str) -> None:
    # a bad --sort value is a usage error
    assert gradsweep("trials", "--storage", demo_url, "--sort", "speed").code == 2
    # --json and --csv together is a usage error
    assert gradsweep("trials", "--storage", demo_url, "--json", "--csv").code == 2
    # --top 0 is a usage error
    assert gradsweep("best", "--storage", demo_url, "--top", "0").code == 2


@pytest.mark.parametrize(
    "command", ["status", "trials", "best", "export", "try", "report", "dashboard", "objectives"]
)
def test_help_has_an_example(gradsweep: Callable, command: str) -> None:
    ran = gradsweep(command, "--help")
    # every command documents itself with an example
    assert ran.code == 0 and "Example:" in ran.out and f"gradsweep {command}" in ran.out


def test_status_names_each_rule_once_with_a_real_example_and_its_trial(
    gradsweep: Callable, demo_url: str
) -> None:
    ran = gradsweep("status", "--storage", demo_url)
    # no reason is shown with its numbers masked
    assert "value # at step #" not in ran.out and " # " not in ran.out, ran.out
    # one row per rule, named by the rule, with the count and a real example from a named trial
    median = [line for line in ran.out.splitlines() if "MedianPruner" in line]
    assert len(median) == 1 and "#5: value 0.1 at step 40 worse than median 0.45" in median[0], ran.out
    vanishing = [line for line in ran.out.splitlines() if "vanishing" in line]
    assert (
        len(vanishing) == 1 and " 2 " in vanishing[0] and "#1: text_encoder grad norm 3.1e-07" in vanishing[0]
    )
    # --json carries the rule and the example's trial next to the existing keys
    data = json.loads(gradsweep("status", "--storage", demo_url, "--json").out)
    assert {(g["rule"], g["key"], g["count"], g["example_trial"]) for g in data["prune_groups"]} == {
        ("vanishing", "text_encoder grad norm", 2, 1),
        ("nonfinite", "non-finite loss", 1, 3),
        ("MedianPruner", "MedianPruner", 1, 5),
    }


def test_status_of_a_freeze_thaw_study(gradsweep: Callable, freeze_thaw_url: str) -> None:
    ran = gradsweep("status", "--storage", freeze_thaw_url)
    lines = [line.strip() for line in ran.out.splitlines()]
    # Optuna's states as stored, then the configs and the pauses and thaws
    assert ran.code == 0 and "complete 2  pruned 4  fail 1  running 0  waiting 0" in lines
    assert "5 configs: complete 2  pruned 1  paused 1  failed 1" in lines
    assert "paused 3 trials: thawed 2, never thawed 1; thaws 2 (complete 1, paused again 1)" in lines
    # the pruned table holds the real prune only; the paused ones have their own, with their thaws
    assert "pruned (1)" in ran.out and "paused (3)" in ran.out and "complete (#5)" in ran.out
    assert "#4 (thaw of #1)" in ran.out and "best: trial #5 (thaw of #4) value 0.8" in ran.out
    data = json.loads(gradsweep("status", "--storage", freeze_thaw_url, "--json").out)
    # JSON has the same
    assert data["configs"] == {"complete": 2, "pruned": 1, "paused": 1, "failed": 1}
    assert [p["thawed_as"] for p in data["pauses"]] == [4, None, 5] and data["best"]["thaw_of"] == 4


def test_trials_of_a_freeze_thaw_study(gradsweep: Callable, freeze_thaw_url: str) -> None:
    table = gradsweep("trials", "--storage", freeze_thaw_url).out
    # paused trials show as PAUSED with their thaw; thaws name the trial they continue
    assert table.count("PAUSED") == 3 and "thawed as #4; paused: predicted final 0.3" in table
    assert "thaw of #1, thawed as #5" in table and "thaw of #4" in table and "not thawed" in table
    rows = json.loads(gradsweep("trials", "--storage", freeze_thaw_url, "--json", "--sort", "value").out)
    # JSON: the stored state, the kind and both links; the thaw that completed sorts first
    assert [(r["number"], r["state"], r["kind"], r["thaw_of"], r["thawed_as"]) for r in rows[:3]] == [
        (5, "COMPLETE", None, 4, None),
        (0, "COMPLETE", None, None, None),
        (1, "PRUNED", "paused", None, 4),
    ]
    csv_rows = list(
        csv.DictReader(io.StringIO(gradsweep("trials", "--storage", freeze_thaw_url, "--csv").out))
    )
    # CSV: empty where there is no link
    assert [(r["thaw_of"], r["thawed_as"]) for r in csv_rows[:2]] == [("", ""), ("", "4")]
    best = json.loads(gradsweep("best", "--storage", freeze_thaw_url, "--json").out)
    # the best is the thaw, named as one
    assert (best[0]["number"], best[0]["thaw_of"]) == (5, 4)
