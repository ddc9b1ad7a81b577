"""PYNQ.remote from a host: the board named by PYNQ_REMOTE_DEVICES, every gRPC call bounded.

pynq (3.1+) drives a remote board over gRPC with the same Overlay / MMIO / allocate API, but calls its
stubs without a deadline (a board that stops answering hangs the host) and its RemoteBuffer moves
whole buffers only (the board's server writes every BufferWriteRequest from offset 0 and reads the
whole buffer: the start/end fields of the protocol are not honoured), so a slice's sync_to_device
would overwrite the buffer's first bytes. This module connects to the board with a bounded wait,
puts a deadline on every call (a client interceptor on pynq's channel) and syncs byte ranges of a
remote buffer as read-modify-write of the whole buffer. grpc is pynq's own dependency and is imported
only here, only when a remote board is used; the board itself never loads this path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError

PYNQ_PORT = 7967  # pynq.pl_server.remote_device.PYNQ_PORT
ENV = "PYNQ_REMOTE_DEVICES"
EMULATED_BOARD_TAG = "edgellm emulated board"  # in the board name an emulated board reports
GONE = ("UNAVAILABLE", "CANCELLED")  # gRPC codes of a board (or its server) that went away


def parse_remote(value: str) -> tuple[str, int]:
    """(host, port) of the first board in PYNQ_REMOTE_DEVICES ("host", "host:port" or "[v6]:port";
    pynq itself takes hosts only and always port 7967)."""
    first = next((v.strip() for v in value.split(",") if v.strip()), "")
    if not first:
        raise EdgeLLMError(f"{ENV} names no board")
    host, port = first, PYNQ_PORT
    if first.startswith("["):
        host, _, rest = first[1:].partition("]")
        if rest:
            port = _port(rest.removeprefix(":"), first)
    elif first.count(":") == 1:
        host, p = first.split(":")
        port = _port(p, first)
    if not host:
        raise EdgeLLMError(f"{ENV}={value!r}: no host name")
    return host, port


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise EdgeLLMError(f"{ENV} entry {entry!r}: the port must be a number 1..65535")
    return int(text)


def rpc_text(e: BaseException) -> str:
    """One line for a failed remote call: the gRPC status and details, or pynq's message."""
    code = getattr(e, "code", None)
    details = getattr(e, "details", None)
    if callable(code) and callable(details):
        try:
            name, text = getattr(code(), "name", str(code())), str(details() or "")
        except Exception:  # a grpc error object without a status yet
            name = text = ""
        if name:
            said = name if text in ("", name) else f"{name}: {text}"
            if name in GONE:
                said = f"the board stopped answering ({said})"
            return said.replace("\n", " ")
    return (str(e) or type(e).__name__).replace("\n", " ")


def is_deadline(e: BaseException) -> bool:
    """True when a gRPC call ended because its deadline passed."""
    code = getattr(e, "code", None)
    try:
        return callable(code) and getattr(code(), "name", "") == "DEADLINE_EXCEEDED"
    except Exception:
        return False


def _deadline_interceptor(timeout: Callable[[], float]) -> Any:
    """A grpc client interceptor giving every call that has none the deadline timeout() returns."""
    import grpc

    class Deadline(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
        def _details(self, d: Any) -> Any:
            if d.timeout is not None:
                return d
            return d._replace(timeout=timeout()) if hasattr(d, "_replace") else _Details(d, timeout())

        def intercept_unary_unary(self, cont: Any, d: Any, req: Any) -> Any:
            return cont(self._details(d), req)

        def intercept_unary_stream(self, cont: Any, d: Any, req: Any) -> Any:
            return cont(self._details(d), req)

        def intercept_stream_unary(self, cont: Any, d: Any, reqs: Any) -> Any:
            return cont(self._details(d), reqs)

        def intercept_stream_stream(self, cont: Any, d: Any, reqs: Any) -> Any:
            return cont(self._details(d), reqs)

    class _Details(grpc.ClientCallDetails):
        def __init__(self, d: Any, t: float) -> None:
            self.method, self.timeout, self.metadata = d.method, t, d.metadata
            self.credentials, self.wait_for_ready = d.credentials, d.wait_for_ready
            self.compression = getattr(d, "compression", None)

    return Deadline()


def connect(pynq: Any, host: str, port: int, timeout_s: float, call_timeout: Callable[[], float]) -> Any:
    """pynq's RemoteDevice for host:port, made in a worker thread bounded by timeout_s (its constructor
    waits 5 s for the channel, then reads two files from the board without a deadline), with every
    later call bounded by call_timeout() seconds. Made the active device (pynq's Register, MMIO, Clocks
    and allocate use it); pynq's cached clock driver is dropped (it holds the previous board's stubs)."""
    from pynq.pl_server.remote_device import RemoteDevice

    box: dict[str, Any] = {}

    def make() -> None:
        try:
            box["dev"] = RemoteDevice(0, host, port)
        except BaseException as e:  # handed to the caller
            box["err"] = e

    t = threading.Thread(target=make, name="pynq remote connect", daemon=True)
    t.start()
    t.join(timeout_s)
    where = f"the board at {host}:{port} ({ENV})"
    if t.is_alive():
        raise EdgeLLMError(f"{where} did not answer within {timeout_s:g} s")
    if "err" in box:
        raise EdgeLLMError(f"cannot reach {where}: {rpc_text(box['err'])}")
    dev = box["dev"]
    import grpc
    from pynq.remote import buffer_pb2_grpc, gpio_pb2_grpc, mmio_pb2_grpc, remote_device_pb2_grpc

    ch = grpc.intercept_channel(dev.client.channel, _deadline_interceptor(call_timeout))
    dev._stub = {"device": remote_device_pb2_grpc.RemoteDeviceStub(ch), "mmio": mmio_pb2_grpc.MmioStub(ch),
                 "buffer": buffer_pb2_grpc.RemoteBufferStub(ch), "gpio": gpio_pb2_grpc.GpioStub(ch)}
    pynq.Device.active_device = dev
    clocks = getattr(pynq, "Clocks", None)
    if clocks is not None and "_real_instance" in vars(clocks):
        delattr(clocks, "_real_instance")
    if clocks is not None and hasattr(clocks, "set_device"):
        clocks.set_device(dev)
    return dev


def is_remote_buffer(handle: Any) -> bool:
    """A pynq RemoteBuffer (whole-buffer transfers only)."""
    return hasattr(handle, "buffer_id") and hasattr(handle, "stub") and hasattr(handle, "invalidate")


def sync_range_to_device(handle: Any, host: np.ndarray, offset: int, size: int) -> None:
    """Make host[offset:offset+size] the board's bytes there, and only those: read the board's whole
    buffer, overlay the range, write it back, flush; host keeps its own bytes outside the range."""
    if offset == 0 and size == host.size:
        handle.sync_to_device()
        return
    mine = host.copy()
    handle.sync_from_device()  # host := board
    host[offset:offset + size] = mine[offset:offset + size]
    try:
        handle.sync_to_device()  # board := board with the range replaced
    finally:
        host[:] = mine


def sync_range_from_device(handle: Any, host: np.ndarray, offset: int, size: int) -> None:
    """Make the board's bytes in [offset, offset+size) the host's, and only those."""
    if offset == 0 and size == host.size:
        handle.sync_from_device()
        return
    mine = host.copy()
    try:
        handle.sync_from_device()
        mine[offset:offset + size] = host[offset:offset + size]
    finally:
        host[:] = mine
