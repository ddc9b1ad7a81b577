"""Waits of the emulator and the driver (issue 14, item 7): timeouts must be finite and positive
(device.check_timeout, in wait_done, Driver and Session), and the emulator honours them: its C
simulation runs in a worker thread, a run that times out leaves the device refusing calls until the
worker ends, and a process that gives up exits at once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgellm.errors import EdgeLLMError
from edgellm.hw import csim
from edgellm.runtime.device import DeviceError, DeviceTimeout, check_timeout
from edgellm.runtime.emulator import CsimFunc, EmulatorDevice


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0, "3", None, True])
def test_timeouts_must_be_finite_and_positive(bad: object) -> None:
    with pytest.raises(EdgeLLMError, match="timeout must be a"):
        check_timeout(bad)
    dev = EmulatorDevice(CsimFunc(lambda *a: None), {"hdr_off": 0x10, "prog_off": 0x18, "n_desc": 0x20,
                                                       "data": 0x28})
    with pytest.raises(EdgeLLMError, match="timeout must be a"):
        dev.wait_done(bad)  # type: ignore[arg-type]


def test_session_and_driver_refuse_a_nan_timeout(tmp_path: Path) -> None:
    """`--timeout nan` used to disable the timeout: Session and Driver refuse it at construction."""
    from helpers import TINY, emulator_for, write_project

    from edgellm.models.random_model import random_model
    from edgellm.runtime.driver import Driver
    from edgellm.runtime.session import Session

    p, dev = emulator_for(write_project(tmp_path / "proj", random_model(TINY, seed=1)))
    for bad in (float("nan"), float("inf"), 0.0, -5.0):
        with pytest.raises(EdgeLLMError, match="timeout must be a finite number of seconds > 0"):
            Session(p, dev, timeout_s=bad)
        with pytest.raises(EdgeLLMError, match="timeout must be a finite number of seconds > 0"):
            Driver(p, dev, timeout_s=bad)
    drv = Driver(p, dev, timeout_s=5)
    with pytest.raises(EdgeLLMError, match="got nan"):
        drv.timeout_s = float("nan")
    assert drv.timeout_s == 5.0


SLOW_TOP = r"""
#include <cstdint>
#include <ctime>
// A top that takes prog_off milliseconds (in C, without the GIL), then marks ddr[hdr_off].
extern "C" void edgellm_csim_run(uint8_t *ddr, uint64_t, uint32_t hdr_off, uint32_t ms, uint32_t) {
  timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&t, 0);
  ddr[hdr_off] = 42;
}
"""
REGS = {"hdr_off": 0x10, "prog_off": 0x18, "n_desc": 0x20, "data": 0x28}


def slow_library(tmp: Path) -> Path:
    src = tmp / "slow_top.cpp"
    src.write_text(SLOW_TOP)
    return csim.build([src], "slow_top")


def start_slow(dev: EmulatorDevice, ms: int):
    buf = dev.alloc(4096)
    dev.write_reg64(REGS["data"], buf.physical_address)
    dev.write_reg(REGS["hdr_off"], 8)
    dev.write_reg(REGS["prog_off"], ms)
    return buf


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_emulator_honours_the_timeout(tmp_path: Path) -> None:
    """0.1 s asked of a 3 s C simulation: DeviceTimeout after about 0.1 s (it used to return after 3 s);
    the device refuses calls until the worker ends, then works again."""
    dev = EmulatorDevice.from_library(slow_library(tmp_path), REGS)
    buf = start_slow(dev, 3000)
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout,
                       match="did not raise ap_done within 0.1 s.*unusable until it finishes.*--timeout"):
        dev.run(timeout_s=0.1)
    assert time.monotonic() - t0 < 1.5
    for call in (lambda: dev.sync_from_device(buf), lambda: dev.write_reg(REGS["n_desc"], 1), dev.start,
                 lambda: dev.alloc(64)):
        with pytest.raises(DeviceError, match="timed-out run is still executing.*unusable until it finishes"):
            call()
    assert dev.read_reg(REGS["prog_off"]) == 3000  # registers stay readable
    assert dev.join(30.0)
    dev.sync_from_device(buf)
    assert buf.array[8] == 42 and dev.runs == 1
    dev.write_reg(REGS["prog_off"], 1)
    assert dev.run(timeout_s=10) < 5 and dev.runs == 2


def test_a_run_in_progress_refuses_a_second_start() -> None:
    gate = threading.Event()
    dev = EmulatorDevice(CsimFunc(lambda *a: gate.wait(10)), REGS)
    buf = dev.alloc(4096)
    dev.write_reg64(REGS["data"], buf.physical_address)
    dev.start()
    with pytest.raises(DeviceError, match="refused while a run is in progress"):
        dev.start()
    gate.set()
    dev.wait_done(10)
    dev.run(10)
    assert dev.runs == 2


def test_worker_errors_reach_wait_done() -> None:
    def bad_top(*a: object) -> None:
        raise DeviceError("emulator: the dataflow processes deadlocked")

    dev = EmulatorDevice(bad_top, REGS)  # a Python callable stands in for the top
    buf = dev.alloc(4096)
    dev.write_reg64(REGS["data"], buf.physical_address)
    with pytest.raises(DeviceError, match="deadlocked"):
        dev.run(5)
    dev.top = lambda *a: None
    dev.run(5)


EXIT_SCRIPT = r"""
import sys, time
from edgellm.runtime.device import DeviceTimeout
from edgellm.runtime.emulator import EmulatorDevice
REGS = {"hdr_off": 0x10, "prog_off": 0x18, "n_desc": 0x20, "data": 0x28}
dev = EmulatorDevice.from_library(sys.argv[1], REGS)
buf = dev.alloc(4096)
dev.write_reg64(REGS["data"], buf.physical_address)
dev.write_reg(REGS["prog_off"], 60000)
try:
    dev.run(timeout_s=0.2)
except DeviceTimeout as e:
    print("timeout:", e)
    sys.exit(2)
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_process_exits_while_a_timed_out_run_keeps_going(tmp_path: Path) -> None:
    """The worker is a daemon thread: the process exits with its own code, not after the 60 s run."""
    lib = slow_library(tmp_path)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, str(lib)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "timeout:" in r.stdout, (r.returncode, r.stderr)
    assert time.monotonic() - t0 < 30
