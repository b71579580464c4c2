"""Every row of a SQLite study store's tables, to show a command left the store as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

TABLES = (
    "studies",
    "study_user_attributes",
    "trials",
    "trial_params",
    "trial_values",
    "trial_user_attributes",
    "trial_intermediate_values",
)


def store_rows(db: Path) -> list[tuple[Any, ...]]:
    """``(table, *row)`` for every row of the study and trial tables, in a stable order."""
    with sqlite3.connect(db) as conn:
        return [(t, *r) for t in TABLES for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()]


__all__ = ["TABLES", "store_rows"]
