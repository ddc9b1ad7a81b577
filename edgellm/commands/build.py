"""`edgellm build DIR`: run the AMD tools on a compiled project: Vitis HLS (hls/run_hls.tcl: C
simulation, synthesis, IP export to hls/ip), then Vivado (vivado/build.tcl: block design, bitstream),
and leave <ip>.bit and <ip>.hwh in the project root, where PYNQ's Overlay loads them.

Without the tools on PATH it prints what to install and the commands to run by hand, and exits 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Annotated

import typer

HLS_TCL = "hls/run_hls.tcl"
VIVADO_TCL = "vivado/build.tcl"
TOOLS_VERSION = "2024.1"
MISSING_TOOLS = """\
edgellm build needs the AMD tools on PATH ({missing} not found).
Install Vivado and Vitis HLS {version} or newer (AMD Unified Installer: "Vitis" or "Vivado ML Standard",
with support for the board's device), then `source <install>/Vivado/<ver>/settings64.sh` (and
<install>/Vitis_HLS/<ver>/settings64.sh, or Vitis/<ver> from 2024.2 on) and rerun `edgellm build {dir}`.
By hand:
  cd {dir}/hls && vitis_hls -f run_hls.tcl      # 2024.2+: vitis-run --mode hls --tcl run_hls.tcl
  cd {dir}/vivado && vivado -mode batch -source build.tcl
then copy {ip}.bit and {ip}.hwh (build.tcl puts them in {dir}) next to manifest.json."""


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


def ip_name(project: Path) -> str:
    """The IP / top name from the manifest (edgellm_top by default)."""
    try:
        m = json.loads((project / "manifest.json").read_text())
        return str(m.get("interface", {}).get("ip_name", "edgellm_top"))
    except (OSError, json.JSONDecodeError, AttributeError):
        return "edgellm_top"


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


def build_cmd(
    project: Annotated[Path, typer.Argument(help="Project directory written by edgellm compile")],
    skip_hls: Annotated[bool, typer.Option("--skip-hls", help="Reuse the IP exported to hls/ip")] = False,
    hls_only: Annotated[bool, typer.Option("--hls-only", help="Stop after Vitis HLS")] = False,
    cosim: Annotated[bool, typer.Option("--cosim", help="Also run RTL co-simulation (slow)")] = False,
) -> None:
    """Build the bitstream: Vitis HLS then Vivado (needs the AMD tools)."""
    from edgellm.errors import EdgeLLMError

    if not (project / "manifest.json").is_file():
        raise EdgeLLMError(f"{project} is not an edgellm project: manifest.json is missing "
                           "(run edgellm compile)")
    for rel in (HLS_TCL, VIVADO_TCL):
        if not (project / rel).is_file():
            raise EdgeLLMError(f"{project / rel} is missing (recompile the project with edgellm compile)")
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
        env = dict(os.environ)
        if cosim:
            env["EDGELLM_HLS_STEPS"] = "csim csynth cosim export"
        assert hls_cmd is not None
        rc = run_logged(hls_cmd, project / "hls", project / "report" / "vitis_hls.log", env)
        if rc != 0:
            raise EdgeLLMError(f"Vitis HLS failed (exit {rc}); see {project / 'report' / 'vitis_hls.log'}")
    if not (project / "hls" / "ip" / "component.xml").is_file():
        raise EdgeLLMError(f"{project / 'hls' / 'ip' / 'component.xml'} is missing: "
                           "the HLS IP was not exported")
    typer.echo(f"HLS IP: {project / 'hls' / 'ip'} ({time.perf_counter() - t0:.0f} s)")
    if hls_only:
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
    typer.echo(f"build: done in {time.perf_counter() - t0:.0f} s; next: edgellm run {project} (on the board)")


def register(app: typer.Typer) -> None:
    """Add `edgellm build`."""
    app.command("build")(build_cmd)
