"""The run bank of the health-transfer benchmark: its JSON lines, labels, and loading it back.

``benchmarks/_transfer_runs.py`` trains sampled configs to the end with pruning off and appends
one JSON line per run (``"kind": "run"``) plus one per objective for its untrained metric
(``"kind": "untrained"``: the same objective, scale and seed with every LR 0). Lines may hold
``NaN``/``Infinity`` (Python's ``json`` writes and reads them; strict JSON parsers do not).
:func:`load_bank` reads the file back as :class:`RunRecord` objects whose checks are the
monitor's own :class:`~gradsweep.objectives.health.summary.CheckSummary` and
:class:`~gradsweep.objectives.health.rules.RuleContext`, ready for
:func:`gradsweep.objectives.health.rules.evaluate`, and marks each objective's top quartile.

Labels (:func:`label_run`), first match wins:

* ``nonfinite``: a non-finite loss or gradient in any recorded check, or a non-finite final metric
  (the objective raised ``NonFiniteValue`` or returned nothing);
* ``error``: the run raised something else with every check finite (a crash, not instability);
* ``diverged``: the final metric is worse than the untrained metric (strictly);
* ``healthy``: the rest.

Example:
    >>> label_run(0.5, "maximize", 0.1, [])
    'healthy'
    >>> label_run(0.05, "maximize", 0.1, [])
    'diverged'
    >>> top_quartile_flags([0.1, 0.9, float("nan"), 0.5], "maximize")
    [False, True, False, False]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradsweep.objectives.health.rules import RuleContext
from gradsweep.objectives.health.summary import CheckSummary

LABELS = ("healthy", "diverged", "nonfinite", "error")
NONFINITE_ERROR = "NonFiniteValue"


@dataclass(frozen=True)
class CheckRecord:
    """One health check of a run, as the monitor measured it.

    Attributes:
        monitor: which monitor of the run (0, 1, ... in order of first check).
        summary: the window's raw summary (fields the monitor derives across windows left unset).
        context: clip limits, frozen towers, scaler state (``checks_done`` is 1: set it when replaying).
    """

    monitor: int
    summary: CheckSummary
    context: RuleContext


@dataclass(frozen=True)
class RunRecord:
    """One run of the bank.

    Attributes:
        objective: bank name (``contrastive`` ... ``segmentation``, ``charlm``, ``digits_cnn``, ``digits_vae``,
            ``seq2seq``, ``tabular``).
        scale: the objective's scale.
        seed: the objective's data/init seed (every run of an objective has the same one).
        index: the run's number; with objective, scale and seed it is the run's key.
        params: the sampled parameters (Optuna names; ``clip.max_norm`` null = no clipping).
        tower_lrs: each tower's resolved base LR.
        value: the final metric (NaN when the run ended without a finite one).
        direction: ``maximize`` or ``minimize``.
        untrained: the metric with every LR 0 (same objective, scale and seed).
        label: see the module docstring.
        checks: every health check, in order (full windows of 25 steps: steps after the last one are unchecked).
        total_steps: the optimizer steps the run planned (``trainer.total_steps``; None if it never built one).
        seconds: wall time of the run.
        error: ``"Type: message"`` when the run raised, else None.
        top_quartile: among the best quarter of its objective's runs (see :func:`top_quartile_flags`).
    """

    objective: str
    scale: str
    seed: int
    index: int
    params: dict[str, Any]
    tower_lrs: dict[str, float]
    value: float
    direction: str
    untrained: float
    label: str
    checks: list[CheckRecord]
    total_steps: int | None
    seconds: float
    error: str | None = None
    top_quartile: bool = False


def check_nonfinite(check: Mapping[str, Any]) -> bool:
    """Whether one recorded check (``summary`` as a dict) saw a non-finite loss or gradient."""
    s = check["summary"]
    if s.get("nonfinite_steps", 0) or s.get("nonfinite_loss_steps", 0) or s.get("nonfinite_grad_steps", 0):
        return True
    return any(tower.get("nonfinite_steps", 0) for tower in s.get("towers", {}).values())


def worse(a: float, b: float, direction: str) -> bool:
    """Whether ``a`` is strictly worse than ``b`` under ``direction``."""
    return a < b if direction == "maximize" else a > b


def label_run(
    value: float,
    direction: str,
    untrained: float,
    checks: Iterable[Mapping[str, Any]],
    error: str | None = None,
) -> str:
    """The run's label (module docstring) from its final metric, untrained metric and checks.

    Args:
        value: the final metric (NaN if none).
        direction: ``maximize`` or ``minimize``.
        untrained: the metric with every LR 0; a non-finite one never makes a run ``diverged``.
        checks: the recorded checks as stored (dicts with a ``summary`` dict).
        error: the run's exception (``"Type: message"``), if it raised.
    """
    if any(check_nonfinite(c) for c in checks):
        return "nonfinite"
    if error is not None and not error.startswith(NONFINITE_ERROR):
        return "error"
    if not math.isfinite(value):
        return "nonfinite"
    if math.isfinite(untrained) and worse(value, untrained, direction):
        return "diverged"
    return "healthy"


def top_quartile_flags(values: Sequence[float], direction: str) -> list[bool]:
    """Which values are in the best quarter of ``values`` (non-finite ones never are).

    The quarter is counted over all runs, non-finite ones included: ``k = ceil(n / 4)`` runs; the
    k-th best finite value is the line, and every finite value at least as good is in (ties are
    all in). With fewer than k finite values, all the finite ones are in.
    """
    n = len(values)
    if n == 0:
        return []
    finite = sorted((v for v in values if math.isfinite(v)), reverse=direction == "maximize")
    if not finite:
        return [False] * n
    k = max(1, math.ceil(n / 4))
    line = finite[min(k, len(finite)) - 1]
    return [math.isfinite(v) and not worse(v, line, direction) for v in values]


def _context(data: Mapping[str, Any]) -> RuleContext:
    return RuleContext(
        tower_clip=dict(data.get("tower_clip", {})),
        global_clip=data.get("global_clip"),
        frozen=frozenset(data.get("frozen", ())),
        scaler_enabled=bool(data.get("scaler_enabled", False)),
    )


def read_lines(path: str | Path) -> list[dict[str, Any]]:
    """Every JSON line of a bank file (none for a missing file; a torn last line is skipped)."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a run interrupted while writing its line: it is run again on resume
    return out


def load_bank(path: str | Path) -> list[RunRecord]:
    """The runs of a bank file, in file order, with ``top_quartile`` set per objective and scale."""
    rows = [r for r in read_lines(path) if r.get("kind") == "run"]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r["objective"], r["scale"]), []).append(i)
    top = [False] * len(rows)
    for members in groups.values():
        direction = rows[members[0]]["direction"]
        flags = top_quartile_flags([float(rows[i]["value"]) for i in members], direction)
        for i, flag in zip(members, flags, strict=True):
            top[i] = flag
    return [
        RunRecord(
            objective=r["objective"],
            scale=r["scale"],
            seed=int(r["seed"]),
            index=int(r["index"]),
            params=dict(r["params"]),
            tower_lrs=dict(r.get("tower_lrs", {})),
            value=float(r["value"]),
            direction=r["direction"],
            untrained=float(r["untrained"]),
            label=r["label"],
            checks=[
                CheckRecord(int(c["monitor"]), CheckSummary.from_dict(c["summary"]), _context(c["context"]))
                for c in r["checks"]
            ],
            total_steps=r.get("total_steps"),
            seconds=float(r["seconds"]),
            error=r.get("error"),
            top_quartile=flag,
        )
        for r, flag in zip(rows, top, strict=True)
    ]
