"""`edgellm board-emulator DIR [--port P]`: an emulated PYNQ board for a compiled project.

Serves pynq's PYNQ.remote protocol (gRPC) on 127.0.0.1:P, backed by the project's C simulation, so
that `PYNQ_REMOTE_DEVICES=127.0.0.1:P edgellm run DIR --device pynq` drives the accelerator through the
unmodified pynq package (Overlay, MMIO, allocate) as it would drive a board. The project's .hwh is
checked against its block design first; an unbuilt project gets an emulation bitstream <ip>.bit for
the time the emulator runs. Runs until SIGINT or SIGTERM (or --seconds), then stops within a few
seconds and removes what it wrote. Needs grpcio and pynq (pip install edgellm[board]).
"""

from __future__ import annotations

import math
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

POLL_S = 0.2


def _stop_on_signals(stop: threading.Event) -> dict[int, Any]:
    """SIGINT and SIGTERM set stop (the previous handlers are returned for restoring)."""
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.signal(sig, lambda *_: stop.set())
    return old


def board_emulator_cmd(
    project: Annotated[Path, typer.Argument(help="Compiled project directory (edgellm compile).")],
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port (pynq's own is 7967; 0: any free "
                                      "port, printed).")] = 7967,
    host: Annotated[str, typer.Option("--host", help="Address to listen on. The protocol has no "
                                      "authentication: keep it on 127.0.0.1.")] = "127.0.0.1",
    threads: Annotated[bool, typer.Option("--threads", help="The threaded C simulation (dataflow processes "
                                          "concurrent over bounded FIFOs).")] = False,
    seconds: Annotated[float, typer.Option("--seconds", help="Stop after this many seconds "
                                           "(default: until SIGINT / SIGTERM).")] = math.inf,
) -> None:
    """Serve an emulated PYNQ board (PYNQ.remote over gRPC) running the project's accelerator."""
    from edgellm.commands.csim import check_project
    from edgellm.errors import EdgeLLMError

    if not 0 <= port < 65536:
        raise EdgeLLMError(f"--port {port}: a TCP port is 0..65535")
    if math.isnan(seconds) or seconds <= 0:
        raise EdgeLLMError(f"--seconds must be > 0, got {seconds:g}")
    try:
        import grpc  # noqa: F401
        from pynq.remote import mmio_pb2_grpc  # noqa: F401
    except ImportError:
        raise EdgeLLMError("the board emulator needs pynq and grpcio: pip install edgellm[board]") from None
    from edgellm.board_emulator.server import BoardServer, make_board, prepare
    from edgellm.runtime.probe_kit import ProbeKit, is_kit

    kit = is_kit(project)  # a calibration kit (edgellm calibrate) is served the same way
    p = ProbeKit.open(project) if kit else check_project(project)
    prepared = prepare(p)
    stop = threading.Event()
    old = _stop_on_signals(stop)
    try:
        board = make_board(p, prepared, threads=threads)
        server = BoardServer(board, host, port)
        server.start()
        try:
            hwh = "generated" if prepared.hwh.generated else "Vivado's"
            print(f"edgellm board-emulator: {p.iface.ip_name} of {p.path} on {server.address} ({hwh} .hwh, "
                  f"{prepared.bit.name})", flush=True)
            print(f"edgellm board-emulator: PYNQ_REMOTE_DEVICES={server.address} edgellm "
                  f"{'calibrate' if kit else 'run'} {p.path} --device pynq", flush=True)
            waited = 0.0
            while not stop.wait(POLL_S) and waited < seconds:
                waited += POLL_S
        finally:
            server.stop()
        print(f"edgellm board-emulator: stopped ({board.state()})", file=sys.stderr, flush=True)
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
        prepared.cleanup()


def register(app: typer.Typer) -> None:
    """Add `edgellm board-emulator`."""
    app.command("board-emulator")(board_emulator_cmd)
