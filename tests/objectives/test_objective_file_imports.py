"""A file objective imports modules beside it, as ``python file.py`` would (issue 19, point 4)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from gradsweep.objectives.registry import load_objective


def _folder(tmp_path: Path) -> tuple[Path, str]:
    """A folder with ``objs.py`` importing a helper module beside it at the top and inside a function."""
    top, lazy = f"helper_top_{uuid.uuid4().hex[:8]}", f"helper_lazy_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / f"{top}.py").write_text("VALUE = 2.0\n")
    (folder / f"{lazy}.py").write_text("VALUE = 3.0\n")
    (folder / "objs.py").write_text(
        f"import {top}\n\n"
        f"def at_top(config, ctx):\n    return {top}.VALUE\n\n"
        f"def lazily(config, ctx):\n    import {lazy}\n    return {lazy}.VALUE\n"
    )
    return folder, top


def test_a_file_objective_imports_a_module_beside_it(tmp_path: Path, monkeypatch) -> None:
    folder, _ = _folder(tmp_path)
    monkeypatch.chdir(tmp_path)  # not the objective's folder: the working directory does not help
    monkeypatch.setattr(sys, "path", list(sys.path))
    # importing the file runs its top-level `import helper_top_...` (today: No module named ...)
    fn = load_objective(f"{folder / 'objs.py'}:at_top")
    # ... and the function uses it
    assert fn(None, None) == 2.0
    # an import inside the objective function, when a trial runs it, finds the folder too
    assert load_objective(f"{folder / 'objs.py'}:lazily")(None, None) == 3.0


def test_the_objective_folder_comes_first_like_a_script(tmp_path: Path, monkeypatch) -> None:
    folder, _ = _folder(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    load_objective(f"{folder / 'objs.py'}:at_top")
    # like `python objs.py`: the file's folder is first on sys.path, once however often it is loaded
    load_objective(f"{folder / 'objs.py'}:lazily")
    assert sys.path[0] == str(folder.resolve()) and sys.path.count(str(folder.resolve())) == 1
