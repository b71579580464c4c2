"""The report's value axes and health figure: readable when values span decades, reasons whole."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gradsweep.search.report.axes import value_axis, wrap
from gradsweep.search.report.plotly_figs import health_figure, lr_figure
from gradsweep.search.report.png import health_png, lr_png
from gradsweep.search.views import HealthCurve, LrPoints
from gradsweep.search.views.health_curves import PrunePoint

LONG_REASON = (
    "image grad norm 0 < 1e-07 for 5 checks (steps 7-23); temperature grad norm 1.2e-21 < 1e-07 for 5 checks "
    "(steps 7-23); text decay-to-grad ratio 4.1 > 2 for 3 checks (steps 15-23)"
)


@pytest.mark.parametrize(
    ("values", "kind", "off"),
    [
        ([0.4, 0.5, 0.45, 1e6], "log", 0),  # one diverged val_loss among good ones: log scale
        ([1.0, 2.0, 3.0], "linear", 0),  # a narrow positive range stays linear
        ([-0.5, -0.4, -0.45, -0.42, -0.47, -3e5], "linear", 1),  # negatives cannot be logged: cut to the bulk
        (
            [0.0, 0.1, 0.2, 0.15, 0.12, 50.0],
            "linear",
            1,
        ),  # a zero rules out log; the outlier is off the scale
        ([float("nan"), float("inf"), 1.0], "linear", 0),  # non-finite values are ignored
        ([], "linear", 0),
    ],
)
def test_value_axis(values: list[float], kind: str, off: int) -> None:
    axis = value_axis(values)
    # the axis kind, and how many points it leaves off the scale
    assert (axis.kind, axis.off_scale) == (kind, off)
    # a cut range still holds every point of the bulk
    if axis.range is not None:
        bulk = sorted(v for v in values if math.isfinite(v))[1:-1]
        assert all(axis.range[0] <= v <= axis.range[1] for v in bulk)


def test_wrap_keeps_every_word() -> None:
    lines = wrap(LONG_REASON, 60)
    # no line is longer than asked, and nothing is lost
    assert max(map(len, lines)) <= 60 and " ".join(lines) == LONG_REASON


def curve() -> HealthCurve:
    return HealthCurve(
        number=3,
        state="PRUNED",
        steps=[7, 15, 23],
        series={"image": [0.5, 1e-9, 0.0], "global": [0.8, 0.3, 0.2]},
        verdicts=["healthy", "warning", "unstable"],
        prune=PrunePoint(23, "unstable", LONG_REASON),
        loss=[4.1, 5.5, 5.5],
        reasons=[[], ["image grad norm 1e-09 < 1e-07 for 1 check (step 15)"], [LONG_REASON]],
    )


def test_health_figure_shows_loss_verdicts_and_the_whole_reason() -> None:
    fig = health_figure(curve()).to_plotly_json()
    by_name = {t["name"]: t for t in fig["data"]}
    # the loss is drawn in its own panel under the grad norms
    assert by_name["loss"]["yaxis"] == "y2" and list(by_name["loss"]["y"]) == [4.1, 5.5, 5.5]
    # the grad norms are on a log axis
    assert fig["layout"]["yaxis"]["type"] == "log"
    # the warning and unstable checks are marked, their reasons in the hover text
    assert list(by_name["warning"]["x"]) == [15] and "1e-09 < 1e-07" in by_name["warning"]["hovertext"][0]
    assert list(by_name["unstable"]["x"]) == [23]
    # the prune reason is in the title in full, on wrapped lines
    title = fig["layout"]["title"]["text"]
    assert title.count("<br>") >= 2 and all(word in title for word in LONG_REASON.split())


def test_lr_figure_uses_a_log_axis_when_a_diverged_trial_spans_decades() -> None:
    lr = LrPoints(towers={"image": [(1e-3, 0.42, 0), (3e-3, 0.40, 1), (10.0, 1e6, 2)]})
    fig = lr_figure(lr, "val_loss").to_plotly_json()
    # the good trials are not squashed against the axis by the diverged one
    assert fig["layout"]["yaxis"]["type"] == "log" and "log scale" in fig["layout"]["yaxis"]["title"]["text"]


def test_pngs_draw_two_panels_and_scale_the_value_axis() -> None:
    fig = health_png(curve())
    # grad norms above, loss below
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"
    # the title carries the wrapped reason, nothing cut
    assert all(word in fig.axes[0].get_title(loc="left") for word in LONG_REASON.split())
    lr = lr_png(LrPoints(towers={"image": [(1e-3, 0.42, 0), (10.0, 1e6, 2)]}), "val_loss")
    # a diverged value puts the LR plot's value axis on a log scale
    assert lr.axes[0].get_yscale() == "log"


def test_report_of_a_paused_and_thawed_config(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from gradsweep.search.report import collect, render_html, write_pngs
    from tests.search.views.study_factory import build_freeze_thaw

    data = collect(build_freeze_thaw())
    # one curve per config: the thawed trials #1 and #4 go on in #5's
    assert [c.number for c in data.curves] == [0, 2, 5] and data.omitted_curves == []
    fig = health_figure(data.curves[2]).to_plotly_json()
    by_name = {t["name"]: t for t in fig["data"]}
    # the thaws are marked where each went on, with the trials named; a complete trial has no prune
    assert list(by_name["thaw"]["x"]) == [20, 40] and "prune" not in by_name
    assert by_name["thaw"]["text"][0] == "trial 1 paused, thawed as trial 4 from its checkpoint at step 20"
    assert (
        "Trial 5 (complete, thaw of #4 paused at step 40, thaw of #1 paused at step 20)"
        in (fig["layout"]["title"]["text"])
    )
    # a trial left paused is marked as a pause, not as a prune
    paused = {t["name"]: t for t in health_figure(data.curves[1]).to_plotly_json()["data"]}
    assert "prune" not in paused and list(paused["pause"]["x"]) == [20]
    assert (
        health_figure(data.curves[1])
        .to_plotly_json()["layout"]["title"]["text"]
        .startswith("Trial 2 (paused): gradient health<br><sup>paused at step 20: predicted final 0.2")
    )
    page = render_html(data)
    # the summary counts configs, pauses and thaws; paused trials get their own table
    assert "5 configs: complete 2  pruned 1  paused 1  failed 1" in page
    assert "paused 3 trials: thawed 2, never thawed 1; thaws 2 (complete 1, paused again 1)" in page
    assert "<h2>Paused trials (3)</h2>" in page and "<td>complete (trial 5)</td>" in page
    # the prune table keeps the unstable prune only; the best is the thaw, named as one
    assert "Pruned trials by reason" in page and "FreezeThawPruner" not in page
    assert "trial 5 (thaw of paused trial 4), value 0.8" in page
    assert "health curves of thawed trials go on in their thaws' curves: 1 in 5, 4 in 5" in page
    # the PNGs draw too (one health plot per config)
    names = sorted(p.name for p in write_pngs(data, tmp_path))
    assert [n for n in names if n.startswith("health")] == [f"health_trial_{n}.png" for n in (0, 2, 5)]
    png = health_png(data.curves[2])
    assert "trial 1 paused, thawed as trial 4" in png.axes[0].get_title(loc="left")
    plt.close(png)
