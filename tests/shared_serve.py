"""Serving helpers shared by test_serve and test_serve_command: the app on a live server on 127.0.0.1
(a free port), the openai client of it, what `edgellm generate` prints, bounded waits. Test modules
import these from here, never from each other."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from typer.testing import CliRunner

from edgellm.cli import app as cli_app

WAIT_S = 20.0  # every wait in the serving tests is bounded by this


@contextlib.contextmanager
def serving(target: Any, queue_size: int = 16, request_timeout: float = 60.0, api_key: str | None = None,
            device_timeout: float = 5.0) -> Iterator[tuple[Any, Any]]:
    """(server, worker): the app on 127.0.0.1, a free port; stopped (bounded) on exit."""
    from edgellm.serve.app import ServeConfig, create_app
    from edgellm.serve.server import BackgroundServer
    from edgellm.serve.worker import Worker

    worker = Worker(target, queue_size, request_timeout)
    worker.start()
    gate = getattr(target.engine, "open", None)
    try:
        with BackgroundServer(create_app(target, worker, ServeConfig(api_key, request_timeout,
                                                                     device_timeout))) as srv:
            assert srv.host == "127.0.0.1"
            yield srv, worker
    finally:
        if gate is not None:
            gate.set()
        assert worker.close(WAIT_S)


def client(srv: Any, key: str = "none") -> Any:
    """The openai client of srv (no retries, bounded)."""
    import openai

    return openai.OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0, timeout=WAIT_S)


def generate_text(*args: str) -> str:
    """What `edgellm generate` prints for the tiny model (the golden backend)."""
    res = CliRunner().invoke(cli_app, ["generate", *args])
    assert res.exit_code == 0, res.output
    return res.stdout[:-1]  # its final newline


def wait_until(cond: Any, what: str, timeout: float = WAIT_S) -> None:
    """Poll cond until it holds; AssertionError naming `what` after timeout seconds."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
