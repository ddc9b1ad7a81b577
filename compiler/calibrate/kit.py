"""Write a calibration kit: the DDR probe as a small project, built like a compiled project.

    manifest.json          schema edgellm.calibration-kit/1: board, the probe's design (ports, widths,
                           clock), interface (registers, each bundle's PS port and DDR path), AXI
                           settings, tool versions, every file with its sha256 (a closed set)
    hls/                   ddr_probe.h, the generated config/top/prototype, csim_entry.cpp, tb_top.cpp,
                           run_hls.tcl (compiler/hls_tcl.py, the accelerator's AxiSettings)
    vivado/build.tcl       the accelerator's block design generator (compiler/vivado_tcl.py): the same
                           PS ports by the same port plan, the probe in place of the accelerator
    edgellm_ddr_probe.hwh  generated, in the slot where the build puts Vivado's (not listed)
    run_calibration.py     the board side: numpy + pynq, with python/edgellm/ (the runtime it needs)
    README.md

Written into a hidden `.DIR.partial` beside DIR, then renamed: a failed write leaves no kit behind; an
existing DIR is replaced only with force, and only when it is a kit holding nothing foreign.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import edgellm
import edgellm.runtime
from edgellm.boards import Board
from edgellm.compiler import hls_tcl, hwh, outdir
from edgellm.compiler.calibrate import codegen
from edgellm.compiler.design import DesignParams
from edgellm.compiler.manifest import tool_versions
from edgellm.compiler.vivado_tcl import port_assignment, write_vivado_tcl
from edgellm.errors import EdgeLLMError
from edgellm.runtime import probe_kit as pk
from edgellm.runtime import project_files as pf
from edgellm.runtime.calibrate_plan import HEAD_ROW_BYTES

# The runtime the board script needs (numpy + pynq only): (folder under python/edgellm, module file)
KIT_PYTHON = (("", "__init__.py"), ("", "errors.py"), ("runtime", "__init__.py"), ("runtime", "device.py"),
              ("runtime", "pynq_device.py"), ("runtime", "pynq_remote.py"), ("runtime", "project_files.py"),
              ("runtime", "manifest_schema.py"), ("runtime", "layout.py"), ("runtime", "probe_kit.py"),
              ("runtime", "calibrate_plan.py"), ("runtime", "calibrate_session.py"),
              ("runtime", "calibrate_record.py"), ("runtime", "calibrate.py"), ("runtime", "jsonfile.py"),
              ("runtime", "port_shares.py"))
BOARD_SCRIPT = f'''"""Measure this board's PL->DDR bandwidth with the calibration kit (numpy and pynq only).

    python3 run_calibration.py [-o calibration-BOARD.json] [--device auto|pynq|emu] [--bytes-per-port N]
                               [--repeat K] [--timeout S] [--head-row-bytes N] [--shares A:B:C:D]
                               [--force]

--head-row-bytes: the LM head run's row in bytes, the hidden size of the model the file will price (its
int8 head reads row v at v * hidden bytes: 1536 for bitnet_b1_58-large, 2560 for BitNet-b1.58-2B-4T);
default {HEAD_ROW_BYTES}.
--shares: the weight ports' shares of the shares run (a design's port_shares, e.g. 9:7:7:9); default: in
proportion to the rates the weights-together run measured.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "python"))

from edgellm.errors import EdgeLLMError  # noqa: E402
from edgellm.runtime.calibrate import board_main  # noqa: E402

if __name__ == "__main__":
    try:
        sys.exit(board_main(kit_dir=HERE))
    except EdgeLLMError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
'''


def kit_design(board: Board, weight_ports: int | None = None, clock_mhz: float | None = None) -> DesignParams:
    """The probe's ports as the accelerator's on this board: weight ports at the HP width (as the DSE
    builds them), the data port at the same width, the board's PL clock unless `clock_mhz`."""
    n = min(board.hp_ports, codegen.MAX_WEIGHT_PORTS) if weight_ports is None else weight_ports
    clock = board.pl_clock_mhz if clock_mhz is None else clock_mhz
    if isinstance(clock, bool) or not isinstance(clock, (int, float)) or not 0 < clock <= 1000:
        raise EdgeLLMError(f"--clock must be a PL clock in (0, 1000] MHz, got {clock!r}")
    d = DesignParams(weight_ports=n, port_width_bits=board.hp_port_width_bits,
                     data_port_width_bits=board.hp_port_width_bits, clock_mhz=float(clock))
    codegen.check_design(d)
    return d


def _readme(board: Board, design: DesignParams, ports: list[tuple[str, str]]) -> str:
    wiring = "\n".join(f"- `{b}` -> {hp} ({board.ddr_path(hp)})" for b, hp in ports)
    return f"""# DDR calibration kit: {board.display_name}

The DDR probe (`edgellm_ddr_probe`) reads and writes DDR through the accelerator's m_axi bundles, widths
and burst settings ({design.weight_ports} weight ports of {design.port_width_bits} bits, the data port of
{design.data_port_width_bits} bits, {design.clock_mhz:g} MHz) and counts cycles per port:

{wiring}

1. Build (AMD Vitis HLS and Vivado 2024.1+): `cd hls && vitis_hls -f run_hls.tcl`, then
   `cd ../vivado && vivado -mode batch -source build.tcl`. This writes `edgellm_ddr_probe.bit` and
   `edgellm_ddr_probe.hwh` here.
2. Copy this folder to the board and run, in the PYNQ environment (as root, as PYNQ's notebooks run):
   `python3 run_calibration.py --head-row-bytes HIDDEN`. It writes `calibration-{board.name}.json` (GB/s
   per port alone and together, at the ports' rate shares -- each port moving its share of the bytes, as a
   design's TLMM tiles, LM head rows and low-bit gearbox split them --, with the data port writing, the LM
   head's rows; the PL clock the board gave; the date and tool versions). HIDDEN is the hidden size of
   the model you will estimate: its int8
   LM head reads rows of that many bytes (1536 for bitnet_b1_58-large, 2560 for BitNet-b1.58-2B-4T;
   without the option, {HEAD_ROW_BYTES}); estimate and compile note a file measured at other rows.
   From a host with pynq: `PYNQ_REMOTE_DEVICES=BOARD edgellm calibrate THIS_FOLDER --device pynq
   --head-row-bytes HIDDEN`.
3. On the host: `edgellm estimate --board {board.name} --measured calibration-{board.name}.json` (and
   `edgellm compile --measured ...`) projects with the measured bandwidth as the central figure.

`edgellm calibrate THIS_FOLDER --device emu` runs the probe's C simulation instead: it checks the kit,
but C simulation cannot measure bandwidth (the file is marked emulated). Files are listed in
manifest.json with their sha256; do not add any.
"""


def _foreign(out: Path) -> str | None:
    """Why out may not be replaced (not a kit, or a file it does not list), or None."""
    try:
        m = pk.read_kit_manifest(out)
        tree = pf.scan(out, m["interface"]["ip_name"])
    except EdgeLLMError as e:
        return str(e)
    return next((f"{rel} is not listed in its manifest.json" for rel in tree if rel not in m["files"]), None)


def _check_replaceable(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not force:
        raise EdgeLLMError(f"{out} exists; pass --force to replace it")
    if any(out.iterdir()):
        why = _foreign(out)
        if why:
            raise EdgeLLMError(f"{out} is not (only) a calibration kit: {why}; refusing to replace it")


def _install(work: Path, out: Path, force: bool) -> None:
    """Rename work to out (replacing an old kit); on failure the old kit stays in place."""
    _check_replaceable(out, force)
    old = out.parent / f".{out.name}.old"
    try:
        if out.exists():
            if old.exists():
                shutil.rmtree(old)
            out.rename(old)
        work.rename(out)
    except OSError as e:
        if old.exists() and not out.exists():
            old.rename(out)
        raise outdir.os_error(e, "cannot write the kit to", out) from None
    shutil.rmtree(old, ignore_errors=True)


def _write_files(work: Path, board: Board, design: DesignParams) -> dict[str, object]:
    """Everything but the manifest; returns the manifest's interface entry."""
    top = codegen.TOP
    codegen.generate_hls(work / "hls", design, board.part,
                         header=f"DDR probe, {board.name}, part {board.part}, {design.clock_mhz:g} MHz")
    write_vivado_tcl(work, board, design, top)
    regs = codegen.register_map(design.weight_ports)
    hwh.write_hwh(work / f"{top}.hwh", hwh.spec_for(board, design, top, regs))
    ports = port_assignment(board, design.weight_ports)
    src = {"": Path(edgellm.__file__).parent, "runtime": Path(edgellm.runtime.__file__).parent}
    for folder, name in KIT_PYTHON:
        dest = work / "python" / "edgellm" / folder / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src[folder] / name, dest)
    (work / "run_calibration.py").write_text(BOARD_SCRIPT)
    (work / "README.md").write_text(_readme(board, design, ports))
    return {"ip_name": top, "registers": regs, "bundles": [b for b, _ in ports],
            "ports": dict(ports), "ddr_paths": {b: board.ddr_path(hp) for b, hp in ports}}


def write_kit(board: Board, out: str | Path, weight_ports: int | None = None, clock_mhz: float | None = None,
              force: bool = False) -> Path:
    """Write the calibration kit for board into out; returns its path."""
    design = kit_design(board, weight_ports, clock_mhz)
    dest = outdir.resolve_out(str(out))
    _check_replaceable(dest, force)
    work = outdir.partial_dir(dest)
    try:
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        iface = _write_files(work, board, design)
        files = {rel: pf.sha256_file(work / rel) for rel in pf.scan(work, codegen.TOP)}
        manifest = {"schema": pk.KIT_SCHEMA,
                    "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "board": dataclasses.asdict(board), "design": dataclasses.asdict(design),
                    "interface": iface, "axi": dataclasses.asdict(hls_tcl.AxiSettings.for_design(design)),
                    "tools": tool_versions(), "files": files}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1))
        _install(work, dest, force)
    except OSError as e:
        raise outdir.os_error(e, "cannot write the kit to", dest) from None
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return dest
