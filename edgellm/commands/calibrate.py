"""`edgellm calibrate`: the calibration kit that measures the user's own board (docs/performance.md,
"Measuring your board").

    edgellm calibrate --board B [-o DIR] [--weight-ports N] [--clock MHZ] [--force]   write the kit
    edgellm calibrate KIT [-o FILE] [--device auto|emu|pynq] [--bytes-per-port N] [--repeat K]
                          [--timeout S] [--head-row-bytes N] [--force]               run it

Writing: the DDR probe as a small project (HLS, Vitis HLS and Vivado Tcl, the board script). Running: the
probe on the board through pynq (here, or a remote board over PYNQ_REMOTE_DEVICES) or its C simulation
(`--device emu`: checks the kit; measures nothing, the file is marked emulated), then the calibration file
that `edgellm estimate --measured` and `edgellm compile --measured` read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer


def _write_kit(board: str | None, out: Path | None, weight_ports: int | None, clock: float | None,
               force: bool) -> None:
    from edgellm.boards import load_board
    from edgellm.compiler.calibrate.kit import write_kit

    b = load_board(board or "kv260")
    dest = write_kit(b, out or Path(f"edgellm-out/calibrate-{b.name}"), weight_ports, clock, force)
    typer.echo(f"calibration kit for {b.display_name} written to {dest}")
    typer.echo(f"next: build it (README.md), run python3 run_calibration.py on the board; or check it here: "
               f"edgellm calibrate {dest} --device emu")


def _run_kit(kit_dir: Path, board: str | None, out: Path | None, device: str, bytes_per_port: int | None,
             repeat: int, timeout: float, head_row_bytes: int | None, force: bool,
             shares: tuple[int, ...] | None = None) -> None:
    from edgellm.boards import board_name
    from edgellm.errors import EdgeLLMError
    from edgellm.runtime import calibrate as cal
    from edgellm.runtime.probe_kit import ProbeKit
    from edgellm.runtime.pynq_device import on_board

    kit = ProbeKit.open(kit_dir)
    if board is not None and board_name(board) != kit.board:
        raise EdgeLLMError(f"{kit_dir} is a kit for {kit.board}, not {board}")
    dest = out or Path(f"calibration-{kit.board}.json")
    if dest.exists() and not force:
        raise EdgeLLMError(f"{dest} exists; pass --force to replace it")
    if device not in ("auto", "emu", "pynq"):
        raise EdgeLLMError(f"--device {device!r}: auto, emu or pynq")
    emu = device == "emu" or device == "auto" and not on_board()
    nbytes = bytes_per_port
    if nbytes is None:
        nbytes = cal.EMULATOR_BYTES if emu else cal.DEFAULT_BYTES
    row = cal.HEAD_ROW_BYTES if head_row_bytes is None else head_row_bytes
    cal.check_options(kit, nbytes, repeat, timeout, row)
    cal.check_shares(shares, kit.weight_ports)
    dev, emulated, mhz = cal.open_device(kit, device)
    from edgellm.commands.progress import Status

    try:
        with Status(f"measuring {kit.board}'s PL->DDR bandwidth ({'C simulation' if emulated else 'board'})"):
            rec = cal.calibrate(kit, dev, emulated=emulated, clock_mhz=mhz, bytes_per_port=nbytes,
                                repeat=repeat, timeout_s=timeout, head_row_bytes=row, shares=shares)
    finally:
        dev.close()
    cal.write_record(dest, rec, force)
    typer.echo("\n".join(cal.summary_lines(rec)))
    typer.echo(f"calibration written to {dest}" + (" (emulated: C simulation measures nothing; estimate "
                                                   "--measured takes it only with --allow-emulated)"
                                                   if emulated else ""))


def calibrate_cmd(
    kit: Annotated[Path | None, typer.Argument(help="A calibration kit to run (omit to write one).")] = None,
    board: Annotated[str | None, typer.Option("--board", "-b", help="Board to write a kit for "
                                              "(default kv260); with KIT: the board it must be for.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Writing: the kit directory (default "
                                             "edgellm-out/calibrate-BOARD). Running: the calibration file "
                                             "(default calibration-BOARD.json).")] = None,
    weight_ports: Annotated[int | None, typer.Option("--weight-ports", help="Weight ports of the probe, 1..4 "
                                                     "(default: the board's HP ports, at most 4).")] = None,
    clock: Annotated[float | None, typer.Option("--clock", help="The probe's PL clock in MHz (default: the "
                                                "board's).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto (pynq on a board, else emu), emu or "
                                        "pynq.")] = "auto",
    bytes_per_port: Annotated[int | None, typer.Option(
        "--bytes-per-port", help="Bytes each port moves per run (default 16 MiB; 256 KiB on the "
                                 "emulator).")] = None,
    repeat: Annotated[int, typer.Option("--repeat", help="Starts per port set (the median is kept).")] = 3,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for each start.")] = 10.0,
    head_row_bytes: Annotated[int | None, typer.Option(
        "--head-row-bytes", help="The LM head run's row in bytes: the model's hidden size for the int8 head "
                                 "(bitnet_b1_58-large 1536, 2B-4T 2560; default 2048).")] = None,
    shares: Annotated[str | None, typer.Option(
        "--shares", help="The weight ports' shares of the shares run, e.g. 9:7:7:9 (a design's "
                         "port_shares; default: in proportion to the rates the weights-together run "
                         "measured).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing kit or calibration "
                                        "file.")] = False,
) -> None:
    """Write a kit that measures a board's PL->DDR bandwidth, or run one and write the calibration file."""
    from edgellm.errors import EdgeLLMError

    if kit is None:
        used = [name for name, v in (("--device", device != "auto"), ("--bytes-per-port", bytes_per_port),
                                     ("--repeat", repeat != 3), ("--timeout", timeout != 10.0),
                                     ("--head-row-bytes", head_row_bytes is not None),
                                     ("--shares", shares is not None)) if v]
        if used:
            raise EdgeLLMError(f"{', '.join(used)}: only when running a kit (edgellm calibrate KIT)")
        if clock is not None and (isinstance(clock, bool) or not math.isfinite(clock)):
            raise EdgeLLMError(f"--clock must be a finite number of MHz, got {clock}")
        _write_kit(board, out, weight_ports, clock, force)
        return
    if weight_ports is not None or clock is not None:
        raise EdgeLLMError("--weight-ports and --clock shape a kit when writing it (edgellm calibrate "
                           "--board B)")
    from edgellm.runtime.calibrate_plan import parse_shares

    _run_kit(kit, board, out, device, bytes_per_port, repeat, timeout, head_row_bytes, force,
             parse_shares(shares))


def register(app: typer.Typer) -> None:
    """Add `edgellm calibrate`."""
    app.command("calibrate")(calibrate_cmd)
