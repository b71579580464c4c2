"""Several sweeps opening one new PostgreSQL database at the same instant (the first half of fault 8).

Optuna creates its tables on first open; two processes doing that at once race, and the loser
used to fail with ``duplicate key value violates unique constraint "pg_type_typname_nsp_index"``.
``open_storage`` now retries that, so every process gets the store and the one study.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import optuna
import pytest

from tests.search.engine._support import subprocess_env

pytestmark = [pytest.mark.postgres]

OPENER = textwrap.dedent(
    """
    import sys, time
    from gradsweep.search.engine.algorithms import make_base_pruner, make_sampler
    from gradsweep.search.engine.storage import open_storage
    from gradsweep.search.engine.study import create_or_load, study_attrs
    from gradsweep.spaces.space import load_space

    url, start_at = sys.argv[1], float(sys.argv[2])
    space = load_space("contrastive")
    attrs = study_attrs(space, objective="contrastive", scale="tiny")
    while time.time() < start_at:  # every process opens the store at the same instant
        pass
    storage = open_storage(url)
    create_or_load(storage, "race", attrs, sampler=make_sampler("random", seed=0), pruner=make_base_pruner("none"))
    """
)


def test_concurrent_first_opens_of_a_new_database_all_succeed(fresh_pg_url: str) -> None:
    start_at = time.time() + 8  # after every interpreter has imported torch and optuna
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, fresh_pg_url, str(start_at)],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    # every process opened the store and created or loaded the study: no "duplicate key" loser
    assert [code for code, _ in results] == [0, 0, 0, 0], [
        err.strip().splitlines()[-1:] for _, err in results
    ]
    # there is exactly one study of that name
    assert [s.study_name for s in optuna.get_all_study_summaries(fresh_pg_url)] == ["race"]
