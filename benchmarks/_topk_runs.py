"""The "one interval, then top k" baseline of the search-efficiency benchmark (plain Optuna, no Ray).

Egele et al., "Is one epoch all you need for multi-fidelity hyperparameter optimization?"
(arXiv 2307.15422): train every sampled config for one epoch, then train only the best k of them
to the end. Here one epoch is one report interval (the objectives report once per epoch), and
configs come from Optuna's ``RandomSampler`` seeded with the run's seed, as in the paper (random
configs; no model picks them).

The run in order:

1. ``n`` configs, each trained for exactly one report interval and checkpointed there (the
   objective saves its progress before each report; the reporter stops it at its first report);
2. the best ``k`` of them by that first value (non-finite ones last), best first, each resumed
   from its checkpoint and trained to the end.

Sizing (:func:`topk_sizes`), the same rule for every objective: ``k = max(1, round(b / 3))`` for a
budget of ``b`` full trials, so at most about a third of the budget goes to continuations (each
costs a full trial less the first interval) and the rest screens as many configs as fit:
``n = (budget - k * (full - interval)) // interval``. ``n * interval + k * (full - interval)``
never exceeds the budget. Below one full trial no config can finish: ``k = 0`` and ``n`` screens
what fits.

Records (:class:`~benchmarks._common.TrialRecord`), in the order the budget was spent: the ``n``
first intervals (``paused=True, pruned=True, kind="paused"``; ``thawed=True`` on the ones
continued), then the ``k`` continuations (``start_step`` = the first report's step,
``thaw_of`` = the index of the first interval's record).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from pathlib import Path

import optuna

from benchmarks._common import CountingReporter, TrialRecord
from benchmarks._optuna_runs import RunSpec
from benchmarks._segments import PAUSED
from gradsweep.objectives.api import TrialContext, run_objective
from gradsweep.objectives.registry import load_objective
from gradsweep.spaces.sampling import resolve, suggest


def topk_sizes(budget: int, full_steps: int, interval: int) -> tuple[int, int]:
    """``(n, k)``: configs trained for one interval, and how many of them go on to the end.

    Examples:
        >>> topk_sizes(3 * 64, 64, 8)      # 3 full trials: 1 continuation, 17 first intervals
        (17, 1)
        >>> topk_sizes(30 * 64, 64, 8)     # 30 full trials: 10 continuations
        (170, 10)
        >>> topk_sizes(32, 64, 8)          # below one full trial: nothing can finish
        (4, 0)

    Raises:
        ValueError: unless ``0 < interval <= full_steps`` and ``budget >= 0``.
    """
    if not 0 < interval <= full_steps or budget < 0:
        raise ValueError(
            f"need 0 < interval <= full_steps and budget >= 0 but got {interval}, {full_steps}, {budget}"
        )
    if budget < full_steps:
        return budget // interval, 0
    k = max(1, round(budget / full_steps / 3))
    n = (budget - k * (full_steps - interval)) // interval
    return n, min(k, n)


def rank_first_values(values: list[float], direction: str) -> list[int]:
    """Indices of ``values`` best first (non-finite last, ties by index).

    Example:
        >>> rank_first_values([0.2, float("nan"), 0.5, 0.2], "maximize")
        [2, 0, 3, 1]
    """
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(
        range(len(values)),
        key=lambda i: (
            not math.isfinite(values[i]),
            sign * values[i] if math.isfinite(values[i]) else 0.0,
            i,
        ),
    )


class _FirstReport(Exception):
    """Raised by :class:`_StopAtFirst` at the first report (the objective has checkpointed before it)."""


class _StopAtFirst(CountingReporter):
    """Records every report and stops the objective at its first one, unless it is the final one."""

    def __init__(self, full_steps: int) -> None:
        super().__init__()
        self.full_steps = full_steps

    def report(self, value: float, step: int, health: object | None) -> None:
        super().report(value, step, health)
        if step < self.full_steps:
            raise _FirstReport


def run_topk(spec: RunSpec, *, full_steps: int, interval: int) -> list[TrialRecord]:
    """One interval for each of ``n`` random configs, then the best ``k`` to the end (see the module).

    Returns:
        The ``n`` first-interval records, then the ``k`` continuations, in the order they ran.
    """
    n, k = topk_sizes(spec.budget, full_steps, interval)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=spec.direction, sampler=optuna.samplers.RandomSampler(seed=spec.seed)
    )
    fn = load_objective(spec.space.objective)
    records: list[TrialRecord] = []
    firsts: list[float] = []
    with tempfile.TemporaryDirectory(prefix="gradsweep-bench-topk-") as tmp:
        dirs: dict[int, Path] = {}
        for index in range(n):
            trial = study.ask()
            params = suggest(spec.space, trial)
            config = resolve(spec.space, params, scale=spec.scale, seed=spec.config_seed)
            dirs[index] = Path(tmp) / f"config-{index}"
            reporter = _StopAtFirst(full_steps)
            record = TrialRecord(params=dict(params), reports=reporter.reports)
            records.append(record)
            ctx = TrialContext(config, reporter=reporter, device="cpu", checkpoint_dir=dirs[index])
            try:
                value = run_objective(fn, config, ctx)
            except _FirstReport:
                record.paused, record.pruned, record.kind = True, True, PAUSED
            except ValueError:  # a non-finite final value: the reports are what counts
                pass
            else:  # one interval was the whole trial
                record.final_value = value
            first = record.reports[0].value if record.paused else math.nan
            firsts.append(first)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            # keep only the checkpoints that can still make the top k
            keep = set(rank_first_values(firsts, spec.direction)[:k])
            for old in [i for i in dirs if i not in keep]:
                shutil.rmtree(dirs.pop(old), ignore_errors=True)
        for index in rank_first_values(firsts, spec.direction)[:k]:
            if not records[index].paused:
                continue
            first = records[index]
            first.thawed = True
            config = resolve(spec.space, first.params, scale=spec.scale, seed=spec.config_seed)
            counter = CountingReporter()
            record = TrialRecord(
                params=dict(first.params), reports=counter.reports,
                start_step=first.reports[-1].step, thaw_of=index,
            )  # fmt: skip
            records.append(record)
            ctx = TrialContext(config, reporter=counter, device="cpu", checkpoint_dir=dirs[index])
            with contextlib.suppress(ValueError):  # a non-finite final value: its reports count
                record.final_value = run_objective(fn, config, ctx)
    return records
