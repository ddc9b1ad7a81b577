"""compiler/build_reports.py: the csynth.xml / utilisation / cosim / log parsers and the report gathering of
`edgellm build`. The inputs in tests/data/build_reports are hand-written samples of the documented
formats (see the comment in each file), not outputs of Vitis HLS or Vivado."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from edgellm.compiler.build_reports import (
    BUILD_REPORTS,
    SUMMARY,
    gather_hls,
    log_messages,
    parse_cosim_rpt,
    parse_csynth_xml,
    parse_utilization,
    write_summary,
)
from edgellm.compiler.cost.memory import KINDS
from edgellm.compiler.hls_tcl import HLS_PROJECT, SOLUTION
from edgellm.compiler.vivado_tcl import REPORT_DIR
from edgellm.errors import EdgeLLMError

SAMPLES = Path(__file__).parent / "data" / "build_reports"


def test_parse_csynth_xml_sample() -> None:
    s = parse_csynth_xml(SAMPLES / "csynth.xml")
    assert (s["top"], s["part"]) == ("edgellm_top", "xck26-sfvc784-2LV-c")
    assert s["target_clock_ns"] == 4.0 and s["estimated_clock_ns"] == 2.92
    assert s["estimated_fmax_mhz"] == pytest.approx(1000 / 2.92, abs=1e-3)
    assert s["latency_cycles"] == {"best": 1234, "worst": None, "interval_min": 1235, "interval_max": None}
    # the resource model's kinds; BRAM_18K counted in BRAM36
    assert s["resources"] == {"lut": 61234, "ff": 80123, "dsp": 700, "bram36": 98.5, "uram": 48}
    assert set(s["resources"]) == set(KINDS) and s["available"]["bram36"] == 144
    loops = {(x["module"], x["loop"]): x for x in s["loops"]}
    # a variable trip count (range) gives its max; nested loops are named parent/child; a loop that is
    # not pipelined has no II; the top's own ModuleInformation entry is not counted twice
    assert loops[("edgellm_top", "DESC_LOOP")] == {"module": "edgellm_top", "loop": "DESC_LOOP", "ii": None,
                                                    "depth": None, "trip_count": 64, "latency": None}
    assert loops[("edgellm_top", "DESC_LOOP/HEADER_LOOP")]["ii"] == 1
    compute = loops[("tlmm_compute_tile", "COMPUTE")]
    assert compute == {"module": "tlmm_compute_tile", "loop": "COMPUTE", "ii": 1, "depth": 6,
                       "trip_count": 480, "latency": 484}
    assert loops[("ew_engine", "VITIS_LOOP_161_1")]["ii"] == 2
    assert len(s["loops"]) == 4


@pytest.mark.parametrize("text, msg", [("<profile><oops></profile>", "not a readable csynth.xml"),
                                       ("<report/>", "expected <profile>")])
def test_parse_csynth_xml_errors(tmp_path: Path, text: str, msg: str) -> None:
    bad = tmp_path / "csynth.xml"
    bad.write_text(text)
    with pytest.raises(EdgeLLMError, match=msg):
        parse_csynth_xml(bad)
    with pytest.raises(EdgeLLMError, match="not a readable"):
        parse_csynth_xml(tmp_path / "absent.xml")


def test_parse_utilization_ultrascale_and_7series() -> None:
    assert parse_utilization((SAMPLES / "utilization.rpt").read_text()) == {
        "lut": 63001, "ff": 82004, "bram36": 98.5, "uram": 48, "dsp": 702}
    z7 = """| Slice LUTs*             | 30123 |     0 |          0 |     53200 | 56.62 |
|   LUT as Logic          | 29000 |     0 |          0 |     53200 | 54.51 |
| Slice Registers         | 40000 |     0 |          0 |    106400 | 37.59 |
| Block RAM Tile          |    70 |     0 |          0 |       140 | 50.00 |
| DSPs                    |   200 |     0 |          0 |       220 | 90.91 |
"""
    assert parse_utilization(z7) == {"lut": 30123, "ff": 40000, "bram36": 70, "dsp": 200}


def test_parse_cosim_and_log() -> None:
    c = parse_cosim_rpt((SAMPLES / "edgellm_top_cosim.rpt").read_text())
    assert c == {"rtl": "Verilog", "status": "Pass",
                 "latency_cycles": {"min": 120345, "avg": 130000, "max": 150001}}
    assert parse_cosim_rpt("no table here") == {"status": None}
    m = log_messages(SAMPLES / "vitis_hls.log")
    assert [len(m[k]) for k in ("bursts", "burst_failures", "dataflow_warnings")] == [2, 2, 1]
    assert "Multiple burst reads of length 1024" in m["bursts"][0]
    assert "214-353" in m["burst_failures"][1] and "214-169" in m["dataflow_warnings"][0]
    assert log_messages(SAMPLES / "absent.log") == {k: [] for k in ("bursts", "burst_failures",
                                                                     "dataflow_warnings")}


def fake_build_tree(project: Path) -> None:
    """What Vitis HLS and vivado/build.tcl leave: syn/sim reports, the log, Vivado reports."""
    sol = project / "hls" / HLS_PROJECT / SOLUTION
    (sol / "syn" / "report").mkdir(parents=True)
    (sol / "sim" / "report").mkdir(parents=True)
    shutil.copy(SAMPLES / "csynth.xml", sol / "syn" / "report" / "csynth.xml")
    (sol / "syn" / "report" / "csynth.rpt").write_text("== Vitis HLS Report (sample)\n")
    (sol / "syn" / "report" / "ew_engine_csynth.rpt").write_text("module report (sample)\n")
    (sol / "syn" / "report" / "notes.txt").write_text("not a report\n")
    shutil.copy(SAMPLES / "edgellm_top_cosim.rpt", sol / "sim" / "report" / "edgellm_top_cosim.rpt")
    (project / "report").mkdir()
    shutil.copy(SAMPLES / "vitis_hls.log", project / "report" / "vitis_hls.log")
    viv = project / REPORT_DIR
    viv.mkdir(parents=True)
    shutil.copy(SAMPLES / "utilization.rpt", viv / "utilization.rpt")
    (viv / "timing.json").write_text('{"wns_ns": 0.08, "whs_ns": 0.01, "tns_ns": 0.0}\n')


def test_gather_and_summary(tmp_path: Path) -> None:
    proj = tmp_path / "p"
    fake_build_tree(proj)
    stale = proj / BUILD_REPORTS / "hls" / "stale.rpt"
    stale.parent.mkdir(parents=True)
    stale.write_text("from an older build\n")
    copied = gather_hls(proj)
    base = proj / BUILD_REPORTS
    assert sorted(p.relative_to(base).as_posix() for p in copied) == [
        "cosim/edgellm_top_cosim.rpt", "hls/csynth.rpt", "hls/csynth.xml", "hls/ew_engine_csynth.rpt"]
    assert not stale.exists()  # report/build/hls is replaced whole
    s = write_summary(proj, clock_mhz=250.0)
    assert json.loads((base / SUMMARY).read_text()) == s
    assert s["hls"]["resources"]["lut"] == 61234 and s["cosim"]["status"] == "Pass"
    assert len(s["hls_messages"]["bursts"]) == 2
    v = s["vivado"]
    assert v["resources"]["dsp"] == 702 and v["timing"]["wns_ns"] == 0.08
    assert v["achieved_clock_ns"] == pytest.approx(4.0 - 0.08)  # csynth's target period less WNS
    assert v["achieved_fmax_mhz"] == pytest.approx(1000 / 3.92, abs=1e-3)


def test_summary_without_hls_reports(tmp_path: Path) -> None:
    """--skip-hls on a project without gathered HLS reports: the Vivado part alone, the manifest's clock."""
    proj = tmp_path / "p"
    viv = proj / REPORT_DIR
    viv.mkdir(parents=True)
    (viv / "timing.json").write_text('{"wns_ns": -0.5, "whs_ns": 0.02, "tns_ns": -12.0}')
    s = write_summary(proj, clock_mhz=200.0)
    assert set(s) == {"vivado"} and s["vivado"]["achieved_clock_ns"] == pytest.approx(5.5)
    (viv / "timing.json").write_text("{not json")
    assert write_summary(proj) == {}
    assert gather_hls(proj) == []


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_gather_skips_symlinks(tmp_path: Path) -> None:
    proj = tmp_path / "p"
    fake_build_tree(proj)
    rep = proj / "hls" / HLS_PROJECT / SOLUTION / "syn" / "report"
    secret = tmp_path / "secret.rpt"
    secret.write_text("outside the project\n")
    (rep / "link.rpt").symlink_to(secret)
    copied = gather_hls(proj)
    assert all(p.name != "link.rpt" for p in copied)
