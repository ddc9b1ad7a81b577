"""Run the generated Vivado Tcl under plain tclsh with every AMD command recorded, then check the calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared_tcl import TCLSH, calls_of, run_recorded

from edgellm.boards import Board, list_boards, load_board
from edgellm.compiler.design import DesignParams
from edgellm.compiler.ps_ports import PsFamily
from edgellm.compiler.vivado_tcl import (
    PS_FAMILIES,
    REPORT_DIR,
    maxi_bundles,
    port_assignment,
    write_vivado_tcl,
)
from edgellm.errors import EdgeLLMError

pytestmark = pytest.mark.skipif(TCLSH is None, reason="tclsh not installed")

NO_BOARD_FILES = r"""
proc get_board_parts {args} { lappend ::calls [linsert $args 0 get_board_parts]; return "" }
"""
OTHER_BOARD_VERSION = r"""
proc get_board_parts {args} {
    lappend ::calls [linsert $args 0 get_board_parts]
    if {"-latest_file_version" in $args} { return "xilinx.com:kv260_som:part0:1.3" }
    if {[lindex $args end] eq "xilinx.com:kv260_som:part0:1.3"} { return [lindex $args end] }
    return ""
}
"""
NO_CARRIER = r"""
proc set_property {args} {
    lappend ::calls [linsert $args 0 set_property]
    if {[lindex $args 0] eq "board_connections"} { error "board kv260_carrier not found" }
}
"""

# AMD's own Kria block design (Xilinx/kria-base-hardware, k26_starter_kits/kv260/scripts/config_bd.tcl)
# sets exactly these enables after apply_board_preset; PG082 lists the processing_system7 ones.
REFERENCE_ENABLES = {
    "zynqmp": {f"CONFIG.PSU__USE__M_AXI_GP{i}" for i in range(3)}
    | {f"CONFIG.PSU__USE__S_AXI_GP{i}" for i in range(7)}
    | {"CONFIG.PSU__USE__S_AXI_ACP", "CONFIG.PSU__USE__S_AXI_ACE"},
    "zynq7": {f"CONFIG.PCW_USE_M_AXI_GP{i}" for i in range(2)}
    | {f"CONFIG.PCW_USE_S_AXI_GP{i}" for i in range(2)}
    | {f"CONFIG.PCW_USE_S_AXI_HP{i}" for i in range(4)} | {"CONFIG.PCW_USE_S_AXI_ACP"},
}


def messages(calls: list[list[str]]) -> str:
    return "\n".join(c[1] for c in calls_of(calls, "puts"))


def design_for(board: Board, n_weight: int = 4) -> DesignParams:
    return DesignParams(weight_ports=n_weight, port_width_bits=board.hp_port_width_bits,
                        clock_mhz=board.pl_clock_mhz)


def ps_properties(calls: list[list[str]], fam: PsFamily) -> dict[str, str]:
    """The one `set_property -dict` on the PS cell, as {property: value}."""
    (ps,) = [c for c in calls_of(calls, "set_property") if c[1] == "-dict" and fam.cell in c[-1]]
    words = ps[2].split()
    return dict(zip(words[0::2], words[1::2], strict=True))


@pytest.mark.parametrize("board_name", list_boards())
@pytest.mark.parametrize("n_weight", [1, 4, 6])
def test_block_design_and_bitstream(tmp_path: Path, board_name: str, n_weight: int) -> None:
    board = load_board(board_name)
    fam = PS_FAMILIES[board.ps]
    script = write_vivado_tcl(tmp_path, board, design_for(board, n_weight), "edgellm_top")
    assert script == tmp_path / "vivado" / "build.tcl"
    calls = run_recorded(script)

    # part and board part
    (cp,) = calls_of(calls, "create_project")
    assert cp[cp.index("-part") + 1] == board.part
    assert ["set_property", "board_part", board.board_part, "current_project"] in calls

    # PS cell, HLS IP cell
    cells = {c[-1]: c[c.index("-vlnv") + 1] for c in calls_of(calls, "create_bd_cell")}
    assert cells[fam.cell].startswith(fam.vlnv)
    assert cells["edgellm_top_0"] == "xilinx.com:hls:edgellm_top:1.0"
    assert cells["rst_0"].startswith("xilinx.com:ip:proc_sys_reset")

    # PL clock and HP ports enabled on the PS
    props = ps_properties(calls, fam)
    assert props[fam.clock_props[0]] == f"{board.pl_clock_mhz:g}"
    assert all(props[p] == "1" for p in fam.pl_enable)

    # every m_axi bundle reaches a PS HP slave port through a smartconnect; distinct ports first
    nets = calls_of(calls, "connect_bd_intf_net")
    pin_to_sc = {}
    for _, a, b in nets:
        if "edgellm_top_0/m_axi_" in a:
            pin_to_sc[a.split("/m_axi_")[1]] = b.split("/")[0]
    sc_to_hp = {a.split("/")[0]: b.split("/")[1] for _, a, b in nets if "/M00_AXI" in a and fam.cell in b}
    bundles = maxi_bundles(n_weight)
    assert sorted(pin_to_sc) == sorted(bundles)
    hp_of = {bnd: sc_to_hp[pin_to_sc[bnd]] for bnd in bundles}
    ports = [h for h in board.hp_port_names if h in fam.ddr_slaves()]
    assert len(set(hp_of.values())) == min(len(bundles), len(ports))
    for hp in set(hp_of.values()):  # each used slave port is enabled at the board's width
        assert props[fam.slaves[hp].enable] == "1"
        assert props[fam.slaves[hp].width] == str(board.hp_port_width_bits)
    # control port
    assert any(board.control_port in a and "ctrl_sc/S00_AXI" in b for _, a, b in nets)
    assert any("ctrl_sc/M00_AXI" in a and "edgellm_top_0/s_axi_control" in b for _, a, b in nets)

    # address map: control + one segment per m_axi, onto that bundle's HP port
    addr = calls_of(calls, "assign_bd_address")
    assert any("edgellm_top_0/s_axi_control/Reg" in c for c in addr)
    for bnd in bundles:
        (a,) = [c for c in addr if f"edgellm_top_0/Data_m_axi_{bnd}" in c]
        seg = a[a.index(f"edgellm_top_0/Data_m_axi_{bnd}") + 1]
        assert seg == f"{fam.cell}/{fam.slaves[hp_of[bnd]].segment}"

    # clocks/resets, validation, wrapper, runs, bitstream, outputs
    clk = [c for c in calls_of(calls, "connect_bd_net") if fam.clock_pin in c[1]]
    assert clk and any("edgellm_top_0/ap_clk" in x for x in clk[0])
    names = [c[0] for c in calls]
    for must in ("validate_bd_design", "make_wrapper", "wait_on_run"):
        assert must in names
    assert names.index("validate_bd_design") < names.index("make_wrapper") < names.index("launch_runs")
    impl = [c for c in calls_of(calls, "launch_runs") if c[1] == "impl_1"]
    assert impl and impl[0][impl[0].index("-to_step") + 1] == "write_bitstream"
    copies = [c[-1] for c in calls_of(calls, "file") if c[1] == "copy"]
    assert any(x.endswith("edgellm_top.bit") for x in copies)
    assert any(x.endswith("edgellm_top.hwh") for x in copies)


@pytest.mark.parametrize("board_name", list_boards())
@pytest.mark.parametrize("board_files", [True, False], ids=["board-files", "bare-part"])
def test_every_ps_interface_is_disabled_or_clocked(tmp_path: Path, board_name: str,
                                                   board_files: bool) -> None:
    """After the preset, every master and slave interface a preset could enable (AMD's own list) is set
    explicitly: the used ones to 1 with their clock pin on the PL clock, all others to 0 and unconnected.
    The old script left the kv260_som preset's M_AXI_HPM1_FPD on with maxihpm1_fpd_aclk unclocked."""
    board = load_board(board_name)
    fam = PS_FAMILIES[board.ps]
    calls = run_recorded(write_vivado_tcl(tmp_path, board, design_for(board), "edgellm_top"),
                         "" if board_files else NO_BOARD_FILES)
    props = ps_properties(calls, fam)
    ports = {**fam.masters, **fam.slaves}
    assert {p.enable for p in ports.values()} == REFERENCE_ENABLES[board.ps]
    (clock_net,) = [c for c in calls_of(calls, "connect_bd_net") if c[1] == f"{fam.cell}/{fam.clock_pin}"]
    net_pins = {pin for c in calls_of(calls, "connect_bd_net") for pin in c[1:]}
    enabled = []
    for name, port in ports.items():
        assert props.get(port.enable) in ("0", "1"), f"{name}: {port.enable} not set"
        pin = f"{fam.cell}/{port.clock}"
        if props[port.enable] == "1":
            enabled.append(name)
            assert pin in clock_net, f"{name} enabled but {port.clock} is not on the PL clock"
        else:
            assert pin not in net_pins, f"{name} disabled but {port.clock} is connected"
    assert board.control_port in enabled
    assert len(enabled) == 1 + len({hp for _, hp in port_assignment(board, 4)})
    # the explicit settings come after the preset (which would otherwise override them)
    names = [c[0] for c in calls]
    ps_set = next(i for i, c in enumerate(calls) if c[:2] == ["set_property", "-dict"] and fam.cell in c[-1])
    if "apply_bd_automation" in names:
        assert names.index("apply_bd_automation") < ps_set
    assert ps_set < names.index("validate_bd_design")


@pytest.mark.parametrize("board_name", list_boards())
def test_board_part_fallback_to_bare_part(tmp_path: Path, board_name: str) -> None:
    """Without the board files, the script says so, sets no board part, applies no preset (zynq7: the
    automation without it, for FIXED_IO/DDR) and still builds for the bare part."""
    board = load_board(board_name)
    fam = PS_FAMILIES[board.ps]
    calls = run_recorded(write_vivado_tcl(tmp_path, board, design_for(board), "edgellm_top"), NO_BOARD_FILES)
    assert not any(c[:2] == ["set_property", "board_part"] for c in calls)
    msg = messages(calls)
    assert f"board files for {board.board_part} are not installed" in msg and board.part in msg
    assert "xhub::install" in msg
    auto = calls_of(calls, "apply_bd_automation")
    if board.ps == "zynqmp":
        assert auto == []
    else:
        (a,) = auto
        assert 'apply_board_preset "0"' in a[a.index("-config") + 1]
    if board.name == "kv260":
        assert "carrier card connection is not applied" in msg
        assert not any(c[:2] == ["set_property", "board_connections"] for c in calls)
    names = [c[0] for c in calls]
    assert "validate_bd_design" in names and "launch_runs" in names
    assert ps_properties(calls, fam)[fam.clock_props[0]] == f"{board.pl_clock_mhz:g}"


def test_board_part_other_file_version(tmp_path: Path) -> None:
    board = load_board("kv260")
    calls = run_recorded(write_vivado_tcl(tmp_path, board, design_for(board), "edgellm_top"),
                         OTHER_BOARD_VERSION)
    assert ["set_property", "board_part", "xilinx.com:kv260_som:part0:1.3", "current_project"] in calls
    assert "using xilinx.com:kv260_som:part0:1.3" in messages(calls)
    assert calls_of(calls, "apply_bd_automation")


def test_kv260_carrier_connection(tmp_path: Path) -> None:
    """With board files the KV260 carrier connection is applied as in AMD's Kria flow; when it cannot be
    (carrier board files missing), the script says so and carries on."""
    board = load_board("kv260")
    script = write_vivado_tcl(tmp_path, board, design_for(board), "edgellm_top")
    calls = run_recorded(script)
    (conn,) = [c for c in calls_of(calls, "set_property") if c[1] == "board_connections"]
    assert conn[2].startswith("som240_1_connector xilinx.com:kv260_carrier:som240_1_connector")
    calls = run_recorded(script, NO_CARRIER)
    assert "carrier card connection not applied (board kv260_carrier not found)" in messages(calls)
    assert "launch_runs" in [c[0] for c in calls]
    for other in ("zcu104", "ultra96v2", "pynq_z2"):
        b = load_board(other)
        calls = run_recorded(write_vivado_tcl(tmp_path / other, b, design_for(b), "edgellm_top"))
        assert not any(c[1] == "board_connections" for c in calls_of(calls, "set_property"))


def test_reports_and_timing_json(tmp_path: Path) -> None:
    """After implementation the script writes the utilisation and timing reports and timing.json (the run's
    WNS/TNS/WHS) into the project's report folder, before copying the bitstream."""
    board = load_board("zcu104")
    calls = run_recorded(write_vivado_tcl(tmp_path, board, design_for(board), "edgellm_top"))
    rep = (tmp_path / REPORT_DIR).resolve()
    files = {c[0]: c[c.index("-file") + 1] for c in calls if "-file" in c}
    assert files["report_utilization"] in (str(rep / "utilization.rpt"), str(rep / "utilization_hier.rpt"))
    assert files["report_timing_summary"] == str(rep / "timing_summary.rpt")
    assert json.loads((rep / "timing.json").read_text()) == {"wns_ns": 0.125, "whs_ns": 0.011, "tns_ns": 0.0}
    names = [c[0] for c in calls]
    assert names.index("wait_on_run") < names.index("file") < names.index("open_run") \
        < names.index("report_timing_summary")  # .bit/.hwh first: a report cannot cost the bitstream
    assert "timing met (WNS 0.125 ns" in messages(calls)


@pytest.mark.parametrize("wns, whs, msg, want", [
    ("-0.3", "0.02", "timing not met (WNS -0.3 ns, WHS 0.02 ns)", {"wns_ns": -0.3, "whs_ns": 0.02}),
    ('""', "0.02", "impl_1 reports no WNS/WHS", {"wns_ns": None, "whs_ns": 0.02})])
def test_timing_messages(tmp_path: Path, wns: str, whs: str, msg: str, want: dict) -> None:
    """Negative slack is reported; a run without timing figures still writes valid JSON (null) and
    finishes instead of failing in a comparison."""
    board = load_board("kv260")
    stats = (f"proc get_property {{name args}} {{ switch -- $name {{ STATS.WNS {{ return {wns} }} "
             f"STATS.WHS {{ return {whs} }} STATS.TNS {{ return -1.5 }} default {{ return 100% }} }} }}\n")
    calls = run_recorded(write_vivado_tcl(tmp_path, board, design_for(board), "edgellm_top"), stats)
    assert msg in messages(calls)
    got = json.loads((tmp_path / REPORT_DIR / "timing.json").read_text())
    assert {k: got[k] for k in want} == want and got["tns_ns"] == -1.5


def test_bad_ip_name(tmp_path: Path) -> None:
    with pytest.raises(EdgeLLMError, match="identifier"):
        write_vivado_tcl(tmp_path, load_board("kv260"), DesignParams(), "bad-name")
