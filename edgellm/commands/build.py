"""`edgellm build DIR`: run the AMD tools on a compiled project: Vitis HLS (hls/run_hls.tcl: C
simulation, synthesis, IP export to hls/ip), then Vivado (vivado/build.tcl: block design, bitstream),
and leave <ip>.bit and <ip>.hwh in the project root, where PYNQ's Overlay loads them. The tools'
reports are gathered under report/build/ with a summary.json (compiler/build_reports.py): resources,
estimated and achieved clock, every loop's II, the burst/widen messages, co-simulation status, WNS.
Timing not met (WNS or WHS < 0) is an error: the bitstream is written, but may misbehave on the board.

Without the tools on PATH it prints what to install and the commands to run by hand, and exits 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from edgellm.runtime import jsonfile

HLS_TCL = "hls/run_hls.tcl"
BUILD_REPORTS = "report/build"  # compiler/build_reports.py BUILD_REPORTS
COSIM_PROFILE_HELP = "With --cosim: dataflow channel profiling (cosim_design -enable_dataflow_profiling)"
VIVADO_TCL = "vivado/build.tcl"
TOOLS_VERSION = "2024.1"
# One error line, as every bad-input or missing-tool case: what is missing, what to install, how to build
# by hand (docs/hls.md "`run_hls.tcl` and `edgellm build DIR`" has the same steps at length).
MISSING_TOOLS = (
    "error: edgellm build needs the AMD tools on PATH ({missing} not found): install Vivado and Vitis HLS "
    "{version} or newer for the board's device, `source` their settings64.sh and rerun "
    "`edgellm build {dir}`; or by hand: (cd {dir}/hls && vitis_hls -f run_hls.tcl) && (cd {dir}/vivado && "
    "vivado -mode batch -source build.tcl), which writes {ip}.bit and {ip}.hwh next to manifest.json")


def hls_command(tcl: Path) -> list[str] | None:
    """The Vitis HLS invocation for tcl: vitis_hls -f, else vitis-run --mode hls --tcl; None if absent."""
    if shutil.which("vitis_hls"):
        return ["vitis_hls", "-f", tcl.name]
    if shutil.which("vitis-run"):
        return ["vitis-run", "--mode", "hls", "--tcl", tcl.name]
    return None


def vivado_command(tcl: Path) -> list[str] | None:
    """The Vivado batch invocation for tcl; None if vivado is absent."""
    if shutil.which("vivado"):
        return ["vivado", "-mode", "batch", "-nojournal", "-notrace", "-source", tcl.name]
    return None


def run_logged(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> int:
    """Run cmd in cwd, streaming its output to the terminal and to log; return its exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    typer.echo(f"$ (cd {cwd} && {' '.join(cmd)})   [log: {log}]")
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            typer.echo(line.rstrip("\n"))
        return proc.wait()


def _manifest(project: Path) -> dict[str, Any]:
    try:
        m = jsonfile.loads((project / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return m if isinstance(m, dict) else {}


def ip_name(project: Path) -> str:
    """The IP / top name from the manifest (edgellm_top by default)."""
    try:
        return str(_manifest(project).get("interface", {}).get("ip_name", "edgellm_top"))
    except AttributeError:
        return "edgellm_top"


def clock_mhz(project: Path) -> float | None:
    """The design clock from the manifest, if it has one."""
    try:
        v = _manifest(project).get("design", {}).get("clock_mhz")
    except AttributeError:
        return None
    return float(v) if isinstance(v, (int, float)) and v > 0 else None


def collect_outputs(project: Path, ip: str) -> list[Path]:
    """<ip>.bit and <ip>.hwh in the project root (copied from vivado/build if the script did not)."""
    out = []
    for ext in ("bit", "hwh"):
        dst = project / f"{ip}.{ext}"
        if not dst.is_file():
            found = sorted((project / "vivado").rglob(f"*.{ext}"), key=lambda p: p.stat().st_mtime)
            if found:
                shutil.copyfile(found[-1], dst)
        if dst.is_file():
            out.append(dst)
    return out


def run_hls(project: Path, cmd: list[str], cosim: bool, cosim_profile: bool) -> None:
    """Vitis HLS in hls/ (C-sim, csynth, [cosim], export); its reports go to report/build either way."""
    from edgellm.compiler.build_reports import gather_hls
    from edgellm.errors import EdgeLLMError

    env = dict(os.environ)
    if cosim:
        env["EDGELLM_HLS_STEPS"] = "csim csynth cosim export"
    if cosim_profile:
        env["EDGELLM_COSIM_PROFILE"] = "1"
    log = project / "report" / "vitis_hls.log"
    rc = run_logged(cmd, project / "hls", log, env)
    gather_hls(project)
    if rc != 0:
        raise EdgeLLMError(f"Vitis HLS failed (exit {rc}); see {log} and {project / BUILD_REPORTS}")


def summary_lines(s: dict[str, Any]) -> list[str]:
    """The headline numbers of a build summary, one line per tool."""
    out = []
    hls, viv, cosim, msgs = s.get("hls"), s.get("vivado", {}), s.get("cosim"), s.get("hls_messages")
    if hls:
        res = ", ".join(f"{k} {v:g}" for k, v in hls["resources"].items())
        est, target = hls["estimated_clock_ns"], hls["target_clock_ns"]
        out.append(f"csynth: estimated clock {est} ns (target {target} ns); {res}")
        slow = [f"{x['module']}/{x['loop']} II={x['ii']}" for x in hls["loops"] if (x["ii"] or 1) > 1]
        if slow:
            out.append(f"csynth: loops above II=1: {', '.join(slow[:8])}{' ...' if len(slow) > 8 else ''}")
    if msgs:
        out.append(f"HLS log: {len(msgs['bursts'])} burst messages, {len(msgs['burst_failures'])} "
                   f"burst/widen warnings, {len(msgs['dataflow_warnings'])} dataflow warnings")
    if cosim:
        out.append(f"cosim: {cosim.get('status')}")
    if "timing" in viv:
        t = viv["timing"]
        fmax = f", achieved {viv['achieved_fmax_mhz']} MHz" if "achieved_fmax_mhz" in viv else ""
        out.append(f"vivado: WNS {t.get('wns_ns')} ns, WHS {t.get('whs_ns')} ns{fmax}")
    return out


def report_summary(project: Path) -> dict[str, Any]:
    """Write report/build/summary.json and print its headline numbers."""
    from edgellm.compiler.build_reports import SUMMARY, write_summary

    s = write_summary(project, clock_mhz(project))
    for line in summary_lines(s):
        typer.echo(line)
    reprojected = reproject_summary(project, s)
    typer.echo(f"reports: {project / BUILD_REPORTS} (summary: {SUMMARY})")
    if reprojected:
        typer.echo(f"the plan against the build again: edgellm estimate {project} [--check]")
    return s


def reproject_summary(project: Path, s: dict[str, Any]) -> bool:
    """Re-project the design at the achieved clock, compare the achieved utilisation with the board and
    the plan (compiler/reproject.py), print it (a MISFIT: line per miss) and record it in the summary
    as "reprojection". False when the summary has no clock and no utilisation to compare."""
    from edgellm.compiler.build_reports import SUMMARY, write_json
    from edgellm.compiler.reproject import from_project, lines

    if not (s.get("vivado") or s.get("hls")):
        return False
    rec = from_project(project, s)
    if rec is None:
        return False
    for line in lines(rec):
        typer.echo(line)
    s["reprojection"] = rec
    write_json(project / BUILD_REPORTS / SUMMARY, s)
    return True


def build_cmd(
    project: Annotated[Path, typer.Argument(help="Project directory written by edgellm compile")],
    skip_hls: Annotated[bool, typer.Option("--skip-hls", help="Reuse the IP exported to hls/ip")] = False,
    hls_only: Annotated[bool, typer.Option("--hls-only", help="Stop after Vitis HLS")] = False,
    cosim: Annotated[bool, typer.Option("--cosim", help="Also run RTL co-simulation (slow)")] = False,
    cosim_profile: Annotated[bool, typer.Option("--cosim-profile", help=COSIM_PROFILE_HELP)] = False,
) -> None:
    """Build the bitstream: Vitis HLS then Vivado (needs the AMD tools)."""
    from edgellm.errors import EdgeLLMError

    if not (project / "manifest.json").is_file():
        raise EdgeLLMError(f"{project} is not an edgellm project: manifest.json is missing "
                           "(run edgellm compile)")
    for rel in (HLS_TCL, VIVADO_TCL):
        if not (project / rel).is_file():
            raise EdgeLLMError(f"{project / rel} is missing (recompile the project with edgellm compile)")
    if cosim_profile and not cosim:
        raise EdgeLLMError("--cosim-profile needs --cosim")
    from edgellm.runtime.project import Project

    Project.open(project)  # a closed set: every file listed with its sha256, a valid ip_name (issue 14)
    ip = ip_name(project)
    hls_cmd, viv_cmd = hls_command(project / HLS_TCL), vivado_command(project / VIVADO_TCL)
    missing = [n for n, c in (("vitis_hls", hls_cmd), ("vivado", viv_cmd)) if c is None
               and not (n == "vitis_hls" and skip_hls) and not (n == "vivado" and hls_only)]
    if missing:
        typer.echo(MISSING_TOOLS.format(missing=" and ".join(missing), version=TOOLS_VERSION, dir=project,
                                        ip=ip), err=True)
        raise typer.Exit(1)
    t0 = time.perf_counter()
    if not skip_hls:
        assert hls_cmd is not None
        run_hls(project, hls_cmd, cosim, cosim_profile)
    if not (project / "hls" / "ip" / "component.xml").is_file():
        raise EdgeLLMError(f"{project / 'hls' / 'ip' / 'component.xml'} is missing: "
                           "the HLS IP was not exported")
    typer.echo(f"HLS IP: {project / 'hls' / 'ip'} ({time.perf_counter() - t0:.0f} s)")
    if hls_only:
        report_summary(project)
        return
    assert viv_cmd is not None
    rc = run_logged(viv_cmd, project / "vivado", project / "report" / "vivado.log")
    if rc != 0:
        raise EdgeLLMError(f"Vivado failed (exit {rc}); see {project / 'report' / 'vivado.log'}")
    outs = collect_outputs(project, ip)
    if len(outs) != 2:
        raise EdgeLLMError(f"Vivado finished but {project}/{ip}.bit and {ip}.hwh are not both there")
    for p in outs:
        typer.echo(f"wrote {p} ({p.stat().st_size:,} bytes)")
    from edgellm.compiler.hwh import check_hwh, spec_for_manifest

    check_hwh(project / f"{ip}.hwh", spec_for_manifest(_manifest(project)))  # Vivado's map = the manifest's
    timing = report_summary(project).get("vivado", {}).get("timing", {})
    if min(timing.get("wns_ns") or 0.0, timing.get("whs_ns") or 0.0) < 0:
        rpt = project / BUILD_REPORTS / "vivado" / "timing_summary.rpt"
        raise EdgeLLMError(f"timing not met (WNS {timing.get('wns_ns')} ns, WHS {timing.get('whs_ns')} ns; "
                           f"see {rpt}): the bitstream was written but may misbehave on the board; "
                           "recompile with a lower clock")
    typer.echo(f"build: done in {time.perf_counter() - t0:.0f} s; next: edgellm run {project} (on the board)")


def register(app: typer.Typer) -> None:
    """Add `edgellm build`."""
    app.command("build")(build_cmd)
