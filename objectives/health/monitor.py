"""HealthMonitor: per-step gradient statistics on the device, one host read and a verdict every k steps.

Call :meth:`HealthMonitor.observe` once per optimizer step after ``backward`` (and
``scaler.unscale_`` and clipping), before ``optimizer.step()``. Each call writes one row of
per-tower pre/post-clip grad norms, the global norms, the loss and the GradScaler scale into a
preallocated ``(k, 2T + 4)`` device buffer: a fused ``torch._foreach_norm`` over the gradients
(skipped when a ``ClipResult`` already carries the norms), a segment sum into per-tower norms and
one ``cat`` into the buffer row, with no host sync. Every ``k = health.check_every`` steps the
window is read back with ONE transfer (together with parameter norms and AdamW decay ratios
computed then), summarized, and judged by :mod:`gradsweep.objectives.health.rules`.

Metric keys of a :class:`~gradsweep.objectives.health.verdict.HealthReport` (window = the k steps of one check;
norms are over the steps whose value is finite):

| key | meaning |
|---|---|
| ``health/<tower>/grad_norm_pre`` | mean pre-clip grad norm of the tower (steps with grads) |
| ``health/<tower>/grad_norm_pre_max`` | max pre-clip grad norm of the tower |
| ``health/<tower>/grad_norm_post`` | mean post-clip grad norm (= pre without a ``ClipResult``) |
| ``health/<tower>/param_norm`` | norm of all the tower's parameters at the check |
| ``health/<tower>/decay_to_grad`` | ``lr*wd*||w|| / gradient-driven step`` over decayed groups (0 without decay) |
| ``health/<tower>/nonfinite_steps`` | steps with a NaN/inf grad norm in the tower |
| ``health/<tower>/steps_with_grad`` | steps in which the tower had gradients (0 = frozen) |
| ``health/grad_norm_global`` | mean global pre-clip grad norm |
| ``health/grad_norm_global_max`` | max global pre-clip grad norm |
| ``health/grad_norm_global_post`` | mean global post-clip grad norm |
| ``health/nonfinite_steps`` | steps with a non-finite loss or gradients |
| ``health/nonfinite_loss_steps`` | steps with a non-finite loss |
| ``health/nonfinite_steps_total`` | the same as ``nonfinite_steps``, since the start |
| ``health/scaler/scale`` | GradScaler scale at the last step (1.0 without a scaler) |
| ``health/scaler/skipped_steps`` | steps the enabled GradScaler skipped (non-finite grads) |
| ``health/scaler/skipped_steps_total`` | the same, since the start |
| ``health/scaler/overflow_streak`` | longest run of skipped steps reaching into the window |
| ``health/loss`` | mean finite loss |
| ``health/loss_last`` | loss at the last step |
| ``health/loss_spike_z`` | largest robust z-score of a step loss (0 before 5 losses) |
| ``health/output/<name>/norm`` | mean row L2 norm passed to :meth:`HealthMonitor.observe_output` |
| ``health/steps`` | steps in the window |

Example:
    >>> import torch
    >>> from gradsweep.spaces.health import HealthConfig
    >>> model = torch.nn.Linear(4, 2)
    >>> opt = torch.optim.AdamW([{"params": model.parameters(), "tower": "all"}], lr=1e-2)
    >>> mon = HealthMonitor(opt, HealthConfig(check_every=2))
    >>> for step in range(2):
    ...     loss = model(torch.randn(8, 4)).pow(2).mean(); loss.backward()
    ...     report = mon.observe(loss.detach(), step=step); opt.step(); opt.zero_grad()
    >>> str(report.verdict), sorted(report.metrics)[0]
    ('healthy', 'health/all/decay_to_grad')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from gradsweep.objectives.health.decay import decay_and_update_steps
from gradsweep.objectives.health.judge import Judge
from gradsweep.objectives.health.recording import emit
from gradsweep.objectives.health.rules import RuleContext
from gradsweep.objectives.health.stats import aggregate_norms, decay_to_grad_ratio, segment_norms
from gradsweep.objectives.health.summary import CheckSummary, row_width, summarize_window
from gradsweep.objectives.health.verdict import HealthReport, Verdict, worst
from gradsweep.spaces.health import HealthConfig
from gradsweep.spaces.trial_config import ClipConfig, TowerConfig


class ClipResultLike(Protocol):
    """What :meth:`HealthMonitor.observe` reads from ``gradsweep.spaces.apply.Clipper.clip()``'s result."""

    pre: dict[str, torch.Tensor]
    post: dict[str, torch.Tensor]
    global_pre: torch.Tensor | None
    global_post: torch.Tensor | None


class HealthMonitor:
    """Watches one optimizer's gradients per tower and judges them every ``check_every`` steps.

    Args:
        optimizer: its param groups carry a ``"tower"`` key (Contract 2); groups without one are
            named ``group<i>``. Groups of one tower are aggregated.
        health_config: rules, thresholds and ``check_every`` (k).
        clip: global clipping (its ``max_norm`` feeds the exploding rule; ``norm_type`` the norms).
        towers: tower configs (per-tower ``clip_max_norm``, ``frozen``, and the tower order).
        scaler: a ``torch.amp.GradScaler``; when enabled, non-finite grads count as skipped steps.

    Raises:
        ValueError: if the optimizer has no parameters.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        health_config: HealthConfig,
        *,
        clip: ClipConfig | None = None,
        towers: Sequence[TowerConfig] | None = None,
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.config = health_config
        self.clip = clip
        self.scaler = scaler
        self.k = health_config.check_every
        self.norm_type = float(clip.norm_type) if clip is not None else 2.0
        configs = {t.name: t for t in towers or ()}
        names = [t.name for t in towers or ()]
        for i, group in enumerate(optimizer.param_groups):
            name = str(group.get("tower", f"group{i}"))
            if name not in names:
                names.append(name)
        self.towers: list[str] = names
        self._index = {n: i for i, n in enumerate(names)}
        self._params: list[tuple[torch.nn.Parameter, int]] = []
        for i, group in enumerate(optimizer.param_groups):
            t = self._index[str(group.get("tower", f"group{i}"))]
            self._params += [(p, t) for p in group["params"]]
        if not self._params:
            raise ValueError("optimizer has no parameters to monitor")
        self.device = self._params[0][0].device
        self._plist = [p for p, _ in self._params]
        self._ptower = [t for _, t in self._params]
        self._params_one_device = all(p.device == self.device for p in self._plist)
        self._segments_one_device = True
        self._ctx = RuleContext(
            tower_clip={n: configs[n].clip_max_norm if n in configs else None for n in names},
            global_clip=clip.max_norm if clip is not None else None,
            frozen=frozenset(n for n, c in configs.items() if c.frozen),
            scaler_enabled=bool(scaler is not None and scaler.is_enabled()),
        )
        self._buf = torch.zeros(self.k, row_width(len(names)), device=self.device)
        self._zero = torch.zeros((), device=self.device)
        self._one = torch.ones((), device=self.device)
        self._segments: dict[tuple[bool, ...] | None, tuple[torch.Tensor, tuple[bool, ...], bool]] = {}
        self._outputs: dict[str, tuple[torch.Tensor, int]] = {}
        self._steps: list[int] = []
        self._masks: list[tuple[bool, ...]] = []
        self.judge = Judge(health_config, self._ctx)
        self._totals = {"nonfinite": 0, "skipped": 0}

    # --- per step (device only) ----------------------------------------------------------------
    def observe(
        self, loss: torch.Tensor | float, clip_result: ClipResultLike | None = None, *, step: int
    ) -> HealthReport | None:
        """Record one optimizer step; every ``check_every`` calls, read back and judge the window.

        Args:
            loss: this step's loss (a 0-dim tensor stays on the device; a float is fine too).
            clip_result: the clipper's result; gives true pre-clip norms. Without it the monitor
                measures the gradients as they are now (post-clip if the caller already clipped).
            step: the optimizer step (used in reasons and ``HealthReport.step``).

        Returns:
            A :class:`HealthReport` at a check step, else ``None`` (always ``None`` when disabled).
        """
        if not self.config.enabled:
            return None
        grads, segments, mask = self._grads()
        if clip_result is not None and all(
            self.towers[t] in clip_result.pre for t in range(len(mask)) if mask[t]
        ):
            pre = torch.stack([self._tower_value(clip_result.pre, t, mask) for t in range(len(mask))])
            post = torch.stack([self._tower_value(clip_result.post, t, mask) for t in range(len(mask))])
            gpre = (
                clip_result.global_pre
                if clip_result.global_pre is not None
                else aggregate_norms(pre, self.norm_type)
            )
            gpost = (
                clip_result.global_post
                if clip_result.global_post is not None
                else aggregate_norms(post, self.norm_type)
            )
        else:
            norms = self._norms(grads, self._segments_one_device)
            pre = segment_norms(norms, segments, len(self.towers), self.norm_type)
            post = pre
            gpre = gpost = aggregate_norms(norms, self.norm_type)
        loss_t = (
            loss.detach().float().reshape(()).to(self.device)
            if isinstance(loss, torch.Tensor)
            else self._zero + float(loss)
        )
        scale = (
            self.scaler._scale if self._ctx.scaler_enabled and self.scaler._scale is not None else self._one
        )  # type: ignore[union-attr]
        scalars = torch.stack(
            (
                gpre.float().to(self.device),
                gpost.float().to(self.device),
                loss_t,
                scale.float().to(self.device),
            )
        )
        torch.cat(
            (pre.float().to(self.device), post.float().to(self.device), scalars),
            out=self._buf[len(self._steps)],
        )
        self._steps.append(int(step))
        self._masks.append(mask)
        return self._check() if len(self._steps) >= self.k else None

    def observe_output(self, name: str, tensor: torch.Tensor) -> None:
        """Accumulate the mean row L2 norm of ``tensor`` (e.g. text embeddings) for this window.

        Args:
            name: the output's name; reported as ``health/output/<name>/norm``.
            tensor: ``(..., D)``; rows are the last dimension. A 0-dim tensor counts as its absolute value.
        """
        if not self.config.enabled:
            return
        with torch.no_grad():
            x = tensor.detach().float()
            value = x.abs() if x.dim() == 0 else torch.linalg.vector_norm(x, dim=-1).mean()
            total, count = self._outputs.get(name, (self._zero, 0))
            self._outputs[name] = (total + value.to(self.device), count + 1)

    def flush(self, *, step: int | None = None) -> HealthReport | None:
        """Judge a partial window now (e.g. at the end of training); ``None`` if it is empty."""
        if not self._steps:
            return None
        if step is not None:
            self._steps[-1] = int(step)
        return self._check()

    def _grads(self) -> tuple[list[torch.Tensor], torch.Tensor, tuple[bool, ...]]:
        raw = [p.grad if p.requires_grad else None for p in self._plist]
        grads = [g for g in raw if g is not None]
        # the common case (every parameter has a gradient) needs no per-parameter signature
        signature: tuple[bool, ...] | None = (
            None if len(grads) == len(raw) else tuple(g is not None for g in raw)
        )
        cached = self._segments.get(signature)
        if cached is None:
            keep = signature if signature is not None else (True,) * len(raw)
            seg = [t for t, ok in zip(self._ptower, keep, strict=True) if ok]
            has = tuple(
                any(ok and t == i for t, ok in zip(self._ptower, keep, strict=True))
                for i in range(len(self.towers))
            )
            if len(self._segments) > 16:
                self._segments.clear()
            one_device = all(g.device == self.device for g in grads)
            cached = (torch.tensor(seg, dtype=torch.long, device=self.device), has, one_device)
            self._segments[signature] = cached
        self._segments_one_device = cached[2]
        return grads, cached[0], cached[1]

    def _norms(self, tensors: list[torch.Tensor], one_device: bool) -> torch.Tensor:
        if not tensors:
            return torch.zeros(0, device=self.device)
        if one_device:
            return torch.stack(torch._foreach_norm(tensors, self.norm_type, dtype=torch.float32))
        # model-parallel: one fused norm per device, in parameter order
        out = torch.empty(len(tensors), device=self.device)
        for dev in {g.device for g in tensors}:
            idx = [i for i, g in enumerate(tensors) if g.device == dev]
            part = torch._foreach_norm([tensors[i] for i in idx], self.norm_type, dtype=torch.float32)
            out[torch.tensor(idx, device=self.device)] = torch.stack(part).to(self.device)
        return out

    def _tower_value(self, values: dict[str, torch.Tensor], t: int, mask: tuple[bool, ...]) -> torch.Tensor:
        v = values.get(self.towers[t]) if mask[t] else None
        return self._zero if v is None else v.detach().float().reshape(()).to(self.device)

    # --- per check (one host read) -------------------------------------------------------------
    def _check(self) -> HealthReport:
        n, n_t = len(self._steps), len(self.towers)
        per_param = self._norms([p.detach() for p in self._plist], self._params_one_device)
        param_seg = torch.tensor(self._ptower, dtype=torch.long, device=self.device)
        param_norms = segment_norms(per_param, param_seg, n_t, 2.0)
        by_id = dict(zip(map(id, self._plist), per_param.unbind(), strict=True))
        decay, update = decay_and_update_steps(self.optimizer, self._index, self.device, by_id)
        names = list(self._outputs)
        outputs = [total / count for total, count in self._outputs.values()]
        extras = torch.cat(
            (param_norms, decay, update, torch.stack(outputs) if outputs else self._buf.new_zeros(0))
        )
        host = torch.cat((self._buf[:n].flatten(), extras)).tolist()  # the one host read
        width = row_width(n_t)
        rows = [host[i * width : (i + 1) * width] for i in range(n)]
        ex = host[n * width :]
        summary = summarize_window(
            self.towers,
            rows,
            steps=self._steps,
            has_grad=self._masks,
            scaler_enabled=self._ctx.scaler_enabled,
        )
        for t, name in enumerate(self.towers):
            ts = summary.towers[name]
            ts.param_norm = ex[t]
            ts.decay_to_grad = decay_to_grad_ratio(ex[n_t + t], ex[2 * n_t + t])
        emit(self, summary, self._ctx)
        output_norms = dict(zip(names, ex[3 * n_t :], strict=True))
        self._steps, self._masks, self._outputs = [], [], {}
        results = self.judge.judge(summary)
        self._totals["nonfinite"] += summary.nonfinite_steps
        self._totals["skipped"] += summary.skipped_steps
        return HealthReport(
            step=summary.step,
            verdict=worst(r.verdict for r in results),
            reasons=[r.reason for r in results],
            metrics=self._metrics(summary, output_norms),
            unstable_rules=sorted({r.rule for r in results if r.verdict == Verdict.UNSTABLE}),
        )

    def _metrics(self, s: CheckSummary, outputs: dict[str, float]) -> dict[str, float]:
        m: dict[str, float] = {}
        for name, ts in s.towers.items():
            m[f"health/{name}/grad_norm_pre"] = ts.grad_norm_pre
            m[f"health/{name}/grad_norm_pre_max"] = ts.grad_norm_pre_max
            m[f"health/{name}/grad_norm_post"] = ts.grad_norm_post
            m[f"health/{name}/param_norm"] = ts.param_norm
            m[f"health/{name}/decay_to_grad"] = ts.decay_to_grad
            m[f"health/{name}/nonfinite_steps"] = float(ts.nonfinite_steps)
            m[f"health/{name}/steps_with_grad"] = float(ts.steps_with_grad)
        m["health/grad_norm_global"] = s.grad_norm_global
        m["health/grad_norm_global_max"] = s.grad_norm_global_max
        m["health/grad_norm_global_post"] = s.grad_norm_global_post
        m["health/nonfinite_steps"] = float(s.nonfinite_steps)
        m["health/nonfinite_loss_steps"] = float(s.nonfinite_loss_steps)
        m["health/nonfinite_steps_total"] = float(self._totals["nonfinite"])
        m["health/scaler/scale"] = s.scale
        m["health/scaler/skipped_steps"] = float(s.skipped_steps)
        m["health/scaler/skipped_steps_total"] = float(self._totals["skipped"])
        m["health/scaler/overflow_streak"] = float(s.overflow_streak)
        m["health/loss"] = s.mean_loss
        m["health/loss_last"] = s.losses[-1]
        m["health/loss_spike_z"] = s.loss_spike_z if not math.isnan(s.loss_spike_z) else 0.0
        for name, value in outputs.items():
            m[f"health/output/{name}/norm"] = value
        m["health/steps"] = float(s.n_steps)
        return m

    # --- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Host-side state: the judge's (history, baselines, spike reference, streak), totals and the pending window."""
        n = len(self._steps)
        return {
            "towers": list(self.towers),
            "judge": self.judge.state_dict(),
            "totals": dict(self._totals),
            "pending_rows": self._buf[:n].detach().cpu().clone(),
            "pending_steps": list(self._steps),
            "pending_masks": [list(m) for m in self._masks],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the tower list must match).

        Raises:
            ValueError: if the saved towers differ from this monitor's.
        """
        if list(state["towers"]) != self.towers:
            raise ValueError(f"saved towers {state['towers']} differ from this monitor's {self.towers}")
        self.judge.load_state_dict(state.get("judge", state))
        self._totals = {k: int(v) for k, v in state["totals"].items()}
        rows = state["pending_rows"]
        n = min(len(state["pending_steps"]), self.k)
        self._buf[:n].copy_(rows[:n].to(self.device))
        self._steps = [int(s) for s in state["pending_steps"][:n]]
        self._masks = [tuple(bool(b) for b in m) for m in state["pending_masks"][:n]]
