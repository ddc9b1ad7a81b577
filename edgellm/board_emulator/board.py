"""The emulated board behind the gRPC services: PS registers, DDR buffers, the IP's register window.

- The IP (BoardIP: the project's C simulation, runtime/emulator.py) answers on its s_axi_control
  window at the .hwh's base address once a download configured the PL; writing ap_start runs it on
  the buffer the m_axi pointer registers name, at the physical address the buffer was given.
- Buffers are DDR regions inside the low DDR segment the HP ports see: a CPU-side copy (what the
  RemoteBuffer write/read calls touch) and a DDR copy (what the accelerator reads and writes), made
  equal only by flush and invalidate, as a cacheable XRT buffer on the board. New DDR holds a fill
  pattern, not zeros.
- PS registers (clock controllers, AXI width registers pynq writes at download) are plain memory with
  the boot values the clock drivers read; other addresses are refused.
- Files: what pynq reads (/proc/version, the board name, fpga_manager state and flags) and writes
  (/lib/firmware/<name>.bin, fpga_manager flags and firmware: the download, checked here).
Every failure is a BoardError with one line; services.py turns it into a gRPC status.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.runtime.device import AP_IDLE, CTRL, Buffer, DeviceError
from edgellm.runtime.emulator import EmulatorDevice
from edgellm.runtime.pynq_remote import EMULATED_BOARD_TAG

FIRMWARE = "/lib/firmware/"
FPGA_MANAGER = "/sys/class/fpga_manager/fpga0/"
MAX_FILE_BYTES = 256 * 2**20  # one written file (a bitstream of the largest supported part is ~30 MB)
STALL_MAX_S = 600.0  # a stalled register read answers after this at the latest (or when the server stops)
DDR_FILL = 0xA5  # new DDR is not zeroed on a board either
PS_REGIONS = {"zynqmp": (0xFD00_0000, 0x1_0000_0000), "zynq7": (0xF800_0000, 0xF900_0000)}
# boot values of the clock registers pynq's Clocks reads (pynq/ps.py's register layouts)
PS_BOOT = {
    "zynqmp": {0xFF5E0020: 45 << 8, 0xFF5E0030: 45 << 8, 0xFD1A0020: 72 << 8 | 1 << 16,
               0xFD1A002C: 64 << 8 | 1 << 16, 0xFD1A0038: 90 << 8 | 1 << 16, 0xFD1A0060: 1 << 8,
               **{0xFF5E00C0 + 4 * i: 1 << 24 | 1 << 16 | 15 << 8 for i in range(4)}},
    "zynq7": {0xF8000100: 40 << 12, 0xF8000104: 32 << 12, 0xF8000108: 20 << 12, 0xF8000120: 2 << 8,
              **{0xF8000170 + 0x10 * i: 1 << 20 | 10 << 8 for i in range(4)}},
}
ARCH = {"zynqmp": "aarch64", "zynq7": "armv7l"}


class BoardError(EdgeLLMError):
    """A request the emulated board refuses (code: the gRPC status name services.py answers with)."""

    def __init__(self, msg: str, code: str = "FAILED_PRECONDITION") -> None:
        super().__init__(msg)
        self.code = code


@dataclass
class Faults:
    """Faults a test can switch on in a running board."""

    stall_reads_after: int | None = None  # after this many ap_starts, reads of the IP window get no answer
    hang: bool = False  # the accelerator takes ap_start and never finishes (from the next download on)
    release: threading.Event = field(default_factory=threading.Event)  # set when the server stops


class BoardIP(EmulatorDevice):
    """The project's C simulation as the PL's accelerator: buffers at DDR addresses, freeable; a run that
    failed is reported on the next access to the IP's window."""

    failure: BaseException | None = None

    def place(self, lo: int, hi: int) -> None:
        """Give buffers physical addresses from lo (page aligned) below hi."""
        self._next, self._ddr_hi = lo, hi

    def alloc(self, nbytes: int) -> Buffer:
        """A buffer in DDR (host copy zeroed, DDR copy holding the fill pattern)."""
        if self._next + nbytes > self._ddr_hi:
            raise BoardError(f"cannot allocate {nbytes} bytes: the DDR the HP ports see ends at "
                             f"0x{self._ddr_hi:x}", "RESOURCE_EXHAUSTED")
        buf = super().alloc(nbytes)
        self._device_mem[buf.physical_address][:] = DDR_FILL
        return buf

    def reset(self) -> None:
        """Registers at their reset values (a fresh configuration of the PL)."""
        with self._ctrl_lock:
            self._regs = {CTRL: AP_IDLE}
        self.hang = False
        self.failure = None

    def free(self, buf: Buffer) -> None:
        """Forget a buffer (a run still using it keeps its own reference)."""
        self._buffers = [b for b in self._buffers if b is not buf]
        self._device_mem.pop(buf.physical_address, None)

    def _execute(self, mem: np.ndarray, hdr_off: int, prog_off: int, n_desc: int) -> None:
        try:
            super()._execute(mem, hdr_off, prog_off, n_desc)
        except BaseException as e:  # kept for the next register access, then re-raised to the worker
            self.failure = e
            raise


@dataclass
class Window:
    """One MMIO window a client mapped."""

    base: int
    length: int
    ip: bool  # inside the IP's register window (else PS registers)


class EmulatedBoard:
    """State of one emulated board running one project's accelerator."""

    def __init__(self, ip: BoardIP, *, ps: str, ip_base: int, ip_range: int, ip_instance: str, bin_name: str,
                 expected_bin: bytes, board_name: str, ddr: tuple[int, int]) -> None:
        self.ip, self.ps = ip, ps
        self.ip_base, self.ip_range, self.ip_instance = ip_base, ip_range, ip_instance
        self.bin_name, self.expected_bin = bin_name, expected_bin
        self.board_name = f"{board_name} ({EMULATED_BOARD_TAG})"
        self.faults = Faults()
        self.configured = False
        self.downloads = 0  # successful configurations
        self.starts = 0  # ap_start writes the IP took
        self.lock = threading.RLock()
        self._ps_regs: dict[int, int] = dict(PS_BOOT[ps])
        self._windows: dict[str, Window] = {}
        self._buffers: dict[str, Buffer] = {}
        self._next_id = 0
        self._files: dict[str, bytes] = {}
        self._flags = b"0"
        ip.place(*ddr)

    # ---- files ----

    def _fixed_files(self) -> dict[str, bytes]:
        return {"/proc/version": f"Linux version 6.6.10-xilinx (edgellm emulated board) {ARCH[self.ps]}\n"
                .encode(),
                "/proc/device-tree/chosen/pynq_board": self.board_name.encode() + b"\x00",
                FPGA_MANAGER + "state": b"operating\n", FPGA_MANAGER + "flags": self._flags + b"\n",
                "xrt_device": b"edgellm-emulated"}

    def exists(self, path: str) -> bool:
        """existsfile."""
        with self.lock:
            return path in self._fixed_files() or path in self._files

    def read_file(self, path: str) -> bytes:
        """readfile."""
        with self.lock:
            data = self._fixed_files().get(path, self._files.get(path))
        if data is None:
            raise BoardError(f"{path}: no such file on the emulated board", "NOT_FOUND")
        return data

    def write_file(self, path: str, data: bytes) -> None:
        """writefile: firmware images, fpga_manager flags, and the firmware trigger (a download)."""
        if len(data) > MAX_FILE_BYTES:
            raise BoardError(f"{path}: {len(data)} bytes exceed the emulated board's {MAX_FILE_BYTES}",
                             "RESOURCE_EXHAUSTED")
        with self.lock:
            if path.startswith(FIRMWARE) and "/" not in path[len(FIRMWARE):]:
                self._files[path] = bytes(data)
            elif path == FPGA_MANAGER + "flags":
                self._flags = bytes(data).strip() or b"0"
            elif path == FPGA_MANAGER + "firmware":
                self.configure(bytes(data).decode("utf-8", "replace").strip())
            else:
                raise BoardError(f"{path}: the emulated board takes files under {FIRMWARE} and the "
                                 "fpga_manager flags/firmware only", "PERMISSION_DENIED")

    def configure(self, name: str) -> None:
        """Program the PL with /lib/firmware/<name>: only the project's bitstream is accepted."""
        with self.lock:
            self.configured = False
            if self._flags.strip() not in (b"0", b""):
                raise BoardError(f"partial reconfiguration (fpga_manager flags {self._flags.decode()!r}) is "
                                 "not emulated")
            if name != self.bin_name:
                raise BoardError(f"bitstream {name!r} refused: this emulated board runs {self.bin_name!r} "
                                 f"({self.ip_instance})")
            data = self._files.get(FIRMWARE + name)
            if data is None:
                raise BoardError(f"{FIRMWARE}{name} was never written", "NOT_FOUND")
            if data != self.expected_bin:
                raise BoardError(f"{FIRMWARE}{name} is not the bitstream of the project this board emulates "
                                 "(rebuilt or recompiled since? restart edgellm board-emulator)")
            if not self.ip.join(1e-3):
                raise BoardError("a run of the previous configuration is still executing")
            self.ip.reset()
            self.ip.hang = self.faults.hang
            self.configured = True
            self.downloads += 1

    # ---- MMIO ----

    def map(self, base: int, length: int) -> str:
        """get_mmio: a window inside the IP's register range or the PS's register space."""
        if base < 0 or length <= 0 or length % 4 or base % 4:
            raise BoardError(f"MMIO window 0x{base:x} + {length}: base and length must be 4-byte multiples",
                             "INVALID_ARGUMENT")
        end = base + length
        ps_lo, ps_hi = PS_REGIONS[self.ps]
        if self.ip_base <= base and end <= self.ip_base + self.ip_range:
            w = Window(base, length, True)
        elif ps_lo <= base and end <= ps_hi:
            w = Window(base, length, False)
        else:
            last = self.ip_base + self.ip_range - 1
            raise BoardError(f"nothing is mapped at 0x{base:x}..0x{end - 1:x} on the emulated board "
                             f"({self.ip_instance} answers at 0x{self.ip_base:x}..0x{last:x})", "NOT_FOUND")
        with self.lock:
            mid = str(self._next_id)
            self._next_id += 1
            self._windows[mid] = w
        return mid

    def _window(self, mid: str, offset: int, nbytes: int) -> tuple[Window, int]:
        w = self._windows.get(mid)
        if w is None:
            raise BoardError(f"MMIO object {mid!r} was never mapped", "NOT_FOUND")
        if offset < 0 or offset % 4 or offset + nbytes > w.length:
            raise BoardError(f"MMIO access at +0x{offset:x} ({nbytes} bytes) outside the {w.length}-byte "
                             f"window at 0x{w.base:x}", "OUT_OF_RANGE")
        if w.ip:
            if not self.configured:
                raise BoardError("the PL is not configured: download the bitstream first")
            failure, self.ip.failure = self.ip.failure, None
            if failure is not None:
                raise BoardError(f"the emulated accelerator failed: {failure}", "INTERNAL")
        return w, w.base + offset

    def read(self, mid: str, offset: int, length: int, big_word_first: bool = False) -> int:
        """mmio read of 4 or 8 bytes."""
        if length not in (4, 8):
            raise BoardError(f"MMIO reads are 4 or 8 bytes, not {length}", "INVALID_ARGUMENT")
        w, addr = self._window(mid, offset, length)
        stall = self.faults.stall_reads_after
        if w.ip and stall is not None and self.starts >= stall:
            self.faults.release.wait(STALL_MAX_S)
            raise BoardError("register read stalled (test fault)", "UNAVAILABLE")
        words = [self._read32(w, addr + 4 * i) for i in range(length // 4)]
        if big_word_first:
            words.reverse()
        return sum(v << (32 * i) for i, v in enumerate(words))

    def write(self, mid: str, offset: int, data: bytes) -> None:
        """mmio write of whole 32-bit words."""
        if not data or len(data) % 4:
            raise BoardError(f"MMIO writes are whole 32-bit words, not {len(data)} bytes", "INVALID_ARGUMENT")
        w, addr = self._window(mid, offset, len(data))
        for i in range(0, len(data), 4):
            self._write32(w, addr + i, int.from_bytes(data[i:i + 4], "little"))

    def _read32(self, w: Window, addr: int) -> int:
        if not w.ip:
            with self.lock:
                return self._ps_regs.get(addr, 0)
        return self.ip.read_reg(addr - self.ip_base)

    def _write32(self, w: Window, addr: int, value: int) -> None:
        if not w.ip:
            with self.lock:
                self._ps_regs[addr] = value
            return
        off = addr - self.ip_base
        try:
            self.ip.write_reg(off, value)
        except DeviceError as e:
            raise BoardError(f"{self.ip_instance}: {e}") from None
        if off == CTRL and value & 1:
            self.starts += 1

    def pl_clock_mhz(self) -> float:
        """PL clock 0 as the PS's clock registers set it."""
        if self.ps == "zynqmp":
            ctrl, pll = self._ps_regs[0xFF5E00C0], self._ps_regs[0xFF5E0020]
            src = 33.333 * (pll >> 8 & 0x7F) / (2 if pll >> 16 & 1 else 1)
            return src / max(1, (ctrl >> 8 & 0x3F) * (ctrl >> 16 & 0x3F))
        ctrl, pll = self._ps_regs[0xF8000170], self._ps_regs[0xF8000108]
        return 50.0 * (pll >> 12 & 0x7F) / max(1, (ctrl >> 8 & 0x3F) * (ctrl >> 20 & 0x3F))

    # ---- buffers ----

    def allocate(self, size: int) -> str:
        """allocate: a buffer in the DDR the HP ports see."""
        if size <= 0:
            raise BoardError(f"cannot allocate {size} bytes", "INVALID_ARGUMENT")
        with self.lock:
            try:
                buf = self.ip.alloc(size)
            except DeviceError as e:
                raise BoardError(str(e)) from None
            bid = f"buf{self._next_id}"
            self._next_id += 1
            self._buffers[bid] = buf
        return bid

    def buffer(self, bid: str) -> Buffer:
        """The buffer of an id."""
        buf = self._buffers.get(bid)
        if buf is None:
            raise BoardError(f"buffer {bid!r} not found", "NOT_FOUND")
        return buf

    def free(self, bid: str) -> None:
        """freebuffer."""
        with self.lock:
            self.ip.free(self.buffer(bid))
            del self._buffers[bid]

    def sync(self, bid: str, to_device: bool) -> None:
        """flush (CPU copy -> DDR) or invalidate (DDR -> CPU copy)."""
        buf = self.buffer(bid)
        try:
            (self.ip.sync_to_device if to_device else self.ip.sync_from_device)(buf)
        except DeviceError as e:
            raise BoardError(str(e)) from None

    def state(self) -> dict[str, Any]:
        """A summary for logs and tests."""
        return {"configured": self.configured, "downloads": self.downloads, "starts": self.starts,
                "runs": self.ip.runs, "buffers": len(self._buffers),
                "pl_clock_mhz": round(self.pl_clock_mhz(), 3)}
