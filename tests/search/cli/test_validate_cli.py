"""`gradsweep validate`, `--help` and `--version` through the installed console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.spaces.test_space_validation import BASE

GRADSWEEP = str(Path(sys.executable).parent / "gradsweep")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GRADSWEEP, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_version_and_help() -> None:
    version = run("--version")
    # --version prints the distribution version and exits 0
    assert version.returncode == 0 and version.stdout.startswith("gradsweep ")
    helped = run("--help")
    # --help lists the validate command
    assert helped.returncode == 0 and "validate" in helped.stdout


def test_validate_ok_prints_summary(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(dict(BASE, objective="my_pkg.train:objective")))
    result = run("validate", str(path))
    # a valid space prints ok and a summary row per knob
    assert result.returncode == 0, result.stderr
    assert f"ok {path}" in result.stdout and "towers.text.lr_ratio" in result.stdout


def test_validate_errors_one_line_each_no_traceback(tmp_path: Path) -> None:
    bad = dict(BASE, towers=[dict(BASE["towers"][0], lr={"type": "float", "low": 1.0, "high": 0.1})])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = run("validate", str(path))
    # a user mistake exits 1 with the field's YAML path and no traceback
    assert result.returncode == 1
    assert "towers[0].lr: low (1) must be < high (0.1)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_validate_checks_patterns_against_the_builtin_model(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(BASE))  # towers video.* / text.* do not fit the contrastive model
    result = run("validate", str(path))
    # the parameters no tower claims are named, one line, exit 1
    assert result.returncode == 1 and "trainable parameter(s) match no tower" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_validate_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    missing = run("validate", str(tmp_path / "nope.yaml"))
    # a missing file is named, and the presets are listed as the alternative
    assert missing.returncode == 1 and "no such file" in missing.stderr and "presets:" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("towers: [\n")
    result = run("validate", str(broken))
    # malformed YAML gives the line and column
    assert result.returncode == 1 and "not valid YAML: line" in result.stderr


def test_usage_error_exits_2() -> None:
    result = run("validate")
    # a missing argument is a usage error (exit 2), not a user error
    assert result.returncode == 2


def test_validate_refuses_an_objective_file_that_is_not_there(tmp_path: Path) -> None:
    (tmp_path / "spaces").mkdir()
    path = tmp_path / "spaces" / "space.yaml"
    path.write_text(yaml.safe_dump(dict(BASE, objective="loop.py:objective")))
    result = run("validate", str(path), cwd=tmp_path)
    # not "ok": one line naming the file and where a relative path is read from (not the space's folder)
    assert result.returncode == 1 and "ok " not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert (
        len(errors) == 1
        and f"objective file not found: loop.py (a relative path is read from the current directory, {tmp_path})"
        in errors[0]
    )
    (tmp_path / "loop.py").write_text("raise SystemExit('imported')\n")
    result = run("validate", str(path), cwd=tmp_path)
    # once the file is there it validates, and validate never imports (runs) it
    assert result.returncode == 0 and "imported" not in result.stdout + result.stderr
