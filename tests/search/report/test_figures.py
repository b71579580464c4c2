"""The report's value axes and health figure: readable when values span decades, reasons whole."""

from __future__ import annotations

import math

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
