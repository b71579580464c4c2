"""The health-transfer run bank: widening the presets, labels, the top quartile, one real run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from benchmarks._transfer_runs import (
    FRESH_OBJECTIVES,
    OBJECTIVES,
    SPACES_DIR,
    append,
    collect,
    run_index,
    space_for,
    widen_space,
)
from benchmarks.transfer.bank import label_run, load_bank, top_quartile_flags
from gradsweep.spaces.params import CategoricalParam, TieParam
from gradsweep.spaces.space import load_space

NAN = float("nan")


def _check(loss_nonfinite: int = 0, tower_nonfinite: int = 0) -> dict:
    """A stored check as the bank writes it (only the fields the labels read)."""
    return {
        "monitor": 0,
        "summary": {
            "nonfinite_loss_steps": loss_nonfinite,
            "towers": {"a": {"nonfinite_steps": tower_nonfinite}},
        },
        "context": {},
    }


def test_widen_space_raises_lr_highs_and_adds_no_clipping() -> None:
    base = load_space("contrastive")
    wide = widen_space(base)
    before, after = base.towers[0].lr, wide.towers[0].lr
    # a searched tower LR reaches 100x higher from the same low; tied ratios stay as they were
    assert (after.low, after.high) == (before.low, pytest.approx(before.high * 100))
    assert isinstance(wide.towers[3].lr, TieParam) and wide.towers[3].lr == base.towers[3].lr
    # a clip range becomes off / low / geometric middle / high; the baselines are gone
    assert wide.clip.max_norm == CategoricalParam(type="categorical", choices=[None, 0.1, 1.0, 10.0])
    assert wide.baselines == {} and base.baselines  # the preset itself is untouched
    # a fixed clip gains "off"; no clipping stays none; a categorical without null gains it
    assert widen_space(load_space("finetune")).clip.max_norm.choices == [None, 1.0]
    assert widen_space(load_space("moco")).clip.max_norm is None
    bench = widen_space(load_space("benchmarks/spaces/multitower_bench.yaml"))
    assert bench.clip.max_norm.choices == [None, 0.5, 5.0, 1000.0]


@pytest.mark.parametrize(
    ("value", "direction", "untrained", "checks", "error", "label"),
    [
        (0.9, "maximize", 0.1, [_check()], None, "healthy"),
        (0.05, "maximize", 0.1, [_check()], None, "diverged"),
        (0.1, "maximize", 0.1, [_check()], None, "healthy"),  # as good as untrained is not worse
        (5.0, "minimize", 4.0, [_check()], None, "diverged"),
        (3.0, "minimize", 4.0, [_check()], None, "healthy"),
        # a non-finite loss or tower gradient in any check, even with a fine final metric
        (0.9, "maximize", 0.1, [_check(), _check(loss_nonfinite=3)], None, "nonfinite"),
        (3.0, "minimize", 4.0, [_check(tower_nonfinite=1)], None, "nonfinite"),
        # the objective raised on a NaN result
        (NAN, "minimize", 4.0, [_check()], "NonFiniteValue: non-finite objective value: nan", "nonfinite"),
        # another exception with finite checks is a crash, not instability
        (NAN, "maximize", 0.1, [_check()], "RuntimeError: boom", "error"),
        # a non-finite untrained metric never makes a run diverged
        (5.0, "minimize", NAN, [], None, "healthy"),
    ],
)
def test_label_run(
    value: float, direction: str, untrained: float, checks: list, error: str | None, label: str
) -> None:
    assert label_run(value, direction, untrained, checks, error) == label


def test_top_quartile_flags_both_directions() -> None:
    values = [0.1, 0.9, NAN, 0.5, 0.8, 0.2, 0.3, 0.4]  # 8 runs: the best 2
    assert top_quartile_flags(values, "maximize") == [False, True, False, False, True, False, False, False]
    assert top_quartile_flags(values, "minimize") == [True, False, False, False, False, True, False, False]
    # ties at the line are all in; non-finite values never are, and count toward the quarter
    assert top_quartile_flags([1.0, 1.0, 0.0, 0.0], "maximize") == [True, True, False, False]
    assert top_quartile_flags([NAN, NAN, NAN, NAN, 2.0], "minimize") == [False, False, False, False, True]
    assert top_quartile_flags([], "maximize") == []


def test_one_real_tiny_run_gives_a_bank_line_with_checks(tmp_path: Path) -> None:
    space = space_for("digits_cnn")
    row = run_index("digits_cnn", space, 0, scale="tiny", seed=0, untrained=0.1)
    out = tmp_path / "bank.jsonl"
    append(out, row)
    line = json.loads(out.read_text())
    # tiny: 10 epochs of 5 steps, checked every 25 steps (the default), with the config's clipping
    assert line["kind"] == "run" and len(line["checks"]) == 2 and math.isfinite(line["value"])
    assert [c["summary"]["step"] for c in line["checks"]] == [24, 49] and line["total_steps"] == 50
    assert line["checks"][0]["context"]["global_clip"] == line["params"]["clip.max_norm"]
    assert line["label"] in ("healthy", "diverged") and line["error"] is None
    (record,) = load_bank(out)
    assert record.checks[1].summary.towers["conv"].steps_with_grad == 25 and record.top_quartile
    assert set(record.tower_lrs) == {"conv", "head"} and record.checks[0].monitor == 0
    # resumable: a run already in the file (objective, scale, seed, index) is not trained again
    small = tmp_path / "small.jsonl"
    append(small, {**row, "scale": "small"})
    collect(small, ["digits_cnn"], 1, 0)
    assert len(small.read_text().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "towers", "steps"),
    [("seq2seq", {"embed", "encoder", "decoder"}, 60), ("tabular", {"body", "head"}, 150)],
)
def test_fresh_objectives_one_real_tiny_run(name: str, towers: set[str], steps: int) -> None:
    assert name in FRESH_OBJECTIVES and name in OBJECTIVES
    assert "health" not in yaml.safe_load((SPACES_DIR / f"transfer_{name}.yaml").read_text())
    space = space_for(name)
    row = run_index(name, space, 0, scale="tiny", seed=0, untrained=NAN)
    # tiny: a few steps per epoch over the space's epochs, checked every 25 steps (the default)
    assert row["total_steps"] == steps and len(row["checks"]) == steps // 25
    assert [c["summary"]["step"] for c in row["checks"]] == [25 * (i + 1) - 1 for i in range(steps // 25)]
    assert set(row["tower_lrs"]) == towers and set(row["checks"][0]["summary"]["towers"]) == towers
    assert row["error"] is None or row["error"].startswith("NonFiniteValue")
    # the same config and seed give the same result (data and init come from config.seed)
    again = run_index(name, space, 0, scale="tiny", seed=0, untrained=NAN)
    assert again["value"] == row["value"] or (math.isnan(again["value"]) and math.isnan(row["value"]))
