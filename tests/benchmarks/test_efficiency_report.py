"""False-prune counting (with real re-runs of the objective), record round trips, table and plot."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks._common import Report, TrialRecord, record_from_dict
from benchmarks._efficiency_report import false_prunes, method_stats, plot_curves, table
from benchmarks._optuna_runs import Rerunner
from gradsweep.spaces.space import load_space

SPACE = Path(__file__).resolve().parents[2] / "benchmarks" / "spaces" / "multitower_bench.yaml"
GOOD = {
    "towers.image_tower.lr": 1e-3, "towers.image_tower.weight_decay": 1e-3, "towers.caption_tower.lr_ratio": 1.0,
    "schedule.warmup_fraction": 0.1, "clip.max_norm": 5.0, "extras.loss_variant": "stable",
    "extras.temperature_init": 0.1,
}  # fmt: skip


def finished(value: float) -> TrialRecord:
    return TrialRecord(params={}, reports=[Report(32, value), Report(64, value)], final_value=value)


def test_false_prune_is_a_pruned_config_that_reruns_into_the_top_quartile() -> None:
    torch.set_num_threads(1)
    rerunner = Rerunner(load_space(str(SPACE)), "tiny", 0)
    pruned = TrialRecord(params=GOOD, reports=[Report(8, 0.0)], pruned=True, kind="unstable")
    fp = false_prunes([[finished(0.01), finished(0.01), finished(0.01), pruned]], rerunner, "maximize")
    # the good config trains well past 0.01, so pruning it was a false prune, of the unstable kind
    assert fp is not None and (fp.false, fp.checked, fp.false_unstable) == (1, 1, 1)
    # the re-run is cached by parameters: a second count runs nothing new
    assert len(rerunner.cache) == 1
    fp_high = false_prunes([[finished(0.99), finished(0.99), finished(0.99), pruned]], rerunner, "maximize")
    # against better finished trials the same prune is not false
    assert fp_high is not None and fp_high.false == 0 and len(rerunner.cache) == 1


def test_record_round_trip_through_json_dict() -> None:
    rec = TrialRecord(params={"a": 1}, reports=[Report(6, 0.5, {"step": 5, "verdict": "unstable", "metrics": {}})],
                      pruned=True, kind="unstable")  # fmt: skip
    # asdict -> record_from_dict gives the same record back
    assert record_from_dict(asdict(rec)) == rec


def test_stats_table_and_plot(tmp_path: Path) -> None:
    runs = [[finished(0.3), finished(0.5)], [finished(0.55), finished(0.6)]]
    stats = method_stats("tpe_nop", runs, [1.0, 1.0], 128, 0.5, "maximize", 32, None)
    # best at budget is averaged over seeds; seed 0 reaches 0.5 after 128 steps, seed 1 after 64
    assert math.isclose(stats.best_mean, 0.55) and stats.steps_to_target_per_seed == [128.0, 64.0]
    text = table({"tpe_nop": stats}, {"tpe_nop": "reference"}, 128, 32)
    # one header, one separator, one row
    assert len(text.splitlines()) == 3 and text.splitlines()[2].startswith("| reference | 0.5500")
    plot_curves({"tpe_nop": runs}, {"tpe_nop": "reference"}, 128, "maximize", tmp_path / "p.png")
    # a PNG was written
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
