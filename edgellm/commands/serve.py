"""`edgellm serve DIR|MODEL`: an OpenAI-compatible HTTP server (edgellm/serve/).

A compiled project runs on --device (the board, or the emulator); a checkpoint on a CPU --backend.
One device serves one request at a time; the others wait in a bounded queue. Binds 127.0.0.1 unless
--host says otherwise, and then --api-key is required. --speculate (the options of run and generate)
makes every request decode speculatively. Needs the [serve] extra (Starlette, uvicorn, Jinja2): pip
install "edgellm[serve]".
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from edgellm.commands.chat import BackendOpt, TargetArg
from edgellm.commands.options import NoVerifyOpt
from edgellm.commands.run import DeviceOpt, TimeoutOpt
from edgellm.commands.speculation import (
    DEFAULT_K_MAX,
    DraftLayersOpt,
    SpecKMaxOpt,
    SpecKMinOpt,
    SpeculateOpt,
    spec_config,
)
from edgellm.errors import EdgeLLMError
from edgellm.runtime.text import check_utf8

EXTRA = ("starlette", "uvicorn", "jinja2")
HostOpt = Annotated[str, typer.Option(help="Address to bind (anything but loopback needs --api-key).")]
PortOpt = Annotated[int, typer.Option(help="TCP port (0: any free port, printed).")]
ApiKeyOpt = Annotated[str | None, typer.Option(
    "--api-key", envvar="EDGELLM_API_KEY", show_envvar=True,
    help="Require `Authorization: Bearer KEY` on every request.")]
ModelNameOpt = Annotated[str | None, typer.Option(
    "--model-name", help="The model id clients use (default: the directory or file name).")]
QueueOpt = Annotated[int, typer.Option(help="Requests that may wait for the device; more get 429.")]
RequestTimeoutOpt = Annotated[float, typer.Option(
    help="Seconds a request may take, waiting included (then 504).")]


def serve_cmd(
    target: TargetArg = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    api_key: ApiKeyOpt = None,
    device: DeviceOpt = "auto",
    backend: BackendOpt = "golden",
    model_name: ModelNameOpt = None,
    queue_size: QueueOpt = 16,
    request_timeout: RequestTimeoutOpt = 300.0,
    timeout: TimeoutOpt = 60.0,
    no_verify_checksums: NoVerifyOpt = False,
    speculate: SpeculateOpt = "off",
    spec_k_max: SpecKMaxOpt = DEFAULT_K_MAX,
    spec_k_min: SpecKMinOpt = 0,
    draft_layers: DraftLayersOpt = None,
) -> None:
    """Serve a model over the OpenAI API (/v1/models, /v1/completions, /v1/chat/completions)."""
    from edgellm.commands.run import check_timeout

    missing = [m for m in EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise EdgeLLMError(f"edgellm serve needs {', '.join(missing)}: pip install \"edgellm[serve]\"")
    check_timeout(timeout)
    if not (math.isfinite(request_timeout) and request_timeout > 0):
        raise EdgeLLMError(f"--request-timeout must be a finite number of seconds > 0, got {request_timeout}")
    if queue_size < 1:
        raise EdgeLLMError(f"--queue-size must be >= 1, got {queue_size}")
    if api_key is not None and not api_key.strip():
        raise EdgeLLMError("--api-key is empty")
    if model_name is not None:
        check_utf8(model_name, "--model-name")  # the id goes into every JSON answer
    spec = spec_config(speculate, spec_k_max, spec_k_min, draft_layers)
    from edgellm.serve.server import is_loopback

    if not is_loopback(host) and api_key is None:
        raise EdgeLLMError(f"--host {host} lets other machines reach the device: pass --api-key (or the "
                           "EDGELLM_API_KEY variable), or bind 127.0.0.1")
    _serve(target, host, port, api_key, device, backend, model_name, queue_size, request_timeout, timeout,
           not no_verify_checksums, spec)


def _serve(target: Path | None, host: str, port: int, api_key: str | None, device: str, backend: str,
           model_name: str | None, queue_size: int, request_timeout: float, timeout: float,
           verify: bool, spec: Any = None) -> None:
    from edgellm.serve.app import ServeConfig, create_app
    from edgellm.serve.server import address, bind, serve_forever
    from edgellm.serve.target import open_target
    from edgellm.serve.worker import Worker

    sock = bind(host, port)  # before loading the model: a port in use fails fast
    try:
        t = open_target(target, device, backend, timeout, verify, model_name, info=_info, spec=spec)
        _check_model_id(t.name)
        if t.template.adds_bos:
            _info(f"[serve] note: {t.name} has no chat template: /v1/chat/completions joins the messages "
                  "as plain text")
        worker = Worker(t, queue_size, request_timeout, info=_info)
        cfg = ServeConfig(api_key, request_timeout, timeout, _info)
        app = create_app(t, worker, cfg)
        h, p = address(sock)
        shown = f"[{h}]" if ":" in h else h
        sp = t.spec
        spec_note = f", speculate {sp.mode} k {sp.k_min}..{sp.k_max}" if sp is not None else ""
        _info(f"[serve] {t.name} on {t.device}: http://{shown}:{p}/v1 (queue {queue_size}, request timeout "
              f"{request_timeout:g} s{', API key required' if api_key else ''}{spec_note}); Ctrl-C stops")
        worker.start()
        try:
            serve_forever(app, sock, max_connections=4 * queue_size + 64)
        finally:
            done = worker.close(timeout + 5.0)
            _info("[serve] stopped" if done else "[serve] stopped (the device was still busy)")
    finally:
        sock.close()


def _check_model_id(name: str) -> None:
    """The id taken from a path whose name is not UTF-8 (argv's surrogate escapes) could not be sent in a
    JSON answer: every request was a 500 with a traceback in the log."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise EdgeLLMError(f"the model id {name!r} (from the path's name) is not valid UTF-8 text; "
                           "name it with --model-name") from None


def _info(s: str) -> None:
    typer.echo(s, err=True)


def register(app: typer.Typer) -> None:
    """Add `edgellm serve`."""
    app.command("serve")(serve_cmd)
