"""The calibration file (runtime/calibrate.py, format FORMAT): a port set's record from its samples
(summarize), the figures the performance model takes (figures: compiler/calibrate/measured.py reads
them), the kit's timing and the tools, the atomic write (write_record) and the lines a person reads
(summary_lines). Board-side: numpy and pynq only, Python 3.10.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.runtime import jsonfile
from edgellm.runtime import probe_kit as pk
from edgellm.runtime import project_files as pf
from edgellm.runtime.calibrate_plan import CCI_PATH, HEAD_RUN, SHARES_RUN, CalibrationError, RunSpec, bundle
from edgellm.runtime.calibrate_session import Sample
from edgellm.runtime.port_shares import shares_of_rates

FORMAT = "edgellm.calibration/1"
EMULATED_NOTE = ("emulated: C simulation runs the probe's processes one after another and counts one beat "
                 "per cycle per port, so these are the ports' ideal rates, not a measurement of DDR")


def _gbps(nbytes: int, cycles: int, mhz: float) -> float:
    return nbytes / (cycles / (mhz * 1e6)) / 1e9


def summarize(spec: RunSpec, samples: list[Sample], port_bytes: dict[str, int], mhz: float,
              shares: tuple[int, ...] | None = None) -> dict[str, Any]:
    """A port set's record: its samples and the median GB/s per bundle and for the run (bundle b moving
    port_bytes[b]; bytes_per_port: the most one moves; a SHARES_RUN also records its shares and what each
    port moved)."""
    per = {b: statistics.median(_gbps(port_bytes[b], s.cycles[b], mhz) for s in samples)
           for b in samples[0].cycles}
    runs = [_gbps(sum(port_bytes[b] for b in s.cycles), s.total, mhz) for s in samples]
    rec = {"name": spec.name,
           "ports": {bundle(s): "write" if s == pk.DATA_SLOT and spec.write else "read" for s in spec.slots},
           "bytes_per_port": max(port_bytes.values()),
           "samples": [{"cycles": s.cycles, "total_cycles": s.total, "wall_s": round(s.wall_s, 6)}
                       for s in samples],
           "gbps": {b: round(v, 4) for b, v in per.items()},
           "total_gbps": round(statistics.median(runs), 4),
           "total_gbps_range": [round(min(runs), 4), round(max(runs), 4)]}
    if spec.at_shares:
        # how evenly the ports finished: the last port's cycles over the first's (1: together), median
        spread = statistics.median(max(s.cycles.values()) / min(s.cycles.values()) for s in samples)
        rec.update(shares=list(shares or ()), port_bytes=dict(port_bytes), finish_spread=round(spread, 4))
    return rec


def rate_shares_of(run: dict[str, Any], n: int) -> tuple[int, ...]:
    """The weight ports' shares in proportion to the rates a run of them together measured
    (runtime/port_shares.py's rule; equal shares spelled out as ones)."""
    return shares_of_rates([run["gbps"][f"w{i}"] for i in range(n)]) or (1,) * n


def figures(kit: pk.ProbeKit, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the performance model takes (compiler/calibrate/measured.py), from the runs."""
    by = {r["name"]: r for r in runs}
    n = kit.weight_ports
    weights, both = by["weights together"], by["weights + data writing"]
    paths = kit.ddr_paths
    streams = weights["gbps"]
    shared: dict[str, float] = {}
    for path in sorted({paths[f"w{i}"] for i in range(n)} - {CCI_PATH}):
        on = [f"w{i}" for i in range(n) if paths[f"w{i}"] == path]
        if len(on) > 1:
            shared[path] = round(len(on) * min(streams[b] for b in on), 4)
    cci = [streams[f"w{i}"] for i in range(n) if paths[f"w{i}"] == CCI_PATH]
    # a weight stream alone on its path (no other weight stream on it, not the CCI), all of them running
    lone = [streams[f"w{i}"] for i in range(n) if paths[f"w{i}"] != CCI_PATH
            and sum(paths[f"w{j}"] == paths[f"w{i}"] for j in range(n)) == 1]
    if not cci and paths["data"] == CCI_PATH:
        cci = [both["gbps"]["data"]]
    alone = {b: by[f"{b} alone"]["gbps"][b] for b in (f"w{i}" for i in range(n))}
    alone.update({"data read": by["data reading alone"]["gbps"]["data"],
                  "data write": by["data writing alone"]["gbps"]["data"]})
    head, at = by.get(HEAD_RUN), by.get(SHARES_RUN)
    return {"weights_gbps": weights["total_gbps"], "all_gbps": both["total_gbps"],
            "shares": at["shares"] if at else None, "shares_gbps": at["total_gbps"] if at else None,
            "shares_finish_spread": at["finish_spread"] if at else None,
            "head_gbps": head["total_gbps"] if head else None,
            "head_stream_ratio": round(head["total_gbps"] / weights["total_gbps"], 4) if head else None,
            "ddr_pl_gbps": max(weights["total_gbps"], both["total_gbps"]),
            "shared_path_gbps": min(shared.values()) if shared else None, "shared_paths_gbps": shared,
            "cci_stream_gbps": round(min(cci), 4) if cci else None,
            "port_stream_gbps": round(min(lone), 4) if lone else None,
            "weight_streams_gbps": streams, "port_alone_gbps": alone}


def kit_timing(kit: pk.ProbeKit) -> dict[str, Any] | None:
    """The kit's Vivado timing summary (report/build/vivado/timing.json), when it was built."""
    p = kit.path / "report" / "build" / "vivado" / "timing.json"
    try:
        with pf.open_regular(p) as f:
            data = jsonfile.loads(f.read(1 << 16).decode("utf-8"))
    except (EdgeLLMError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pynq_version() -> str | None:
    mod = sys.modules.get("pynq")
    return str(getattr(mod, "__version__", "unknown")) if mod else None


def write_record(path: Path, record: dict[str, Any], force: bool = False) -> Path:
    """Write the record as JSON to path (a temporary file beside it, then renamed); an existing file is
    replaced only with force."""
    path = Path(path)
    if path.exists() and not force:
        raise EdgeLLMError(f"{path} exists; pass --force to replace it")
    if path.is_dir():
        raise EdgeLLMError(f"{path} is a folder, not a file")
    try:
        text = json.dumps(record, indent=1, allow_nan=False) + "\n"
    except ValueError as e:
        raise CalibrationError(f"the calibration holds a number JSON cannot carry ({e})") from None
    pf.write_atomic(path, text.encode())
    return path


def summary_lines(record: dict[str, Any]) -> list[str]:
    """A few lines for a person: the clock, each port set's GB/s, the figures the model takes."""
    head = f"{record['board']}: PL clock {record['clock_mhz']:g} MHz, {record['device']}"
    lines = [head + (" -- EMULATED, not a measurement" if record["emulated"] else "")]
    for r in record["runs"]:
        ports = ", ".join(f"{b} {v:.2f}" for b, v in r["gbps"].items())
        lines.append(f"  {r['name']:<34} {r['total_gbps']:7.2f} GB/s  ({ports})")
    f = record["figures"]
    extra = "".join(f", {label} {f[k]:.2f}" for k, label in (("shared_path_gbps", "shared path"),
                                                              ("cci_stream_gbps", "CCI stream"),
                                                              ("port_stream_gbps", "lone stream"),
                                                              ("head_stream_ratio", "LM head rows x"))
                    if f.get(k) is not None)
    if f.get("shares_gbps") is not None:
        extra += (f", at shares {':'.join(map(str, f['shares']))} {f['shares_gbps']:.2f} (finish spread "
                  f"{f['shares_finish_spread']:.3f})")
    lines.append(f"  model: weights {f['weights_gbps']:.2f} GB/s, all PL streams {f['ddr_pl_gbps']:.2f}"
                 f"{extra}")
    return lines
