"""Benchmark scripts (run as files: ``.venv/bin/python benchmarks/<script>.py``) and their helpers."""
