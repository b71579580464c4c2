"""The sweep engine: Ray Tune runs trials, Optuna samples and prunes, the Optuna study keeps everything.

Modules (one idea each; importing this package imports none of them, so ``storage`` stays cheap
for read-only commands). The ones here never import Ray; those that need it are in ``ray/``:

- ``storage``: open the study store (WAL SQLite / PostgreSQL), one-line errors, ``mask_url``.
- ``algorithms``: samplers and base pruners by name.
- ``request``: what a sweep asks for, and the checks made before the store is touched.
- ``setup``: create / join / reopen the study with its attrs, sampler, health pruner and
  baselines: the one study setup of both paths.
- ``study``: study attrs, ``--join`` rules, baselines, counting, stale-trial reconciliation.
- ``outcome``: the pure rules giving each finished trial one final Optuna state.
- ``tally``: live counts for the progress view and the summary.
- ``progress`` / ``summary``: the live view's text and the end-of-sweep summary.
- ``optuna_reporter``: the reporter of a plain ``study.optimize`` (the study's pruner decides).
- ``local``: ``optimize_local``, the same semantics with plain ``study.optimize``, without Ray.
- ``ray/``: the bridge, Ray Tune searcher / scheduler / trainable, runner, runtime, ``launch`` and ``resume``.
"""
