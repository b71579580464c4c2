from __future__ import annotations

import json
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pytest

from tests.search.views.study_factory import NONFINITE_REASON, TEXT_REASON_1


class _Figures(HTMLParser):
    """Collects the JSON figures, the external script sources and the page text."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, dict] = {}
        self.external: list[str] = []
        self.text: list[str] = []
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.external.append(str(a["src"]))
        if tag == "script" and a.get("class") == "gradsweep-figure":
            self._current = str(a["data-target"])

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self.figures[self._current] = json.loads(data)
            self._current = None
        else:
            self.text.append(data)


@pytest.fixture(scope="module")
def report_files(demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from gradsweep.search.report import collect, write_html, write_pngs
    from gradsweep.search.views import load_study

    out_dir = tmp_path_factory.mktemp("report")
    data = collect(load_study(demo_url, None))
    write_html(data, out_dir / "report.html")
    (out_dir / "png").mkdir()
    write_pngs(data, out_dir / "png")
    return out_dir / "report.html", out_dir / "png"


def test_html_is_self_contained_with_all_plots(report_files: tuple[Path, Path]) -> None:
    page = _Figures()
    page.feed(report_files[0].read_text())
    # no external scripts: plotly.js is inline
    assert page.external == []
    # every plot of the report is there, one health figure per trial with a history
    assert set(page.figures) == {
        "history",
        "parallel",
        "importances",
        "lr",
        *(f"health-{n}" for n in (0, 1, 2, 3, 4, 6, 7)),
    }
    # the LR scatter has one trace per tower
    assert {t["name"] for t in page.figures["lr"]["data"]} == {"video_backbone", "text_encoder"}
    # importances are bars over the searched knobs
    assert page.figures["importances"]["data"][0]["type"] == "bar"


def test_health_curves_mark_prunes_with_reasons(report_files: tuple[Path, Path]) -> None:
    page = _Figures()
    page.feed(report_files[0].read_text())
    fig = page.figures["health-1"]
    names = [t["name"] for t in fig["data"]]
    # grad norm per tower against step
    assert names[:3] == ["video_backbone grad norm", "text_encoder grad norm", "global grad norm"]
    prune = next(t for t in fig["data"] if t["name"] == "prune")
    # the prune point sits at the prune step, labelled with the reason
    assert prune["x"] == [80] and prune["text"] == [TEXT_REASON_1]
    # the non-finite prune is labelled too
    assert next(t for t in page.figures["health-3"]["data"] if t["name"] == "prune")["text"] == [
        NONFINITE_REASON
    ]
    # the reason is in the title, whole (wrapped onto lines, not cut off)
    title = fig["layout"]["title"]["text"].replace("<br>", " ")
    assert TEXT_REASON_1 in title.replace("  ", " ") or all(w in title for w in TEXT_REASON_1.split())
    # the loss is drawn beside the grad norms, in its own panel
    loss = next(t for t in fig["data"] if t["name"] == "loss")
    assert loss["yaxis"] == "y2" and any(v is not None for v in loss["y"])
    # a complete trial has no prune marker
    assert "prune" not in [t["name"] for t in page.figures["health-2"]["data"]]
    # the prune-reason table lists the grouped reasons
    text = " ".join(page.text)
    assert "text_encoder grad norm" in text and NONFINITE_REASON in text


def test_pngs_open(report_files: tuple[Path, Path]) -> None:
    files = sorted(p.name for p in report_files[1].iterdir())
    # one PNG per plot
    assert files == sorted(
        [
            "history.png",
            "parallel.png",
            "importances.png",
            "lr_vs_value.png",
            *(f"health_trial_{n}.png" for n in (0, 1, 2, 3, 4, 6, 7)),
        ]
    )
    for name in files:
        image = matplotlib.image.imread(report_files[1] / name)
        # each is a real RGBA image of the figure size (health plots: two panels, taller)
        expected = (
            [(600, 800, 4), (625, 800, 4), (650, 800, 4)]
            if name.startswith("health")
            else [(450, 800, 4), (450, 1000, 4)]
        )
        assert image.shape in expected, (name, image.shape)


def test_report_command(gradsweep: Callable, demo_url: str, tmp_path: Path) -> None:
    ran = gradsweep("report", "--storage", demo_url, "--out", tmp_path / "r.html", "--png", tmp_path / "png")
    # the command writes the page and the PNG directory
    assert ran.code == 0 and (tmp_path / "r.html").stat().st_size > 100_000
    assert len(list((tmp_path / "png").glob("*.png"))) == 11


def test_report_with_no_complete_trial(gradsweep: Callable, pruned_url: str, tmp_path: Path) -> None:
    ran = gradsweep("report", "--storage", pruned_url, "--out", tmp_path / "r.html")
    page = _Figures()
    page.feed((tmp_path / "r.html").read_text())
    # a study without complete trials still gets a report
    assert ran.code == 0
    # importances say why they are missing instead of failing
    note = page.figures["importances"]["layout"]["annotations"][0]["text"]
    assert "at least 2 complete trials (have 0)" in note


def test_report_bad_paths(gradsweep: Callable, demo_url: str, tmp_path: Path) -> None:
    # a missing output directory is one line, exit 1
    ran = gradsweep("report", "--storage", demo_url, "--out", tmp_path / "no" / "r.html")
    assert ran.code == 1 and "error: output directory" in ran.err
    # a --png directory whose parent is missing is refused
    ran = gradsweep(
        "report", "--storage", demo_url, "--out", tmp_path / "r.html", "--png", tmp_path / "a" / "b"
    )
    assert ran.code == 1 and "cannot be created" in ran.err
    # a --png that is a file is refused
    (tmp_path / "f").write_text("x")
    ran = gradsweep("report", "--storage", demo_url, "--out", tmp_path / "r.html", "--png", tmp_path / "f")
    assert ran.code == 1 and "is a file" in ran.err
    # nothing was written by the refused runs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_parallel_axis_handles_conditional_and_categorical_knobs() -> None:
    from gradsweep.search.report.plotly_figs import parallel_axis

    # LRs are drawn on a log10 axis
    assert parallel_axis("towers.head.lr", [1e-3, 1e-2])["values"] == [-3.0, -2.0]
    # a knob missing in some trials (conditional) becomes a categorical axis with a None tick
    axis = parallel_axis("onecycle.pct_start", [0.3, None, 0.1])
    assert axis["ticktext"] == ["0.1", "0.3", "None"] and axis["values"] == [1, 2, 0]
    # booleans are categories, not numbers
    assert parallel_axis("amp", [True, False])["ticktext"] == ["False", "True"]


def test_report_of_a_freeze_thaw_study(gradsweep: Callable, freeze_thaw_url: str, tmp_path: Path) -> None:
    ran = gradsweep(
        "report", "--storage", freeze_thaw_url, "--out", tmp_path / "r.html", "--png", tmp_path / "png"
    )
    # pauses are not counted as prunes; one health curve per config
    assert ran.code == 0 and "(3 health curves, 1 pruned trials, 3 paused)" in ran.out
    page = _Figures()
    page.feed((tmp_path / "r.html").read_text())
    assert {k for k in page.figures if k.startswith("health")} == {"health-0", "health-2", "health-5"}
    assert len(list((tmp_path / "png").glob("health_trial_*.png"))) == 3
