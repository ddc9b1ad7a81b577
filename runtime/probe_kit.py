"""A calibration kit on disk (`edgellm calibrate --board B -o DIR`) and the DDR probe's host interface, the
Python twin of hw/include/edgellm/ddr_probe.h (tests/test_calibrate.py holds the two equal).

The kit is a closed set like a project (runtime/project_files.py): manifest.json (schema KIT_SCHEMA)
lists every file with its sha256; the outputs of a build (<ip>.bit, <ip>.hwh, hls/edgellm_hls, vivado/build,
report/build) may sit beside them unlisted. Board-side: numpy and the standard library only, Python 3.10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.runtime import jsonfile
from edgellm.runtime import project_files as pf
from edgellm.runtime.layout import MAX_STREAM_PORTS, PORT_WIDTHS
from edgellm.runtime.manifest_schema import C_IDENT, HEX64, MANIFEST

KIT_SCHEMA = "edgellm.calibration-kit/1"
IP_NAME = "edgellm_ddr_probe"
MAX_MANIFEST_BYTES = 1 << 20

# ddr_probe.h
MAGIC = 0x424F5250
VERSION = 2  # 2: the weight ports' row pattern (PD_ROW_BEATS, PD_ROW_STRIDE: the LM head's reads)
MAX_WEIGHT_PORTS = MAX_STREAM_PORTS  # the TLMM engine's stream ports (runtime/layout.py)
SLOTS = MAX_WEIGHT_PORTS + 1
DATA_SLOT = MAX_WEIGHT_PORTS
MAX_DESC = 64
MAX_BEATS = 1 << 26
PH_MAGIC, PH_VERSION, PH_BUF_BYTES, PH_STATUS, PH_STATUS_INDEX, PH_STATUS_VALUE = range(6)
PH_WORDS = 8
PD_ACTIVE, PD_DATA_WRITE, PD_SEED, PD_RESULT, PD_ROW_BEATS, PD_ROW_STRIDE, PD_PORTS = range(7)
PD_WORDS = PD_PORTS + 2 * SLOTS
PR_BEATS, PR_SUM, PR_CYCLE_LO, PR_CYCLE_HI = range(4)
PR_SLOT_WORDS = 4
PR_TOTAL_LO = PR_SLOT_WORDS * SLOTS
PR_TOTAL_HI = PR_TOTAL_LO + 1
PR_WORDS = PR_TOTAL_HI + 1
STATUS = ("none", "ok", "bad magic", "bad version", "header outside the buffer", "bad program",
          "a port the probe does not have", "bad data-port mode", "misaligned offset",
          "range outside the buffer", "a write over the header, the program or a result record",
          "rows that overlap, are not whole beats apart or do not divide the beats")
ST_NONE, ST_OK = 0, 1
HEADER_INDEX = 0xFFFFFFFF
WIDTHS = PORT_WIDTHS  # port widths the probe takes (compiler/calibrate/codegen.py)


class KitError(EdgeLLMError):
    """A calibration kit that is missing, malformed or not a closed set."""


@dataclass(frozen=True)
class KitInterface:
    """The probe's register interface (what EmulatorDevice, PynqDevice and the emulated board read)."""

    ip_name: str
    registers: dict[str, int]


@dataclass(frozen=True)
class ProbeKit:
    """An opened, checked calibration kit."""

    path: Path
    manifest: dict[str, Any]
    iface: KitInterface

    @property
    def board(self) -> str:
        return str(self.manifest["board"]["name"])

    @property
    def weight_ports(self) -> int:
        return int(self.manifest["design"]["weight_ports"])

    @property
    def beat_bytes(self) -> int:
        return int(self.manifest["design"]["port_width_bits"]) // 8

    @property
    def data_beat_bytes(self) -> int:
        return int(self.manifest["design"]["data_port_width_bits"]) // 8

    @property
    def clock_mhz(self) -> float:
        return float(self.manifest["design"]["clock_mhz"])

    @property
    def ports(self) -> dict[str, str]:
        """m_axi bundle -> the PS slave port it is connected to (w0.., data)."""
        return dict(self.manifest["interface"]["ports"])

    @property
    def ddr_paths(self) -> dict[str, str]:
        """m_axi bundle -> its port's path into the DDR controller (boards/*.toml ddr_paths)."""
        return dict(self.manifest["interface"]["ddr_paths"])

    @property
    def bundles(self) -> list[str]:
        return [f"w{i}" for i in range(self.weight_ports)] + ["data"]

    @staticmethod
    def open(path: str | Path, check_hashes: bool = True) -> ProbeKit:
        """Read DIR/manifest.json, check it and the closed set of files (and their sha256)."""
        p = Path(path)
        m = read_kit_manifest(p)
        pf.check_tree(p, m["files"], m["interface"]["ip_name"])
        if check_hashes:
            pf.check_hashes(p, m["files"])
        regs = {k: int(v) for k, v in m["interface"]["registers"].items()}
        return ProbeKit(p, m, KitInterface(m["interface"]["ip_name"], regs))


def is_kit(p: Path) -> bool:
    """p holds a calibration kit's manifest (by its schema; ProbeKit.open checks the rest)."""
    mf = Path(p) / MANIFEST
    try:
        with pf.open_regular(mf) as f:
            m = jsonfile.loads(f.read(MAX_MANIFEST_BYTES).decode("utf-8"))
    except (EdgeLLMError, OSError, ValueError):
        return False
    return isinstance(m, dict) and m.get("schema") == KIT_SCHEMA


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise KitError(f"{where}: {what}")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def read_kit_manifest(p: Path) -> dict[str, Any]:
    """p/manifest.json parsed and checked as a calibration kit's (KitError naming the field)."""
    mf = p / MANIFEST
    if not p.is_dir():
        raise KitError(f"calibration kit {p} does not exist (edgellm calibrate --board B -o {p})")
    if not mf.is_file() or mf.is_symlink():
        raise KitError(f"{p} is not a calibration kit: {MANIFEST} is missing or not a regular file")
    with pf.open_regular(mf) as f:
        raw = f.read(MAX_MANIFEST_BYTES + 1)
    _need(len(raw) <= MAX_MANIFEST_BYTES, str(mf), "larger than a kit manifest can be")
    try:
        m = jsonfile.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise KitError(f"{mf}: not valid JSON ({' '.join(str(e).split())[:200]})") from None
    w = str(mf)
    _need(isinstance(m, dict) and m.get("schema") == KIT_SCHEMA, w,
          f"not a calibration kit (schema {m.get('schema') if isinstance(m, dict) else None!r}, "
          f"expected {KIT_SCHEMA!r})")
    for key in ("board", "design", "interface", "files"):
        _need(isinstance(m.get(key), dict), w, f"field {key!r} must be an object")
    b, d, i = m["board"], m["design"], m["interface"]
    _need(isinstance(b.get("name"), str) and C_IDENT.fullmatch(b["name"]) is not None, w, "board.name")
    _need(_number(b.get("ddr_peak_gbps")) and b["ddr_peak_gbps"] > 0, w, "board.ddr_peak_gbps must be > 0")
    n = d.get("weight_ports")
    _need(type(n) is int and 1 <= n <= MAX_WEIGHT_PORTS, w,
          f"design.weight_ports must be 1..{MAX_WEIGHT_PORTS}")
    for k in ("port_width_bits", "data_port_width_bits"):
        _need(d.get(k) in WIDTHS, w, f"design.{k} must be one of {WIDTHS}")
    _need(_number(d.get("clock_mhz")) and 0 < d["clock_mhz"] <= 1000, w,
          "design.clock_mhz must be in (0, 1000]")
    _need(isinstance(i.get("ip_name"), str) and C_IDENT.fullmatch(i["ip_name"]) is not None, w,
          "interface.ip_name must be a C identifier")
    regs = i.get("registers")
    bundles = [f"w{k}" for k in range(n)] + ["data"]
    _need(isinstance(regs, dict) and set(regs) == {*bundles, "hdr_off", "prog_off", "n_desc"}
          and all(type(v) is int and 0x10 <= v < 0x10000 and v % 4 == 0 for v in regs.values()), w,
          f"interface.registers must map {', '.join(bundles)}, hdr_off, prog_off, n_desc to offsets")
    for k in ("ports", "ddr_paths"):
        v = i.get(k)
        _need(isinstance(v, dict) and set(v) == set(bundles)
              and all(isinstance(x, str) and x for x in v.values()),
              w, f"interface.{k} must name a port for each of {', '.join(bundles)}")
    _need(all(isinstance(k, str) and isinstance(v, str) and HEX64.fullmatch(v)
              for k, v in m["files"].items()), w, "files must map paths to sha256 hex digests")
    return m


@dataclass(frozen=True)
class Layout:
    """Where a calibration puts things in its one buffer: the control page (header, program, result
    records), then one region per weight port, one for the data port's reads, one for its writes."""

    n_desc: int
    weight_ports: int
    region_bytes: int
    hdr_off: int = 0
    prog_off: int = 64

    @property
    def results_off(self) -> int:
        return self.prog_off + 4 * PD_WORDS * self.n_desc

    @property
    def control_bytes(self) -> int:
        end = self.results_off + 4 * PR_WORDS * self.n_desc
        return -(-end // 4096) * 4096

    def region(self, slot: int, write: bool = False) -> int:
        """Byte offset of weight port `slot`'s region, or of the data port's read (or write) region."""
        k = self.weight_ports + int(write) if slot == DATA_SLOT else slot
        return self.control_bytes + k * self.region_bytes

    @property
    def total_bytes(self) -> int:
        return self.control_bytes + (self.weight_ports + 2) * self.region_bytes

    def desc_off(self, i: int) -> int:
        return self.prog_off + 4 * PD_WORDS * i

    def result_off(self, i: int) -> int:
        return self.results_off + 4 * PR_WORDS * i


def header_words(buf_bytes: int) -> np.ndarray:
    """The header the host writes (status words cleared)."""
    h = np.zeros(PH_WORDS, np.uint32)
    h[PH_MAGIC], h[PH_VERSION], h[PH_BUF_BYTES] = MAGIC, VERSION, buf_bytes
    return h


def descriptor(slots: dict[int, tuple[int, int]], write: bool, seed: int, result_off: int,
               row_beats: int = 0, row_stride: int = 0) -> np.ndarray:
    """One descriptor: slots {slot: (byte offset, beats)} move, the data port writing when `write`; the
    weight ports in rows of `row_beats` beats `row_stride` bytes apart when row_beats > 0."""
    d = np.zeros(PD_WORDS, np.uint32)
    d[PD_ROW_BEATS], d[PD_ROW_STRIDE] = row_beats, row_stride
    for s, (off, beats) in slots.items():
        d[PD_ACTIVE] |= 1 << s
        d[PD_PORTS + 2 * s], d[PD_PORTS + 2 * s + 1] = off, beats
    d[PD_DATA_WRITE], d[PD_SEED], d[PD_RESULT] = int(write), seed & 0xFFFFFFFF, result_off
    return d


def status_text(words: np.ndarray) -> str:
    """The probe's status words as a sentence."""
    st, index, value = (int(x) for x in words[:3])
    what = STATUS[st] if st < len(STATUS) else f"status {st}"
    where = "the header" if index == HEADER_INDEX else f"descriptor {index}"
    return f"{what} ({where}, value {value})"


def decode_result(words: np.ndarray) -> tuple[list[tuple[int, int, int]], int]:
    """A result record: per slot (beats, word sum, done cycle), and the run's cycles."""
    w = [int(x) for x in words[:PR_WORDS]]
    slots = []
    for s in range(SLOTS):
        r = s * PR_SLOT_WORDS
        slots.append((w[r + PR_BEATS], w[r + PR_SUM], w[r + PR_CYCLE_LO] | w[r + PR_CYCLE_HI] << 32))
    return slots, w[PR_TOTAL_LO] | w[PR_TOTAL_HI] << 32


def pattern(seed: int, words: int) -> np.ndarray:
    """What the data port writes: word i of its region = seed + i (mod 2^32)."""
    return (np.arange(words, dtype=np.uint64) + seed).astype(np.uint32)


def word_sum(region: np.ndarray) -> int:
    """The probe's checksum: the sum of the region's little-endian 32-bit words, mod 2^32."""
    return int(region.view("<u4").sum(dtype=np.uint64)) & 0xFFFFFFFF
