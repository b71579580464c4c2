"""Imports go one way: spaces <- objectives <- search, all under ``gradsweep``.

Every import statement counts, including those inside functions and under ``TYPE_CHECKING``
(hiding a cycle is not removing it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# each layer and the layers it must not import
FORBIDDEN = {
    "gradsweep": ("gradsweep.spaces", "gradsweep.objectives", "gradsweep.search"),
    "spaces": ("gradsweep.objectives", "gradsweep.search"),
    "objectives": ("gradsweep.search",),
    "search": (),
}
BARE = ("spaces", "objectives", "search")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_the_layers_below_it(layer: str) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / layer).rglob("*.py"))
        for line, name in _imports(path)
        if any(_under(name, above) for above in FORBIDDEN[layer])
    ]
    # no module of this layer imports a layer above it
    assert bad == []


def test_nothing_imports_the_folders_by_their_bare_names() -> None:
    paths = [
        p
        for folder in ("gradsweep", *BARE, "benchmarks", "tests", "scripts", "examples")
        for p in (ROOT / folder).rglob("*.py")
    ]
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted(paths)
        for line, name in _imports(path)
        if any(_under(name, bare) for bare in BARE)
    ]
    # every import of the package's own code goes through gradsweep.*
    assert bad == []


def test_no_module_patches_sys_path() -> None:
    paths = [
        p
        for folder in ("gradsweep", *BARE, "benchmarks", "scripts", "examples", "tests")
        for p in (ROOT / folder).rglob("*.py")
        if p != Path(__file__).resolve()
    ]
    # benchmarks run as `python -m benchmarks.NAME` and find gradsweep installed; tests share
    # helpers as `tests.*` modules: no sys.path edits anywhere, except the one that puts a user's
    # objective file's folder first, as `python file.py` does (it never finds gradsweep's code)
    patching = [str(p.relative_to(ROOT)) for p in paths if "sys.path.insert" in p.read_text()]
    assert patching == ["objectives/registry.py"]


def test_every_test_folder_is_a_package() -> None:
    folders = [d for d in (ROOT / "tests").rglob("*") if d.is_dir() and d.name != "__pycache__"]
    # so a test imports a shared helper by its full name (`tests.objectives._support`), never a bare one
    assert [str(d.relative_to(ROOT)) for d in folders if not (d / "__init__.py").exists()] == []
