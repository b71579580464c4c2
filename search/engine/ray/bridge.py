"""The driver-side owner of the Optuna study during a Ray Tune sweep.

Ray Tune talks to the study only through a :class:`StudyBridge`: the searcher asks it for
the next config (Optuna ``ask`` + define-by-run sampling), the scheduler hands it every
result (intermediate value, health attrs, prune decision) and every error, and the searcher
tells it when a trial ended (one final Optuna state). The driver is therefore the only
process that writes the study, which keeps SQLite safe and keeps storage URLs off workers.

If the store stops taking writes (a read-only file system, a full disk, a database gone for
longer than the retries wait), the bridge stops the sweep instead of raising into Ray Tune:
it remembers the first error in :attr:`StudyBridge.store_error`, asks for no more trials,
stops the running ones (through ``on_store_error``) and records which trials it could not
finish in the store (:attr:`StudyBridge.unrecorded`; ``gradsweep resume`` reconciles them).

A trial's health report arrives as JSON in its Ray result (Ray results must be plain data) and
becomes a :class:`HealthReport` once; the bridge stores it (Contract 4) and hands that same
object to the pruner's decision, instead of the pruner reading it back from the study.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import optuna
import sqlalchemy.exc
from optuna.trial import TrialState

from gradsweep.objectives.health.verdict import HealthReport
from gradsweep.objectives.pruned import PruneKind
from gradsweep.search.attrs import (
    CONFIG,
    FAIL_REASON,
    HEALTH_FLAGS,
    HEALTH_HISTORY,
    HEALTH_LATEST,
    PAUSE,
    PRUNE_KIND,
    PRUNE_REASON,
    PRUNE_STEP,
    RAY_TRIAL_ID,
    THAW_OF,
    TOTAL_STEPS,
)
from gradsweep.search.engine.outcome import (
    R_CKPT_STEP,
    R_FINAL,
    R_HEALTH,
    R_STEP,
    R_TOTAL,
    R_TRIAL,
    R_VALUE,
    FinalState,
    Outcome,
    classify,
    failed,
)
from gradsweep.search.engine.ray.runtime import DEFAULT_STORE_WAIT_S
from gradsweep.search.engine.storage import retry_for
from gradsweep.search.engine.study import reconcile_running
from gradsweep.search.engine.tally import Tally
from gradsweep.search.freeze_thaw import FreezeThawPruner
from gradsweep.search.health_attrs import record_health
from gradsweep.search.prune_attrs import PruneRecord, write_prune_attrs
from gradsweep.spaces.sampling import resolve, suggest
from gradsweep.spaces.space import SearchSpace
from gradsweep.spaces.trial_config import TrialConfig

C_CONFIG = "gs_config"
C_OBJECTIVE = "gs_objective"
C_DEVICE = "gs_device"
#: a thawed trial's config: the persisted checkpoint of the paused trial it continues
C_RESUME = "gs_resume_from"
#: what :meth:`StudyBridge.ask` returns when it has no config now but may later (Ray asks again)
WAIT = "wait"
_RETRY_ON = (optuna.exceptions.StorageInternalError,)
#: user attrs of a paused trial its thawed continuation does not take over
_NOT_CARRIED = frozenset({PRUNE_KIND, PRUNE_REASON, PRUNE_STEP, PAUSE, RAY_TRIAL_ID, FAIL_REASON})
#: What a store that stopped taking writes raises (after the retries).
STORE_ERRORS = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError, OSError)
_T = TypeVar("_T")


def _carried_attrs(paused: optuna.trial.FrozenTrial, step: int) -> dict[str, Any]:
    """The user attrs a thaw of ``paused`` starts with: its own, less the prune's and the pause's, with
    the health record cut back to the checkpoint's ``step`` (the thaw trains the steps after it again
    when the checkpoint is older than the pause)."""
    attrs = {k: v for k, v in paused.user_attrs.items() if k not in _NOT_CARRIED}
    history = attrs.get(HEALTH_HISTORY)
    if isinstance(history, list):
        kept = [e for e in history if isinstance(e, dict) and int(e.get("step", 0)) <= step]
        attrs[HEALTH_HISTORY] = kept
        if kept:
            attrs[HEALTH_LATEST] = kept[-1]
        else:
            attrs.pop(HEALTH_LATEST, None)
    flags = attrs.get(HEALTH_FLAGS)
    if isinstance(flags, dict):
        attrs[HEALTH_FLAGS] = {rule: first for rule, first in flags.items() if int(first) <= step}
    return attrs


class _InvalidConfig(Exception):
    """A sampled combination the space refuses (already stored FAIL)."""


def store_error_line(exc: BaseException) -> str:
    """The first line of the root cause of a store error (Optuna's own wrapper says only "commit")."""
    root: BaseException = exc
    while root.__cause__ is not None or (root.__context__ is not None and not root.__suppress_context__):
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    text = str(getattr(root, "orig", None) or root).strip()
    # an error without words (psycopg's "()" for a connection cut mid-query) is named by its type
    return text.splitlines()[0] if any(c.isalnum() for c in text) else type(root).__name__


def _store_guarded(fallback: Any) -> Callable[[Callable[..., _T]], Callable[..., _T]]:
    """Run a bridge entry point under the bridge's lock; a store error stops the sweep instead of raising."""

    def wrap(method: Callable[..., _T]) -> Callable[..., _T]:
        @functools.wraps(method)
        def guarded(self: StudyBridge, *args: Any, **kwargs: Any) -> _T:
            with self._lock:
                try:
                    return method(self, *args, **kwargs)
                except STORE_ERRORS as exc:
                    self._store_failed(exc)
                    return fallback  # type: ignore[no-any-return]

        return guarded

    return wrap


class Decider(Protocol):
    """What the bridge needs of ``gradsweep.search.pruner.HealthPruner``."""

    def decide_with(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, latest: HealthReport | None
    ) -> Any: ...


@dataclass
class _Live:
    trial: optuna.Trial
    history_limit: int
    latest_health: HealthReport | None = None  # as stored last (the bridge is the trial's only writer)
    total_steps: int | None = None
    reported: set[int] = field(default_factory=set)
    health_history: list[dict[str, Any]] | None = None  # as stored (the bridge is the trial's only writer)
    checkpoint_step: int | None = None  # the report step of the newest checkpoint handed to Ray


class StudyBridge:
    """Ask / report / tell on the driver for the Ray Tune adapters.

    Args:
        study: the study (its sampler samples; its storage is written here only).
        space: the search space (define-by-run sampling, resolution to a TrialConfig).
        decider: the health pruner (``decide_with(study, frozen_trial, latest_health) -> PruneDecision``).
        objective: the objective spec the workers load (``contrastive``, ``pkg.mod:fn``, ...).
        n_trials: trials to start in this run.
        scale: scale override for resolved configs (None keeps the space's).
        seed: seed written into every resolved config (None keeps the space's).
        device: ``cuda`` or ``cpu`` for the workers.
        workers: DDP workers per trial, written into every resolved config (``config.workers``).
        abort_after: stop asking when this many first trials all failed (0 disables).
        on_store_error: called once when the store stops taking writes (the runner stops Tune).

    Raises:
        ValueError: if ``n_trials`` < 0 or ``abort_after`` < 0.
    """

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        decider: Decider,
        *,
        objective: str,
        n_trials: int,
        scale: str | None = None,
        seed: int | None = None,
        device: str = "cpu",
        workers: int = 1,
        abort_after: int = 5,
        on_store_error: Callable[[], None] | None = None,
        store_wait_s: float = DEFAULT_STORE_WAIT_S,
    ) -> None:
        if n_trials < 0:
            raise ValueError(f"n_trials must be >= 0 but got {n_trials}")
        if abort_after < 0:
            raise ValueError(f"abort_after must be >= 0 but got {abort_after}")
        self.study = study
        self.space = space
        self.decider = decider
        self.objective = objective
        self.n_trials = n_trials
        self.scale = scale
        self.seed = seed
        self.device = device
        self.workers = workers
        self.abort_after = abort_after
        self.tally = Tally(target=n_trials, direction=study.direction.name.lower())
        self.aborted: str | None = None
        self.on_store_error = on_store_error
        self.store_wait_s = store_wait_s
        self.store_error: str | None = None  # the first store error that stopped the sweep
        self.unrecorded: set[int] = set()  # trials left RUNNING in the store because it refused the write
        self._lock = threading.RLock()  # Tune's thread and the runner's cut-off watchdog
        self._asked = 0
        self._live: dict[str, _Live] = {}
        self._pending: dict[str, PruneRecord] = {}
        self._errors: dict[str, str] = {}
        base = getattr(decider, "base_pruner", None)
        #: the freeze-thaw rule when the sweep pauses instead of pruning (``--pruner freeze-thaw``)
        self.thawer: FreezeThawPruner | None = base if isinstance(base, FreezeThawPruner) else None
        self._checkpoints: dict[str, str] = {}  # Ray trial id -> its newest persisted checkpoint's path
        self._unthawable: set[int] = set()  # paused trials whose checkpoint is gone
        self._thaw_checked_at: int | None = None  # self._changes when no paused trial was worth thawing
        self._changes = 0  # trials finished or paused so far (a thaw choice can only change then)
        self._thaws: dict[int, int] = {}  # thaw's trial number -> the paused trial's number

    # --- helpers ------------------------------------------------------------------------
    def _retry(self, fn: Callable[[], _T]) -> _T:
        """One storage operation (a write, a read, or a sampler or pruner call that reads the
        study), retried on ``StorageInternalError``: a dropped connection or a database restart
        mid-sweep costs a pause, not the sweep (for up to ``store_wait_s`` seconds, ``--store-wait``)."""
        return retry_for(fn, wait_s=self.store_wait_s, retry_on=_RETRY_ON)

    def _store_failed(self, exc: BaseException) -> None:
        """Stop the sweep on the first store error; every trial still held stays unrecorded."""
        self.unrecorded.update(live.trial.number for live in self._live.values())
        if self.store_error is not None:
            return
        self.store_error = store_error_line(exc)
        if self.on_store_error is not None:
            self.on_store_error()

    @property
    def storage(self) -> optuna.storages.BaseStorage:
        return self.study._storage

    def number_of(self, ray_trial_id: str) -> int | None:
        """The Optuna trial number of a live Ray trial."""
        live = self._live.get(ray_trial_id)
        return live.trial.number if live else None

    @property
    def stopped(self) -> bool:
        """No more trials of any kind (new or thawed): aborted, or the store stopped taking writes."""
        return self.aborted is not None or self.store_error is not None

    @property
    def done_asking(self) -> bool:
        """No more new configs (a freeze-thaw sweep may still thaw paused trials)."""
        return self._asked >= self.n_trials or self.stopped

    # --- ask ----------------------------------------------------------------------------
    @_store_guarded(None)
    def ask(self, ray_trial_id: str) -> dict[str, Any] | str | None:
        """Start the next Optuna trial for Ray trial ``ray_trial_id``.

        With ``--pruner freeze-thaw`` a paused trial the learning-curve model now gives a chance
        comes first (:meth:`FreezeThawPruner.choose_thaw
        <gradsweep.search.freeze_thaw.FreezeThawPruner.choose_thaw>`): it continues from its
        checkpoint as a new Optuna trial (``gradsweep.thaw_of``). Then enqueued trials (baselines,
        retries), then the sampler. A sampled combination that does not resolve to a valid config
        is stored FAIL with the reason, and the next one is tried.

        Returns:
            The Ray config (trial number, resolved TrialConfig, objective spec, device); None
            when this run has started all its trials or was aborted; :data:`WAIT` when a
            freeze-thaw sweep has no new config left but running trials may still make a paused
            one worth thawing.
        """
        if self.thawer is not None and not self.stopped:
            thaw = self._thaw_next(ray_trial_id)
            if thaw is not None:
                return thaw
        while not self.done_asking:
            self._asked += 1
            trial = self.study.ask()  # not retried: a retry could create a second trial
            try:
                return self._start(trial, ray_trial_id)
            except STORE_ERRORS:
                self.unrecorded.add(trial.number)  # created RUNNING, then the store refused
                raise
            except _InvalidConfig:
                continue
        if self.thawer is not None and self._live and not self.stopped:
            return WAIT
        return None

    def _thaw_next(self, ray_trial_id: str) -> dict[str, Any] | None:
        """Continue the paused trial the freeze-thaw rule picks now, if any (see :meth:`ask`)."""
        assert self.thawer is not None
        thawer = self.thawer
        while self._thaw_checked_at != self._changes:
            choice = self._retry(lambda: thawer.choose_thaw(self.study, exclude=self._unthawable))
            if choice is None:
                self._thaw_checked_at = self._changes  # nothing changes until a trial finishes
                return None
            pause = choice.trial.user_attrs[PAUSE]
            path = str(pause.get("checkpoint") or "")
            if not path or ("://" not in path and not os.path.exists(path)):
                self._unthawable.add(choice.trial.number)  # its checkpoint is gone: it stays paused
                continue
            return self._thaw(
                choice.trial, path, int(pause.get("checkpoint_step", pause.get("step", 0))), ray_trial_id
            )
        return None

    def _thaw(
        self, paused: optuna.trial.FrozenTrial, path: str, step: int, ray_trial_id: str
    ) -> dict[str, Any]:
        """Create the trial that continues ``paused`` from its checkpoint at ``step`` (its curve up to it copied)."""
        config = dict(paused.user_attrs[CONFIG])
        limit = TrialConfig.from_dict(config).health.history  # before the trial exists: nothing to undo
        attrs = _carried_attrs(paused, step)
        attrs[THAW_OF] = paused.number
        attrs[RAY_TRIAL_ID] = ray_trial_id  # one write: the trial exists with everything or not at all
        values = {s: v for s, v in paused.intermediate_values.items() if s <= step}
        template = optuna.trial.FrozenTrial(
            number=0, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(), datetime_complete=None,
            params=dict(paused.params), distributions=dict(paused.distributions), user_attrs=attrs,
            system_attrs={}, intermediate_values=values, trial_id=0,
        )  # fmt: skip
        tid = self.storage.create_new_trial(
            self.study._study_id, template_trial=template
        )  # not retried: once
        trial = optuna.Trial(self.study, tid)
        history = attrs.get(HEALTH_HISTORY)
        latest = attrs.get(HEALTH_LATEST)
        total = attrs.get(TOTAL_STEPS)
        self._live[ray_trial_id] = _Live(
            trial,
            limit,
            latest_health=HealthReport.from_dict(latest) if isinstance(latest, dict) else None,
            total_steps=int(total) if isinstance(total, int) else None,
            reported=set(values),
            health_history=list(history) if isinstance(history, list) else None,
            checkpoint_step=step,
        )
        self._checkpoints[ray_trial_id] = (
            path  # paused again before its next checkpoint: this one still holds
        )
        self.tally.running += 1
        self._thaws[trial.number] = paused.number
        return {
            R_TRIAL: trial.number,
            C_CONFIG: config,
            C_OBJECTIVE: self.objective,
            C_DEVICE: self.device,
            C_RESUME: path,
        }

    def _start(self, trial: optuna.Trial, ray_trial_id: str) -> dict[str, Any]:
        """Sample and store the config of a new trial (raises ``_InvalidConfig`` after storing FAIL)."""
        try:
            # the sampler reads the study; a retry keeps the params already stored for this trial
            params = self._retry(lambda t=trial: suggest(self.space, t))
            config = resolve(self.space, params, scale=self.scale, seed=self.seed, workers=self.workers)
        except ValueError as exc:  # SpaceError: a combination the space's rules refuse
            self._tell(trial, failed(f"invalid config: {str(exc).splitlines()[0]}"))
            raise _InvalidConfig from None
        config_dict = config.to_dict()
        self._retry(lambda t=trial, c=config_dict: t.set_user_attr(CONFIG, c))
        self._retry(lambda t=trial: t.set_user_attr(RAY_TRIAL_ID, ray_trial_id))
        self._live[ray_trial_id] = _Live(trial, config.health.history)
        self.tally.running += 1
        return {
            R_TRIAL: trial.number,
            C_CONFIG: config_dict,
            C_OBJECTIVE: self.objective,
            C_DEVICE: self.device,
        }

    # --- report -------------------------------------------------------------------------
    def _store_health(self, live: _Live, health: dict[str, Any]) -> None:
        report = HealthReport.from_dict(health)
        if live.latest_health is not None and report.step == live.latest_health.step:
            return
        live.latest_health = report
        tid = live.trial._trial_id
        live.health_history = self._retry(
            lambda: record_health(
                self.storage, tid, report, limit=live.history_limit, history=live.health_history
            )
        )

    @_store_guarded(True)
    def on_result(self, ray_trial_id: str, result: dict[str, Any]) -> bool:
        """Record one intermediate result and decide whether to stop the trial.

        Writes the health attrs (Contract 4) and the intermediate value, then asks the health
        pruner, handing it the trial's latest health report as held here. A prune is remembered
        and applied when the stopped trial completes.

        Returns:
            True when the trial must stop (pruned, or the store stopped taking writes).
        """
        if self.store_error is not None:
            return True
        live = self._live.get(ray_trial_id)
        if live is None or result.get(R_FINAL) or ray_trial_id in self._pending:
            return ray_trial_id in self._pending
        value, step = result.get(R_VALUE), result.get(R_STEP)
        if value is None or step is None:
            return False
        health = result.get(R_HEALTH)
        if isinstance(health, str) and health:
            self._store_health(live, json.loads(health))
        total = result.get(R_TOTAL)
        if total is not None and int(total) != live.total_steps:
            live.total_steps = int(total)
            self._retry(lambda: live.trial.set_user_attr(TOTAL_STEPS, int(total)))
        if result.get(R_CKPT_STEP) is not None:  # this report handed Ray a checkpoint
            live.checkpoint_step = int(result[R_CKPT_STEP])
        value_f, step_i = float(value), int(step)
        if step_i not in live.reported:  # a retried trial reports its steps again; the first value stays
            live.reported.add(step_i)
            self._retry(lambda: live.trial.report(value_f, step_i))
        frozen = self._retry(lambda: self.storage.get_trial(live.trial._trial_id))
        # the base pruner reads the study; the health report is the one just stored
        decision = self._retry(lambda: self.decider.decide_with(self.study, frozen, live.latest_health))
        if not decision.prune:
            return False
        kind = str(getattr(decision.kind, "value", decision.kind) or "underperforming")
        reason = decision.reason or f"pruned at step {step} (value {value_f:.4g})"
        self._pending[ray_trial_id] = PruneRecord(kind, reason, int(step))
        return True

    def note_checkpoint(self, ray_trial_id: str, path: str | None) -> None:
        """The path of the newest checkpoint Ray persisted for a trial that ends now (a pause keeps it)."""
        with self._lock:
            if path:
                self._checkpoints[ray_trial_id] = path

    def _paused(self, ray_trial_id: str, live: _Live, record: PruneRecord) -> PruneRecord:
        """Store a pause's checkpoint on the trial; without one the pause is a prune (nothing to thaw from)."""
        path = self._checkpoints.pop(ray_trial_id, None)
        if path is None or live.checkpoint_step is None:
            reason = record.reason.removeprefix("paused: ")
            return PruneRecord(
                PruneKind.UNDERPERFORMING,
                f"{reason}; pruned, not paused: the objective saved no checkpoint to continue from "
                "(ctx.save_progress before ctx.report)",
                record.step,
            )
        pause = {"step": int(record.step), "checkpoint": path, "checkpoint_step": int(live.checkpoint_step)}
        tid = live.trial._trial_id
        self._retry(lambda: self.storage.set_trial_user_attr(tid, PAUSE, pause))
        return PruneRecord(
            record.kind, f"{record.reason}; checkpoint at step {live.checkpoint_step} kept", record.step
        )

    def on_error(self, ray_trial_id: str, text: str) -> None:
        """Remember the latest error of a trial (used if the trial ends in error, not if a retry succeeds)."""
        self._errors[ray_trial_id] = text or "error"

    # --- tell ---------------------------------------------------------------------------
    def _tell(self, trial: optuna.Trial, outcome: Outcome) -> None:
        tid = trial._trial_id
        prune, fail_reason = outcome.prune, outcome.fail_reason
        if prune is not None:
            self._retry(lambda: write_prune_attrs(self.storage, tid, prune))
        if fail_reason is not None:
            self._retry(lambda: self.storage.set_trial_user_attr(tid, FAIL_REASON, fail_reason))
        state = {
            FinalState.COMPLETE: TrialState.COMPLETE,
            FinalState.PRUNED: TrialState.PRUNED,
            FinalState.FAIL: TrialState.FAIL,
        }[outcome.state]
        values = outcome.value if outcome.state is FinalState.COMPLETE else None
        self._retry(lambda: self.study.tell(trial, values, state=state, skip_if_finished=True))
        self.tally.add(trial.number, outcome, thaw_of=self._thaws.get(trial.number))
        if (
            self.abort_after
            and self.aborted is None
            and self.tally.finished >= max(min(self.abort_after, self.n_trials), 1)
            and self.tally.failed == self.tally.finished
        ):
            self.aborted = f"the first {self.tally.finished} trials all failed; stopping the sweep early"

    @_store_guarded(None)
    def finish(
        self, ray_trial_id: str, result: dict[str, Any] | None, *, error: bool = False
    ) -> Outcome | None:
        """Store the one final state of Ray trial ``ray_trial_id``.

        Returns:
            The outcome, or None when the trial is unknown or already finished.
        """
        live = self._live.get(ray_trial_id)
        if live is None:
            return None
        if self.store_error is not None:  # no more writes: resume reconciles it
            self.unrecorded.add(live.trial.number)
            self._live.pop(ray_trial_id)
            self.tally.running -= 1
            return None
        error_text = self._errors.pop(ray_trial_id, None)  # also set by a failure Ray then retried
        if not error:
            error_text = None
        elif error_text is None:
            error_text = "the trial raised an error (see the Ray trial's error.txt)"
        pending = self._pending.get(ray_trial_id)
        if pending is not None and str(pending.kind) == PruneKind.PAUSED:
            pending = self._paused(ray_trial_id, live, pending)
        outcome = classify(result, pending=pending, error=error_text)
        self._tell(live.trial, outcome)  # a store error here keeps it live: reconcile tries again
        self._pending.pop(ray_trial_id, None)
        self._checkpoints.pop(ray_trial_id, None)
        self._live.pop(ray_trial_id)
        self.tally.running -= 1
        self._changes += 1
        return outcome

    def reconcile(self, reason: str) -> list[int]:
        """Mark every trial this bridge still holds as FAIL with ``reason`` (e.g. ``interrupted``).

        Safe to call twice and from another thread (the second call finds nothing). When the
        store refuses the writes, the trials are added to :attr:`unrecorded` and nothing raises.
        """
        with self._lock:
            ids = {live.trial._trial_id for live in self._live.values()}
            numbers = {live.trial.number for live in self._live.values()}
            outcome = failed(reason)
            for live in self._live.values():
                self.tally.add(live.trial.number, outcome, thaw_of=self._thaws.get(live.trial.number))
            self.tally.running = 0
            self._live.clear()
            if not ids:
                return []
            try:  # even after a store error: the store may take writes again
                return reconcile_running(self.study, reason=reason, only=ids)
            except STORE_ERRORS as exc:
                self.unrecorded.update(numbers)
                if self.store_error is None:
                    self.store_error = store_error_line(exc)
                return []
