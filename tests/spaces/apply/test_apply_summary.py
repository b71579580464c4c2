"""optimizer_summary: rows per group, text and rich renderings, no printing."""

from __future__ import annotations

import io
import json

from rich.console import Console
from rich.table import Table

from gradsweep.spaces.apply import StagedScheduler, build_optimizer, optimizer_summary


def test_rows_per_group(two_tower, make_two_tower_config, capsys) -> None:
    cfg = make_two_tower_config()
    summary = optimizer_summary(build_optimizer(two_tower, cfg), cfg)
    rows = {r.group: r for r in summary.rows}
    # one row per optimizer group, in group order
    assert list(rows) == [
        "video_backbone/decay",
        "video_backbone/no_decay",
        "text_encoder/decay",
        "text_encoder/no_decay",
        "temperature",
    ]
    # counts are tensors and elements: conv (4*3*3) + linear (8*24) weights decay in the video tower
    assert (rows["video_backbone/decay"].n_params, rows["video_backbone/decay"].n_elements) == (2, 36 + 192)
    # the temperature scalar is one element without decay
    assert (rows["temperature"].n_elements, rows["temperature"].weight_decay) == (1, 0.0)
    # lr, base_lr and weight decay are the group's
    assert (rows["text_encoder/decay"].lr, rows["text_encoder/decay"].weight_decay) == (5e-4, 0.01)
    # building a summary prints nothing
    assert capsys.readouterr().out == ""


def test_text_and_rich_renderings(two_tower, make_two_tower_config) -> None:
    cfg = make_two_tower_config()
    summary = optimizer_summary(build_optimizer(two_tower, cfg), cfg)
    text = summary.as_text()
    # the text form has a header and one line per group like seed 000's block
    assert text.splitlines()[0] == "AdamW, 5 parameter groups"
    assert (
        "  temperature: 1 params (1 elements), lr=1.00e-04, base_lr=1.00e-04, wd=0.00e+00"
        in text.splitlines()
    )
    # __rich__ returns a Table with one row per group
    table = summary.__rich__()
    assert isinstance(table, Table) and table.row_count == 5
    console = Console(record=True, width=140, file=io.StringIO())
    console.print(summary)
    # rich can render the summary object directly
    assert "text_encoder/no_decay" in console.export_text()
    # to_dict is JSON-able
    assert json.loads(json.dumps(summary.to_dict()))["rows"][0]["group"] == "video_backbone/decay"


def test_frozen_column_follows_stage(finetune_model, make_finetune_config) -> None:
    cfg = make_finetune_config()
    opt = build_optimizer(finetune_model, cfg)
    sched = StagedScheduler(opt, cfg, steps_per_epoch=1)
    frozen = {r.group: r.frozen for r in optimizer_summary(opt, cfg).rows}
    # in the head-only stage the backbone groups show as frozen, the head's do not
    assert frozen == {
        "backbone/decay": True,
        "backbone/no_decay": True,
        "head/decay": False,
        "head/no_decay": False,
    }
    for _ in range(10):
        sched.step()
    # after the unfreeze nothing is frozen and the backbone LR is non-zero
    rows = optimizer_summary(opt, cfg).rows
    assert not any(r.frozen for r in rows) and rows[0].lr > 0.0
