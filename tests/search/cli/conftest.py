from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna
import pytest

from tests._cli import run_cli
from tests.search.views.study_factory import build_freeze_thaw, build_pruned_only, build_study

optuna.logging.set_verbosity(optuna.logging.ERROR)


@dataclass
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture
def gradsweep(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Ran]:
    """Run ``gradsweep ARGS`` in-process through the real entry point (exit codes and error lines).

    The run is :func:`tests._cli.run_cli`'s; an exception the console script would have shown as
    a traceback fails the test here, with that traceback.
    """

    from gradsweep.search.cli._app import console, console_err

    for con in (console, console_err):
        monkeypatch.setattr(con, "width", 200)  # wide tables: no wrapped reasons

    def run(*args: str) -> Ran:
        result = run_cli([str(a) for a in args])
        if result.traceback:
            pytest.fail(f"gradsweep {' '.join(map(str, args))} escaped with a traceback:\n{result.traceback}")
        return Ran(result.code, result.stdout, result.stderr)

    return run


@pytest.fixture(scope="session")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A mixed study (see tests/search/views/study_factory.py); treat it as read-only."""
    return build_study(tmp_path_factory.mktemp("cli") / "demo.db")


@pytest.fixture(scope="session")
def pruned_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A study with no COMPLETE trial."""
    return build_pruned_only(tmp_path_factory.mktemp("cli") / "pruned.db")


@pytest.fixture(scope="session")
def two_studies_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with two studies, ``alpha`` and ``beta``."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'two.db'}"
    for name in ("alpha", "beta"):
        optuna.create_study(study_name=name, storage=url).optimize(lambda t: 1.0, n_trials=1)
    return url


@pytest.fixture(scope="session")
def freeze_thaw_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ``--pruner freeze-thaw`` study with paused and thawed trials (``build_freeze_thaw``)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'ft.db'}"
    build_freeze_thaw(url)
    return url
