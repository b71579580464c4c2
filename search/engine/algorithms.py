"""Optuna samplers and base pruners by name (the ``--sampler`` / ``--pruner`` choices).

The base pruner is what the health pruner wraps: a trial is stopped when the health rules
say unstable *or* the base pruner says underperforming.

Example:
    >>> type(make_sampler("tpe", seed=0)).__name__
    'TPESampler'
    >>> type(make_base_pruner("catchup")).__name__
    'CatchUpPruner'
"""

from __future__ import annotations

import warnings
from enum import StrEnum

import optuna

from gradsweep.errors import UserError
from gradsweep.search.catchup import CatchUpPruner
from gradsweep.search.freeze_thaw import FreezeThawPruner
from gradsweep.search.pruner import DEFAULT_N_STARTUP_TRIALS

#: The ``--pruner`` default: measured against ``median`` in BENCHMARKS.md "Search efficiency".
DEFAULT_PRUNER = "catchup"


class SamplerName(StrEnum):
    TPE = "tpe"
    RANDOM = "random"
    GP = "gp"
    CMAES = "cmaes"


class PrunerName(StrEnum):
    CATCHUP = "catchup"
    MEDIAN = "median"
    PERCENTILE = "percentile"
    HYPERBAND = "hyperband"
    SUCCESSIVE_HALVING = "successive_halving"
    WILCOXON = "wilcoxon"
    PATIENT = "patient"
    FREEZE_THAW = "freeze_thaw"
    NONE = "none"


def _choice(enum: type[StrEnum], value: str, flag: str) -> StrEnum:
    try:
        return enum(str(value).lower().replace("-", "_"))
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise UserError(f"{flag} must be one of {allowed}, got {value!r}") from None


def parse_sampler(name: str) -> SamplerName:
    """``name`` as a :class:`SamplerName`.

    Raises:
        UserError: unknown name (the message lists the choices).
    """
    return SamplerName(_choice(SamplerName, name, "--sampler"))


def parse_pruner(name: str) -> PrunerName:
    """``name`` as a :class:`PrunerName`.

    Raises:
        UserError: unknown name (the message lists the choices).
    """
    return PrunerName(_choice(PrunerName, name, "--pruner"))


def make_sampler(
    name: str, *, seed: int | None = None, n_startup_trials: int = 10
) -> optuna.samplers.BaseSampler:
    """Build the sampler called ``name``.

    TPE is multivariate with the constant liar (parallel trials see each other's running
    configs as pessimistic results), so concurrent trials spread out instead of colliding.

    Args:
        name: one of ``tpe`` (default), ``random``, ``gp``, ``cmaes``.
        seed: makes the sampled configs reproducible.
        n_startup_trials: random trials before the model-based samplers take over.

    Returns:
        An Optuna sampler.

    Raises:
        UserError: unknown name, or ``cmaes`` without the ``cmaes`` package.
    """
    kind = parse_sampler(name)
    if kind is SamplerName.TPE:
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, constant_liar=True, n_startup_trials=n_startup_trials
        )
    if kind is SamplerName.RANDOM:
        return optuna.samplers.RandomSampler(seed=seed)
    if kind is SamplerName.GP:
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials)
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise UserError("--sampler cmaes needs the cmaes package: pip install cmaes") from None
    return optuna.samplers.CmaEsSampler(
        seed=seed, n_startup_trials=n_startup_trials, warn_independent_sampling=False
    )


def sampler_warning(sampler: str) -> str | None:
    """A one-line warning for a sampler that cannot learn from pruned trials, else None.

    Optuna's ``GPSampler`` and ``CmaEsSampler`` model finished trials only. A sweep always prunes
    (the health rules stop unstable trials whatever ``--pruner`` says), and these samplers keep
    proposing configs like the stopped ones (BENCHMARKS.md, "Could the sampler do it?": 97 of 243
    trials unstable with ``gp`` against 11 of 112 with ``tpe``).

    Raises:
        UserError: unknown name (the message lists the choices).

    Example:
        >>> sampler_warning("tpe") is None
        True
        >>> sampler_warning("gp")
        '--sampler gp models finished trials only: the trials the health rules or --pruner stop are invisible to it, so it may keep proposing configs like them (--sampler tpe learns from them)'
    """
    kind = parse_sampler(sampler)
    if kind not in (SamplerName.GP, SamplerName.CMAES):
        return None
    return (
        f"--sampler {kind.value} models finished trials only: the trials the health rules or --pruner stop are "
        "invisible to it, so it may keep proposing configs like them (--sampler tpe learns from them)"
    )


def make_base_pruner(
    name: str, *, n_startup_trials: int = DEFAULT_N_STARTUP_TRIALS, n_warmup_steps: int = 0
) -> optuna.pruners.BasePruner:
    """Build the Optuna pruner called ``name`` (the health pruner wraps it).

    Args:
        name: ``catchup`` (default: :class:`gradsweep.search.catchup.CatchUpPruner`), ``median``,
            ``percentile`` (25th), ``hyperband``, ``successive_halving``, ``wilcoxon``,
            ``patient`` (median with patience 2), ``freeze-thaw`` (pause and thaw on a learning-curve
            model: :class:`gradsweep.search.freeze_thaw.FreezeThawPruner`) or ``none``.
        n_startup_trials: finished trials before catchup/median/percentile may prune.
        n_warmup_steps: steps of each trial before catchup/median/percentile may prune.

    Returns:
        An Optuna pruner.

    Raises:
        UserError: unknown name (the message lists the choices).
    """
    kind = parse_pruner(name)
    with warnings.catch_warnings():  # Wilcoxon / Patient are "experimental" in Optuna: not the user's concern
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _base_pruner(kind, n_startup_trials, n_warmup_steps)


def _base_pruner(kind: PrunerName, n_startup_trials: int, n_warmup_steps: int) -> optuna.pruners.BasePruner:
    if kind is PrunerName.CATCHUP:
        return CatchUpPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps)
    if kind is PrunerName.MEDIAN:
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps)
    if kind is PrunerName.PERCENTILE:
        return optuna.pruners.PercentilePruner(
            25.0, n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps
        )
    if kind is PrunerName.HYPERBAND:
        return optuna.pruners.HyperbandPruner()
    if kind is PrunerName.SUCCESSIVE_HALVING:
        return optuna.pruners.SuccessiveHalvingPruner()
    if kind is PrunerName.WILCOXON:
        return optuna.pruners.WilcoxonPruner()
    if kind is PrunerName.FREEZE_THAW:
        return FreezeThawPruner()
    if kind is PrunerName.PATIENT:
        return optuna.pruners.PatientPruner(
            optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps),
            patience=2,
        )
    return optuna.pruners.NopPruner()
