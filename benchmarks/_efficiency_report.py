"""Per-method figures, the table and the anytime plot of ``search_efficiency.py``."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks._common import (
    TrialRecord,
    anytime_curve,
    best_at_budget,
    mean_spread,
    median_or_inf,
    spent_within,
    steps_after_onset,
    steps_to_target,
    top_quartile_threshold,
    unstable_share,
)
from benchmarks._optuna_runs import Rerunner


@dataclass(frozen=True)
class FalsePrunes:
    """Pruned trials re-run to completion: how many would have ended in their run's top quartile."""

    false: int
    checked: int
    false_unstable: int = 0


@dataclass(frozen=True)
class MethodStats:
    """One method's figures over its seeds."""

    method: str
    best_values: list[float]
    best_mean: float
    best_std: float
    steps_to_target_per_seed: list[float]
    steps_to_target: float
    trials: int
    pruned: int
    pruned_unstable_kind: int
    unstable_share: float
    unstable_trials: int
    after_onset: list[int]
    fast_unstable_prunes: int
    false_prunes: int | None
    false_checked: int | None
    false_prunes_unstable: int | None
    wall_s: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def false_prunes(
    runs: Sequence[Sequence[TrialRecord]], rerunner: Rerunner | None, direction: str
) -> FalsePrunes | None:
    """Re-run every pruned trial of every run to completion and count those in the run's top quartile.

    The quartile is taken over the final values of all the run's trials (finished ones as they
    finished, pruned ones as re-run). Returns None without a rerunner.
    """
    if rerunner is None:
        return None
    false = checked = false_unstable = 0
    for records in runs:
        pruned = [r for r in records if r.pruned and r.params]
        if not pruned:
            continue
        rerun = [rerunner.final_value(r.params) for r in pruned]
        finals = [r.final_value for r in records if r.final_value is not None] + rerun
        finite = [v for v in finals if math.isfinite(v)]
        if not finite:
            continue
        threshold = top_quartile_threshold(finite, direction)
        checked += len(pruned)
        for rec, v in zip(pruned, rerun, strict=True):
            if math.isfinite(v) and (v >= threshold if direction == "maximize" else v <= threshold):
                false += 1
                false_unstable += rec.kind == "unstable"
    return FalsePrunes(false, checked, false_unstable)


def method_stats(
    method: str,
    runs: Sequence[Sequence[TrialRecord]],
    walls: Sequence[float],
    budget: int,
    target: float,
    direction: str,
    interval: int,
    fp: FalsePrunes | None,
) -> MethodStats:
    """The figures of one method over its runs (one run per seed)."""
    bests = [best_at_budget(r, budget, direction) for r in runs]
    best_values = [b if b is not None else math.nan for b in bests]
    mean, std = mean_spread(best_values)
    to_target = [
        steps_to_target(r, target, budget, direction) if math.isfinite(target) else math.inf for r in runs
    ]
    inside = [[rec for rec, _ in spent_within(r, budget)] for r in runs]
    flat = [rec for recs in inside for rec in recs]
    after = steps_after_onset(flat)
    fast = sum(
        1 for rec in flat if rec.onset is not None and rec.pruned and rec.steps - rec.onset <= interval
    )
    return MethodStats(
        method=method,
        best_values=best_values,
        best_mean=mean,
        best_std=std,
        steps_to_target_per_seed=to_target,
        steps_to_target=median_or_inf(to_target),
        trials=len(flat),
        pruned=sum(1 for rec in flat if rec.pruned),
        pruned_unstable_kind=sum(1 for rec in flat if rec.pruned and rec.kind == "unstable"),
        unstable_share=statistics.fmean(unstable_share(r, budget) for r in runs) if runs else math.nan,
        unstable_trials=sum(1 for rec in flat if rec.unstable),
        after_onset=after,
        fast_unstable_prunes=fast,
        false_prunes=fp.false if fp is not None else None,
        false_checked=fp.checked if fp is not None else None,
        false_prunes_unstable=fp.false_unstable if fp is not None else None,
        wall_s=statistics.fmean(walls) if walls else math.nan,
    )


def _steps(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.0f}"


def table(stats: dict[str, MethodStats], labels: dict[str, str], budget: int, interval: int) -> str:
    """A Markdown table of every method's figures."""
    ref = stats.get("tpe_nop")
    head = (
        "| method | best at budget (mean ± sd) | steps to target (median; per seed) | vs reference | trials | pruned "
        "(unstable kind) | budget share on unstable trials | unstable trials | steps onset→end/prune (median, max) "
        f"| unstable pruned ≤ {interval} steps | false prunes / checked (unstable kind) | wall s per run |"
    )
    lines = [head, "|" + "---|" * 12]
    for method, s in stats.items():
        per_seed = ", ".join(_steps(v) for v in s.steps_to_target_per_seed)
        vs = (
            ""
            if ref is None or math.isinf(ref.steps_to_target)
            else (
                "never" if math.isinf(s.steps_to_target) else f"{s.steps_to_target / ref.steps_to_target:.2f}"
            )
        )
        onset = f"{statistics.median(s.after_onset):.0f}, {max(s.after_onset)}" if s.after_onset else "-"
        fp = (
            "-"
            if s.false_prunes is None or s.pruned == 0
            else f"{s.false_prunes} / {s.false_checked} ({s.false_prunes_unstable})"
        )
        lines.append(
            f"| {labels.get(method, method)} | {s.best_mean:.4f} ± {s.best_std:.4f} | {_steps(s.steps_to_target)}; {per_seed} "
            f"| {vs} | {s.trials} | {s.pruned} ({s.pruned_unstable_kind}) | {s.unstable_share:.1%} | {s.unstable_trials} "
            f"| {onset} | {s.fast_unstable_prunes} | {fp} | {s.wall_s:.0f} |"
        )
    return "\n".join(lines)


def plot_curves(
    runs: dict[str, list[list[TrialRecord]]],
    labels: dict[str, str],
    budget: int,
    direction: str,
    path: Path,
    *,
    title: str = "",
) -> None:
    """Anytime best value against steps consumed: the mean over seeds per method, min-max shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0, budget, 400)
    fig, ax = plt.subplots(figsize=(8, 5))
    lows: list[float] = []
    for method, method_runs in runs.items():
        rows = []
        for records in method_runs:
            curve = anytime_curve(records, budget, direction)
            row = np.full(grid.shape, np.nan)
            for spent, best in curve:
                row[grid >= spent] = best
            rows.append(row)
        if not rows:
            continue
        data = np.vstack(rows)
        valid = ~np.any(np.isnan(data), axis=0)  # drawn once every seed has a finished trial
        mean = np.where(valid, np.mean(np.where(valid, data, 0.0), axis=0), np.nan)
        lo = np.where(valid, np.min(np.where(valid, data, 0.0), axis=0), np.nan)
        hi = np.where(valid, np.max(np.where(valid, data, 0.0), axis=0), np.nan)
        quarter = mean[grid >= budget / 4]
        if np.isfinite(quarter).any():
            lows.append(float(np.nanmin(quarter)))
        (line,) = ax.plot(
            grid, mean, label=labels.get(method, method), lw=2 if method.startswith("gradsweep") else 1.3
        )
        ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.12, step=None)
    if lows:  # zoom on the race after the first quarter of the budget; earlier values are far below
        top = ax.get_ylim()[1]
        ax.set_ylim(max(min(lows) - 0.1 * (top - min(lows)), ax.get_ylim()[0]), top)
    ax.set_xlabel("optimizer steps consumed (all trials)")
    ax.set_ylabel("best final value so far (mean over seeds;\nmin-max shaded; drawn once every seed has one)")
    ax.set_title(f"Anytime best value vs steps{': ' + title if title else ''}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
