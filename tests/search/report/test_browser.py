"""The HTML report in a real headless browser (Debian's Chromium): every plot renders, no script error."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import optuna
import pytest

from gradsweep.search.report import collect, write_html
from tests.search.views.study_factory import build_study

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Catches what the page's scripts throw, and marks the body once every figure was drawn.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
window.addEventListener('load', () => {
  document.body.setAttribute('data-errors', JSON.stringify(window.__errors));
  document.body.setAttribute('data-plots', document.querySelectorAll('.js-plotly-plot').length);
});
</script>"""


@pytest.mark.slow
def test_the_report_renders_every_plot_without_script_errors(tmp_path: Path) -> None:
    # .ci/run installs Debian's chromium when it is missing; a machine without it fails here, loudly
    assert CHROMIUM, "chromium is not installed: apt-get install -y chromium (.ci/run does it)"
    study = optuna.load_study(study_name="demo", storage=build_study(tmp_path / "demo.db"))
    page = write_html(collect(study), tmp_path / "report.html")
    html = page.read_text()
    figure_ids = re.findall(r"<div class='fig' id='([^']+)'>", html)
    page.write_text(html.replace("<head>", "<head>" + PROBE, 1))
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    dom = result.stdout
    # the browser loaded the page and ran its scripts to the end
    assert result.returncode == 0 and "data-plots=" in dom, result.stderr[-2000:]
    # no script error on the page
    assert re.search(r'data-errors="\[\]"', dom), re.search(r'data-errors="[^"]*"', dom)
    # every figure div became a plotly plot with its SVG drawn
    assert int(re.search(r'data-plots="(\d+)"', dom).group(1)) == len(figure_ids) >= 5
    for fig_id in figure_ids:
        div = re.search(
            rf"<div class=\"fig js-plotly-plot\" id=\"{re.escape(fig_id)}\".*?</svg>", dom, flags=re.S
        )
        assert div and "main-svg" in div.group(0), fig_id
