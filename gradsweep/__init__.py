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

from pathlib import Path as _Path

from gradsweep.version import __version__

# Installed (wheel or editable), `gradsweep.search` and its siblings are found where the
# installer put them. Run from the root of a source checkout, `import gradsweep` finds this
# folder first (the working directory leads sys.path) and the layers live beside it, not in it:
# look there too, so a non-editable install used from the checkout still imports whole.
_CHECKOUT = _Path(__file__).resolve().parent.parent
if not (_Path(__file__).parent / "search").is_dir() and (_CHECKOUT / "search" / "cli").is_dir():
    __path__.append(str(_CHECKOUT))

__all__ = ["__version__"]
