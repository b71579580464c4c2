"""Per-tower AdamW decay step and gradient-driven step sizes, on the device (check time only).

For each param group with ``weight_decay > 0`` (only parameters that have gradients):

* decay step: ``lr * wd * ||w||`` (AdamW's decoupled decay, seed 000's formula);
* gradient-driven step: ``lr * ||m_hat / (sqrt(v_hat) + eps)||`` from AdamW/Adam state
  (``exp_avg``, ``exp_avg_sq``, ``step``) when present: the step the optimizer really takes, which
  for tiny gradients is NOT tiny (Adam normalises them), so this is the honest comparison.
  Without that state (before the first step, or SGD) it is ``lr * ||momentum_buffer||`` when SGD
  has one, else ``lr * ||g||`` (the seed's own diagnostic). AMSGrad's ``max_exp_avg_sq`` is ignored.

Groups of one tower combine as L2 norms over the groups. The monitor divides the two with
:func:`gradsweep.objectives.health.stats.decay_to_grad_ratio` after its one host read.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.ones(4)); w.grad = torch.full((4,), 0.5)
    >>> opt = torch.optim.SGD([{"params": [w], "lr": 0.1, "weight_decay": 0.01, "tower": "a"}])
    >>> decay, update = decay_and_update_steps(opt, {"a": 0}, torch.device("cpu"))
    >>> round(float(decay[0]), 6), round(float(update[0]), 6)
    (0.002, 0.1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from gradsweep.objectives.health.stats import aggregate_norms


def _norm_of(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    norms = torch._foreach_norm(tensors, 2.0, dtype=torch.float32)
    if len({t.device for t in tensors}) == 1 and tensors[0].device == device:
        return aggregate_norms(torch.stack(norms))
    return aggregate_norms(torch.stack([n.to(device) for n in norms]))


def _update_norm(
    optimizer: torch.optim.Optimizer, group: dict, params: list[torch.Tensor], device: torch.device
) -> torch.Tensor:
    states = [optimizer.state.get(p, {}) for p in params]
    if all("exp_avg" in s and "exp_avg_sq" in s and "step" in s for s in states):
        step = float(states[0]["step"])  # a CPU tensor unless capturable; read once per group
        if step > 0:
            beta1, beta2 = (float(b) for b in group.get("betas", (0.9, 0.999)))
            eps = float(group.get("eps", 1e-8))
            bc1, root_bc2 = 1.0 - beta1**step, math.sqrt(1.0 - beta2**step)
            # m_hat / (sqrt(v_hat) + eps) = (root_bc2 / bc1) * m / (sqrt(v) + eps * root_bc2): 4 passes
            denom = torch._foreach_sqrt([s["exp_avg_sq"] for s in states])
            torch._foreach_add_(denom, eps * root_bc2)
            direction = torch._foreach_div([s["exp_avg"] for s in states], denom)
            return _norm_of(direction, device) * (root_bc2 / bc1)
    if all(s.get("momentum_buffer") is not None for s in states):
        return _norm_of([s["momentum_buffer"] for s in states], device)
    return _norm_of([p.grad for p in params], device)  # type: ignore[misc]


def decay_and_update_steps(
    optimizer: torch.optim.Optimizer,
    tower_index: Mapping[str, int],
    device: torch.device,
    param_norms: Mapping[int, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tower decay step and gradient-driven step sizes (see module docstring).

    Args:
        optimizer: param groups with ``lr``, ``weight_decay`` and a ``tower`` key (else ``group<i>``).
        tower_index: tower name -> position in the output vectors.
        device: where the output lives.
        param_norms: optional ``id(param) -> 0-dim norm on device`` already computed by the caller
            (saves a pass over the weights).

    Returns:
        ``(decay, update)``: two float tensors of length ``len(tower_index)`` on ``device``; towers
        without a decayed group with gradients get 0 in both.

    Raises:
        ValueError: if a group's tower is not in ``tower_index``.
    """
    n = len(tower_index)
    decay_sq: list[list[torch.Tensor]] = [[] for _ in range(n)]
    update_sq: list[list[torch.Tensor]] = [[] for _ in range(n)]
    for i, group in enumerate(optimizer.param_groups):
        name = str(group.get("tower", f"group{i}"))
        if name not in tower_index:
            raise ValueError(f"param group {i} has tower {name!r}; known towers: {', '.join(tower_index)}")
        wd = group.get("weight_decay", 0.0)
        params = [p for p in group["params"] if p.grad is not None and p.requires_grad]
        if not params or float(wd) == 0.0:
            continue
        lr = group["lr"]
        t = tower_index[name]
        if param_norms is not None and all(id(p) in param_norms for p in params):
            w_norm = aggregate_norms(torch.stack([param_norms[id(p)] for p in params]))
        else:
            w_norm = _norm_of([p.detach() for p in params], device)
        decay_sq[t].append((lr * wd * w_norm) ** 2)
        update_sq[t].append((lr * _update_norm(optimizer, group, params, device)) ** 2)

    def combine(parts: list[list[torch.Tensor]]) -> torch.Tensor:
        zero = torch.zeros((), device=device)
        return (
            torch.stack([torch.stack(p).sum().sqrt() if p else zero for p in parts]) if n else zero[None][:0]
        )

    return combine(decay_sq), combine(update_sq)
