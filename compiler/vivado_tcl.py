"""Vivado block-design + bitstream Tcl for a board (the project's vivado/build.tcl).

The script creates a project for the board's part and, when its board files are installed, its
board_part (otherwise it says so and builds for the bare part), the PS (zynq_ultra_ps_e or
processing_system7) with the board preset, its PL clock, one control master and the HP slave ports
the accelerator uses, and every other PS master and slave interface explicitly disabled (a board
preset may enable more, e.g. the kv260_som preset's M_AXI_HPM1_FPD, whose unconnected clock fails
validate_bd_design with BD 41-758). Then the HLS IP (from the Vitis HLS export), one SmartConnect
per HP port (m_axi ports spread over distinct HP ports, round-robin when there are more m_axi ports
than HP ports), a proc_sys_reset, explicit address assignments, synthesis and implementation to a
bitstream; the utilisation and timing reports and a small timing JSON go to the project's
report/vivado/, and <ip>.bit and <ip>.hwh next to the project (the pair PYNQ's Overlay loads).

Everything board-specific comes from the Board; PS-family specifics (IP names, property names,
address segments) are data in PS_FAMILIES.
"""

from __future__ import annotations

from pathlib import Path

from edgellm.boards import Board
from edgellm.compiler.cost.ddr import port_plan
from edgellm.compiler.design import DesignParams
from edgellm.compiler.ps_ports import CARRIER_CONNECTIONS, PS_FAMILIES, PsFamily
from edgellm.errors import EdgeLLMError

__all__ = ["DATA_BUNDLE", "PS_FAMILIES", "REPORT_DIR", "generate_vivado_tcl", "maxi_bundles",
           "port_assignment", "write_vivado_tcl"]

DATA_BUNDLE = "data"
REPORT_DIR = "report/build/vivado"  # relative to the project; build.tcl writes its reports here
TIMING_JSON = "timing.json"


def maxi_bundles(n_weight_ports: int) -> list[str]:
    """m_axi bundle names of the HLS top: w0..w{n-1} for weights, then 'data'."""
    return [f"w{i}" for i in range(n_weight_ports)] + [DATA_BUNDLE]


def port_assignment(board: Board, n_weight_ports: int) -> list[tuple[str, str]]:
    """(bundle, PS slave port) pairs as cost_ddr.port_plan assigns them (the performance model uses the
    same plan): distinct ports while they last, weight streams off shared DDR paths where that is
    faster, round-robin beyond the ports."""
    fam = PS_FAMILIES[board.ps]
    ports = [p for p in board.hp_port_names if p in fam.ddr_slaves()]
    if not ports:
        raise EdgeLLMError(f"board {board.name}: none of hp_port_names {board.hp_port_names} "
                           f"is a {board.ps} PL->DDR port")
    return list(zip(maxi_bundles(n_weight_ports), port_plan(board, n_weight_ports, ports), strict=True))


def _q(s: str) -> str:
    return "{" + s + "}"


def _pins(pins: list[str]) -> str:
    return " ".join(f"[get_bd_pins {p}]" for p in pins)


def _board_part_lines(board: Board) -> list[str]:
    """Use the board part when its board files are installed (any file version of the same board),
    else say so and continue with the bare part: the design uses no board I/O, only the PS."""
    if not board.board_part:
        return ["set use_board 0"]
    family = ":".join(board.board_part.split(":")[:3])  # vendor:board:part0
    board_id = board.board_part.split(":")[1]
    out = ["", "# Board files: the board part carries the PS preset (DDR, MIO, clocks) of the real board.",
           f"set board_part {_q(board.board_part)}", "set use_board 0",
           "if {[llength [get_board_parts -quiet $board_part]] == 0} {",
           f"  set other [lindex [get_board_parts -quiet -latest_file_version {_q(family + ':*')}] 0]",
           "  if {$other ne \"\"} {",
           '    puts "edgellm: board part $board_part is not installed; using $other (same board)"',
           "    set board_part $other", "  }", "}",
           "if {[llength [get_board_parts -quiet $board_part]] > 0} {",
           "  set_property board_part $board_part [current_project]", "  set use_board 1", "} else {",
           f'  puts "edgellm: WARNING: board files for $board_part are not installed: building for the bare '
           f'part {board.part} without the board preset (the bitstream does not program the PS, so this is '
           f'fine for this PL-only design)"',
           "  puts {edgellm: to install them (Vivado Tcl console): xhub::refresh_catalog [xhub::get_xstores "
           f"xilinx_board_store]; xhub::install [xhub::get_xitems *{board_id}*]}}",
           "}"]
    conn = CARRIER_CONNECTIONS.get(family)
    if conn:
        out += ["if {$use_board} {",
                f"  if {{[catch {{set_property board_connections {_q(conn)} [current_project]}} err]}} {{",
                '    puts "edgellm: carrier card connection not applied ($err): fine for this PL-only '
                'design"',
                "  }", "} else {",
                '  puts "edgellm: the carrier card connection is not applied either: fine for this PL-only '
                'design (no carrier I/O is used)"', "}"]
    return out


def _ps_lines(fam: PsFamily, board: Board, used: list[str], mhz: str) -> list[str]:
    """The PS cell, the board preset (when the board part is set), then every AXI interface set
    explicitly: the control master and the used HP slaves on, all others off, and the PL clock."""
    ps = fam.cell
    out = ["", "# Processing system: board preset, PL clock, control master, HP slave ports",
           f"create_bd_cell -type ip -vlnv {fam.vlnv}:* {ps}", "if {$use_board} {",
           f"  apply_bd_automation -rule {fam.rule} -config {_q(fam.rule_config)} [get_bd_cells {ps}]"]
    if fam.rule_config_bare:
        out += ["} else {", f"  apply_bd_automation -rule {fam.rule} -config {_q(fam.rule_config_bare)} "
                f"[get_bd_cells {ps}]"]
    out.append("}")
    props = [f"{p} {_q(mhz)}" for p in fam.clock_props] + [f"{p} {{1}}" for p in fam.pl_enable]
    for name, port in fam.masters.items():
        props.append(f"{port.enable} {{{int(name == board.control_port)}}}")
    for name, port in fam.slaves.items():
        props.append(f"{port.enable} {{{int(name in used)}}}")
        if name in used:
            props.append(f"{port.width} {_q(str(board.hp_port_width_bits))}")
    out += ["# every master and slave interface set explicitly: a preset may enable ones whose clock",
            "# pin would stay unconnected (validate_bd_design: BD 41-758)",
            f"set_property -dict [list {' '.join(props)}] [get_bd_cells {ps}]"]
    return out


def _fabric_lines(fam: PsFamily, board: Board, assign: list[tuple[str, str]], used: list[str],
                  ip_name: str, ip_version: str) -> tuple[list[str], list[str]]:
    """Accelerator, reset, SmartConnects and their AXI nets; also returns the SmartConnect cells."""
    ps, ip = fam.cell, f"{ip_name}_0"
    out = ["", "# Accelerator, reset, interconnect",
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
    return out, sc_cells


def _clock_address_lines(fam: PsFamily, board: Board, assign: list[tuple[str, str]], used: list[str],
                         ip: str, sc_cells: list[str]) -> list[str]:
    """One PL clock into every enabled PS interface's clock pin and the fabric; resets; address map."""
    ps = fam.cell
    clk_pins = [f"{ip}/ap_clk", "rst_0/slowest_sync_clk", f"{ps}/{fam.masters[board.control_port].clock}"]
    clk_pins += [f"{ps}/{fam.slaves[hp].clock}" for hp in used] + [f"{sc}/aclk" for sc in sc_cells]
    rst_pins = [f"{ip}/ap_rst_n"] + [f"{sc}/aresetn" for sc in sc_cells]
    out = ["", "# Clocks and resets",
           f"connect_bd_net [get_bd_pins {ps}/{fam.clock_pin}] " + _pins(clk_pins),
           f"connect_bd_net [get_bd_pins {ps}/{fam.resetn_pin}] [get_bd_pins rst_0/ext_reset_in]",
           "connect_bd_net [get_bd_pins rst_0/peripheral_aresetn] " + _pins(rst_pins),
           "", "# Address map: control registers in the PS data space, each m_axi onto its DDR segment",
           f"assign_bd_address -offset 0x{fam.control_base:08X} -range 64K -target_address_space "
           f"[get_bd_addr_spaces {ps}/Data] [get_bd_addr_segs {ip}/s_axi_control/Reg] -force"]
    out += [f"assign_bd_address -target_address_space [get_bd_addr_spaces {ip}/Data_m_axi_{b}] "
            f"[get_bd_addr_segs {ps}/{fam.slaves[hp].segment}] -force" for b, hp in assign]
    return out


def _run_lines(ip_name: str, jobs: int) -> list[str]:
    """Validate, wrap, synthesize, implement; copy .bit/.hwh next to the project; reports into
    report/build/vivado (after the copy, so a report problem cannot cost the bitstream)."""
    rep = "[file join $report_dir"
    return [
        "validate_bd_design", "save_bd_design",
        "set wrapper [make_wrapper -files [get_files $bd.bd] -top]", "add_files -norecurse $wrapper",
        "set_property top ${bd}_wrapper [current_fileset]", "update_compile_order -fileset sources_1", "",
        "# Synthesis, implementation, bitstream",
        f"launch_runs synth_1 -jobs {jobs}", "wait_on_run synth_1",
        'if {[get_property PROGRESS [get_runs synth_1]] ne "100%"} '
        '{ error "edgellm: synth_1 did not complete: see $proj_dir/$proj_name.runs/synth_1/runme.log" }',
        f"launch_runs impl_1 -to_step write_bitstream -jobs {jobs}", "wait_on_run impl_1",
        'if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} '
        '{ error "edgellm: impl_1 did not complete: see $proj_dir/$proj_name.runs/impl_1/runme.log" }',
        "", "# Bitstream + hardware handoff next to the project, as PYNQ's Overlay expects",
        "set bit [file join $proj_dir $proj_name.runs impl_1 ${bd}_wrapper.bit]",
        "set hwh [lindex [concat [glob -nocomplain [file join $proj_dir $proj_name.gen sources_1 bd $bd "
        "hw_handoff $bd.hwh]] [glob -nocomplain [file join $proj_dir $proj_name.srcs sources_1 bd $bd "
        "hw_handoff $bd.hwh]]] 0]",
        'if {$hwh eq ""} { error "edgellm: no $bd.hwh found under $proj_dir" }',
        f"file copy -force $bit [file join $here .. {ip_name}.bit]",
        f"file copy -force $hwh [file join $here .. {ip_name}.hwh]",
        "", "# Reports for the calibration work (edgellm build summarizes them in report/build/summary.json)",
        "file mkdir $report_dir", "open_run impl_1",
        f"report_utilization -file {rep} utilization.rpt]",
        f"report_utilization -hierarchical -hierarchical_depth 4 -file {rep} utilization_hier.rpt]",
        f"report_timing_summary -max_paths 10 -report_unconstrained -file {rep} timing_summary.rpt]",
        *[f"set {v} [get_property STATS.{v.upper()} [get_runs impl_1]]" for v in ("wns", "tns", "whs")],
        "foreach v {wns tns whs} { if {![string is double -strict [set $v]]} { set $v null } }",
        f"set f [open {rep} {TIMING_JSON}] w]",
        'puts $f "{\\"wns_ns\\": $wns, \\"whs_ns\\": $whs, \\"tns_ns\\": $tns}"', "close $f",
        'if {$wns eq "null" || $whs eq "null"} {',
        '  puts "edgellm: WARNING: impl_1 reports no WNS/WHS: see $report_dir/timing_summary.rpt"',
        "} elseif {$wns < 0 || $whs < 0} {",
        '  puts "edgellm: WARNING: timing not met (WNS $wns ns, WHS $whs ns): '
        'see $report_dir/timing_summary.rpt"',
        "} else {", '  puts "edgellm: timing met (WNS $wns ns, WHS $whs ns)"', "}", ""]


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
    ip = f"{ip_name}_0"
    out = [f"# Generated by edgellm: {ip_name} on {board.display_name}.",
           "# Run: vivado -mode batch -source build.tcl",
           "set here [file dirname [file normalize [info script]]]",
           f"set proj_name {ip_name}_vivado", f"set bd {bd_name}", "set proj_dir [file join $here build]",
           f"set report_dir [file normalize [file join $here .. {REPORT_DIR}]]",
           f"set ip_repo [file normalize [file join $here {ip_repo}]]",
           f"create_project $proj_name $proj_dir -part {board.part} -force"]
    out += _board_part_lines(board)
    out += ["", "set_property ip_repo_paths [list $ip_repo] [current_project]", "update_ip_catalog",
            "create_bd_design $bd"]
    out += _ps_lines(fam, board, used, f"{params.clock_mhz:g}")
    fabric, sc_cells = _fabric_lines(fam, board, assign, used, ip_name, ip_version)
    out += fabric + _clock_address_lines(fam, board, assign, used, ip, sc_cells) + _run_lines(ip_name, jobs)
    return "\n".join(out)


def write_vivado_tcl(project_dir: str | Path, board: Board, params: DesignParams, ip_name: str,
                     **kw: object) -> Path:
    """Write <project_dir>/vivado/build.tcl and return its path."""
    path = Path(project_dir) / "vivado" / "build.tcl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generate_vivado_tcl(board, params, ip_name, **kw))  # type: ignore[arg-type]
    return path
