"""Board data files and their loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgellm.boards import BOARD_DIR, SOURCE_KEYS, Board, list_boards, load_board, load_board_file
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
