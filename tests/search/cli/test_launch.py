"""The options `launch` and `resume` share: one mapping from the command line to ``Resources``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gradsweep.errors import UserError
from gradsweep.search.cli.launch import RESOURCE_OPTIONS, resources_from
from gradsweep.search.engine.ray.runtime import Resources

OPTIONS = {
    "cpus_per_trial": 0.5,
    "gpus_per_trial": 0.25,
    "concurrency": 3,
    "cpu_fallback": True,
    "address": "127.0.0.1:6379",
    "max_failures": 2,
    "checkpoint_every": 0.0,
    "store_wait": 5.0,
}


def test_resources_from_maps_every_option_to_its_field() -> None:
    resources = resources_from({**OPTIONS, "n_trials": 9})
    # every Resources option lands in its field (--checkpoint-every in checkpoint_every_s); others are ignored
    assert resources == Resources(
        cpus_per_trial=0.5, gpus_per_trial=0.25, concurrency=3, cpu_fallback=True,
        address="127.0.0.1:6379", max_failures=2, checkpoint_every_s=0.0, store_wait_s=5.0,
    )  # fmt: skip
    # the mapping covers every field of Resources
    assert sorted(RESOURCE_OPTIONS.values()) == sorted(Resources.__dataclass_fields__)


def test_a_bad_value_names_its_flag() -> None:
    # Resources' own check names the flag the user typed
    with pytest.raises(UserError, match="--max-failures must be >= 0"):
        resources_from({**OPTIONS, "max_failures": -1})


@pytest.mark.parametrize("command", [["launch", "contrastive", "-n", "1"], ["resume", "--study", "x"]])
def test_both_commands_read_their_resources_through_it(
    gradsweep: Callable, command: list[str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    ran = gradsweep(*command, "--storage", f"sqlite:///{tmp_path / 's.db'}", "--checkpoint-every", "-1")
    # the option reached Resources (its one-line error) before any store or Ray was touched
    assert ran.code == 1 and "--checkpoint-every must be >= 0 seconds, got -1" in ran.err
    assert not (tmp_path / "s.db").exists()
