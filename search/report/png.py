"""The report's plots as PNG files with matplotlib (Agg backend: no display, no browser)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from gradsweep.search.report.axes import value_axis, wrap
from gradsweep.search.report.data import ReportData
from gradsweep.search.report.plotly_figs import parallel_axis
from gradsweep.search.views import HealthCurve, LrPoints

_DPI = 100


def _note(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def history_png(data: ReportData, metric: str) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    h = data.history
    if not h.numbers:
        _note(ax, "no complete trial yet")
    else:
        ax.scatter(h.numbers, h.values, label=metric)
        ax.step(h.numbers, h.best_so_far, where="post", color="tab:orange", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(metric)
        ax.legend()
    ax.set_title("Optimization history")
    return fig


def parallel_png(data: ReportData, metric: str) -> Figure:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    p = data.parallel
    if not p.values:
        _note(ax, "no complete trial yet")
        ax.set_title("Parallel coordinates")
        return fig
    dims = [parallel_axis(name, col) for name, col in p.params.items()] + [
        {"label": metric, "values": p.values}
    ]
    lo, hi = min(p.values), max(p.values)
    cmap = plt.get_cmap("viridis")
    for i in range(len(p.values)):
        ys = []
        for d in dims:
            vals = d["values"]
            a, b = min(vals), max(vals)
            ys.append(0.5 if b == a else (vals[i] - a) / (b - a))
        shade = 0.5 if hi == lo else (p.values[i] - lo) / (hi - lo)
        ax.plot(range(len(dims)), ys, color=cmap(shade), alpha=0.8)
    ax.set_xticks(range(len(dims)))
    ax.set_xticklabels([d["label"] for d in dims], rotation=30, ha="right", fontsize=8)
    ax.set_yticks([0, 1])
    ax.set_yticklabels(["min", "max"])
    ax.set_title("Parallel coordinates (complete trials)")
    fig.tight_layout()
    return fig


def importances_png(data: ReportData) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    imp = data.importances
    if imp.values is None:
        _note(ax, imp.note or "unavailable")
    else:
        names = list(imp.values)[::-1]
        ax.barh(names, [imp.values[n] for n in names])
        ax.set_xlabel("importance")
        ax.tick_params(axis="y", labelsize=8)
    ax.set_title("Parameter importances")
    fig.tight_layout()
    return fig


def _scale_y(ax: plt.Axes, values: list[float]) -> str:
    """Scale ``ax``'s y axis per :func:`value_axis`; returns a note for its label."""
    axis = value_axis(values)
    if axis.kind == "log":
        ax.set_yscale("log")
        return " (log scale)"
    if axis.range is not None:
        ax.set_ylim(*axis.range)
        return f" ({axis.off_scale} off the scale)"
    return ""


def lr_png(lr: LrPoints, metric: str) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if not lr.towers:
        _note(ax, "no complete trial with tower LRs yet")
    else:
        for tower, points in lr.towers.items():
            ax.scatter([p[0] for p in points], [p[1] for p in points], label=tower)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        note = _scale_y(ax, [p[1] for points in lr.towers.values() for p in points])
        ax.set_ylabel(metric + note)
        ax.legend(fontsize=8)
    ax.set_title("Per-tower LR vs value")
    return fig


def health_png(c: HealthCurve) -> Figure:
    """Grad norm per tower (log) above the loss; warning/unstable checks marked; the prune (or pause)
    reason wrapped; each thaw of a paused-then-thawed config a dotted line."""
    label = c.prune.label if c.prune else ""
    wrapped = wrap(label, 100) if label else []
    wrapped += [line for t in c.thaws for line in wrap(t.label, 100)]
    fig, (ax, ax_loss) = plt.subplots(
        2, 1, figsize=(8, 6 + 0.25 * len(wrapped)), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    plotted = False
    for tower, values in c.series.items():
        pts = [(s, v) for s, v in zip(c.steps, values, strict=True) if math.isfinite(v) and v > 0]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=f"{tower} grad norm")
            plotted = True
    if plotted:
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_ylabel("grad norm")
    loss = c.loss or [math.nan] * len(c.steps)
    pts = [(s, v) for s, v in zip(c.steps, loss, strict=True) if math.isfinite(v)]
    note = ""
    if pts:
        ax_loss.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, color="black", label="loss")
        note = _scale_y(ax_loss, [p[1] for p in pts])
        for verdict, color in (("warning", "orange"), ("unstable", "red")):
            marks = [
                (s, v)
                for s, v, d in zip(c.steps, loss, c.verdicts, strict=True)
                if d == verdict and math.isfinite(v)
            ]
            if marks:
                ax_loss.scatter(
                    [m[0] for m in marks],
                    [m[1] for m in marks],
                    marker="D",
                    s=40,
                    color=color,
                    label=verdict,
                    zorder=3,
                )
        ax_loss.legend(fontsize=8)
    else:
        ax_loss.text(0.5, 0.5, "no loss recorded", ha="center", va="center", transform=ax_loss.transAxes)
    ax_loss.set_ylabel("loss" + note)
    ax_loss.set_xlabel("step")
    if c.prune is not None:
        for a in (ax, ax_loss):
            a.axvline(c.prune.step, color="red", linestyle="--")
    for thaw in c.thaws:  # a paused-then-thawed config: where each thaw went on
        for a in (ax, ax_loss):
            a.axvline(thaw.step, color="royalblue", linestyle=":")
    title = "\n".join([f"{c.title}: gradient health", *wrapped])
    ax.set_title(title, fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def write_pngs(data: ReportData, directory: Path) -> list[Path]:
    """Write every plot as ``DIR/<name>.png`` and return the paths (``DIR`` must exist)."""
    metric = data.summary.metric or "value"
    figs: list[tuple[str, Figure]] = [
        ("history", history_png(data, metric)),
        ("parallel", parallel_png(data, metric)),
        ("importances", importances_png(data)),
        ("lr_vs_value", lr_png(data.lr, metric)),
    ]
    figs += [(f"health_trial_{c.number}", health_png(c)) for c in data.curves]
    paths = []
    for name, fig in figs:
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=_DPI)
        plt.close(fig)
        paths.append(path)
    return paths
