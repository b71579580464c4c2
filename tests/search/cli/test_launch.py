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
    "workers_per_trial": 1,
    "cpus_per_worker": None,
    "gpus_per_worker": None,
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


def test_worker_options_size_a_multi_worker_trial() -> None:
    single = {**OPTIONS, "cpus_per_trial": 1.0, "gpus_per_trial": 0.0}
    resources = resources_from(
        {**single, "workers_per_trial": 3, "cpus_per_worker": 2.0, "gpus_per_worker": 1.0}
    )
    # a trial reserves every worker's share; trials at once count whole trials
    assert (resources.trial_cpus, resources.trial_gpus) == (6.0, 3.0)
    assert resources.concurrency_for(cpus=12, gpus=4) == 3  # --concurrency 3 given
    assert Resources(workers_per_trial=2).concurrency_for(cpus=5, gpus=0) == 2  # 1 CPU per worker by default
    # the per-trial flags do not mix with workers, nor the per-worker ones with a single process
    with pytest.raises(UserError, match="--cpus-per-trial sizes a single-process trial"):
        resources_from({**OPTIONS, "workers_per_trial": 2})
    with pytest.raises(UserError, match="--gpus-per-worker sizes the workers"):
        resources_from({**single, "gpus_per_worker": 1.0})
    for bad in (0.5, float("inf"), float("nan")):  # one line, no OverflowError from int(inf)
        with pytest.raises(UserError, match="--gpus-per-worker must be 0 or a whole number"):
            resources_from({**single, "workers_per_trial": 2, "gpus_per_worker": bad})
    with pytest.raises(UserError, match="--cpus-per-worker must be > 0 and finite"):
        resources_from({**single, "workers_per_trial": 2, "cpus_per_worker": float("inf")})


def test_a_cluster_too_small_for_one_trial_s_workers_is_refused() -> None:
    from gradsweep.search.engine.ray.runtime import check_schedulable

    four = Resources(workers_per_trial=4, cpus_per_worker=2)
    # workers spread over nodes: two nodes of 4 CPUs hold the four 2-CPU workers of one trial
    assert (
        check_schedulable(four, [{"CPU": 4.0}, {"CPU": 4.0}], autoscaler_limits=None, owned_local=True)
        is None
    )
    with pytest.raises(UserError, match="holds 3 such workers"):
        check_schedulable(four, [{"CPU": 4.0}, {"CPU": 3.0}], autoscaler_limits=None, owned_local=True)
    with pytest.raises(UserError, match="--cpus-per-worker 2 but the largest Ray node has 1 CPUs"):
        check_schedulable(four, [{"CPU": 1.0}] * 8, autoscaler_limits=None, owned_local=True)
    # an autoscaler that adds nodes of 2 GPUs can hold a trial of four 1-GPU workers over two of them
    gpus = Resources(workers_per_trial=4, gpus_per_worker=1)
    warning = check_schedulable(
        gpus, [{"CPU": 8.0}], autoscaler_limits={"CPU": 8.0, "GPU": 2.0}, owned_local=False
    )
    assert warning is not None and "waiting for the autoscaler" in warning


@pytest.mark.parametrize("command", [["launch", "contrastive", "-n", "1"], ["resume", "--study", "x"]])
def test_both_commands_read_their_resources_through_it(
    gradsweep: Callable, command: list[str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    ran = gradsweep(*command, "--storage", f"sqlite:///{tmp_path / 's.db'}", "--checkpoint-every", "-1")
    # the option reached Resources (its one-line error) before any store or Ray was touched
    assert ran.code == 1 and "--checkpoint-every must be >= 0 seconds, got -1" in ran.err
    assert not (tmp_path / "s.db").exists()
