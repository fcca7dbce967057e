"""Start the server: binding rules (loopback unless an API key guards it), the model's public name,
uvicorn with graceful shutdown on SIGINT / SIGTERM."""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import sys
from pathlib import Path

import uvicorn

from slmkit.errors import SlmkitError

API_KEY_ENV = "SLMKIT_API_KEY"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, api_key: str | None, insecure: bool) -> None:
    """A port other machines can reach needs an API key, unless the user says so explicitly."""
    if not is_loopback(host) and not api_key and not insecure:
        raise SlmkitError(f"refusing to listen on {host} without an API key: anyone on the network could use "
                          f"the model; pass --api-key (or set {API_KEY_ENV}), or --insecure-no-key to accept that")


def model_name(target: str | None) -> str:
    """The id clients pass as ``model``: the artifact or folder name (the demo's when none is given)."""
    if target is None:
        return "slmkit-demo"
    path = Path(target)
    return (path.stem if path.is_file() else path.resolve().name) or "model"


def serve(target: str | None, *, device: str = "cpu", host: str = "127.0.0.1", port: int = 8000,
          api_key: str | None = None, insecure_no_key: bool = False, parallel: int = 4, max_queue: int = 16,
          timeout: float = 300.0, threads: int | None = None, verify: bool = True) -> None:
    """Load the model, then serve until SIGINT / SIGTERM (requests in flight finish first, up to 30 s)."""
    from slmkit.loader import load
    from slmkit.server.app import Settings, create_app

    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    check_binding(host, api_key, insecure_no_key)
    if not 0 <= port <= 65535:
        raise SlmkitError(f"port must be between 0 and 65535, got {port}")
    if parallel < 1 or max_queue < 0 or timeout <= 0:
        raise SlmkitError("--parallel must be at least 1, --max-queue at least 0 and --timeout positive")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:  # a clear error before the model is loaded, not uvicorn's log line after
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host.strip("[]"), port))
        except OSError as e:
            raise SlmkitError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    with load(target, device=device, threads=threads, verify=verify) as rt:
        settings = Settings(model_name(target), api_key, parallel, max_queue, timeout)
        app = create_app(rt, settings)
        config = uvicorn.Config(app, host=host.strip("[]"), port=port, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=30, lifespan="on")
        note = f"{settings.model_id} ({rt.backend}){' (API key required)' if api_key else ''}"
        # uvicorn handles SIGINT / SIGTERM (stop listening, let requests in flight finish) and then raises the
        # signal again for the previous handler: make that one a no-op so a requested stop exits 0.
        previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            Server(config, note).run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    print("slmkit serve: stopped", file=sys.stderr, flush=True)


class Server(uvicorn.Server):
    """uvicorn's server that prints where it listens once it does (the port chosen for ``--port 0`` too)."""

    def __init__(self, config: uvicorn.Config, note: str):
        super().__init__(config)
        self.note = note

    async def startup(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
        await super().startup(sockets)
        bound = [s.getsockname() for srv in self.servers for s in srv.sockets]
        if bound:
            host = f"[{bound[0][0]}]" if ":" in bound[0][0] else bound[0][0]
            print(f"slmkit serve: {self.note} on http://{host}:{bound[0][1]}", flush=True)
