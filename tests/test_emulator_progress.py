"""The emulator's wait bounds progress, not the whole call: with a top that reports descriptors finished
(edgellm_csim_progress, or dev.progress for a stand-in), wait_done's timeout bounds the time without
progress, the whole call capped at timeout x (n_desc + 1); without one it bounds the whole call, as
before. A C-simulated call of a real-size model takes minutes, so `verify -d emu` at real shapes
failed at the default --timeout 60 (test_emulator_waits: the rest of the wait protocol).
"""

from __future__ import annotations

import importlib.util
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgellm.hw import csim
from edgellm.runtime.device import DeviceError, DeviceTimeout
from edgellm.runtime.emulator import PROGRESS_POLL_S, EmulatorDevice

REGS = {"hdr_off": 0x10, "prog_off": 0x18, "n_desc": 0x20, "data": 0x28}
SLACK_S = 0.5  # scheduling noise allowed on a loaded test machine
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
HAVE_CSIM = importlib.util.find_spec("hls4ml") is not None and shutil.which("g++") is not None


class Counter:
    """A stand-in top's progress counter (what edgellm_csim_progress is to the C simulation)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        return self.n


def device(top: Callable[..., object], counter: Counter | None) -> tuple[EmulatorDevice, np.ndarray]:
    dev = EmulatorDevice(top, REGS)
    dev.progress = counter
    buf = dev.alloc(4096)
    dev.write_reg64(REGS["data"], buf.physical_address)
    return dev, buf


def start(dev: EmulatorDevice, n_desc: int) -> float:
    dev.write_reg(REGS["n_desc"], n_desc)
    t0 = time.monotonic()
    dev.start()
    return t0


def test_a_call_longer_than_the_timeout_that_keeps_progressing_completes() -> None:
    """12 descriptors of 0.1 s under a 0.4 s timeout: 1.2 s in all, never 0.4 s without progress. It
    used to time out after 0.4 s."""
    counter = Counter()

    def top(_mem, _size, _hdr, _prog, n_desc: int) -> None:
        for _ in range(n_desc):
            time.sleep(0.1)
            counter.n += 1

    dev, _ = device(top, counter)
    t0 = start(dev, 12)
    waited = dev.wait_done(0.4)
    assert 1.2 <= time.monotonic() - t0 and waited >= 1.2 - 0.05
    assert counter.n == 12 and dev.runs == 1
    dev.write_reg(REGS["n_desc"], 2)  # the device works on
    assert dev.run(0.4) < 0.4 + SLACK_S and dev.runs == 2


def test_a_stall_times_out_timeout_after_the_last_progress() -> None:
    """Two descriptors 0.1 s apart, then none: DeviceTimeout about 0.5 s (+ one poll) after the last one,
    naming what finished; the device refuses calls until the worker ends, then works again. (The
    descriptors come well inside the timeout: at 0.3 s apart under a 0.3 s timeout a loaded machine timed
    out between them.)"""
    counter, gate = Counter(), threading.Event()
    last: list[float] = []

    def top(*_a: object) -> None:
        for _ in range(2):
            time.sleep(0.1)
            counter.n += 1
            last.append(time.monotonic())
        gate.wait(20)

    dev, buf = device(top, counter)
    start(dev, 5)
    with pytest.raises(DeviceTimeout, match=r"^emulator: accelerator finished no descriptor for 0\.5 s "
                       r"\(2 of 5 descriptors finished\).*unusable until it finishes.*--timeout\)$"):
        dev.wait_done(0.5)
    stalled = time.monotonic() - last[-1]
    assert 0.5 <= stalled < 0.5 + PROGRESS_POLL_S + SLACK_S, stalled
    with pytest.raises(DeviceError, match="timed-out run is still executing"):
        dev.sync_from_device(buf)
    gate.set()
    assert dev.join(10)
    dev.wait_done(1)
    assert dev.runs == 1


@pytest.mark.parametrize("beat, n_desc, timeout, cap, events", [
    (False, 3, 0.3, r"1\.2", r"\(n_desc \+ 1\)"), (True, 1, 0.1, r"1\.6", r"\(n_desc x 15 \+ 1\)")],
    ids=["descriptors", "heartbeat"])
def test_a_top_that_progresses_forever_hits_the_cap(beat: bool, n_desc: int, timeout: float, cap: str,
                                                    events: str) -> None:
    """A buggy top that bumps a counter forever: the whole call is capped at one timeout per progress
    event it can make: timeout x (n_desc + 1), 1.2 s for 3 descriptors under 0.3 s; with a heartbeat
    timeout x (n_desc x 15 + 1) (a descriptor and 14 linear jobs), 1.6 s for 1 descriptor under 0.1 s."""
    counter, beats, stop = Counter(), Counter(), threading.Event()

    def top(*_a: object) -> None:
        while not stop.wait(0.02):
            (beats if beat else counter).n += 1

    dev, _ = device(top, counter)
    dev.heartbeat = beats if beat else None
    try:
        t0 = start(dev, n_desc)
        with pytest.raises(DeviceTimeout, match=rf"did not raise ap_done within {cap} s \(\d+ of {n_desc} "
                           r"descriptors finished; a call that keeps making progress gets at most "
                           rf"--timeout x {events}\)"):
            dev.wait_done(timeout)
        seconds = float(cap.replace("\\", ""))
        assert seconds <= time.monotonic() - t0 < seconds + SLACK_S
        assert (beats if beat else counter).n > 10
    finally:
        stop.set()
    assert dev.join(10)


def test_a_descriptor_longer_than_the_timeout_completes_on_its_heartbeat() -> None:
    """Two descriptors of 0.6 s under a 0.3 s timeout, each beating every 0.1 s (a real-size layer: tens
    of seconds in C simulation, its linears seconds each): completes. Without the heartbeat the same call
    times out after 0.3 s without a descriptor."""
    for with_beat in (True, False):
        counter, beats = Counter(), Counter()

        def top(_mem, _size, _hdr, _prog, n_desc: int, counter=counter, beats=beats) -> None:
            for _ in range(n_desc):
                for _ in range(6):
                    time.sleep(0.1)
                    beats.n += 1
                counter.n += 1

        dev, _ = device(top, counter)
        dev.heartbeat = beats if with_beat else None
        start(dev, 2)
        if with_beat:
            assert dev.wait_done(0.3) >= 1.2 - 0.05 and counter.n == 2 and beats.n == 12
        else:
            with pytest.raises(DeviceTimeout, match=r"finished no descriptor for 0\.3 s \(0 of 2"):
                dev.wait_done(0.3)
            assert dev.join(10)


def test_a_stalled_heartbeat_times_out_naming_both() -> None:
    """A top that reports linears: the timeout message says neither a descriptor nor a linear finished."""
    counter, beats, gate = Counter(), Counter(), threading.Event()

    def top(*_a: object) -> None:
        beats.n += 1
        gate.wait(20)

    dev, _ = device(top, counter)
    dev.heartbeat = beats
    start(dev, 3)
    with pytest.raises(DeviceTimeout, match=r"finished no descriptor and no linear for 0\.3 s \(0 of 3"):
        dev.wait_done(0.3)
    gate.set()
    assert dev.join(10)


def test_a_stand_in_without_progress_bounds_the_whole_call() -> None:
    """No progress counter (dev.progress None): the timeout bounds the whole call, as before."""
    gate = threading.Event()
    dev, _ = device(lambda *a: gate.wait(20), None)
    t0 = start(dev, 12)
    with pytest.raises(DeviceTimeout, match=r"did not raise ap_done within 0\.3 s; its C simulation"):
        dev.wait_done(0.3)
    assert time.monotonic() - t0 < 0.3 + SLACK_S
    gate.set()
    assert dev.join(10)


# ---- a compiled stand-in: the progress symbol found in the library, or not (a project compiled before) ----

STEP_TOP = r"""
#include <atomic>
#include <cstdint>
#include <ctime>
static std::atomic<long long> done(0);
// n_desc descriptors of prog_off milliseconds each (in C, without the GIL), then marks ddr[hdr_off].
extern "C" void edgellm_csim_run(uint8_t *ddr, uint64_t, uint32_t hdr_off, uint32_t ms, uint32_t n_desc) {
  for (uint32_t i = 0; i < n_desc; i++) {
    timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&t, 0);
    done++;
  }
  ddr[hdr_off] = 42;
}
#if WITH_PROGRESS
extern "C" long long edgellm_csim_progress() { return done.load(); }
#endif
"""


def step_library(tmp: Path, with_progress: bool) -> Path:
    src = tmp / "step_top.cpp"
    src.write_text(STEP_TOP)
    return csim.build([src], "step_top", defines={"WITH_PROGRESS": str(int(with_progress))})


def run_steps(dev: EmulatorDevice, n_desc: int, ms: int, timeout_s: float) -> float:
    buf = dev.alloc(4096)
    dev.write_reg64(REGS["data"], buf.physical_address)
    dev.write_reg(REGS["hdr_off"], 8)
    dev.write_reg(REGS["prog_off"], ms)
    dev.write_reg(REGS["n_desc"], n_desc)
    t0 = time.monotonic()
    dev.run(timeout_s)
    dev.sync_from_device(buf)
    assert buf.array[8] == 42
    return time.monotonic() - t0


@needs_gxx
def test_library_progress_symbol_bounds_the_time_without_progress(tmp_path: Path) -> None:
    """8 descriptors of 0.1 s under a 0.3 s timeout through edgellm_csim_progress: completes (it timed
    out before); the library's counter is the device's progress."""
    dev = EmulatorDevice.from_library(step_library(tmp_path, True), REGS)
    assert dev.progress is not None and dev.progress() == 0
    assert run_steps(dev, 8, 100, 0.3) >= 0.8
    assert dev.progress() == 8 and dev.runs == 1


@needs_gxx
def test_library_without_the_progress_symbol_keeps_the_old_wait(tmp_path: Path) -> None:
    """A project compiled before the counter existed: the timeout bounds the whole call (DeviceTimeout
    after 0.3 s of the 0.8 s call); the run still completes later and the device works again."""
    dev = EmulatorDevice.from_library(step_library(tmp_path, False), REGS)
    assert dev.progress is None
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match=r"did not raise ap_done within 0\.3 s"):
        run_steps(dev, 8, 100, 0.3)
    assert time.monotonic() - t0 < 0.3 + SLACK_S
    assert dev.join(10)
    dev.wait_done(1)
    assert dev.runs == 1
    assert run_steps(dev, 2, 10, 5) < 5


# ---- the project's own C simulation ----


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint dir, project dir) of shared_project.compile_e2e_project."""
    from shared_project import compile_e2e_project

    if not HAVE_CSIM:
        pytest.skip("C simulation needs g++ and hls4ml's ap_types headers")
    return compile_e2e_project(tmp_path_factory.mktemp("progress"))


@pytest.mark.parametrize("threads", [False, True], ids=["sequential", "threads"])
def test_project_progress_advances_by_n_desc_per_call(built: tuple[Path, Path], threads: bool) -> None:
    """The compiled tiny project's edgellm_csim_progress: the engine counts each descriptor it finishes,
    n_desc per call (prefill blocks and decode steps alike)."""
    from edgellm.runtime.project import Project
    from edgellm.runtime.session import Session, open_device

    p = Project.open(built[1])
    dev = open_device(p, "emu-threads" if threads else "emu")
    assert isinstance(dev, EmulatorDevice) and dev.progress is not None
    calls: list[tuple[int, int]] = []  # (n_desc written, progress made) per call
    start0, wait0 = dev.start, dev.wait_done
    before = [0]

    def start() -> None:
        before[0] = dev.progress()
        start0()

    def wait_done(timeout_s: float = 10.0) -> float:
        waited = wait0(timeout_s)
        calls.append((dev.read_reg(p.iface.registers["n_desc"]), dev.progress() - before[0]))
        return waited

    dev.start, dev.wait_done = start, wait_done  # type: ignore[method-assign]
    s = Session(p, dev)
    s.forward(np.arange(3, 3 + 11) * 7 % p.config.vocab_size)  # blocks of 8, 3
    s.forward(np.array([5]))
    assert len(calls) == 3 and s.driver.starts == 3
    assert all(n >= p.config.n_layers + 1 and made == n for n, made in calls), calls
    # the heartbeat: every linear of every layer descriptor (7 a layer per token half), monotonic
    assert dev.heartbeat is not None
    beat0 = dev.heartbeat()
    s.forward(np.array([6]))
    assert dev.heartbeat() - beat0 >= 7 * p.config.n_layers
