"""Board descriptions: one TOML data file per board (the single source of truth) and a typed loader.

Code never branches on a board name; it reads a `Board`. Each TOML file holds the flat fields below
plus a `[sources]` table citing the datasheet or manual section for every figure (see SOURCE_KEYS).

PL->DDR bandwidth is a range, not one figure: `ddr_pl_fraction`, `shared_path_gbps` and
`cci_stream_gbps` give [low, central, high] values (docs/performance.md "Bandwidth"), and a Board
carries the `scenario` its projections use (`with_scenario`; "central" by default).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgellm.errors import BoardError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 fallback
    import tomli as tomllib

BOARD_DIR = Path(__file__).resolve().parent
PS_FAMILIES = ("zynqmp", "zynq7")
PEAK_TOLERANCE = 0.01  # ddr_peak_gbps must equal width/8 * MT/s within 1%
SCENARIOS = ("low", "central", "high")  # the ends and middle of every projected range
CCI_PATH = "CCI"  # ddr_paths entry of a port that reaches the DDR controller through the CCI

# TOML key -> expected Python type(s). Every key is required.
_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "display_name": (str,), "part": (str,), "board_part": (str,), "ps": (str,),
    "lut": (int,), "ff": (int,), "dsp": (int,), "bram36": (int,), "uram": (int,),
    "ddr_bytes": (int,), "ddr_type": (str,), "ddr_width_bits": (int,), "ddr_mts": (int,),
    "ddr_peak_gbps": (int, float), "ddr_pl_fraction": (list,), "ddr_paths": (list,),
    "hp_ports": (int,), "hp_port_width_bits": (int,), "hp_port_names": (list,), "control_port": (str,),
    "pl_clock_mhz": (int, float), "pynq_versions": (list,), "os_reserved_bytes": (int,),
}

# Which [sources] entry cites which field(s).
SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "part": ("part",), "board_part": ("board_part",), "ps": ("ps",),
    "resources": ("lut", "ff", "dsp", "bram36", "uram"),
    "ddr": ("ddr_bytes", "ddr_type", "ddr_width_bits", "ddr_mts", "ddr_peak_gbps"),
    "ddr_bandwidth": ("ddr_pl_fraction", "shared_path_gbps", "cci_stream_gbps", "port_stream_gbps"),
    "ddr_paths": ("ddr_paths",),
    "hp_ports": ("hp_ports", "hp_port_width_bits", "hp_port_names"),
    "control_port": ("control_port",), "pl_clock_mhz": ("pl_clock_mhz",),
    "pynq_versions": ("pynq_versions",), "os_reserved_bytes": ("os_reserved_bytes",),
}


@dataclass(frozen=True)
class Board:
    """A PYNQ-capable Zynq board: FPGA part, PL resources, DDR system, PS-PL ports, clocks."""

    name: str
    display_name: str
    part: str  # Vivado part string
    board_part: str  # Vivado board_part (board files must be installed)
    ps: str  # "zynqmp" (Zynq UltraScale+) or "zynq7" (Zynq-7000)
    lut: int
    ff: int
    dsp: int
    bram36: int
    uram: int
    ddr_bytes: int
    ddr_width_bits: int
    ddr_peak_gbps: float  # GB/s (1e9 bytes/s)
    ddr_pl_fraction: tuple[float, float, float]  # [low, central, high] share of the peak the PL's streams get
    hp_ports: int  # non-coherent high-performance PL->DDR slave ports
    hp_port_width_bits: int
    pl_clock_mhz: float
    pynq_versions: tuple[str, ...]
    os_reserved_bytes: int
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    ddr_type: str = ""
    ddr_mts: int = 0
    hp_port_names: tuple[str, ...] = ()  # HP ports first, then any extra (e.g. HPC) PL->DDR ports
    control_port: str = ""  # PS master port driving the accelerator's AXI-lite control
    ddr_paths: tuple[str, ...] = ()  # per hp_port_names entry: its path into the DDR controller
    shared_path_gbps: tuple[float, float, float] | None = None  # [l, c, h] all streams on one shared path
    cci_stream_gbps: tuple[float, float, float] | None = None  # [l, c, h] one stream through the CCI
    # [l, c, h] one weight stream alone on its path into the DDR controller (no other stream shares it);
    # None: only its port's beat rate limits it
    port_stream_gbps: tuple[float, float, float] | None = None
    # The LM head's row reads against sequential streams on the same ports, measured by the calibration
    # kit (compiler/calibrate/measured.py); None: 1, the head priced as the weight streams (cost/ddr.py)
    head_stream_ratio: float | None = None
    scenario: str = "central"  # which end of the ranges projections use (SCENARIOS)

    @property
    def ddr_achievable_gbps(self) -> float:
        """What all PL streams together can get from the DDR in this scenario (GB/s)."""
        return self.ddr_peak_gbps * self.pick(self.ddr_pl_fraction)

    def pick(self, values: tuple[float, float, float]) -> float:
        """The entry of a [low, central, high] figure for this board's scenario."""
        return values[SCENARIOS.index(self.scenario)]

    def with_scenario(self, scenario: str) -> Board:
        """This board with projections at the `scenario` end of every bandwidth range."""
        if scenario not in SCENARIOS:
            raise BoardError(f"unknown bandwidth scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        return dataclasses.replace(self, scenario=scenario)

    def ddr_path(self, port: str) -> str:
        """The path into the DDR controller of one of hp_port_names (its own name when not listed)."""
        i = self.hp_port_names.index(port)
        return self.ddr_paths[i] if i < len(self.ddr_paths) else port

    @property
    def ddr_available_bytes(self) -> int:
        """DDR left for the model after the OS reservation."""
        return self.ddr_bytes - self.os_reserved_bytes

    def resource(self, kind: str) -> int:
        """Count of a PL resource: 'lut', 'ff', 'dsp', 'bram36' or 'uram'."""
        return int(getattr(self, kind))


def _check(data: dict[str, Any], path: str | Path, file_name: str | None, cited: bool) -> None:
    for key, types in _FIELDS.items():
        if key not in data:
            raise BoardError(f"{path}: missing field {key!r}")
        v = data[key]
        if isinstance(v, bool) or not isinstance(v, types):
            want = " or ".join(t.__name__ for t in types)
            raise BoardError(f"{path}: field {key!r} must be {want}, got {v!r}")
    for key in ("pynq_versions", "hp_port_names"):
        if not data[key] or not all(isinstance(x, str) for x in data[key]):
            raise BoardError(f"{path}: field {key!r} must be a non-empty list of strings")
    for key in ("lut", "ff", "dsp", "bram36", "ddr_bytes", "ddr_width_bits", "ddr_mts", "ddr_peak_gbps",
                "hp_ports", "hp_port_width_bits", "pl_clock_mhz"):
        if data[key] <= 0:
            raise BoardError(f"{path}: field {key!r} must be positive, got {data[key]!r}")
    if data["uram"] < 0 or data["os_reserved_bytes"] < 0:
        raise BoardError(f"{path}: fields 'uram' and 'os_reserved_bytes' must be >= 0")
    if data["ps"] not in PS_FAMILIES:
        raise BoardError(f"{path}: field 'ps' must be one of {PS_FAMILIES}, got {data['ps']!r}")
    _check_bandwidth(data, path)
    if data["os_reserved_bytes"] >= data["ddr_bytes"]:
        raise BoardError(f"{path}: field 'os_reserved_bytes' must be below ddr_bytes")
    if len(data["hp_port_names"]) < data["hp_ports"]:
        raise BoardError(f"{path}: field 'hp_port_names' lists fewer than hp_ports={data['hp_ports']} ports")
    peak = data["ddr_width_bits"] / 8 * data["ddr_mts"] / 1000
    if abs(peak - data["ddr_peak_gbps"]) > PEAK_TOLERANCE * peak:
        raise BoardError(f"{path}: field 'ddr_peak_gbps' {data['ddr_peak_gbps']} disagrees with "
                         f"ddr_width_bits/8 * ddr_mts = {peak:.3f} GB/s")
    if file_name is not None and data["name"] != file_name:
        raise BoardError(f"{path}: field 'name' {data['name']!r} must match the file name {file_name!r}")
    if not cited:
        return
    src = data.get("sources")
    if not isinstance(src, dict):
        raise BoardError(f"{path}: missing [sources] table")
    for key in SOURCE_KEYS:
        if not isinstance(src.get(key), str) or not src[key].strip():
            raise BoardError(f"{path}: [sources] lacks a citation for {key!r}")


def _triple(data: dict[str, Any], key: str, path: str | Path,
            most: float | None) -> tuple[float, float, float]:
    """A [low, central, high] field: three numbers, 0 < low <= central <= high (<= most)."""
    v = data[key]
    if (not isinstance(v, list) or len(v) != 3
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
        raise BoardError(f"{path}: field {key!r} must be a list [low, central, high] of three numbers")
    lo, mid, hi = (float(x) for x in v)
    if not 0 < lo <= mid <= hi or (most is not None and hi > most):
        bound = f" <= {most:g}" if most is not None else ""
        raise BoardError(f"{path}: field {key!r} must satisfy 0 < low <= central <= high{bound}, got {v}")
    return lo, mid, hi


def _check_bandwidth(data: dict[str, Any], path: str | Path) -> None:
    """ddr_pl_fraction within (0, 1]; one ddr_paths entry per hp_port_names entry; the shared-path
    and CCI figures present exactly when some path is shared or is the CCI."""
    _triple(data, "ddr_pl_fraction", path, 1.0)
    paths, names = data["ddr_paths"], data["hp_port_names"]
    if len(paths) != len(names) or not all(isinstance(x, str) and x for x in paths):
        raise BoardError(f"{path}: field 'ddr_paths' must list one path name per hp_port_names entry")
    needs = {"shared_path_gbps": any(paths.count(x) > 1 for x in paths if x != CCI_PATH),
             "cci_stream_gbps": CCI_PATH in paths}
    for key, needed in needs.items():
        if needed and key not in data:
            raise BoardError(f"{path}: missing field {key!r} (ddr_paths has a shared path or the CCI)")
        if key in data:
            _triple(data, key, path, data["ddr_peak_gbps"])
    if "port_stream_gbps" in data:
        _triple(data, "port_stream_gbps", path, data["ddr_peak_gbps"])


def load_board_file(path: str | Path) -> Board:
    """Parse and validate one board TOML file; BoardError names the file and the field at fault."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError as e:
        raise BoardError(f"{p}: no such board file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise BoardError(f"{p}: cannot read: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise BoardError(f"{p}: malformed TOML: {e}") from e
    return board_from_data(data, p, p.stem)


def board_from_data(data: dict[str, Any], where: str | Path, file_name: str | None = None,
                    cited: bool = True) -> Board:
    """The Board of one board's fields (a TOML file's; a manifest's board section), checked: BoardError
    naming `where` and the field at fault. file_name: the name field must equal it; cited: [sources]
    must cite every figure."""
    _check(data, where, file_name, cited)
    src = data.get("sources")
    return Board(
        name=data["name"], display_name=data["display_name"], part=data["part"],
        board_part=data["board_part"], ps=data["ps"], lut=data["lut"], ff=data["ff"], dsp=data["dsp"],
        bram36=data["bram36"], uram=data["uram"], ddr_bytes=data["ddr_bytes"],
        ddr_width_bits=data["ddr_width_bits"], ddr_peak_gbps=float(data["ddr_peak_gbps"]),
        ddr_pl_fraction=_triple(data, "ddr_pl_fraction", where, 1.0),
        hp_ports=data["hp_ports"], hp_port_width_bits=data["hp_port_width_bits"],
        pl_clock_mhz=float(data["pl_clock_mhz"]), pynq_versions=tuple(data["pynq_versions"]),
        os_reserved_bytes=data["os_reserved_bytes"], sources=dict(src) if isinstance(src, dict) else {},
        ddr_type=data["ddr_type"], ddr_mts=data["ddr_mts"], hp_port_names=tuple(data["hp_port_names"]),
        control_port=data["control_port"], ddr_paths=tuple(data["ddr_paths"]),
        shared_path_gbps=_triple(data, "shared_path_gbps", where, None) if "shared_path_gbps" in data
        else None,
        cci_stream_gbps=_triple(data, "cci_stream_gbps", where, None) if "cci_stream_gbps" in data else None,
        port_stream_gbps=_triple(data, "port_stream_gbps", where, None) if "port_stream_gbps" in data
        else None)


def board_from_record(record: Any, where: str) -> Board:
    """The Board a compiled project's manifest recorded (dataclasses.asdict through JSON), with the board
    files' checks (a hand-edited `"pl_clock_mhz": "fast"` was a TypeError deep in the cost model), its
    scenario and measured LM-head ratio included."""
    where = f"{where} (board section)"
    if not isinstance(record, dict):
        raise BoardError(f"{where}: must be an object, got {type(record).__name__}")
    data = {k: v for k, v in record.items() if v is not None}  # asdict's None: a range the board lacks
    b = board_from_data(data, where, cited=False)
    ratio, scenario = data.get("head_stream_ratio"), data.get("scenario", "central")
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float))
                              or not 0 < ratio < float("inf")):
        raise BoardError(f"{where}: field 'head_stream_ratio' must be null or a number > 0, got {ratio!r}")
    if scenario not in SCENARIOS:
        raise BoardError(f"{where}: field 'scenario' must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
    ratio = None if ratio is None else float(ratio)
    return dataclasses.replace(b, head_stream_ratio=ratio, scenario=scenario)


def list_boards() -> list[str]:
    """Names of the shipped boards (the TOML files beside this module), sorted."""
    return sorted(p.stem for p in BOARD_DIR.glob("*.toml"))


def _spelling(name: str) -> str:
    """A board name as matched: lower case, without '-' and '_' (PYNQ-Z2, pynq-z2 and pynq_z2 alike)."""
    return name.lower().replace("-", "").replace("_", "")


def board_name(name: str) -> str:
    """The shipped board's name for `name`: its file name, or the product's spelling ("PYNQ-Z2",
    "Ultra96-V2"); BoardError listing the known boards if there is none."""
    known = list_boards()
    if name in known:
        return name
    match = [k for k in known if _spelling(k) == _spelling(name)]
    if len(match) != 1:
        raise BoardError(f"unknown board {name!r}; known boards: {', '.join(known)}")
    return match[0]


def load_board(name: str) -> Board:
    """The shipped board called `name` (board_name: the product's spelling too); BoardError listing the
    known boards if there is none."""
    return load_board_file(BOARD_DIR / f"{board_name(name)}.toml")


def load_all() -> list[Board]:
    """Every shipped board, in list_boards() order."""
    return [load_board(n) for n in list_boards()]
