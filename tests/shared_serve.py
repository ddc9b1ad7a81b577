"""Serving helpers shared by test_serve, test_serve_command and test_serve_speculate: the app on a live
server on 127.0.0.1 (a free port), the openai client of it, what `edgellm generate` prints, the `edgellm
serve` command as a process, bounded waits. Test modules import these from here, never from each other."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
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


def start_cli(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """`edgellm serve ... --port 0` as a process; (process, base url) once it listens."""
    env = {k: v for k, v in os.environ.items() if k != "EDGELLM_API_KEY"}
    proc = subprocess.Popen([sys.executable, "-m", "edgellm.cli", "serve", "--port", "0", *args],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines: list[str] = []
    found: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for ln in proc.stderr:
            lines.append(ln)
            if "http://" in ln and not found:
                found.append(ln.split("http://")[1].split("/v1")[0])
    threading.Thread(target=read, daemon=True).start()
    try:
        wait_until(lambda: bool(found) or proc.poll() is not None, "the server to listen", 60)
    except AssertionError:
        proc.kill()
        raise
    assert found, "".join(lines)
    proc.lines = lines  # type: ignore[attr-defined]
    return proc, f"http://{found[0]}"


@contextlib.contextmanager
def cli_server(args: list[str]) -> Iterator[tuple[subprocess.Popen[str], Any]]:
    """start_cli as a context: (process, an openai client on its /v1); the process is killed on the way out
    if the test did not stop it (stop_cli)."""
    import openai

    proc, url = start_cli(args)
    try:
        assert url.startswith("http://127.0.0.1:")
        yield proc, openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT_S)


def stop_cli(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    """Stop a start_cli server with sig; it must exit 0. Its stderr so far."""
    proc.send_signal(sig)
    assert proc.wait(WAIT_S) == 0
    return "".join(proc.lines)  # type: ignore[attr-defined]
