from __future__ import annotations

import optuna
import pytest

from gradsweep.search.views.reasons import group_prunes, reason_key


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
        (
            "value -3.465 at step 1 worse than median -3.321 of 3 trials (MedianPruner)",
            "value # at step # worse than median # of # trials (MedianPruner)",
        ),
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
        ("underperforming", "value # at step # worse than median # of # trials (MedianPruner)", [5]),
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
