from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

GRADSWEEP = Path(sys.executable).parent / "gradsweep"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _external_address() -> str | None:
    """A non-loopback IPv4 address of this machine, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))  # no packet is sent; this only picks a route
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_dashboard_serves_on_localhost_and_stops(demo_url: str) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(GRADSWEEP), "dashboard", "--storage", demo_url, "--study", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        # the URL printed is on 127.0.0.1 at the chosen port, pointing at the study
        assert f"http://127.0.0.1:{port}/dashboard/studies/1" in line
        body, deadline = "", time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as resp:
                    body = resp.read().decode()
                    break
            except OSError:
                time.sleep(0.3)
        # optuna-dashboard answers HTTP and sees the study
        assert '"study_name": "demo"' in body.replace('":"', '": "')
        external = _external_address()
        if external is not None:
            # it is not reachable on the machine's other addresses
            with pytest.raises(OSError), socket.create_connection((external, port), timeout=2):
                pass
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    # Ctrl-C stops it cleanly
    assert proc.returncode == 0, (proc.returncode, err[-2000:])


def test_port_in_use_is_one_line(gradsweep: Callable, demo_url: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        ran = gradsweep("dashboard", "--storage", demo_url, "--port", str(port))
    # a taken port is refused with one line naming it, before the server starts
    assert (
        ran.code == 1 and f"error: cannot listen on 127.0.0.1:{port}" in ran.err and ran.err.count("\n") == 1
    )


def test_dashboard_bad_inputs(gradsweep: Callable, demo_url: str, tmp_path: Path) -> None:
    # a missing store is one line, exit 1
    ran = gradsweep(
        "dashboard", "--storage", f"sqlite:///{tmp_path / 'nope.db'}", "--port", str(_free_port())
    )
    assert ran.code == 1 and "error: no study store at" in ran.err
    # an unknown --study is refused before the server starts
    ran = gradsweep("dashboard", "--storage", demo_url, "--study", "nope", "--port", str(_free_port()))
    assert ran.code == 1 and "error: no study 'nope'" in ran.err
    # an out-of-range port is a usage error
    assert gradsweep("dashboard", "--port", "70000").code == 2
