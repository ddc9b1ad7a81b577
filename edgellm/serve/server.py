"""Bind the socket and run uvicorn: in the foreground (`edgellm serve`) or on a thread (tests, embedding).

The socket is bound here, before uvicorn starts, so a port in use is one clear error and port 0 picks
a free port whose number is known. SIGINT / SIGTERM stop the foreground server gracefully (open
streams get a few seconds) and `edgellm serve` then exits 0. Every wait here is bounded.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from edgellm.errors import EdgeLLMError

GRACEFUL_S = 3  # how long open connections get once a stop was asked for
BACKLOG = 2048  # uvicorn's default


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) and listening; EdgeLLMError naming the address when that fails."""
    if not 0 <= port <= 65535:
        raise EdgeLLMError(f"--port must be in [0, 65535], got {port}")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise EdgeLLMError(f"cannot resolve --host {host!r}: {e}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(BACKLOG)  # listening from here on: a client may connect before uvicorn runs
    except OSError as e:
        sock.close()
        raise EdgeLLMError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def address(sock: socket.socket) -> tuple[str, int]:
    """(host, port) the socket is bound to."""
    host, port = sock.getsockname()[:2]
    return str(host), int(port)


def _server(app: Any, max_connections: int | None = None) -> Any:
    import uvicorn

    class Server(uvicorn.Server):  # type: ignore[misc]
        """uvicorn's server, stopping on SIGINT/SIGTERM without re-raising the signal afterwards."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            old = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, h in old.items():
                    signal.signal(s, h)

    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                            timeout_graceful_shutdown=GRACEFUL_S, timeout_keep_alive=5,
                            limit_concurrency=max_connections)
    return Server(config)


def serve_forever(app: Any, sock: socket.socket, max_connections: int | None = None) -> None:
    """Run until SIGINT/SIGTERM (main thread); past max_connections open connections uvicorn answers 503."""
    _server(app, max_connections).run(sockets=[sock])


class BackgroundServer:
    """The app served on a thread (127.0.0.1, a free port by default): `with BackgroundServer(app) as s:`
    then s.url; leaving the block stops it (bounded)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 20.0):
        self.sock = bind(host, port)
        self.host, self.port = address(self.sock)
        self.server = _server(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="edgellm-serve", daemon=True)
        self.start_timeout_s = start_timeout_s

    @property
    def url(self) -> str:
        """http://host:port"""
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        end = time.monotonic() + self.start_timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > end:
                self.stop()
                raise EdgeLLMError(f"the server on {self.url} did not start within {self.start_timeout_s} s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self, timeout_s: float = GRACEFUL_S + 5.0) -> None:
        """Ask uvicorn to exit; force it if it is still running after timeout_s."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout_s)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(5.0)
        self.sock.close()
