"""Which tower owns each parameter, and which parameters never decay.

Tower patterns are matched against the full dotted names of ``model.named_parameters()``:
globs with :func:`fnmatch.fnmatchcase` (``*`` also crosses dots, so ``"text.*"`` covers
``"text.encoder.0.weight"``) or regexes with :func:`re.fullmatch`, per ``tower.pattern_kind``.

Example:
    >>> from gradsweep.spaces.trial_config import TowerConfig
    >>> towers = [TowerConfig(name="head", patterns=["head.*"], lr=1e-3),
    ...           TowerConfig(name="backbone", patterns=["backbone.*"], lr=1e-4)]
    >>> match_parameters(["backbone.0.weight", "head.weight"], towers)
    {'backbone.0.weight': 'backbone', 'head.weight': 'head'}
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection, Iterable, Sequence

from torch import nn

from gradsweep.spaces.trial_config import NoDecayRule, TowerConfig

_SHOW = 5

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
EMBEDDING_TYPES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def _matcher(tower: TowerConfig) -> Callable[[str], bool]:
    if tower.pattern_kind == "glob":
        pats = tower.patterns
        return lambda name: any(fnmatch.fnmatchcase(name, p) for p in pats)
    compiled = []
    for p in tower.patterns:
        try:
            compiled.append(re.compile(p))
        except re.error as err:
            raise ValueError(f"tower {tower.name!r}: invalid regex pattern {p!r}: {err}") from err
    return lambda name: any(c.fullmatch(name) for c in compiled)


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOW])
    return shown + (f" (and {len(names) - _SHOW} more)" if len(names) > _SHOW else "")


def match_parameters(
    names: Iterable[str],
    towers: Sequence[TowerConfig],
    *,
    optional: Collection[str] = (),
) -> dict[str, str]:
    """Map each parameter name to the one tower whose patterns match it.

    Args:
        names: full dotted parameter names (``model.named_parameters()`` order is kept).
        towers: the config's towers.
        optional: names that may stay unmatched (parameters that do not require grad).

    Returns:
        ``{parameter name: tower name}`` for every matched name, in input order.

    Raises:
        ValueError: a name matched by two towers (naming it and both towers); required names
            matched by none (naming up to 5 and suggesting a pattern); a tower whose patterns
            match no name at all (naming the tower and its patterns); an invalid regex.
    """
    names = list(names)
    matchers = [(t.name, _matcher(t)) for t in towers]
    owner: dict[str, str] = {}
    used: set[str] = set()
    unmatched: list[str] = []
    for name in names:
        hits = [tname for tname, match in matchers if match(name)]
        if len(hits) > 1:
            raise ValueError(
                f"parameter {name!r} matches more than one tower: {hits[0]!r} and {hits[1]!r}"
                + (f" (and {', '.join(map(repr, hits[2:]))})" if len(hits) > 2 else "")
                + "; make the towers' patterns disjoint"
            )
        if hits:
            owner[name] = hits[0]
            used.add(hits[0])
        elif name not in optional:
            unmatched.append(name)
    if unmatched:
        prefixes = sorted({n.split(".", 1)[0] + (".*" if "." in n else "") for n in unmatched})
        raise ValueError(
            f"{len(unmatched)} trainable parameter(s) match no tower: {_listing(unmatched)}; "
            f"add them to a tower's patterns (e.g. {prefixes[:_SHOW]}) or add a catch-all tower "
            f"whose patterns cover the rest"
        )
    for tower in towers:
        if tower.name not in used:
            raise ValueError(
                f"tower {tower.name!r}: {tower.pattern_kind} patterns {list(tower.patterns)} match no "
                f"parameter; parameter names look like: {_listing(names)}"
            )
    return owner


def parameter_modules(model: nn.Module) -> dict[str, nn.Module]:
    """``{full parameter name: the module that owns it directly}`` for every parameter of ``model``."""
    owners: dict[str, nn.Module] = {}
    for mname, module in model.named_modules(remove_duplicate=False):
        for pname, _ in module.named_parameters(recurse=False, remove_duplicate=False):
            owners.setdefault(f"{mname}.{pname}" if mname else pname, module)
    return owners


def _is_norm(module: nn.Module | None) -> bool:
    if module is None:
        return False
    return isinstance(module, NORM_TYPES) or type(module).__name__.endswith("Norm")


def no_decay_reason(name: str, ndim: int, module: nn.Module | None, rule: NoDecayRule) -> str | None:
    """Why a parameter gets ``weight_decay = 0`` under ``rule``, or None when it decays.

    Args:
        name: full dotted parameter name.
        ndim: the parameter's number of dimensions.
        module: the module owning it directly (None if unknown).
        rule: the tower's :class:`NoDecayRule`.

    Returns:
        ``"name"``, ``"bias"``, ``"norm"``, ``"embedding"`` or ``"scalar"`` (first rule that
        applies), or None. Norm layers are the torch norm classes plus any module class whose
        name ends in ``Norm`` (custom RMSNorm implementations).
    """
    if any(fnmatch.fnmatchcase(name, p) for p in rule.names):
        return "name"
    if rule.bias and name.endswith("bias"):
        return "bias"
    if rule.norm and _is_norm(module):
        return "norm"
    if rule.embedding and isinstance(module, EMBEDDING_TYPES):
        return "embedding"
    if rule.scalars and ndim < 2:
        return "scalar"
    return None
