"""Open a study store read-side and pick the study the user means.

This is the only module of :mod:`gradsweep.search.views` that touches I/O; every other view is a
pure function of the loaded trials. Mistakes (missing SQLite file, unknown study, several
studies and no ``--study``) raise :class:`gradsweep.errors.UserError` with one line.
"""

from __future__ import annotations

import optuna

from gradsweep.errors import UserError
from gradsweep.search.engine.storage import mask_url  # re-exported
from gradsweep.search.engine.storage import open_storage as _engine_open_storage


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open an existing study store to read it, without creating one.

    A SQLite store this process cannot write (a read-only file system, directory or file) is
    opened read-only: reading needs no write access.

    Args:
        url: SQLAlchemy URL of the store (``sqlite:///gradsweep.db``, ``postgresql+psycopg://...``).

    Returns:
        An Optuna storage.

    Raises:
        UserError: the SQLite file does not exist, or the store cannot be opened (one line,
            password masked).
    """
    return _engine_open_storage(url, create=False, read_only=True)


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of every study in ``storage``, sorted."""
    return sorted(s.study_name for s in storage.get_all_studies())


def pick_study_name(names: list[str], wanted: str | None, url: str) -> str:
    """The study name to use: ``wanted``, or the only study when ``wanted`` is None.

    Args:
        names: the studies in the store.
        wanted: the ``--study`` value, or None.
        url: the storage URL (for the message; masked).

    Returns:
        The chosen study name.

    Raises:
        UserError: unknown study, empty store, or several studies and no ``--study``.
    """
    where = mask_url(url)
    if wanted is not None:
        if wanted not in names:
            known = ", ".join(names) if names else "none"
            raise UserError(f"no study {wanted!r} in {where}; studies there: {known}")
        return wanted
    if not names:
        raise UserError(f"no studies in {where}")
    if len(names) > 1:
        raise UserError(f"{len(names)} studies in {where}; pick one with --study: {', '.join(names)}")
    return names[0]


def load_study(url: str, study: str | None) -> optuna.Study:
    """Open the store at ``url`` and load the study named ``study`` (or its only study).

    Args:
        url: storage URL.
        study: study name, or None when the store holds exactly one study.

    Returns:
        The loaded :class:`optuna.Study`.

    Raises:
        UserError: see :func:`open_storage` and :func:`pick_study_name`.
    """
    storage = open_storage(url)
    name = pick_study_name(study_names(storage), study, url)
    return optuna.load_study(study_name=name, storage=storage)
