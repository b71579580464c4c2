"""Maps the repository's top-level folders into the one ``gradsweep`` package.

The repository keeps ``spaces/``, ``objectives/`` and ``search/`` at the top (the layout the
project was asked for); they install as ``gradsweep.spaces``, ``gradsweep.objectives`` and
``gradsweep.search`` beside ``gradsweep/`` itself, so nothing with a generic name (Hugging Face's
``spaces``, a user's own ``search.py``) lands in site-packages. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

LAYERS = ("spaces", "objectives", "search")

setup(
    packages=["gradsweep"]
    + [
        f"gradsweep.{name}"
        for name in find_packages(include=[f"{layer}{tail}" for layer in LAYERS for tail in ("", ".*")])
    ],
    package_dir={"gradsweep": "gradsweep", **{f"gradsweep.{layer}": layer for layer in LAYERS}},
)
