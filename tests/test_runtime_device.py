"""The Device bus and ap_ctrl protocol on the emulator with toy tops (ctypes callbacks)."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import time

import numpy as np
import pytest

from edgellm.errors import EdgeLLMError
from edgellm.runtime.device import AP_DONE, AP_IDLE, CTRL, DeviceError, DeviceTimeout
from edgellm.runtime.emulator import CsimFunc, EmulatorDevice

REGS = {"hdr_off": 0x10, "prog_off": 0x18, "n_desc": 0x20, "w0": 0x28, "data": 0x34}


def copy_top():
    """A toy top: copies n_desc bytes from ddr[prog_off] to ddr[hdr_off] (a real C-callable)."""
    def run(ddr, nbytes, hdr_off, prog_off, n_desc):
        ctypes.memmove(ddr + hdr_off, ddr + prog_off, n_desc)
    return CsimFunc(run)


def device(coherent: bool = False) -> EmulatorDevice:
    return EmulatorDevice(copy_top(), REGS, coherent=coherent)


def program(dev: EmulatorDevice, buf, src: int, dst: int, n: int) -> None:
    for r in ("w0", "data"):
        dev.write_reg64(REGS[r], buf.physical_address)
    dev.write_reg(REGS["hdr_off"], dst)
    dev.write_reg(REGS["prog_off"], src)
    dev.write_reg(REGS["n_desc"], n)


def test_toy_top_copies_after_sync() -> None:
    dev = device()
    buf = dev.alloc(8192)
    assert buf.physical_address % 4096 == 0 and buf.nbytes == 8192
    buf.array[100:116] = np.arange(16, dtype=np.uint8) + 1
    dev.sync_to_device(buf, 100, 16)
    program(dev, buf, 100, 5000, 16)
    assert dev.is_idle()
    dev.run(timeout_s=1.0)
    assert dev.runs == 1
    assert not buf.array[5000:5016].any()  # host view is stale until synced back
    dev.sync_from_device(buf, 5000, 16)
    assert list(buf.array[5000:5016]) == list(range(1, 17))


def test_missing_sync_is_visible() -> None:
    """Host writes not synced to the device are not seen by the top (separate memories)."""
    dev = device()
    buf = dev.alloc(4096)
    buf.array[0:4] = 7
    program(dev, buf, 0, 1000, 4)
    dev.run(1.0)
    dev.sync_from_device(buf)
    assert not buf.array[1000:1004].any()
    coh = device(coherent=True)
    b2 = coh.alloc(4096)
    b2.array[0:4] = 7
    program(coh, b2, 0, 1000, 4)
    coh.run(1.0)
    assert list(b2.array[1000:1004]) == [7] * 4


def test_ap_ctrl_bits() -> None:
    dev = device()
    buf = dev.alloc(4096)
    program(dev, buf, 0, 8, 4)
    dev.start()
    assert dev.join(5.0)  # the top runs in a worker thread; join leaves ap_ctrl alone
    c = dev.read_reg(CTRL)
    assert c & AP_DONE and c & AP_IDLE
    assert not dev.read_reg(CTRL) & AP_DONE  # clear-on-read, as Vitis HLS
    assert dev.wait_done(0.5) >= 0  # idle with ap_start clear also counts as done


def test_timeout_is_bounded_and_device_stays_usable() -> None:
    dev = device()
    buf = dev.alloc(4096)
    buf.array[:4] = [9, 8, 7, 6]
    dev.sync_to_device(buf)
    program(dev, buf, 0, 64, 4)
    dev.hang = True  # the accelerator takes ap_start but never raises ap_done
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match="emulator: accelerator did not raise ap_done within 0.2 s"):
        dev.run(timeout_s=0.2)
    assert time.monotonic() - t0 < 10  # bounded, not a hang
    assert isinstance(DeviceTimeout("x"), EdgeLLMError)
    assert dev.read_reg(REGS["n_desc"]) == 4 and not dev.is_idle()
    dev.hang = False
    dev.run(timeout_s=1.0)
    dev.sync_from_device(buf)
    assert list(buf.array[64:68]) == [9, 8, 7, 6]


def test_pointer_register_errors() -> None:
    dev = device()
    buf = dev.alloc(4096)
    other = dev.alloc(4096)
    program(dev, buf, 0, 8, 4)
    dev.write_reg64(REGS["w0"], other.physical_address)
    with pytest.raises(DeviceError, match="pointer registers disagree"):
        dev.start()
    dev.write_reg64(REGS["w0"], 0x1234000)
    dev.write_reg64(REGS["data"], 0x1234000)
    with pytest.raises(DeviceError, match="0x1234000, which is not an allocated buffer"):
        dev.start()


def test_range_and_register_checks() -> None:
    dev = device()
    buf = dev.alloc(4096)
    with pytest.raises(DeviceError, match="outside the 4096-byte buffer"):
        dev.sync_to_device(buf, 4000, 200)
    with pytest.raises(DeviceError, match="outside the 4096-byte buffer"):
        buf.view(4090, 4, np.float32)
    with pytest.raises(DeviceError, match="unaligned"):
        dev.write_reg(0x11, 1)
    with pytest.raises(EdgeLLMError, match="no 'n_desc' register"):
        EmulatorDevice(copy_top(), {"hdr_off": 0x10, "prog_off": 0x18, "data": 0x20})


def test_runtime_imports_no_heavy_modules() -> None:
    """On the board only numpy and pynq exist: the runtime must not import torch/onnx/onnxruntime."""
    code = ("import sys\n"
            "import edgellm.runtime, edgellm.runtime.session, edgellm.runtime.driver\n"
            "import edgellm.runtime.device\n"
            "import edgellm.runtime.pynq_device, edgellm.runtime.bpe, edgellm.runtime.sampling\n"
            "import edgellm.runtime.generation, edgellm.runtime.emulator, edgellm.runtime.project\n"
            "bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'tokenizers', 'transformers', 'pynq')"
            " if m in sys.modules]\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
