"""benchmarks/health_transfer.py: replay over recorded runs, the issue's measures, replayed sweeps."""

from __future__ import annotations

import math

from benchmarks.health_transfer import (
    VARIANTS,
    group_stats,
    health_config,
    judge_run,
    replay_sweeps,
)
from benchmarks.transfer.bank import CheckRecord, RunRecord
from gradsweep.objectives.health.rules import RuleContext
from gradsweep.objectives.health.summary import CheckSummary, TowerSummary
from gradsweep.spaces.health import HealthConfig


def _check(step: int, loss: float, norm: float) -> CheckRecord:
    tower = TowerSummary(steps_with_grad=10, grad_norm_pre=norm, norms=[norm] * 10)
    summary = CheckSummary(
        first_step=step - 9, step=step, n_steps=10, towers={"all": tower},
        losses=[loss] * 10, loss_steps=list(range(step - 9, step + 1)),
    )  # fmt: skip
    return CheckRecord(0, summary, RuleContext())


def _run(
    index: int, label: str, losses: list[float], norms: list[float], value: float, top: bool = False
) -> RunRecord:
    checks = [
        _check(9 + 10 * i, loss, norm) for i, (loss, norm) in enumerate(zip(losses, norms, strict=True))
    ]
    return RunRecord(
        objective="toy", scale="tiny", seed=0, index=index, params={}, tower_lrs={}, value=value,
        direction="minimize", untrained=4.0, label=label, checks=checks, total_steps=len(checks) * 10,
        seconds=0.0, top_quartile=top,
    )  # fmt: skip


DIVERGED = _run(0, "diverged", [4.0] + [9.0] * 6, [1.0] * 7, 9.0)
HEALTHY = _run(1, "healthy", [4.0, 3.0, 2.0, 1.5, 1.0, 0.9, 0.8], [1.0] * 7, 0.8, top=True)
FLAGGED = _run(2, "healthy", [4.0] + [3.0] * 6, [1.0] + [5000.0] * 6, 3.0)


def test_replay_finds_the_divergence_with_its_onset_and_leaves_a_healthy_run_alone() -> None:
    judged = judge_run(DIVERGED, HealthConfig())
    # the level is above the start from the second check (onset at its first step, 10); hard at the
    # fourth check over the line (step 49)
    assert judged.onset == 10 and judged.first(hard=True) == 49 and judged.rule_steps == {"divergence": 49}
    assert judged.loss_up
    assert judge_run(HEALTHY, HealthConfig()).first() is None


def test_group_stats_count_recall_and_false_verdicts() -> None:
    stats = group_stats([judge_run(r, HealthConfig()) for r in (DIVERGED, HEALTHY, FLAGGED)])
    assert (stats.runs, stats.diverged, stats.healthy, stats.diverged_hard) == (3, 1, 2, 1)
    # the explosion (5000x its early norm) is a soft flag on a healthy run, never a hard verdict
    assert (stats.healthy_hard, stats.healthy_soft, stats.top_hard) == (0, 1, 0)
    assert stats.delay == [39] and (stats.diverged_up, stats.diverged_up_hard) == (1, 1)


def test_replayed_sweeps_prune_soft_flags_only_as_the_policy_allows() -> None:
    judged = [judge_run(r, HealthConfig()) for r in (DIVERGED, HEALTHY, FLAGGED)]
    never = replay_sweeps(judged, "never", 0.1, orders=3, seed=0)
    always = replay_sweeps(judged, "always", 0.1, orders=3, seed=0)
    calibrated = replay_sweeps(judged, "calibrated", 0.1, orders=3, seed=0)
    # the diverged run is pruned by its hard rule in every sweep, whatever the policy
    assert never.hard_prunes == always.hard_prunes == calibrated.hard_prunes == 3
    # "always" prunes the flagged run in each sweep; "calibrated" has no finished flagged runs to go by
    assert (always.soft_prunes, never.soft_prunes, calibrated.soft_prunes) == (3, 0, 0)
    assert always.saved > never.saved == calibrated.saved > 0


def test_every_variant_is_a_valid_health_config() -> None:
    for overlay in VARIANTS.values():
        assert isinstance(health_config(overlay), HealthConfig)
    assert (
        health_config({"exploding": {"factor": 10.0}}).exploding.sustain == HealthConfig().exploding.sustain
    )


def test_replayed_sweeps_run_the_population_rule_against_earlier_clean_runs() -> None:
    calm = [_run(10 + i, "healthy", [4.0, 3.0, 2.0, 1.5, 1.0, 0.9, 0.8], [1.0] * 7, 0.8) for i in range(6)]
    # norms 50x the others' from the first step (so its own early norm calls it steady)
    loud = _run(20, "healthy", [4.0, 3.0, 2.0, 1.5, 1.0, 0.9, 0.8], [50.0] * 7, 0.8)
    judged = [judge_run(r, HealthConfig()) for r in (*calm, loud)]
    assert judge_run(loud, HealthConfig()).first() is None  # the monitor's own rules see nothing
    out = replay_sweeps(judged, "never", 0.1, orders=20, seed=0)
    # flagged in every order that puts it after at least five clean runs, never pruned ("never")
    assert 0 < out.population_flags <= 20 and out.soft_prunes == 0 and out.population_top == 0


def test_replay_leaves_the_recorded_summaries_unchanged() -> None:
    run = _run(0, "healthy", [1.0], [1.0], 1.0)
    before = run.checks[0].summary.to_dict()
    judged = judge_run(run, HealthConfig())
    assert judged.checks == [(9, [])] and run.checks[0].summary.to_dict() == before
    assert math.isnan(run.checks[0].summary.towers["all"].early_norm)
