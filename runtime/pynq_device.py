"""PynqDevice: the Device bus on a PYNQ board (pynq >= 3.0), imported lazily.

Overlay(bitfile) downloads the bitstream (its .hwh beside it names the IP and its registers);
the PL clock is set through pynq.Clocks.fclk0_mhz; buffers come from pynq.allocate (physically
contiguous, `physical_address`, `sync_to_device` / `sync_from_device` = cache flush / invalidate,
slices sync only their own range); registers are read and written through the IP's DefaultIP
driver (.read / .write on its MMIO window). The .hwh's register map must agree with the manifest's
(Vitis HLS names a 64-bit pointer NAME_1 / NAME_2): a bitstream built from other HLS sources is
refused by name rather than driven at wrong offsets.

With PYNQ_REMOTE_DEVICES=host[:port] set, pynq's own remote client (PYNQ.remote, pynq 3.1+) drives
the board over gRPC with the same API: runtime/pynq_remote.py connects with a bounded wait, bounds
every call, and syncs byte ranges as whole-buffer transfers (all PYNQ.remote moves). An edgellm
emulation bitstream (`edgellm board-emulator`) is accepted only by a board that says it is emulated.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.runtime import pynq_remote as rm
from edgellm.runtime.device import Buffer, Device, DeviceError, DeviceTimeout, check_range, check_timeout

INSTALL_HINT = "the board runtime needs pynq: pip install edgellm[board] (pynq >= 3.0)"
BOARD_MARKERS = ("/dev/xlnk", "/dev/dri/renderD128", "/sys/class/fpga_manager/fpga0")
EMULATION_DESIGN = "edgellm_emulation"  # design name in the header of an edgellm emulation bitstream
RPC_TIMEOUT_S = 30.0  # bound on one remote call outside wait_done (and the connection)
REMOTE_MAX_BYTES = 2**31 - 1  # PYNQ.remote's AllocateRequest.size is an int32
SYNC_BYTES_PER_S = 10e6  # a whole-buffer transfer gets RPC_TIMEOUT_S + size / this


def import_pynq() -> Any:
    """The pynq module, or a one-line EdgeLLMError saying how to install it."""
    try:
        return importlib.import_module("pynq")
    except ImportError:
        raise EdgeLLMError(INSTALL_HINT) from None


def on_board() -> bool:
    """True when pynq is importable and a PYNQ board (or a remote one) is reachable from here."""
    if importlib.util.find_spec("pynq") is None:
        return False
    return bool(os.environ.get(rm.ENV)) or any(Path(p).exists() for p in BOARD_MARKERS)


def bit_design(path: Path) -> str:
    """The design name in a .bit file's header ('' when the header is not a .bit header)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if len(head) < 16 or head[:2] != b"\x00\x09":
        return ""
    i = 2 + 9 + 2  # the 9-byte magic field, then a 2-byte field
    if head[i:i + 1] != b"a":
        return ""
    n = int.from_bytes(head[i + 1:i + 3], "big")
    return head[i + 3:i + 3 + n].split(b"\x00")[0].decode("ascii", "replace").split(";")[0]


def hwh_registers(ip_desc: Mapping[str, Any], manifest: Mapping[str, int], where: str) -> dict[str, int]:
    """The manifest's register map, checked against the hwh's (ip_dict[...]['registers']): every argument
    must be there (NAME, or NAME_1 for the low word of a 64-bit pointer; NAME_r where Vitis renamed an HDL
    keyword) at the manifest's offset; EdgeLLMError naming the first that is missing or elsewhere."""
    regs = ip_desc.get("registers") or {}
    for name, off in manifest.items():
        cands = [c for c in (name, f"{name}_1", f"{name}_r", f"{name}_r_1") if c in regs]
        if not cands:
            raise EdgeLLMError(f"{where}: the .hwh has no register for argument {name!r} of the manifest's "
                               "map (the bitstream was built from other HLS sources: recompile and rebuild)")
        got = int(regs[cands[0]].get("address_offset", -1))
        if got != int(off):
            raise EdgeLLMError(f"{where}: the .hwh puts {cands[0]} at 0x{got:x}, the manifest at "
                               f"0x{int(off):x} (the bitstream was built from other HLS sources: recompile "
                               "and rebuild)")
    return {k: int(v) for k, v in manifest.items()}


class PynqDevice(Device):
    """Device on a PYNQ board (here, or remote over PYNQ.remote): one overlay, its IP, pynq buffers."""

    def __init__(self, bitfile: str | Path, ip_name: str = "edgellm_top",
                 registers: Mapping[str, int] | None = None, clock_mhz: float | None = None,
                 download: bool = True, rpc_timeout_s: float = RPC_TIMEOUT_S) -> None:
        pynq = import_pynq()
        bit = Path(bitfile)
        if not bit.is_file():
            raise EdgeLLMError(f"bitstream {bit} does not exist (run edgellm build first)")
        self.pynq = pynq
        self.rpc_timeout_s = check_timeout(rpc_timeout_s)
        self._call_s = self.rpc_timeout_s  # the deadline the next remote call gets
        self._bufs: list[Any] = []
        self.remote: tuple[str, int] | None = None
        target = os.environ.get(rm.ENV, "").strip()
        device = None
        if target:
            self.remote = rm.parse_remote(target)
            device = rm.connect(pynq, *self.remote, self.rpc_timeout_s, lambda: self._call_s)
        self.name = f"pynq:{self.remote[0]}:{self.remote[1]}" if self.remote else "pynq"
        self._check_emulation(bit, device)
        with self._call("loading the overlay", warned=True):
            kw = {"device": device} if device is not None else {}
            self.overlay = pynq.Overlay(str(bit), download=download, **kw)
            key = self._find_ip(ip_name)
            self.ip = getattr(self.overlay, key.replace("/", "."), None) or self.overlay.ip_dict[key]
            if isinstance(self.ip, dict):  # no attribute access: drive it through DefaultIP directly
                self.ip = pynq.DefaultIP(self.overlay.ip_dict[key])
        hwh = str(bit.with_suffix(".hwh"))
        self.registers = hwh_registers(self.overlay.ip_dict[key], registers or {}, hwh)
        self.name = f"pynq:{key}" + (f"@{self.remote[0]}:{self.remote[1]}" if self.remote else "")
        self.clock_mhz = self._set_clock(clock_mhz) if clock_mhz else None
        if self.remote:  # a remote board keeps what a host process does not free: free it at exit
            atexit.register(self.close)

    @classmethod
    def for_project(cls, project: Any) -> PynqDevice:
        """Load the project's bitstream (<ip_name>.bit + .hwh in the project directory) at the
        design's clock."""
        import_pynq()  # the more basic problem first
        ip = project.iface.ip_name
        bit = project.path / f"{ip}.bit"
        if not (project.path / f"{ip}.hwh").is_file():
            raise EdgeLLMError(f"{project.path / (ip + '.hwh')} is missing: pynq needs the .hwh beside the "
                               ".bit (run edgellm build)")
        clock = (project.manifest.get("design") or {}).get("clock_mhz")
        return cls(bit, ip, project.iface.registers, clock_mhz=clock)

    def _check_emulation(self, bit: Path, device: Any) -> None:
        """An emulation bitstream configures no FPGA: only an emulated board takes it."""
        if bit_design(bit) != EMULATION_DESIGN:
            return
        board = str(getattr(device, "name", "")) if device is not None else ""
        if rm.EMULATED_BOARD_TAG not in board:
            raise EdgeLLMError(f"{bit} is an edgellm emulation bitstream (written by edgellm "
                               f"board-emulator), not a Vivado build; the board {board or 'here'!r} is not "
                               "emulated: run edgellm build")

    @contextlib.contextmanager
    def _call(self, what: str, seconds: float | None = None, warned: bool = False) -> Iterator[None]:
        """Run pynq calls with every remote call bounded by `seconds` (default rpc_timeout_s); their
        failures (gRPC status, pynq's RuntimeError/ValueError/OSError) as one-line DeviceErrors.
        warned (one call at a time: the overlay's loading): a warning pynq gives on the way to a failure
        (UserWarning "No devices found, is the XRT environment sourced?" before "No Devices Found") is
        told in that line, not printed as two more lines; after a success it is shown as usual."""
        self._call_s = max(seconds if seconds is not None else self.rpc_timeout_s, 1e-3)
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) if warned else contextlib.nullcontext() as rec:
                if rec is not None:
                    warnings.simplefilter("always")
                    caught = rec
                yield
        except EdgeLLMError:
            raise
        except Exception as e:  # grpc.RpcError and whatever pynq raises for a failed call
            told = "".join(f" ({' '.join(str(w.message).split())})" for w in caught[:1])
            msg = f"{self.name}: {what} failed: {rm.rpc_text(e)}{told}"
            raise (DeviceTimeout if rm.is_deadline(e) else DeviceError)(msg) from None
        finally:
            self._call_s = self.rpc_timeout_s
        for w in caught:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)

    def _find_ip(self, ip_name: str) -> str:
        ips = self.overlay.ip_dict
        if ip_name in ips:
            return ip_name
        match = [k for k in ips if k.split("/")[-1].startswith(ip_name)
                 or str(ips[k].get("type", "")).split(":")[2:3] == [ip_name]]
        if not match:
            raise EdgeLLMError(f"the overlay has no IP named {ip_name!r} "
                               f"(IPs: {', '.join(sorted(ips)) or 'none'})")
        return match[0]

    def _set_clock(self, mhz: float) -> float:
        try:
            with self._call("setting the PL clock"):
                self.pynq.Clocks.fclk0_mhz = float(mhz)
                return float(self.pynq.Clocks.fclk0_mhz)
        except DeviceError:
            raise
        except Exception as e:  # pynq raises RuntimeError/ValueError/OSError depending on the board
            raise EdgeLLMError(f"could not set the PL clock fclk0 to {mhz} MHz: {e}") from None

    def _sync_s(self, nbytes: int) -> float:
        return self.rpc_timeout_s + nbytes / SYNC_BYTES_PER_S

    def alloc(self, nbytes: int) -> Buffer:
        """pynq.allocate((nbytes,), uint8): physically contiguous, zeroed (on the board too)."""
        if self.remote and not 0 < nbytes <= REMOTE_MAX_BYTES:
            raise DeviceError(f"{self.name}: PYNQ.remote allocates 1 .. {REMOTE_MAX_BYTES} bytes, "
                              f"not {nbytes}")
        try:
            with self._call(f"allocating {nbytes} bytes", self._sync_s(nbytes)):
                pb = self.pynq.allocate(shape=(int(nbytes),), dtype=np.uint8)
                self._bufs.append(pb)
                pb[:] = 0
                pb.sync_to_device()
                addr = int(pb.physical_address)
        except DeviceError:
            raise
        except Exception as e:  # CMA exhausted and the like
            raise DeviceError(f"pynq.allocate of {nbytes / 2**20:.1f} MiB failed: {e}") from None
        return Buffer(addr, np.asarray(pb).view(np.uint8).reshape(-1), pb)

    def sync_to_device(self, buf: Buffer, offset: int = 0, size: int | None = None) -> None:
        """Flush host writes of the range (remote: the range only, by a whole-buffer transfer)."""
        o, n = check_range(buf, offset, size)
        if not n:
            return
        with self._call("sync_to_device", self._sync_s(2 * buf.nbytes)):
            if rm.is_remote_buffer(buf.handle):
                rm.sync_range_to_device(buf.handle, buf.array, o, n)
            else:
                buf.handle[o:o + n].sync_to_device()

    def sync_from_device(self, buf: Buffer, offset: int = 0, size: int | None = None) -> None:
        """Invalidate the range so the host sees the accelerator's writes."""
        o, n = check_range(buf, offset, size)
        if not n:
            return
        with self._call("sync_from_device", self._sync_s(buf.nbytes)):
            if rm.is_remote_buffer(buf.handle):
                rm.sync_range_from_device(buf.handle, buf.array, o, n)
            else:
                buf.handle[o:o + n].sync_from_device()

    def write_reg(self, offset: int, value: int) -> None:
        """32-bit AXI-lite write through the IP's MMIO."""
        with self._call(f"register write at 0x{offset:x}"):
            self.ip.write(int(offset), int(value) & 0xFFFFFFFF)

    def read_reg(self, offset: int) -> int:
        """32-bit AXI-lite read."""
        with self._call(f"register read at 0x{offset:x}", self._read_s()):
            return int(self.ip.read(int(offset)))

    def _read_s(self) -> float:
        deadline = getattr(self, "_wait_deadline", None)
        if deadline is None:
            return self.rpc_timeout_s
        return min(self.rpc_timeout_s, max(deadline - time.monotonic(), 1e-3))

    def wait_done(self, timeout_s: float = 10.0) -> float:
        """Device.wait_done with every register read inside the same bound: a board that stops answering
        ends the wait with a one-line DeviceTimeout within timeout_s."""
        t = check_timeout(timeout_s)
        self._wait_deadline = time.monotonic() + t
        try:
            return super().wait_done(t)
        except DeviceTimeout as e:
            if "register read" in str(e):
                raise DeviceTimeout(f"{self.name}: accelerator did not raise ap_done within {t:g} s (a "
                                    "register read got no answer)") from None
            raise
        finally:
            self._wait_deadline = None

    def close(self) -> None:
        """Free the pynq buffers (a board that is gone is not waited for)."""
        bufs, self._bufs = self._bufs, []
        for pb in bufs:
            free = getattr(pb, "freebuffer", None)
            if free is not None:
                with contextlib.suppress(Exception):
                    self._call_s = min(self.rpc_timeout_s, 2.0)
                    free()
        self._call_s = self.rpc_timeout_s
