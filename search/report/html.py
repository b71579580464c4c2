"""The self-contained HTML report: plotly.js inline, each figure's JSON in its own script tag.

Each figure sits in ``<script type="application/json" class="gradsweep-figure" id=...>`` so
scripts (and the tests) can read the plotted data back without a browser.
"""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from gradsweep.search.report import plotly_figs
from gradsweep.search.report.data import ReportData
from gradsweep.search.thaw_attrs import PAUSED
from gradsweep.search.views.trials import format_knobs, format_value

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
.fig{min-height:420px;margin-bottom:1.5em}
"""
_RENDER = """
for (const el of document.querySelectorAll('script.gradsweep-figure')) {
  const fig = JSON.parse(el.textContent);
  const div = document.getElementById(el.dataset.target);
  Plotly.newPlot(div, fig.data, fig.layout, {responsive: true});
}
"""


def figures(data: ReportData) -> list[tuple[str, str, go.Figure]]:
    """``(id, section title, figure)`` for every plot of the report, in page order."""
    metric = data.summary.metric or "value"
    figs = [
        ("history", "Optimization history", plotly_figs.history_figure(data.history, metric)),
        ("parallel", "Parallel coordinates", plotly_figs.parallel_figure(data.parallel, metric)),
        ("importances", "Parameter importances", plotly_figs.importance_figure(data.importances)),
        ("lr", "Per-tower LR vs value", plotly_figs.lr_figure(data.lr, metric)),
    ]
    figs += [
        (
            f"health-{c.number}",
            f"Gradient health: trial {' then '.join(map(str, c.trials))}",
            plotly_figs.health_figure(c),
        )
        for c in data.curves
    ]
    return figs


def _script_json(fig: go.Figure) -> str:
    return fig.to_json().replace("</", "<\\/")


def render_html(data: ReportData) -> str:
    """The whole page as a string (no external resources)."""
    s = data.summary
    esc = html.escape
    counts = ", ".join(f"{state.lower()} {n}" for state, n in s.counts.items())
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>gradsweep report: {esc(s.study)}</title><style>{_STYLE}</style>",
        f"<script>{get_plotlyjs()}</script></head><body>",
        f"<h1>gradsweep report: study {esc(s.study)}</h1>",
        f"<p>objective {esc(str(s.objective))}, metric {esc(str(s.metric))} ({esc(s.direction)}); "
        f"{s.total} trials: {esc(counts)}</p>",
    ]
    for line in (s.config_line(), s.pause_line()):  # freeze-thaw: configs, pauses and thaws
        if line:
            parts.append(f"<p class='pauses'>{esc(line)}</p>")
    if s.best is not None:
        thaw = f" (thaw of paused trial {s.best.thaw_of})" if s.best.thaw_of is not None else ""
        parts.append(
            f"<p><b>best:</b> trial {s.best.number}{thaw}, value {esc(format_value(s.best.value))}, "
            f"{esc(format_knobs(s.best.params, limit=12))}</p>"
        )
    else:
        parts.append("<p><b>best:</b> none yet (no complete trial)</p>")
    groups = [g for g in data.prune_groups if g.kind != PAUSED]  # paused ones: their own table
    if groups:
        parts.append(
            "<h2>Pruned trials by reason</h2><table><tr><th>kind</th><th>count</th>"
            "<th>rule</th><th>trials</th><th>example</th></tr>"
        )
        for g in groups:
            parts.append(
                f"<tr><td>{esc(g.kind)}</td><td>{g.count}</td><td>{esc(g.rule_label)}</td>"
                f"<td>{esc(', '.join(map(str, g.trials)))}</td><td>{esc(g.example_label)}</td></tr>"
            )
        parts.append("</table>")
    if s.pauses:
        parts.append(
            f"<h2>Paused trials ({len(s.pauses)})</h2><p>paused by the freeze-thaw scheduler, checkpoint "
            "kept; a thaw continues one as a new trial</p><table><tr><th>trial</th><th>step</th>"
            "<th>thawed as</th><th>config ends</th><th>reason</th></tr>"
        )
        for p in s.pauses:
            trial = f"{p.number}" + (f" (thaw of {p.thaw_of})" if p.thaw_of is not None else "")
            ends = p.ends if p.ends_at == p.number else f"{p.ends} (trial {p.ends_at})"
            parts.append(
                f"<tr><td>{esc(trial)}</td><td>{'' if p.step is None else p.step}</td>"
                f"<td>{'' if p.thawed_as is None else p.thawed_as}</td><td>{esc(ends)}</td>"
                f"<td>{esc(p.reason)}</td></tr>"
            )
        parts.append("</table>")
    if s.failures:
        parts.append("<h2>Failed trials</h2><table><tr><th>trial</th><th>error</th></tr>")
        parts += [f"<tr><td>{f.number}</td><td>{esc(f.reason)}</td></tr>" for f in s.failures]
        parts.append("</table>")
    for fig_id, title, fig in figures(data):
        parts.append(f"<h2>{esc(title)}</h2><div class='fig' id='{fig_id}'></div>")
        parts.append(
            f"<script type='application/json' class='gradsweep-figure' id='{fig_id}-json' "
            f"data-target='{fig_id}'>{_script_json(fig)}</script>"
        )
    if not data.curves:
        parts.append("<h2>Gradient health</h2><p>no trial recorded a health history</p>")
    continued = [(t.paused, c.number) for c in data.curves for t in c.thaws]
    if continued:
        pairs = ", ".join(f"{paused} in {thaw}" for paused, thaw in continued)
        parts.append(f"<p>health curves of thawed trials go on in their thaws' curves: {esc(pairs)}</p>")
    if data.omitted_curves:
        parts.append(
            f"<p>health curves not shown for trials {esc(', '.join(map(str, data.omitted_curves)))}</p>"
        )
    parts.append(f"<script>{_RENDER}</script></body></html>")
    return "\n".join(parts)


def write_html(data: ReportData, out: Path) -> Path:
    """Write the report page to ``out`` (its directory must exist)."""
    out.write_text(render_html(data), encoding="utf-8")
    return out
