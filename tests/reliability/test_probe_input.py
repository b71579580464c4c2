"""Input that passed ``validate`` and then broke (issue 18, items 9-12 and 15), in-process.

Each row of :data:`ROWS` is a bad input (a space edit, a file, or extra arguments) and the
fragment its one ``error:`` line must hold. Every row runs through ``gradsweep validate`` and
``gradsweep launch`` (those it applies to) via :func:`tests._cli.run_cli`: exit 1, exactly one
``error:`` line, no traceback, nothing new in the working directory, and a launch leaves the
store exactly as it was (no study, no trial: it is refused before any trial starts).
:data:`TRY_ROWS` do the same for ``gradsweep try --config``. The run directory of a study named
like a path (item 10) is checked through ``resume`` (no Ray) and one tiny real sweep.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from gradsweep.search.engine.local import optimize_local
from gradsweep.spaces.space import load_space, parse_space
from gradsweep.spaces.trial_config import MetricConfig, TowerConfig, TrialConfig
from tests._cli import run_cli
from tests.reliability._store_rows import store_rows
from tests.search.engine._support import space_data

Edit = Callable[[dict[str, Any]], None]
INF, NAN = float("inf"), float("nan")
LATIN1 = "name: café\n".encode("latin-1")
BINARY = bytes(range(256)) * 4


def _bomb(levels: int = 7, width: int = 9) -> str:
    """A YAML billion-laughs: ``width ** levels`` strings through aliases, in ``provenance``."""
    lines = ["provenance:", f"  l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _lr(**spec: Any) -> Edit:
    return lambda d: d["towers"][0].update(lr=spec)


def _set(key: str, value: Any) -> Edit:
    return lambda d: d.update({key: value})


def _tie_to_untrained(d: dict[str, Any]) -> None:
    d["towers"] = [
        {"name": "a", "patterns": ["a.*"], "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        {"name": "b", "patterns": ["b.*"], "lr": {"tie": "a", "ratio": 0.5}, "frozen": True},
    ]
    d["stages"] = [{"name": "head", "steps": 10, "train": ["b"]}]


@dataclass(frozen=True)
class Row:
    """One bad input; ``commands`` are those it is run through."""

    id: str
    fragment: str
    edit: Edit | None = None
    space_text: str | bytes | None = None  # replaces the space file
    append: str = ""  # added to the end of the space file
    files: dict[str, str | bytes] = field(default_factory=dict)
    launch_args: tuple[str, ...] = ()
    commands: tuple[str, ...] = ("validate", "launch")


LONG = "x" * 600

ROWS = [
    # item 9a: a step wider than the range pins the knob to `low`
    Row(
        "float-step-wider-than-range",
        "towers[0].lr.step: step 0.5 is larger than the range",
        _lr(type="float", low=0.1, high=0.2, step=0.5),
    ),
    Row(
        "int-step-wider-than-range",
        "batch_size.step: step 64 is larger than the range",
        _set("batch_size", {"type": "int", "low": 16, "high": 32, "step": 64}),
    ),
    # item 9b: choices that collide once stored or written out
    Row(
        "choices-equal-values",
        "batch_size: choices repeat",
        _set("batch_size", {"type": "categorical", "choices": [1, True, 1.0]}),
    ),
    Row(
        "choices-equal-as-text",
        "batch_size: choices repeat",
        _set("batch_size", {"type": "categorical", "choices": [16, "16"]}),
    ),
    # item 9c: a stage that trains no tower fails every trial ("does not require grad")
    Row("stage-trains-no-tower", "stages[0].train: trains no tower", _tie_to_untrained),
    # item 9d: a warmup longer than a restarted schedule's horizon is cut silently
    Row(
        "warmup-beyond-restart-horizon",
        "schedule.warmup_steps: 15 is not shorter than",
        lambda d: d.update(
            schedule={"warmup_steps": 15},
            stages=[{"name": "a", "steps": 20}, {"name": "b", "steps": 10, "schedule": "restart"}],
        ),
    ),
    # item 9e: a metric the built-in objective never reports
    Row(
        "metric-not-reported",
        "metric.name: objective 'contrastive' reports recall_at_1_v2t",
        lambda d: d.update(objective="contrastive", metric={"name": "score"}),
        launch_args=("--study", "metric-probe"),  # not the store's study: refused for the metric alone
    ),
    # issue 19: gradient accumulation for a built-in whose loop steps once per batch (every trial
    # would fail in the objective's first lines)
    Row(
        "accumulation-not-done",
        "accumulation_steps: objective 'contrastive' does not accumulate gradients",
        lambda d: d.update(
            objective="contrastive",
            metric={"name": "recall_at_5_v2t"},
            accumulation_steps={"type": "categorical", "choices": [1, 2]},
        ),
        launch_args=("--study", "accumulation-probe"),
    ),
    # item 9f: non-finite numbers anywhere
    Row("lr-inf", "towers[0].lr: inf is not a finite number", lambda d: d["towers"][0].update(lr=INF)),
    Row(
        "multiplier-inf",
        "stages[0].lr_multipliers.*: inf is not a finite number",
        _set("stages", [{"name": "s", "steps": 10, "lr_multipliers": {"*": INF}}]),
    ),
    Row("clip-inf", "clip.max_norm: inf is not a finite number", _set("clip", {"max_norm": INF})),
    Row("extra-minus-inf", "extras.x: -inf is not a finite number", _set("extras", {"x": -INF})),
    Row(
        "choice-nan",
        "extras.x.choices[1]: nan is not a finite number",
        _set("extras", {"x": {"type": "categorical", "choices": [1.0, NAN]}}),
    ),
    Row(
        "inf-as-text",
        "towers[0].lr: inf is not a finite number",
        lambda d: d["towers"][0].update(lr="Infinity"),
    ),
    # item 9g: an infinite high on a log scale (OverflowError at launch)
    Row(
        "log-high-inf",
        "towers[0].lr.high: inf is not a finite number",
        _lr(type="float", low=1e-4, high=INF, log=True),
    ),
    # item 9h: names the store (PostgreSQL) or the file system cannot hold
    Row("space-name-too-long", "name: at most 200 characters", _set("name", LONG)),
    Row(
        "tower-name-too-long",
        "towers[0].name: at most 200 characters",
        lambda d: d["towers"][0].update(name=LONG),
    ),
    Row(
        "study-name-too-long",
        "--study: at most 200 characters",
        launch_args=("--study", LONG),
        commands=("launch",),
    ),
    # item 11: files that are not UTF-8 text
    Row("space-latin1", "not UTF-8 text (byte 0xe9 at offset 9)", space_text=LATIN1),
    Row("space-binary", "not UTF-8 text", space_text=BINARY),
    Row(
        "baseline-latin1",
        "base.yaml: not UTF-8 text",
        files={"base.yaml": "params: {towers.all.lr: 0.01}\n# café\n".encode("latin-1")},
        launch_args=("--baseline", "{dir}/base.yaml"),
        commands=("launch",),
    ),
    # item 12: alias bombs in every YAML gradsweep reads
    Row("space-alias-bomb", "alias bomb", append=_bomb()),
    Row(
        "baseline-alias-bomb",
        "alias bomb",
        files={"base.yaml": "params: {towers.all.lr: 0.01}\n" + _bomb()},
        launch_args=("--baseline", "{dir}/base.yaml"),
        commands=("launch",),
    ),
    # item 15: NaN is one line, not three with a misleading "towers" one
    Row("lr-nan", "towers[0].lr: nan is not a finite number", lambda d: d["towers"][0].update(lr=NAN)),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one finished study (one trial, run in-process), and the objective file."""
    base = tmp_path_factory.mktemp("probe_input_store")
    objs = base / "objs.py"
    objs.write_text((Path(__file__).parent / "_faulty.py").read_text())
    optimize_local(
        parse_space(space_data(f"{objs}:quick", baselines={})), 1, f"sqlite:///{base / 'store.db'}"
    )
    return base / "store.db"


def _write_row(row: Row, work: Path, objs: Path) -> Path:
    work.mkdir()
    for name, content in row.files.items():
        (work / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    space = work / "space.yaml"
    if row.space_text is not None:
        text = row.space_text
        space.write_bytes(text if isinstance(text, bytes) else text.encode())
    else:
        data = space_data(f"{objs}:quick", baselines={})
        if row.edit is not None:
            row.edit(data)
        space.write_text(yaml.safe_dump(data) + row.append)
    return space


def _params() -> list[Any]:
    return [pytest.param(r, c, id=f"{c}-{r.id}") for r in ROWS for c in r.commands]


@pytest.mark.parametrize(("row", "command"), _params())
def test_bad_input_is_refused_in_one_line(row: Row, command: str, store: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    space = _write_row(row, work, store.parent / "objs.py")
    before_files = sorted(p.name for p in work.iterdir())
    before_store = store_rows(store)
    args = [command, str(space)]
    if command == "launch":
        extra = [a.format(dir=work) for a in row.launch_args]
        args += [*extra, "-n", "1", "--storage", f"sqlite:///{store}", "--runs-dir", str(work / "runs")]
    result = run_cli(args, cwd=work)
    # exit status 1 and no traceback
    assert result.code == 1 and not result.traceback, (result.stderr, result.traceback)
    # exactly one `error:` line, holding the expected fragment (the YAML path or flag and the rule)
    assert len(result.error_lines) == 1 and row.fragment in result.error_lines[0], result.stderr
    # nothing new in the working directory (no store, no run directory)
    assert sorted(p.name for p in work.iterdir()) == before_files
    # the store holds exactly what it held (no study, no trial left behind)
    assert store_rows(store) == before_store


def _export(tmp_path: Path, provenance: str = "", accumulation_steps: int = 1) -> Path:
    """A finetune config as `gradsweep export` writes one, or with ``provenance`` as its YAML text."""
    config = TrialConfig(
        objective="finetune",
        accumulation_steps=accumulation_steps,
        metric=MetricConfig(name="accuracy"),
        towers=(TowerConfig(name="all", patterns=("*",), lr=1e-3),),
        provenance=None if provenance else {"study": "ft", "trial": 3, "value": 0.5},
    )
    path = tmp_path / "best.yaml"
    if provenance:
        data = config.to_dict()
        del data["provenance"]
        path.write_text(yaml.safe_dump(data) + provenance)
    else:
        path.write_text(yaml.safe_dump({"config": config.to_dict()}))
    return path


TRY_ROWS = [
    # item 12: another objective's exported config
    ("other-objective", ["--objective", "moco"], None, "is for objective 'finetune', not 'moco'"),
    # issue 19: a config that accumulates, for a built-in that does not
    ("accumulation", [], "accumulation", "accumulation_steps: objective 'finetune' does not accumulate"),
    # item 12: an alias bomb in provenance (it exhausted memory)
    ("alias-bomb", ["--scale", "tiny"], "bomb", "alias bomb"),
    # item 11: a config file that is not UTF-8
    ("latin1", [], "latin1", "not UTF-8 text"),
]


@pytest.mark.parametrize(("case", "extra", "content", "fragment"), TRY_ROWS, ids=[r[0] for r in TRY_ROWS])
def test_try_config_is_refused_in_one_line(
    case: str, extra: list[str], content: str | None, fragment: str, tmp_path: Path
) -> None:
    path = _export(
        tmp_path,
        provenance=_bomb() if content == "bomb" else "",
        accumulation_steps=2 if content == "accumulation" else 1,
    )
    if content == "latin1":
        path.write_bytes(path.read_bytes() + "# café\n".encode("latin-1"))
    result = run_cli(["try", "--config", str(path), *extra], cwd=tmp_path)
    # exit status 1, no traceback, one `error:` line naming the file and the problem
    assert result.code == 1 and not result.traceback, (result.stderr, result.traceback)
    assert len(result.error_lines) == 1 and fragment in result.error_lines[0], result.stderr
    assert str(path) in result.error_lines[0]


def test_warmup_steps_with_epoch_stages_warns_once(tmp_path: Path) -> None:
    data = space_data("x.py:fn", baselines={}, schedule={"warmup_steps": 1000})
    data["stages"] = [{"name": "a", "epochs": 2}]
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(data))
    (tmp_path / "x.py").write_text("def fn(config, ctx):\n    return 0.0\n")  # validate checks it exists
    result = run_cli(["validate", "-q", str(space)], cwd=tmp_path)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    # valid (exit 0), with exactly one warning naming the field and that a longer warmup is cut
    assert result.code == 0, result.stderr
    assert len(warnings) == 1 and "schedule.warmup_steps" in warnings[0] and "cut" in warnings[0]


def test_infinite_norm_type_stays_allowed() -> None:
    # clip.norm_type: .inf is the max-norm (a real setting); only it may be infinite
    space = parse_space(space_data("x.py:fn", baselines={}, clip={"norm_type": INF, "max_norm": 1.0}))
    assert space.clip.norm_type == INF


# --- item 10: a study named like a path stays inside --runs-dir ------------------------------------
def test_resume_of_a_path_named_study_keeps_results_inside_runs_dir(store: Path, tmp_path: Path) -> None:
    objs = store.parent / "objs.py"
    url = f"sqlite:///{tmp_path / 'path-named.db'}"
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    optimize_local(parse_space(space_data(f"{objs}:quick", baselines={})), 1, url, study="../../escaped")
    result = run_cli(
        ["resume", "--study", "../../escaped", "--storage", url, "--runs-dir", "runs", "--json"], cwd=work
    )
    results_dir = Path(json.loads(result.stdout)["results_dir"])
    # the study keeps its name; its results directory is one safe component inside --runs-dir
    assert result.code == 0, result.stderr
    assert results_dir.parent == (work / "runs").resolve()
    assert ".." not in results_dir.name and "/" not in results_dir.name


@pytest.mark.ray
@pytest.mark.usefixtures("shared_ray")
def test_launch_of_a_path_named_study_writes_only_inside_runs_dir(store: Path, tmp_path: Path) -> None:
    from gradsweep.search.engine.ray.launcher import LaunchRequest, launch
    from gradsweep.search.engine.ray.runtime import Resources

    objs = store.parent / "objs.py"
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    (tmp_path / "a" / "marker").write_text("")
    space_file = work / "space.yaml"
    space_file.write_text(yaml.safe_dump(space_data(f"{objs}:quick", baselines={})))
    url = f"sqlite:///{work / 'store.db'}"
    summary = launch(
        LaunchRequest(
            space=load_space(space_file),
            n_trials=1,
            storage=url,
            study="../../escaped",
            runs_dir=work / "runs",
            resources=Resources(concurrency=1),
        )
    )
    outside = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if work not in (p, *p.parents))
    # the sweep ran, under the study name as given
    assert summary.complete == 1 and summary.study == "../../escaped"
    # its Ray results are inside --runs-dir, in one directory named after the study
    assert Path(summary.results_dir).parent.parent == (work / "runs").resolve()
    # nothing was written outside the working directory (only the directories it lives in, and the marker)
    assert outside == [Path("a"), Path("a/b"), Path("a/marker")]


# --- the pieces, directly ---------------------------------------------------------------------------
def test_yaml_loader_refuses_bombs_and_recursion_but_keeps_ordinary_aliases() -> None:
    from gradsweep.spaces.yaml_io import YamlFileError, load_yaml_text

    # anchors, aliases and merge keys of ordinary size load as safe_load would
    assert load_yaml_text("a: &x {k: 1}\nb: {<<: *x, j: 2}\n") == {"a": {"k": 1}, "b": {"k": 1, "j": 2}}
    # a billion-laughs document is refused before any Python object is built
    with pytest.raises(YamlFileError, match="alias bomb"):
        load_yaml_text(_bomb(levels=12))
    # an anchor used inside itself is refused (nothing could walk or dump it)
    with pytest.raises(YamlFileError, match="recursive"):
        load_yaml_text("a: &x [1, *x]\n")
    # a syntax error names line and column
    with pytest.raises(YamlFileError, match="not valid YAML: line 2, column 1"):
        load_yaml_text("a: [1\n")


def test_check_metric_knows_what_each_builtin_reports() -> None:
    from gradsweep.errors import UserError
    from gradsweep.objectives.registry import check_metric

    check_metric("finetune", "accuracy")
    check_metric("finetune", "value")  # its unnamed default is accepted, as the objective does
    check_metric("tests/x.py:fn", "anything")  # a user objective: known only when it runs
    # contrastive has no "value" alias: its run() refuses it, so validation does too
    with pytest.raises(UserError, match=r"objective 'contrastive' reports recall_at_1_v2t, .*'value'"):
        check_metric("contrastive", "value")


def test_run_dir_names_are_one_safe_component() -> None:
    from gradsweep.search.engine.request import run_dir_name

    # a plain name is kept; anything else becomes one component with a hash of the name
    assert run_dir_name("contrastive lr") == "contrastive lr"
    names = ["../../x", "/tmp/x", "..", ".", "", "a/b", "a_b", "x" * 600, "é" * 200, "a\\b", "a\nb"]
    mapped = [run_dir_name(n) for n in names]
    assert all("/" not in m and "\\" not in m and not m.startswith(".") and m.isprintable() for m in mapped)
    assert all(0 < len(m.encode()) <= 100 for m in mapped)
    # different names never share a directory
    assert len(set(mapped)) == len(names)
