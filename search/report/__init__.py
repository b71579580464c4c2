"""The study report: self-contained HTML (plotly) and PNG files (matplotlib).

Example:
    >>> data = collect(study)                    # doctest: +SKIP
    >>> write_html(data, Path("report.html"))    # doctest: +SKIP
    >>> write_pngs(data, Path("plots"))          # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from gradsweep.search.report.data import ReportData, collect
from gradsweep.search.report.html import render_html, write_html

__all__ = ["ReportData", "collect", "render_html", "write_html", "write_pngs"]


def write_pngs(data: ReportData, directory: Path) -> list[Path]:
    """Write every plot as a PNG under ``directory`` (matplotlib is imported only when asked).

    See :func:`gradsweep.search.report.png.write_pngs`.
    """
    from gradsweep.search.report.png import write_pngs as _write

    return _write(data, Path(directory))
