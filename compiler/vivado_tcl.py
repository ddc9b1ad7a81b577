"""Vivado block-design + bitstream Tcl for a board (the project's vivado/build.tcl).

The script creates a project for the board's part (and board_part), the PS (zynq_ultra_ps_e or
processing_system7) with its PL clock, one control master and the HP slave ports the accelerator
uses, the HLS IP (from the Vitis HLS export), one SmartConnect per HP port (m_axi ports are spread
over distinct HP ports, round-robin when there are more m_axi ports than HP ports), a
proc_sys_reset, explicit address assignments, then synthesis and implementation to a bitstream,
and copies <ip>.bit and <ip>.hwh next to the project (the pair PYNQ's Overlay loads).

Everything board-specific comes from the Board; PS-family specifics (IP names, property names,
address segments) are data in PS_FAMILIES.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgellm.boards import Board
from edgellm.compiler.design import DesignParams
from edgellm.errors import EdgeLLMError

DATA_BUNDLE = "data"


@dataclass(frozen=True)
class PsFamily:
    """Vivado names for one PS family."""

    vlnv: str
    cell: str
    rule: str  # apply_bd_automation rule applying the board preset
    rule_config: str
    clock_pin: str
    resetn_pin: str
    clock_props: tuple[str, ...]  # properties set to the PL clock (MHz) / enabled
    masters: dict[str, tuple[str, str]]  # port -> (enable property, clock pin)
    slaves: dict[str, tuple[str, str, str, str]]  # port -> (enable prop, width prop, clock pin, addr seg)
    control_base: int


_ZUS = {f"S_AXI_HP{i}_FPD": (f"CONFIG.PSU__USE__S_AXI_GP{i + 2}", f"CONFIG.PSU__SAXIGP{i + 2}__DATA_WIDTH",
                             f"saxihp{i}_fpd_aclk", f"SAXIGP{i + 2}/HP{i}_DDR_LOW") for i in range(4)}
_ZUS.update({f"S_AXI_HPC{i}_FPD": (f"CONFIG.PSU__USE__S_AXI_GP{i}", f"CONFIG.PSU__SAXIGP{i}__DATA_WIDTH",
                                   f"saxihpc{i}_fpd_aclk", f"SAXIGP{i}/HPC{i}_DDR_LOW") for i in range(2)})

PS_FAMILIES = {
    "zynqmp": PsFamily(
        vlnv="xilinx.com:ip:zynq_ultra_ps_e", cell="zynq_ultra_ps_e_0",
        rule="xilinx.com:bd_rule:zynq_ultra_ps_e",
        rule_config='apply_board_preset "1"', clock_pin="pl_clk0", resetn_pin="pl_resetn0",
        clock_props=("CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ",),
        masters={"M_AXI_HPM0_FPD": ("CONFIG.PSU__USE__M_AXI_GP0", "maxihpm0_fpd_aclk"),
                 "M_AXI_HPM1_FPD": ("CONFIG.PSU__USE__M_AXI_GP1", "maxihpm1_fpd_aclk")},
        slaves=_ZUS, control_base=0xA000_0000),
    "zynq7": PsFamily(
        vlnv="xilinx.com:ip:processing_system7", cell="processing_system7_0",
        rule="xilinx.com:bd_rule:processing_system7",
        rule_config='make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"',
        clock_pin="FCLK_CLK0", resetn_pin="FCLK_RESET0_N",
        clock_props=("CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ",),
        masters={"M_AXI_GP0": ("CONFIG.PCW_USE_M_AXI_GP0", "M_AXI_GP0_ACLK")},
        slaves={f"S_AXI_HP{i}": (f"CONFIG.PCW_USE_S_AXI_HP{i}", f"CONFIG.PCW_S_AXI_HP{i}_DATA_WIDTH",
                                 f"S_AXI_HP{i}_ACLK", f"S_AXI_HP{i}/HP{i}_DDR_LOWOCM") for i in range(4)},
        control_base=0x4000_0000),
}


def maxi_bundles(n_weight_ports: int) -> list[str]:
    """m_axi bundle names of the HLS top: w0..w{n-1} for weights, then 'data'."""
    return [f"w{i}" for i in range(n_weight_ports)] + [DATA_BUNDLE]


def port_assignment(board: Board, n_weight_ports: int) -> list[tuple[str, str]]:
    """(bundle, PS slave port) pairs: each m_axi on a distinct port, round-robin beyond the ports."""
    fam = PS_FAMILIES[board.ps]
    ports = [p for p in board.hp_port_names if p in fam.slaves]
    if not ports:
        raise EdgeLLMError(f"board {board.name}: none of hp_port_names {board.hp_port_names} "
                           f"is a {board.ps} port")
    return [(b, ports[i % len(ports)]) for i, b in enumerate(maxi_bundles(n_weight_ports))]


def _q(s: str) -> str:
    return "{" + s + "}"


def _pins(pins: list[str]) -> str:
    return " ".join(f"[get_bd_pins {p}]" for p in pins)


def generate_vivado_tcl(board: Board, params: DesignParams, ip_name: str, *, ip_repo: str = "../hls/ip",
                        ip_version: str = "1.0", bd_name: str = "design_1", jobs: int = 4) -> str:
    """The full build script (paths relative to the script's own directory)."""
    if not ip_name.isidentifier():
        raise EdgeLLMError(f"IP name {ip_name!r} must be a C identifier (it is the HLS top function)")
    fam = PS_FAMILIES[board.ps]
    if board.control_port not in fam.masters:
        raise EdgeLLMError(f"board {board.name}: control_port {board.control_port!r} "
                           f"is not a {board.ps} master")
    assign = port_assignment(board, params.weight_ports)
    used = sorted({hp for _, hp in assign}, key=list(fam.slaves).index)
    ps, ip = fam.cell, f"{ip_name}_0"
    mhz = f"{params.clock_mhz:g}"
    out = [f"# Generated by edgellm: {ip_name} on {board.display_name}.",
           "# Run: vivado -mode batch -source build.tcl",
           "set here [file dirname [file normalize [info script]]]",
           f"set proj_name {ip_name}_vivado", f"set bd {bd_name}", "set proj_dir [file join $here build]",
           f"set ip_repo [file normalize [file join $here {ip_repo}]]",
           f"create_project $proj_name $proj_dir -part {board.part} -force"]
    if board.board_part:
        out.append(f"set_property board_part {board.board_part} [current_project]")
    out += ["set_property ip_repo_paths [list $ip_repo] [current_project]", "update_ip_catalog",
            "create_bd_design $bd", "",
            "# Processing system: PL clock, control master, HP slave ports",
            f"create_bd_cell -type ip -vlnv {fam.vlnv}:* {ps}",
            f"apply_bd_automation -rule {fam.rule} -config {_q(fam.rule_config)} [get_bd_cells {ps}]"]
    props = [f"{p} {_q(mhz)}" for p in fam.clock_props]
    props.append(f"{fam.masters[board.control_port][0]} {{1}}")
    for hp in used:
        en, width, _, _ = fam.slaves[hp]
        props += [f"{en} {{1}}", f"{width} {_q(str(board.hp_port_width_bits))}"]
    out.append(f"set_property -dict [list {' '.join(props)}] [get_bd_cells {ps}]")
    out += ["", "# Accelerator, reset, interconnect",
            f"create_bd_cell -type ip -vlnv xilinx.com:hls:{ip_name}:{ip_version} {ip}",
            "create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset:* rst_0",
            "create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect:* ctrl_sc",
            "set_property -dict [list CONFIG.NUM_SI {1} CONFIG.NUM_MI {1}] [get_bd_cells ctrl_sc]",
            f"connect_bd_intf_net [get_bd_intf_pins {ps}/{board.control_port}] "
            "[get_bd_intf_pins ctrl_sc/S00_AXI]",
            f"connect_bd_intf_net [get_bd_intf_pins ctrl_sc/M00_AXI] [get_bd_intf_pins {ip}/s_axi_control]"]
    sc_cells = ["ctrl_sc"]
    for k, hp in enumerate(used):
        sc = f"sc_hp{k}"
        sc_cells.append(sc)
        bundles = [b for b, h in assign if h == hp]
        out += [f"create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect:* {sc}",
                f"set_property -dict [list CONFIG.NUM_SI {{{len(bundles)}}} CONFIG.NUM_MI {{1}}] "
                f"[get_bd_cells {sc}]",
                f"connect_bd_intf_net [get_bd_intf_pins {sc}/M00_AXI] [get_bd_intf_pins {ps}/{hp}]"]
        out += [f"connect_bd_intf_net [get_bd_intf_pins {ip}/m_axi_{b}] [get_bd_intf_pins {sc}/S{j:02d}_AXI]"
                for j, b in enumerate(bundles)]
    clk_pins = [f"{ip}/ap_clk", "rst_0/slowest_sync_clk", f"{ps}/{fam.masters[board.control_port][1]}"]
    clk_pins += [f"{ps}/{fam.slaves[hp][2]}" for hp in used] + [f"{sc}/aclk" for sc in sc_cells]
    rst_pins = [f"{ip}/ap_rst_n"] + [f"{sc}/aresetn" for sc in sc_cells]
    out += ["", "# Clocks and resets",
            f"connect_bd_net [get_bd_pins {ps}/{fam.clock_pin}] " + _pins(clk_pins),
            f"connect_bd_net [get_bd_pins {ps}/{fam.resetn_pin}] [get_bd_pins rst_0/ext_reset_in]",
            "connect_bd_net [get_bd_pins rst_0/peripheral_aresetn] " + _pins(rst_pins),
            "", "# Address map: control registers in the PS data space, each m_axi onto its DDR segment",
            f"assign_bd_address -offset 0x{fam.control_base:08X} -range 64K -target_address_space "
            f"[get_bd_addr_spaces {ps}/Data] [get_bd_addr_segs {ip}/s_axi_control/Reg] -force"]
    out += [f"assign_bd_address -target_address_space [get_bd_addr_spaces {ip}/Data_m_axi_{b}] "
            f"[get_bd_addr_segs {ps}/{fam.slaves[hp][3]}] -force" for b, hp in assign]
    out += ["validate_bd_design", "save_bd_design",
            "set wrapper [make_wrapper -files [get_files $bd.bd] -top]", "add_files -norecurse $wrapper",
            "set_property top ${bd}_wrapper [current_fileset]", "update_compile_order -fileset sources_1", "",
            "# Synthesis, implementation, bitstream",
            f"launch_runs synth_1 -jobs {jobs}", "wait_on_run synth_1",
            f"launch_runs impl_1 -to_step write_bitstream -jobs {jobs}", "wait_on_run impl_1",
            'if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} { error "impl_1 did not complete" }',
            "", "# Bitstream + hardware handoff next to the project, as PYNQ's Overlay expects",
            "set bit [file join $proj_dir $proj_name.runs impl_1 ${bd}_wrapper.bit]",
            "set hwh [lindex [concat [glob -nocomplain [file join $proj_dir $proj_name.gen sources_1 bd $bd "
            "hw_handoff $bd.hwh]] [glob -nocomplain [file join $proj_dir $proj_name.srcs sources_1 bd $bd "
            "hw_handoff $bd.hwh]]] 0]",
            f"file copy -force $bit [file join $here .. {ip_name}.bit]",
            f"file copy -force $hwh [file join $here .. {ip_name}.hwh]", ""]
    return "\n".join(out)


def write_vivado_tcl(project_dir: str | Path, board: Board, params: DesignParams, ip_name: str,
                     **kw: object) -> Path:
    """Write <project_dir>/vivado/build.tcl and return its path."""
    path = Path(project_dir) / "vivado" / "build.tcl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generate_vivado_tcl(board, params, ip_name, **kw))  # type: ignore[arg-type]
    return path
