from __future__ import annotations

from datetime import datetime, timedelta

import optuna
import pytest

from gradsweep.search.views.trials import (
    SortKey,
    best_trials,
    first_line,
    format_knobs,
    trial_duration,
    trial_row,
    trial_rows,
)


def test_rows_sorted_by_value_best_first_then_valueless(demo_study: optuna.Study) -> None:
    rows = trial_rows(demo_study.trials, sort="value", direction="maximize")
    # complete trials come first, best value first; trials without a value follow by number
    assert [r.number for r in rows] == [2, 7, 6, 0, 1, 3, 4, 5, 8, 9]


def test_rows_sorted_by_value_minimize(demo_study: optuna.Study) -> None:
    rows = trial_rows(demo_study.trials, sort=SortKey.VALUE, direction="minimize")
    # minimizing puts the smallest value first
    assert [r.number for r in rows[:4]] == [0, 6, 7, 2]


def test_rows_sorted_by_duration_longest_first(demo_study: optuna.Study) -> None:
    now = datetime.now() + timedelta(hours=1)
    rows = trial_rows(demo_study.trials, sort="duration", now=now)
    # the running trial measured against "now" (an hour later) is the longest
    assert rows[0].number == 9 and rows[0].duration_s >= 3600


def test_row_reasons_per_state(demo_study: optuna.Study) -> None:
    rows = {r.number: r for r in trial_rows(demo_study.trials)}
    # a pruned row carries its kind and reason
    assert (rows[1].kind, rows[1].reason) == (
        "unstable",
        "text_encoder grad norm 3.1e-07 < 1e-06 for 5 checks (steps 40-80)",
    )
    # a failed row carries only the first line of the traceback
    assert rows[8].reason == "RuntimeError: shapes (4, 8) and (16,) mismatch"
    # a running row carries its latest health verdict and first reason
    assert rows[9].reason == "warning at step 40: text_encoder decay/grad ratio 2.5 > 2 for 3 checks"
    # complete rows have a value and no reason; the baseline name comes along
    assert (rows[0].value, rows[0].reason, rows[0].baseline) == (0.41, None, "after")


def test_best_is_never_pruned_even_with_better_intermediate_values() -> None:
    study = optuna.create_study(direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        trial.report(100.0 if trial.number == 0 else 0.5, step=1)
        if trial.number == 0:
            raise optuna.TrialPruned()
        return 0.5

    study.optimize(objective, n_trials=2)
    # the pruned trial with intermediate value 100 is not "best"
    assert [t.number for t in best_trials(study.trials, "maximize", top=5)] == [1]


def test_best_empty_when_nothing_complete() -> None:
    study = optuna.create_study()
    study.optimize(lambda t: (_ for _ in ()).throw(optuna.TrialPruned()), n_trials=1)
    # no complete trial gives no best trial
    assert best_trials(study.trials, "minimize") == []


def test_best_top_k_and_validation(demo_study: optuna.Study) -> None:
    # top 2 of a maximizing study are the two highest values
    assert [t.number for t in best_trials(demo_study.trials, "maximize", top=2)] == [2, 7]
    # top must be positive
    with pytest.raises(ValueError, match="top must be at least 1"):
        best_trials(demo_study.trials, "maximize", top=0)
    # the direction is checked eagerly
    with pytest.raises(ValueError, match="direction must be"):
        best_trials(demo_study.trials, "up")


def test_bad_sort_key_names_the_choices(demo_study: optuna.Study) -> None:
    # an unknown sort key lists the allowed ones
    with pytest.raises(ValueError, match="value, number, duration"):
        trial_rows(demo_study.trials, sort="speed")


def test_helpers() -> None:
    # first_line skips blank lines and strips
    assert first_line("\n  boom  \nmore") == "boom"
    # None stays None
    assert first_line(None) is None
    # knobs are sorted, floats shortened, extras counted
    assert format_knobs({"b": 0.000123456, "a": 1, "c": "x"}, limit=2) == "a=1 b=0.0001235 +1 more"


def test_duration_of_unstarted_trial_is_none() -> None:
    study = optuna.create_study()
    study.enqueue_trial({})
    waiting = study.get_trials()[0]
    # a WAITING trial never started, so it has no duration
    assert trial_duration(waiting) is None
    # and its row says so
    assert trial_row(waiting).state == "WAITING"


def test_rows_of_paused_and_thawed_trials() -> None:
    from tests.search.views.study_factory import build_freeze_thaw

    rows = {r.number: r for r in trial_rows(build_freeze_thaw().trials)}
    # a thawed paused trial names its continuation; a thaw names the paused trial it continues
    assert (rows[1].kind, rows[1].thaw_of, rows[1].thawed_as) == ("paused", None, 4)
    assert (rows[4].thaw_of, rows[4].thawed_as) == (1, 5)
    assert (rows[5].thaw_of, rows[5].thawed_as) == (4, None)
    # the table shows a paused trial as PAUSED (the stored state stays PRUNED), with its thaw
    assert (rows[1].state, rows[1].shown_state, rows[1].thaw_note) == ("PRUNED", "PAUSED", "thawed as #4")
    assert rows[4].thaw_note == "thaw of #1, thawed as #5"
    assert (rows[2].shown_state, rows[2].thaw_note) == ("PAUSED", "not thawed")
    # an unstable prune, a complete config and a thaw that completed read as before
    assert (rows[3].shown_state, rows[3].thaw_note) == ("PRUNED", None)
    assert (rows[0].shown_state, rows[5].shown_state) == ("COMPLETE", "COMPLETE")
    assert rows[5].thaw_note == "thaw of #4"
    # JSON rows carry both fields
    assert {"thaw_of", "thawed_as"} <= set(rows[0].to_dict())


def test_sort_and_best_with_thaws() -> None:
    from tests.search.views.study_factory import build_freeze_thaw

    trials = build_freeze_thaw().trials
    # the thaw that completed holds its config's value: it sorts first; paused trials have none
    assert [r.number for r in trial_rows(trials, sort="value")] == [5, 0, 1, 2, 3, 4, 6]
    # and it is the best trial, paused ones never are
    assert [t.number for t in best_trials(trials, "maximize", top=3)] == [5, 0]
