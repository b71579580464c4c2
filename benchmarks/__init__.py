"""Benchmark scripts (run as modules from the repository root: ``.venv/bin/python -m benchmarks.NAME``) and their helpers."""
