"""Per-method figures, the table and the anytime plot of ``search_efficiency.py``, and its summary over objectives.

Paused trials (freeze-thaw): a method may pause a trial (stop it, keeping its checkpoint) and
later thaw it (go on from the checkpoint); the run then holds two records of that trial, the
paused one (``paused``, ``thawed``) and the continuation (``thaw_of``). A paused record that was
thawed is no prune: it is not counted as pruned and never re-run. A paused record that was never
thawed is a prune like any other (re-run for the false-prune count); when its re-run lands in the
run's top quartile it is a **lost winner**.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from benchmarks._common import (
    TrialRecord,
    anytime_curve,
    best_at_budget,
    mean_spread,
    median_or_inf,
    ratio,
    spent_within,
    steps_to_target,
    top_quartile_threshold,
    unstable_share,
)

REFERENCE = "tpe_nop"
OURS_FAMILY = "gradsweep"
"""Methods whose key starts with this are gradsweep's own; none of them is an "other method"."""


class FinalValues(Protocol):
    """What re-runs a config to completion (:class:`benchmarks._optuna_runs.Rerunner`)."""

    def final_value(self, params: dict[str, Any]) -> float: ...


def is_prune(rec: TrialRecord) -> bool:
    """Whether ``rec`` ended a trial early for good: pruned, and not a pause that was later thawed."""
    return rec.pruned and not (rec.paused and rec.thawed)


def is_unthawed_pause(rec: TrialRecord) -> bool:
    """A paused record that no later record continues (a lost winner if it would have won)."""
    return rec.paused and not rec.thawed


def trial_roots(records: Sequence[TrialRecord]) -> list[int]:
    """For each record, the index of the first record of its trial (continuations follow ``thaw_of``)."""
    roots: list[int] = []
    for i, rec in enumerate(records):
        j = rec.thaw_of
        roots.append(roots[j] if j is not None and 0 <= j < i else i)
    return roots


@dataclass(frozen=True)
class FalsePrunes:
    """Pruned trials re-run to completion: how many would have ended in their run's top quartile."""

    false: int
    checked: int
    false_unstable: int = 0
    lost: int = 0
    """Of the false prunes, the paused trials never thawed (lost winners)."""
    lost_checked: int = 0
    """Of the checked prunes, the paused trials never thawed."""


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
    paused: int = 0
    thawed: int = 0
    lost_winners: int | None = None
    lost_checked: int | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def count_false_prunes(records: Sequence[TrialRecord], rerun: Sequence[float], direction: str) -> FalsePrunes:
    """Count one run's false prunes and lost winners, given the re-run values of its prunes.

    Args:
        records: the run's records.
        rerun: the final value of each record for which :func:`is_prune` holds (and that has
            params), in record order, as re-run to completion.
        direction: ``maximize`` or ``minimize``.

    The quartile is taken over the final values of all the run's trials (finished ones as they
    finished, pruned ones as re-run); a thawed trial's final value is its continuation's.
    """
    pruned = [r for r in records if is_prune(r) and r.params]
    if len(rerun) != len(pruned):
        raise ValueError(f"need one re-run value per prune ({len(pruned)}) but got {len(rerun)}")
    finals = [r.final_value for r in records if r.final_value is not None] + list(rerun)
    finite = [v for v in finals if math.isfinite(v)]
    if not pruned or not finite:
        return FalsePrunes(0, 0)
    threshold = top_quartile_threshold(finite, direction)
    false = false_unstable = lost = 0
    for rec, v in zip(pruned, rerun, strict=True):
        if math.isfinite(v) and (v >= threshold if direction == "maximize" else v <= threshold):
            false += 1
            false_unstable += rec.kind == "unstable"
            lost += is_unthawed_pause(rec)
    lost_checked = sum(1 for rec in pruned if is_unthawed_pause(rec))
    return FalsePrunes(false, len(pruned), false_unstable, lost, lost_checked)


def false_prunes(
    runs: Sequence[Sequence[TrialRecord]], rerunner: FinalValues | None, direction: str
) -> FalsePrunes | None:
    """Re-run every prune of every run to completion and count those in the run's top quartile.

    A prune is a record for which :func:`is_prune` holds: a paused trial that was later thawed
    is not re-run; one never thawed is, and counts as a lost winner when it is a false prune.
    See :func:`count_false_prunes`. Returns None without a rerunner.
    """
    if rerunner is None:
        return None
    counts = [0, 0, 0, 0, 0]
    for records in runs:
        rerun = [rerunner.final_value(r.params) for r in records if is_prune(r) and r.params]
        one = count_false_prunes(records, rerun, direction)
        for i, n in enumerate((one.false, one.checked, one.false_unstable, one.lost, one.lost_checked)):
            counts[i] += n
    return FalsePrunes(*counts)


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
    """The figures of one method over its runs (one run per seed).

    ``trials`` and ``unstable_trials`` count trials (a paused trial and its continuation are one);
    ``pruned`` counts prunes (:func:`is_prune`: a pause later thawed is none); ``paused`` the
    paused records and ``thawed`` those of them a later record continued.
    """
    bests = [best_at_budget(r, budget, direction) for r in runs]
    best_values = [b if b is not None else math.nan for b in bests]
    mean, std = mean_spread(best_values)
    to_target = [
        steps_to_target(r, target, budget, direction) if math.isfinite(target) else math.inf for r in runs
    ]
    inside = [[rec for rec, _ in spent_within(r, budget)] for r in runs]
    flat = [rec for recs in inside for rec in recs]
    # one trial may be several records (paused, then thawed): count trials by their first record
    trials = unstable_trials = 0
    for r, recs in zip(runs, inside, strict=True):
        roots = trial_roots(r)[: len(recs)]
        trials += len(set(roots))
        unstable_trials += len({root for root, rec in zip(roots, recs, strict=True) if rec.unstable})
    after = [_after_onset(rec) for rec in flat if rec.onset is not None]
    fast = sum(1 for rec in flat if rec.onset is not None and is_prune(rec) and _after_onset(rec) <= interval)
    return MethodStats(
        method=method,
        best_values=best_values,
        best_mean=mean,
        best_std=std,
        steps_to_target_per_seed=to_target,
        steps_to_target=median_or_inf(to_target),
        trials=trials,
        pruned=sum(1 for rec in flat if is_prune(rec)),
        pruned_unstable_kind=sum(1 for rec in flat if is_prune(rec) and rec.kind == "unstable"),
        unstable_share=statistics.fmean(unstable_share(r, budget) for r in runs) if runs else math.nan,
        unstable_trials=unstable_trials,
        after_onset=after,
        fast_unstable_prunes=fast,
        false_prunes=fp.false if fp is not None else None,
        false_checked=fp.checked if fp is not None else None,
        false_prunes_unstable=fp.false_unstable if fp is not None else None,
        wall_s=statistics.fmean(walls) if walls else math.nan,
        paused=sum(1 for rec in flat if rec.paused),
        thawed=sum(1 for rec in flat if rec.paused and rec.thawed),
        lost_winners=fp.lost if fp is not None else None,
        lost_checked=fp.lost_checked if fp is not None else None,
    )


def _after_onset(rec: TrialRecord) -> int:
    """Steps from ``rec``'s onset of instability to its last report (both counted from the trial's start)."""
    last = max((r.step for r in rec.reports), default=0)
    return last - (rec.onset if rec.onset is not None else last)


def _steps(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.0f}"


def _paused_text(s: MethodStats) -> str:
    return f"{s.paused} / {s.thawed}" if s.paused else "-"


def _lost_text(s: MethodStats) -> str:
    if s.paused == s.thawed:
        return "-"  # nothing paused for good within the budget
    return "not checked" if s.lost_winners is None else f"{s.lost_winners} / {s.lost_checked}"


def table(stats: dict[str, MethodStats], labels: dict[str, str], budget: int, interval: int) -> str:
    """A Markdown table of every method's figures."""
    ref = stats.get(REFERENCE)
    head = (
        "| method | best at budget (mean ± sd) | steps to target (median; per seed) | vs reference | trials | pruned "
        "(unstable kind) | paused / thawed | budget share on unstable trials | unstable trials | steps onset→end/prune "
        f"(median, max) | unstable pruned ≤ {interval} steps | false prunes / checked (unstable kind) "
        "| lost winners / paused never thawed | wall s per run |"
    )
    lines = [head, "|" + "---|" * 14]
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
            f"| {vs} | {s.trials} | {s.pruned} ({s.pruned_unstable_kind}) | {_paused_text(s)} | {s.unstable_share:.1%} "
            f"| {s.unstable_trials} | {onset} | {s.fast_unstable_prunes} | {fp} | {_lost_text(s)} | {s.wall_s:.0f} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class ObjectiveSummary:
    """How the judged method did on one objective, against the reference and the other methods.

    Attributes:
        objective: the objective's label (its space's name).
        scale: the objective's scale.
        ours: the judged method (``--ours``).
        target: the objective's target value.
        ours_steps: the judged method's steps to the target (median over seeds; ``inf`` = never).
        reference_steps: the no-pruning TPE's.
        vs_reference: ``ours_steps / reference_steps`` (:func:`benchmarks._common.ratio`).
        best_other: the other method fastest to the target (None when no other method ran);
            gradsweep's own methods are never "other".
        best_other_steps: its steps to the target.
        vs_best_other: ``ours_steps / best_other_steps`` (nan when no other method reached it).
        ours_best: the judged method's best value at budget (mean over seeds).
        rival_best: the best such mean of every other method that ran, gradsweep's variants included.
        rival: the method that has it.
        best_ok: the judged method's best value is no worse than any method's.
        lost_winners: the judged method's lost winners (None: not checked).
        lost_checked: its paused trials never thawed that were checked (None: not checked).
    """

    objective: str
    scale: str
    ours: str
    target: float
    ours_steps: float
    reference_steps: float
    vs_reference: float
    best_other: str | None
    best_other_steps: float
    vs_best_other: float
    ours_best: float
    rival_best: float
    rival: str | None
    best_ok: bool
    lost_winners: int | None
    lost_checked: int | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def is_other_method(method: str, reference: str = REFERENCE) -> bool:
    """Whether ``method`` is a rival: neither the reference nor one of gradsweep's own methods."""
    return method != reference and not method.startswith(OURS_FAMILY)


def summarize_objective(
    objective: str,
    scale: str,
    stats: dict[str, MethodStats],
    ours: str,
    target: float,
    direction: str,
    reference: str = REFERENCE,
) -> ObjectiveSummary:
    """One objective's line of the summary: ``ours`` against ``reference`` and the other methods."""
    mine = stats.get(ours)
    ours_steps = mine.steps_to_target if mine is not None else math.nan
    ref_steps = stats[reference].steps_to_target if reference in stats else math.nan
    others = [m for m in stats if is_other_method(m, reference)]
    best_other = min(others, key=lambda m: stats[m].steps_to_target) if others else None
    other_steps = stats[best_other].steps_to_target if best_other is not None else math.nan
    rivals = [(m, s.best_mean) for m, s in stats.items() if m != ours and math.isfinite(s.best_mean)]
    rival, rival_best = (
        (max if direction == "maximize" else min)(rivals, key=lambda mv: mv[1])
        if rivals
        else (None, math.nan)
    )
    ours_best = mine.best_mean if mine is not None else math.nan
    best_ok = math.isfinite(ours_best) and (
        rival is None or (ours_best >= rival_best if direction == "maximize" else ours_best <= rival_best)
    )
    return ObjectiveSummary(
        objective=objective,
        scale=scale,
        ours=ours,
        target=target,
        ours_steps=ours_steps,
        reference_steps=ref_steps,
        vs_reference=ratio(ours_steps, ref_steps) if mine is not None else math.nan,
        best_other=best_other,
        best_other_steps=other_steps,
        vs_best_other=ratio(ours_steps, other_steps) if mine is not None and best_other else math.nan,
        ours_best=ours_best,
        rival_best=rival_best,
        rival=rival,
        best_ok=best_ok,
        lost_winners=mine.lost_winners if mine is not None else None,
        lost_checked=mine.lost_checked if mine is not None else None,
    )


def median_and_worst(summaries: Sequence[ObjectiveSummary]) -> tuple[float, float]:
    """The headline over objectives: the median ratio to the no-pruning TPE, the worst to the best other.

    An undefined ratio (``nan``: the reference, or every other method, missed the target) is left
    out; ``inf`` (the judged method missed it) counts as the largest. ``nan`` when none is defined.

    Example:
        >>> s = [ObjectiveSummary("a", "small", "gradsweep", 0.5, 60.0, 100.0, 0.6, "tpe_median", 50.0, 1.2,
        ...                       0.5, 0.5, "tpe_nop", True, 0, 0)]
        >>> median_and_worst(s)
        (0.6, 1.2)
    """
    to_ref = [s.vs_reference for s in summaries if not math.isnan(s.vs_reference)]
    to_other = [s.vs_best_other for s in summaries if not math.isnan(s.vs_best_other)]
    return (median_or_inf(to_ref) if to_ref else math.nan), (max(to_other) if to_other else math.nan)


def _ratio_text(value: float) -> str:
    return f"{value:.2f}"


def summary_table(summaries: Sequence[ObjectiveSummary], labels: dict[str, str] | None = None) -> str:
    """A Markdown table with one row per objective."""
    labels = labels or {}
    head = (
        "| objective | scale | target | steps to target: ours / no-pruning TPE | vs no-pruning TPE "
        "| best other method (steps) | vs best other | best at budget: ours vs best of the rest | "
        "lost winners / paused never thawed |"
    )
    lines = [head, "|" + "---|" * 9]
    for s in summaries:
        other = (
            "-"
            if s.best_other is None
            else f"{labels.get(s.best_other, s.best_other)} ({_steps(s.best_other_steps)})"
        )
        best = f"{s.ours_best:.4f} vs {s.rival_best:.4f} ({s.rival or '-'}): {'ok' if s.best_ok else 'WORSE'}"
        lost = "not checked" if s.lost_winners is None else f"{s.lost_winners} / {s.lost_checked}"
        lines.append(
            f"| {s.objective} | {s.scale} | {s.target:.4f} | {_steps(s.ours_steps)} / {_steps(s.reference_steps)} "
            f"| {_ratio_text(s.vs_reference)} | {other} | {_ratio_text(s.vs_best_other)} | {best} | {lost} |"
        )
    return "\n".join(lines)


def objective_line(s: ObjectiveSummary) -> str:
    """One objective's headline, printed just before the last line."""
    lost = "not checked" if s.lost_winners is None else f"{s.lost_winners} of {s.lost_checked}"
    return (
        f"{s.objective} ({s.scale}): {s.ours} vs no-pruning TPE {_ratio_text(s.vs_reference)}, "
        f"vs best other method ({s.best_other or 'none'}) {_ratio_text(s.vs_best_other)}; "
        f"best at budget {s.ours_best:.4f} vs {s.rival_best:.4f} ({'no worse' if s.best_ok else 'worse'}); "
        f"lost winners {lost}"
    )


def targets_line(summaries: Sequence[ObjectiveSummary]) -> str:
    """The issue's four targets, met or not, over all objectives."""
    median, worst = median_and_worst(summaries)
    per_other = [s.vs_best_other for s in summaries]
    every_other = all(math.isnan(v) or v <= 0.8 for v in per_other) and all(
        not math.isinf(s.ours_steps) for s in summaries
    )
    best_ok = sum(s.best_ok for s in summaries)
    lost = [s.lost_winners for s in summaries]
    lost_text = "not checked" if any(v is None for v in lost) else str(sum(v or 0 for v in lost))

    def yes(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return (
        f"targets: median vs no-pruning TPE {median:.2f} <= 0.5 {yes(median <= 0.5)}; "
        f"vs best other <= 0.8 on every objective (worst {worst:.2f}) {yes(every_other)}; "
        f"best value no worse on {best_ok}/{len(summaries)} {yes(best_ok == len(summaries))}; "
        f"lost winners {lost_text} {yes(lost_text == '0')}"
    )


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
