"""Per-tower, then global, gradient-norm clipping with device-side norms (no host sync).

Call :meth:`Clipper.clip` after ``scaler.unscale_(optimizer)`` and before
``scaler.step(optimizer)``: clipping scaled fp16 gradients would compare them with
``max_norm`` times the loss scale. The returned norms stay on the device; read them on the
host only every k steps (the health monitor does).

| field | meaning |
|---|---|
| ``pre[tower]`` | the tower's gradient norm before any clipping |
| ``post[tower]`` | the tower's norm after per-tower and global clipping (what the optimizer sees) |
| ``global_pre`` | norm over all towers before any clipping |
| ``global_post`` | norm over all towers after clipping |

Each clip has ``torch.nn.utils.clip_grad_norm_`` semantics (``foreach=True``): coefficient
``min(max_norm / (norm + 1e-6), 1)``; the global clip sees the per-tower-clipped gradients.
Towers without gradients (frozen, or not trained in this stage) report zero norms.

Example:
    >>> import torch
    >>> from gradsweep.spaces.apply.optimizer import build_optimizer
    >>> from gradsweep.spaces.trial_config import ClipConfig, TowerConfig, TrialConfig
    >>> cfg = TrialConfig(objective="x", towers=[TowerConfig(name="all", patterns=["*"], lr=1e-3)],
    ...                   clip=ClipConfig(max_norm=1.0))
    >>> model = torch.nn.Linear(3, 1, bias=False)
    >>> model.weight.grad = torch.full((1, 3), 4.0)
    >>> r = Clipper(build_optimizer(model, cfg), cfg).clip()
    >>> round(float(r.global_pre), 3), round(float(r.global_post), 3)
    (6.928, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gradsweep.spaces.trial_config import TrialConfig

_EPS = 1e-6


@dataclass(frozen=True)
class ClipResult:
    """Gradient norms around one clipping call (0-dim tensors on the training device)."""

    pre: dict[str, Tensor]
    post: dict[str, Tensor]
    global_pre: Tensor
    global_post: Tensor


def _by_device_dtype(tensors: Sequence[Tensor]) -> dict[tuple[torch.device, torch.dtype], list[Tensor]]:
    groups: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    return groups


def _stack(norms: Sequence[Tensor], device: torch.device) -> Tensor:
    dtype = torch.float64 if any(n.dtype == torch.float64 for n in norms) else torch.float32
    return torch.stack([n.to(device=device, dtype=dtype) for n in norms])


def combine_norms(norms: Sequence[Tensor], norm_type: float, device: torch.device) -> Tensor:
    """The p-norm of a concatenation, from the p-norms of its parts (0 for no parts)."""
    if not norms:
        return torch.zeros((), device=device)
    return torch.linalg.vector_norm(_stack(norms, device), float(norm_type))


@torch.no_grad()
def grads_norm(grads: Sequence[Tensor], norm_type: float, device: torch.device) -> Tensor:
    """Total p-norm of ``grads`` as one vector, with ``torch._foreach_norm`` per device and dtype.

    Args:
        grads: gradient tensors (any devices).
        norm_type: p of the norm (``inf`` allowed).
        device: where the result lives (and the zero for an empty list).

    Returns:
        A 0-dim tensor; never synchronises with the host.
    """
    norms: list[Tensor] = []
    for (dev, _), group in _by_device_dtype(grads).items():
        if dev.type in ("cpu", "cuda") and not any(g.is_sparse for g in group):
            norms.extend(torch._foreach_norm(group, float(norm_type)))
        else:
            norms.extend(torch.linalg.vector_norm(g, float(norm_type)) for g in group)
    return combine_norms(norms, norm_type, device)


@torch.no_grad()
def scale_grads_(grads: Sequence[Tensor], coef: Tensor) -> None:
    """Multiply ``grads`` in place by the 0-dim tensor ``coef`` (foreach per device and dtype)."""
    for (dev, _), group in _by_device_dtype(grads).items():
        c = coef.to(dev)
        if dev.type in ("cpu", "cuda") and not any(g.is_sparse for g in group):
            torch._foreach_mul_(group, c)
        else:
            for g in group:
                g.mul_(c)


def clip_coefficient(norm: Tensor, max_norm: float) -> Tensor:
    """``min(max_norm / (norm + 1e-6), 1)``, as in ``clip_grad_norm_``."""
    return torch.clamp(max_norm / (norm + _EPS), max=1.0)


class Clipper:
    """Clips gradients per tower (``tower.clip_max_norm``) and then globally (``config.clip.max_norm``).

    Norms are always computed, also when no limit is set, so the result feeds health
    monitoring either way.

    Args:
        optimizer: built by :func:`~gradsweep.spaces.apply.optimizer.build_optimizer` (groups have ``tower``).
        config: the resolved trial config.

    Raises:
        ValueError: a group without a ``tower`` key or naming an unknown tower.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrialConfig) -> None:
        self.optimizer = optimizer
        self.config = config
        self.norm_type = float(config.clip.norm_type)
        self.global_max_norm = config.clip.max_norm
        self.tower_max_norms = {t.name: t.clip_max_norm for t in config.towers}
        self._params: dict[str, list[Tensor]] = {t.name: [] for t in config.towers}
        for i, group in enumerate(optimizer.param_groups):
            name = group.get("tower")
            if name not in self._params:
                raise ValueError(
                    f"optimizer param group {i} has tower {name!r}; expected one of {list(self._params)} "
                    f"(build the optimizer with gradsweep.spaces.apply.build_optimizer)"
                )
            self._params[name].extend(group["params"])

    @property
    def device(self) -> torch.device:
        """Where the norms live: the first parameter's device, looked up at each call so a
        model moved after the Clipper was built is followed."""
        first = next((p for ps in self._params.values() for p in ps), None)
        return first.device if first is not None else torch.device("cpu")

    @torch.no_grad()
    def clip(self) -> ClipResult:
        """Clip the current gradients in place and report norms before and after.

        Returns:
            A :class:`ClipResult` of 0-dim device tensors (no ``.item()``).
        """
        device = self.device
        grads = {t: [p.grad for p in ps if p.grad is not None] for t, ps in self._params.items()}
        pre: dict[str, Tensor] = {}
        mid: dict[str, Tensor] = {}
        for tower, tower_grads in grads.items():
            pre[tower] = grads_norm(tower_grads, self.norm_type, device)
            max_norm = self.tower_max_norms[tower]
            if max_norm is not None and tower_grads:
                coef = clip_coefficient(pre[tower], max_norm)
                scale_grads_(tower_grads, coef)
                mid[tower] = pre[tower] * coef
            else:
                mid[tower] = pre[tower]
        global_pre = combine_norms(list(pre.values()), self.norm_type, device)
        post = mid
        if self.global_max_norm is not None:
            coef = clip_coefficient(
                combine_norms(list(mid.values()), self.norm_type, device), self.global_max_norm
            )
            scale_grads_([g for gs in grads.values() for g in gs], coef)
            post = {t: n * coef.to(n.device) for t, n in mid.items()}
        global_post = combine_norms(list(post.values()), self.norm_type, device)
        return ClipResult(pre=pre, post=post, global_pre=global_pre, global_post=global_post)
