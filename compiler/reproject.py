"""A built design re-projected: what `edgellm build`'s reports (report/build/summary.json,
compiler/build_reports.py) say about the plan `edgellm compile` made.

- Clock: Vivado's post-route worst negative slack gives the achieved clock (period = target - WNS).
  The design runs at the planned clock when timing is met (a positive slack is headroom, not speed) and
  at most at the achieved clock when it is not, so the speed is re-projected at min(planned, achieved).
  Without Vivado's timing, the csynth estimate of the clock stands in, labelled as an estimate.
- Utilisation: Vivado's post-route utilisation (else csynth's estimate) against the board and against
  the routing limits the exploration sized the design under (compiler/estimate.py UTIL_LIMITS, or the
  project's --lut-cap), next to what the resource model projected for it.
- A misfit is a clock below the plan, or a resource above the board or above those limits: one line each.

The clock and the utilisation come from the tools; every speed is still projected by the performance
model (docs/performance.md), over the board's bandwidth range (low, central, high) at that clock. A
low-bit design (design.matmul "lowbit") is projected by the low-bit engine's model with the tensor
formats its manifest records (compiler/reproject_lowbit.py), a ternary one by cost/model.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgellm.boards import SCENARIOS, Board
from edgellm.compiler.build_reports import BUILD_REPORTS, SUMMARY
from edgellm.compiler.design import DesignParams
from edgellm.compiler.lowbit_estimate import LowbitSource
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig

RESOURCE_KINDS = ("lut", "ff", "dsp", "bram36", "uram")  # compiler/cost/memory.py KINDS
PROMPT = 128  # the TTFT prompt length re-projected (README's and estimate's headline)
LABEL = ("clock and utilisation from the tools' reports; speeds projected by the performance model at that "
         "clock (not measured)")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def achieved_clock(summary: dict[str, Any], planned_mhz: float) -> dict[str, Any] | None:
    """The achieved clock of a build summary: Vivado's (post-route WNS) or csynth's estimate; None if the
    summary has neither. run_mhz is the clock the design can run at: min(planned, achieved)."""
    viv, hls = summary.get("vivado") or {}, summary.get("hls") or {}
    if _number(viv.get("achieved_fmax_mhz")) and viv["achieved_fmax_mhz"] > 0:
        fmax = float(viv["achieved_fmax_mhz"])
        wns = (viv.get("timing") or {}).get("wns_ns")
        src = f"Vivado post-route timing (WNS {wns:g} ns)" if _number(wns) else "Vivado post-route timing"
    elif _number(hls.get("estimated_fmax_mhz")) and hls["estimated_fmax_mhz"] > 0:
        fmax, src = float(hls["estimated_fmax_mhz"]), "Vitis HLS csynth estimate (before place and route)"
    else:
        return None
    return {"planned_mhz": planned_mhz, "achieved_fmax_mhz": round(fmax, 3),
            "run_mhz": round(min(planned_mhz, fmax), 3), "source": src}


def achieved_resources(summary: dict[str, Any]) -> tuple[dict[str, float], str] | None:
    """(used per kind, where from): Vivado's post-route utilisation, else csynth's estimate; None."""
    for key, src in (("vivado", "Vivado post-route utilisation"), ("hls", "Vitis HLS csynth estimate")):
        res = (summary.get(key) or {}).get("resources")
        if isinstance(res, dict):
            used = {k: float(res[k]) for k in RESOURCE_KINDS if _number(res.get(k))}
            if used:
                return used, src
    return None


def speeds(cfg: ModelConfig, board: Board, p: DesignParams, mhz: float,
           lowbit: LowbitSource | None = None) -> dict[str, dict[str, float]]:
    """Projected decode tok/s and TTFT(PROMPT) s of p run at mhz, at each bandwidth scenario (a low-bit
    design through the low-bit model with lowbit's formats)."""
    from edgellm.compiler.cost import model as cost_model

    if p.matmul == "lowbit":
        from edgellm.compiler import reproject_lowbit as rl
        from edgellm.compiler.lowbit_estimate import estimate_design

        return rl.speeds(_need(lowbit), board, estimate_design(_need(lowbit), board, p), mhz)

    q = p.replace(clock_mhz=mhz)
    out: dict[str, dict[str, float]] = {"decode_tok_s": {}, f"ttft_{PROMPT}_s": {}}
    for s in SCENARIOS:
        b = board.with_scenario(s)
        out["decode_tok_s"][s] = cost_model.decode_step(cfg, b, q).tokens_per_s
        out[f"ttft_{PROMPT}_s"][s] = cost_model.prefill(cfg, b, q, PROMPT).seconds
    return out


def utilisation(used: dict[str, float], board: Board, projected: dict[str, float],
                limits: dict[str, float]) -> dict[str, dict[str, float | None]]:
    """Per kind: used, available, fraction of the board, the routing limit, the model's projection."""
    out: dict[str, dict[str, float | None]] = {}
    for k, u in used.items():
        have = board.resource(k)
        out[k] = {"used": u, "available": have, "util": u / have if have else (0.0 if u == 0 else math.inf),
                  "limit": limits.get(k), "projected": projected.get(k)}
    return out


def misfits(rec: dict[str, Any]) -> list[str]:
    """One line per way the built design misses its plan (empty: it fits)."""
    out = []
    clock = rec.get("clock")
    if clock and clock["achieved_fmax_mhz"] < clock["planned_mhz"]:
        out.append(f"clock: achieved {clock['achieved_fmax_mhz']:g} MHz < planned "
                   f"{clock['planned_mhz']:g} MHz ({clock['source']})")
    for k, u in (rec.get("utilisation") or {}).items():
        if u["util"] > 1:
            out.append(f"{k}: {u['used']:,.0f} used > {u['available']:,} on the board "
                       f"({rec['resources_source']})")
        elif u["limit"] is not None and u["util"] > u["limit"]:
            out.append(f"{k}: {u['used']:,.0f} used = {u['util']:.0%} of the board > the {u['limit']:.0%} "
                       f"routing limit the design was sized under ({rec['resources_source']})")
    return out


def _need(lowbit: LowbitSource | None) -> LowbitSource:
    if lowbit is None:
        raise EdgeLLMError("a low-bit design is re-projected with its tensor formats (none given)")
    return lowbit


def projected_resources(cfg: ModelConfig, board: Board, p: DesignParams,
                        lowbit: LowbitSource | None = None) -> dict[str, float]:
    """The resource model's total for p per kind (the low-bit engine's model for a low-bit design)."""
    from edgellm.compiler.cost.resource_model import estimate_resources

    if p.matmul == "lowbit":
        from edgellm.compiler.lowbit_estimate import estimate_design

        return dict(estimate_design(_need(lowbit), board, p).resources)
    total = estimate_resources(cfg, board, p)["total"]
    return {k: float(getattr(total, k)) for k in RESOURCE_KINDS}


def reproject(cfg: ModelConfig, board: Board, p: DesignParams, summary: dict[str, Any],
              limits: dict[str, float] | None = None, lowbit: LowbitSource | None = None) -> dict[str, Any]:
    """The built design's record: its achieved clock and utilisation, the speed projected at the planned
    and at the run clock (each at the low, central and high bandwidth), the misfits. A low-bit design
    (p.matmul "lowbit") needs lowbit, its tensor formats. EdgeLLMError when the summary holds neither a
    clock nor a utilisation."""
    from edgellm.compiler.estimate import UTIL_LIMITS

    clock = achieved_clock(summary, p.clock_mhz)
    res = achieved_resources(summary)
    if clock is None and res is None:
        raise EdgeLLMError(f"{BUILD_REPORTS}/{SUMMARY} holds neither a clock nor a utilisation "
                           "(run edgellm build to the end)")
    rec: dict[str, Any] = {"label": LABEL, "model": cfg.name, "board": board.name, "clock": clock,
                           "planned_mhz": p.clock_mhz, "planned": speeds(cfg, board, p, p.clock_mhz, lowbit)}
    if p.matmul == "lowbit":
        rec["model_used"] = "compiler/cost/lowbit.py (the low-bit engine)"
    if clock is not None:
        rec["achieved"] = (rec["planned"] if clock["run_mhz"] == p.clock_mhz
                           else speeds(cfg, board, p, clock["run_mhz"], lowbit))
    if res is not None:
        proj = projected_resources(cfg, board, p, lowbit)
        rec["resources_source"] = res[1]
        rec["utilisation"] = utilisation(res[0], board, proj, {**UTIL_LIMITS, **(limits or {})})
    rec["misfits"] = misfits(rec)
    return rec


def _range(d: dict[str, float], fmt: str, unit: str = "") -> str:
    a, b = sorted((d["low"], d["high"]))
    return f"{fmt.format(d['central'])}{unit} ({fmt.format(a)}-{fmt.format(b)}{unit})"


def lines(rec: dict[str, Any]) -> list[str]:
    """The record as text: the clock, the speed at the planned and run clock, the utilisation, and one
    'MISFIT:' line per misfit."""
    out = []
    clock, ttft = rec.get("clock"), f"ttft_{PROMPT}_s"
    if clock is not None:
        out.append(f"clock: planned {clock['planned_mhz']:g} MHz, achieved {clock['achieved_fmax_mhz']:g} "
                   f"MHz ({clock['source']}); runs at {clock['run_mhz']:g} MHz")

    def speed(key: str, what: str) -> str:
        return (f"projected {what}: decode {_range(rec[key]['decode_tok_s'], '{:.1f}')} tok/s, "
                f"TTFT({PROMPT}) {_range(rec[key][ttft], '{:.3f}', ' s')}")

    out.append(speed("planned", f"at the planned clock ({rec['planned_mhz']:g} MHz)"))
    if clock is not None and clock["run_mhz"] < clock["planned_mhz"]:
        out.append(speed("achieved", f"at the achieved clock ({clock['run_mhz']:g} MHz)"))
    elif clock is not None:
        out.append("projected at the achieved clock: as planned (timing met at the planned clock)")
    if "utilisation" in rec:
        parts = []
        for k, u in rec["utilisation"].items():
            model = f", model {u['projected']:,.0f}" if u["projected"] is not None else ""
            parts.append(f"{k} {u['used']:,.0f}/{u['available']:,} ({u['util']:.0%}{model})")
        out.append(f"utilisation ({rec['resources_source']}): " + ", ".join(parts))
    out += [f"MISFIT: {m}" for m in rec["misfits"]]
    if not rec["misfits"]:
        out.append("fits: clock and utilisation within the plan")
    return out


def read_summary(project: Path) -> dict[str, Any] | None:
    """report/build/summary.json of a project (None when edgellm build has not written one)."""
    from edgellm.report.gather import read_json

    path = project / BUILD_REPORTS / SUMMARY
    if not path.exists():
        return None
    s = read_json(path, "the build summary")
    if not isinstance(s, dict):
        raise EdgeLLMError(f"{path}: not a build summary (expected a JSON object)")
    return s


@dataclass(frozen=True)
class ProjectDesign:
    """What a project's manifest records for re-projecting it: the model, the board, the design, its LUT
    cap as a limit, and for a low-bit design its tensor formats (weights.lowbit_model)."""

    cfg: ModelConfig
    board: Board
    params: DesignParams
    limits: dict[str, float]
    lowbit: LowbitSource | None = None


def open_design(project: Path) -> ProjectDesign:
    """The ProjectDesign of a compiled project (the manifest and its file set checked, not the hashes);
    EdgeLLMError in one line for a bad design, board or low-bit formats section."""
    from edgellm.commands.run import open_project
    from edgellm.report.gather import _board

    proj = open_project(project, verify=False)
    m, where = proj.manifest, str(project / "manifest.json")
    board = _board(m.get("board"), where)
    try:
        p = DesignParams(**m["design"])
    except (TypeError, ValueError, KeyError, EdgeLLMError) as e:
        raise EdgeLLMError(f"{where}: bad design section ({' '.join(str(e).split())[:200]})") from None
    lowbit = None
    if p.matmul == "lowbit":
        from edgellm.compiler.reproject_lowbit import source_from_manifest

        lowbit = source_from_manifest(m, proj.config, where)
    build = m.get("build")  # informational: a hand-edited non-object means no recorded LUT cap
    cfg = build.get("config") if isinstance(build, dict) else None
    over = cfg.get("overrides") if isinstance(cfg, dict) else None
    cap = over.get("lut_cap") if isinstance(over, dict) else None
    limits = {"lut": float(cap)} if _number(cap) and 0 < cap <= 1 else {}
    return ProjectDesign(proj.config, board, p, limits, lowbit)


def project_design(project: Path) -> tuple[ModelConfig, Board, DesignParams, dict[str, float]]:
    """The model, board and design a project's manifest records, and its LUT cap as a limit
    (open_design without the low-bit formats)."""
    d = open_design(project)
    return d.cfg, d.board, d.params, d.limits


def from_project(project: Path, summary: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The re-projection of a built project (None when it has no build summary)."""
    s = summary if summary is not None else read_summary(project)
    if s is None:
        return None
    d = open_design(project)
    return reproject(d.cfg, d.board, d.params, s, d.limits, d.lowbit)
