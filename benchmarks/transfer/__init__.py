"""Objectives of the health-transfer benchmark that are none of the built-ins (issue 17, point 6).

Each is written as a user would write one (``objective(config, ctx) -> float`` through
``ctx.trainer``), named in its space as ``benchmarks.transfer.<module>:objective``:
:mod:`~benchmarks.transfer.charlm` (a char-level transformer LM), :mod:`~benchmarks.transfer.digits_cnn`
(a BatchNorm CNN classifier) and :mod:`~benchmarks.transfer.digits_vae` (a VAE, its own
``optimizer.step()`` watched by gradsweep); added later, as a blind check of the health defaults:
:mod:`~benchmarks.transfer.seq2seq` (a GRU encoder-decoder sorting digits) and
:mod:`~benchmarks.transfer.tabular` (a LayerNorm/Dropout MLP regressor on sklearn's diabetes data).
``scale: tiny`` shortens each run (tests); ``small``
is the benchmark's size.
"""
