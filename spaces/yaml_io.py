"""Read the YAML files gradsweep is given, with one-line errors: spaces, configs, baselines.

Every YAML file gradsweep loads (a search space, ``try --config``'s config or export, a
``--baseline`` file) goes through :func:`read_yaml_file`, so each refuses the same inputs the
same way:

* a file that is not UTF-8 text (a binary, a latin-1 file): named as such, not a
  ``UnicodeDecodeError`` traceback;
* YAML that does not parse: the line and column;
* numbers written with an exponent but no sign or no dot (``1e6``, ``1.0e6``, ``3E-4``) are
  numbers, as in YAML 1.2 and JSON; PyYAML follows YAML 1.1, where they are strings, so a
  categorical choice or a baseline value ``1.0e6`` would otherwise reach the study as text;
* an alias bomb: anchors and aliases that expand to more than :data:`MAX_EXPANDED_VALUES`
  values (``&a [x, x, ...]``, ``&b [*a, *a, ...]``, ...). PyYAML builds such a document cheaply,
  sharing one object per anchor, but anything that walks it (Pydantic, a YAML or JSON dump)
  expands it and exhausts memory; the document's node graph is measured before any Python
  object is built. A recursive alias (an anchor used inside itself) is refused too.

Example:
    >>> load_yaml_text("a: &x [1, 2]\\nb: *x\\n")
    {'a': [1, 2], 'b': [1, 2]}
    >>> load_yaml_text("[1e6, 1.0e6, 3E-4, .5e2, 16, '1e6']")
    [1000000.0, 1000000.0, 0.0003, 50.0, 16, '1e6']
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

#: The most values (scalars, lists and mappings) a document may expand to through its aliases.
#: A search space or an exported config holds a few thousand at most.
MAX_EXPANDED_VALUES = 100_000


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, plus YAML 1.2's floats with an exponent (``1e6``, ``1.0e6``, ``2E-3``)."""


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+.0123456789"))


class YamlFileError(ValueError):
    """A YAML file or text that cannot be loaded; ``str()`` is one line, without the file name."""


def _expanded_size(root: yaml.Node) -> tuple[int, bool]:
    """Values ``root`` expands to (capped just above the limit) and whether any node is shared.

    Raises:
        YamlFileError: a node contains itself (a recursive alias).
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()
    shared = False

    def size(node: yaml.Node) -> int:
        nonlocal shared
        key = id(node)
        if key in sizes:
            shared = True
            return sizes[key]
        if key in active:
            raise YamlFileError("a YAML alias refers to the value that contains it (a recursive structure)")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
        active.discard(key)
        sizes[key] = min(total, MAX_EXPANDED_VALUES + 1)
        return sizes[key]

    return size(root), shared


def load_yaml_text(text: str) -> Any:
    """``yaml.safe_load(text)``, refusing alias bombs and recursive aliases.

    Raises:
        YamlFileError: not valid YAML (line and column), or aliases that expand too far.
    """
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise YamlFileError(_yaml_problem(exc)) from None
        if node is None:
            return None
        expanded, shared = _expanded_size(node)
        if shared and expanded > MAX_EXPANDED_VALUES:
            raise YamlFileError(
                f"its YAML aliases expand to more than {MAX_EXPANDED_VALUES} values (an alias bomb?); "
                "write the values out instead of repeating anchors"
            )
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise YamlFileError(_yaml_problem(exc)) from None
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"not valid YAML: {where}{problem}"


def read_text_file(path: str | Path) -> str:
    """The file's text, which must be UTF-8.

    Raises:
        YamlFileError: unreadable (the OS's reason) or not UTF-8 text (the offset of the first bad byte).
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise YamlFileError(f"cannot read the file: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlFileError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the file as UTF-8"
        ) from None


def read_yaml_file(path: str | Path) -> Any:
    """Read and parse a UTF-8 YAML file (see the module docstring for what is refused).

    Raises:
        YamlFileError: one line, without the file name (callers add it).
    """
    return load_yaml_text(read_text_file(path))


__all__ = ["MAX_EXPANDED_VALUES", "YamlFileError", "load_yaml_text", "read_text_file", "read_yaml_file"]
