"""The mean loss of one optimizer step over its micro-batches, kept on the device: :class:`LossMean`.

``trainer.step`` under gradient accumulation, a :class:`~gradsweep.objectives.watch.StepWatch` and
the Lightning callback each hand the health monitor the mean of the losses since the last optimizer
step; this is that running mean, with no host read.

Example:
    >>> import torch
    >>> losses = LossMean()
    >>> losses.add(torch.tensor(1.0)); losses.add(torch.tensor(2.0)); losses.count
    2
    >>> losses.take(), losses.count, losses.take()
    (tensor(1.5000), 0, None)
"""

from __future__ import annotations

import torch


class LossMean:
    """Sum and count of the losses given since the last :meth:`take`."""

    def __init__(self) -> None:
        self._sum: torch.Tensor | None = None
        self.count = 0

    def add(self, loss: torch.Tensor | float) -> None:
        """Add one micro-batch's loss (detached, as a float32 scalar on its device)."""
        value = (
            loss.detach().float().reshape(()) if isinstance(loss, torch.Tensor) else torch.tensor(float(loss))
        )
        self._sum = value if self._sum is None else self._sum + value.to(self._sum.device)
        self.count += 1

    def take(self) -> torch.Tensor | None:
        """The mean since the last call (``None`` when nothing was added), and start over."""
        total, count = self._sum, self.count
        self._sum, self.count = None, 0
        if total is None:
            return None
        return total / count if count > 1 else total
