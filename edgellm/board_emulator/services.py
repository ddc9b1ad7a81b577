"""PYNQ.remote's three services (pynq/remote/*_pb2_grpc.py) over an EmulatedBoard.

The messages and the behaviour pynq's client (pynq/pl_server/remote_device.py) relies on follow the
board's own server (PYNQ's pynq-remote.cc): buffer writes fill the buffer from offset 0 and reads
return all of it (the start/end fields are ignored there too), files stream in chunks, MMIO reads
return one integer. Every refusal is a gRPC status with the board's one-line message; pynq raises it
as grpc.RpcError, which PynqDevice reports in one line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from edgellm.board_emulator.board import BoardError, EmulatedBoard

CHUNK = 1 << 20  # bytes per streamed message (the board's server uses 1 MiB)


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Answer a BoardError with its status code and message (context.abort raises)."""

    @functools.wraps(fn)
    def wrapped(self: Any, request: Any, context: Any) -> Any:
        import grpc

        try:
            return fn(self, request, context)
        except BoardError as e:
            context.abort(getattr(grpc.StatusCode, e.code, grpc.StatusCode.FAILED_PRECONDITION), str(e))

    return wrapped


def _guard_stream(fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    @functools.wraps(fn)
    def wrapped(self: Any, request: Any, context: Any) -> Iterator[Any]:
        import grpc

        try:
            yield from fn(self, request, context)
        except BoardError as e:
            context.abort(getattr(grpc.StatusCode, e.code, grpc.StatusCode.FAILED_PRECONDITION), str(e))

    return wrapped


def _collect(requests: Iterator[Any], limit: int) -> tuple[Any, bytes]:
    """(first request, all data) of a client stream, refusing more than limit bytes."""
    first, parts, n = None, [], 0
    for r in requests:
        first = first or r
        data = r.data if hasattr(r, "data") else r.buffer
        n += len(data)
        if n > limit:
            raise BoardError(f"more than {limit} bytes streamed", "RESOURCE_EXHAUSTED")
        parts.append(data)
    if first is None:
        raise BoardError("empty request stream", "INVALID_ARGUMENT")
    return first, b"".join(parts)


def make_servicers(board: EmulatedBoard) -> list[tuple[Any, Callable[[Any, Any], None]]]:
    """(servicer, add_to_server) for RemoteDevice, Mmio and RemoteBuffer."""
    from pynq.remote import buffer_pb2_grpc, mmio_pb2_grpc, remote_device_pb2_grpc

    return [(device_servicer(board), remote_device_pb2_grpc.add_RemoteDeviceServicer_to_server),
            (mmio_servicer(board), mmio_pb2_grpc.add_MmioServicer_to_server),
            (buffer_servicer(board), buffer_pb2_grpc.add_RemoteBufferServicer_to_server)]


def device_servicer(board: EmulatedBoard) -> Any:
    """RemoteDevice: bitstream attributes, files (the download is a file write), PL clock, shutdown."""
    from pynq.remote import remote_device_pb2, remote_device_pb2_grpc

    from edgellm.board_emulator.board import FIRMWARE, MAX_FILE_BYTES

    class Device(remote_device_pb2_grpc.RemoteDeviceServicer):
        def __init__(self) -> None:
            self.attrs = ("", False)

        @_guard
        def set_bitstream_attrs(self, request: Any, context: Any) -> Any:
            self.attrs = (request.binfile_name, request.partial)
            return remote_device_pb2.SetBitstreamAttrsResponse(status=True)

        @_guard
        def download(self, request_iterator: Any, context: Any) -> Any:
            _, data = _collect(request_iterator, MAX_FILE_BYTES)
            board.write_file(FIRMWARE + self.attrs[0], data)
            board.configure(self.attrs[0])
            return remote_device_pb2.DownloadResponse(status=True)

        @_guard
        def set_pl_clk(self, request: Any, context: Any) -> Any:
            return remote_device_pb2.SetPlClkResponse(status=True)

        @_guard
        def shutdown(self, request: Any, context: Any) -> Any:
            return remote_device_pb2.ShutdownResponse(status=True)

        @_guard_stream
        def readfile(self, request: Any, context: Any) -> Iterator[Any]:
            data = board.read_file(request.file_path)
            for i in range(0, max(len(data), 1), CHUNK):
                yield remote_device_pb2.ReadFileResponse(data=data[i:i + CHUNK])

        @_guard
        def writefile(self, request_iterator: Any, context: Any) -> Any:
            first, data = _collect(request_iterator, MAX_FILE_BYTES)
            board.write_file(first.file_path, data)
            return remote_device_pb2.WriteFileResponse()

        @_guard
        def existsfile(self, request: Any, context: Any) -> Any:
            return remote_device_pb2.ExistsFileResponse(exists=board.exists(request.file_path))

    return Device()


def mmio_servicer(board: EmulatedBoard) -> Any:
    """Mmio: windows on the IP's registers or the PS's, 32/64-bit reads, word writes."""
    from pynq.remote import mmio_pb2, mmio_pb2_grpc

    class Mmio(mmio_pb2_grpc.MmioServicer):
        @_guard
        def get_mmio(self, request: Any, context: Any) -> Any:
            return mmio_pb2.GetMmioResponse(status=True, mmio_id=board.map(request.base_addr, request.length))

        @_guard
        def read(self, request: Any, context: Any) -> Any:
            big = request.word_order == "big"
            value = board.read(request.mmio_id, request.offset, request.length or 4, big)
            return mmio_pb2.ReadResponse(status=True, data=value)

        @_guard
        def write(self, request: Any, context: Any) -> Any:
            board.write(request.mmio_id, request.offset, request.data)
            return mmio_pb2.WriteResponse(status=True)

    return Mmio()


def buffer_servicer(board: EmulatedBoard) -> Any:
    """RemoteBuffer: DDR buffers, whole-buffer writes and reads, flush and invalidate, addresses."""
    from pynq.remote import buffer_pb2, buffer_pb2_grpc

    class Buffers(buffer_pb2_grpc.RemoteBufferServicer):
        @_guard
        def allocate(self, request: Any, context: Any) -> Any:
            return buffer_pb2.AllocateResponse(buffer_id=board.allocate(request.size))

        @_guard
        def write(self, request_iterator: Any, context: Any) -> Any:
            first, data = None, 0
            for r in request_iterator:  # from offset 0, as the board's server writes
                first = first or r
                host = board.buffer(first.buffer_id).array
                if data + len(r.data) > host.size:
                    return buffer_pb2.BufferWriteResponse(msg="Buffer overflow.")
                host[data:data + len(r.data)] = memoryview(r.data)
                data += len(r.data)
            return buffer_pb2.BufferWriteResponse()

        @_guard_stream
        def read(self, request: Any, context: Any) -> Iterator[Any]:
            host = board.buffer(request.buffer_id).array
            for i in range(0, host.size, CHUNK):
                yield buffer_pb2.BufferReadResponse(data=host[i:i + CHUNK].tobytes())

        @_guard
        def freebuffer(self, request: Any, context: Any) -> Any:
            board.free(request.buffer_id)
            return buffer_pb2.FreeBufferResponse()

        @_guard
        def flush(self, request: Any, context: Any) -> Any:
            board.sync(request.buffer_id, True)
            return buffer_pb2.FlushResponse()

        @_guard
        def invalidate(self, request: Any, context: Any) -> Any:
            board.sync(request.buffer_id, False)
            return buffer_pb2.InvalidateResponse()

        @_guard
        def physical_address(self, request: Any, context: Any) -> Any:
            return buffer_pb2.AddressResponse(address=board.buffer(request.buffer_id).physical_address)

        @_guard
        def virtual_address(self, request: Any, context: Any) -> Any:
            return buffer_pb2.AddressResponse(address=0xFFFF_0000_0000 + board.buffer(request.buffer_id)
                                              .physical_address)

        @_guard
        def cacheable(self, request: Any, context: Any) -> Any:
            board.buffer(request.buffer_id)
            return buffer_pb2.CacheableResponse(cacheable=True)

    return Buffers()
