"""Issue 18, items 1-4, 13, 14: what an outside probe found about passwords, workers' environment and trust.

- 1: a password given as a query parameter (``?password=``, ``sslpassword``) was printed and
  exported in clear; now every credential form is masked wherever a store URL is shown.
- 2: an unencoded ``@`` in the password is refused with one line (no host lookup of its tail).
- 3: ``GRADSWEEP_STORAGE`` reached every Ray process's environment; now no Ray process sees it.
- 4: objective code named in a space file or a stored study ran without notice; now one
  ``note:`` line names the file before it is imported.
- 13: ``--storage sqlite://`` (in memory) ran a whole sweep and lost it; now refused.
- 14: a read-only store could not be read; now ``status``/``best``/``trials``/``export`` read it.

Refusals run in-process (``run_cli``); one real sweep (local Ray, PostgreSQL) covers 1 and 3.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from gradsweep.errors import UserError
from gradsweep.search.engine.local import optimize_local
from gradsweep.search.engine.storage import mask_url, open_storage
from gradsweep.search.engine.summary import SweepSummary
from gradsweep.spaces.space import load_space
from tests._cli import run_cli
from tests._read_only import read_only_view
from tests.search.engine._support import free_port, space_data

SECRET = "S3cr3t-q7Zp-do-not-leak"
SSL_SECRET = "SslS3cr3t-k2Vx-do-not-leak"

# Objectives for these tests: ``probe`` records what a Ray worker (and every Ray process of its
# cluster) holds in its environment; ``constant`` is the cheapest objective there is.
OBJECTIVES = f"""
import json
import os
from pathlib import Path

MARKERS = (b"GRADSWEEP_STORAGE=", {SECRET.encode()!r}, {SSL_SECRET.encode()!r})


def _environ(pid):
    try:
        return Path(f"/proc/{{pid}}/environ").read_bytes()
    except OSError:
        return None


def probe(config, ctx):
    import psutil

    me = psutil.Process()
    raylet = me.parent()
    driver = raylet.parent()
    seen = {{}}
    for proc in [me, raylet, *driver.children(recursive=True)]:  # every Ray process but the driver
        data = _environ(proc.pid)
        if data is not None:
            seen[f"{{proc.pid}} {{proc.name()}}"] = [m.decode() for m in MARKERS if m in data]
    record = {{
        "in_os_environ": sorted(k for k in os.environ if k == "GRADSWEEP_STORAGE"),
        "raylet": raylet.name(),
        "processes": seen,
    }}
    out = Path(__file__).parent / "env-probe"
    out.mkdir(exist_ok=True)
    (out / f"{{os.getpid()}}-{{config.params['towers.all.lr']:.6g}}.json").write_text(json.dumps(record))
    ctx.report(1.0, 0)
    return 1.0


def constant(config, ctx):
    ctx.report(1.0, 0)
    return 1.0
"""


@pytest.fixture
def objs(tmp_path: Path) -> Path:
    path = tmp_path / "objs" / "probe_objs.py"
    path.parent.mkdir()
    path.write_text(OBJECTIVES)
    return path


def _space(tmp_path: Path, objective: str, name: str = "probe") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space_data(objective, name=name)))
    return path


# ---------------------------------------------------------------------------------------------
# Item 1: every credential form is masked.

MASKED = [
    # (text, what must be gone, what must stay)
    ("postgresql+psycopg://u:pw-A@h:5432/db", "pw-A", "postgresql+psycopg://u:***@h:5432/db"),
    ("postgresql+psycopg://u@h/db?password=pw-B", "pw-B", "postgresql+psycopg://u@h/db?password=***"),
    (
        "postgresql+psycopg://u@h/db?sslmode=prefer&sslpassword=pw-C&application_name=x",
        "pw-C",
        "postgresql+psycopg://u@h/db?sslmode=prefer&sslpassword=***&application_name=x",
    ),
    ("postgresql+psycopg://u@h/db?PASSWORD=pw-D", "pw-D", "?PASSWORD=***"),
    ("postgresql+psycopg://u@h/db?pass%77ord=pw-E", "pw-E", "?pass%77ord=***"),  # SQLAlchemy decodes the key
    ("mysql+pymysql://u@h/db?passwd=pw-F", "pw-F", "?passwd=***"),
    ("postgresql+psycopg:///db?user=u&password=pw-G&host=127.0.0.1", "pw-G", "&host=127.0.0.1"),
    # libpq's key=value form inside a driver's message, quoted or not
    ("connection failed: host=h password=pw-H port=5432", "pw-H", "password=*** port=5432"),
    ("invalid dsn: password='pw I' user=u", "pw I", "password=*** user=u"),
    # a user name with '@' (SQLAlchemy allows it) must not shield the password
    ("postgresql+psycopg://me@corp.com:pw-J@h/db", "pw-J", "postgresql+psycopg://me@corp.com:***@h/db"),
    # an unencoded '@' or '/' inside the password
    ("postgresql+psycopg://u:p@ss-K@h/db", "ss-K", "postgresql+psycopg://u:***@h/db"),
    ("postgresql+psycopg://u:p/ss-L@h/db", "ss-L", "postgresql+psycopg://u:***@h/db"),
    # a message with two URLs masks both
    ("from postgresql://a:pw-M@h/x to postgresql://b@h/y?password=pw-N", "pw-", "postgresql://a:***@h/x"),
]


@pytest.mark.parametrize(("text", "secret", "kept"), MASKED, ids=[m[1] for m in MASKED])
def test_mask_url_masks_every_credential_form(text: str, secret: str, kept: str) -> None:
    masked = mask_url(text)
    # the credential is gone, the rest of the text is still readable
    assert secret not in masked and kept in masked, masked


def test_mask_url_keeps_urls_without_credentials() -> None:
    for text in (
        "sqlite:///gradsweep.db",
        "postgresql+psycopg://u@h:5432/db?sslmode=require&connect_timeout=5",
        "study 'x' in sqlite:////tmp/a b.db",
    ):
        # nothing to hide: unchanged
        assert mask_url(text) == text


def test_resume_hint_of_a_query_password_points_at_the_environment() -> None:
    summary = SweepSummary(
        study="s", storage=mask_url(f"postgresql+psycopg://u@h/db?password={SECRET}"), target=1,
        finished=0, complete=0, pruned={}, failed=0, interrupted_trials=1, running=0, best_number=None,
        best_value=None, best_params=None, interrupted=True, aborted=None, elapsed_s=1.0, results_dir="r",
    )  # fmt: skip
    # the hint neither shows the password nor a masked URL that would not work: it names $GRADSWEEP_STORAGE
    assert SECRET not in summary.resume_command and '"$GRADSWEEP_STORAGE"' in summary.resume_command
    # and the one-line summary shows the masked store
    assert SECRET not in summary.line() and "password=***" in summary.line()


# ---------------------------------------------------------------------------------------------
# Item 2: an unencoded '@' in the password.


def test_unencoded_at_in_password_is_refused_with_one_line(tmp_path: Path) -> None:
    url = "postgresql+psycopg://u:p@ssw0rd-Tail@127.0.0.1:5432/db"
    with pytest.raises(UserError) as info:
        open_storage(url)
    message = str(info.value)
    # one line that says to percent-encode, without any part of the password (or its tail as a host)
    assert "%40" in message and "ssw0rd-Tail" not in message and "\n" not in message, message
    result = run_cli(["status", "--storage", url], cwd=tmp_path)
    # the read commands refuse it the same way: exit 1, one error line, no traceback
    assert result.code == 1 and len(result.error_lines) == 1 and not result.traceback, result
    assert "%40" in result.stderr and "ssw0rd-Tail" not in result.stderr + result.stdout


# ---------------------------------------------------------------------------------------------
# Item 13: an in-memory SQLite store.


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file::memory:?uri=true",
        "sqlite:///file:x?mode=memory&uri=true",
        "sqlite+pysqlite:///:memory:",
    ],
)
def test_in_memory_sqlite_store_is_refused(url: str) -> None:
    with pytest.raises(UserError) as info:
        open_storage(url)
    message = str(info.value)
    # one line naming the problem and the way out (a file URL)
    assert "in-memory" in message and "sqlite:///gradsweep.db" in message and "\n" not in message, message


def test_launch_into_memory_is_refused_before_any_trial(tmp_path: Path, objs: Path) -> None:
    result = run_cli(
        ["launch", str(_space(tmp_path, f"{objs}:constant")), "-n", "1", "--storage", "sqlite://", "--quiet"],
        cwd=tmp_path,
    )
    # exit 1 with one line (before the objective's code is imported); no Ray results directory
    # was made, so no trial started
    assert result.code == 1 and len(result.stderr.splitlines()) == 1 and not result.traceback, result
    assert "in-memory" in result.error_lines[0] and not (tmp_path / "gradsweep_runs").exists()


# ---------------------------------------------------------------------------------------------
# Item 4: objective code from a file is announced before it runs.


def _note(path: Path, fn: str) -> str:
    return f"note: running objective code from {path.resolve()} (function {fn})"


def test_objective_code_is_announced_on_launch_resume_and_try(tmp_path: Path, objs: Path) -> None:
    # a relative path in the space file: the note shows it absolute
    space = _space(tmp_path, "objs/probe_objs.py:constant")
    store = f"sqlite:///{tmp_path / 'notes.db'}"
    # launch: the note comes before anything else (here the refusal of a store in a missing directory)
    launched = run_cli(
        ["launch", str(space), "-n", "1", "--storage", f"sqlite:///{tmp_path / 'no' / 'x.db'}", "-q"],
        cwd=tmp_path,
    )
    assert launched.code == 1 and launched.stderr.splitlines()[0] == _note(objs, "constant"), launched
    # resume of a stored study (its target already reached, so no Ray is needed)
    optimize_local(load_space(str(space)), 1, store, objective=f"{objs}:constant", device="cpu")
    resumed = run_cli(["resume", "--study", "probe", "--storage", store, "-q"], cwd=tmp_path)
    assert resumed.code == 0 and _note(objs, "constant") in resumed.stderr.splitlines(), resumed
    # try with an exported config, whose objective names the file
    exported = run_cli(["export", "--storage", store, "--out", str(tmp_path / "best.yaml")], cwd=tmp_path)
    assert exported.code == 0, exported
    tried = run_cli(["try", "--config", str(tmp_path / "best.yaml"), "--json"], cwd=tmp_path)
    assert tried.code == 0 and _note(objs, "constant") in tried.stderr.splitlines(), tried
    # the note goes to stderr: --json output on stdout stays parseable
    assert json.loads(tried.stdout)["value"] == 1.0


def test_objective_origin_names_module_files_and_not_builtins(tmp_path: Path) -> None:
    from gradsweep.objectives.origin import objective_origin

    # a built-in is gradsweep's own code: nothing to announce
    assert objective_origin("contrastive") is None
    # a module objective names the module and the file it would be imported from
    origin = objective_origin("tests.reliability._faulty:sleepy")
    assert origin is not None and str(Path(__file__).parent / "_faulty.py") in origin and "sleepy" in origin
    # a file objective names the absolute file
    assert objective_origin("x/y.py:fn") == f"{(Path.cwd() / 'x' / 'y.py').resolve()} (function fn)"


# ---------------------------------------------------------------------------------------------
# Item 14: read-only stores are readable.


@pytest.mark.parametrize("writer", ["closed", "open"])
def test_read_only_store_is_readable_by_the_read_commands(tmp_path: Path, objs: Path, writer: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    space = load_space(str(_space(tmp_path, f"{objs}:constant")))
    optimize_local(space, 2, f"sqlite:///{data / 's.db'}", device="cpu")
    gc.collect()  # the sweep's connections close: SQLite folds its WAL into the file and removes it
    if writer == "open":  # a writer still connected: the store comes with its -wal and -shm files
        holder = sqlite3.connect(data / "s.db")
        holder.execute("SELECT count(*) FROM trials").fetchall()
    files = sorted(p.name for p in data.iterdir())
    assert files == (["s.db"] if writer == "closed" else ["s.db", "s.db-shm", "s.db-wal"])
    with read_only_view(data, tmp_path / "ro") as ro:
        url = f"sqlite:///{ro / 's.db'}"
        for args in (["status"], ["best"], ["trials"], ["status", "--json"]):
            result = run_cli([*args, "--storage", url], cwd=tmp_path)
            # each read command reads the study: exit 0, no error
            assert result.code == 0 and not result.error_lines and not result.traceback, (args, result)
        # the trials are all there
        listed = run_cli(["trials", "--storage", url, "--json"], cwd=tmp_path)
        assert len(json.loads(listed.stdout)) == 2, listed
        out = tmp_path / "best.yaml"
        exported = run_cli(["export", "--storage", url, "--out", str(out)], cwd=tmp_path)
        # export reads the read-only store and writes its file elsewhere
        assert exported.code == 0 and yaml.safe_load(out.read_text())["provenance"]["study"] == "probe", (
            exported
        )
        # writing commands still refuse it with one line before any trial
        resumed = run_cli(["resume", "--study", "probe", "--storage", url, "-n", "3", "-q"], cwd=tmp_path)
        assert resumed.code == 1 and len(resumed.error_lines) == 1 and "read-only" in resumed.stderr, resumed
        space_file = _space(tmp_path, f"{objs}:constant", name="other")
        launched = run_cli(["launch", str(space_file), "-n", "1", "--storage", url, "-q"], cwd=tmp_path)
        assert launched.code == 1 and len(launched.error_lines) == 1 and "read-only" in launched.stderr, (
            launched
        )
        # and nothing was written beside the store
        assert sorted(p.name for p in ro.iterdir()) == files


# ---------------------------------------------------------------------------------------------
# Items 1 and 3 end to end: a real sweep on a local Ray into PostgreSQL, the URL in the environment.


def _grep_tree(root: Path, needles: tuple[bytes, ...]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError):
                data = path.read_bytes()
                if any(n in data for n in needles):
                    hits.append(str(path))
    return hits


def _dashboard_line(url: str, cwd: Path) -> str:
    """What ``gradsweep dashboard`` prints when it starts (served in this process, stopped by SIGINT)."""
    port = free_port()
    stop = threading.Event()

    def stopper() -> None:
        while not stop.is_set():
            try:  # an answer means serve_forever runs, so its SIGINT handler is in place
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
            except OSError:
                time.sleep(0.1)
                continue
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does
            return

    thread = threading.Thread(target=stopper, daemon=True)
    thread.start()
    try:
        result = run_cli(["dashboard", "--storage", url, "--port", str(port)], cwd=cwd)
    finally:
        stop.set()  # the command returned without serving (an error): nothing to stop
        thread.join(timeout=10)
    assert result.code == 0 and "optuna-dashboard for" in result.stdout, result
    return result.stdout + result.stderr


@pytest.mark.ray
@pytest.mark.postgres
def test_query_password_leaks_nowhere_and_no_ray_process_sees_the_store_url(
    fresh_pg_url: str, objs: Path, tmp_path: Path
) -> None:
    url = f"{fresh_pg_url}?password={SECRET}&sslpassword={SSL_SECRET}"
    needles = (SECRET.encode(), SSL_SECRET.encode())
    ray_tmp = Path(tempfile.mkdtemp(prefix="gsray-"))  # short: Ray's socket paths must fit in 107 bytes
    space = _space(tmp_path, f"{objs}:probe")
    try:
        launched = run_cli(
            ["launch", str(space), "-n", "2", "--concurrency", "2", "--seed", "0", "--pruner", "none",
             "--runs-dir", str(tmp_path / "runs")],
            cwd=tmp_path,
            env={"GRADSWEEP_STORAGE": url, "RAY_TMPDIR": str(ray_tmp)},
        )  # fmt: skip
        # the sweep ran both trials into the store the environment named
        assert launched.code == 0 and not launched.traceback, launched
        trials = optuna.load_study(study_name="probe", storage=url).get_trials()
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 2

        records = [json.loads(p.read_text()) for p in sorted((objs.parent / "env-probe").iterdir())]
        assert len(records) == 2
        for record in records:
            # no trial's objective finds the store URL in its environment
            assert record["in_os_environ"] == [], record
            # nor does any Ray process's initial environment (raylet, GCS, workers, agents) hold it
            names = {key.split(" ", 1)[1] for key in record["processes"]}
            assert {"raylet", "gcs_server", "ray::ImplicitFunc.train"} <= names, record
            assert {name: m for name, m in record["processes"].items() if m} == {}, record

        out = tmp_path / "best.yaml"
        exported = run_cli(["export", "--storage", url, "--study", "probe", "--out", str(out)], cwd=tmp_path)
        assert exported.code == 0, exported
        exported_text = out.read_text()
        # the export records where it came from, masked (in the config's provenance and the file's)
        assert exported_text.count("?password=***&sslpassword=***") == 2, exported_text
        refused = run_cli(["status", "--storage", url, "--study", "nope"], cwd=tmp_path)
        # an error that names the store names it masked
        assert refused.code == 1 and "password=***" in refused.stderr, refused
        dashboard = _dashboard_line(url, tmp_path)

        study = optuna.load_study(study_name="probe", storage=url)
        attrs = json.dumps(
            [study.user_attrs, study._storage.get_study_system_attrs(study._study_id)]
            + [[t.user_attrs, t.system_attrs] for t in study.get_trials()],
            default=str,
        )
        texts = {
            "launch output": launched.stdout + launched.stderr,
            "export output": exported.stdout + exported.stderr,
            "export file": exported_text,
            "error": refused.stdout + refused.stderr,
            "dashboard output": dashboard,
            "study and trial attrs": attrs,
        }
        leaks = [name for name, text in texts.items() if any(n.decode() in text for n in needles)]
        leaks += _grep_tree(tmp_path / "runs", needles)  # results, Ray's experiment state
        leaks += _grep_tree(ray_tmp, needles)  # Ray's session logs
        # neither password is anywhere
        assert leaks == []
        # (the outputs did name the store: masked)
        assert "password=***" in launched.stdout and "password=***" in dashboard
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
