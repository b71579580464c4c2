"""Where an objective's code comes from, and the one notice before code that is not built in runs.

An objective named in a space file (``objective: /tmp/x.py:fn``), a stored study or an exported
config is imported, and so run, by ``launch``, ``resume`` and ``try``. The command line says so
first: while :func:`announcing` is active, :func:`gradsweep.objectives.registry.load_objective`
hands the origin of any objective that is not one of gradsweep's built-ins to the callback
before importing it (once per origin). No torch here: the CLI imports this at start.

Example:
    >>> objective_origin("contrastive") is None
    True
    >>> objective_origin("/srv/objs/x.py:fn")
    '/srv/objs/x.py (function fn)'
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

_listeners: list[tuple[Callable[[str], None], set[str]]] = []


def is_file_spec(target: str) -> bool:
    """Whether the part of an objective spec before ``:`` names a file (not a module)."""
    return target.endswith(".py") or "/" in target or "\\" in target


def _module_file(name: str) -> str | None:
    """The file ``import name`` would run, found without importing anything."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return getattr(loaded, "__file__", None)
    spec, search = None, None
    for part in name.split("."):
        spec = importlib.machinery.PathFinder.find_spec(part, search)
        if spec is None:
            return None
        search = spec.submodule_search_locations
    return spec.origin if spec is not None else None


def objective_origin(spec: str) -> str | None:
    """Where the code of objective ``spec`` lives, or None for a built-in (gradsweep's own code).

    Args:
        spec: ``path/to/file.py:function``, ``package.module:function`` or a built-in name.

    Returns:
        ``"/abs/path/file.py (function fn)"`` for a file, ``"/abs/path/pkg/mod.py (module
        pkg.mod, function fn)"`` for a module (the file left out if it cannot be found without
        importing), None for a built-in name, a ``gradsweep`` module or a malformed spec (which
        loading refuses anyway).
    """
    target, sep, attr = spec.strip().rpartition(":")
    if not sep or not target or not attr:
        return None
    if is_file_spec(target):
        return f"{Path(target).expanduser().resolve()} (function {attr})"
    if target == "gradsweep" or target.startswith("gradsweep."):
        return None
    try:
        where = _module_file(target)
    except (ImportError, ValueError):
        where = None
    return f"{where} (module {target}, function {attr})" if where else f"module {target} (function {attr})"


def announce(spec: str) -> None:
    """Tell every active :func:`announcing` callback about ``spec``'s code, once per origin."""
    origin = objective_origin(spec)
    if origin is None:
        return
    for notify, seen in _listeners:
        if origin not in seen:
            seen.add(origin)
            notify(origin)


@contextlib.contextmanager
def announcing(notify: Callable[[str], None]) -> Iterator[None]:
    """While active, ``notify(origin)`` runs before objective code that is not built in is imported."""
    entry = (notify, set[str]())
    _listeners.append(entry)
    try:
        yield
    finally:
        _listeners.remove(entry)


__all__ = ["announce", "announcing", "is_file_spec", "objective_origin"]
