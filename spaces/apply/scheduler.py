"""StagedScheduler: one LR schedule across training stages, with per-stage freezing and multipliers.

Each optimizer step ``s`` every group gets

    lr = group["base_lr"] * stage.multiplier(tower) * schedule_factor(s)

and 0 for towers the stage does not train or that are frozen. How ``schedule_factor`` works:

1. Stage ``i`` lasts ``stage.steps`` or ``stage.epochs * steps_per_epoch`` steps; the stages
   run back to back and ``total_steps`` is their sum.
2. A schedule starts at step 0 with horizon ``total_steps``. Stages with ``schedule: continue``
   (the default) keep its progress: an unfreeze never resets or rewarms the LR.
3. A stage with ``schedule: restart`` starts a fresh schedule at its first step whose horizon
   is the rest of training (``total_steps - stage_start``), warmup included. This is seed 002's
   "rebuild the scheduler with the remaining epochs" behaviour, available on purpose so a
   search can compare it; the earlier schedule is cut off where the restart begins.
4. Kinds (``config.schedule.kind``): ``cosine`` (linear warmup from 0, cosine to
   ``min_lr_ratio``), ``onecycle`` (torch ``OneCycleLR``'s shape; the warmup fields are
   ignored since the rise is part of it), ``constant`` (warmup, then 1), ``plateau`` (warmup,
   then ``factor ** reductions`` floored at ``min_lr_ratio``; :meth:`step_metric` counts
   reductions with ReduceLROnPlateau's rule; a restart forgets them).

At each stage entry (construction included) parameters of towers the stage does not train,
and of frozen towers, get ``requires_grad=False`` and their ``.grad`` dropped; the others get
``requires_grad=True``.

Example:
    >>> import torch
    >>> from gradsweep.spaces.apply.optimizer import build_optimizer
    >>> from gradsweep.spaces.trial_config import StageConfig, TowerConfig, TrialConfig
    >>> cfg = TrialConfig(objective="x", towers=[TowerConfig(name="all", patterns=["*"], lr=1.0)],
    ...                   stages=[StageConfig(name="s", steps=10)])
    >>> sched = StagedScheduler(build_optimizer(torch.nn.Linear(2, 2), cfg), cfg, steps_per_epoch=5)
    >>> sched.total_steps, round(sched.lr_at(5)["all"], 3)
    (10, 0.5)
"""

from __future__ import annotations

import bisect
from typing import Any

import torch
from torch import nn

from gradsweep.spaces.apply.schedule_math import (
    PlateauState,
    onecycle,
    plateau_factor,
    warmup_constant,
    warmup_cosine,
    warmup_length,
)
from gradsweep.spaces.trial_config import ScheduleKind, StageConfig, TrialConfig

_STATE_VERSION = 1


class StagedScheduler:
    """Per-step LR and trainability control for a multi-tower, multi-stage run.

    Call :meth:`step` once after every ``optimizer.step()`` (also when a GradScaler skipped
    it, so the schedule stays aligned with the data), and :meth:`step_metric` at evaluation.

    Args:
        optimizer: built by :func:`~gradsweep.spaces.apply.optimizer.build_optimizer` (groups need the
            ``tower`` and ``base_lr`` keys).
        config: the resolved trial config.
        steps_per_epoch: optimizer steps per epoch, used for stages given in epochs.
        model: optional; when given, every trainable parameter of it must be in the optimizer.

    Raises:
        ValueError: groups without ``tower``/``base_lr``, an unknown tower, ``steps_per_epoch < 1``,
            or model parameters missing from the optimizer.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        config: TrialConfig,
        steps_per_epoch: int,
        model: nn.Module | None = None,
    ) -> None:
        if int(steps_per_epoch) < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 but got {steps_per_epoch}")
        for i, group in enumerate(optimizer.param_groups):
            if "tower" not in group or "base_lr" not in group:
                raise ValueError(
                    f"optimizer param group {i} has no 'tower'/'base_lr' keys; build the optimizer "
                    f"with gradsweep.spaces.apply.build_optimizer"
                )
            config.tower(group["tower"])  # KeyError names the known towers
        if model is not None:
            in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
            missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in in_opt]
            if missing:
                raise ValueError(f"trainable model parameters missing from the optimizer: {missing[:5]}")
        self.optimizer = optimizer
        self.config = config
        self.steps_per_epoch = int(steps_per_epoch)
        self._lengths = [
            s.steps if s.steps is not None else s.epochs * self.steps_per_epoch for s in config.stages
        ]
        self._starts = [sum(self._lengths[:i]) for i in range(len(self._lengths))]
        self._total = sum(self._lengths)
        seg: list[int] = []
        for i, stage in enumerate(config.stages):
            seg.append(self._starts[i] if i == 0 or stage.schedule == "restart" else seg[-1])
        self._segment_starts = seg
        p = config.schedule.plateau
        self._plateau = PlateauState(mode=p.mode, patience=p.patience, threshold=p.threshold)
        self._reductions: dict[int, int] = {}
        self._global_step = 0
        self._stage_index = 0
        self._enter_stage(0)
        self._apply_lrs()

    # --- properties ------------------------------------------------------------------
    @property
    def global_step(self) -> int:
        """Optimizer steps taken so far (the index of the next step)."""
        return self._global_step

    @property
    def total_steps(self) -> int:
        """Steps over all stages."""
        return self._total

    @property
    def stage_index(self) -> int:
        return self._stage_index

    @property
    def stage(self) -> StageConfig:
        return self.config.stages[self._stage_index]

    @property
    def last_lr(self) -> dict[str, float]:
        """``{tower: lr}`` currently set on the optimizer."""
        return self.lr_at(self._global_step)

    # --- pure queries ----------------------------------------------------------------
    def stage_at(self, step: int) -> int:
        """Index of the stage that step ``step`` belongs to (the last stage past the end)."""
        return max(0, min(bisect.bisect_right(self._starts, step) - 1, len(self._starts) - 1))

    def stage_bounds(self, index: int) -> tuple[int, int]:
        """``(first step, end step exclusive)`` of stage ``index``."""
        return self._starts[index], self._starts[index] + self._lengths[index]

    def schedule_factor(self, step: int) -> float:
        """The schedule's factor at ``step`` (before stage multipliers); plateau uses the
        reductions recorded so far in that step's schedule segment."""
        sched = self.config.schedule
        seg_start = self._segment_starts[self.stage_at(step)]
        local, horizon = step - seg_start, self._total - seg_start
        if sched.kind == ScheduleKind.ONECYCLE:
            oc = sched.onecycle
            return onecycle(local, horizon, oc.pct_start, oc.div_factor, oc.final_div_factor)
        warm = warmup_length(horizon, sched.warmup_steps, sched.warmup_fraction)
        if sched.kind == ScheduleKind.COSINE:
            return warmup_cosine(local, horizon, warm, sched.min_lr_ratio)
        if sched.kind == ScheduleKind.CONSTANT:
            return warmup_constant(local, warm)
        if sched.kind == ScheduleKind.PLATEAU:
            n = self._reductions.get(seg_start, 0)
            return plateau_factor(local, warm, sched.plateau.factor, n, sched.min_lr_ratio)
        raise ValueError(
            f"schedule.kind must be one of {[k.value for k in ScheduleKind]} but got {sched.kind!r}"
        )

    def lr_at(self, step: int) -> dict[str, float]:
        """``{tower: lr}`` at optimizer step ``step`` (no side effects)."""
        stage = self.config.stages[self.stage_at(step)]
        factor = self.schedule_factor(step)
        out: dict[str, float] = {}
        for tower in self.config.towers:
            trains = stage.trains(tower.name) and not tower.frozen
            scale = stage.multiplier(tower.name) * factor if trains else 0.0
            out[tower.name] = self.config.effective_lr(tower.name) * scale
        return out

    # --- stepping --------------------------------------------------------------------
    def step(self) -> None:
        """Advance one optimizer step; enter the next stage when its first step is reached."""
        self._global_step += 1
        index = self.stage_at(self._global_step)
        if index != self._stage_index:
            self._enter_stage(index)
        self._apply_lrs()

    def step_metric(self, value: float) -> bool:
        """Feed an evaluation metric to the plateau rule (a no-op returning False for other kinds).

        Args:
            value: the metric (``config.schedule.plateau.mode`` says whether higher is better).

        Returns:
            True when this evaluation reduced the LR.
        """
        if self.config.schedule.kind != ScheduleKind.PLATEAU:
            return False
        reduced = self._plateau.update(float(value))
        if reduced:
            seg_start = self._segment_starts[self._stage_index]
            self._reductions[seg_start] = self._plateau.reductions
            self._apply_lrs()
        return reduced

    def _enter_stage(self, index: int) -> None:
        stage = self.config.stages[index]
        if index > 0 and stage.schedule == "restart" and index != self._stage_index:
            self._plateau.reset()
        self._stage_index = index
        for group in self.optimizer.param_groups:
            tower = self.config.tower(group["tower"])
            trains = stage.trains(tower.name) and not tower.frozen
            for p in group["params"]:
                p.requires_grad_(trains)
                if not trains:
                    p.grad = None

    def _apply_lrs(self) -> None:
        stage = self.stage
        factor = self.schedule_factor(self._global_step)
        for group in self.optimizer.param_groups:
            tower = self.config.tower(group["tower"])
            trains = stage.trains(tower.name) and not tower.frozen
            group["lr"] = group["base_lr"] * stage.multiplier(tower.name) * factor if trains else 0.0

    # --- persistence -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state: step, stage and plateau history."""
        return {
            "version": _STATE_VERSION,
            "global_step": self._global_step,
            "stage_index": self._stage_index,
            "total_steps": self._total,
            "plateau": {
                "best": self._plateau.best,
                "num_bad": self._plateau.num_bad,
                "reductions": self._plateau.reductions,
            },
            "segment_reductions": {str(k): v for k, v in self._reductions.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`: restores step, stage trainability and LRs.

        Raises:
            ValueError: if the saved run had a different ``total_steps`` (another stage plan
                or ``steps_per_epoch``).
        """
        if int(state["total_steps"]) != self._total:
            raise ValueError(
                f"scheduler state is for total_steps={state['total_steps']} but this run has "
                f"total_steps={self._total}; stages or steps_per_epoch differ"
            )
        self._global_step = int(state["global_step"])
        plateau = state["plateau"]
        self._plateau.best = None if plateau["best"] is None else float(plateau["best"])
        self._plateau.num_bad = int(plateau["num_bad"])
        self._plateau.reductions = int(plateau["reductions"])
        self._reductions = {int(k): int(v) for k, v in state["segment_reductions"].items()}
        self._stage_index = self.stage_at(self._global_step)
        self._enter_stage(self._stage_index)
        self._apply_lrs()
