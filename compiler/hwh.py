"""The hardware handoff (.hwh) of the block design vivado/build.tcl builds, and the check of a real one.

Vivado writes <ip>.hwh beside <ip>.bit on `edgellm build`; PYNQ's Overlay reads it for the IP's
address, range and register map. Before a build, `edgellm compile` writes a generated one in the same
place (a build-output slot: runtime/project_files.py; `edgellm build` replaces it), marked as generated
(the root's EDGELLM_GENERATED attribute and a comment), describing exactly what build.tcl asks Vivado
for: the PS with its PL clock, control master and HP slave ports, the HLS IP <ip>_0 at the family's
control base with a 64 KiB range, its s_axilite register map as Vitis HLS emits it for this top (CTRL,
GIER, IP_IER, IP_ISR at 0x00..0x0C, each 64-bit pointer as NAME_1 / NAME_2, each scalar as NAME), and
each m_axi bundle onto its DDR segment. `check_hwh` holds any .hwh, generated or real, against that
expectation (one line naming the first disagreement).
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgellm.boards import Board, board_from_record
from edgellm.compiler.design import DesignParams
from edgellm.compiler.ps_ports import PS_FAMILIES
from edgellm.compiler.vivado_tcl import port_assignment
from edgellm.errors import EdgeLLMError

GENERATED_ATTR = "EDGELLM_GENERATED"
CONTROL_RANGE = 0x1_0000  # build.tcl: assign_bd_address ... -range 64K
SCALARS = ("hdr_off", "prog_off", "n_desc")
CONTROL_REGS = (("CTRL", 0x00, "Control signals"), ("GIER", 0x04, "Global Interrupt Enable Register"),
                ("IP_IER", 0x08, "IP Interrupt Enable Register"),
                ("IP_ISR", 0x0C, "IP Interrupt Status Register"))
# (field, bit offset, width, access) of CTRL as Vitis HLS (2022.1 and later) reports it
CTRL_FIELDS = (("AP_START", 0, 1, "read-write"), ("AP_DONE", 1, 1, "read-only"),
               ("AP_IDLE", 2, 1, "read-only"), ("AP_READY", 3, 1, "read-only"),
               ("AP_CONTINUE", 4, 1, "read-write"),
               ("RESERVED_1", 5, 2, "read-only"), ("AUTO_RESTART", 7, 1, "read-write"),
               ("RESERVED_2", 8, 1, "read-only"), ("INTERRUPT", 9, 1, "read-only"),
               ("RESERVED_3", 10, 22, "read-only"))
# The DDR segment each family's HP ports see (build.tcl assigns only the low DDR segment)
DDR_LOW = {"zynqmp": (0x0000_0000, 0x7FFF_FFFF), "zynq7": (0x0000_0000, 0x3FFF_FFFF)}
SYSTEM_ARCH = {"zynqmp": "zynquplus", "zynq7": "zynq"}
IO_PLL_MHZ = {"zynqmp": 1500.0, "zynq7": 1000.0}  # the PL clocks' source: 33.333 MHz x 45, 50 MHz x 20


class HwhError(EdgeLLMError):
    """A .hwh that cannot be read or disagrees with the block design."""


@dataclass(frozen=True)
class HwhSpec:
    """What a .hwh of this project must say about the accelerator."""

    ip_name: str  # the HLS top (module type)
    base: int  # s_axi_control base address in the PS data space
    range: int  # its size in bytes
    registers: dict[str, int]  # hwh register name -> byte offset (control registers included)
    ps: str = "zynqmp"  # PS family (compiler/ps_ports.PS_FAMILIES)
    part: str = ""
    clock_mhz: float = 0.0
    bundles: tuple[tuple[str, str], ...] = ()  # (m_axi bundle, PS slave port)
    hp_width_bits: int = 128
    ddr: tuple[int, int] = DDR_LOW["zynqmp"]  # first and last address of the DDR segment the HP ports see

    @property
    def instance(self) -> str:
        """The IP's cell name in the block design."""
        return f"{self.ip_name}_0"


@dataclass(frozen=True)
class HwhInfo:
    """What a .hwh says about the accelerator."""

    path: Path
    generated: bool
    instance: str
    vlnv: str
    base: int
    range: int
    registers: dict[str, int]


def hwh_registers(manifest_registers: dict[str, int]) -> dict[str, int]:
    """The register names and offsets Vitis HLS reports in the .hwh for the top's s_axilite map."""
    out = {name: off for name, off, _ in CONTROL_REGS}
    for name, off in manifest_registers.items():
        if name in SCALARS:
            out[name] = int(off)
        else:  # a 64-bit m_axi pointer: low word NAME_1, high word NAME_2
            out[f"{name}_1"], out[f"{name}_2"] = int(off), int(off) + 4
    return out


def spec_for(board: Board, design: DesignParams, ip_name: str, registers: dict[str, int]) -> HwhSpec:
    """The .hwh expectation of a design on a board (registers: the manifest's interface map)."""
    fam = PS_FAMILIES[board.ps]
    return HwhSpec(ip_name=ip_name, base=fam.control_base, range=CONTROL_RANGE,
                   registers=hwh_registers(registers), ps=board.ps, part=board.part,
                   clock_mhz=float(design.clock_mhz),
                   bundles=tuple(port_assignment(board, design.weight_ports)),
                   hp_width_bits=board.hp_port_width_bits,
                   ddr=(DDR_LOW[board.ps][0], min(DDR_LOW[board.ps][1], board.ddr_bytes - 1)))


def spec_for_manifest(manifest: dict[str, Any]) -> HwhSpec:
    """The .hwh expectation of a compiled project, from its manifest's board, design and interface."""
    try:
        board = board_from_record(manifest["board"], "manifest.json")
        names = {f.name for f in dataclasses.fields(DesignParams)}
        design = DesignParams(**{k: v for k, v in manifest["design"].items() if k in names})
        iface = manifest["interface"]
        return spec_for(board, design, iface["ip_name"], dict(iface["registers"]))
    except (KeyError, TypeError, ValueError) as e:
        raise HwhError(f"the manifest does not describe the block design ({type(e).__name__}: {e})") from None


def _prop(parent: ET.Element, name: str, value: object) -> None:
    ET.SubElement(parent, "PROPERTY", NAME=name, VALUE=str(value))


def _register(regs: ET.Element, name: str, off: int, desc: str, access: str,
              fields: tuple[tuple[str, int, int, str], ...]) -> None:
    r = ET.SubElement(regs, "REGISTER", NAME=name)
    for k, v in (("DESCRIPTION", desc), ("ADDRESS_OFFSET", off), ("SIZE", 32), ("ACCESS", access),
                 ("IS_ENABLED", "true"), ("RESET_VALUE", 0)):
        _prop(r, k, v)
    fs = ET.SubElement(r, "FIELDS")
    for fname, bit, width, faccess in fields:
        f = ET.SubElement(fs, "FIELD", NAME=fname)
        for k, v in (("DESCRIPTION", f"Control signal {fname}" if name == "CTRL" else desc),
                     ("ADDRESS_OFFSET", bit), ("ACCESS", faccess), ("BIT_OFFSET", bit), ("BIT_WIDTH", width)):
            _prop(f, k, v)


def _ip_module(mods: ET.Element, spec: HwhSpec, fam_cell: str) -> None:
    """The HLS IP: register map, parameters, clock/reset/interrupt ports, its bus interfaces."""
    m = ET.SubElement(mods, "MODULE", FULLNAME=f"/{spec.instance}", HWVERSION="1.0", INSTANCE=spec.instance,
                      IPTYPE="PERIPHERAL", IS_ENABLE="1", MODCLASS="PERIPHERAL", MODTYPE=spec.ip_name,
                      VLNV=f"xilinx.com:hls:{spec.ip_name}:1.0")
    blocks = ET.SubElement(m, "ADDRESSBLOCKS")
    ab = ET.SubElement(blocks, "ADDRESSBLOCK", ACCESS="read-write", INTERFACE="s_axi_control", NAME="Reg",
                       RANGE=str(spec.range), USAGE="register")
    regs = ET.SubElement(ab, "REGISTERS")
    ctrl = dict((n, (o, d)) for n, o, d in CONTROL_REGS)
    for name, off in sorted(spec.registers.items(), key=lambda kv: kv[1]):
        if name in ctrl:
            flds = CTRL_FIELDS if name == "CTRL" else (("Enable" if name == "GIER" else "CHAN0_INT_EN", 0, 1,
                                                        "read-write"),)
            _register(regs, name, off, ctrl[name][1], "read-write", flds)
        else:
            arg = name.rsplit("_", 1)[0] if name[-2:] in ("_1", "_2") else name
            _register(regs, name, off, f"Data signal of {arg}", "write-only",
                      ((name, 0, 32, "write-only"),))
    params = ET.SubElement(m, "PARAMETERS")
    addr_bits = max(spec.registers.values(), default=0).bit_length() + 1
    for k, v in (("C_S_AXI_CONTROL_ADDR_WIDTH", addr_bits), ("C_S_AXI_CONTROL_DATA_WIDTH", 32),
                 ("clk_period", f"{1000.0 / spec.clock_mhz:g}" if spec.clock_mhz else "undef"),
                 ("C_S_AXI_CONTROL_BASEADDR", f"0x{spec.base:08X}"),
                 ("C_S_AXI_CONTROL_HIGHADDR", f"0x{spec.base + spec.range - 1:08X}")):
        ET.SubElement(params, "PARAMETER", NAME=k, VALUE=str(v))
    ports = ET.SubElement(m, "PORTS")
    clk = ET.SubElement(ports, "PORT", DIR="I", NAME="ap_clk", SIGIS="clk")
    ET.SubElement(ET.SubElement(clk, "CONNECTIONS"), "CONNECTION", INSTANCE=fam_cell, PORT="pl_clk0")
    ET.SubElement(ports, "PORT", DIR="I", NAME="ap_rst_n", SIGIS="rst")
    ET.SubElement(ports, "PORT", DIR="O", NAME="interrupt", SENSITIVITY="LEVEL_HIGH", SIGIS="INTERRUPT")
    bus = ET.SubElement(m, "BUSINTERFACES")
    ET.SubElement(bus, "BUSINTERFACE", BUSNAME="ctrl_sc_M00_AXI", DATAWIDTH="32", NAME="s_axi_control",
                  TYPE="SLAVE", VLNV="xilinx.com:interface:aximm:1.0")
    lo, hi = spec.ddr
    mm = ET.SubElement(m, "MEMORYMAP")
    for b, hp in spec.bundles:
        ET.SubElement(bus, "BUSINTERFACE", BUSNAME=f"{spec.instance}_m_axi_{b}", NAME=f"m_axi_{b}",
                      TYPE="MASTER", VLNV="xilinx.com:interface:aximm:1.0")
        ET.SubElement(mm, "MEMRANGE", ADDRESSBLOCK=f"{hp}_DDR_LOW", BASENAME="C_BASEADDR",
                      BASEVALUE=f"0x{lo:08X}", HIGHNAME="C_HIGHADDR", HIGHVALUE=f"0x{hi:08X}",
                      INSTANCE=fam_cell, IS_DATA="TRUE", IS_INSTRUCTION="TRUE",
                      MASTERBUSINTERFACE=f"m_axi_{b}", MEMTYPE="MEMORY", SLAVEBUSINTERFACE=hp)


def _divisors(src_mhz: float, want_mhz: float) -> tuple[int, int]:
    """Two 6-bit PL clock divisors whose product brings src_mhz closest to want_mhz (as PYNQ picks them)."""
    best = min(((a, b) for a in range(1, 64) for b in range(1, 64)),
               key=lambda ab: (abs(src_mhz / (ab[0] * ab[1]) - want_mhz), ab[1], ab[0]))
    return best


def _ps_parameters(spec: HwhSpec, board_ps: Any) -> dict[str, str]:
    """The PS parameters PYNQ reads: the four PL clocks (PL clock 0 at the design's rate from the IO PLL,
    the others off) and the used HP ports' widths."""
    zu = spec.ps == "zynqmp"
    src = IO_PLL_MHZ[spec.ps]
    out: dict[str, str] = {}
    for i in range(4):
        mhz = spec.clock_mhz if i == 0 else 100.0
        d0, d1 = _divisors(src, mhz)
        if zu:
            pre = f"PSU__CRL_APB__PL{i}_REF_CTRL__"
            out.update({f"PSU__FPGA_PL{i}_ENABLE": str(int(i == 0)), pre + "FREQMHZ": f"{mhz:g}",
                        pre + "ACT_FREQMHZ": f"{src / (d0 * d1):g}", pre + "SRCSEL": "IOPLL",
                        pre + "DIVISOR0": str(d0), pre + "DIVISOR1": str(d1)})
        else:
            fclk = f"PCW_FCLK{i}_PERIPHERAL_"
            out.update({f"PCW_FPGA_FCLK{i}_ENABLE": str(int(i == 0)),
                        f"PCW_FPGA{i}_PERIPHERAL_FREQMHZ": f"{mhz:g}",
                        f"PCW_ACT_FPGA{i}_PERIPHERAL_FREQMHZ": f"{src / (d0 * d1):g}",
                        fclk + "CLKSRC": "IO PLL", fclk + "DIVISOR0": str(d0), fclk + "DIVISOR1": str(d1)})
    for hp in sorted({hp for _, hp in spec.bundles}):
        out[board_ps.slaves[hp].width.removeprefix("CONFIG.")] = str(spec.hp_width_bits)
    return out


def _ps_module(mods: ET.Element, spec: HwhSpec) -> str:
    """The processing system: parameters, its clock output, control master, HP slaves, address map."""
    fam = PS_FAMILIES[spec.ps]
    vlnv = {"zynqmp": "xilinx.com:ip:zynq_ultra_ps_e:3.5", "zynq7": "xilinx.com:ip:processing_system7:5.5"}
    m = ET.SubElement(mods, "MODULE", CONFIGURABLE="TRUE", FULLNAME=f"/{fam.cell}", HWVERSION="1.0",
                      INSTANCE=fam.cell, IPTYPE="PERIPHERAL", IS_ENABLE="1", IS_PL="FALSE",
                      MODTYPE=fam.vlnv.split(":")[2], VLNV=vlnv[spec.ps])
    params = ET.SubElement(m, "PARAMETERS")
    for k, v in _ps_parameters(spec, fam).items():
        ET.SubElement(params, "PARAMETER", NAME=k, VALUE=v)
    ports = ET.SubElement(m, "PORTS")
    clk = ET.SubElement(ports, "PORT", CLKFREQUENCY=str(int(spec.clock_mhz * 1e6)), DIR="O", NAME="pl_clk0",
                        SIGIS="clk")
    ET.SubElement(ET.SubElement(clk, "CONNECTIONS"), "CONNECTION", INSTANCE=spec.instance, PORT="ap_clk")
    bus = ET.SubElement(m, "BUSINTERFACES")
    ctrl = next(n for n in fam.masters if n in ("M_AXI_HPM0_FPD", "M_AXI_GP0"))
    ET.SubElement(bus, "BUSINTERFACE", BUSNAME=f"{fam.cell}_{ctrl}", DATAWIDTH="32", NAME=ctrl, TYPE="MASTER",
                  VLNV="xilinx.com:interface:aximm:1.0")
    for hp in sorted({hp for _, hp in spec.bundles}):
        ET.SubElement(bus, "BUSINTERFACE", BUSNAME=f"{hp}_net", DATAWIDTH=str(spec.hp_width_bits), NAME=hp,
                      TYPE="SLAVE", VLNV="xilinx.com:interface:aximm:1.0")
    mm = ET.SubElement(m, "MEMORYMAP")
    ET.SubElement(mm, "MEMRANGE", ADDRESSBLOCK="Reg", BASENAME="C_S_AXI_CONTROL_BASEADDR",
                  BASEVALUE=f"0x{spec.base:08X}", HIGHNAME="C_S_AXI_CONTROL_HIGHADDR",
                  HIGHVALUE=f"0x{spec.base + spec.range - 1:08X}", INSTANCE=spec.instance, IS_DATA="TRUE",
                  IS_INSTRUCTION="FALSE", MASTERBUSINTERFACE=ctrl, MEMTYPE="REGISTER",
                  SLAVEBUSINTERFACE="s_axi_control")
    return fam.cell


def generate_hwh(spec: HwhSpec, system: str = "design_1") -> str:
    """The generated .hwh text of the block design (marked as generated)."""
    root = ET.Element("EDKSYSTEM", EDWVERSION="1.2", VIVADOVERSION="none", **{GENERATED_ATTR: "1"})
    root.append(ET.Comment(" Generated by edgellm (compiler/hwh.py) from the block design of "
                           "vivado/build.tcl: not written by Vivado. `edgellm build` replaces this file "
                           "with Vivado's. "))
    part = spec.part.split("-")
    ET.SubElement(root, "SYSTEMINFO", ARCH=SYSTEM_ARCH[spec.ps], DEVICE=part[0], NAME=system,
                  PACKAGE=part[1] if len(part) > 1 else "", SPEEDGRADE=f"-{part[2]}" if len(part) > 2 else "")
    ET.SubElement(root, "EXTERNALPORTS")
    ET.SubElement(root, "EXTERNALINTERFACES")
    mods = ET.SubElement(root, "MODULES")
    cell = _ps_module(mods, spec)
    _ip_module(mods, spec, cell)
    ET.indent(root, "  ")
    return '<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n' + ET.tostring(root, "unicode") + "\n"


def write_hwh(path: Path, spec: HwhSpec) -> Path:
    """Write the generated .hwh to path."""
    Path(path).write_text(generate_hwh(spec), encoding="utf-8")
    return Path(path)


def _int(text: str | None) -> int:
    t = (text or "").strip()
    return int(t, 16) if t.lower().startswith("0x") else int(t)


def read_hwh(path: Path, ip_name: str) -> HwhInfo:
    """The accelerator as a .hwh describes it: its module (VLNV xilinx.com:hls:<ip_name>:*), the register
    map of its s_axi_control block and its address range in the PS's memory map."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise HwhError(f"{path}: not a readable .hwh ({e})") from None
    mods = [m for m in root.iter("MODULE") if (m.get("VLNV") or "").split(":")[1:3] == ["hls", ip_name]]
    if len(mods) != 1:
        raise HwhError(f"{path}: {len(mods)} modules of type xilinx.com:hls:{ip_name} (expected one)")
    mod, inst = mods[0], mods[0].get("INSTANCE", "")
    regs: dict[str, int] = {}
    for ab in mod.iter("ADDRESSBLOCK"):
        if (ab.get("INTERFACE") or "").lower() == "s_axi_control":
            for r in ab.iter("REGISTER"):
                props = {p.get("NAME"): p.get("VALUE") for p in r.findall("PROPERTY")}
                try:
                    regs[r.get("NAME", "")] = _int(props.get("ADDRESS_OFFSET"))
                except ValueError:
                    raise HwhError(f"{path}: register {r.get('NAME')!r} has no numeric "
                                   "ADDRESS_OFFSET") from None
    ranges = [mr for mr in root.iter("MEMRANGE") if mr.get("INSTANCE") == inst
              and (mr.get("SLAVEBUSINTERFACE") or "").lower() == "s_axi_control"]
    if not ranges:
        raise HwhError(f"{path}: no address range is assigned to {inst}/s_axi_control")
    try:
        base, high = _int(ranges[0].get("BASEVALUE")), _int(ranges[0].get("HIGHVALUE"))
    except ValueError:
        raise HwhError(f"{path}: {inst}/s_axi_control has a non-numeric address range") from None
    return HwhInfo(path, root.get(GENERATED_ATTR) == "1", inst, mod.get("VLNV", ""), base, high - base + 1,
                   regs)


def check_hwh(path: Path, spec: HwhSpec) -> HwhInfo:
    """Read path and hold it against spec: the IP's address, range and every register offset of the
    manifest's map; HwhError naming the first disagreement."""
    info = read_hwh(path, spec.ip_name)
    what = "generated" if info.generated else "Vivado's"
    if info.base != spec.base or info.range != spec.range:
        raise HwhError(f"{path} ({what}) puts {info.instance} at 0x{info.base:X} (range 0x{info.range:X}); "
                       f"the block design at 0x{spec.base:X} (range 0x{spec.range:X}): rebuild (edgellm "
                       "build) or recompile the project")
    for name, off in sorted(spec.registers.items(), key=lambda kv: kv[1]):
        got = info.registers.get(name, info.registers.get(f"{name}_r"))  # Vitis renames HDL keywords NAME_r
        if got != off:
            say = "has no register" if got is None else f"puts register {name} at 0x{got:X}, not"
            raise HwhError(f"{path} ({what}) {say} {name} at 0x{off:X} as the manifest's register map says: "
                           "the bitstream was built from other HLS sources (recompile and rebuild)")
    return info
