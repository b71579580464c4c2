"""A private local Ray for the benchmarks."""

from __future__ import annotations


def start_local_ray() -> None:
    """Start a fresh local Ray on 127.0.0.1, never joining a cluster another process started.

    ``ray.init()`` without an address joins the cluster named in ``/tmp/ray/ray_current_cluster``
    (left by any ``ray start`` on the machine); ``address="local"`` always starts a new one. The
    engine's quiet settings and loopback guard (:mod:`gradsweep.search.engine.ray.runtime`) apply.
    """
    import logging

    import ray

    from gradsweep.search.engine.ray.runtime import loopback_only, quiet_environment

    quiet_environment()
    if not ray.is_initialized():
        with loopback_only():  # the engine's guard: every Ray process listens on 127.0.0.1 only
            ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
                     configure_logging=True, logging_level=logging.ERROR)  # fmt: skip
