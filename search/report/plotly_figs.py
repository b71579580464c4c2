"""Plotly figures of the report, one function per plot, each from plain :class:`ReportData` parts."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gradsweep.search.report.axes import value_axis, wrap
from gradsweep.search.thaw_attrs import PAUSED
from gradsweep.search.views import HealthCurve, History, Importances, LrPoints, ParallelData


def _note(title: str, text: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False})
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    return fig


def history_figure(h: History, metric: str) -> go.Figure:
    """Objective value per complete trial and the best value so far."""
    if not h.numbers:
        return _note("Optimization history", "no complete trial yet")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=h.numbers, y=h.values, mode="markers", name=metric))
    fig.add_trace(go.Scatter(x=h.numbers, y=h.best_so_far, mode="lines", name="best so far", line_shape="hv"))
    fig.update_layout(title="Optimization history", xaxis_title="trial", yaxis_title=metric)
    return fig


def parallel_axis(name: str, column: list[Any]) -> dict[str, Any]:
    """One parallel-coordinates dimension; categoricals map to indices, LRs to log10."""
    numeric = [v for v in column if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numeric) == len(column):
        positive = all(v > 0 for v in numeric)
        if positive and name.endswith(("lr", "weight_decay")):
            return {"label": f"log10({name})", "values": [math.log10(v) for v in numeric]}
        return {"label": name, "values": [float(v) for v in numeric]}
    labels = sorted({str(v) for v in column})
    index = {label: i for i, label in enumerate(labels)}
    return {
        "label": name,
        "values": [index[str(v)] for v in column],
        "tickvals": list(range(len(labels))),
        "ticktext": labels,
    }


def parallel_figure(p: ParallelData, metric: str) -> go.Figure:
    """Parallel coordinates over the searched knobs of the complete trials, coloured by value."""
    if not p.values:
        return _note("Parallel coordinates", "no complete trial yet")
    dims = [parallel_axis(name, col) for name, col in p.params.items()]
    dims.append({"label": metric, "values": p.values})
    fig = go.Figure(
        go.Parcoords(line={"color": p.values, "colorscale": "Viridis", "showscale": True}, dimensions=dims)
    )
    fig.update_layout(title="Parallel coordinates (complete trials)")
    return fig


def importance_figure(imp: Importances) -> go.Figure:
    """Horizontal bars of parameter importances, or a note saying why there are none."""
    if imp.values is None:
        return _note("Parameter importances", imp.note or "unavailable")
    names = list(imp.values)[::-1]
    fig = go.Figure(go.Bar(x=[imp.values[n] for n in names], y=names, orientation="h", name="importance"))
    fig.update_layout(title="Parameter importances (fANOVA)", xaxis_title="importance")
    return fig


def _apply_value_axis(fig: go.Figure, values: list[float], *, row: int | None = None) -> str:
    """Scale the y axis per :func:`value_axis`; returns a note for the title ("" when none)."""
    axis = value_axis(values)
    where = {"row": row, "col": 1} if row is not None else {}
    if axis.kind == "log":
        fig.update_yaxes(type="log", **where)
        return " (log scale)"
    if axis.range is not None:
        fig.update_yaxes(range=list(axis.range), **where)
        return f" ({axis.off_scale} off the scale)"
    return ""


def lr_figure(lr: LrPoints, metric: str) -> go.Figure:
    """Each tower's LR against the value, one trace per tower (log x; log or cut y when values span decades)."""
    if not lr.towers:
        return _note("Per-tower LR vs value", "no complete trial with tower LRs yet")
    fig = go.Figure()
    for tower, points in lr.towers.items():
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                mode="markers",
                name=tower,
                text=[f"trial {p[2]}" for p in points],
            )
        )
    note = _apply_value_axis(fig, [p[1] for points in lr.towers.values() for p in points])
    fig.update_layout(
        title="Per-tower LR vs value",
        xaxis_title="learning rate",
        yaxis_title=metric + note,
        xaxis_type="log",
    )
    return fig


def _finite_or_none(values: list[float], *, positive: bool = True) -> list[float | None]:
    return [v if math.isfinite(v) and (v > 0 or not positive) else None for v in values]


_VERDICT_COLORS = {"warning": "orange", "unstable": "red"}


def health_figure(c: HealthCurve) -> go.Figure:
    """One trial's grad norm per tower (log y) above its training loss, against step.

    Checks with a warning or unstable verdict are marked on the loss curve, their reasons in the
    hover text; the prune point is a dashed line, its reason wrapped into the title (a pause is
    named ``pause``, not ``prune``). A paused-then-thawed config is one curve: each thaw's start
    is a dotted line with a ``thaw`` marker.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.06)
    for tower, values in c.series.items():
        fig.add_trace(
            go.Scatter(x=c.steps, y=_finite_or_none(values), mode="lines+markers", name=f"{tower} grad norm"),
            row=1,
            col=1,
        )
    fig.update_yaxes(type="log", title_text="grad norm", row=1, col=1)
    loss = c.loss or [math.nan] * len(c.steps)
    positive_loss = all(v > 0 for v in loss if math.isfinite(v))
    fig.add_trace(
        go.Scatter(x=c.steps, y=_finite_or_none(loss, positive=False), mode="lines+markers", name="loss"),
        row=2,
        col=1,
    )
    loss_note = _apply_value_axis(
        fig, [v for v in loss if math.isfinite(v) and (v > 0 or not positive_loss)], row=2
    )
    fig.update_yaxes(title_text="loss" + loss_note, row=2, col=1)
    for verdict, color in _VERDICT_COLORS.items():
        marks = [i for i, v in enumerate(c.verdicts) if v == verdict]
        if not marks:
            continue
        reasons = c.reasons or [[] for _ in c.steps]
        fig.add_trace(
            go.Scatter(
                x=[c.steps[i] for i in marks],
                y=[loss[i] if math.isfinite(loss[i]) else None for i in marks],
                mode="markers",
                name=verdict,
                marker={"symbol": "diamond", "size": 11, "color": color},
                hovertext=["<br>".join(wrap("; ".join(reasons[i]) or verdict, 90)) for i in marks],
                hoverinfo="text+x",
            ),
            row=2,
            col=1,
        )
    title = f"{c.title}: gradient health"
    lines = 1
    norms = [v for vs in c.series.values() for v in vs if math.isfinite(v) and v > 0]
    for thaw in c.thaws:  # a paused-then-thawed config: where each thaw went on
        fig.add_vline(x=thaw.step, line_dash="dot", line_color="royalblue")
    if c.thaws:
        fig.add_trace(
            go.Scatter(
                x=[t.step for t in c.thaws],
                y=[max(norms) if norms else 1.0] * len(c.thaws),
                mode="markers",
                name="thaw",
                marker={"symbol": "triangle-right", "size": 13, "color": "royalblue"},
                text=[t.label for t in c.thaws],
                hovertext=[t.label for t in c.thaws],
                hoverinfo="text",
            ),
            row=1,
            col=1,
        )
    if c.prune is not None:
        label = c.prune.label
        wrapped = wrap(label, 110)
        lines += len(wrapped)
        fig.add_vline(x=c.prune.step, line_dash="dash", line_color="red")
        fig.add_trace(
            go.Scatter(
                x=[c.prune.step],
                y=[max(norms) if norms else 1.0],
                mode="markers",
                name="pause" if c.prune.kind == PAUSED else "prune",
                marker={"symbol": "x", "size": 14, "color": "red"},
                text=[c.prune.reason],
                hovertext=["<br>".join(wrapped)],
                hoverinfo="text",
            ),
            row=1,
            col=1,
        )
        title += "<br><sup>" + "<br>".join(wrapped) + "</sup>"
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(title=title, height=560 + 18 * lines, margin={"t": 60 + 22 * lines})
    return fig
