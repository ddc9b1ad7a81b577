"""The sweep of the CLI against bad input (issue H2), second part: a compiled project's manifest edited by
hand (board, design, build record, rows per tile, model_source) and deploy's output path. Each case once
ended in an internal error (exit 3) or a misleading line; now it is one `error:` line and exit 2, or the
informational field is ignored. The fields were found by fuzzing every manifest leaf with estimate DIR,
report DIR, verify and deploy."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from shared_cli import one_error
from typer.testing import CliRunner

from edgellm.cli import app
from edgellm.errors import EdgeLLMError

runner = CliRunner()


# ---- a compiled project's manifest whose board section was edited ----

@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shared_project import make_project

    return make_project(tmp_path_factory.mktemp("made") / "p")


@pytest.mark.parametrize("field, value, needle", [
    ("pl_clock_mhz", "fast", "field 'pl_clock_mhz' must be int or float, got 'fast'"),
    ("lut", -1, "field 'lut' must be positive, got -1"),
    ("ddr_pl_fraction", [0.9, 0.5, 0.7], "field 'ddr_pl_fraction' must satisfy 0 < low <= central <= high"),
    ("scenario", "best", "field 'scenario' must be one of low, central, high, got 'best'"),
])
def test_edited_board_section_is_one_line(made: Path, tmp_path: Path, field: str, value: object,
                                          needle: str) -> None:
    """estimate DIR / report DIR rebuilt the Board from the manifest without the board files' checks:
    a string clock was a TypeError in cost/ddr.py (exit 3); a negative LUT count went into the figures."""
    import json

    proj = tmp_path / "p"
    shutil.copytree(made, proj)
    m = json.loads((proj / "manifest.json").read_text())
    m["board"][field] = value
    (proj / "manifest.json").write_text(json.dumps(m))
    for args in (["estimate", str(proj)], ["report", str(proj), "-o", str(tmp_path / "r.html")]):
        one_error(runner.invoke(app, args), "manifest.json (board section)", needle)
    assert not (tmp_path / "r.html").exists()


def test_board_record_round_trips_every_shipped_board() -> None:
    import dataclasses
    import json

    from edgellm.boards import board_from_record, load_all

    for b in load_all():
        for rec in (b, dataclasses.replace(b, head_stream_ratio=0.8, scenario="low")):
            back = board_from_record(json.loads(json.dumps(dataclasses.asdict(rec))), "m.json")
            assert back == rec and back.sources == rec.sources, b.name


@pytest.mark.parametrize("build", ["x", {"config": [1]}])
def test_edited_build_record_is_not_an_internal_error(made: Path, tmp_path: Path, build: object) -> None:
    """manifest.json's "build" record (how compile was run) is informational: a non-object in it was an
    AttributeError (exit 3) in estimate DIR and report DIR."""
    import json

    proj = tmp_path / "p"
    shutil.copytree(made, proj)
    m = json.loads((proj / "manifest.json").read_text())
    m["build"] = build
    (proj / "manifest.json").write_text(json.dumps(m))
    res = runner.invoke(app, ["estimate", str(proj)])
    assert res.exit_code == 0 and res.exception is None, res.output
    res = runner.invoke(app, ["report", str(proj), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 0 and (tmp_path / "r.html").is_file(), res.output


# ---- design parameters: numbers the cost model cannot take ----

@pytest.mark.parametrize("field, value, needle", [
    ("clock_mhz", 1e308, "clock_mhz must be a number of MHz in (0, 1000], got 1e+308"),
    ("clock_mhz", "250", "clock_mhz must be a number of MHz in (0, 1000], got '250'"),
    ("bits_per_weight", 1e308, "bits_per_weight must be null or a number in (0, 32], got 1e+308"),
    ("max_context", "x", "max_context must be an integer >= 0, got 'x'"),
])
def test_edited_design_section_is_one_line(made: Path, tmp_path: Path, field: str, value: object,
                                           needle: str) -> None:
    """DesignParams took any clock above 0 and any bits_per_weight above 0: 1e308 was a ZeroDivisionError
    / OverflowError in the cost model (exit 3), a string max_context a TypeError."""
    import json

    proj = tmp_path / "p"
    shutil.copytree(made, proj)
    m = json.loads((proj / "manifest.json").read_text())
    m["design"][field] = value
    (proj / "manifest.json").write_text(json.dumps(m))
    one_error(runner.invoke(app, ["estimate", str(proj)]), "bad design section", needle)


def test_set_bits_per_weight_out_of_range() -> None:
    one_error(runner.invoke(app, ["estimate", "--set", "bits_per_weight=1e308"]),
               "bits_per_weight must be null or a number in (0, 32]")


@pytest.mark.parametrize("rows", ["x", 1e308])
def test_verify_refuses_rows_per_tile_that_is_not_an_integer(made: Path, tmp_path: Path,
                                                             rows: object) -> None:
    """verify decodes weights.bin with the manifest's rows per tile (design.rows when weights has none, which
    the manifest schema does not check): 'x' was a ValueError from int() (exit 3)."""
    import json

    from edgellm.commands.run import open_project
    from edgellm.runtime.verify import model_from_image

    proj = tmp_path / "p"
    shutil.copytree(made, proj)
    m = json.loads((proj / "manifest.json").read_text())
    assert "rows_per_tile" not in m["weights"]
    m["design"]["rows"] = rows
    (proj / "manifest.json").write_text(json.dumps(m))
    want = re.escape(f"rows per tile must be a positive integer, got {rows!r}")
    with pytest.raises(EdgeLLMError, match=want):
        model_from_image(open_project(proj, verify=False))


@pytest.mark.parametrize("rows", [7, 1_000_000])
def test_rows_per_tile_other_than_the_designs_is_refused(made: Path, tmp_path: Path, rows: int) -> None:
    """A weights.rows_per_tile other than the design's rows (the engine reads its tiles at those) decoded
    the image at the wrong tiling: garbage weights, no error (calibrate-draft would calibrate on them)."""
    import json

    from edgellm.commands.run import open_project
    from edgellm.runtime.verify import model_from_image

    proj = tmp_path / "p"
    shutil.copytree(made, proj)
    m = json.loads((proj / "manifest.json").read_text())
    m["weights"]["rows_per_tile"] = rows
    (proj / "manifest.json").write_text(json.dumps(m))
    want = re.escape(f"weights.rows_per_tile {rows} is not its design's rows {m['design']['rows']!r}")
    with pytest.raises(EdgeLLMError, match=want):
        model_from_image(open_project(proj, verify=False))


@pytest.mark.parametrize("source", [-1, ["in/m"]])
def test_verify_takes_a_model_source_naming_no_checkpoint(made: Path, tmp_path: Path, source: object) -> None:
    """model_source is informational (the checkpoint compile read): a number or a list there was a
    TypeError from Path() in verify (exit 3); it names no checkpoint, so golden runs on the model rebuilt
    from weights.bin, with a note."""
    import json

    from edgellm.commands.run import open_project
    from edgellm.runtime.verify import Report, _model

    proj = tmp_path / "p"
    shutil.copytree(made, proj)
    m = json.loads((proj / "manifest.json").read_text())
    m["model_source"] = source
    (proj / "manifest.json").write_text(json.dumps(m))
    rep = Report(str(proj), "none", [], [], {}, [])
    assert _model(open_project(proj, verify=False), rep).config.name == "proj"
    assert rep.notes == [f"model source {source!r} not available: golden runs on the model rebuilt from "
                         "weights.bin"]


def test_deploy_under_a_file_names_the_file(made: Path, tmp_path: Path) -> None:
    """An archive path under a regular file said "cannot write f/x.tar.gz: File exists" (mkdir's EEXIST)."""
    (tmp_path / "f").write_text("the user's")
    out = tmp_path / "f" / "sub" / "x.tar.gz"
    one_error(runner.invoke(app, ["deploy", str(made), "-o", str(out), "--allow-missing-bitstream"]),
               f"cannot write {out}: {tmp_path / 'f'} is not a directory")
    assert (tmp_path / "f").read_text() == "the user's"
