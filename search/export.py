"""Export the best trial(s) of a study, or any finished trial, as resolved ``TrialConfig`` files with provenance.

The file is what ``gradsweep try --config``, ``gradsweep launch --baseline`` and user code
read back with :meth:`gradsweep.spaces.trial_config.TrialConfig.load`::

    config:        # the best trial's TrialConfig (params and provenance included)
      objective: contrastive
      ...
    provenance:    # study, trial, state, value, metric, direction, gradsweep version, space, storage (masked)
      study: demo
      trial: 7
      ...
    configs:       # only with --top K > 1: K entries of {config, provenance}, best first
      - config: ...

Example:
    >>> doc = export_document(study, storage_url="sqlite:///gradsweep.db", top=1)  # doctest: +SKIP
    >>> write_export(doc, Path("best.yaml"))                                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial
from pydantic import ValidationError

from gradsweep.errors import UserError
from gradsweep.search import attrs as _keys
from gradsweep.search.json_safe import json_safe
from gradsweep.search.views.store import mask_url
from gradsweep.search.views.summary import study_direction
from gradsweep.search.views.trials import best_trials, trial_value
from gradsweep.spaces.trial_config import TrialConfig
from gradsweep.version import __version__


class ExportFormat(StrEnum):
    YAML = "yaml"
    JSON = "json"


def provenance(study: optuna.Study, trial: FrozenTrial, *, storage_url: str) -> dict[str, Any]:
    """Where an exported config came from (JSON-able; the storage URL is masked)."""
    attrs = study.user_attrs
    value = trial_value(trial)
    return {
        "study": study.study_name,
        "trial": trial.number,
        "value": value,
        "metric": _metric_name(attrs.get(_keys.METRIC)),
        "direction": study_direction(study),
        "objective": attrs.get(_keys.OBJECTIVE),
        "baseline": trial.user_attrs.get(_keys.BASELINE),
        "state": trial.state.name,
        "gradsweep_version": __version__,
        "space": attrs.get(_keys.SPACE),
        "storage": mask_url(storage_url),
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def trial_config(trial: FrozenTrial, prov: dict[str, Any]) -> TrialConfig:
    """The resolved :class:`TrialConfig` of ``trial`` with ``params`` and ``provenance`` filled in.

    Raises:
        UserError: the trial has no ``gradsweep.config`` attr, or it does not validate.
    """
    raw = trial.user_attrs.get(_keys.CONFIG)
    if not isinstance(raw, dict):
        raise UserError(
            f"trial {trial.number} has no recorded config ({_keys.CONFIG}); was the study written by gradsweep?"
        )
    try:
        config = TrialConfig.from_dict(raw)
    except ValidationError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"trial {trial.number}: recorded config does not validate: {first}") from exc
    update: dict[str, Any] = {"provenance": prov}
    if not config.params and trial.params:
        update["params"] = dict(trial.params)
    return config.model_copy(update=update)


OMIT_WHEN_UNWRITTEN = ("batch_size", "accumulation_steps", "scale", "workers")
"""Config keys an objective may ignore: left out of an export when the space did not write them and
they hold TrialConfig's default (loading the file gives the same config back)."""


def omit_unwritten_defaults(config: dict[str, Any], written: list[str] | None) -> dict[str, Any]:
    """``config`` without the :data:`OMIT_WHEN_UNWRITTEN` keys the space left at their defaults.

    ``written`` is the study's ``gradsweep.space.keys`` (``None`` for a study from before it was
    recorded: nothing is omitted).

    Example:
        >>> omit_unwritten_defaults({"objective": "x", "batch_size": 64, "scale": "small"}, ["objective"])
        {'objective': 'x', 'scale': 'small'}
    """
    if written is None:
        return config
    fields = TrialConfig.model_fields
    return {
        key: value
        for key, value in config.items()
        if not (key in OMIT_WHEN_UNWRITTEN and key not in written and value == fields[key].default)
    }


def export_document(
    study: optuna.Study, *, storage_url: str, top: int = 1, trial: int | None = None
) -> dict[str, Any]:
    """The export file's content for the ``top`` best COMPLETE trials, or for trial number ``trial``.

    Args:
        study: the study.
        storage_url: its storage URL (masked in the provenance).
        top: how many configs (at least 1). With ``top > 1`` the list goes under ``configs``
            and the best one stays under ``config`` so the file still loads as one TrialConfig.
        trial: export this trial, whatever its final state (a pruned or failed trial too, to
            run it again with ``gradsweep try --config`` or enqueue it with ``--baseline``);
            its state is in the provenance.

    Returns:
        A JSON-able dict with ``config`` and ``provenance`` (and ``configs`` when ``top > 1``).

    Raises:
        UserError: no trial is COMPLETE (or ``trial`` is unknown or still running), or a trial
            lacks a valid recorded config.
        ValueError: ``top`` < 1.
    """
    written = study.user_attrs.get(_keys.SPACE_KEYS)

    def omit(config: dict[str, Any]) -> dict[str, Any]:
        return omit_unwritten_defaults(config, written if isinstance(written, list) else None)

    if trial is not None:
        chosen = _numbered_trial(study, trial)
        prov = provenance(study, chosen, storage_url=storage_url)
        return {"config": omit(trial_config(chosen, prov).to_dict()), "provenance": prov}
    best = best_trials(study.trials, study_direction(study), top=top)
    if not best:
        counts = _state_counts(study.trials)
        raise UserError(f"study {study.study_name!r} has no complete trial ({counts}); nothing to export")
    entries = []
    for trial in best:
        prov = provenance(study, trial, storage_url=storage_url)
        entries.append({"config": omit(trial_config(trial, prov).to_dict()), "provenance": prov})
    doc: dict[str, Any] = dict(entries[0])
    if top > 1:
        doc["configs"] = entries
    return doc


def _numbered_trial(study: optuna.Study, number: int) -> FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    match = [t for t in trials if t.number == number]
    if not match:
        last = max((t.number for t in trials), default=None)
        have = f"0..{last}" if last is not None else "none"
        raise UserError(
            f"--trial {number}: study {study.study_name!r} has no trial {number} (trials: {have})"
        )
    if not match[0].state.is_finished():
        raise UserError(
            f"--trial {number} is {match[0].state.name}; export a finished trial (complete, pruned or failed)"
        )
    return match[0]


def resolve_format(out: Path, fmt: ExportFormat | str | None) -> ExportFormat:
    """The format to write: ``fmt`` if given, else from the file suffix (``.json`` -> json, else yaml).

    Raises:
        UserError: ``fmt`` is yaml but the file ends in ``.json`` (it would not load back).
        ValueError: unknown ``fmt``.
    """
    suffix_json = out.suffix.lower() == ".json"
    if fmt is None:
        return ExportFormat.JSON if suffix_json else ExportFormat.YAML
    try:
        chosen = ExportFormat(fmt)
    except ValueError:
        raise ValueError(f"format must be one of yaml, json but got {fmt!r}") from None
    if chosen == ExportFormat.YAML and suffix_json:
        raise UserError(f"--format yaml does not match {out.name}: a .json file is read back as JSON")
    return chosen


def render(doc: dict[str, Any], fmt: ExportFormat) -> str:
    """The file text of ``doc`` in ``fmt``."""
    if fmt == ExportFormat.JSON:
        return json.dumps(json_safe(doc), indent=2, sort_keys=False) + "\n"
    return yaml.safe_dump(json_safe(doc), sort_keys=False)


def write_export(doc: dict[str, Any], out: Path, fmt: ExportFormat | str | None = None) -> Path:
    """Write ``doc`` to ``out`` atomically (a crash leaves no partial file).

    Raises:
        UserError: the output directory does not exist or ``out`` is a directory.
    """
    out = Path(out)
    chosen = resolve_format(out, fmt)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output directory {parent} does not exist")
    if out.is_dir():
        raise UserError(f"{out} is a directory; give a file name such as {out / 'best.yaml'}")
    text = render(doc, chosen)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _metric_name(metric: Any) -> Any:
    return metric.get("name") if isinstance(metric, dict) else metric


def _state_counts(trials: list[FrozenTrial]) -> str:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no trials"
