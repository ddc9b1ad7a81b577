"""The bus-level Device interface (DDR buffers + AXI-lite registers) and the ap_ctrl protocol.

Everything above the bus (register protocol, descriptors, KV cache, sessions) is shared by every
device: `PynqDevice` (pynq on the board) and `EmulatorDevice` (numpy DDR + the project's C
simulation) only implement the five bus primitives below. numpy only: this runs on the board.

ap_ctrl (Vitis HLS `ap_ctrl_hs` at offset 0x00): bit 0 ap_start (host sets; the IP clears it when it
takes the start), bit 1 ap_done (clear-on-read), bit 2 ap_idle, bit 3 ap_ready.
"""

from __future__ import annotations

import math
import numbers
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError

CTRL = 0x00
AP_START, AP_DONE, AP_IDLE, AP_READY = 0x1, 0x2, 0x4, 0x8


def pointer_registers(registers: dict[str, int]) -> dict[str, int]:
    """The m_axi pointer registers of a register map: every name but hdr_off / prog_off / n_desc."""
    return {k: int(v) for k, v in registers.items() if k not in ("hdr_off", "prog_off", "n_desc")}


def check_timeout(timeout_s: object) -> float:
    """timeout_s as a float: a finite number of seconds > 0 (NaN, inf, 0, negatives and non-numbers
    would disable or break the bound on a wait), else EdgeLLMError."""
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, numbers.Real):
        raise EdgeLLMError(f"timeout must be a number of seconds, got {timeout_s!r}")
    t = float(timeout_s)
    if not math.isfinite(t) or t <= 0:
        raise EdgeLLMError(f"timeout must be a finite number of seconds > 0, got {t:g}")
    return t


class DeviceError(EdgeLLMError):
    """A bus-level problem: a bad buffer range, an unknown register, no board."""


class DeviceTimeout(DeviceError):
    """The accelerator did not raise ap_done within the allowed time."""


@dataclass
class Buffer:
    """One physically contiguous DDR buffer: its bus address and a host uint8 view of its bytes."""

    physical_address: int
    array: np.ndarray  # uint8 [nbytes], the host-side view
    handle: Any = None  # the device's own object (a pynq buffer, ...)

    @property
    def nbytes(self) -> int:
        """Size in bytes."""
        return int(self.array.size)

    def view(self, offset: int, count: int, dtype: Any) -> np.ndarray:
        """A typed view of `count` elements at byte `offset` (no copy); range-checked."""
        dt = np.dtype(dtype)
        end = offset + count * dt.itemsize
        if offset < 0 or end > self.nbytes:
            raise DeviceError(f"buffer range [{offset}, {end}) is outside the {self.nbytes}-byte buffer")
        return self.array[offset:end].view(dt)


def check_range(buf: Buffer, offset: int, size: int | None) -> tuple[int, int]:
    """(offset, size) with size defaulting to the rest of the buffer; DeviceError if out of range."""
    size = buf.nbytes - offset if size is None else size
    if offset < 0 or size < 0 or offset + size > buf.nbytes:
        raise DeviceError(f"sync range [{offset}, {offset + size}) is outside the {buf.nbytes}-byte buffer")
    return offset, size


class Device(ABC):
    """A bus: DDR buffers the accelerator can reach, and its AXI-lite control registers."""

    name: str = "device"
    poll_s: float = 1e-3  # longest sleep between ap_done polls

    @abstractmethod
    def alloc(self, nbytes: int) -> Buffer:
        """A zeroed, physically contiguous buffer of nbytes."""

    @abstractmethod
    def sync_to_device(self, buf: Buffer, offset: int = 0, size: int | None = None) -> None:
        """Make host writes to buf[offset:offset+size] visible to the accelerator (cache flush)."""

    @abstractmethod
    def sync_from_device(self, buf: Buffer, offset: int = 0, size: int | None = None) -> None:
        """Make accelerator writes to buf[offset:offset+size] visible to the host (invalidate)."""

    @abstractmethod
    def write_reg(self, offset: int, value: int) -> None:
        """Write a 32-bit AXI-lite register."""

    @abstractmethod
    def read_reg(self, offset: int) -> int:
        """Read a 32-bit AXI-lite register."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release buffers and handles (default: nothing to do)."""

    # ---- shared protocol, built on the primitives above ----

    def write_reg64(self, offset: int, value: int) -> None:
        """A 64-bit register (m_axi pointer) as low word at offset, high word at offset + 4."""
        self.write_reg(offset, value & 0xFFFFFFFF)
        self.write_reg(offset + 4, (value >> 32) & 0xFFFFFFFF)

    def ctrl(self) -> int:
        """The ap_ctrl register (reading it clears ap_done on the hardware)."""
        return int(self.read_reg(CTRL))

    def is_idle(self) -> bool:
        """True when the IP is idle and no start is pending."""
        c = self.ctrl()
        return bool(c & AP_IDLE) and not c & AP_START

    def start(self) -> None:
        """Set ap_start; refuses while a start is still pending (the IP has not taken it)."""
        c = self.ctrl()
        if c & AP_START:
            raise DeviceError(f"{self.name}: ap_start is still set from a previous start "
                              f"(ctrl=0x{c:x}); the accelerator has not accepted it")
        self.write_reg(CTRL, AP_START)

    def wait_done(self, timeout_s: float = 10.0) -> float:
        """Poll until ap_done (or idle with ap_start cleared); return the seconds waited.

        Raises DeviceTimeout after timeout_s (finite, > 0: check_timeout); the device object stays
        usable (registers readable, a later start() allowed once the IP is idle again)."""
        return self._poll_done(check_timeout(timeout_s), time.monotonic())

    def _poll_done(self, timeout_s: float, t0: float) -> float:
        """wait_done's loop: poll ap_ctrl until done or t0 + timeout_s; seconds since t0."""
        sleep = 0.0
        while True:
            c = self.ctrl()
            if c & AP_DONE or (c & AP_IDLE and not c & AP_START):
                return time.monotonic() - t0
            waited = time.monotonic() - t0
            if waited >= timeout_s:
                raise DeviceTimeout(f"{self.name}: accelerator did not raise ap_done within "
                                    f"{timeout_s:g} s (ctrl=0x{c:x})")
            sleep = min(self.poll_s, max(sleep * 2, 1e-5), max(timeout_s - waited, 0.0))
            time.sleep(sleep)

    def run(self, timeout_s: float = 10.0) -> float:
        """start() then wait_done(timeout_s); seconds waited."""
        self.start()
        return self.wait_done(timeout_s)
