"""A printable, print-free summary of an optimizer's tower groups.

Replaces seed 000's hand-printed "OPTIMIZER CONFIGURATION" block: build it once, then render
it with rich (``console.print(summary)``), log ``summary.as_text()``, or store ``to_dict()``.

Example:
    >>> import torch
    >>> from gradsweep.spaces.apply.optimizer import build_optimizer
    >>> from gradsweep.spaces.trial_config import TowerConfig, TrialConfig
    >>> cfg = TrialConfig(objective="x", towers=[TowerConfig(name="all", patterns=["*"], lr=1e-3, weight_decay=0.05)])
    >>> print(optimizer_summary(build_optimizer(torch.nn.Linear(2, 2), cfg), cfg).as_text())
    AdamW, 2 parameter groups
      all/decay: 1 params (4 elements), lr=1.00e-03, base_lr=1.00e-03, wd=5.00e-02
      all/no_decay: 1 params (2 elements), lr=1.00e-03, base_lr=1.00e-03, wd=0.00e+00
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from rich.table import Table

from gradsweep.spaces.trial_config import TrialConfig


@dataclass(frozen=True)
class SummaryRow:
    """One optimizer group: its tensors, elements and current settings."""

    group: str
    tower: str
    n_params: int
    n_elements: int
    lr: float
    base_lr: float
    weight_decay: float
    frozen: bool


@dataclass(frozen=True)
class OptimizerSummary:
    """Rows per optimizer group, plus the optimizer's class name."""

    optimizer: str
    rows: tuple[SummaryRow, ...]

    def as_text(self) -> str:
        """Plain-text lines, one per group (for logs)."""
        lines = [f"{self.optimizer}, {len(self.rows)} parameter groups"]
        for r in self.rows:
            lines.append(
                f"  {r.group}: {r.n_params} params ({r.n_elements:,} elements), lr={r.lr:.2e}, "
                f"base_lr={r.base_lr:.2e}, wd={r.weight_decay:.2e}" + (", frozen" if r.frozen else "")
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"optimizer": self.optimizer, "rows": [asdict(r) for r in self.rows]}

    def __rich__(self) -> Table:
        table = Table(title=f"{self.optimizer}, {len(self.rows)} parameter groups")
        for col, justify in (
            ("group", "left"),
            ("tower", "left"),
            ("tensors", "right"),
            ("elements", "right"),
            ("lr", "right"),
            ("base lr", "right"),
            ("weight decay", "right"),
            ("frozen", "center"),
        ):
            table.add_column(col, justify=justify)
        for r in self.rows:
            table.add_row(
                r.group,
                r.tower,
                str(r.n_params),
                f"{r.n_elements:,}",
                f"{r.lr:.2e}",
                f"{r.base_lr:.2e}",
                f"{r.weight_decay:.2e}",
                "yes" if r.frozen else "",
            )
        return table

    def __str__(self) -> str:
        return self.as_text()


def optimizer_summary(optimizer: torch.optim.Optimizer, config: TrialConfig) -> OptimizerSummary:
    """Summarise ``optimizer``'s groups as they are now (current LRs, current trainability).

    Args:
        optimizer: any optimizer; groups without ``group``/``tower`` keys are named by index.
        config: the trial config (a group of a frozen tower shows as frozen).

    Returns:
        The summary. A group counts as frozen when its tower is frozen or none of its
        parameters currently requires grad (e.g. a stage that does not train it).
    """
    known = {t.name: t for t in config.towers}
    rows = []
    for i, g in enumerate(optimizer.param_groups):
        tower = g.get("tower", "?")
        params = g["params"]
        cfg_frozen = tower in known and known[tower].frozen
        rows.append(
            SummaryRow(
                group=str(g.get("group", f"group{i}")),
                tower=str(tower),
                n_params=len(params),
                n_elements=sum(p.numel() for p in params),
                lr=float(g["lr"]),
                base_lr=float(g.get("base_lr", g["lr"])),
                weight_decay=float(g.get("weight_decay", 0.0)),
                frozen=cfg_frozen or not any(p.requires_grad for p in params),
            )
        )
    return OptimizerSummary(optimizer=type(optimizer).__name__, rows=tuple(rows))
