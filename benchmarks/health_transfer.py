"""Do the health rules judge models nobody tuned them on? Recall and false prunes on a run bank.

Issue 17, point 6. ``benchmarks/_transfer_runs.py`` trains a wide random sample of configs of each
objective to the end with pruning off (learning rates reaching far past stable, clipping on and
off) and records every health check (:mod:`gradsweep.objectives.health.recording`). Each run is
labelled from its outcome alone (``benchmarks/transfer/bank.py``): ``nonfinite``, ``diverged``
(final metric worse than the same model untrained) or ``healthy``. This script lets the rules
decide on those records exactly as a live monitor would (one
:class:`~gradsweep.objectives.health.judge.Judge` per monitor, fed the raw summaries in order) and
reports, per objective group and per rule:

* recall of non-finite runs by a hard rule (goal 100%) and of diverged runs (goal >= 95%);
* steps from onset to verdict (onset: the first non-finite step; for a diverged run the first check
  whose loss level sits above its starting loss);
* hard ``unstable`` verdicts on runs that finished in their objective's top quartile (goal 0) and
  on healthy runs (goal <= 2%), and the soft flags on them;
* a replayed sweep per objective (the runs in random orders, one at a time, as a sequential sweep
  would see them) under each ``soft_prune`` policy: what soft rules pruned, how many of those were
  top-quartile runs, and the share of training steps saved.

Three groups of objectives: the defaults were chosen on TUNING; HELD_OUT were not used to choose
them at first, but their false prunes were read while the divergence rule got its recovery guard
and its sustain, so they are not blind for that rule; BLIND (``seq2seq``, ``tabular``) were
written by someone else after the defaults were fixed and collected once, then reported as they
came (``--variants`` replays the candidates that were compared).

Usage::

    .venv/bin/python -m benchmarks.health_transfer --quick                      # collect + report, < 15 min
    .venv/bin/python -m benchmarks.health_transfer                  # the full bank, 24 runs per objective (resumable)
    .venv/bin/python -m benchmarks.health_transfer --bank PATH --no-collect --variants all
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.transfer.bank import RunRecord, load_bank
from gradsweep.objectives.health.judge import Judge
from gradsweep.objectives.health.rules import RuleResult
from gradsweep.objectives.health.summary import CheckSummary
from gradsweep.objectives.health.verdict import HARD_RULES, Verdict
from gradsweep.search.calibration import count_evidence
from gradsweep.search.population import population_finding
from gradsweep.spaces.health import HealthConfig

REPO = Path(__file__).resolve().parent.parent
#: Objectives the defaults were chosen on, and those they are reported on without having been looked at.
TUNING = ("contrastive", "multitower", "segmentation", "digits_cnn")
HELD_OUT = ("moco", "finetune", "charlm", "digits_vae")
BLIND = ("seq2seq", "tabular")
OBJECTIVES = TUNING + HELD_OUT + BLIND
GROUPS = (("tuning", TUNING), ("held out (seen)", HELD_OUT), ("blind", BLIND))
#: Candidate settings compared (``--variants``), each a ``health:`` overlay on the defaults; ``first`` is
#: the rules as first written (exploding 100x, divergence over the start for 2 checks, no recovery guard).
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "first": {"exploding": {"factor": 100.0}, "divergence": {"margin": 0.0, "sustain": 2, "recovery": 1.0}},
    "exploding.factor=30": {"exploding": {"factor": 30.0}},
    "exploding.factor=100": {"exploding": {"factor": 100.0}},
    "exploding.factor=1e4": {"exploding": {"factor": 1e4}},
    "divergence.margin=0": {"divergence": {"margin": 0.0}},
    "divergence.margin=0.25": {"divergence": {"margin": 0.25}},
    "divergence.sustain=2": {"divergence": {"sustain": 2}},
    "divergence.sustain=3": {"divergence": {"sustain": 3}},
    "divergence.sustain=5": {"divergence": {"sustain": 5}},
    "divergence.recovery=off": {"divergence": {"recovery": 1.0}},
    "divergence.recovery=0.3": {"divergence": {"recovery": 0.3}},
    "divergence.off": {"divergence": {"enabled": False}},
    "loss_regress.fraction=0.3": {"loss_regress": {"fraction": 0.3}},
    "loss_spike.z_score=16": {"loss_spike": {"z_score": 16.0}},
    "vanishing.ratio=1e-3": {"vanishing": {"ratio": 1e-3}},
}
POLICIES = ("never", "calibrated", "always")


@dataclass
class Judged:
    """One run of the bank with the rules' decisions replayed over its checks.

    Attributes:
        run: the recorded run.
        checks: ``(step, findings)`` per check, in order.
        onset: the step its pathology began (None for a healthy run).
        last_step: the run's last checked step (its length for the savings).
    """

    run: RunRecord
    checks: list[tuple[int, list[RuleResult]]]
    onset: int | None
    last_step: int
    rule_steps: dict[str, int] = field(default_factory=dict)
    loss_up: bool = False  # the last check's loss level sits over its starting loss

    def first(self, *, hard: bool | None = None) -> int | None:
        """The first step with an UNSTABLE finding (of hard rules, soft ones, or any)."""
        for step, results in self.checks:
            if any(r.verdict == Verdict.UNSTABLE and (hard is None or r.hard == hard) for r in results):
                return step
        return None

    def soft_rules_at(self, index: int) -> set[str]:
        return {r.rule for r in self.checks[index][1] if r.verdict == Verdict.UNSTABLE and not r.hard}

    def hard_at(self, index: int) -> bool:
        return any(r.verdict == Verdict.UNSTABLE and r.hard for r in self.checks[index][1])


def _first_nonfinite(s: CheckSummary) -> int | None:
    steps = [x for x in (s.first_nonfinite_loss_step, s.first_nonfinite_grad_step) if x is not None]
    steps += [t.first_nonfinite_step for t in s.towers.values() if t.first_nonfinite_step is not None]
    return min(steps) if steps else None


def judge_run(run: RunRecord, config: HealthConfig) -> Judged:
    """Replay ``config``'s rules over one recorded run (a Judge per monitor, as live)."""
    judges: dict[int, Judge] = {}
    checks: list[tuple[int, list[RuleResult]]] = []
    onset: int | None = None
    rule_steps: dict[str, int] = {}
    for record in run.checks:
        judge = judges.get(record.monitor)
        if judge is None:
            judge = judges[record.monitor] = Judge(config, record.context)
        summary = CheckSummary.from_dict(record.summary.to_dict())
        results = judge.judge(summary)
        checks.append((summary.step, results))
        for r in results:
            if r.verdict == Verdict.UNSTABLE:
                rule_steps.setdefault(r.rule, summary.step)
        if onset is None and run.label == "nonfinite":
            onset = _first_nonfinite(summary)
        if onset is None and run.label == "diverged":
            level, start = summary.loss_level, summary.loss_start
            if math.isfinite(level) and math.isfinite(start) and level > start:
                onset = summary.first_step
    last = checks[-1][0] if checks else 0
    if onset is None and run.label in ("nonfinite", "diverged"):
        onset = last  # the pathology shows only in the final metric
    up = bool(run.checks) and summary.loss_level > summary.loss_start
    return Judged(run, checks, onset, last, rule_steps, up)


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100.0 * part / whole:.0f}%)" if whole else "-"


def _median(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.0f}" if values else "-"


@dataclass(frozen=True)
class GroupStats:
    """The issue's measures over one group of judged runs."""

    runs: int
    nonfinite: int
    diverged: int
    healthy: int
    nonfinite_hard: int
    diverged_hard: int
    diverged_any: int
    diverged_up: int
    diverged_up_hard: int
    delay: list[int]
    top: int
    top_hard: int
    top_soft: int
    healthy_hard: int
    healthy_soft: int

    def row(self, name: str) -> str:
        return (
            f"| {name} | {self.runs} ({self.nonfinite}/{self.diverged}/{self.healthy}) "
            f"| {_pct(self.nonfinite_hard, self.nonfinite)} | {_pct(self.diverged_hard, self.diverged)} "
            f"| {_pct(self.diverged_any, self.diverged)} | {_pct(self.diverged_up_hard, self.diverged_up)} "
            f"| {_median(self.delay)} "
            f"| {self.top_hard}/{self.top} | {_pct(self.healthy_hard, self.healthy)} "
            f"| {self.top_soft}/{self.top} | {_pct(self.healthy_soft, self.healthy)} |"
        )


GROUP_HEADER = (
    "| objectives | runs (nonfinite/diverged/healthy) | non-finite caught (hard) | diverged caught (hard) "
    "| diverged caught (hard or soft flag) | diverged with the loss ending over its start: caught (hard) "
    "| median steps onset -> verdict "
    "| top-quartile runs with hard unstable | healthy runs with hard unstable "
    "| top-quartile runs soft-flagged | healthy runs soft-flagged |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def group_stats(judged: Iterable[Judged]) -> GroupStats:
    """Recall, delay and false verdicts over ``judged``."""
    items = list(judged)
    bad = {
        "nonfinite": [j for j in items if j.run.label == "nonfinite"],
        "diverged": [j for j in items if j.run.label == "diverged"],
    }
    healthy = [j for j in items if j.run.label == "healthy"]
    top = [j for j in items if j.run.top_quartile]
    delay = []
    for j in bad["nonfinite"] + bad["diverged"]:
        first = j.first(hard=True)
        first = first if first is not None else j.first()
        if first is not None and j.onset is not None:
            delay.append(max(0, first - j.onset))
    return GroupStats(
        runs=len(items),
        nonfinite=len(bad["nonfinite"]),
        diverged=len(bad["diverged"]),
        healthy=len(healthy),
        nonfinite_hard=sum(j.first(hard=True) is not None for j in bad["nonfinite"]),
        diverged_hard=sum(j.first(hard=True) is not None for j in bad["diverged"]),
        diverged_any=sum(j.first() is not None for j in bad["diverged"]),
        diverged_up=sum(j.loss_up for j in bad["diverged"]),
        diverged_up_hard=sum(j.loss_up and j.first(hard=True) is not None for j in bad["diverged"]),
        delay=delay,
        top=len(top),
        top_hard=sum(j.first(hard=True) is not None for j in top),
        top_soft=sum(j.first(hard=False) is not None for j in top),
        healthy_hard=sum(j.first(hard=True) is not None for j in healthy),
        healthy_soft=sum(j.first(hard=False) is not None for j in healthy),
    )


def rule_table(judged: Sequence[Judged]) -> list[str]:
    """Per rule: the runs it called unstable, by label, and how many finished in the top quartile."""
    rules = sorted({rule for j in judged for rule in j.rule_steps})
    lines = [
        "| rule | kind | runs unstable | non-finite | diverged | healthy | top quartile | median % of run at verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule in rules:
        hit = [j for j in judged if rule in j.rule_steps]
        kind = "hard" if RuleResult(Verdict.UNSTABLE, rule, "").hard else "soft"
        at = [100.0 * j.rule_steps[rule] / j.last_step for j in hit if j.last_step > 0]
        lines.append(
            f"| `{rule}` | {kind} | {len(hit)} | {sum(j.run.label == 'nonfinite' for j in hit)} "
            f"| {sum(j.run.label == 'diverged' for j in hit)} | {sum(j.run.label == 'healthy' for j in hit)} "
            f"| {sum(j.run.top_quartile for j in hit)} | {_median(at)} |"
        )
    return lines


@dataclass
class SweepOutcome:
    """Totals of replayed sequential sweeps under one ``soft_prune`` policy."""

    sweeps: int = 0
    soft_prunes: int = 0
    soft_false: int = 0
    hard_prunes: int = 0
    hard_false: int = 0
    steps: int = 0
    saved: int = 0
    population_flags: int = 0
    population_top: int = 0
    population_bad: int = 0


def _check_norms(j: Judged) -> list[tuple[int, dict[str, float]]]:
    """Each check's ``(step, {tower: mean pre-clip grad norm})``, as a report carries them."""
    return [
        (c.summary.step, {t: ts.grad_norm_pre for t, ts in c.summary.towers.items()}) for c in j.run.checks
    ]


def replay_sweeps(
    judged: Sequence[Judged], policy: str, alpha: float, orders: int, seed: int
) -> SweepOutcome:
    """Replay each objective's runs as sequential sweeps in ``orders`` random orders.

    A hard UNSTABLE prunes at once; a soft one as ``policy`` says (``calibrated``: the evidence of
    the runs that finished earlier in the same sweep, :func:`gradsweep.search.calibration.count_evidence`).
    A run that is not pruned finishes with its recorded value and the rules that flagged it. The
    ``population`` rule (:mod:`gradsweep.search.population`) runs here as the pruner runs it live:
    against the runs that finished earlier in the same sweep without any flag.
    """
    out = SweepOutcome()
    by_objective: dict[str, list[Judged]] = {}
    for j in judged:
        by_objective.setdefault(j.run.objective, []).append(j)
    rng = random.Random(seed)
    for runs in by_objective.values():
        maximize = runs[0].run.direction == "maximize"
        for _ in range(orders):
            order = list(runs)
            rng.shuffle(order)
            finished: list[tuple[float, set[str]]] = []
            reference: dict[int, dict[str, list[float]]] = {}
            out.sweeps += 1
            for j in order:
                out.steps += j.last_step
                pruned_at, kind = None, None
                flags = set(j.rule_steps) - HARD_RULES
                norms = _check_norms(j)
                for i, (step, _) in enumerate(j.checks):
                    if j.hard_at(i):
                        pruned_at, kind = step, "hard"
                        break
                    soft = j.soft_rules_at(i)
                    if population_finding(norms[: i + 1], reference) is not None:
                        soft = soft | {"population"}
                        if "population" not in flags:
                            out.population_flags += 1
                            out.population_top += j.run.top_quartile
                            out.population_bad += j.run.label in ("nonfinite", "diverged")
                        flags.add("population")
                    if soft and policy == "always":
                        pruned_at, kind = step, "soft"
                        break
                    if (
                        soft
                        and policy == "calibrated"
                        and any(count_evidence(r, finished, maximize).allows(alpha) for r in soft)
                    ):
                        pruned_at, kind = step, "soft"
                        break
                if pruned_at is None:
                    finished.append((j.run.value, flags))
                    if not flags and not set(j.rule_steps) & HARD_RULES:
                        for step, towers in norms:
                            for tower, value in towers.items():
                                if math.isfinite(value):
                                    reference.setdefault(step, {}).setdefault(tower, []).append(value)
                    continue
                out.saved += j.last_step - pruned_at
                if kind == "hard":
                    out.hard_prunes += 1
                    out.hard_false += j.run.top_quartile
                else:
                    out.soft_prunes += 1
                    out.soft_false += j.run.top_quartile
    return out


def health_config(overlay: dict[str, Any]) -> HealthConfig:
    """The default :class:`HealthConfig` with ``overlay``'s rule settings."""
    base = HealthConfig().model_dump()
    for key, value in overlay.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return HealthConfig(**base)


def report(runs: Sequence[RunRecord], variants: Sequence[str], orders: int, seed: int) -> str:
    """The markdown report: groups, objectives, rules, replayed sweeps, and the variants compared."""
    config = HealthConfig()
    judged = [judge_run(r, config) for r in runs]
    lines = ["### Default rules", "", GROUP_HEADER]
    for name, members in GROUPS:
        part = [j for j in judged if j.run.objective in members]
        if part:
            lines.append(group_stats(part).row(f"{name}: {', '.join(members)}"))
    lines.append(group_stats(judged).row("all"))
    lines += ["", "Per objective:", "", GROUP_HEADER]
    for objective in dict.fromkeys(j.run.objective for j in judged):
        part = [j for j in judged if j.run.objective == objective]
        tag = next(name for name, members in GROUPS if objective in members)
        lines.append(group_stats(part).row(f"{objective} ({part[0].run.scale}, {tag})"))
    lines += ["", "Per rule (all objectives):", "", *rule_table(judged)]
    lines += [
        "",
        f"Replayed sequential sweeps ({orders} random orders per objective), by `soft_prune` policy:",
        "",
        "| policy | sweeps | soft prunes | of them top-quartile runs | hard prunes | of them top-quartile | steps saved "
        "| `population` flags | of them on non-finite or diverged runs | on top-quartile runs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for policy in POLICIES:
        o = replay_sweeps(judged, policy, config.false_prune_rate, orders, seed)
        lines.append(
            f"| `{policy}` | {o.sweeps} | {o.soft_prunes} | {o.soft_false} | {o.hard_prunes} | {o.hard_false} "
            f"| {100.0 * o.saved / max(o.steps, 1):.1f}% | {o.population_flags} | {o.population_bad} | {o.population_top} |"
        )
    if variants:
        lines += ["", "### Variants compared (settings changed from the defaults)", "", GROUP_HEADER]
        for name in variants:
            overlay = VARIANTS[name]
            vj = [judge_run(r, health_config(overlay)) for r in runs]
            for label, members in GROUPS:
                part = [j for j in vj if j.run.objective in members]
                if part:
                    lines.append(group_stats(part).row(f"{name} / {label}"))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.health_transfer", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--bank", type=Path, default=None, help="the run bank (JSON lines); default under benchmarks/figures"
    )
    p.add_argument(
        "--quick", action="store_true", help="built-ins at tiny scale, 4 runs per objective (< 15 min)"
    )
    p.add_argument(
        "--runs", type=int, default=None, help="runs per objective to collect (default 24; 4 with --quick)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objectives", default=",".join(OBJECTIVES))
    p.add_argument("--no-collect", action="store_true", help="report on the bank as it is")
    p.add_argument(
        "--orders", type=int, default=20, help="random orders per objective for the replayed sweeps"
    )
    p.add_argument("--variants", default="", help="comma-separated names of VARIANTS, or 'all'")
    args = p.parse_args(argv)
    names = list(VARIANTS) if args.variants == "all" else [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        p.error(f"--variants: unknown {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    args.variant_names = names
    if args.bank is None:
        args.bank = (
            REPO
            / "benchmarks"
            / "figures"
            / ("health_transfer_quick.jsonl" if args.quick else "health_transfer.jsonl")
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    objectives = [o for o in args.objectives.split(",") if o]
    started = time.perf_counter()
    if not args.no_collect:
        from benchmarks._transfer_runs import collect

        runs = args.runs if args.runs is not None else (4 if args.quick else 24)
        collect(args.bank, objectives, runs, args.seed, quick=args.quick)
    loaded = load_bank(args.bank)
    bank = [r for r in loaded if r.objective in objectives and r.label != "error"]
    print(report(bank, args.variant_names, args.orders, args.seed))
    errors = [r for r in loaded if r.label == "error"]
    if errors:
        print(
            f"\n{len(errors)} run(s) crashed without a non-finite value and are left out: "
            + "; ".join(f"{r.objective}#{r.index}: {r.error}" for r in errors[:5])
        )
    print(f"\nbank: {args.bank} ({len(bank)} runs); wall {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
