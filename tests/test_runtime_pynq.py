"""PynqDevice against a fake `pynq` module shaped like pynq 3.x (pynq/__init__.py exports Overlay,
DefaultIP, allocate, MMIO, Clocks; PynqBuffer is an ndarray subclass whose slices keep their device
offset and sync only their range; Clocks.fclk0_mhz is a class-level property; Overlay(bitfile_name,
dtbo=None, download=True, ...) exposes ip_dict with the hwh's per-IP 'registers'
{name: {'address_offset', ...}} and the IP drivers as attributes; DefaultIP.read/write(offset)).

The fake IP runs the Python model of the top on the fake "device" memory, so a Session over the
pynq adapter is checked end to end against the golden model."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from helpers import REGISTERS, TINY, PythonTop, write_project

from edgellm.compiler.hwh import hwh_registers
from edgellm.errors import EdgeLLMError
from edgellm.models.golden import GoldenModel
from edgellm.models.random_model import random_model
from edgellm.runtime.device import AP_DONE, AP_IDLE, AP_START
from edgellm.runtime.project import Project
from edgellm.runtime.session import Session

# The hwh register map Vitis HLS reports for the manifest's map (compiler/hwh.py names: a 64-bit pointer
# as NAME_1 / NAME_2), and one where the hwh moved a register (a bitstream from other HLS sources).
HWH = hwh_registers(REGISTERS)
MOVED = dict(HWH, n_desc=0x48)


def make_fake_pynq(top=None, hwh=HWH) -> types.ModuleType:
    HWH = hwh  # noqa: N806 (the map this fake board's IP was built with)
    log: dict[str, list] = {"overlay": [], "allocate": [], "sync_to": [], "sync_from": [], "clock": [],
                            "write": [], "read": []}
    buffers: dict[int, FakeBuffer] = {}

    class FakeBuffer(np.ndarray):
        def __new__(cls, shape, dtype, phys):
            obj = np.zeros(shape, dtype).view(cls)
            obj.device_address, obj.offset = phys, 0
            obj.device_mem = np.zeros(obj.nbytes, np.uint8)
            obj._base = obj.__array_interface__["data"][0]
            return obj

        def __array_finalize__(self, obj):
            if isinstance(obj, FakeBuffer):
                off = self.__array_interface__["data"][0] - obj._base
                self._base, self.device_mem = obj._base, obj.device_mem
                self.offset = off
                self.device_address = obj.device_address - obj.offset + off

        @property
        def physical_address(self):
            return self.device_address

        def sync_to_device(self):
            log["sync_to"].append((self.offset, self.nbytes))
            self.device_mem[self.offset:self.offset + self.nbytes] = np.asarray(self).view(np.uint8).ravel()

        def sync_from_device(self):
            log["sync_from"].append((self.offset, self.nbytes))
            dev = self.device_mem[self.offset:self.offset + self.nbytes]
            np.asarray(self).view(np.uint8).ravel()[:] = dev

        def freebuffer(self):
            log.setdefault("free", []).append(self.device_address)

    def allocate(shape, dtype="u4", target=None, **kwargs):
        log["allocate"].append((shape, np.dtype(dtype)))
        phys = 0x6000_0000 + 0x100_0000 * len(buffers)
        b = FakeBuffer(shape, dtype, phys)
        buffers[phys] = b
        return b

    class DefaultIP:
        def __init__(self, description):
            self.description = description
            self.regs = {0: AP_IDLE}

        def write(self, offset, value):
            log["write"].append((offset, value))
            self.regs[offset] = value
            if offset == 0 and value & AP_START and top is not None:
                addr = self.regs[HWH["data_1"]] | self.regs[HWH["data_2"]] << 32
                assert all(self.regs[HWH[f"w{i}_1"]] == addr & 0xFFFFFFFF for i in (0, 1))
                mem = buffers[addr].device_mem
                top(mem.ctypes.data, mem.size, self.regs[HWH["hdr_off"]], self.regs[HWH["prog_off"]],
                    self.regs[HWH["n_desc"]])
                self.regs[0] = AP_DONE | AP_IDLE

        def read(self, offset=0):
            log["read"].append(offset)
            return self.regs.get(offset, 0)

    class Overlay:
        def __init__(self, bitfile_name, dtbo=None, download=True, ignore_version=False, device=None):
            log["overlay"].append((bitfile_name, download))
            self.ip_dict = {"edgellm_top_0": {
                "phys_addr": 0xA000_0000, "addr_range": 0x10000, "type": "xilinx.com:hls:edgellm_top:1.0",
                "fullpath": "edgellm_top_0",
                "registers": {k: {"address_offset": v, "size": 32, "access": "read-write",
                                  "description": "", "fields": {}} for k, v in HWH.items()}},
                "axi_intc_0": {"phys_addr": 0xA001_0000, "addr_range": 0x1000,
                               "type": "xilinx.com:ip:axi_intc:4.1"}}
            self._drivers = {}

        def __getattr__(self, name):
            if name in self.__dict__.get("ip_dict", {}):
                return self._drivers.setdefault(name, DefaultIP(self.ip_dict[name]))
            raise AttributeError(name)

    class _ClocksMeta(type):
        _fclk0 = 100.0

        @property
        def fclk0_mhz(cls):
            return cls._fclk0

        @fclk0_mhz.setter
        def fclk0_mhz(cls, mhz):
            log["clock"].append(mhz)
            cls._fclk0 = round(mhz, 1)

    class Clocks(metaclass=_ClocksMeta):
        pass

    class MMIO:
        def __init__(self, base_addr, length=4, device=None, **kwargs):
            self.base_addr, self.length = base_addr, length

    m = types.ModuleType("pynq")
    m.Overlay, m.DefaultIP, m.allocate, m.Clocks, m.MMIO = Overlay, DefaultIP, allocate, Clocks, MMIO
    m.__version__ = "3.1.1"
    m.log = log
    return m


@pytest.fixture(scope="module")
def qm():
    return random_model(TINY, seed=5)


def test_missing_pynq_is_one_line(monkeypatch, tmp_path: Path) -> None:
    from edgellm.runtime.pynq_device import PynqDevice

    monkeypatch.setitem(sys.modules, "pynq", None)  # import pynq -> ImportError
    with pytest.raises(EdgeLLMError, match=r"pip install edgellm\[board\]") as e:
        PynqDevice(tmp_path / "x.bit")
    assert "\n" not in str(e.value)


def test_cli_device_pynq_without_pynq(monkeypatch, qm, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgellm.cli import app

    proj = write_project(tmp_path / "p", qm)
    monkeypatch.setitem(sys.modules, "pynq", None)
    res = CliRunner().invoke(app, ["run", str(proj), "--prompt-ids", "1,2", "--device", "pynq"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == ("error: the board runtime needs pynq: pip install "
                                                   "edgellm[board] (pynq >= 3.0)")


def test_adapter_calls(monkeypatch, tmp_path: Path) -> None:
    from edgellm.runtime.pynq_device import PynqDevice

    fake = make_fake_pynq()
    monkeypatch.setitem(sys.modules, "pynq", fake)
    bit = tmp_path / "edgellm_top.bit"
    with pytest.raises(EdgeLLMError, match="does not exist"):
        PynqDevice(bit)
    bit.write_bytes(b"bit")
    dev = PynqDevice(bit, "edgellm_top", REGISTERS, clock_mhz=250)
    assert fake.log["overlay"] == [(str(bit), True)] and fake.log["clock"] == [250.0]
    assert dev.clock_mhz == 250.0 and dev.name == "pynq:edgellm_top_0"
    assert dev.registers == REGISTERS  # the hwh agrees (64-bit pointers by their _1 low word)
    buf = dev.alloc(10000)
    assert fake.log["allocate"] == [((10000,), np.dtype(np.uint8))]
    assert buf.physical_address == 0x6000_0000 and buf.nbytes == 10000
    buf.array[100:110] = 3
    dev.sync_to_device(buf, 96, 20)
    assert fake.log["sync_to"] == [(0, 10000), (96, 20)]  # alloc flushed its zeros: the board's are too
    assert list(buf.handle.device_mem[98:112]) == [0, 0] + [3] * 10 + [0, 0]
    buf.handle.device_mem[0:4] = 9
    dev.sync_from_device(buf, 0, 4)
    assert list(buf.array[:5]) == [9, 9, 9, 9, 0] and fake.log["sync_from"] == [(0, 4)]
    dev.write_reg64(0x28, 0x1_2345_6789)
    assert fake.log["write"][-2:] == [(0x28, 0x2345_6789), (0x2C, 1)]
    assert dev.read_reg(0x2C) == 1
    dev.close()
    assert fake.log["free"] == [0x6000_0000]
    with pytest.raises(EdgeLLMError, match="no IP named 'other'"):
        PynqDevice(bit, "other")


def test_hwh_that_moved_a_register_is_refused(monkeypatch, tmp_path: Path) -> None:
    """A .hwh whose register map disagrees with the manifest's (other HLS sources) is refused by name
    before anything is written to the IP (it used to be driven at the hwh's offsets)."""
    from edgellm.runtime.pynq_device import PynqDevice

    fake = make_fake_pynq(hwh=MOVED)
    monkeypatch.setitem(sys.modules, "pynq", fake)
    (tmp_path / "edgellm_top.bit").write_bytes(b"bit")
    with pytest.raises(EdgeLLMError, match=r"the .hwh puts n_desc at 0x48, the manifest at 0x20") as e:
        PynqDevice(tmp_path / "edgellm_top.bit", "edgellm_top", REGISTERS)
    assert "\n" not in str(e.value) and fake.log["write"] == []
    monkeypatch.setitem(sys.modules, "pynq", make_fake_pynq())
    with pytest.raises(EdgeLLMError, match=r"the .hwh has no register for argument 'kv0'"):
        PynqDevice(tmp_path / "edgellm_top.bit", "edgellm_top", {**REGISTERS, "kv0": 0x60})


def test_session_over_fake_pynq_equals_golden(monkeypatch, qm, tmp_path: Path) -> None:
    from edgellm.runtime.pynq_device import PynqDevice

    proj = Project.open(write_project(tmp_path / "p", qm, max_t=4, max_ctx=32))
    fake = make_fake_pynq(PythonTop(proj.config, proj.numerics))
    monkeypatch.setitem(sys.modules, "pynq", fake)
    (proj.path / "edgellm_top.bit").write_bytes(b"bit")
    with pytest.raises(EdgeLLMError, match="edgellm_top.hwh is missing"):
        PynqDevice.for_project(proj)
    (proj.path / "edgellm_top.hwh").write_text("<hwh/>")
    s = Session(proj, PynqDevice.for_project(proj))
    gm = GoldenModel(qm, proj.numerics)
    cache = gm.new_cache(32)
    toks = np.array([4, 8, 15, 16, 23, 42, 7])
    got = s.forward(toks)
    assert np.array_equal(got.view(np.uint32), gm.forward(toks, cache, all_logits=False).view(np.uint32))
    nxt = np.array([int(np.argmax(got))])
    assert np.array_equal(s.forward(nxt), gm.forward(nxt, cache, all_logits=False))
    assert s.driver.starts == 3
