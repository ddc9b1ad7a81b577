"""Run the generated Vivado Tcl under plain tclsh with every AMD command recorded, then check the calls."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgellm.boards import list_boards, load_board
from edgellm.compiler.design import DesignParams
from edgellm.compiler.vivado_tcl import PS_FAMILIES, maxi_bundles, write_vivado_tcl
from edgellm.errors import EdgeLLMError

TCLSH = shutil.which("tclsh")
pytestmark = pytest.mark.skipif(TCLSH is None, reason="tclsh not installed")
SEP = "\x1f"

# Records every command Tcl does not know (all of Vivado's) and returns its last argument, which is
# the object name for create_bd_cell / get_bd_* / get_files. `file copy` is recorded, not executed.
PRELUDE = r"""
set ::calls {}
proc unknown {args} { lappend ::calls $args; return [lindex $args end] }
proc get_property {args} { lappend ::calls [linsert $args 0 get_property]; return "100%" }
proc make_wrapper {args} { lappend ::calls [linsert $args 0 make_wrapper]; return /tmp/design_1_wrapper.v }
rename file _tcl_file
proc file {sub args} {
    if {$sub in {copy delete mkdir}} { lappend ::calls [linsert $args 0 file $sub]; return }
    return [_tcl_file $sub {*}$args]
}
"""
EPILOGUE = r"""
foreach c $::calls { puts [join $c "\x1f"] }
"""


def run_recorded(script: Path) -> list[list[str]]:
    """Source `script` under tclsh with the recorder prelude; return the calls as argument lists."""
    driver = script.parent / "driver.tcl"
    driver.write_text(PRELUDE + f"source {{{script}}}\n" + EPILOGUE)
    res = subprocess.run([TCLSH, str(driver)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [line.split(SEP) for line in res.stdout.splitlines() if line]


def calls_of(calls: list[list[str]], name: str) -> list[list[str]]:
    return [c for c in calls if c[0] == name]


@pytest.mark.parametrize("board_name", list_boards())
@pytest.mark.parametrize("n_weight", [1, 4, 6])
def test_block_design_and_bitstream(tmp_path: Path, board_name: str, n_weight: int) -> None:
    board = load_board(board_name)
    fam = PS_FAMILIES[board.ps]
    p = DesignParams(weight_ports=n_weight, port_width_bits=board.hp_port_width_bits,
                     clock_mhz=board.pl_clock_mhz)
    script = write_vivado_tcl(tmp_path, board, p, "edgellm_top")
    assert script == tmp_path / "vivado" / "build.tcl"
    calls = run_recorded(script)

    # part and board part
    (cp,) = calls_of(calls, "create_project")
    assert cp[cp.index("-part") + 1] == board.part
    assert any(c[:3] == ["set_property", "board_part", board.board_part] for c in calls)

    # PS cell, HLS IP cell
    cells = {c[-1]: c[c.index("-vlnv") + 1] for c in calls_of(calls, "create_bd_cell")}
    assert cells[fam.cell].startswith(fam.vlnv)
    assert cells["edgellm_top_0"] == "xilinx.com:hls:edgellm_top:1.0"
    assert cells["rst_0"].startswith("xilinx.com:ip:proc_sys_reset")

    # PL clock and HP ports enabled on the PS
    ps_props = [c for c in calls_of(calls, "set_property") if c[1] == "-dict" and fam.cell in c[-1]]
    assert ps_props, "PS properties not set"
    props = ps_props[0][2].split()
    assert props[props.index(fam.clock_props[0]) + 1] == f"{board.pl_clock_mhz:g}"

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
    ports = [h for h in board.hp_port_names if h in fam.slaves]
    assert len(set(hp_of.values())) == min(len(bundles), len(ports))
    assert all(h in fam.slaves for h in hp_of.values())
    for hp in set(hp_of.values()):  # each used slave port is enabled
        assert f"{fam.slaves[hp][0]}" in props and props[props.index(fam.slaves[hp][0]) + 1] == "1"
    # control port
    assert any(board.control_port in a and "ctrl_sc/S00_AXI" in b for _, a, b in nets)
    assert any("ctrl_sc/M00_AXI" in a and "edgellm_top_0/s_axi_control" in b for _, a, b in nets)

    # address map: control + one segment per m_axi, onto that bundle's HP port
    addr = calls_of(calls, "assign_bd_address")
    assert any("edgellm_top_0/s_axi_control/Reg" in c for c in addr)
    for bnd in bundles:
        (a,) = [c for c in addr if f"edgellm_top_0/Data_m_axi_{bnd}" in c]
        assert a[a.index(f"edgellm_top_0/Data_m_axi_{bnd}") + 1] == f"{fam.cell}/{fam.slaves[hp_of[bnd]][3]}"

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


def test_bad_ip_name(tmp_path: Path) -> None:
    with pytest.raises(EdgeLLMError, match="identifier"):
        write_vivado_tcl(tmp_path, load_board("kv260"), DesignParams(), "bad-name")
