"""Objectives of the health-transfer benchmark that are none of the built-ins (issue 17, point 6).

Each is written as a user would write one (``objective(config, ctx) -> float`` through
``ctx.trainer``), named in its space as ``benchmarks.transfer.<module>:objective``:
:mod:`~benchmarks.transfer.charlm` (a char-level transformer LM), :mod:`~benchmarks.transfer.digits_cnn`
(a BatchNorm CNN classifier) and :mod:`~benchmarks.transfer.digits_vae` (a VAE, its own
``optimizer.step()`` watched by gradsweep). ``scale: tiny`` shortens each run (tests); ``small``
is the benchmark's size.
"""
