"""A calibration file (runtime/calibrate.py FORMAT) as the performance model's central bandwidth, for
`edgellm estimate --measured FILE` and `edgellm compile --measured FILE`.

The figures replace the central entry of the board's ranges (boards/*.toml; the low and high ends stay
the board file's, widened to include the measurement): `ddr_pl_fraction` from the highest aggregate the
probe reached (all PL streams together; a lower bound of what the DDR gives), `shared_path_gbps` from
the weight streams that share a path into the DDR controller, `cci_stream_gbps` from a stream through
the CCI, `port_stream_gbps` from a weight stream alone on its path (all the kit's streams running), each
where the kit measured it; `head_stream_ratio` (the kit's LM head rows over its weight
streams, the same ports) prices the LM head's row pattern (cost/ddr.py), measured at the file's
`head_row_bytes` rows: where that is not the model's head row (head_row_note), estimate and compile say so
in a note and still apply the ratio. The board's `sources["measured"]` names the file, and
compiler/estimate.py prints it as the central scenario's assumption. An emulated file (C simulation:
the ports' ideal rates, not a measurement) is refused unless `allow_emulated`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgellm.boards import Board
from edgellm.errors import EdgeLLMError
from edgellm.runtime import jsonfile
from edgellm.runtime.calibrate import FORMAT
from edgellm.runtime.layout import MAX_PORT_SHARES

if TYPE_CHECKING:
    from edgellm.compiler.design import DesignParams
    from edgellm.models.config import ModelConfig

MAX_FILE_BYTES = 16 << 20
PEAK_SLACK = 1.01  # a measured aggregate above the DDR peak by more than this is not a measurement
MAX_CLOCK_MHZ = 1000.0
# The head's rows against sequential streams on the same ports: more than this is not a measurement of a
# pattern (the sequential streams were disturbed, or the file was edited).
MAX_HEAD_RATIO = 1.5
# Measured fields an older file (or a project compiled from one) may lack.
OPTIONAL_FIELDS = frozenset({"head_stream_ratio", "head_row_bytes", "port_stream_gbps", "shares",
                             "shares_gbps"})


class CalibrationFileError(EdgeLLMError):
    """A calibration file that cannot be used (malformed, another board, emulated, impossible figures)."""


@dataclass(frozen=True)
class Measured:
    """What a calibration file gives the model (GB/s = 1e9 bytes/s)."""

    path: str
    board: str
    emulated: bool
    date: str
    clock_mhz: float
    ddr_pl_gbps: float  # the highest aggregate measured (all PL streams together)
    weights_gbps: float  # the kit's weight ports together
    shared_path_gbps: float | None = None  # the weight streams on one shared path, together
    cci_stream_gbps: float | None = None  # one stream through the CCI
    weight_ports: int = 0  # the kit's
    port_width_bits: int = 0
    head_stream_ratio: float | None = None  # the LM head's rows over the weight streams (older files: None)
    head_row_bytes: int | None = None  # the row the head run read (older files: None)
    port_stream_gbps: float | None = None  # a weight stream alone on its path (older files: None)
    # the weight ports together, each moving its share of the bytes (the shares run; older files: None)
    shares: tuple[int, ...] | None = None
    shares_gbps: float | None = None

    def source(self) -> str:
        """The central scenario's assumption: which figures were measured, where and when."""
        got = [f"all PL streams {self.ddr_pl_gbps:.2f} GB/s"]
        if self.shared_path_gbps is not None:
            got.append(f"shared path {self.shared_path_gbps:.2f} GB/s")
        if self.cci_stream_gbps is not None:
            got.append(f"CCI stream {self.cci_stream_gbps:.2f} GB/s")
        if self.port_stream_gbps is not None:
            got.append(f"lone stream {self.port_stream_gbps:.2f} GB/s")
        if self.shares_gbps is not None and self.shares:
            got.append(f"weights at {':'.join(map(str, self.shares))} shares {self.shares_gbps:.2f} GB/s")
        if self.head_stream_ratio is not None:
            row = "" if self.head_row_bytes is None else f" ({self.head_row_bytes}-byte rows)"
            got.append(f"LM head rows {self.head_stream_ratio:.3f} x the weight streams{row}")
        tag = "EMULATED (C simulation, not a measurement)" if self.emulated else "measured on the board"
        return f"{tag} by {self.path} on {self.date} at {self.clock_mhz:g} MHz: {', '.join(got)}"

    def to_config(self) -> dict[str, Any]:
        """A plain dict for BuildConfig.measured (serializable; from_config reads it back)."""
        return dataclasses.asdict(self)

    @staticmethod
    def from_config(d: Any) -> Measured:
        """The inverse of to_config, checked."""
        names = {f.name for f in dataclasses.fields(Measured)}
        if not isinstance(d, dict) or not names - OPTIONAL_FIELDS <= set(d) <= names:
            raise CalibrationFileError(f"measured bandwidth settings {d!r} are not a calibration's")
        m = Measured(**{**d, "shares": None if d.get("shares") is None else tuple(d["shares"])})
        if m.head_row_bytes is not None:
            _row_bytes(m.head_row_bytes, m.path)
        for name in ("clock_mhz", "ddr_pl_gbps", "weights_gbps"):
            _positive(getattr(m, name), name, m.path)
        for name in ("shared_path_gbps", "cci_stream_gbps", "port_stream_gbps", "head_stream_ratio",
                     "shares_gbps"):
            if getattr(m, name) is not None:
                _positive(getattr(m, name), name, m.path)
        _shares(m.shares, m.weight_ports, m.path)
        return m

    def apply(self, board: Board) -> Board:
        """The board with the measured figures as the central bandwidth (and named as its source)."""
        if board.name != self.board:
            raise CalibrationFileError(f"{self.path} was measured on {self.board}, not {board.name}; "
                                       f"calibrate {board.name} with edgellm calibrate --board {board.name}")
        peak = board.ddr_peak_gbps
        for name in ("ddr_pl_gbps", "weights_gbps", "shared_path_gbps", "cci_stream_gbps",
                     "port_stream_gbps"):
            v = getattr(self, name)
            if v is not None and v > peak * PEAK_SLACK and not self.emulated:
                raise CalibrationFileError(f"{self.path}: {name} {v:g} GB/s exceeds the {board.name}'s DDR "
                                           f"peak of {peak:g} GB/s; not a measurement")
        frac = min(self.ddr_pl_gbps / peak, 1.0)  # an emulated file's ideal rates may exceed the peak
        out = dataclasses.replace(board, ddr_pl_fraction=_central(board.ddr_pl_fraction, frac),
                                  head_stream_ratio=self.head_stream_ratio,
                                  sources={**board.sources, "measured": self.source()})
        if self.shared_path_gbps is not None and board.shared_path_gbps is not None:
            shared = _central(board.shared_path_gbps, self.shared_path_gbps)
            out = dataclasses.replace(out, shared_path_gbps=shared)
        if self.cci_stream_gbps is not None and board.cci_stream_gbps is not None:
            cci = _central(board.cci_stream_gbps, self.cci_stream_gbps)
            out = dataclasses.replace(out, cci_stream_gbps=cci)
        if self.port_stream_gbps is not None:  # a board file without the figure takes the measurement alone
            v = self.port_stream_gbps
            out = dataclasses.replace(out, port_stream_gbps=_central(board.port_stream_gbps or (v, v, v), v))
        return out


def _central(triple: tuple[float, float, float], v: float) -> tuple[float, float, float]:
    """[low, central, high] with v as central, the ends widened to include it."""
    return (min(triple[0], v), v, max(triple[2], v))


def _shares(v: Any, ports: int, where: str) -> tuple[int, ...] | None:
    """figures.shares: None, or one positive integer per weight port of the kit."""
    if v is None:
        return None
    if (not isinstance(v, (list, tuple)) or len(v) != ports
            or any(type(x) is not int or not 1 <= x <= MAX_PORT_SHARES for x in v)):
        raise CalibrationFileError(f"{where}: figures.shares must list a share 1..{MAX_PORT_SHARES} for each "
                                   f"of the kit's {ports} weight ports, got {v!r}")
    return tuple(v)


def _positive(v: Any, name: str, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise CalibrationFileError(f"{where}: {name} must be a finite number > 0, got {v!r}")
    return float(v)


def _row_bytes(v: Any, where: str) -> int:
    if type(v) is not int or v <= 0:
        raise CalibrationFileError(f"{where}: head_row_bytes must be a whole number of bytes > 0, got {v!r}")
    return v


def _reject_constant(name: str) -> Any:
    raise CalibrationFileError(f"{name} is not a number a calibration file may hold")


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise CalibrationFileError(f"{path}: no such calibration file (edgellm calibrate KIT writes "
                                   "one)") from None
    except OSError as e:
        raise CalibrationFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise CalibrationFileError(f"{path}: larger than a calibration file can be")
    try:
        data = jsonfile.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except CalibrationFileError as e:
        raise CalibrationFileError(f"{path}: {e}") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise CalibrationFileError(f"{path}: not valid JSON ({' '.join(str(e).split())[:160]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CalibrationFileError(f"{path}: not an edgellm calibration file (format {FORMAT!r})")
    return data


def read_measured(path: str | Path, allow_emulated: bool = False) -> Measured:
    """The calibration file at path, checked (CalibrationFileError, one line, naming the field)."""
    p = Path(path)
    d = _load(p)
    w = str(p)
    fig, kit = d.get("figures"), d.get("kit")
    if not isinstance(fig, dict) or not isinstance(kit, dict):
        raise CalibrationFileError(f"{w}: 'figures' and 'kit' must be objects")
    if not isinstance(d.get("board"), str) or not d["board"]:
        raise CalibrationFileError(f"{w}: 'board' must name the board")
    if not isinstance(d.get("emulated"), bool):
        raise CalibrationFileError(f"{w}: 'emulated' must be true or false")
    if not isinstance(d.get("date"), str):
        raise CalibrationFileError(f"{w}: 'date' must be a string")
    clock = _positive(d.get("clock_mhz"), "clock_mhz", w)
    if clock > MAX_CLOCK_MHZ:
        raise CalibrationFileError(f"{w}: clock_mhz {clock:g} is not a PL clock")
    ports, width = kit.get("weight_ports"), kit.get("port_width_bits")
    if type(ports) is not int or not 1 <= ports <= 4 or type(width) is not int or width <= 0:
        raise CalibrationFileError(f"{w}: kit.weight_ports (1..4) and kit.port_width_bits are required")
    opt = {k: None if fig.get(k) is None else _positive(fig.get(k), f"figures.{k}", w)
           for k in ("shared_path_gbps", "cci_stream_gbps", "port_stream_gbps", "head_stream_ratio",
                     "shares_gbps")}
    opt["shares"] = _shares(fig.get("shares"), ports, w)
    ratio, row = opt["head_stream_ratio"], d.get("head_row_bytes")
    if ratio is not None and ratio > MAX_HEAD_RATIO:
        raise CalibrationFileError(f"{w}: figures.head_stream_ratio {ratio:g}: the LM head's rows cannot "
                                   f"outrun the same ports' sequential streams {MAX_HEAD_RATIO:g}-fold")
    if row is not None:
        _row_bytes(row, w)
    m = Measured(path=w, board=d["board"], emulated=d["emulated"], date=d["date"], clock_mhz=clock,
                 ddr_pl_gbps=_positive(fig.get("ddr_pl_gbps"), "figures.ddr_pl_gbps", w),
                 weights_gbps=_positive(fig.get("weights_gbps"), "figures.weights_gbps", w),
                 weight_ports=ports, port_width_bits=width, head_row_bytes=row, **opt)
    if m.weights_gbps > m.ddr_pl_gbps * PEAK_SLACK:
        raise CalibrationFileError(f"{w}: figures.weights_gbps {m.weights_gbps:g} exceeds ddr_pl_gbps "
                                   f"{m.ddr_pl_gbps:g} (the highest aggregate measured)")
    if m.emulated and not allow_emulated:
        raise CalibrationFileError(f"{w} is emulated (C simulation counts one beat per cycle per port: it "
                                   "measures nothing); run the kit on the board, or pass --allow-emulated")
    return m


def model_check(m: Measured, board: Board) -> tuple[float, float]:
    """(the model's weight-stream GB/s for the kit's arrangement on the measured board, the measured
    figure): how well the model's few parameters reproduce the measurement."""
    from edgellm.compiler.cost.ddr import bandwidth
    from edgellm.compiler.design import DesignParams

    p = DesignParams(weight_ports=m.weight_ports, port_width_bits=m.port_width_bits,
                     data_port_width_bits=m.port_width_bits, clock_mhz=m.clock_mhz)
    return bandwidth(m.apply(board), p).weights / 1e9, m.weights_gbps


def for_command(path: Path | None, allow_emulated: bool, boards: list[str],
                clock_mhz: float | None) -> tuple[Measured | None, float | None]:
    """`--measured FILE` of estimate / compile: the file checked against the one board asked for, and the
    design clock (the file's PL clock unless `clock_mhz` was given). (None, clock_mhz) without a file."""
    if path is None:
        if allow_emulated:
            raise CalibrationFileError("--allow-emulated goes with --measured FILE")
        return None, clock_mhz
    m = read_measured(path, allow_emulated)
    if boards != [m.board]:
        raise CalibrationFileError(f"{path} was measured on {m.board}: use it with --board {m.board} "
                                   f"(not {', '.join(boards)})")
    return m, m.clock_mhz if clock_mhz is None else clock_mhz


def shares_check(m: Measured, board: Board) -> tuple[float, float] | None:
    """(the model's weight-stream GB/s for the kit's ports at the shares run's shares, the measured figure)
    on the measured board; None when the file has no shares run."""
    from edgellm.compiler.cost.ddr import bandwidth
    from edgellm.compiler.design import DesignParams

    if m.shares_gbps is None or not m.shares:
        return None
    shares = () if len(set(m.shares)) == 1 else m.shares
    p = DesignParams(weight_ports=m.weight_ports, port_width_bits=m.port_width_bits,
                     data_port_width_bits=m.port_width_bits, clock_mhz=m.clock_mhz, port_shares=shares)
    return bandwidth(m.apply(board), p).weights / 1e9, m.shares_gbps


def note(m: Measured, board: Board) -> str:
    """One line: where the central bandwidth comes from, and how well the model reproduces the
    measured weight stream with it (and the weights at the ports' shares, where the file measured them)."""
    model, got = model_check(m, board)
    fit = (f"the model gives {model:.2f} GB/s of weights for the kit's {m.weight_ports} ports, measured "
           f"{got:.2f} ({100 * (model / got - 1):+.1f}%)")
    at = shares_check(m, board)
    if at is not None:
        fit += (f"; at {':'.join(map(str, m.shares))} shares {at[0]:.2f}, measured {at[1]:.2f} "
                f"({100 * (at[0] / at[1] - 1):+.1f}%)")
    return f"{board.name} central bandwidth: {m.source()}; {fit}"


def head_row_info(m: Measured, cfg: ModelConfig, p: DesignParams) -> dict[str, Any]:
    """`estimate --json`'s record of head_row_note: the file's head ratio and the row it was measured at
    (None: not recorded), the design's head row (None: the head is not on the fabric), whether the ratio
    is applied, and the note's text (None when there is none)."""
    from edgellm.compiler.cost.lm_head import row_bytes

    line = head_row_note(m, cfg, p)
    return {"file": m.path, "head_stream_ratio": m.head_stream_ratio,
            "ratio_applied": m.head_stream_ratio is not None and p.lm_head_on_fabric,
            "calibration_head_row_bytes": m.head_row_bytes,
            "design_head_row_bytes": row_bytes(cfg, p.lm_head_bits) if p.lm_head_on_fabric else None,
            "note": None if line is None else line.removeprefix("note: ")}


def head_row_note(m: Measured, cfg: ModelConfig, p: DesignParams) -> str | None:
    """`note: ...` when the file's head ratio was measured at rows other than the design's LM head rows
    (cost/lm_head.py row_bytes), with the kit run that measures this model's; None when they agree, the
    file has no head ratio or the head is not on the fabric (the ratio is then not used).

    A note, not a refusal: the ratio at another row is still a measurement of the same ports reading rows
    (bursts of a row's beats, one row per port in turn), the file's other figures do not depend on the
    row, and without the file the head is priced at a ratio of 1; the model applies it as measured."""
    from edgellm.compiler.cost.lm_head import row_bytes

    if m.head_stream_ratio is None or not p.lm_head_on_fabric:
        return None
    want = row_bytes(cfg, p.lm_head_bits)
    if m.head_row_bytes == want:
        return None
    at = "rows of a size it does not record" if m.head_row_bytes is None else f"{m.head_row_bytes}-byte rows"
    return (f"note: {m.path}'s LM head ratio was measured at {at}; {cfg.name}'s head rows are {want} bytes "
            f"(hidden {cfg.hidden_size} at {p.lm_head_bits} bits), applied as measured; to measure this "
            f"model's: edgellm calibrate KIT --head-row-bytes {want}")
