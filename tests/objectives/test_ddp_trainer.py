"""The Trainer across two real DDP processes (gloo on CPU): same update as one process with the global batch.

Two workers with ``batch_size`` b and gradient accumulation must train exactly as one process
with ``batch_size`` 2b: DDP averages the gradients at the last micro-batch of each optimizer
step (``no_sync`` before it), and a stage that thaws a frozen tower rebuilds the DDP wrapper so
that tower's gradients are averaged too. The pure helpers are tested in one process.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gradsweep.objectives.api import TrialContext
from gradsweep.objectives.distributed import SINGLE, Place, gather, gather_detached, mean_over_workers, shard
from gradsweep.objectives.trainer import WrapperBypassed
from gradsweep.spaces.health import HealthConfig
from gradsweep.spaces.trial_config import OptimizerConfig, StageConfig, TowerConfig, TrialConfig
from tests.search.engine._support import free_port

BATCH, ACCUMULATION, WORKERS = 4, 2, 2
STEPS = (3, 3)  # stage 1 trains tower "head" only, stage 2 thaws "body"


def _config(workers: int, batch: int) -> TrialConfig:
    return TrialConfig(
        objective="ddp-test",
        seed=0,
        batch_size=batch,
        accumulation_steps=ACCUMULATION,
        workers=workers,
        optimizer=OptimizerConfig(name="sgd", momentum=0.0),
        health=HealthConfig(check_every=2),
        towers=(
            TowerConfig(name="body", patterns=["0.*"], lr=0.1),
            TowerConfig(name="head", patterns=["2.*"], lr=0.1),
        ),
        stages=(
            StageConfig(name="head", steps=STEPS[0], train=("head",)),
            StageConfig(name="all", steps=STEPS[1]),
        ),
    )


def _train(place: Place) -> dict[str, Any]:
    """Train a small MLP; the data of each optimizer step is the same global batch whatever the world size."""
    workers = place.world_size
    config = _config(workers, BATCH * WORKERS // workers)
    ctx = TrialContext(config, device="cpu", place=place)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    trainer = ctx.trainer(model, steps_per_epoch=1)
    gen = torch.Generator().manual_seed(1)
    effective = config.effective_batch
    x = torch.randn(effective * trainer.total_steps, 4, generator=gen)
    y = x.sum(dim=1, keepdim=True).sin()
    wrappers, local_grads_differ, health_losses = set(), [], []
    for step in range(trainer.total_steps):
        for micro in range(ACCUMULATION):
            start = step * effective + micro * config.global_batch
            idx = ctx.shard(torch.arange(start, start + config.global_batch))
            wrapper = trainer.wrapped
            wrappers.add(id(wrapper))
            loss = torch.nn.functional.mse_loss(wrapper(x[idx]), y[idx])
            trainer.step(loss)
            if (
                micro == 0 and place.distributed
            ):  # after a no_sync backward each worker holds its own gradient
                grad = model[2].weight.grad.clone()
                others = gather_detached(grad.unsqueeze(0))
                local_grads_differ.append(not torch.equal(others[0], others[1]))
        if trainer.latest_health is not None:
            health_losses.append(trainer.latest_health.to_dict())
    return {
        "state": {
            k: v.detach().tolist() for k, v in model.state_dict().items()
        },  # plain data crosses processes
        "wrappers": len(wrappers),
        "local_grads_differ": local_grads_differ,
        "health": health_losses,
        "wrapped_is_ddp": type(trainer.wrapped).__name__,
    }


def _worker(rank: int, port: int, queue: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORKERS)
    try:
        queue.put((rank, _train(Place(rank, WORKERS))))
    finally:
        dist.destroy_process_group()


def _bypass_worker(rank: int, port: int, queue: Any) -> None:
    """Train with ``model(x)`` instead of ``trainer.wrapped(x)``: the step must refuse it."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORKERS)
    try:
        config = _config(WORKERS, BATCH).model_copy(update={"accumulation_steps": 1})
        ctx = TrialContext(config, device="cpu", place=Place(rank, WORKERS))
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        trainer = ctx.trainer(model, steps_per_epoch=1)
        x = torch.randn(BATCH, 4)
        trainer.step(trainer.wrapped(x).square().mean())  # through the wrapper: fine
        try:
            trainer.step(model(x).square().mean())  # around it
            queue.put((rank, "no error"))
        except WrapperBypassed as exc:
            queue.put((rank, str(exc)))
    finally:
        dist.destroy_process_group()


def _finetune_config(workers: int, batch: int) -> TrialConfig:
    from gradsweep.spaces.sampling import baseline_config
    from gradsweep.spaces.space import load_space

    config = baseline_config(load_space("finetune"), "after", scale="tiny", seed=0, workers=workers)
    return config.model_copy(update={"batch_size": batch})


def _finetune_worker(rank: int, port: int, queue: Any) -> None:
    """The finetune objective (head-only stage, then unfrozen) on one of two gloo workers."""
    from gradsweep.objectives import finetune

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORKERS)
    try:
        config = _finetune_config(WORKERS, 8)
        queue.put(
            (rank, finetune.run(config, TrialContext(config, device="cpu", place=Place(rank, WORKERS))))
        )
    finally:
        dist.destroy_process_group()


def _spawn(target: Any) -> dict[int, Any]:
    spawn = mp.get_context("spawn")
    queue = spawn.Queue()
    port = free_port()
    procs = [spawn.Process(target=target, args=(rank, port, queue)) for rank in range(WORKERS)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return results


@pytest.fixture(scope="module")
def two_workers() -> dict[int, dict[str, Any]]:
    return _spawn(_worker)


def test_two_workers_train_as_one_process_with_the_global_batch(
    two_workers: dict[int, dict[str, Any]],
) -> None:
    single = _train(SINGLE)
    for rank in range(WORKERS):
        for name, value in single["state"].items():
            # same weights as one process with batch 2b, through a frozen-then-thawed stage
            torch.testing.assert_close(
                torch.tensor(two_workers[rank]["state"][name]), torch.tensor(value), rtol=1e-5, atol=1e-6
            )


def test_ddp_wrapper_is_rebuilt_when_a_stage_thaws_a_tower(two_workers: dict[int, dict[str, Any]]) -> None:
    for rank in range(WORKERS):
        assert two_workers[rank]["wrapped_is_ddp"] == "DistributedDataParallel"
        # one wrapper for the head-only stage, one for the stage that trains both towers
        assert two_workers[rank]["wrappers"] == 2


def test_micro_batches_before_the_last_do_not_sync(two_workers: dict[int, dict[str, Any]]) -> None:
    # after the first micro-batch's backward the workers' gradients are their own (no_sync) ...
    assert all(two_workers[0]["local_grads_differ"]) and len(two_workers[0]["local_grads_differ"]) == sum(
        STEPS
    )


def test_every_worker_reaches_the_same_health_report(two_workers: dict[int, dict[str, Any]]) -> None:
    # averaged gradients and the loss averaged over workers: the same report on every rank
    reports = [json.dumps(two_workers[rank]["health"], sort_keys=True) for rank in range(WORKERS)]  # NaN-safe
    assert two_workers[0]["health"] and reports[0] == reports[1]


def test_a_forward_around_the_ddp_wrapper_fails_the_step_on_every_worker() -> None:
    messages = _spawn(_bypass_worker)
    # both workers refuse the same step (no hang in a collective), naming what to call instead
    for rank in range(WORKERS):
        assert "did not go through trainer.wrapped" in messages[rank] and "step 1" in messages[rank], messages


def test_finetune_frozen_then_unfrozen_on_two_workers_scores_as_one_process() -> None:
    from gradsweep.objectives import finetune

    single = _finetune_config(1, 16)
    torch.set_num_threads(1)
    one = finetune.run(single, TrialContext(single, device="cpu"))
    # the DDP wrapper rebuilt at the unfreeze: the backbone's gradients are averaged from then on
    # (equal here, run for run; the backbone has no batch statistics)
    assert _spawn(_finetune_worker) == {0: pytest.approx(one, abs=1e-6), 1: pytest.approx(one, abs=1e-6)}


def test_helpers_are_the_identity_in_one_process() -> None:
    x = torch.arange(6.0).reshape(3, 2)
    assert gather(x) is x and gather_detached(x) is x and mean_over_workers(x) is x
    assert shard(list(range(6)), Place(rank=1, world_size=2)) == [3, 4, 5]
    with pytest.raises(ValueError, match="multiple of 4"):
        shard(list(range(6)), Place(rank=0, world_size=4))
    with pytest.raises(ValueError, match=r"rank must be in 0\.\.1"):
        Place(rank=2, world_size=2)


def test_config_for_other_worker_count_is_refused_with_the_flag_to_use() -> None:
    with pytest.raises(ValueError, match="--workers-per-trial 2"):
        TrialContext(_config(2, BATCH), device="cpu")


def test_effective_batch_and_linear_lr_scaling_count_the_workers() -> None:
    config = _config(2, BATCH)
    assert config.effective_batch == BATCH * ACCUMULATION * 2 and config.global_batch == BATCH * 2
    scaled = config.model_copy(
        update={"schedule": config.schedule.model_copy(update={"lr_scaling": "linear"})}
    )
    one = scaled.model_copy(update={"workers": 1})
    assert scaled.effective_lr("body") == pytest.approx(2 * one.effective_lr("body"))
