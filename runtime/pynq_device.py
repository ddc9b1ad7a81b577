"""PynqDevice: the Device bus on a PYNQ board (pynq >= 3.0), imported lazily.

Overlay(bitfile) downloads the bitstream (its .hwh beside it names the IP and its registers);
the PL clock is set through pynq.Clocks.fclk0_mhz; buffers come from pynq.allocate (physically
contiguous, `physical_address`, `sync_to_device` / `sync_from_device` = cache flush / invalidate,
slices sync only their own range); registers are read and written through the IP's DefaultIP
driver (.read / .write on its MMIO window). Register offsets come from the hwh's register map when
it names them (Vitis HLS splits 64-bit pointers into NAME_1 / NAME_2), else from the manifest.

With PYNQ_REMOTE_DEVICES set, pynq drives a board over the network with the same API, so this
class works unchanged from a host.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.runtime.device import Buffer, Device, DeviceError, check_range

INSTALL_HINT = "the board runtime needs pynq: pip install edgellm[board] (pynq >= 3.0)"
BOARD_MARKERS = ("/dev/xlnk", "/dev/dri/renderD128", "/sys/class/fpga_manager/fpga0")


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
    return bool(os.environ.get("PYNQ_REMOTE_DEVICES")) or any(Path(p).exists() for p in BOARD_MARKERS)


def hwh_registers(ip_desc: Mapping[str, Any], fallback: Mapping[str, int]) -> dict[str, int]:
    """Register offsets by argument name: the hwh's (ip_dict[...]['registers']) where it has the name
    (NAME or NAME_1 for the low word of a 64-bit pointer), the manifest's otherwise."""
    regs = ip_desc.get("registers") or {}
    out = {}
    for name, off in fallback.items():
        for cand in (name, f"{name}_1", f"{name}_r", f"{name}_r_1"):
            if cand in regs and "address_offset" in regs[cand]:
                out[name] = int(regs[cand]["address_offset"])
                break
        else:
            out[name] = int(off)
    return out


class PynqDevice(Device):
    """Device on a PYNQ board: one overlay, its edgellm IP, pynq-allocated buffers."""

    def __init__(self, bitfile: str | Path, ip_name: str = "edgellm_top",
                 registers: Mapping[str, int] | None = None, clock_mhz: float | None = None,
                 download: bool = True) -> None:
        pynq = import_pynq()
        bit = Path(bitfile)
        if not bit.is_file():
            raise EdgeLLMError(f"bitstream {bit} does not exist (run edgellm build first)")
        self.pynq = pynq
        self.overlay = pynq.Overlay(str(bit), download=download)
        key = self._find_ip(ip_name)
        self.ip = getattr(self.overlay, key.replace("/", "."), None) or self.overlay.ip_dict[key]
        if isinstance(self.ip, dict):  # no attribute access: drive it through DefaultIP directly
            self.ip = pynq.DefaultIP(self.overlay.ip_dict[key])
        self.registers = hwh_registers(self.overlay.ip_dict[key], registers or {})
        self.name = f"pynq:{key}"
        self.clock_mhz = self._set_clock(clock_mhz) if clock_mhz else None
        self._bufs: list[Any] = []

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
            self.pynq.Clocks.fclk0_mhz = float(mhz)
            return float(self.pynq.Clocks.fclk0_mhz)
        except Exception as e:  # pynq raises RuntimeError/ValueError/OSError depending on the board
            raise EdgeLLMError(f"could not set the PL clock fclk0 to {mhz} MHz: {e}") from None

    def alloc(self, nbytes: int) -> Buffer:
        """pynq.allocate((nbytes,), uint8): physically contiguous, zeroed."""
        try:
            pb = self.pynq.allocate(shape=(int(nbytes),), dtype=np.uint8)
        except Exception as e:  # CMA exhausted and the like
            raise DeviceError(f"pynq.allocate of {nbytes / 2**20:.1f} MiB failed: {e}") from None
        pb[:] = 0
        self._bufs.append(pb)
        return Buffer(int(pb.physical_address), np.asarray(pb).view(np.uint8).reshape(-1), pb)

    def sync_to_device(self, buf: Buffer, offset: int = 0, size: int | None = None) -> None:
        """Flush host writes of the range."""
        o, n = check_range(buf, offset, size)
        if n:
            buf.handle[o:o + n].sync_to_device()

    def sync_from_device(self, buf: Buffer, offset: int = 0, size: int | None = None) -> None:
        """Invalidate the range so the host sees the accelerator's writes."""
        o, n = check_range(buf, offset, size)
        if n:
            buf.handle[o:o + n].sync_from_device()

    def write_reg(self, offset: int, value: int) -> None:
        """32-bit AXI-lite write through the IP's MMIO."""
        self.ip.write(int(offset), int(value) & 0xFFFFFFFF)

    def read_reg(self, offset: int) -> int:
        """32-bit AXI-lite read."""
        return int(self.ip.read(int(offset)))

    def close(self) -> None:
        """Free the pynq buffers."""
        for pb in self._bufs:
            free = getattr(pb, "freebuffer", None)
            if free is not None:
                free()
        self._bufs.clear()
