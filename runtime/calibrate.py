"""Run a calibration kit's DDR probe and write the calibration file (`edgellm calibrate KIT`, or the kit's
run_calibration.py on the board). Board-side: numpy and pynq only, Python 3.10.

One buffer (probe_kit.Layout): pseudo-random bytes in a region per weight port and one for the data
port's reads, an empty region for its writes. Each port set of run_plan() is one descriptor and one
ap_start (repeated `repeat` times): every port alone, the data port reading and writing alone, the
weight ports that share a path into the DDR controller together, all weight ports together, the weight
ports reading the LM head's rows (HEAD_RUN: the weight regions taken as one [rows][head_row_bytes] array,
port k reading rows k, k + NP, ... one burst loop a row, as weight_fetch.h lm_fetch_rows does), and all
of them with the data port writing (as in decode). The head run over the weights-together run is the
head's pattern ratio the performance model prices the LM head with (cost/ddr.py head_stream_ratio).
After every start the host checks the probe's status, that each port moved the beats asked for (and the
ports outside the set none), the sum of the words each moved against its region (its rows), the written
region against the pattern, and cycle counts no smaller than the beats (a port moves at most one beat
per cycle). A port's rate is its bytes over its cycles at
the PL clock the board reports; a run's, all its bytes over its last cycle.

On the emulator (the probe's C simulation) or an emulated board nothing is measured: the C simulation
counts one beat per cycle per port (ddr_probe.h), so the file says what the probe's ports could move at
best, and is marked `emulated`; `edgellm estimate --measured` refuses it unless told otherwise.

Here: the run (calibrate), the device (open_device) and the board script (board_main). The port sets and
options: calibrate_plan.py; the probe's buffer, starts and checks: calibrate_session.py; the file's
records, figures, write and summary: calibrate_record.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
from pathlib import Path
from typing import Any

import numpy as np

import edgellm
from edgellm.errors import EdgeLLMError
from edgellm.runtime import probe_kit as pk
from edgellm.runtime.calibrate_plan import (
    CCI_PATH,
    DEFAULT_BYTES,
    EMULATOR_BYTES,
    HEAD_ROW_BYTES,
    HEAD_RUN,
    SHARES_RUN,
    CalibrationError,
    check_options,
    check_shares,
    parse_shares,
    run_plan,
)
from edgellm.runtime.calibrate_record import (
    EMULATED_NOTE,
    FORMAT,
    figures,
    kit_timing,
    pynq_version,
    rate_shares_of,
    summarize,
    summary_lines,
    write_record,
)
from edgellm.runtime.calibrate_session import ProbeSession, Sample
from edgellm.runtime.device import Device

# What callers use from here (the modules above hold them): the commands, tests, compiler/calibrate.
__all__ = ["CCI_PATH", "DEFAULT_BYTES", "EMULATED_NOTE", "EMULATOR_BYTES", "FORMAT", "HEAD_ROW_BYTES",
           "HEAD_RUN", "SHARES_RUN", "CalibrationError", "ProbeSession", "board_main", "calibrate",
           "check_options", "check_shares", "figures", "open_device", "parse_shares", "run_plan", "summarize",
           "summary_lines", "write_record"]


def calibrate(kit: pk.ProbeKit, dev: Device, *, emulated: bool, clock_mhz: float, bytes_per_port: int,
              repeat: int = 3, timeout_s: float = 10.0,
              head_row_bytes: int = HEAD_ROW_BYTES, shares: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Run every port set `repeat` times on dev; the calibration record (FORMAT). shares: the weight
    ports' shares of the SHARES_RUN (default: in proportion to the rates "weights together" measured)."""
    check_options(kit, bytes_per_port, repeat, timeout_s, head_row_bytes)
    if not clock_mhz > 0:
        raise EdgeLLMError(f"the PL clock must be > 0 MHz, got {clock_mhz!r}")
    check_shares(shares, kit.weight_ports)
    specs = run_plan(kit)
    sess = ProbeSession(kit, dev, specs, bytes_per_port, timeout_s, head_row_bytes)
    samples: list[list[Sample]] = []
    runs: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        sh = None
        if spec.at_shares:  # the rates "weights together" measured (it runs before), or the ones asked for
            together = next(r for r in runs if r["name"] == "weights together")
            sh = shares or rate_shares_of(together, kit.weight_ports)
            sess.set_shares(i, sh)
        samples.append([sess.run(i) for _ in range(repeat)])
        runs.append(summarize(spec, samples[-1], sess.port_bytes[i], clock_mhz, sh))
    cycles = sum(s.total for x in samples for s in x)
    wall = sum(s.wall_s for x in samples for s in x)
    return {
        "format": FORMAT, "board": kit.board, "emulated": emulated, "note": EMULATED_NOTE if emulated else "",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device": dev.name,
        "clock_mhz": round(clock_mhz, 4), "clock_mhz_requested": kit.clock_mhz,
        # cycles over the seconds the host waited (start and polling included): a lower bound of the clock
        "clock_mhz_from_counter": None if emulated or wall <= 0 else round(cycles / wall / 1e6, 2),
        "tools": {"edgellm": edgellm.__version__, "python": platform.python_version(),
                  "numpy": np.__version__, "pynq": pynq_version(), "kit": kit.manifest.get("tools", {})},
        "kit": {"ip": kit.iface.ip_name, "weight_ports": kit.weight_ports,
                "port_width_bits": 8 * kit.beat_bytes, "data_port_width_bits": 8 * kit.data_beat_bytes,
                "ports": kit.ports, "ddr_paths": kit.ddr_paths, "axi": kit.manifest.get("axi", {}),
                "timing": kit_timing(kit)},
        "repeat": repeat, "head_row_bytes": head_row_bytes, "runs": runs, "figures": figures(kit, runs),
    }


def open_device(kit: pk.ProbeKit, which: str = "auto") -> tuple[Device, bool, float]:
    """(device, emulated, PL clock MHz) for the kit: 'emu' (the probe's C simulation), 'pynq' (the kit's
    bitstream through pynq, here or over PYNQ_REMOTE_DEVICES) or 'auto' (pynq on a board)."""
    if which not in ("auto", "emu", "pynq"):
        raise EdgeLLMError(f"unknown device {which!r}; use auto, emu or pynq")
    from edgellm.runtime import pynq_device as pd

    if which == "emu" or which == "auto" and not pd.on_board():
        try:
            from edgellm.runtime.emulator import EmulatorDevice
        except ImportError:  # the kit's own python/ (on a board) has no emulator
            raise EdgeLLMError("the probe's emulator needs edgellm installed (pip install edgellm): run "
                               "edgellm calibrate KIT --device emu on a host; on a board, --device "
                               "pynq") from None

        dev = EmulatorDevice.for_project(kit)
        dev.name = "emulator (C simulation of the probe)"
        return dev, True, kit.clock_mhz
    ip = kit.iface.ip_name
    bit, hwh = kit.path / f"{ip}.bit", kit.path / f"{ip}.hwh"
    if not bit.is_file() or not hwh.is_file():
        raise EdgeLLMError(f"{bit} and {hwh} are needed on a board: build the kit (hls/run_hls.tcl, then "
                           "vivado/build.tcl) and copy them beside its manifest.json")
    dev = pd.PynqDevice(bit, ip, kit.iface.registers, clock_mhz=kit.clock_mhz)
    active = getattr(getattr(dev.pynq, "Device", None), "active_device", None)
    from edgellm.runtime.pynq_remote import EMULATED_BOARD_TAG

    emulated = (pd.bit_design(bit) == pd.EMULATION_DESIGN
                or EMULATED_BOARD_TAG in str(getattr(active, "name", "")))
    return dev, emulated, float(dev.clock_mhz or kit.clock_mhz)


def board_main(argv: list[str] | None = None, kit_dir: str | None = None) -> int:
    """The kit's run_calibration.py: measure this board through pynq, write the calibration file."""
    ap = argparse.ArgumentParser(description="Measure this board's PL->DDR bandwidth with the DDR probe.")
    ap.add_argument("kit", nargs="?", default=kit_dir or ".", help="the calibration kit (default: here)")
    ap.add_argument("-o", "--output", help="calibration file (default: calibration-<board>.json)")
    ap.add_argument("--device", default="auto", choices=["auto", "pynq", "emu"])
    ap.add_argument("--bytes-per-port", type=int, default=DEFAULT_BYTES)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--head-row-bytes", type=int, default=HEAD_ROW_BYTES,
                    help="the LM head run's row in bytes: the model's hidden size for its int8 head "
                         f"(default {HEAD_ROW_BYTES})")
    ap.add_argument("--shares", help="the weight ports' shares of the shares run, e.g. 9:7:7:9 (default: "
                                     "in proportion to the rates the weights-together run measured)")
    ap.add_argument("--force", action="store_true", help="replace an existing calibration file")
    a = ap.parse_args(argv)
    shares = parse_shares(a.shares)
    kit = pk.ProbeKit.open(a.kit)
    out = Path(a.output or f"calibration-{kit.board}.json")
    if out.exists() and not a.force:
        raise EdgeLLMError(f"{out} exists; pass --force to replace it")
    check_options(kit, a.bytes_per_port, a.repeat, a.timeout, a.head_row_bytes)
    check_shares(shares, kit.weight_ports)
    dev, emulated, mhz = open_device(kit, a.device)
    try:
        rec = calibrate(kit, dev, emulated=emulated, clock_mhz=mhz, bytes_per_port=a.bytes_per_port,
                        repeat=a.repeat, timeout_s=a.timeout, head_row_bytes=a.head_row_bytes, shares=shares)
    finally:
        dev.close()
    write_record(out, rec, a.force)
    print("\n".join(summary_lines(rec)))
    print(f"calibration written to {out}; on a host: edgellm estimate --board {kit.board} --measured {out}")
    return 0
