"""The wheel installs one top-level package, ``gradsweep``: nothing generic lands in site-packages.

Built from this checkout, installed into a fresh virtualenv (its dependencies borrowed from the
test's own environment through a path entry, so nothing is downloaded), and run from outside the
checkout, so nothing can be found through the working directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy, so setuptools' build/ folder does not land in the checkout
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "*.egg-info",
            "__pycache__",
            "tests",
            "benchmarks",
            "*.db",
            "gradsweep_runs",
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp / "dist").glob("gradsweep-*.whl")
    env = tmp / "env"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # the dependencies (torch, optuna, ...) from this environment, after the fresh site-packages
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def _run(env: Path, code: str) -> str:
    done = subprocess.run(
        [str(env / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_wheel_installs_only_the_gradsweep_package(fresh_env: Path) -> None:
    code = (
        "import importlib.metadata as m; "
        "print(sorted({f.parts[0] for f in m.distribution('gradsweep').files if f.parts[0] != '..'}))"
    )
    # the wheel's files sit under gradsweep/ and its metadata folder, nothing else
    assert _run(fresh_env, code) == "['gradsweep', 'gradsweep-0.1.0.dist-info']"


def test_generic_names_are_not_provided_and_gradsweep_imports(fresh_env: Path) -> None:
    code = (
        "import importlib.util as u; "
        "print([n for n in ('spaces', 'objectives', 'search') if u.find_spec(n) is not None]); "
        "import gradsweep, gradsweep.spaces, gradsweep.objectives.api, gradsweep.search.cli; "
        "print(gradsweep.spaces.__file__.startswith(gradsweep.__path__[0]))"
    )
    # `import spaces` (Hugging Face's package name) and its siblings are not gradsweep's to provide ...
    missing, inside = _run(fresh_env, code).splitlines()
    assert missing == "[]"
    # ... and the layers import from inside the installed gradsweep package
    assert inside == "True"


def test_installed_presets_and_console_script_work(fresh_env: Path) -> None:
    code = "from gradsweep.spaces import load_space; print(len(load_space('contrastive').towers))"
    # the preset YAMLs ship as package data
    assert int(_run(fresh_env, code)) >= 2
    done = subprocess.run(
        [str(fresh_env / "bin" / "gradsweep"), "--version"],
        capture_output=True,
        text=True,
        cwd=fresh_env,
        check=False,
    )
    # the console script points at gradsweep.search.cli
    assert done.returncode == 0 and done.stdout.startswith("gradsweep "), done.stderr


def test_a_wheel_install_used_from_the_checkout_root_imports_whole(fresh_env: Path) -> None:
    done = subprocess.run(
        [
            str(fresh_env / "bin" / "python"),
            "-c",
            "import gradsweep.search.cli, gradsweep.spaces; print('ok')",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,  # the checkout's gradsweep/ folder comes first on sys.path and shadows the wheel's
        check=False,
    )
    # the layers beside the folder are found, rather than "No module named 'gradsweep.search'"
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
