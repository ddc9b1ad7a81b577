"""`edgellm calibrate KIT --head-row-bytes N`: the kit's LM head run read in the design's head rows from the
host command, as the board script (run_calibration.py --head-row-bytes) already could. Our int8 head reads
row v at v * hidden bytes (hw/include/edgellm/lm_head_load.h), so the row to measure is the model's hidden
size; the default 2048 is no headline model's."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgellm.boards import load_board
from edgellm.cli import app
from edgellm.compiler.calibrate.kit import write_kit
from edgellm.compiler.design_bytes import HEAD_ROW_SCALE_BYTES, lm_head_bytes
from edgellm.models.config import PRESETS
from edgellm.runtime import calibrate as cal

runner = CliRunner()
HAVE_CSIM = importlib.util.find_spec("hls4ml") is not None and shutil.which(os.environ.get("CXX", "g++"))
SMALL = 64 << 10  # bytes per port and run


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KV260 kit: four 128-bit weight ports on HP0-HP3."""
    return write_kit(load_board("kv260"), tmp_path_factory.mktemp("kit") / "kv260")


def _one_line_error(res) -> str:  # noqa: ANN001
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in res.output, res.output
    return err


@pytest.mark.parametrize("preset, row", [("bitnet_b1_58-large", 1536), ("bitnet-b1.58-2B-4T", 2560)])
def test_head_row_is_the_models_hidden_size(preset: str, row: int) -> None:
    """The rows the option's help names: an int8 head's row is `hidden` bytes (its bytes, less the fp32
    row scales kept apart from the rows, over its rows)."""
    cfg = PRESETS[preset]
    rows_bytes = lm_head_bytes(cfg, 8) - cfg.vocab_size * HEAD_ROW_SCALE_BYTES
    assert rows_bytes == cfg.vocab_size * row and cfg.hidden_size == row
    assert row != cal.HEAD_ROW_BYTES


@pytest.mark.skipif(not HAVE_CSIM, reason="the C simulation needs g++ and hls4ml's ap_types")
def test_cli_runs_the_head_in_the_given_rows(kit: Path, tmp_path: Path) -> None:
    """The host command passes --head-row-bytes to the run: the file records the row, and the head run's
    ports each read the whole 1536-byte rows of their share (C simulation: one beat a cycle)."""
    out = tmp_path / "c.json"
    res = runner.invoke(app, ["calibrate", str(kit), "--device", "emu", "-o", str(out), "--bytes-per-port",
                              str(SMALL), "--repeat", "1", "--head-row-bytes", "1536"])
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())
    (head,) = [r for r in rec["runs"] if r["name"] == cal.HEAD_RUN]
    rows = SMALL // 1536
    assert rec["head_row_bytes"] == 1536 and head["bytes_per_port"] == rows * 1536
    assert head["samples"][0]["cycles"] == {f"w{i}": rows * 1536 // 16 for i in range(4)}


def test_cli_head_row_errors(kit: Path, tmp_path: Path) -> None:
    """A row that is not whole 16-byte beats, or longer than a port's bytes: one line, before any device
    is opened, and no file; the option only runs a kit."""
    out = tmp_path / "c.json"
    for row in ("1000", "8", str(SMALL + 4096)):
        res = runner.invoke(app, ["calibrate", str(kit), "--device", "emu", "-o", str(out),
                                  "--bytes-per-port", str(SMALL), "--head-row-bytes", row])
        assert "head row bytes" in _one_line_error(res)
    assert not out.exists()
    dest = tmp_path / "k"
    err = _one_line_error(runner.invoke(app, ["calibrate", "--head-row-bytes", "1536", "-o", str(dest)]))
    assert "--head-row-bytes" in err and "only when running a kit" in err
    assert not dest.exists()


def test_board_script_usage_names_every_option(kit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The kit's run_calibration.py: its usage line names every option its parser (runtime/calibrate.py
    board_main) takes, --head-row-bytes among them, with the row's default; the kit's README tells the
    board and host runs to give the model's hidden size."""
    with pytest.raises(SystemExit) as e:
        cal.board_main(["--help"])
    assert e.value.code == 0
    parsed = capsys.readouterr().out.split("\n\n")[0]  # argparse's usage paragraph
    options = set(re.findall(r"\[(-[-\w]+)", parsed)) - {"-h"}
    assert {"-o", "--device", "--head-row-bytes", "--force"} <= options
    usage = (kit / "run_calibration.py").read_text().split('"""')[1]
    assert [o for o in sorted(options) if not re.search(rf"\[{o}\b", usage)] == []
    assert f"default {cal.HEAD_ROW_BYTES}" in usage
    readme = " ".join((kit / "README.md").read_text().split())
    assert "python3 run_calibration.py --head-row-bytes HIDDEN" in readme
    assert "edgellm calibrate THIS_FOLDER --device pynq --head-row-bytes HIDDEN" in readme
    assert "1536 for bitnet_b1_58-large, 2560 for BitNet-b1.58-2B-4T" in readme
