"""Board data files and their loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgellm.boards import BOARD_DIR, SOURCE_KEYS, Board, board_name, list_boards, load_board, load_board_file
from edgellm.errors import BoardError

# Datasheet figures (DS987, DS891, DS190) re-typed here independently of the TOML files.
EXPECTED = {
    "kv260": ("xck26-sfvc784-2LV-c", "zynqmp", 117120, 234240, 1248, 144, 64, 4 << 30, 64),
    "zcu104": ("xczu7ev-ffvc1156-2-e", "zynqmp", 230400, 460800, 1728, 312, 96, 2 << 30, 64),
    "ultra96v2": ("xczu3eg-sbva484-1-i", "zynqmp", 70560, 141120, 360, 216, 0, 2 << 30, 32),
    "pynq_z2": ("xc7z020clg400-1", "zynq7", 53200, 106400, 220, 140, 0, 512 << 20, 16),
}


def test_list_boards() -> None:
    assert list_boards() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_board_figures(name: str) -> None:
    b = load_board(name)
    assert isinstance(b, Board)
    part, ps, lut, ff, dsp, bram, uram, ddr, width = EXPECTED[name]
    assert (b.part, b.ps, b.lut, b.ff, b.dsp, b.bram36, b.uram, b.ddr_bytes, b.ddr_width_bits) == (
        part, ps, lut, ff, dsp, bram, uram, ddr, width)
    assert b.ddr_peak_gbps == pytest.approx(width / 8 * b.ddr_mts / 1000, rel=1e-3)
    assert 0 < b.ddr_achievable_gbps < b.ddr_peak_gbps
    assert b.hp_port_width_bits == (128 if ps == "zynqmp" else 64) and b.hp_ports == 4
    assert 0 < b.os_reserved_bytes < b.ddr_bytes and b.ddr_available_bytes > 0
    assert all(b.sources[k] for k in SOURCE_KEYS)
    assert isinstance(b.pynq_versions, tuple) and b.pynq_versions


def test_pynq4_dropped_z2() -> None:
    assert "4.0" not in load_board("pynq_z2").pynq_versions  # PYNQ v4.0 removed Pynq-Z1/Z2


def test_board_is_frozen() -> None:
    with pytest.raises(AttributeError):
        load_board("kv260").lut = 1  # type: ignore[misc]


def test_unknown_board_lists_known() -> None:
    with pytest.raises(BoardError, match="known boards: kv260, pynq_z2, ultra96v2, zcu104"):
        load_board("zcu102")


def test_product_spellings_name_the_shipped_board() -> None:
    """PYNQ-Z2, pynq-z2, Ultra96-V2, KV260: the boards as their makers write them."""
    assert [board_name(n) for n in ("PYNQ-Z2", "pynq-z2", "Ultra96-V2", "KV260", "zcu104")] == [
        "pynq_z2", "pynq_z2", "ultra96v2", "kv260", "zcu104"]
    assert load_board("PYNQ-Z2").name == "pynq_z2"
    for bad in ("pynq", "z2", "kv-2-6"):  # no partial or loose match
        with pytest.raises(BoardError, match=f"unknown board '{bad}'"):
            board_name(bad)


def test_compile_writes_under_the_shipped_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`compile --board Ultra96-V2` writes edgellm-out/tiny-ultra96v2 (the name every other command uses)."""
    from edgellm.cli import app

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["compile", "--board", "Ultra96-V2", "--no-onnx-reference"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "edgellm-out" / "tiny-ultra96v2" / "manifest.json").is_file()
    assert not (tmp_path / "edgellm-out" / "tiny-Ultra96-V2").exists()


def _variant(tmp_path: Path, drop: str | None = None, replace: tuple[str, str] | None = None) -> Path:
    text = (BOARD_DIR / "kv260.toml").read_text()
    lines = text.splitlines()
    if drop:
        lines = [ln for ln in lines if not ln.startswith(drop + " ")]
    text = "\n".join(lines) + "\n"
    if replace:
        text = text.replace(*replace)
    p = tmp_path / "kv260.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("field", ["dsp", "part", "ddr_bytes", "pynq_versions"])
def test_missing_field(tmp_path: Path, field: str) -> None:
    p = _variant(tmp_path, drop=field)
    with pytest.raises(BoardError, match=f"{p}: missing field '{field}'"):
        load_board_file(p)


def test_ill_typed_field(tmp_path: Path) -> None:
    p = _variant(tmp_path, replace=("lut = 117120", 'lut = "117120"'))
    with pytest.raises(BoardError, match="field 'lut' must be int"):
        load_board_file(p)


def test_inconsistent_peak(tmp_path: Path) -> None:
    p = _variant(tmp_path, replace=("ddr_peak_gbps = 19.2 ", "ddr_peak_gbps = 25.6 "))
    with pytest.raises(BoardError, match="ddr_peak_gbps"):
        load_board_file(p)


def test_missing_source(tmp_path: Path) -> None:
    p = _variant(tmp_path, drop="resources")
    with pytest.raises(BoardError, match="lacks a citation for 'resources'"):
        load_board_file(p)


def test_bad_ps_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(BoardError, match="'ps' must be one of"):
        load_board_file(_variant(tmp_path, replace=('ps = "zynqmp"', 'ps = "versal"')))
    bad = tmp_path / "x.toml"
    bad.write_text("name = \n")
    with pytest.raises(BoardError, match="malformed TOML"):
        load_board_file(bad)


def test_boards_command() -> None:
    from edgellm.commands.boards import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from collapsing to a single-command app
        pass

    res = CliRunner().invoke(app, ["boards"], terminal_width=200)
    assert res.exit_code == 0, res.output
    for name, exp in EXPECTED.items():
        assert name in res.output and f"{exp[2]:,}" in res.output


# --- PL->DDR bandwidth: paths, ranges, the port plan (boards/*.toml, compiler/cost_ddr.py) -------------


def test_bandwidth_ranges_are_ordered_and_cited() -> None:
    from edgellm.boards import SCENARIOS

    for b in (load_board(n) for n in EXPECTED):
        lo, mid, hi = (b.with_scenario(s).ddr_achievable_gbps for s in SCENARIOS)
        assert 0 < lo <= mid <= hi < b.ddr_peak_gbps, b.name
        assert len(b.ddr_paths) == len(b.hp_port_names)
        assert b.sources["ddr_bandwidth"] and b.sources["ddr_paths"]
    kv = load_board("kv260")
    # UG1085 "PL-PS Interface Specifics": HP1 and HP2 share XPI 4; HPC0/1 reach the DDR through the CCI
    assert kv.ddr_path("S_AXI_HP1_FPD") == kv.ddr_path("S_AXI_HP2_FPD") == "XPI4"
    assert len({kv.ddr_path(f"S_AXI_HP{i}_FPD") for i in (0, 1, 3)}) == 3
    assert kv.ddr_path("S_AXI_HPC0_FPD") == kv.ddr_path("S_AXI_HPC1_FPD") == "CCI"
    # the measured figures they come from: 12.73 GB/s over HP0-HP3 (bitnet-kv260), 75% (Manev et al.)
    assert kv.with_scenario("low").ddr_achievable_gbps == pytest.approx(12.73, abs=0.01)
    assert kv.ddr_achievable_gbps == pytest.approx(0.75 * 19.2)
    with pytest.raises(BoardError, match="unknown bandwidth scenario"):
        kv.with_scenario("typical")


@pytest.mark.parametrize("edit, match", [
    (("ddr_pl_fraction = [0.663, 0.75, 0.807]", "ddr_pl_fraction = [0.8, 0.75, 0.807]"), "low <= central"),
    (("ddr_pl_fraction = [0.663, 0.75, 0.807]", "ddr_pl_fraction = [0.663, 0.75, 1.2]"), "<= 1"),
    (("ddr_pl_fraction = [0.663, 0.75, 0.807]", "ddr_pl_fraction = 0.75"), "must be list"),
    (('ddr_paths = ["XPI3", "XPI4", "XPI4", "XPI5", "CCI", "CCI"]', 'ddr_paths = ["XPI3"]'),
     "one path name per hp_port_names"),
    (("shared_path_gbps = [5.62, 6.37, 7.60]", ""), "missing field 'shared_path_gbps'"),
    (("cci_stream_gbps = [2.96, 2.98, 2.99]", "cci_stream_gbps = [2.96, 2.98]"), "three numbers"),
])
def test_bandwidth_fields_validated(tmp_path: Path, edit: tuple[str, str], match: str) -> None:
    p = _variant(tmp_path, replace=edit)
    with pytest.raises(BoardError, match=match):
        load_board_file(p)


def test_port_plan_kv260() -> None:
    """Weight streams on the ports whose slowest stream is fastest (central scenario), the data port on
    a path no weight stream uses. Four streams: HP0-HP3 (HP1 and HP2 share XPI 4, 6.37 GB/s for the two:
    12.74 GB/s in all) beat HP0 HP1 HP3 HPC0 (the CCI stream, 2.98 GB/s, paces the four: 11.9), as
    bitnet-kv260 measured; three streams avoid XPI 4's sharing (HP0 HP1 HP3, as Manev et al.'s best)."""
    from edgellm.compiler.cost.ddr import port_plan

    kv = load_board("kv260")
    hp = [f"S_AXI_HP{i}_FPD" for i in range(4)]
    assert port_plan(kv, 4) == [*hp, "S_AXI_HPC0_FPD"]
    assert port_plan(kv, 3) == [hp[0], hp[1], hp[3], "S_AXI_HPC0_FPD"]
    assert port_plan(kv, 2) == [hp[0], hp[1], hp[3]]  # the data port off XPI 4 (HP1's)
    assert port_plan(kv, 1) == [hp[0], hp[1]]
    z2 = load_board("pynq_z2")
    assert port_plan(z2, 4) == [f"S_AXI_HP{i}" for i in (0, 1, 2, 3, 0)]  # round-robin beyond the ports


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vivado_design_and_model_agree_on_ports(name: str) -> None:
    """compiler/vivado_tcl.py connects every m_axi bundle where cost_ddr.port_plan (the model's) puts it."""
    from edgellm.compiler.cost.ddr import port_plan
    from edgellm.compiler.vivado_tcl import maxi_bundles, port_assignment

    b = load_board(name)
    for n in range(1, 6):
        assert port_assignment(b, n) == list(zip(maxi_bundles(n), port_plan(b, n), strict=True))


def test_shared_xpi_is_charged() -> None:
    """Four 128-bit weight streams at 250 MHz on the KV260 move 16 GB/s only in the high scenario: in
    the central one HP1 and HP2 share XPI 4 (6.37 GB/s) and pace the four to 12.74 GB/s, the 12.73 GB/s
    bitnet-kv260 measured (the figure the central XPI share is derived from, not a prediction); in the
    low and high ones its address sweep's worst and best XPI 4 pair, 5.62 and 7.60 GB/s. (Before: four
    independent ports at the DDR's 15.9 GB/s.)"""
    from edgellm.compiler.cost.ddr import bandwidth, stream_rates
    from edgellm.compiler.design import DesignParams

    kv = load_board("kv260")
    p = DesignParams(rows=16, weight_ports=4)
    got = {s: bandwidth(kv.with_scenario(s), p).weights / 1e9 for s in ("low", "central", "high")}
    assert got["central"] == pytest.approx(12.74, abs=0.01) and got["low"] == pytest.approx(11.24)
    assert got["high"] == pytest.approx(15.2)
    hp = [f"S_AXI_HP{i}_FPD" for i in range(4)]
    shared = stream_rates(kv, [hp[1], hp[2]], 4e9)
    alone = stream_rates(kv, [hp[1], hp[3]], 4e9)  # each alone on its XPI: the measured lone-stream rate
    assert shared == [3.185e9, 3.185e9] and alone == [3.85e9, 3.85e9]
    assert stream_rates(kv.with_scenario("high"), [hp[1], hp[3]], 4e9) == [3.94e9, 3.94e9]
    assert stream_rates(kv, ["S_AXI_HPC0_FPD"], 4e9) == [2.98e9]
    # at 200 MHz a port moves 3.2 GB/s, about XPI 4's share of 3.185 in the central scenario
    assert bandwidth(kv, p.replace(clock_mhz=200.0)).weights == pytest.approx(4 * 3.185e9)
