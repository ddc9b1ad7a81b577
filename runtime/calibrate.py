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
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import edgellm
from edgellm.errors import EdgeLLMError
from edgellm.runtime import probe_kit as pk
from edgellm.runtime import project_files as pf
from edgellm.runtime.device import Device, check_timeout, pointer_registers

FORMAT = "edgellm.calibration/1"
CCI_PATH = "CCI"  # boards.CCI_PATH: the path of the ports that reach DDR through the CCI
DEFAULT_BYTES = 16 << 20  # per port and run on a board: 4 ms at 4 GB/s, a million cycles or more
EMULATOR_BYTES = 256 << 10  # the same on the emulator (the C simulation moves every beat in software)
HEAD_RUN = "LM head rows"
HEAD_ROW_BYTES = 2048  # the head run's row: an int8 row of a 2048-wide model (--head-row-bytes)
MAX_BUFFER = 1 << 31  # PYNQ.remote allocates at most an int32 of bytes; 32-bit offsets anyway
EMULATED_NOTE = ("emulated: C simulation runs the probe's processes one after another and counts one beat "
                 "per cycle per port, so these are the ports' ideal rates, not a measurement of DDR")


class CalibrationError(EdgeLLMError):
    """The probe or its results disagree with what was asked (a broken kit, bitstream or board)."""


@dataclass(frozen=True)
class RunSpec:
    """One port set: the slots that move data (weight ports 0..n-1, probe_kit.DATA_SLOT) and whether the
    data port writes."""

    name: str
    slots: tuple[int, ...]
    write: bool = False
    head: bool = False  # the weight ports read the LM head's rows (head_rows)


def bundle(slot: int) -> str:
    return "data" if slot == pk.DATA_SLOT else f"w{slot}"


def run_plan(kit: pk.ProbeKit) -> list[RunSpec]:
    """The port sets a calibration runs, in order."""
    n = kit.weight_ports
    runs = [RunSpec(f"w{i} alone", (i,)) for i in range(n)]
    runs += [RunSpec("data reading alone", (pk.DATA_SLOT,)),
             RunSpec("data writing alone", (pk.DATA_SLOT,), True)]
    paths = kit.ddr_paths
    groups: dict[str, list[int]] = {}
    for i in range(n):
        groups.setdefault(paths[f"w{i}"], []).append(i)
    for path, slots in groups.items():
        if path != CCI_PATH and 1 < len(slots) < n:
            runs.append(RunSpec(f"{'+'.join(bundle(s) for s in slots)} together ({path})", tuple(slots)))
    runs.append(RunSpec("weights together", tuple(range(n))))
    runs.append(RunSpec(HEAD_RUN, tuple(range(n)), head=True))
    runs.append(RunSpec("weights + data writing", (*range(n), pk.DATA_SLOT), True))
    return runs


def head_rows(lay: pk.Layout, n: int, row_bytes: int) -> tuple[int, int]:
    """The head run over the n weight regions taken as one array of rows: (rows each port reads, the
    stride between a port's rows in bytes). Port k's rows are k, k + n, ... from lay.region(0)."""
    return lay.region_bytes // row_bytes, n * row_bytes


def check_options(kit: pk.ProbeKit, bytes_per_port: int, repeat: int, timeout_s: float,
                  head_row_bytes: int = HEAD_ROW_BYTES) -> None:
    """The run's options, before a device is opened: bytes per port a multiple of 4096 the probe can
    move in one descriptor, 1..100 repeats, a finite timeout > 0, a head row of whole weight-port beats
    no longer than a port's bytes (EdgeLLMError otherwise)."""
    beat = max(kit.beat_bytes, kit.data_beat_bytes)
    if (type(bytes_per_port) is not int or bytes_per_port < 4096 or bytes_per_port % 4096
            or bytes_per_port // beat > pk.MAX_BEATS):
        raise EdgeLLMError(f"bytes per port {bytes_per_port}: a multiple of 4096 from 4096 to "
                           f"{pk.MAX_BEATS * beat} (the probe's beats per run)")
    if type(repeat) is not int or not 1 <= repeat <= 100:
        raise EdgeLLMError(f"repeat must be an integer 1..100, got {repeat!r}")
    check_timeout(timeout_s)
    if (type(head_row_bytes) is not int or head_row_bytes < kit.beat_bytes or head_row_bytes % kit.beat_bytes
            or head_row_bytes > bytes_per_port):
        raise EdgeLLMError(f"head row bytes {head_row_bytes!r}: a multiple of the weight ports' "
                           f"{kit.beat_bytes}-byte beat, at most the bytes per port ({bytes_per_port})")
    total = pk.Layout(len(run_plan(kit)), kit.weight_ports, bytes_per_port).total_bytes
    if total >= MAX_BUFFER:
        raise EdgeLLMError(f"{total} bytes of buffer: at most {MAX_BUFFER - 1} (fewer bytes per port)")


@dataclass
class Sample:
    """One start of one port set: cycles per active bundle, the run's cycles, seconds waited."""

    cycles: dict[str, int]
    total: int
    wall_s: float


class ProbeSession:
    """The probe's buffer on a device, loaded with its program; `run(i)` starts descriptor i once."""

    def __init__(self, kit: pk.ProbeKit, dev: Device, runs: list[RunSpec], bytes_per_port: int,
                 timeout_s: float, head_row_bytes: int = HEAD_ROW_BYTES) -> None:
        self.kit, self.dev, self.runs, self.timeout_s = kit, dev, runs, check_timeout(timeout_s)
        self.head_row_bytes = head_row_bytes
        self.lay = pk.Layout(len(runs), kit.weight_ports, bytes_per_port)
        self.beats = {s: bytes_per_port // (kit.data_beat_bytes if s == pk.DATA_SLOT else kit.beat_bytes)
                      for s in (*range(kit.weight_ports), pk.DATA_SLOT)}
        self.buf = dev.alloc(self.lay.total_bytes)
        a = self.buf.array
        rng = np.random.default_rng(0x5EED)
        self.sums = {}
        for s in self.beats:
            off = self.lay.region(s)
            a[off:off + bytes_per_port] = rng.integers(0, 256, bytes_per_port, dtype=np.uint8)
            self.sums[s] = pk.word_sum(a[off:off + bytes_per_port])
        self.buf.view(self.lay.hdr_off, pk.PH_WORDS, np.uint32)[:] = pk.header_words(self.buf.nbytes)
        self.want: list[dict[int, tuple[int, int]]] = []  # per run: slot -> (beats, word sum)
        self.port_bytes: list[int] = []  # per run: the bytes each of its ports moves
        for i, r in enumerate(runs):
            if r.head:
                d = self._head_descriptor(i, r)
            else:
                slots = {s: (self.lay.region(s, r.write), self.beats[s]) for s in r.slots}
                d = pk.descriptor(slots, r.write, self.seed(i), self.lay.result_off(i))
                self.want.append({s: (self.beats[s], self.sums[s]) for s in r.slots})
                self.port_bytes.append(bytes_per_port)
            self.buf.view(self.lay.desc_off(i), pk.PD_WORDS, np.uint32)[:] = d
        dev.sync_to_device(self.buf)
        regs = kit.iface.registers
        for off in pointer_registers(regs).values():
            dev.write_reg64(off, self.buf.physical_address)
        dev.write_reg(regs["hdr_off"], self.lay.hdr_off)

    def _head_descriptor(self, i: int, spec: RunSpec) -> np.ndarray:
        """Run i reading the LM head's rows (head_rows) over spec's weight ports; records what each must
        move and its word sum."""
        n, row, beat = self.kit.weight_ports, self.head_row_bytes, self.kit.beat_bytes
        rows, stride = head_rows(self.lay, n, row)
        base = self.lay.region(0)
        table = self.buf.array[base:base + rows * stride].reshape(rows, stride)
        slots, want = {}, {}
        for k in spec.slots:
            slots[k] = (base + k * row, rows * row // beat)
            want[k] = (rows * row // beat, pk.word_sum(np.ascontiguousarray(table[:, k * row:(k + 1) * row])))
        self.want.append(want)
        self.port_bytes.append(rows * row)
        return pk.descriptor(slots, False, self.seed(i), self.lay.result_off(i), row // beat, stride)

    @staticmethod
    def seed(i: int) -> int:
        return 0x1000_0000 + 0x10_0001 * i

    def run(self, i: int) -> Sample:
        """Start descriptor i once, wait (bounded), check everything it reports; its Sample."""
        spec, lay, dev = self.runs[i], self.lay, self.dev
        st_off = lay.hdr_off + 4 * pk.PH_STATUS
        st = self.buf.view(st_off, 3, np.uint32)
        st[:] = 0
        res = self.buf.view(lay.result_off(i), pk.PR_WORDS, np.uint32)
        res[:] = 0
        dev.sync_to_device(self.buf, st_off, 12)
        dev.sync_to_device(self.buf, lay.result_off(i), 4 * pk.PR_WORDS)
        dev.write_reg(self.kit.iface.registers["prog_off"], lay.desc_off(i))
        dev.write_reg(self.kit.iface.registers["n_desc"], 1)
        t0 = time.perf_counter()
        dev.start()
        dev.wait_done(self.timeout_s)
        wall = time.perf_counter() - t0
        dev.sync_from_device(self.buf, st_off, 12)
        if int(st[0]) != pk.ST_OK:
            raise CalibrationError(f"{dev.name}: the probe refused run {spec.name!r}: {pk.status_text(st)}")
        dev.sync_from_device(self.buf, lay.result_off(i), 4 * pk.PR_WORDS)
        slots, total = pk.decode_result(res)
        cycles = self._check(spec, slots, total, self.seed(i), self.want[i])
        return Sample(cycles, total, wall)

    def _check(self, spec: RunSpec, slots: list[tuple[int, int, int]], total: int, seed: int,
               want_run: dict[int, tuple[int, int]]) -> dict[str, int]:
        """What the probe reports against what was asked; cycles per active bundle."""
        where = f"{self.dev.name}: run {spec.name!r}"
        cycles = {}
        for s, (beats, got_sum, cyc) in enumerate(slots):
            if s not in spec.slots:
                if beats or got_sum:
                    raise CalibrationError(f"{where}: port {bundle(s)} moved {beats} beats outside its set")
                continue
            if beats != want_run[s][0]:
                raise CalibrationError(f"{where}: {bundle(s)} moved {beats} beats, {want_run[s][0]} were "
                                       "asked")
            words = self.lay.region_bytes // 4
            want = (pk.word_sum(pk.pattern(seed, words))
                    if s == pk.DATA_SLOT and spec.write else want_run[s][1])
            if got_sum != want:
                raise CalibrationError(f"{where}: {bundle(s)}'s word sum 0x{got_sum:08x} is not its region's "
                                       f"0x{want:08x}: the probe did not move the bytes it reports")
            if cyc < beats:
                raise CalibrationError(f"{where}: {bundle(s)} counted {cyc} cycles for {beats} beats (at "
                                       "most one beat per cycle)")
            cycles[bundle(s)] = cyc
        if total < max(cycles.values()):
            raise CalibrationError(f"{where}: the run's {total} cycles end before its ports' {cycles}")
        if spec.write:
            off = self.lay.region(pk.DATA_SLOT, True)
            self.dev.sync_from_device(self.buf, off, self.lay.region_bytes)
            got = self.buf.view(off, self.lay.region_bytes // 4, np.uint32)
            bad = np.flatnonzero(got != pk.pattern(seed, got.size))
            if bad.size:
                raise CalibrationError(f"{where}: the data port's region differs from what it wrote at word "
                                       f"{int(bad[0])} ({bad.size} words)")
        return cycles


def _gbps(nbytes: int, cycles: int, mhz: float) -> float:
    return nbytes / (cycles / (mhz * 1e6)) / 1e9


def summarize(spec: RunSpec, samples: list[Sample], port_bytes: int, mhz: float) -> dict[str, Any]:
    """A port set's record: its samples and the median GB/s per bundle and for the run (each port moving
    port_bytes)."""
    per = {b: statistics.median(_gbps(port_bytes, s.cycles[b], mhz) for s in samples)
           for b in samples[0].cycles}
    runs = [_gbps(port_bytes * len(s.cycles), s.total, mhz) for s in samples]
    return {"name": spec.name,
            "ports": {bundle(s): "write" if s == pk.DATA_SLOT and spec.write else "read" for s in spec.slots},
            "bytes_per_port": port_bytes,
            "samples": [{"cycles": s.cycles, "total_cycles": s.total, "wall_s": round(s.wall_s, 6)}
                        for s in samples],
            "gbps": {b: round(v, 4) for b, v in per.items()},
            "total_gbps": round(statistics.median(runs), 4),
            "total_gbps_range": [round(min(runs), 4), round(max(runs), 4)]}


def figures(kit: pk.ProbeKit, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the performance model takes (compiler/calibrate/measured.py), from the runs."""
    by = {r["name"]: r for r in runs}
    n = kit.weight_ports
    weights, both = by["weights together"], by["weights + data writing"]
    paths = kit.ddr_paths
    streams = weights["gbps"]
    shared: dict[str, float] = {}
    for path in sorted({paths[f"w{i}"] for i in range(n)} - {CCI_PATH}):
        on = [f"w{i}" for i in range(n) if paths[f"w{i}"] == path]
        if len(on) > 1:
            shared[path] = round(len(on) * min(streams[b] for b in on), 4)
    cci = [streams[f"w{i}"] for i in range(n) if paths[f"w{i}"] == CCI_PATH]
    if not cci and paths["data"] == CCI_PATH:
        cci = [both["gbps"]["data"]]
    alone = {b: by[f"{b} alone"]["gbps"][b] for b in (f"w{i}" for i in range(n))}
    alone.update({"data read": by["data reading alone"]["gbps"]["data"],
                  "data write": by["data writing alone"]["gbps"]["data"]})
    head = by.get(HEAD_RUN)
    return {"weights_gbps": weights["total_gbps"], "all_gbps": both["total_gbps"],
            "head_gbps": head["total_gbps"] if head else None,
            "head_stream_ratio": round(head["total_gbps"] / weights["total_gbps"], 4) if head else None,
            "ddr_pl_gbps": max(weights["total_gbps"], both["total_gbps"]),
            "shared_path_gbps": min(shared.values()) if shared else None, "shared_paths_gbps": shared,
            "cci_stream_gbps": round(min(cci), 4) if cci else None,
            "weight_streams_gbps": streams, "port_alone_gbps": alone}


def _timing(kit: pk.ProbeKit) -> dict[str, Any] | None:
    """The kit's Vivado timing summary (report/build/vivado/timing.json), when it was built."""
    p = kit.path / "report" / "build" / "vivado" / "timing.json"
    try:
        with pf.open_regular(p) as f:
            data = json.loads(f.read(1 << 16).decode("utf-8"))
    except (EdgeLLMError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _pynq_version() -> str | None:
    mod = sys.modules.get("pynq")
    return str(getattr(mod, "__version__", "unknown")) if mod else None


def calibrate(kit: pk.ProbeKit, dev: Device, *, emulated: bool, clock_mhz: float, bytes_per_port: int,
              repeat: int = 3, timeout_s: float = 10.0,
              head_row_bytes: int = HEAD_ROW_BYTES) -> dict[str, Any]:
    """Run every port set `repeat` times on dev; the calibration record (FORMAT)."""
    check_options(kit, bytes_per_port, repeat, timeout_s, head_row_bytes)
    if not clock_mhz > 0:
        raise EdgeLLMError(f"the PL clock must be > 0 MHz, got {clock_mhz!r}")
    specs = run_plan(kit)
    sess = ProbeSession(kit, dev, specs, bytes_per_port, timeout_s, head_row_bytes)
    samples = [[sess.run(i) for _ in range(repeat)] for i in range(len(specs))]
    runs = [summarize(s, x, sess.port_bytes[i], clock_mhz)
            for i, (s, x) in enumerate(zip(specs, samples, strict=True))]
    cycles = sum(s.total for x in samples for s in x)
    wall = sum(s.wall_s for x in samples for s in x)
    return {
        "format": FORMAT, "board": kit.board, "emulated": emulated, "note": EMULATED_NOTE if emulated else "",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device": dev.name,
        "clock_mhz": round(clock_mhz, 4), "clock_mhz_requested": kit.clock_mhz,
        # cycles over the seconds the host waited (start and polling included): a lower bound of the clock
        "clock_mhz_from_counter": None if emulated or wall <= 0 else round(cycles / wall / 1e6, 2),
        "tools": {"edgellm": edgellm.__version__, "python": platform.python_version(),
                  "numpy": np.__version__, "pynq": _pynq_version(), "kit": kit.manifest.get("tools", {})},
        "kit": {"ip": kit.iface.ip_name, "weight_ports": kit.weight_ports,
                "port_width_bits": 8 * kit.beat_bytes, "data_port_width_bits": 8 * kit.data_beat_bytes,
                "ports": kit.ports, "ddr_paths": kit.ddr_paths, "axi": kit.manifest.get("axi", {}),
                "timing": _timing(kit)},
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


def write_record(path: Path, record: dict[str, Any], force: bool = False) -> Path:
    """Write the record as JSON to path (a temporary file beside it, then renamed); an existing file is
    replaced only with force."""
    path = Path(path)
    if path.exists() and not force:
        raise EdgeLLMError(f"{path} exists; pass --force to replace it")
    if path.is_dir():
        raise EdgeLLMError(f"{path} is a folder, not a file")
    try:
        text = json.dumps(record, indent=1, allow_nan=False) + "\n"
    except ValueError as e:
        raise CalibrationError(f"the calibration holds a number JSON cannot carry ({e})") from None
    pf.write_atomic(path, text.encode())
    return path


def summary_lines(record: dict[str, Any]) -> list[str]:
    """A few lines for a person: the clock, each port set's GB/s, the figures the model takes."""
    head = f"{record['board']}: PL clock {record['clock_mhz']:g} MHz, {record['device']}"
    lines = [head + (" -- EMULATED, not a measurement" if record["emulated"] else "")]
    for r in record["runs"]:
        ports = ", ".join(f"{b} {v:.2f}" for b, v in r["gbps"].items())
        lines.append(f"  {r['name']:<34} {r['total_gbps']:7.2f} GB/s  ({ports})")
    f = record["figures"]
    extra = "".join(f", {label} {f[k]:.2f}" for k, label in (("shared_path_gbps", "shared path"),
                                                              ("cci_stream_gbps", "CCI stream"),
                                                              ("head_stream_ratio", "LM head rows x"))
                    if f.get(k) is not None)
    lines.append(f"  model: weights {f['weights_gbps']:.2f} GB/s, all PL streams {f['ddr_pl_gbps']:.2f}"
                 f"{extra}")
    return lines


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
                    help="the LM head run's row: the model's hidden size for an int8 head")
    ap.add_argument("--force", action="store_true", help="replace an existing calibration file")
    a = ap.parse_args(argv)
    kit = pk.ProbeKit.open(a.kit)
    out = Path(a.output or f"calibration-{kit.board}.json")
    if out.exists() and not a.force:
        raise EdgeLLMError(f"{out} exists; pass --force to replace it")
    check_options(kit, a.bytes_per_port, a.repeat, a.timeout, a.head_row_bytes)
    dev, emulated, mhz = open_device(kit, a.device)
    try:
        rec = calibrate(kit, dev, emulated=emulated, clock_mhz=mhz, bytes_per_port=a.bytes_per_port,
                        repeat=a.repeat, timeout_s=a.timeout, head_row_bytes=a.head_row_bytes)
    finally:
        dev.close()
    write_record(out, rec, a.force)
    print("\n".join(summary_lines(rec)))
    print(f"calibration written to {out}; on a host: edgellm estimate --board {kit.board} --measured {out}")
    return 0
