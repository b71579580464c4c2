"""Ray Tune ``Searcher`` that samples with Optuna on the driver (ask/tell through the bridge).

Unlike Ray's ``OptunaSearch`` it keeps the study's own sampler *and* pruner, tells a
scheduler-stopped trial PRUNED (not COMPLETE), and never leaves a NaN trial RUNNING. It saves
nothing into Ray's experiment directory: the study is the state (and no storage URL is ever
pickled next to results).
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher

from gradsweep.search.engine.outcome import R_VALUE
from gradsweep.search.engine.ray.bridge import WAIT, StudyBridge


class StudySearcher(Searcher):
    """One Optuna trial per Ray trial, sampled from the bridge's study.

    Args:
        bridge: the driver-side study owner.
        nest: hand each config to Ray under this key (``train_loop_config`` for the
            ``TorchTrainer`` of multi-worker trials), or as it is (None).
    """

    def __init__(self, bridge: StudyBridge, *, nest: str | None = None) -> None:
        mode = "max" if bridge.tally.direction == "maximize" else "min"
        super().__init__(metric=R_VALUE, mode=mode)
        self.bridge = bridge
        self.nest = nest

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles its tuner settings next to the results: leave the study (and its URL) out."""
        state = self.__dict__.copy()
        state["bridge"] = None
        return state

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        config = self.bridge.ask(trial_id)
        if config is None:
            return Searcher.FINISHED
        if config == WAIT:  # nothing to start now; Ray asks again
            return None
        assert isinstance(config, dict)
        return {self.nest: config} if self.nest else config

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.bridge.finish(trial_id, result, error=error)

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Nothing to save: the Optuna study holds the search state."""

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        """Nothing to restore: ``gradsweep resume`` reads the study."""
