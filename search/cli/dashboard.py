"""``gradsweep dashboard``: optuna-dashboard on the same study store, on localhost by default."""

from __future__ import annotations

import signal
import socket
import threading
from typing import Annotated
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
import typer

from gradsweep.errors import UserError
from gradsweep.search.cli._app import app, console
from gradsweep.search.cli._study_args import DEFAULT_STORAGE, StorageOpt
from gradsweep.search.views import mask_url, open_storage
from gradsweep.search.views.store import pick_study_name, study_names


def check_port(host: str, port: int) -> None:
    """Refuse a port that is taken (or a host we cannot bind) before starting the server.

    Raises:
        UserError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; pass another --port"
            ) from exc


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep request lines out of the user's terminal."""


class _Server(WSGIServer):
    # Reuse the address so a restart right after Ctrl-C does not hit TIME_WAIT.
    allow_reuse_address = True


def serve(storage: optuna.storages.BaseStorage, host: str, port: int) -> None:
    """Serve optuna-dashboard's WSGI app until SIGINT/SIGTERM, then shut down cleanly.

    ``optuna_dashboard.run_server`` runs wsgiref, whose request handler swallows a
    KeyboardInterrupt that lands mid-request (it catches everything), so Ctrl-C could leave the
    server running; here the signals ask the server to stop between requests instead.
    """
    from optuna_dashboard import wsgi

    server = make_server(host, port, wsgi(storage), server_class=_Server, handler_class=_QuietHandler)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def dashboard(
    storage: StorageOpt = DEFAULT_STORAGE,
    study: Annotated[
        str | None,
        typer.Option("--study", help="Also print the direct URL of this study (the dashboard shows all)."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; the default keeps it on this machine.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8080,
) -> None:
    """Serve optuna-dashboard for the study store until Ctrl-C.

    Binds to 127.0.0.1 unless --host says otherwise (the dashboard can edit studies: do not expose it on a shared network without a proxy in front).

    Example: [bold]gradsweep dashboard --storage sqlite:///gradsweep.db --port 8080[/]
    """
    store = open_storage(storage)
    page = ""
    if study is not None:
        name = pick_study_name(study_names(store), study, storage)
        page = f"dashboard/studies/{store.get_study_id_from_name(name)}"
    check_port(host, port)
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"optuna-dashboard for {mask_url(storage)} at http://{shown}:{port}/{page} (Ctrl-C stops it)",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    serve(store, host, port)
    console.print("dashboard stopped", highlight=False)
