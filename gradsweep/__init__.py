"""gradsweep: hyperparameter search for multi-tower and multi-stage PyTorch training.

The layers, each importing only the ones before it (docs/ARCHITECTURE.md):

- :mod:`gradsweep.spaces` (repository folder ``spaces/``): search spaces, ``TrialConfig``, and the
  helpers that turn a config into optimizer groups, a scheduler, a GradScaler and a clipper.
- :mod:`gradsweep.objectives` (``objectives/``): the training kit (``TrialContext``, ``Trainer``,
  reporters, checkpoints), the device-side gradient-health monitor and rules
  (``gradsweep.objectives.health``), and the built-in objectives.
- :mod:`gradsweep.search` (``search/``): pruners, the Ray Tune engine, the study store, views,
  reports, export and the ``gradsweep`` CLI.

This module itself imports nothing heavy: ``import gradsweep`` does not import torch.
"""

from __future__ import annotations

from gradsweep.version import __version__

__all__ = ["__version__"]
