"""A calibration file's LM head row against the design's (issue #19 follow-up): `head_row_bytes` (the row the
kit's head run read, recorded at the file's top level) reaches Measured, and estimate / compile --measured
print one `note:` line on stderr when it is not the model's head row (cost/lm_head.py row_bytes: hidden
bytes for the int8 head), naming the kit run that measures it. The ratio is still applied (a note, not a
refusal: compiler/calibrate/measured.py head_row_note says why). The files here are written by hand (the
emulator's own file is tests/test_calibrate.py's), so these run without the C simulation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgellm.boards import load_board
from edgellm.cli import app
from edgellm.compiler.calibrate import measured
from edgellm.compiler.cost import lm_head
from edgellm.compiler.design import DesignParams
from edgellm.compiler.design_bytes import HEAD_ROW_SCALE_BYTES, lm_head_bytes
from edgellm.models.config import PRESETS, ModelConfig
from edgellm.runtime.calibrate import FORMAT

runner = CliRunner()
LARGE = PRESETS["bitnet_b1_58-large"]  # hidden 1536
ROW_NOTE = "LM head ratio was measured at"


def _file(tmp_path: Path, row: object = 2048, ratio: float | None = 0.8, name: str = "cal.json") -> Path:
    """A KV260 calibration file as the kit writes one (measured-class figures); row None: no
    head_row_bytes (a file older than the head run records none)."""
    d: dict = {"format": FORMAT, "board": "kv260", "emulated": False, "date": "2026-12-01T00:00:00+00:00",
               "clock_mhz": 249.9975, "kit": {"weight_ports": 4, "port_width_bits": 128},
               "figures": {"ddr_pl_gbps": 13.5, "weights_gbps": 12.0, "shared_path_gbps": 6.0,
                           "cci_stream_gbps": 2.9}}
    if ratio is not None:
        d["figures"]["head_stream_ratio"] = ratio
    if row is not None:
        d["head_row_bytes"] = row
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


def test_row_bytes_is_the_heads_row() -> None:
    """The one function the note compares with is the row lm_head.seconds prices: the int8 head's bytes
    (less its fp32 row scales) over its rows, hidden bytes; fp16 twice that."""
    for cfg in (LARGE, PRESETS["bitnet-b1.58-2B-4T"]):
        rows = lm_head_bytes(cfg, 8) - cfg.vocab_size * HEAD_ROW_SCALE_BYTES
        assert lm_head.row_bytes(cfg, 8) * cfg.vocab_size == rows
        assert lm_head.row_bytes(cfg, 8) == cfg.hidden_size
        assert lm_head.row_bytes(cfg, 16) == 2 * cfg.hidden_size


def test_measured_carries_the_row(tmp_path: Path) -> None:
    """The row reaches Measured and the board's source line; a file without it reads as None; both survive
    BuildConfig's round trip, and a project's config from before the field still reads."""
    m = measured.read_measured(_file(tmp_path, 1536))
    assert m.head_row_bytes == 1536 and measured.Measured.from_config(m.to_config()) == m
    source = m.apply(load_board("kv260")).sources["measured"]
    assert "LM head rows 0.800 x the weight streams (1536-byte rows)" in source
    old = measured.read_measured(_file(tmp_path, None))
    assert old.head_row_bytes is None and measured.Measured.from_config(old.to_config()) == old
    cfg = m.to_config()
    del cfg["head_row_bytes"]
    assert measured.Measured.from_config(cfg).head_row_bytes is None
    del cfg["head_stream_ratio"]
    assert measured.Measured.from_config(cfg).head_stream_ratio is None
    with pytest.raises(measured.CalibrationFileError, match="head_row_bytes must be"):
        measured.Measured.from_config({**m.to_config(), "head_row_bytes": -1})


@pytest.mark.parametrize("row", [0, -2048, 2048.0, "2048", True])
def test_bad_row_is_one_line(tmp_path: Path, row: object) -> None:
    res = runner.invoke(app, ["estimate", "--preset", "bitnet_b1_58-large", "--board", "kv260", "--measured",
                              str(_file(tmp_path, row))])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "head_row_bytes must be a whole number" in err


def test_head_row_note() -> None:
    """A note when the rows differ (or the file does not record its row), naming both rows and the kit
    run; none when they agree, when the file has no head ratio, or when the head is not on the fabric."""
    p = DesignParams()
    m = measured.Measured(path="cal.json", board="kv260", emulated=False, date="d", clock_mhz=250.0,
                          ddr_pl_gbps=13.5, weights_gbps=12.0, head_stream_ratio=0.8, head_row_bytes=2048)
    line = measured.head_row_note(m, LARGE, p)
    assert line == ("note: cal.json's LM head ratio was measured at 2048-byte rows; bitnet_b1_58-large's "
                    "head rows are 1536 bytes (hidden 1536 at 8 bits), applied as measured; to measure this "
                    "model's: edgellm calibrate KIT --head-row-bytes 1536")
    assert measured.head_row_note(m, LARGE, p.replace(lm_head_bits=16)).endswith("--head-row-bytes 3072")
    assert measured.head_row_note(m, PRESETS["llama-3.2-1b"], p) is None  # hidden 2048
    assert measured.head_row_note(dataclasses.replace(m, head_row_bytes=1536), LARGE, p) is None
    assert measured.head_row_note(dataclasses.replace(m, head_stream_ratio=None), LARGE, p) is None
    assert measured.head_row_note(m, LARGE, p.replace(lm_head_on_fabric=False)) is None
    unknown = measured.head_row_note(dataclasses.replace(m, head_row_bytes=None), LARGE, p)
    assert unknown is not None and "rows of a size it does not record" in unknown


def _fixed_explore(monkeypatch: pytest.MonkeyPatch, seen: dict) -> None:
    """dse.explore replaced by a fixed design (the search is other tests' subject, and slow)."""
    from edgellm.compiler import dse
    from edgellm.compiler.estimate import estimate

    def fixed(cfg, board, base=None, limits=None, clock_mhz=None, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen["board"] = board
        p = DesignParams(tables=15, weight_ports=4, weight_buffer="bram", prefill_token_block=8,
                         clock_mhz=clock_mhz or board.pl_clock_mhz)
        return dse.DseResult(p, estimate(cfg, board, p), 1, 1)
    monkeypatch.setattr(dse, "explore", fixed)


def test_estimate_notes_another_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """estimate --measured: one note line on stderr at 2048-byte rows for a 1536-wide model, the ratio
    applied all the same; none for a file measured at 1536."""
    seen: dict = {}
    _fixed_explore(monkeypatch, seen)
    args = ["estimate", "--preset", "bitnet_b1_58-large", "--board", "kv260", "--measured"]
    res = runner.invoke(app, [*args, str(_file(tmp_path, 2048))])
    assert res.exit_code == 0, res.output
    notes = [ln for ln in res.stderr.splitlines() if ROW_NOTE in ln]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "--head-row-bytes 1536" in notes[0]
    assert ROW_NOTE not in res.stdout and seen["board"].head_stream_ratio == 0.8
    res = runner.invoke(app, [*args, str(_file(tmp_path, 1536))])
    assert res.exit_code == 0 and ROW_NOTE not in res.output


def test_estimate_lowbit_notes_the_int8_heads_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A low-bit model's int8 head reads hidden-byte rows too (qwen2.5-0.5b: 896); with --lowbit-head the
    head is a linear on the engine and the ratio is not used: no note."""
    from edgellm.commands import estimate_lowbit

    ran: list = []
    monkeypatch.setattr(estimate_lowbit, "estimate_lowbit", lambda *a, **kw: ran.append(a))
    args = ["estimate", "--preset", "qwen2.5-0.5b", "--weights", "q4_0", "--board", "kv260", "--measured",
            str(_file(tmp_path, 2048))]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "measured at 2048-byte rows; qwen2.5-0.5b's head rows are 896 bytes" in res.stderr and ran
    res = runner.invoke(app, [*args, "--lowbit-head"])
    assert res.exit_code == 0, res.output
    assert ROW_NOTE not in res.output and len(ran) == 2


def test_compile_notes_another_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compile --measured: the note for the compiled model's rows (hidden 64 here; the checkpoint's
    directory names it) on stderr, and the project's config keeps the file's row."""
    from edgellm.models.loaders.hf_bitnet import save_hf_bitnet
    from edgellm.models.random_model import random_model

    _fixed_explore(monkeypatch, {})
    cfg = ModelConfig(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=96, vocab_size=300,
                      max_context=64, bos_id=1, eos_id=2, name="cal")
    ckpt = save_hf_bitnet(random_model(cfg, seed=3, density=0.5), tmp_path / "ckpt")
    out = tmp_path / "proj"
    res = runner.invoke(app, ["compile", str(ckpt), "--board", "kv260", "-o", str(out), "--measured",
                              str(_file(tmp_path, 2048)), "--no-onnx-reference", "--reference-decode", "1"])
    assert res.exit_code == 0, res.output
    assert "measured at 2048-byte rows; ckpt's head rows are 64 bytes" in res.stderr
    assert "edgellm calibrate KIT --head-row-bytes 64" in res.stderr and ROW_NOTE not in res.stdout
    man = json.loads((out / "manifest.json").read_text())
    assert man["build"]["config"]["measured"]["head_row_bytes"] == 2048


def test_estimate_json_carries_the_head_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """estimate --json --measured: each fitting board's record holds what the note says (the file's row,
    the design's, whether the ratio is applied, the note's text; note None when the rows agree); without
    --measured there is no such record."""
    _fixed_explore(monkeypatch, {})
    args = ["estimate", "--preset", "bitnet_b1_58-large", "--board", "kv260", "--json"]
    f = _file(tmp_path, 2048)
    res = runner.invoke(app, [*args, "--measured", str(f)])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["boards"]["kv260"]["measured_head_row"]
    note = measured.head_row_note(measured.read_measured(f), LARGE, DesignParams())
    assert note is not None and row == {
        "file": str(f), "head_stream_ratio": 0.8, "ratio_applied": True, "calibration_head_row_bytes": 2048,
        "design_head_row_bytes": 1536, "note": note.removeprefix("note: ")}
    assert "--head-row-bytes 1536" in row["note"] and [ln for ln in res.stderr.splitlines()
                                                       if ROW_NOTE in ln] == [note]
    res = runner.invoke(app, [*args, "--measured", str(_file(tmp_path, 1536))])
    row = json.loads(res.stdout)["boards"]["kv260"]["measured_head_row"]
    assert row["note"] is None and row["calibration_head_row_bytes"] == row["design_head_row_bytes"] == 1536
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "measured_head_row" not in json.loads(res.stdout)["boards"]["kv260"]


def test_estimate_lowbit_json_carries_the_head_row(tmp_path: Path) -> None:
    """The low-bit estimate's --json (its int8 head: hidden-byte rows, qwen2.5-0.5b 896) carries it too;
    with --lowbit-head the ratio is not used and there is none."""
    args = ["estimate", "--preset", "qwen2.5-0.5b", "--weights", "q4_0", "--board", "kv260", "--json",
            "--measured", str(_file(tmp_path, None))]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["boards"]["kv260"]["measured_head_row"]
    assert row["calibration_head_row_bytes"] is None and row["design_head_row_bytes"] == 896
    assert row["ratio_applied"] and "rows of a size it does not record" in row["note"]
    res = runner.invoke(app, [*args, "--lowbit-head"])
    assert res.exit_code == 0 and "measured_head_row" not in json.loads(res.stdout)["boards"]["kv260"]
