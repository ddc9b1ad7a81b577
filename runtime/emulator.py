"""EmulatorDevice: a numpy DDR and the project's own C-simulation library behind the Device bus.

Writing ap_start runs the top on the DDR image with the current register values
(`edgellm_csim_run(ddr, ddr_bytes, hdr_off, prog_off, n_desc)`, exported by the project's
hls/csim_entry.cpp) in a worker thread (ctypes releases the GIL), then raises ap_done and ap_idle,
as the hardware would; wait_done joins the worker under the board's timeout. When the library exports
its progress counters (edgellm_csim_progress: descriptors finished; edgellm_csim_heartbeat: linears
finished), the timeout bounds the time without progress, the whole call capped at one timeout per
progress event it can make (a C-simulated call at a real model's shapes takes minutes); otherwise it
bounds the whole call. A run that times out keeps going in
its worker (C code cannot be stopped): until it ends, the device refuses every call but read_reg.
The host memory and the "device" memory are separate copies unless coherent=True, so a missing sync
in the driver shows up here exactly as it would on the board (stale data), not only there.

Any ctypes function (or Python callable) with that signature can stand in for the top (tests:
a top that never finishes, a toy top that copies data, a Python model of the accelerator), and any
callable returning a count for its progress (dev.progress, dev.heartbeat).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.runtime.device import (
    AP_DONE,
    AP_IDLE,
    AP_READY,
    AP_START,
    CTRL,
    Buffer,
    Device,
    DeviceError,
    DeviceTimeout,
    check_range,
    check_timeout,
    pointer_registers,
)

CSIM_SYMBOL = "edgellm_csim_run"
# long long edgellm_csim_fifo_leftovers(void): weight-FIFO words fetched and never popped (all calls)
LEFTOVER_SYMBOL = "edgellm_csim_fifo_leftovers"
# long long edgellm_csim_deadlocks(void): deadlocks the threaded C simulation found (all calls)
DEADLOCK_SYMBOL = "edgellm_csim_deadlocks"
# long long edgellm_csim_port_conflicts(void): bytes two m_axi arguments wrote in one call (port model)
CONFLICT_SYMBOL = "edgellm_csim_port_conflicts"
# long long edgellm_csim_progress(void): descriptors the engine finished (all calls; projects compiled
# before it lack it)
PROGRESS_SYMBOL = "edgellm_csim_progress"
# long long edgellm_csim_heartbeat(void): linears the layers finished (all calls; a long descriptor's
# progress; projects compiled before it lack it)
HEARTBEAT_SYMBOL = "edgellm_csim_heartbeat"
# Linear jobs of one layer descriptor at most (decoder_layer.h: 7 linears, per token half of a pipelined
# block): with a heartbeat the whole call is capped at timeout x (n_desc x (1 + this) + 1), one timeout
# per progress event it can make
LINEARS_PER_DESC = 14
PROGRESS_POLL_S = 0.05  # how often wait_done reads the progress counter
# void edgellm_csim_run(uint8_t *ddr, uint64_t ddr_bytes, uint32_t hdr_off, uint32_t prog_off,
#                       uint32_t n_desc)
CSIM_ARGTYPES = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32]
CsimFunc = ctypes.CFUNCTYPE(None, *CSIM_ARGTYPES)
TopFn = Callable[[Any, int, int, int, int], Any]

# Register offsets used when none are given (Vitis HLS puts the first argument at 0x10).
DEFAULT_REGISTERS = {"hdr_off": 0x10, "prog_off": 0x18, "n_desc": 0x20, "data": 0x28}
BASE_ADDRESS = 0x4000_0000  # fake physical address of the first buffer
PAGE = 4096


class EmulatorDevice(Device):
    """Device backed by host memory; ap_start calls `top` on the buffer the pointer registers name."""

    def __init__(self, top: TopFn, registers: Mapping[str, int] | None = None,
                 name: str = "emulator", coherent: bool = False) -> None:
        self.top = top
        self.registers = dict(registers or DEFAULT_REGISTERS)
        for k in ("hdr_off", "prog_off", "n_desc"):
            if k not in self.registers:
                raise EdgeLLMError(f"emulator register map has no {k!r} register")
        if not pointer_registers(self.registers):
            raise EdgeLLMError("emulator register map has no m_axi pointer register")
        self.name = name
        self.coherent = coherent
        self.hang = False  # True: take ap_start but never raise ap_done (a stuck accelerator)
        self.fifo_leftovers: Callable[[], int] | None = None  # C simulation's FIFO check, if exported
        self.deadlocks: Callable[[], int] | None = None  # threaded C simulation's deadlock count, if exported
        self.port_conflicts: Callable[[], int] | None = None  # port model: two-argument writes, if exported
        # descriptors finished, monotonic (C simulation's edgellm_csim_progress, if exported): wait_done's
        # timeout then bounds the time without progress
        self.progress: Callable[[], int] | None = None
        # finer progress, monotonic (edgellm_csim_heartbeat: linears finished, if exported): a change of
        # either counter is progress
        self.heartbeat: Callable[[], int] | None = None
        self.runs = 0  # completed top invocations
        self._regs: dict[int, int] = {CTRL: AP_IDLE}
        self._ctrl_lock = threading.Lock()  # ap_ctrl: the worker sets ap_done, a read clears it
        self._worker: threading.Thread | None = None  # the run in progress (or timed out)
        self._launch = (0, 0)  # (n_desc, progress count) at the last start
        self._timed_out = False  # the worker outlived a wait_done
        self._error: BaseException | None = None  # what the last run raised, for wait_done
        self._buffers: list[Buffer] = []
        self._device_mem: dict[int, np.ndarray] = {}  # physical address -> device-side bytes
        self._next = BASE_ADDRESS

    @classmethod
    def from_library(cls, lib_path: str | Path, registers: Mapping[str, int] | None = None,
                     name: str = "emulator") -> EmulatorDevice:
        """Load `edgellm_csim_run` from a shared library."""
        lib = ctypes.CDLL(str(lib_path))
        try:
            fn = getattr(lib, CSIM_SYMBOL)
        except AttributeError:
            raise EdgeLLMError(f"{lib_path}: no symbol {CSIM_SYMBOL}") from None
        fn.argtypes, fn.restype = CSIM_ARGTYPES, None
        dev = cls(fn, registers, name)
        dev._lib = lib  # keep the library loaded
        left = getattr(lib, LEFTOVER_SYMBOL, None)
        if left is not None:
            left.argtypes, left.restype = [], ctypes.c_longlong
            dev.fifo_leftovers = left
        dead = getattr(lib, DEADLOCK_SYMBOL, None)
        if dead is not None:
            dead.argtypes, dead.restype = [], ctypes.c_longlong
            dev.deadlocks = dead
        clash = getattr(lib, CONFLICT_SYMBOL, None)
        if clash is not None:
            clash.argtypes, clash.restype = [], ctypes.c_longlong
            dev.port_conflicts = clash
        prog = getattr(lib, PROGRESS_SYMBOL, None)
        if prog is not None:
            prog.argtypes, prog.restype = [], ctypes.c_longlong
            dev.progress = prog
        beat = getattr(lib, HEARTBEAT_SYMBOL, None)
        if beat is not None:
            beat.argtypes, beat.restype = [], ctypes.c_longlong
            dev.heartbeat = beat
        return dev

    @classmethod
    def for_project(cls, project: Any, threads: bool = False) -> EmulatorDevice:
        """The emulator of a compiled project: its hls/ sources built as a C-simulation library
        (threads: the threaded C simulation, DATAFLOW processes concurrent over bounded FIFOs)."""
        lib = build_csim_library(project.path, project.iface.ip_name, threads)
        sim = "threaded C simulation" if threads else "C simulation"
        return cls.from_library(lib, project.iface.registers, name=f"emulator ({sim})")

    # ---- bus primitives ----

    def alloc(self, nbytes: int) -> Buffer:
        """A zeroed buffer at a fake, page-aligned physical address."""
        self._check_free("alloc")
        if nbytes <= 0:
            raise DeviceError(f"cannot allocate {nbytes} bytes")
        host = np.zeros(nbytes, np.uint8)
        buf = Buffer(self._next, host)
        self._device_mem[buf.physical_address] = host if self.coherent else np.zeros(nbytes, np.uint8)
        self._buffers.append(buf)
        self._next += -(-nbytes // PAGE) * PAGE + PAGE
        return buf

    def sync_to_device(self, buf: Buffer, offset: int = 0, size: int | None = None) -> None:
        """Copy host bytes into the device copy."""
        self._check_free("sync_to_device")
        o, n = check_range(buf, offset, size)
        dev = self._mem(buf)
        if dev is not buf.array:
            dev[o:o + n] = buf.array[o:o + n]

    def sync_from_device(self, buf: Buffer, offset: int = 0, size: int | None = None) -> None:
        """Copy device bytes into the host view."""
        self._check_free("sync_from_device")
        o, n = check_range(buf, offset, size)
        dev = self._mem(buf)
        if dev is not buf.array:
            buf.array[o:o + n] = dev[o:o + n]

    def write_reg(self, offset: int, value: int) -> None:
        """Register write; ap_start starts the top in a worker thread (unless hang is set)."""
        self._check_free("write_reg")
        if offset % 4:
            raise DeviceError(f"unaligned register offset 0x{offset:x}")
        value = int(value) & 0xFFFFFFFF
        if offset != CTRL:
            self._regs[offset] = value
            return
        if not value & AP_START:
            return
        args = self._launch_args()  # the pointer registers, checked before the IP takes the start
        with self._ctrl_lock:
            self._regs[CTRL] = AP_READY  # started: busy, not idle
        if self.hang:
            return
        self._error = None
        self._timed_out = False
        self._launch = (args[3], self.progress() if self.progress else 0)
        self._worker = threading.Thread(target=self._work, args=args, name=f"{self.name} top", daemon=True)
        self._worker.start()

    def read_reg(self, offset: int) -> int:
        """Register read; reading ap_ctrl clears ap_done and ap_ready (clear-on-read, as Vitis HLS).
        Allowed while a run is in progress."""
        with self._ctrl_lock:
            v = self._regs.get(offset, 0)
            if offset == CTRL:
                self._regs[CTRL] = v & ~(AP_DONE | AP_READY)
        return v

    def wait_done(self, timeout_s: float = 10.0) -> float:
        """Join the worker, then the ap_ctrl protocol; raises what the run raised. timeout_s (finite,
        > 0) bounds the time without progress when the top reports it (self.progress, and
        self.heartbeat where exported: no descriptor, nor a linear, finished for timeout_s), the whole call
        capped at one timeout per progress event it can make (_join_progress); without a progress
        counter it bounds the whole call. DeviceTimeout if the run is still going: the device then
        refuses every call (but read_reg) until the worker ends."""
        timeout_s = check_timeout(timeout_s)
        t0 = time.monotonic()
        w = self._worker
        if w is None:
            return self._poll_done(timeout_s, t0)  # ap_done is up unless hang is set
        progress = self.progress
        stuck = self._join_progress(w, timeout_s, progress) if progress else self._join_whole(w, timeout_s)
        if stuck:
            self._timed_out = True
            raise DeviceTimeout(f"{self.name}: accelerator {stuck}; its C simulation keeps running in a "
                                "worker thread and this device is unusable until it finishes (a C-simulated "
                                "call at a real model's shapes takes minutes: raise the wait with --timeout)")
        self._worker = None
        err, self._error = self._error, None
        if err is not None:
            raise err
        self._poll_done(timeout_s, time.monotonic())  # ap_done is up: the worker raised it
        return time.monotonic() - t0

    def _join_whole(self, w: threading.Thread, timeout_s: float) -> str:
        """Join the worker for up to timeout_s; '' when it ended, else what the timeout says."""
        w.join(min(timeout_s, threading.TIMEOUT_MAX))
        return f"did not raise ap_done within {timeout_s:g} s" if w.is_alive() else ""

    def _join_progress(self, w: threading.Thread, timeout_s: float, progress: Callable[[], int]) -> str:
        """Join the worker while it makes progress: '' when it ended, else what the timeout says (no
        descriptor, nor a linear where the top counts them (self.heartbeat), finished for timeout_s, or the
        whole call past timeout_s x (n_desc + 1), x (n_desc x (1 + LINEARS_PER_DESC) + 1) with a
        heartbeat)."""
        n_desc, count0 = self._launch
        cap = timeout_s * (n_desc * (1 + (LINEARS_PER_DESC if self.heartbeat else 0)) + 1)
        start = seen = time.monotonic()
        beat = self.heartbeat or (lambda: 0)
        last = (progress(), beat())
        while True:
            now = time.monotonic()
            step = min(PROGRESS_POLL_S, seen + timeout_s - now, start + cap - now)
            if step > 0:
                w.join(min(step, threading.TIMEOUT_MAX))  # returns as soon as the worker ends
            if not w.is_alive():
                return ""
            now, count = time.monotonic(), (progress(), beat())
            if count != last:
                last, seen = count, now
            done = f"{count[0] - count0} of {n_desc} descriptors finished"
            if now - seen >= timeout_s:
                nothing = "no descriptor and no linear" if self.heartbeat else "no descriptor"
                return f"finished {nothing} for {timeout_s:g} s ({done})"
            if now - start >= cap:
                events = f"(n_desc x {1 + LINEARS_PER_DESC} + 1)" if self.heartbeat else "(n_desc + 1)"
                return (f"did not raise ap_done within {cap:g} s ({done}; a call that keeps making progress "
                        f"gets at most --timeout x {events})")

    def join(self, timeout_s: float) -> bool:
        """Wait up to timeout_s for the run in progress without touching ap_ctrl; True when none runs."""
        w = self._worker
        if w is not None:
            w.join(min(check_timeout(timeout_s), threading.TIMEOUT_MAX))
        return w is None or not w.is_alive()

    def close(self) -> None:
        """Forget all buffers (a worker still running keeps its own reference to its memory)."""
        self._buffers.clear()
        self._device_mem.clear()

    # ---- internals ----

    def _mem(self, buf: Buffer) -> np.ndarray:
        try:
            return self._device_mem[buf.physical_address]
        except KeyError:
            raise DeviceError(f"{self.name}: buffer at 0x{buf.physical_address:x} was not allocated "
                              "by this device") from None

    def reg64(self, offset: int) -> int:
        """A 64-bit register pair as last written."""
        return self._regs.get(offset, 0) | self._regs.get(offset + 4, 0) << 32

    def _check_free(self, what: str) -> None:
        w = self._worker
        if w is None or not w.is_alive():
            return
        if self._timed_out:
            raise DeviceError(f"{self.name}: {what} refused: a timed-out run is still executing in the "
                              "emulator's worker thread; the device is unusable until it finishes")
        raise DeviceError(f"{self.name}: {what} refused while a run is in progress (wait_done first)")

    def _launch_args(self) -> tuple[np.ndarray, int, int, int]:
        """(device memory, hdr_off, prog_off, n_desc) of a start; DeviceError if the pointer registers
        do not all hold one allocated buffer."""
        ptrs = {k: self.reg64(off) for k, off in pointer_registers(self.registers).items()}
        addrs = set(ptrs.values())
        if len(addrs) != 1:
            raise DeviceError(f"{self.name}: the m_axi pointer registers disagree "
                              f"({', '.join(f'{k}=0x{v:x}' for k, v in ptrs.items())}); the interface "
                              "expects one buffer")
        addr = addrs.pop()
        match = [b for b in self._buffers if b.physical_address == addr]
        if not match:
            raise DeviceError(f"{self.name}: pointer registers hold 0x{addr:x}, which is not an "
                              "allocated buffer")
        r = self.registers
        return (self._device_mem[addr], self._regs.get(r["hdr_off"], 0), self._regs.get(r["prog_off"], 0),
                self._regs.get(r["n_desc"], 0))

    def _work(self, mem: np.ndarray, hdr_off: int, prog_off: int, n_desc: int) -> None:
        """The worker: one run, then ap_done | ap_idle (also when the run raised)."""
        try:
            self._execute(mem, hdr_off, prog_off, n_desc)
        except BaseException as e:  # handed to wait_done
            self._error = e
        finally:
            with self._ctrl_lock:
                self._regs[CTRL] = AP_DONE | AP_IDLE | AP_READY

    def _execute(self, mem: np.ndarray, hdr_off: int, prog_off: int, n_desc: int) -> None:
        before = self.fifo_leftovers() if self.fifo_leftovers else 0
        dead0 = self.deadlocks() if self.deadlocks else 0
        clash0 = self.port_conflicts() if self.port_conflicts else 0
        self.top(ctypes.c_void_p(mem.ctypes.data), mem.size, hdr_off, prog_off, n_desc)
        self.runs += 1
        if self.deadlocks and self.deadlocks() != dead0:
            raise DeviceError(f"{self.name}: the dataflow processes deadlocked (a FIFO too shallow for "
                              "what its processes hold back: a bug in the generated HLS)")
        clash = (self.port_conflicts() if self.port_conflicts else 0) - clash0
        if clash:
            raise DeviceError(f"{self.name}: {clash} bytes were written through two m_axi arguments in one "
                              "call (the port model, docs/hls.md: a bug in the generated HLS)")
        left = (self.fifo_leftovers() if self.fifo_leftovers else 0) - before
        if left:
            raise DeviceError(f"{self.name}: {left} weight-FIFO words were fetched but never consumed: the "
                              "fetchers and the engine disagree (a bug in the generated HLS)")


def csim_sources(hls_dir: Path) -> list[Path]:
    """The C++ sources of the project's C-simulation library (csim_entry.cpp, plus top.cpp unless
    csim_entry.cpp includes it)."""
    entry = hls_dir / "csim_entry.cpp"
    top = hls_dir / "top.cpp"
    for f in (entry, top):
        if not f.is_file():
            raise EdgeLLMError(f"{f} is missing: the project has no C-simulation entry (run edgellm compile)")
    if '"top.cpp"' in entry.read_text(errors="replace"):
        return [entry]
    return [entry, top]


def build_csim_library(project_dir: Path, name: str = "edgellm_top", threads: bool = False) -> Path:
    """Build (or fetch from the cache) the project's C-simulation library; needs g++ and hls4ml.
    threads: the threaded C simulation (hw/csim.py build)."""
    from edgellm.hw import csim  # lazy: only the emulator needs the C++ toolchain

    hls = Path(project_dir) / "hls"
    return csim.build(csim_sources(hls), f"{name}-csim{'-mt' * threads}", includes=[hls], threads=threads)
