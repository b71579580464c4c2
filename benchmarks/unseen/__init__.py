"""Objectives no default of gradsweep was tuned on: the search-efficiency benchmark's unseen objective.

:mod:`~benchmarks.unseen.twotower` is a two-tower recommender (user tower, item tower) trained
on generated implicit feedback and scored by held-out recall@10, written as a user would write
an objective (``objective(config, ctx) -> float`` through ``ctx.trainer``, checkpointing with
``ctx.save_progress`` before each report so a paused trial can go on). It was added after the
health rules' defaults, the catch-up pruner and the freeze-thaw schedule were chosen, and none
of them was changed because of it. Its space is ``benchmarks/spaces/unseen_twotower.yaml``.
"""
