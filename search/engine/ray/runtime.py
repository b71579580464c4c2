"""Starting or joining Ray quietly, and sizing a sweep to what the cluster has.

``ray.init`` is called without the dashboard, without forwarding worker logs to the driver,
and with Ray's loggers at WARNING, so the user's terminal shows the sweep, not Ray. A local
Ray binds to 127.0.0.1 only: on Linux Ray would otherwise advertise the machine's address and
listen on every interface (see :func:`loopback_only`).

Example:
    >>> Resources(cpus_per_trial=0.5).concurrency_for(cpus=2.0, gpus=0.0)
    4
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from gradsweep.errors import UserError

QUIET_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no CSV / JSON / TensorBoard result files
    "TUNE_DISABLE_SIGINT_HANDLER": "1",  # the runner handles Ctrl-C and records interrupted trials
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_DEDUP_LOGS": "0",
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",  # errors are stored on the trial, not dumped to the terminal
}
CLUSTER_MODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: ``--checkpoint-every``: a retried trial repeats at most about a minute of training.
DEFAULT_CHECKPOINT_EVERY_S = 60.0


@dataclass(frozen=True)
class Resources:
    """Per-trial resources and where to run.

    Args:
        cpus_per_trial: CPUs each trial reserves (fractions allowed, > 0).
        gpus_per_trial: GPUs each trial reserves (fractions put several trials on one GPU).
        concurrency: trials at once; None for as many as the resources allow.
        cpu_fallback: run on CPU when GPUs were asked for but there are none.
        address: a running Ray cluster (``ray://...`` or ``host:port``); None starts a local one.
        max_failures: retries of a crashing trial, from its last persisted checkpoint.
        checkpoint_every_s: seconds between the checkpoints Ray persists for a retry (0: every
            checkpoint the objective saves). Each persisted checkpoint is copied into the trial's
            Ray directory and makes Ray rewrite its experiment state, while the trial waits;
            a retry repeats at most this much training.

    Raises:
        UserError: a value out of range (the message names the flag).
    """

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrency: int | None = None
    cpu_fallback: bool = False
    address: str | None = None
    max_failures: int = 0
    checkpoint_every_s: float = DEFAULT_CHECKPOINT_EVERY_S

    def __post_init__(self) -> None:
        if not self.cpus_per_trial > 0:
            raise UserError(f"--cpus-per-trial must be > 0, got {self.cpus_per_trial:g}")
        if self.gpus_per_trial < 0:
            raise UserError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial:g}")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise UserError(f"--gpus-per-trial above 1 must be a whole number, got {self.gpus_per_trial:g}")
        if self.concurrency is not None and self.concurrency < 1:
            raise UserError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.max_failures < 0:
            raise UserError(f"--max-failures must be >= 0, got {self.max_failures}")
        if not self.checkpoint_every_s >= 0:  # also refuses nan
            raise UserError(f"--checkpoint-every must be >= 0 seconds, got {self.checkpoint_every_s:g}")

    def concurrency_for(self, *, cpus: float, gpus: float) -> int:
        """Trials at once: ``--concurrency`` if given, else what ``cpus`` (and ``gpus``) fit, at least 1."""
        if self.concurrency is not None:
            return self.concurrency
        fit = math.floor(cpus / self.cpus_per_trial + 1e-9)
        if self.gpus_per_trial > 0:
            fit = min(fit, math.floor(gpus / self.gpus_per_trial + 1e-9))
        return max(1, fit)


@dataclass(frozen=True)
class RayInfo:
    """What the sweep runs on."""

    device: str
    concurrency: int
    gpus_per_trial: float
    cpus: float
    gpus: float
    nodes: int
    owned: bool = True


def quiet_environment() -> None:
    """Set Ray Tune's environment switches for a quiet driver (only where the user did not)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in ("ray", "ray.train", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)  # "Trials did not complete": we report that


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install counts as no GPU
        return 0


def check_local_gpus(resources: Resources) -> None:
    """Refuse GPU trials on a machine without a GPU (local Ray only; a cluster is checked on connect).

    Raises:
        UserError: ``gpus_per_trial`` > 0, no local GPU, no ``cpu_fallback``.
    """
    if (
        resources.address is None
        and resources.gpus_per_trial > 0
        and _local_gpus() == 0
        and not resources.cpu_fallback
    ):
        raise UserError(
            f"--gpus-per-trial {resources.gpus_per_trial:g} but this machine has no GPU; "
            "drop the flag, or pass --cpu-fallback to run on CPU"
        )


def check_address(address: str | None, *, timeout_s: float = 5.0) -> None:
    """Refuse a ``--address`` nothing listens on, in seconds (Ray itself retries for minutes).

    ``auto``/``local`` and addresses without a port are left to Ray.

    Raises:
        UserError: nothing accepts a TCP connection at the address's host and port.
    """
    if address is None or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return
    host = host.strip("[]") or "127.0.0.1"
    try:  # Ray connects to the machine's own address for a loopback host: probe what Ray will use
        from ray._private.services import resolve_ip_for_localhost

        host = resolve_ip_for_localhost(host)
    except Exception:  # private helper moved or failed: probe the host as given
        pass
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserError(
            f"cannot reach the Ray cluster at --address {address}: {exc.strerror or exc}"
        ) from None


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While a local Ray starts, keep every Ray process on 127.0.0.1 (advertised and listening).

    On Linux ``ray.init(_node_ip_address="127.0.0.1")`` swaps loopback for the machine's own
    address, and the GCS, raylets and workers then listen on all interfaces: anyone on the
    network could submit code. With Ray's cluster mode off (its own default on macOS and
    Windows) the node keeps 127.0.0.1 and binds there. A user who set ``CLUSTER_MODE_ENV``
    keeps their choice.
    """
    if CLUSTER_MODE_ENV in os.environ:
        yield
        return
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[CLUSTER_MODE_ENV] = "0"  # read by the Ray processes started now
    ray_constants.ENABLE_RAY_CLUSTER = False  # read by this process (computed when Ray was imported)
    try:
        yield
    finally:
        os.environ.pop(CLUSTER_MODE_ENV, None)
        ray_constants.ENABLE_RAY_CLUSTER = before


def start_ray(resources: Resources) -> RayInfo:
    """Connect to ``resources.address`` or start a local Ray, and size the sweep.

    Returns:
        The device trials use and how many run at once.

    Raises:
        UserError: the cluster cannot be reached, or GPUs were asked for and there are none
            (unless ``cpu_fallback``).
    """
    import ray

    quiet_environment()
    check_local_gpus(resources)
    check_address(resources.address)
    kwargs: dict[str, object] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": True,
        "logging_level": logging.ERROR,
        "ignore_reinit_error": True,
    }
    owned = not ray.is_initialized()  # a Ray the caller already started is used and left running
    try:
        if not owned:
            pass
        elif resources.address is None:
            with loopback_only():
                ray.init(_node_ip_address="127.0.0.1", **kwargs)
        else:
            ray.init(address=resources.address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = resources.address or "a local Ray"
        raise UserError(f"cannot start or reach Ray at {where}: {str(exc).strip().splitlines()[0]}") from exc
    totals = ray.cluster_resources()
    cpus, gpus = float(totals.get("CPU", 0.0)), float(totals.get("GPU", 0.0))
    nodes = len([n for n in ray.nodes() if n.get("Alive")])
    gpus_per_trial = resources.gpus_per_trial
    if gpus_per_trial > 0 and gpus == 0:
        if not resources.cpu_fallback:
            stop_ray(owned)
            raise UserError(
                f"--gpus-per-trial {gpus_per_trial:g} but the Ray cluster has no GPU; pass --cpu-fallback to run on CPU"
            )
        gpus_per_trial = 0.0
    device = "cuda" if gpus_per_trial > 0 else "cpu"
    concurrency = Resources(
        cpus_per_trial=resources.cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        concurrency=resources.concurrency,
    ).concurrency_for(cpus=cpus, gpus=gpus)
    return RayInfo(device, concurrency, gpus_per_trial, cpus, gpus, nodes, owned)


def stop_ray(owned: bool = True) -> None:
    """Shut down the Ray connection ``start_ray`` opened (a no-op when not ``owned`` or none)."""
    import ray

    if owned and ray.is_initialized():
        ray.shutdown()
