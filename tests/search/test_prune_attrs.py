"""The prune user attrs and their one writer (Contract 4)."""

from __future__ import annotations

import optuna

from gradsweep.objectives.pruned import PruneKind
from gradsweep.search.prune_attrs import PruneRecord, write_prune_attrs


def test_record_attrs_are_plain_json() -> None:
    attrs = PruneRecord(PruneKind.UNDERPERFORMING, "worse than the median", 7.0).attrs()  # type: ignore[arg-type]
    # the kind is stored as its value, the step as an int
    assert attrs == {
        "gradsweep.prune.kind": "underperforming",
        "gradsweep.prune.reason": "worse than the median",
        "gradsweep.prune.step": 7,
    }
    # exactly: a plain str, not the enum
    assert type(attrs["gradsweep.prune.kind"]) is str and type(attrs["gradsweep.prune.step"]) is int


def test_write_stores_the_three_attrs_on_the_trial(tmp_path) -> None:  # type: ignore[no-untyped-def]
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    trial = study.ask()
    write_prune_attrs(study._storage, trial._trial_id, PruneRecord("unstable", "loss is nan", 12))
    # a stored trial reads back the record's attrs
    assert study.trials[0].user_attrs == PruneRecord("unstable", "loss is nan", 12).attrs()
