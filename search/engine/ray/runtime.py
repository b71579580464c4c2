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
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace

from gradsweep.errors import UserError
from gradsweep.search.engine.ray import TRAIN_ENV

QUIET_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no CSV / JSON / TensorBoard result files
    "TUNE_DISABLE_SIGINT_HANDLER": "1",  # the runner handles Ctrl-C and records interrupted trials
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_DEDUP_LOGS": "0",
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",  # errors are stored on the trial, not dumped to the terminal
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
}

CLUSTER_MODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: ``--checkpoint-every``: a retried trial repeats at most about a minute of training.
DEFAULT_CHECKPOINT_EVERY_S = 60.0
DEFAULT_STORE_WAIT_S = 60.0
"""How long a sweep rides out a study store that stopped answering (a database restart or failover)."""


@dataclass(frozen=True)
class Resources:
    """Per-trial resources and where to run.

    Args:
        cpus_per_trial: CPUs each trial reserves (fractions allowed, > 0).
        gpus_per_trial: GPUs each trial reserves (fractions put several trials on one GPU).
        concurrency: trials at once; None for as many as the resources allow.
        cpu_fallback: run on CPU when GPUs were asked for but there are none.
        address: a running Ray cluster (``ray://...`` or ``host:port``); None joins ``RAY_ADDRESS``
            when that is set (and not ``local``), else starts a local Ray.
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
    store_wait_s: float = DEFAULT_STORE_WAIT_S
    workers_per_trial: int = 1
    cpus_per_worker: float | None = None
    gpus_per_worker: float | None = None

    def __post_init__(self) -> None:
        self._check_workers()
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
        if not 0 <= self.store_wait_s < math.inf:  # also refuses nan
            raise UserError(f"--store-wait must be >= 0 seconds and finite, got {self.store_wait_s:g}")

    def _check_workers(self) -> None:
        n = self.workers_per_trial
        if n < 1:
            raise UserError(f"--workers-per-trial must be at least 1, got {n}")
        given = [
            f
            for f, v in (
                ("--cpus-per-worker", self.cpus_per_worker),
                ("--gpus-per-worker", self.gpus_per_worker),
            )
            if v is not None
        ]
        if n == 1 and given:
            raise UserError(
                f"{given[0]} sizes the workers of a multi-worker trial; give --workers-per-trial 2 or more, or use --cpus-per-trial / --gpus-per-trial"
            )
        if n > 1 and (self.cpus_per_trial != 1.0 or self.gpus_per_trial != 0.0):
            flag = "--cpus-per-trial" if self.cpus_per_trial != 1.0 else "--gpus-per-trial"
            raise UserError(
                f"{flag} sizes a single-process trial; with --workers-per-trial {n} give each worker's share "
                "with --cpus-per-worker / --gpus-per-worker"
            )
        if self.cpus_per_worker is not None and not 0 < self.cpus_per_worker < math.inf:  # also nan
            raise UserError(f"--cpus-per-worker must be > 0 and finite, got {self.cpus_per_worker:g}")
        gpw = self.gpus_per_worker
        if gpw is not None and not (0 <= gpw < math.inf and gpw == int(gpw)):  # also nan
            raise UserError(
                f"--gpus-per-worker must be 0 or a whole number (NCCL gives each worker its own GPUs), got {gpw:g}"
            )

    @property
    def distributed(self) -> bool:
        """Each trial is a DDP job of :attr:`workers_per_trial` workers (Ray Train)."""
        return self.workers_per_trial > 1

    @property
    def cpu_flag(self) -> str:
        """The flag that sizes a trial's (or each worker's) CPUs, for messages."""
        return "--cpus-per-worker" if self.distributed else "--cpus-per-trial"

    @property
    def gpu_flag(self) -> str:
        """The flag that sizes a trial's (or each worker's) GPUs, for messages."""
        return "--gpus-per-worker" if self.distributed else "--gpus-per-trial"

    def one_worker(self) -> Resources:
        """The request of one worker as a one-process trial (what must fit on a single node)."""
        return Resources(cpus_per_trial=self.worker_cpus, gpus_per_trial=self.worker_gpus)

    @property
    def worker_cpus(self) -> float:
        """CPUs of one worker: ``--cpus-per-worker`` (default 1), or the trial's for a single process."""
        if not self.distributed:
            return self.cpus_per_trial
        return 1.0 if self.cpus_per_worker is None else self.cpus_per_worker

    @property
    def worker_gpus(self) -> float:
        """GPUs of one worker: ``--gpus-per-worker`` (default 0), or the trial's for a single process."""
        if not self.distributed:
            return self.gpus_per_trial
        return 0.0 if self.gpus_per_worker is None else self.gpus_per_worker

    @property
    def trial_cpus(self) -> float:
        """CPUs one trial reserves: every worker's."""
        return self.worker_cpus * self.workers_per_trial

    @property
    def trial_gpus(self) -> float:
        """GPUs one trial reserves: every worker's."""
        return self.worker_gpus * self.workers_per_trial

    def without_gpus(self) -> Resources:
        """The same request on CPU (``--cpu-fallback`` on a cluster without GPUs)."""
        return replace(self, gpus_per_worker=0.0) if self.distributed else replace(self, gpus_per_trial=0.0)

    def workers_text(self) -> str:
        """A multi-worker request as the command line gives it (for messages)."""
        text = f"--workers-per-trial {self.workers_per_trial} with --cpus-per-worker {self.worker_cpus:g}"
        return text + (f" and --gpus-per-worker {self.worker_gpus:g}" if self.worker_gpus else "")

    def concurrency_for(self, *, cpus: float, gpus: float) -> int:
        """Trials at once: ``--concurrency`` if given, else what ``cpus`` (and ``gpus``) fit, at least 1."""
        if self.concurrency is not None:
            return self.concurrency
        return max(1, how_many(cpus, gpus, need_cpus=self.trial_cpus, need_gpus=self.trial_gpus))


def how_many(cpus: float, gpus: float, *, need_cpus: float, need_gpus: float) -> int:
    """How many requests of ``need_cpus`` CPUs and ``need_gpus`` GPUs fit in ``cpus`` and ``gpus``.

    Example:
        >>> how_many(8.0, 2.0, need_cpus=2.0, need_gpus=1.0), how_many(8.0, 0.0, need_cpus=3.0, need_gpus=0.0)
        (2, 2)
    """
    fit = math.floor(cpus / need_cpus + 1e-9)
    if need_gpus > 0:
        fit = min(fit, math.floor(gpus / need_gpus + 1e-9))
    return fit


@dataclass(frozen=True)
class RayInfo:
    """What the sweep runs on."""

    device: str
    concurrency: int
    gpus_per_trial: float  # of one worker in a multi-worker trial (after --cpu-fallback)
    cpus: float
    gpus: float
    nodes: int
    owned: bool = True


def trial_threads(cpus_per_trial: float, env: dict[str, str] | None = None) -> int:
    """The torch (OpenMP) threads a trial with ``cpus_per_trial`` CPUs trains with.

    Ray sets ``OMP_NUM_THREADS`` in its workers to the CPUs a trial reserves, rounded down, at
    least 1, unless the user set it (Ray's ``set_omp_num_threads_if_unset``); torch takes its
    thread count from it. ``gradsweep try`` uses this to train as a trial would.

    Example:
        >>> trial_threads(1.0, env={}), trial_threads(0.5, env={}), trial_threads(2.0, env={})
        (1, 1, 2)
        >>> trial_threads(1.0, env={"OMP_NUM_THREADS": "4"})
        4
    """
    given = (os.environ if env is None else env).get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return max(math.floor(cpus_per_trial + 1e-9), 1)


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
    if cluster_address(resources) is not None:
        return
    if resources.trial_gpus > 0 and _local_gpus() == 0 and not resources.cpu_fallback:
        raise UserError(
            f"{resources.gpu_flag} {resources.worker_gpus:g} but this machine has no GPU; "
            "drop the flag, or pass --cpu-fallback to run on CPU"
        )
    if resources.distributed:  # a local Ray gets this machine's CPUs: refuse before starting it
        cpus = _local_cpus()
        if cpus is not None and resources.trial_cpus > cpus + 1e-9:
            raise UserError(
                f"{resources.workers_text()} needs {resources.trial_cpus:g} CPUs per trial but this machine "
                f"has {cpus}; lower --workers-per-trial or --cpus-per-worker"
            )


def _local_cpus() -> int | None:
    """The CPUs a local Ray would have here (cgroup limits included), or None when unknown."""
    try:
        from ray._private.utils import get_num_cpus

        return int(get_num_cpus())
    except Exception:  # private helper moved: leave the check to Ray's own sizing
        return None


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


@contextlib.contextmanager
def own_session() -> Iterator[None]:
    """While a local Ray starts, start its processes (GCS, raylet, their workers) in a session of their own.

    ``timeout``, Slurm and job schedulers stop a job with SIGTERM to its whole process group.
    Ray's processes in the driver's group would die with it, and the driver, still stopping
    its trials through Ray, would wait a minute for a GCS that is gone and then be killed by
    Ray before it could record anything. In their own session only the driver gets the
    signal: it stops the trials, records them and shuts Ray down. Ray does the same on
    Windows (a new process group), and only where the kernel ends the children with their
    parent (``PR_SET_PDEATHSIG``), so a SIGKILLed driver still leaves no Ray process behind.
    """
    from ray._private import services, utils

    if sys.platform == "win32" or not utils.detect_fate_sharing_support():
        yield
        return
    base = services.ConsolePopen

    class _OwnSession(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs.setdefault("start_new_session", True)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = _OwnSession
    try:
        yield
    finally:
        services.ConsolePopen = base


def cluster_address(resources: Resources) -> str | None:
    """The Ray cluster a sweep joins: ``--address``, else ``RAY_ADDRESS``; None starts a local Ray.

    ``RAY_ADDRESS`` empty or ``local`` means a local Ray, as it does for Ray itself.
    """
    if resources.address is not None:
        return resources.address
    env = os.environ.get("RAY_ADDRESS", "").strip()
    return None if env in ("", "local") else env


def unschedulable(resources: Resources, nodes: list[dict[str, float]]) -> str | None:
    """Why no node of the cluster can ever hold one trial, or None when one can.

    Args:
        resources: the per-trial request (``gpus_per_trial`` after any ``--cpu-fallback``).
        nodes: the total resources of each alive node (``ray.nodes()[i]["Resources"]``).

    Example:
        >>> unschedulable(Resources(cpus_per_trial=8), [{"CPU": 4.0}, {"CPU": 2.0}])
        '--cpus-per-trial 8 but the largest Ray node has 4 CPUs'
        >>> unschedulable(Resources(cpus_per_trial=2), [{"CPU": 4.0}]) is None
        True
    """
    need_cpu, need_gpu = resources.worker_cpus, resources.worker_gpus
    eps = 1e-9
    cpu_flag, gpu_flag = resources.cpu_flag, resources.gpu_flag
    most_cpu = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    most_gpu = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    if not any(n.get("CPU", 0.0) + eps >= need_cpu and n.get("GPU", 0.0) + eps >= need_gpu for n in nodes):
        if most_cpu + eps < need_cpu:
            return f"{cpu_flag} {need_cpu:g} but the largest Ray node has {most_cpu:g} CPUs"
        if most_gpu + eps < need_gpu:
            return f"{gpu_flag} {need_gpu:g} but the largest Ray node has {most_gpu:g} GPUs"
        return f"{cpu_flag} {need_cpu:g} with {gpu_flag} {need_gpu:g}: no Ray node has both"
    if resources.distributed:  # the workers of one trial may spread over nodes: count them all
        fits = sum(
            how_many(n.get("CPU", 0.0), n.get("GPU", 0.0), need_cpus=need_cpu, need_gpus=need_gpu)
            for n in nodes
        )
        if fits < resources.workers_per_trial:
            cpus = sum(n.get("CPU", 0.0) for n in nodes)
            gpus = sum(n.get("GPU", 0.0) for n in nodes)
            need = f"{resources.trial_cpus:g} CPUs" + (
                f" and {resources.trial_gpus:g} GPUs" if need_gpu else ""
            )
            have = f"{cpus:g} CPUs" + (f", {gpus:g} GPUs" if need_gpu else "")
            return f"{resources.workers_text()} needs {need} per trial but the Ray cluster holds {fits} such workers ({have})"
    return None


def _autoscaling_limits() -> dict[str, float] | None:
    """The largest node an autoscaler may add (its node groups' resources), or None.

    An autoscaler that reports its configuration to the GCS (autoscaler v2, KubeRay) lists its
    node groups there; a Ray started by ``ray.init`` or a fixed ``ray start`` cluster has none.
    """
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # private API moved or unreadable: treat as not autoscaling
        return None
    if config is None or not config.node_group_configs:
        return None
    limits: dict[str, float] = {}
    for group in config.node_group_configs:
        if group.max_count == 0:
            continue
        for key in ("CPU", "GPU"):
            limits[key] = max(limits.get(key, 0.0), float(group.resources.get(key, 0)))
    return limits


def check_schedulable(
    resources: Resources,
    nodes: list[dict[str, float]],
    *,
    autoscaler_limits: dict[str, float] | None,
    owned_local: bool,
) -> str | None:
    """Refuse a per-trial request that no node of the cluster can ever hold.

    Ray would keep such a trial PENDING forever, silently. An autoscaling cluster that could
    add a node big enough gets a warning instead, and so does a cluster joined by address that
    reports no autoscaler configuration (an autoscaler of ``ray up`` reports none).

    Args:
        resources: the per-trial request.
        nodes: the total resources of each alive node.
        autoscaler_limits: the largest node the autoscaler may add (:func:`_autoscaling_limits`).
        owned_local: the cluster is the local Ray this process started (it never grows).

    Returns:
        A warning line to print, or None.

    Raises:
        UserError: no node can hold one trial and none can be added.

    Example:
        >>> check_schedulable(Resources(cpus_per_trial=64), [{"CPU": 8.0}],
        ...                   autoscaler_limits={"CPU": 96.0}, owned_local=False)
        '--cpus-per-trial 64 but the largest Ray node has 8 CPUs; waiting for the autoscaler to add a larger node'
    """
    why = unschedulable(resources, nodes)
    if why is None:
        return None
    if autoscaler_limits is not None:
        # the autoscaler may add several nodes: one worker of a multi-worker trial must fit one
        if unschedulable(resources.one_worker(), [autoscaler_limits]) is None:
            return f"{why}; waiting for the autoscaler to add a larger node"
        raise UserError(f"{why}, and the autoscaler adds none larger; lower the request")
    if owned_local:
        raise UserError(f"{why} (the local Ray on this machine); lower the request")
    return f"{why}; trials wait until a larger node joins the cluster"


def start_ray(resources: Resources) -> RayInfo:
    """Connect to ``resources.address`` (or ``RAY_ADDRESS``) or start a local Ray, and size the sweep.

    A local Ray is always a new one (``address="local"``): without it ``ray.init`` joins
    whatever cluster the last ``ray start`` on this machine wrote to
    ``<RAY_TMPDIR>/ray_current_cluster``, which may be gone, or another user's.

    Returns:
        The device trials use and how many run at once.

    Raises:
        UserError: the cluster cannot be reached, GPUs were asked for and there are none
            (unless ``cpu_fallback``), or no node can ever hold one trial.
    """
    import ray

    quiet_environment()
    check_local_gpus(resources)
    address = cluster_address(resources)
    check_address(address)
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
        elif address is None:
            with loopback_only(), own_session():
                ray.init(address="local", _node_ip_address="127.0.0.1", **kwargs)
            start_reaper()
        else:  # a cluster's workers do not inherit this process's environment
            ray.init(address=address, runtime_env={"env_vars": dict(TRAIN_ENV)}, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local Ray"
        raise UserError(f"cannot start or reach Ray at {where}: {str(exc).strip().splitlines()[0]}") from exc
    try:
        totals = ray.cluster_resources()
        cpus, gpus = float(totals.get("CPU", 0.0)), float(totals.get("GPU", 0.0))

        per_trial = resources
        if resources.trial_gpus > 0 and gpus == 0:
            if not resources.cpu_fallback:
                raise UserError(
                    f"{resources.gpu_flag} {resources.worker_gpus:g} but the Ray cluster has no GPU; pass --cpu-fallback to run on CPU"
                )
            per_trial = resources.without_gpus()
        alive = [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]
        warning = check_schedulable(
            per_trial,
            alive,
            autoscaler_limits=_autoscaling_limits(),
            owned_local=owned and address is None,
        )
    except BaseException:
        stop_ray(owned)
        raise
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    device = "cuda" if per_trial.worker_gpus > 0 else "cpu"
    concurrency = per_trial.concurrency_for(cpus=cpus, gpus=gpus)
    return RayInfo(device, concurrency, per_trial.worker_gpus, cpus, gpus, len(alive), owned)


_reaper: subprocess.Popen[bytes] | None = None


def start_reaper() -> None:
    """Start :mod:`~gradsweep.search.engine.ray.reaper` for the local Ray this process just started.

    It gets the process group of every Ray process the driver started (each leads its own, see
    :func:`own_session`) and a pipe from this process: if the driver dies without
    :func:`stop_ray`, the pipe closes and the reaper ends those groups. Nothing happens where
    the groups are unknown (Ray's private API moved) or cannot be told apart.
    """
    global _reaper
    try:
        from ray._private import worker

        node = worker._global_node
        pids = [info.process.pid for infos in node.all_processes.values() for info in infos]
        groups = sorted({os.getpgid(pid) for pid in pids} - {os.getpgrp()})
    except Exception:  # private API moved or a process already gone: no reaper
        return
    if not groups:
        return
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reaper.py")
    _reaper = subprocess.Popen(
        [sys.executable, "-I", script, *map(str, groups)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a signal to the driver's group leaves it running
        close_fds=True,
    )


def _stop_reaper() -> None:
    """Tell the reaper Ray was shut down properly; it exits without touching anything."""
    global _reaper
    if _reaper is None:
        return
    reaper, _reaper = _reaper, None
    try:
        assert reaper.stdin is not None
        reaper.stdin.write(b"stop\n")
        reaper.stdin.close()
        reaper.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        reaper.kill()


def local_ray_lost() -> bool:
    """True when the GCS or the raylet of the local Ray this process started has exited.

    A signal sent to every process of a job (a scheduler's SIGTERM to the job's cgroup) ends
    them together with the driver; the driver then cannot stop its trials through Ray. False
    for a cluster joined by address (its processes are not this process's children).
    """
    try:
        from ray._private import ray_constants, worker

        node = worker._global_node
        if node is None:
            return False
        kinds = (ray_constants.PROCESS_TYPE_GCS_SERVER, ray_constants.PROCESS_TYPE_RAYLET)
        return any(
            info.process.poll() is not None for kind in kinds for info in node.all_processes.get(kind, [])
        )
    except Exception:  # private API moved: assume Ray is there
        return False


def stop_ray(owned: bool = True) -> None:
    """Shut down the Ray connection ``start_ray`` opened (a no-op when not ``owned`` or none)."""
    import ray

    if owned and ray.is_initialized():
        ray.shutdown()
    if owned:
        _stop_reaper()
