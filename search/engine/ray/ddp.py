"""Multi-worker trials: each trial one DDP job of N workers, a Ray Train ``TorchTrainer`` in the sweep.

With ``--workers-per-trial N`` the Tuner runs a ``TorchTrainer`` instead of the function
trainable: each trial is a Ray Train run of N worker processes in one ``torch.distributed``
group (gloo on CPU, NCCL on CUDA, set up by Ray Train), placed together in the trial's
placement group. Every worker runs :func:`~gradsweep.search.engine.ray.trainable.run_trial`
with its :class:`~gradsweep.objectives.distributed.Place`; the objective's ``ctx.trainer``
wraps the model in DDP. Sampling, pruning and the study are the driver's, exactly as for
single-process trials:

- every worker calls ``ray.train.report`` at each ``ctx.report`` (Ray Train waits for all of
  them and passes rank 0's result to Tune), and only rank 0 attaches checkpoints;
- a prune is Tune stopping the trial: Ray ends its trainer actor and with it every worker at
  once (they are its actors), so no worker is left waiting in a collective;
- a worker that dies fails the trial; Tune retries it (``--max-failures``) from rank 0's last
  persisted checkpoint, which every worker loads, or the driver stores it FAIL.

Why Ray Train's first API (``RAY_TRAIN_V2_ENABLED=0``): its second one runs a ``TorchTrainer``
inside a Tune function trainable, where (measured with Ray 2.60 on this project's CPU runner)
a stopped trial left its workers' placement group reserved, since its cleaner needs the Ray
dashboard that gradsweep starts without, so the next trial never started; and each report
waited about 2 s for the controller's poll. The first API stopped both workers at the report
that pruned them and started the next trial within seconds. Ray marks the first API deprecated;
when it goes, this module is the one to change.

The trial's Ray config nests the driver's config under ``train_loop_config`` (the trainer's
argument); :func:`gs_config` reads either form.
"""

from __future__ import annotations

import functools
from typing import Any

from gradsweep.errors import UserError
from gradsweep.objectives.distributed import Place
from gradsweep.search.engine.ray.runtime import Resources
from gradsweep.search.engine.ray.trainable import run_trial

#: The key of a TorchTrainer trial's config that holds the driver's config.
LOOP_CONFIG = "train_loop_config"


def gs_config(ray_config: dict[str, Any]) -> dict[str, Any]:
    """The driver's config of a Ray trial, for single-process and multi-worker trials alike."""
    nested = ray_config.get(LOOP_CONFIG)
    return nested if isinstance(nested, dict) else ray_config


def ddp_worker(config: dict[str, Any], checkpoint_every_s: float = 0.0) -> None:
    """One worker of a multi-worker trial (Ray Train's ``train_loop_per_worker``)."""
    import ray.train
    import torch

    context = ray.train.get_context()
    place = Place(context.get_world_rank(), context.get_world_size())
    device = None
    if torch.cuda.is_available() and config.get("gs_device") == "cuda":
        from ray.train.torch import get_device

        device = str(get_device())  # the GPU Ray Train gave this worker
    run_trial(
        config,
        checkpoint_every_s=checkpoint_every_s,
        send=ray.train.report,
        get_checkpoint=ray.train.get_checkpoint,
        place=place,
        device=device,
    )


def check_train_api() -> None:
    """Refuse multi-worker trials when ``ray.train`` was imported with Ray Train's second API.

    Raises:
        UserError: ``RAY_TRAIN_V2_ENABLED=1``, or a program that imported ``ray.tune`` before
            gradsweep's engine.
    """
    from ray.train.torch import TorchTrainer

    if "v2" in TorchTrainer.__module__:
        raise UserError(
            "--workers-per-trial needs Ray Train's first API: unset RAY_TRAIN_V2_ENABLED or set it to 0 "
            "(gradsweep's engine sets it when imported before ray.tune)"
        )


def ddp_trainer(resources: Resources, *, device: str) -> Any:
    """The ``TorchTrainer`` the Tuner runs as each trial of a multi-worker sweep.

    Args:
        resources: workers per trial and each one's CPUs and GPUs (after any ``--cpu-fallback``).
        device: ``cuda`` (NCCL, one GPU per worker) or ``cpu`` (gloo).

    Raises:
        UserError: see :func:`check_train_api` (``launch`` and ``resume`` call it first).
    """
    from ray.train import ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    check_train_api()
    cuda = device == "cuda"
    per_worker = {"CPU": resources.worker_cpus}
    if cuda:
        per_worker["GPU"] = max(resources.worker_gpus, 1.0)
    return TorchTrainer(
        functools.partial(ddp_worker, checkpoint_every_s=resources.checkpoint_every_s),
        scaling_config=ScalingConfig(
            num_workers=resources.workers_per_trial,
            use_gpu=cuda,
            resources_per_worker=per_worker,
            trainer_resources={"CPU": 0},  # the trial's coordinator trains nothing
        ),
        torch_config=TorchConfig(backend="nccl" if cuda else "gloo"),
    )
