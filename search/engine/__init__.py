"""The sweep engine: Ray Tune runs trials, Optuna samples and prunes, the Optuna study keeps everything.

Modules (one idea each; importing this package imports none of them, so ``storage`` stays cheap
for read-only commands and Ray is loaded only when a sweep runs):

- ``storage``: open the study store (WAL SQLite / PostgreSQL), one-line errors, ``mask_url``.
- ``algorithms``: samplers and base pruners by name.
- ``study``: study attrs, ``--join`` rules, baselines, counting, stale-trial reconciliation.
- ``outcome``: the pure rules giving each finished trial one final Optuna state.
- ``bridge``: the driver-side ask / report / prune / tell owner of the study.
- ``searcher`` / ``scheduler``: the Ray Tune ``Searcher`` and ``TrialScheduler`` over the bridge.
- ``trainable``: the Ray function trainable and ``RayReporter`` (workers never touch the study).
- ``ray_runtime``: quiet ``ray.init``, resources, GPU checks.
- ``runner``: the Tuner wiring, Ctrl-C handling and final reconciliation.
- ``launcher`` / ``resume``: ``launch`` (validate everything, then write) and ``resume``.
- ``tally``: live counts for the progress view and the summary.
- ``local``: ``optimize_local``, the same semantics with plain ``study.optimize``.
- ``progress`` / ``summary``: the live view and the end-of-sweep summary.
- ``overhead``: the per-trial overhead benchmark (``python -m gradsweep.search.engine.overhead``).
"""
