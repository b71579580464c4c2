from __future__ import annotations

import optuna
import pytest

from tests.search.views.study_factory import build_study

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    """The factory's mixed study (complete, pruned, failed, running), loaded."""
    url = build_study(tmp_path_factory.mktemp("views") / "demo.db")
    return optuna.load_study(study_name="demo", storage=url)
