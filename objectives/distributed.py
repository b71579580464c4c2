"""What a trial trained by several DDP workers needs: its place in the group and the collectives.

A trial with ``--workers-per-trial N`` runs the objective once per worker, each a process of one
``torch.distributed`` group (gloo on CPU, NCCL on CUDA) that Ray Train set up. :class:`Place`
says which worker this is; the helpers here are what an objective's loop needs besides
``ctx.trainer`` (which wraps the model in ``DistributedDataParallel``):

- :func:`shard`: the rank's slice of a global batch (or of any index range), so N workers with
  ``config.batch_size`` each see the global batch of one process with ``N * batch_size``;
- :func:`gather` (with gradient) and :func:`gather_detached`: every worker's rows, for losses
  whose negatives span the global batch (InfoNCE, MoCo keys);
- :func:`mean_over_workers`: one number all workers agree on (the health monitor's loss).

Every helper is the identity in a single process (no group, or a group of one), so an objective
written with them runs unchanged as a one-process trial, under ``gradsweep try`` and in tests.

Every worker is seeded alike (``config.seed``): draw the global batch (its order, its
augmentations) the same way on every worker and then take the shard, as the built-ins do.
Randomness drawn after sharding (dropout, per-example augmentation of the shard) is then the same
on every worker; seed a generator with ``config.seed + rank`` where it must differ.

Example:
    >>> SINGLE.rank, SINGLE.world_size, SINGLE.is_main
    (0, 1, True)
    >>> shard(range(8), Place(rank=1, world_size=2))
    range(4, 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

_S = TypeVar("_S", bound=Sequence[Any])


@dataclass(frozen=True)
class Place:
    """One worker's place in a trial's process group.

    Args:
        rank: this worker's rank, 0..world_size-1 (rank 0 reports and checkpoints).
        world_size: the trial's workers.

    Raises:
        ValueError: a rank outside the group, or a group of fewer than one.
    """

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise ValueError(f"world_size must be at least 1 but got {self.world_size}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in 0..{self.world_size - 1} but got {self.rank}")

    @property
    def is_main(self) -> bool:
        """Rank 0: the worker that reports to the driver and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one worker (and so a process group to talk through)."""
        return self.world_size > 1


SINGLE = Place()


def current_place() -> Place:
    """This process's place: from the initialised ``torch.distributed`` group, else :data:`SINGLE`."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return Place(rank=dist.get_rank(), world_size=dist.get_world_size())


def shard(items: _S, place: Place) -> _S:
    """The contiguous ``place.rank``-th of ``place.world_size`` equal parts of ``items``.

    A global batch sliced this way is the batch one process would train on, split in rank
    order; ``len(items)`` must divide evenly (a global batch of ``world_size * batch_size``).

    Raises:
        ValueError: ``len(items)`` is not a multiple of the world size.

    Example:
        >>> shard(list(range(6)), Place(rank=2, world_size=3))
        [4, 5]
    """
    n, world = len(items), place.world_size
    if n % world:
        raise ValueError(f"cannot split {n} items evenly over {world} workers; give a multiple of {world}")
    part = n // world
    return items[place.rank * part : (place.rank + 1) * part]  # type: ignore[return-value]


def _group_size() -> int:
    """Workers in the initialised ``torch.distributed`` group; 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_gather(x: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0; the backward sums every worker's gradient of this worker's rows.

    ``torch.distributed.nn.all_gather`` does the same but its backward needs reduce-scatter or
    all-to-all, which gloo lacks; an all-reduce of the whole gradient works on every backend.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        return _all_gather(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather(x: torch.Tensor) -> torch.Tensor:
    """Every worker's ``x`` stacked along dim 0 in rank order, with gradient to each worker's own rows.

    Every worker must call it with the same shape. In a single process it returns ``x``.
    With DDP averaging the parameter gradients over N workers, a loss that is the mean over the
    local rows of a function of the gathered rows gives the gradient of one process computing
    the same loss over the global batch (use :func:`local_targets` for this worker's rows).
    """
    return x if _group_size() == 1 else _GatherWithGrad.apply(x)  # type: ignore[no-any-return]


@torch.no_grad()
def gather_detached(x: torch.Tensor) -> torch.Tensor:
    """:func:`gather` without gradient (keys of a momentum encoder, labels)."""
    return x if _group_size() == 1 else _all_gather(x)


def local_targets(rows: int, device: torch.device | str) -> torch.Tensor:
    """Where this worker's ``rows`` rows sit in a :func:`gather` (the positives of an InfoNCE).

    Example:
        >>> local_targets(3, "cpu")  # a single process: rows 0..2
        tensor([0, 1, 2])
    """
    return torch.arange(rows, device=device) + rows * current_place().rank


@torch.no_grad()
def mean_over_workers(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over every worker (a new tensor; ``x`` itself in a single process)."""
    world = _group_size()
    if world == 1:
        return x
    out = x.detach().clone()
    dist.all_reduce(out)  # SUM: gloo has no AVG
    return out / world
