"""The CLI starts without torch: study commands (status, export, report, --help) answer in about a
second instead of the ~4 s that importing torch took here (sixth session: ``gradsweep --version``
3.9 s -> 1.0 s). Commands that train or build a model import it when they run."""

from __future__ import annotations

import subprocess
import sys


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_importing_the_cli_does_not_import_torch_or_ray() -> None:
    loaded = _imported_after("import gradsweep.search.cli")
    assert "gradsweep.search.cli" in loaded and "optuna" in loaded
    assert "torch" not in loaded and "ray" not in loaded


def test_health_package_loads_its_parts_on_first_use() -> None:
    # the driver's pruner, health attrs and verdicts come without the monitor (which needs torch) ...
    statement = (
        "from gradsweep.objectives.health import HealthReport, Verdict; "
        "from gradsweep.search.health_attrs import read_health; import gradsweep.search.pruner"
    )
    assert "torch" not in _imported_after(statement)
    # ... and the monitor is still importable from the package
    loaded = _imported_after(
        "from gradsweep.objectives.health import HealthMonitor; import gradsweep.objectives.health as h; h.worst"
    )
    assert {"torch", "gradsweep.objectives.health.monitor", "gradsweep.objectives.health.verdict"} <= loaded
