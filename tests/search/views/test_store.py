from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from gradsweep.errors import UserError
from gradsweep.search.views.store import load_study, pick_study_name


def test_pick_study_name() -> None:
    # the only study is picked when --study is left out
    assert pick_study_name(["a"], None, "sqlite:///x.db") == "a"
    # several studies and no --study: the message lists them
    with pytest.raises(
        UserError, match=re.escape("2 studies in sqlite:///x.db; pick one with --study: a, b")
    ):
        pick_study_name(["a", "b"], None, "sqlite:///x.db")
    # an unknown study names the ones there
    with pytest.raises(UserError, match=r"no study .c. in .*studies there: a, b"):
        pick_study_name(["a", "b"], "c", "sqlite:///x.db")
    # an empty store says so
    with pytest.raises(UserError, match="no studies in"):
        pick_study_name([], None, "sqlite:///x.db")
    # the password of a URL never shows in a message
    with pytest.raises(UserError) as info:
        pick_study_name([], None, "postgresql+psycopg://me:hunter2@db/x")
    assert "hunter2" not in str(info.value)


def test_missing_store_is_refused_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    # a missing SQLite file is a user error
    with pytest.raises(UserError, match="no study store at"):
        load_study(f"sqlite:///{path}", None)
    # and reading never creates it
    assert not path.exists()


def test_load_only_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="only", storage=url)
    # with one study, no name is needed
    assert load_study(url, None).study_name == "only"
