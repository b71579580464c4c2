"""Deterministic data for the built-in objectives: generated from a seed or shipped with a package."""
