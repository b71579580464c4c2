"""Plotly figures of the report, one function per plot, each from plain :class:`ReportData` parts."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

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


def lr_figure(lr: LrPoints, metric: str) -> go.Figure:
    """Each tower's LR against the value, one trace per tower (log x)."""
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
    fig.update_layout(
        title="Per-tower LR vs value", xaxis_title="learning rate", yaxis_title=metric, xaxis_type="log"
    )
    return fig


def _finite_or_none(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) and v > 0 else None for v in values]


def health_figure(c: HealthCurve) -> go.Figure:
    """One trial's grad norm per tower against step (log y), the prune point marked with its reason."""
    fig = go.Figure()
    for tower, values in c.series.items():
        fig.add_trace(
            go.Scatter(x=c.steps, y=_finite_or_none(values), mode="lines+markers", name=f"{tower} grad norm")
        )
    title = f"Trial {c.number} ({c.state.lower()}): gradient health"
    if c.prune is not None:
        finite = [v for vs in c.series.values() for v in vs if math.isfinite(v) and v > 0]
        y = max(finite) if finite else 1.0
        label = f"pruned ({c.prune.kind or 'unknown'}) at step {c.prune.step}: {c.prune.reason}"
        fig.add_trace(
            go.Scatter(
                x=[c.prune.step],
                y=[y],
                mode="markers+text",
                name="prune",
                marker={"symbol": "x", "size": 14, "color": "red"},
                text=[c.prune.reason],
                textposition="bottom left",
                hovertext=[label],
            )
        )
        fig.add_vline(x=c.prune.step, line_dash="dash", line_color="red")
        title += f"<br><sup>{label}</sup>"
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="grad norm", yaxis_type="log")
    return fig
