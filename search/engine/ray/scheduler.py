"""Ray Tune ``TrialScheduler`` that runs the health pruner (and its Optuna base pruner) on every result.

Ray Tune lets only a scheduler (or a stopper) stop a trial; a search algorithm cannot. This
scheduler hands each result to the :class:`~gradsweep.search.engine.ray.bridge.StudyBridge`, which writes the
intermediate value and health attrs to the Optuna trial and asks
``HealthPruner.decide``; a prune becomes ``STOP`` here and PRUNED (with kind and reason) when the
searcher sees the trial complete. Results are never buffered, so a decision takes effect at
the report that caused it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from gradsweep.search.engine.ray.bridge import StudyBridge


def error_text(trial: Trial) -> str:
    """The last error a failed Ray trial raised, as text (empty when Ray kept none).

    Ray appends every failure of a trial to its ``error.txt`` under a ``Failure # N`` header;
    only the last one (the one that ended the trial) is returned.
    """
    path = trial.error_file
    try:
        text = Path(path).read_text() if path else ""
    except OSError:  # unreadable: the stored reason then says so
        return ""
    last = text.rfind("Failure # ")
    if last < 0:
        return text
    return text[last:].split("\n", 1)[1] if "\n" in text[last:] else ""


class PruningScheduler(FIFOScheduler):
    """FIFO order; STOP when the health pruner says prune.

    Args:
        bridge: the driver-side study owner.
    """

    _supports_buffered_results = False

    def __init__(self, bridge: StudyBridge) -> None:
        super().__init__()
        self.bridge = bridge

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles its tuner settings next to the results: leave the study (and its URL) out."""
        state = self.__dict__.copy()
        state["bridge"] = None
        return state

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        if self.bridge.on_result(trial.trial_id, result):
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        """Hand the bridge the trial's newest persisted checkpoint before the searcher ends it (a pause keeps it).

        Ray saves the checkpoint of the report that stopped the trial before it completes the
        trial, so this is the checkpoint of the pause's report when that report carried one."""
        checkpoint = trial.checkpoint
        self.bridge.note_checkpoint(trial.trial_id, checkpoint.path if checkpoint is not None else None)
        super().on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.bridge.on_error(trial.trial_id, error_text(trial))

    def debug_string(self) -> str:
        return "gradsweep pruning scheduler (health rules + Optuna pruner)"
