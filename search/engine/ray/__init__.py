"""The Ray Tune half of the sweep engine: everything that only makes sense with Ray.

Modules (importing this package imports none of them; ``runtime`` imports Ray only when it
starts it, so the CLI can read :class:`~gradsweep.search.engine.ray.runtime.Resources` cheaply):

- ``runtime``: quiet ``ray.init``, per-trial resources, GPU and address checks.
- ``bridge``: the driver-side ask / report / prune / tell owner of the study.
- ``searcher`` / ``scheduler``: the Ray Tune ``Searcher`` and ``TrialScheduler`` over the bridge.
- ``trainable``: the Ray function trainable and ``RayReporter`` (workers never touch the study).
- ``runner``: the Tuner wiring, Ctrl-C handling and final reconciliation.
- ``launcher`` / ``resume``: ``launch`` (validate everything, then write) and ``resume``.
- ``progress``: the live view, a Ray Tune callback.
- ``ddp``: multi-worker trials, a Ray Train ``TorchTrainer`` per trial (``--workers-per-trial``).
- ``reaper``: a standard-library script that ends a local Ray's process groups if the driver dies.

Importing the package selects Ray Train's first API (``RAY_TRAIN_V2_ENABLED=0``, unless the user
set the variable) for this process and, through its environment, the local Ray it starts: Ray reads the switch once, when
``ray.train`` is first imported (``ray.tune`` imports it), and multi-worker trials need that
API (see :mod:`~gradsweep.search.engine.ray.ddp` for why).
"""

import os

#: The environment every Ray process of a sweep gets (a cluster's through the job's runtime env).
TRAIN_ENV = {"RAY_TRAIN_V2_ENABLED": "0"}
for _key, _value in TRAIN_ENV.items():
    os.environ.setdefault(_key, _value)
