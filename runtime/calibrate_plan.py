"""What a calibration runs (runtime/calibrate.py): the port sets in order (run_plan), the LM head run's
rows (head_rows) and the run's options, checked before a device is opened (check_options). Board-side:
numpy and pynq only, Python 3.10.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgellm.errors import EdgeLLMError
from edgellm.runtime import probe_kit as pk
from edgellm.runtime.device import check_timeout
from edgellm.runtime.layout import MAX_PORT_SHARES

CCI_PATH = "CCI"  # boards.CCI_PATH: the path of the ports that reach DDR through the CCI
DEFAULT_BYTES = 16 << 20  # per port and run on a board: 4 ms at 4 GB/s, a million cycles or more
EMULATOR_BYTES = 256 << 10  # the same on the emulator (the C simulation moves every beat in software)
HEAD_RUN = "LM head rows"
# The weight ports together, each moving bytes in proportion to the rate it showed in "weights together"
# (runtime/port_shares.py's rule, as the compiler gives its designs' ports shares; or the shares asked for):
# what a design whose ports carry shares (TLMM tiles, LM head rows, the low-bit gearbox) streams at.
SHARES_RUN = "weights at their rates' shares"
# The head run's row unless --head-row-bytes says otherwise: an int8 row of a 2048-wide model. The design's
# int8 head reads row v at v * hidden bytes (lm_head_load.h), so a file that prices a model's head is run
# with its hidden size (bitnet_b1_58-large 1536, BitNet-b1.58-2B-4T 2560).
HEAD_ROW_BYTES = 2048
MAX_BUFFER = 1 << 31  # PYNQ.remote allocates at most an int32 of bytes; 32-bit offsets anyway


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
    at_shares: bool = False  # each weight port moves its share of the bytes (SHARES_RUN)


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
    if n > 1:
        runs.append(RunSpec(SHARES_RUN, tuple(range(n)), at_shares=True))
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


def parse_shares(text: str | None) -> tuple[int, ...] | None:
    """--shares A:B:C:D as integers (None: not given); EdgeLLMError when it is not that (check_shares
    checks them against a kit)."""
    if text is None:
        return None
    try:
        return tuple(int(x) for x in text.split(":"))
    except ValueError:
        raise EdgeLLMError(f"--shares must be integers separated by ':' (e.g. 9:7:7:9), got "
                           f"{text!r}") from None


def check_shares(shares: tuple[int, ...] | None, n: int) -> None:
    """--shares: one positive integer per weight port of the kit, summing to at most MAX_PORT_SHARES."""
    if shares is None:
        return
    if len(shares) != n or any(type(x) is not int or x < 1 for x in shares) or sum(shares) > MAX_PORT_SHARES:
        raise EdgeLLMError(f"--shares must give each of the kit's {n} weight ports a positive integer share "
                           f"(summing to at most {MAX_PORT_SHARES}), got {':'.join(map(str, shares))}")
