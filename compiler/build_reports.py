"""Reports of `edgellm build`, gathered into the project for the calibration work.

After Vitis HLS: the synthesis reports (hls/edgellm_hls/solution1/syn/report: csynth.rpt, csynth.xml
and the per-module <module>_csynth.rpt/.xml), the co-simulation reports if it ran (sim/report), and the
m_axi burst/widen and dataflow messages of the log. After Vivado: the utilisation and timing reports
and timing.json that vivado/build.tcl writes. Everything goes under report/build/, with summary.json:
resources (LUT, FF, DSP, BRAM36, URAM; the keys of compiler/cost/memory.py), the estimated and achieved
clock, the latency and every loop's II and depth, for comparison with `edgellm estimate`'s projection.

The csynth.xml layout (Vitis HLS 2020.2 and later): <profile> with UserAssignments (Part,
TopModelName, TargetClockPeriod), PerformanceEstimates (SummaryOfTimingAnalysis/EstimatedClockPeriod,
SummaryOfOverallLatency, SummaryOfLoopLatency with one element per loop, nested loops inside their
parent), AreaEstimates (Resources, AvailableResources: BRAM_18K, DSP, FF, LUT, URAM) and
ModuleInformation/Module (the same per module).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgellm.compiler.hls_tcl import HLS_PROJECT, SOLUTION
from edgellm.errors import EdgeLLMError
from edgellm.runtime import jsonfile

BUILD_REPORTS = "report/build"  # relative to the project
SUMMARY = "summary.json"
VIVADO_SUBDIR = "vivado"  # compiler/vivado_tcl.py REPORT_DIR = BUILD_REPORTS/VIVADO_SUBDIR
# csynth.xml resource tags -> compiler/cost/memory.py KINDS (BRAM_18K counted in BRAM36 halves)
CSYNTH_RESOURCES = {"LUT": "lut", "FF": "ff", "DSP": "dsp", "BRAM_18K": "bram36", "URAM": "uram"}
# Vivado report_utilization rows (UltraScale+ and 7-series names) -> KINDS
UTIL_ROWS = {"CLB LUTs": "lut", "Slice LUTs": "lut", "CLB Registers": "ff", "Slice Registers": "ff",
             "Block RAM Tile": "bram36", "URAM": "uram", "DSPs": "dsp"}
# vitis_hls.log lines worth keeping: burst inference (214-115 and kin), failed bursts/widening
# (UG1448 "Burst Inference Failure" 214-2xx, 214-353), dataflow canonical-form warnings (214-169...).
LOG_PATTERNS = {
    "bursts": re.compile(r"burst .*(inferred|of length)", re.I),
    "burst_failures": re.compile(r"WARNING: \[HLS 214-(2\d\d|353)\]"),
    "dataflow_warnings": re.compile(r"WARNING: \[HLS [0-9-]+\].*(dataflow|canonical|non-canonical)", re.I),
}
MAX_LOG_LINES = 200  # per category
LOOP_FIELDS = {"ii": "PipelineII", "depth": "PipelineDepth", "trip_count": "TripCount", "latency": "Latency"}


def _num(text: str | None) -> float | None:
    """A csynth number ('12', '3.456', '1.2e+03'); None for '-', 'undef', '~' ranges and absence."""
    if text is None:
        return None
    try:
        v = float(text.strip())
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _int(text: str | None) -> int | None:
    v = _num(text)
    return None if v is None else int(v)


def _count(el: ET.Element, tag: str) -> int | None:
    """An integer field, or the max of its <range><min/><max/></range> (variable trip counts)."""
    v = _int(el.findtext(tag))
    return v if v is not None else _int(el.findtext(f"{tag}/range/max"))


def _resources(el: ET.Element | None) -> dict[str, float]:
    """csynth Resources element -> {lut, ff, dsp, bram36, uram} (bram36 = BRAM_18K / 2)."""
    out: dict[str, float] = {}
    if el is None:
        return out
    for tag, kind in CSYNTH_RESOURCES.items():
        v = _num(el.findtext(tag))
        if v is not None:
            out[kind] = v / 2 if tag == "BRAM_18K" else v
    return out


def _loops(elems: Iterable[ET.Element], module: str, prefix: str = "") -> list[dict[str, Any]]:
    """Every loop of a SummaryOfLoopLatency's children (nested loops named parent/child)."""
    out: list[dict[str, Any]] = []
    for loop in elems:
        name = prefix + (loop.findtext("Name") or loop.tag)
        fields = {k: _count(loop, tag) for k, tag in LOOP_FIELDS.items()}
        out.append({"module": module, "loop": name, **fields})
        out += _loops([c for c in loop if c.find("TripCount") is not None], module, name + "/")
    return out


def _children(el: ET.Element | None) -> list[ET.Element]:
    return [] if el is None else list(el)


def parse_csynth_xml(path: Path) -> dict[str, Any]:
    """The summary of a Vitis HLS csynth.xml: top, part, clocks, latency, resources, every loop's II."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise EdgeLLMError(f"{path}: not a readable csynth.xml ({e})") from None
    if root.tag != "profile":
        raise EdgeLLMError(f"{path}: not a csynth.xml (root element <{root.tag}>, expected <profile>)")
    ua, perf = root.find("UserAssignments"), root.find("PerformanceEstimates")
    top = (ua.findtext("TopModelName") if ua is not None else None) or "top"
    target = _num(ua.findtext("TargetClockPeriod")) if ua is not None else None
    est = _num(perf.findtext("SummaryOfTimingAnalysis/EstimatedClockPeriod")) if perf is not None else None
    lat = perf.find("SummaryOfOverallLatency") if perf is not None else None
    loops = _loops(_children(perf.find("SummaryOfLoopLatency") if perf is not None else None), top)
    for mod in root.findall("ModuleInformation/Module"):
        name = mod.findtext("Name") or "module"
        if name != top:
            loops += _loops(_children(mod.find("PerformanceEstimates/SummaryOfLoopLatency")), name)
    return {
        "top": top, "part": ua.findtext("Part") if ua is not None else None,
        "target_clock_ns": target, "estimated_clock_ns": est,
        "estimated_fmax_mhz": round(1000.0 / est, 3) if est else None,
        "latency_cycles": {k: _int(lat.findtext(tag)) if lat is not None else None for k, tag in
                           (("best", "Best-caseLatency"), ("worst", "Worst-caseLatency"),
                            ("interval_min", "Interval-min"), ("interval_max", "Interval-max"))},
        "resources": _resources(root.find("AreaEstimates/Resources")),
        "available": _resources(root.find("AreaEstimates/AvailableResources")),
        "loops": loops,
    }


def parse_utilization(text: str) -> dict[str, float]:
    """Used LUT/FF/BRAM36/URAM/DSP from a Vivado report_utilization table (the first 'Used' column)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        name = cells[1].rstrip("*").strip() if len(cells) >= 4 and line.startswith("| ") else ""
        if name not in UTIL_ROWS or UTIL_ROWS[name] in out:
            continue
        v = _num(cells[2])
        if v is not None:
            out[UTIL_ROWS[name]] = v
    return out


def log_messages(log: Path) -> dict[str, list[str]]:
    """The burst, burst-failure and dataflow lines of a vitis_hls.log (each category capped)."""
    out: dict[str, list[str]] = {k: [] for k in LOG_PATTERNS}
    try:
        with open(log, errors="replace") as f:
            for line in f:
                for k, pat in LOG_PATTERNS.items():
                    if pat.search(line) and len(out[k]) < MAX_LOG_LINES:
                        out[k].append(line.strip())
    except OSError:
        pass
    return out


def parse_cosim_rpt(text: str) -> dict[str, Any]:
    """Status and latency (min/avg/max cycles) of a Vitis HLS <top>_cosim.rpt result table."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) >= 6 and cells[1] in ("Verilog", "VHDL") and cells[2] in ("Pass", "Fail"):
            return {"rtl": cells[1], "status": cells[2], "latency_cycles": {
                "min": _int(cells[3]), "avg": _num(cells[4]), "max": _int(cells[5])}}
    return {"status": None}


def _replace_dir(src: Path, dst: Path) -> list[Path]:
    """Copy src's report files to dst (dst is ours: replaced whole); the files copied."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    out = []
    for f in sorted(src.iterdir()):
        if f.is_file() and not f.is_symlink() and f.suffix in (".rpt", ".xml", ".log", ".json"):
            shutil.copyfile(f, dst / f.name)
            out.append(dst / f.name)
    return out


def gather_hls(project: Path) -> list[Path]:
    """Copy the HLS synthesis and (if run) co-simulation reports into report/build/hls and /cosim."""
    sol = project / "hls" / HLS_PROJECT / SOLUTION
    out: list[Path] = []
    for src, name in ((sol / "syn" / "report", "hls"), (sol / "sim" / "report", "cosim")):
        if src.is_dir() and not src.is_symlink():
            out += _replace_dir(src, project / BUILD_REPORTS / name)
    return out


def _vivado_summary(rep: Path, target_ns: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    util = rep / "utilization.rpt"
    if util.is_file():
        out["resources"] = parse_utilization(util.read_text(errors="replace"))
    try:
        timing = jsonfile.loads((rep / "timing.json").read_text())
    except (OSError, ValueError):
        return out
    if isinstance(timing, dict):
        out["timing"] = {k: _num(str(v)) for k, v in timing.items()}
        wns = out["timing"].get("wns_ns")
        if wns is not None and target_ns:
            out["achieved_clock_ns"] = round(target_ns - wns, 4)
            out["achieved_fmax_mhz"] = round(1000.0 / (target_ns - wns), 3)
    return out


def write_summary(project: Path, clock_mhz: float | None = None) -> dict[str, Any]:
    """report/build/summary.json from what the build left (HLS, cosim, Vivado); returns the summary."""
    base = project / BUILD_REPORTS
    summary: dict[str, Any] = {}
    csynth = base / "hls" / "csynth.xml"
    if csynth.is_file():
        summary["hls"] = parse_csynth_xml(csynth)
    log = project / "report" / "vitis_hls.log"
    if log.is_file():
        summary["hls_messages"] = log_messages(log)
    cosim = sorted((base / "cosim").glob("*_cosim.rpt")) if (base / "cosim").is_dir() else []
    if cosim:
        summary["cosim"] = parse_cosim_rpt(cosim[0].read_text(errors="replace"))
    target = summary.get("hls", {}).get("target_clock_ns") or (1000.0 / clock_mhz if clock_mhz else None)
    viv = _vivado_summary(base / VIVADO_SUBDIR, target)
    if viv:
        summary["vivado"] = viv
    write_json(base / SUMMARY, summary)
    return summary


def write_json(path: Path, data: dict[str, Any]) -> None:
    """path's JSON through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
