"""What a sweep asks for, and its checks: every input is validated before the store is touched.

Both ways of running a sweep start here: ``gradsweep launch`` on Ray
(:class:`gradsweep.search.engine.ray.launcher.LaunchRequest` adds resources to a
:class:`SweepRequest`) and the Ray-free :func:`gradsweep.search.engine.local.optimize_local`.

Example:
    >>> normalize_objective("contrastive")
    'contrastive'
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradsweep.errors import UserError
from gradsweep.objectives.registry import check_accumulation, check_metric, load_objective
from gradsweep.search.engine.algorithms import DEFAULT_PRUNER, parse_pruner, parse_sampler
from gradsweep.search.engine.storage import DEFAULT_STORAGE, check_url
from gradsweep.search.engine.study import Baseline
from gradsweep.spaces.sampling import check_params
from gradsweep.spaces.space import MAX_NAME_LENGTH, SearchSpace, SpaceError
from gradsweep.spaces.yaml_io import YamlFileError, read_yaml_file

#: Longest run-directory name kept as the study name itself (bytes; file systems allow 255).
_MAX_DIR_NAME = 100


@dataclass(frozen=True)
class SweepRequest:
    """The study a sweep writes and the trials it runs (no resources: those are Ray's)."""

    space: SearchSpace
    n_trials: int
    storage: str = DEFAULT_STORAGE
    study: str | None = None
    objective: str | None = None
    scale: str | None = None
    sampler: str = "tpe"
    pruner: str = DEFAULT_PRUNER
    seed: int | None = None
    baselines: tuple[str, ...] = ()
    join: bool = False
    timeout_s: float | None = None


@dataclass(frozen=True)
class CheckedRequest:
    """A :class:`SweepRequest`'s inputs after :func:`validate_request`."""

    study: str
    scale: str
    objective: str
    baselines: list[Baseline]


def normalize_objective(spec: str) -> str:
    """``spec`` with a file path made absolute (workers run in other directories)."""
    target, sep, attr = spec.rpartition(":")
    if sep and (target.endswith(".py") or "/" in target):
        return f"{Path(target).expanduser().resolve()}:{attr}"
    return spec


def run_dir_name(study: str) -> str:
    """The directory under ``--runs-dir`` that holds a study's Ray results: one safe path component.

    A study name that is a plain file name (no ``/`` or ``\\``, not starting with ``.``, printable,
    at most 100 bytes) is used as is. Any other (``../../x``, ``/tmp/x``, a very long name) keeps
    its letters, digits, ``.``, ``_`` and ``-`` (others become ``_``), cut to 64 bytes, plus ``-``
    and 10 hex digits of the name's SHA-1, so two names never share a directory and nothing is
    written outside ``--runs-dir``. The study keeps its name in the store.

    Example:
        >>> run_dir_name("contrastive"), run_dir_name("../../x")[:2]
        ('contrastive', 'x-')
    """
    plain = (
        study
        and "/" not in study
        and "\\" not in study
        and not study.startswith(".")
        and study.isprintable()
        and len(study.encode()) <= _MAX_DIR_NAME
    )
    if plain:
        return study
    stem = re.sub(r"[^\w.-]+", "_", study).strip("._-")
    stem = stem.encode()[:64].decode(errors="ignore").rstrip("._-") or "study"
    return f"{stem}-{hashlib.sha1(study.encode()).hexdigest()[:10]}"


def run_dir(runs_dir: Path, study: str) -> Path:
    """``runs_dir / run_dir_name(study)``, absolute."""
    return (runs_dir / run_dir_name(study)).resolve()


def check_study_name(name: str) -> None:
    """Refuse a study name the store cannot hold (PostgreSQL keeps 512 characters; we allow 200)."""
    if len(name) > MAX_NAME_LENGTH:
        raise UserError(
            f"--study: at most {MAX_NAME_LENGTH} characters, got {len(name)}; use a shorter study name"
        )


def _params_from_file(path: Path) -> dict[str, Any]:
    try:
        data = read_yaml_file(path)
    except YamlFileError as exc:
        raise UserError(f"baseline {path}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict) and "params" not in data:
        data = data["config"]  # an export file
    params = data.get("params") if isinstance(data, dict) else None
    if not isinstance(params, dict) or not params:
        raise UserError(f"baseline {path} has no `params` mapping (write one with `gradsweep export`)")
    return params


def resolve_baselines(space: SearchSpace, specs: tuple[str, ...]) -> list[Baseline]:
    """Turn ``--baseline`` values (files or the space's baseline names) into checked parameter sets.

    Raises:
        UserError: a missing file or name (names listed), or params outside the space.
    """
    out: list[Baseline] = []
    for spec in specs:
        path = Path(spec)
        if path.is_file():
            name, params = path.stem, _params_from_file(path)
        elif spec in space.baselines:
            name, params = spec, dict(space.baselines[spec])
        else:
            known = ", ".join(space.baselines) or "none"
            raise UserError(
                f"--baseline {spec!r} is neither a file nor a baseline of space {space.name!r} (baselines: {known})"
            )
        try:
            checked = check_params(space, params, where=f"baseline {name}")
        except SpaceError as exc:
            raise UserError(exc.first_line()) from None
        out.append(Baseline(name, dict(checked)))
    return out


def check_objective(spec: str) -> None:
    """Load the objective once on the driver, so a bad spec fails before anything is written."""
    load_objective(spec)  # raises UserError with one line


def validate_request(request: SweepRequest) -> CheckedRequest:
    """Check every input of ``request`` without touching the store.

    Returns:
        The study name, scale, normalized objective spec and checked baselines.

    Raises:
        UserError: the first problem, in one line.
    """
    if request.n_trials < 1:
        raise UserError(f"--n-trials must be at least 1, got {request.n_trials}")
    if request.timeout_s is not None and request.timeout_s <= 0:
        raise UserError(f"--timeout must be > 0 seconds, got {request.timeout_s:g}")
    scale = request.scale or request.space.scale
    if scale not in ("tiny", "small", "full"):
        raise UserError(f"--scale must be one of tiny, small, full, got {scale!r}")
    parse_sampler(request.sampler)
    parse_pruner(request.pruner)
    study = request.study or request.space.name
    check_study_name(study)
    baselines = resolve_baselines(request.space, request.baselines)
    check_url(request.storage)  # its form only; the store is opened later
    objective = normalize_objective(request.objective or request.space.objective)
    check_metric(objective, request.space.metric.name)  # built-ins only: imports no user code
    check_accumulation(objective, request.space.accumulates())
    check_objective(objective)  # last: it imports (runs) the objective's code
    return CheckedRequest(study, scale, objective, baselines)
