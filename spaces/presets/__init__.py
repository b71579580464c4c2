"""Built-in search spaces, one per seed scenario (``<name>.yaml`` beside this file)."""

from __future__ import annotations

from pathlib import Path

PRESET_DIR = Path(__file__).parent


def list_presets() -> list[str]:
    """Names of the built-in presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """Path of preset ``name``.

    Raises:
        ValueError: no preset of that name (the message lists the presets).
    """
    path = PRESET_DIR / f"{name}.yaml"
    if not path.exists():
        raise ValueError(f"no preset {name!r}; presets: {', '.join(list_presets())}")
    return path
