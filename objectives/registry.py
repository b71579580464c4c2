"""Objective names -> callables: built-ins, ``package.module:function`` and ``path/file.py:function``.

Built-in objective modules are imported lazily (only the one asked for). Each exposes
``run(config, ctx) -> float`` and the metadata ``METRICS`` (the metric names it reports),
``DEFAULT_METRIC``, ``DIRECTION`` and ``PRESET`` (the preset file name under ``spaces/presets``),
and optionally ``METRIC_ALIASES`` (other names it accepts for its default metric) and
``ACCUMULATES = True`` (its loop calls ``trainer.step`` per micro-batch, so it takes
``accumulation_steps`` > 1). :func:`check_metric` refuses a metric a built-in never reports, and
:func:`check_accumulation` gradient accumulation a built-in does not do, before any trial runs.

Example:
    >>> fn = load_objective("contrastive")
    >>> fn.__name__
    'run'
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from gradsweep.errors import UserError
from gradsweep.objectives.api import Objective
from gradsweep.objectives.origin import announce, is_file_spec

BUILTINS: tuple[str, ...] = ("contrastive", "moco", "finetune", "multitower", "segmentation")
_FORMS = "a built-in name, package.module:function, or path/to/file.py:function"


@dataclass(frozen=True)
class ObjectiveInfo:
    """One row of :func:`list_objectives`."""

    name: str
    description: str
    metrics: tuple[str, ...]
    default_metric: str
    direction: str
    preset: str


def builtin_module(name: str) -> ModuleType:
    """Import the module of built-in objective ``name``.

    Raises:
        UserError: if ``name`` is not a built-in (the message lists them).
    """
    if name not in BUILTINS:
        raise UserError(f"unknown objective {name!r}; built-ins are: {', '.join(BUILTINS)}; or give {_FORMS}")
    return importlib.import_module(f"gradsweep.objectives.{name}")


def describe(name: str) -> ObjectiveInfo:
    """Metadata of built-in objective ``name``."""
    module = builtin_module(name)
    doc = (module.__doc__ or "").strip().splitlines()
    return ObjectiveInfo(
        name=name,
        description=doc[0] if doc else "",
        metrics=tuple(module.METRICS),
        default_metric=module.DEFAULT_METRIC,
        direction=module.DIRECTION,
        preset=module.PRESET,
    )


def accepted_metrics(spec: str) -> tuple[str, ...] | None:
    """The metric names objective ``spec`` accepts: a built-in's ``METRICS`` and ``METRIC_ALIASES``.

    None for a user objective (``module:fn``, ``file.py:fn``): what it reports is known only when it runs.
    """
    if spec not in BUILTINS:
        return None
    module = builtin_module(spec)
    return (*module.METRICS, *getattr(module, "METRIC_ALIASES", ()))


def check_metric(spec: str, metric: str, *, where: str = "metric.name") -> None:
    """Refuse a metric that built-in objective ``spec`` never reports (every trial would fail).

    Raises:
        UserError: one line naming ``where`` and the metrics the objective reports.
    """
    accepted = accepted_metrics(spec)
    if accepted is not None and metric not in accepted:
        reported = ", ".join(builtin_module(spec).METRICS)
        raise UserError(f"{where}: objective {spec!r} reports {reported}; it never reports {metric!r}")


def check_accumulation(spec: str, accumulates: bool, *, where: str = "accumulation_steps") -> None:
    """Refuse ``accumulation_steps`` > 1 for a built-in that does not accumulate (every trial would fail).

    Args:
        spec: the objective.
        accumulates: whether the space (or config) asks for more than one micro-batch per step.
        where: the field named in the message.

    Raises:
        UserError: one line naming ``where`` and the objective.
    """
    if accumulates and spec in BUILTINS and not getattr(builtin_module(spec), "ACCUMULATES", False):
        raise UserError(
            f"{where}: objective {spec!r} does not accumulate gradients; give 1, or a larger batch_size"
        )


def check_workers(spec: str, workers: int) -> None:
    """Refuse ``--workers-per-trial`` above 1 for a built-in whose loop trains one process.

    A built-in declares ``DISTRIBUTED = True`` when it shards its batches and trains through
    ``trainer.wrapped``; the others would fail every trial at its first step. An objective of
    the user's own cannot be told from here: the trainer refuses a step that bypassed DDP.

    Raises:
        UserError: one line naming the objective and the built-ins that can.
    """
    if workers > 1 and spec in BUILTINS and not getattr(builtin_module(spec), "DISTRIBUTED", False):
        able = ", ".join(name for name in BUILTINS if getattr(builtin_module(name), "DISTRIBUTED", False))
        raise UserError(
            f"--workers-per-trial {workers}: objective {spec!r} trains one process per trial (its loop does "
            f"not shard its batches or call trainer.wrapped); built-ins that run on several workers: {able}"
        )


def list_objectives() -> list[ObjectiveInfo]:
    """Metadata rows for every built-in objective, in :data:`BUILTINS` order."""
    return [describe(name) for name in BUILTINS]


def check_objective_file(spec: str) -> None:
    """Refuse a ``path/to/file.py:function`` spec whose file is missing, without importing anything.

    ``validate`` calls it, so a space whose objective cannot be found is not reported ``ok``.

    Raises:
        UserError: the file is not there (the message says where a relative path was looked for).
    """
    target = spec.strip().rpartition(":")[0]
    if target and is_file_spec(target):
        _existing_file(target)


def _existing_file(path_text: str) -> Path:
    path = Path(path_text).expanduser()
    if not path.is_file():
        where = (
            ""
            if path.is_absolute()
            else f" (a relative path is read from the current directory, {Path.cwd()})"
        )
        raise UserError(f"objective file not found: {path_text}{where}")
    return path


def _import_file(path_text: str) -> ModuleType:
    resolved = _existing_file(path_text).resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    module_name = f"gradsweep_user_objective_{resolved.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot import objective file {path_text}: not a Python module")
    _put_first_on_path(resolved.parent)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling need the module registered
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise UserError(f"error importing objective file {path_text}: {_one_line(exc)}") from exc
    return module


def _put_first_on_path(folder: Path) -> None:
    """Make modules beside an objective file importable, as ``python file.py`` does.

    The folder goes first on ``sys.path`` (Python puts a script's folder there), unless it is
    already on it, and stays: an objective that imports inside its function, when a trial runs
    it, finds its modules too. Ray workers load the objective through here as well.
    Modules already imported (the standard library's, gradsweep's) are not replaced by
    same-named files in the folder; later imports of a name the folder also holds get the
    folder's file, as under ``python file.py``.
    """
    entry = str(folder)
    if entry not in sys.path:  # already there (the working directory, a second load): leave the order
        sys.path.insert(0, entry)
        importlib.invalidate_caches()


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise UserError(f"objective module not found: {name}") from exc
        raise UserError(f"error importing objective module {name}: {_one_line(exc)}") from exc
    except Exception as exc:
        raise UserError(f"error importing objective module {name}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_objective(spec: str) -> Objective:
    """Resolve an objective spec to a callable ``(config, ctx) -> float``.

    Args:
        spec: a built-in name (``contrastive``), ``package.module:function`` or
            ``path/to/file.py:function``. A class is instantiated without arguments and its
            instance must be callable.

    Returns:
        The objective callable.

    Under :func:`gradsweep.objectives.origin.announcing` (the command line), code that is not a
    built-in is announced with its file before it is imported.

    Raises:
        UserError: one line naming what is wrong: an unknown name (listing the built-ins), a
            missing module or file, a missing attribute, or an attribute that is not callable.
    """
    spec = spec.strip()
    if not spec:
        raise UserError(f"empty objective; give {_FORMS}")
    if ":" not in spec:
        if is_file_spec(spec):
            raise UserError(f"objective {spec!r} names no function; give {spec}:function")
        return builtin_module(spec).run
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise UserError(f"bad objective {spec!r}; give {_FORMS}")
    if not is_file_spec(target) or Path(target).expanduser().is_file():
        announce(spec)  # the command line names the code before it runs (gradsweep.objectives.origin)
    module = _import_file(target) if is_file_spec(target) else _import_module(target)
    if not hasattr(module, attr):
        raise UserError(f"{target} has no function {attr!r}")
    obj: Any = getattr(module, attr)
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise UserError(f"cannot instantiate objective class {spec}: {_one_line(exc)}") from exc
    if not callable(obj):
        raise UserError(f"{spec} is not callable (it is a {type(obj).__name__})")
    return obj
