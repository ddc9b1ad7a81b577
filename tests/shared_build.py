"""Fake `edgellm build` results for tests of the re-projection (estimate DIR --check, report DIR): a build
summary as compiler/build_reports.write_summary leaves it after Vivado, written into a project."""

from __future__ import annotations

import json
from pathlib import Path

from edgellm.compiler.build_reports import BUILD_REPORTS, SUMMARY


def build_summary(mhz: float, wns: float, lut: float, ff: float = 1000.0) -> dict:
    """A summary as write_summary leaves it after Vivado: timing.json's slack, the achieved clock
    (target period less WNS) and report_utilization's resources."""
    target = 1000.0 / mhz
    return {"vivado": {"resources": {"lut": lut, "ff": ff, "dsp": 10, "bram36": 4, "uram": 0},
                       "timing": {"wns_ns": wns, "whs_ns": 0.01, "tns_ns": min(wns, 0) * 10},
                       "achieved_clock_ns": round(target - wns, 4),
                       "achieved_fmax_mhz": round(1000.0 / (target - wns), 3)}}


def write_summary(project: Path, summary: dict | None) -> None:
    """The project's build summary (None: removed)."""
    path = project / BUILD_REPORTS / SUMMARY
    if summary is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary))
