from __future__ import annotations

import optuna
import pytest

from gradsweep.search.views.reasons import group_prunes, reason_key, reason_rule


@pytest.mark.parametrize(
    ("reason", "key"),
    [
        ("text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 400-500)", "text_encoder grad norm"),
        ("video_backbone grad norm 2.4e+03 > 1e+03 for 3 checks (steps 20-60)", "video_backbone grad norm"),
        ("non-finite loss at step 312 (3 of 25 steps)", "non-finite loss"),
        ("non-finite gradients in decoder at step 12 (1 of 25 steps)", "non-finite gradients in decoder"),
        ("GradScaler skipped 25 steps in a row > 20 (at step 300)", "GradScaler skipped"),
        (
            "text_encoder decay-to-grad ratio 3.3 > 2 for 5 checks (steps 1-5)",
            "text_encoder decay-to-grad ratio",
        ),
        ("loss stalled: best 1.2 over 20 checks is not 0.001 below 1.2", "loss stalled"),
        ("fp16 scaler scale nan", "fp16 scaler scale"),
        ("interrupted", "interrupted"),
        # a base pruner's comparison: the pruner is the key, not the line with its numbers masked
        ("value -3.465 at step 1 worse than median -3.321 of 3 trials (MedianPruner)", "MedianPruner"),
        ("score 3 at step 2 under 4", "score # at step # under #"),
        ("", "(no reason)"),
        (None, "(no reason)"),
    ],
)
def test_reason_key_keeps_rule_and_tower_drops_numbers(reason: str | None, key: str) -> None:
    # the key is the rule (and tower) text before the first number
    assert reason_key(reason) == key


def test_groups_by_kind_and_key(demo_study: optuna.Study) -> None:
    groups = group_prunes(demo_study.trials)
    summary = [(g.kind, g.key, g.trials) for g in groups]
    # two text-tower collapses share one group; other rules get their own
    assert summary == [
        ("underperforming", "MedianPruner", [5]),
        ("unstable", "text_encoder grad norm", [1, 4]),
        ("unstable", "non-finite loss", [3]),
    ]
    # the example is the first trial's full reason
    assert groups[1].example.endswith("(steps 40-80)")


def test_pruned_without_attrs_is_unknown_kind() -> None:
    study = optuna.create_study()
    study.optimize(lambda t: (_ for _ in ()).throw(optuna.TrialPruned()), n_trials=1)
    (group,) = group_prunes(study.trials)
    # a prune from a plain Optuna pruner still shows up, with kind unknown
    assert (group.kind, group.key, group.example) == ("unknown", "(no reason)", "(no reason recorded)")


def _pruned_study(prunes: list[tuple[str, str]]) -> optuna.Study:
    """One PRUNED trial per (kind, reason), attrs as the pruner stores them."""
    study = optuna.create_study()
    for kind, reason in prunes:
        trial = study.ask()
        trial.set_user_attr("gradsweep.prune.kind", kind)
        trial.set_user_attr("gradsweep.prune.reason", reason)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return study


CATCHUP_1 = (
    "best 1.9 by step 2 - the largest later drop of a finished trial 0.1 > 1.794, the best-quartile "
    "final value of 5 finished trials (lower is better) (CatchUpPruner)"
)
CATCHUP_2 = (
    "best 2.3 by step 4 - the largest later drop of a finished trial 0.05 > 1.71, the best-quartile "
    "final value of 6 finished trials and 1 pruned ones at their best (lower is better) (CatchUpPruner)"
)
CATCHUP_OLD = (
    "best 2.5 by step 1 - the largest later drop of a finished trial 0.2 > 0.75 quantile final 1.794 "
    "of 5 finished trials (CatchUpPruner)"
)


def test_one_rule_is_one_group_named_by_the_rule_with_a_real_example_and_its_trial() -> None:
    study = _pruned_study(
        [
            ("unstable", "text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 40-80)"),
            ("underperforming", CATCHUP_2),
            ("underperforming", CATCHUP_1),
            ("underperforming", CATCHUP_OLD),
        ]
    )
    groups = group_prunes(study.trials)
    catchup = [g for g in groups if g.kind == "underperforming"]
    # the catch-up prunes (with and without pruned trials in the bar, old and new wording) are ONE group
    assert len(catchup) == 1, [g.key for g in catchup]
    (g,) = catchup
    # named by the rule, not by the reason with its numbers masked
    assert (g.rule, g.key, g.count, g.trials) == ("CatchUpPruner", "CatchUpPruner", 3, [1, 2, 3])
    assert "#" not in g.key
    # the example is a real reason, numbers included, and says which trial it came from
    assert (g.example, g.example_trial) == (CATCHUP_2, 1)
    # the health rule is named too, its tower kept in the key
    (h,) = [g for g in groups if g.kind == "unstable"]
    assert (h.rule, h.key, h.example_trial) == ("vanishing", "text_encoder grad norm", 0)


def test_exploding_and_vanishing_on_one_tower_are_two_rules() -> None:
    study = _pruned_study(
        [
            ("unstable", "text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 40-80)"),
            ("unstable", "text_encoder grad norm 2.4e+03 > 1e+03 for 3 checks (steps 20-60)"),
        ]
    )
    # the same text before the first number, but two rules: two groups
    assert sorted(g.rule for g in group_prunes(study.trials)) == ["exploding", "vanishing"]


@pytest.mark.parametrize(
    ("reason", "rule"),
    [
        ("text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 400-500)", "vanishing"),
        ("global grad norm 2.4e+03 > 1e+03 for 3 checks (steps 20-60)", "exploding"),
        ("non-finite loss at step 312 (3 of 25 steps)", "nonfinite"),
        ("non-finite gradients in decoder at step 12 (1 of 25 steps)", "nonfinite"),
        ("GradScaler skipped 25 steps in a row > 20 (at step 300)", "scaler_overflow"),
        ("GradScaler scale 0.5 < 1 (steps 1-20)", "scaler_overflow"),
        ("text_encoder decay-to-grad ratio 3.3 > 2 for 5 checks (steps 1-5)", "decay_dominance"),
        ("loss spike 9.1 at step 40 (z 12 > 8) for 2 checks (steps 30-40)", "loss_spike"),
        ("loss stalled: best 1.2 over 20 checks is not 0.001 below 1.2 (steps 1-20)", "loss_stall"),
        ("value -3.465 at step 1 worse than median -3.321 of 3 trials (MedianPruner)", "MedianPruner"),
        ("value 0.1 at step 3 pruned by HyperbandPruner", "HyperbandPruner"),
        ("interrupted", "interrupted"),
        (None, "(no reason)"),
    ],
)
def test_reason_rule_names_the_rule(reason: str | None, rule: str) -> None:
    assert reason_rule(reason) == rule
