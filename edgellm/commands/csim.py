"""`edgellm csim DIR`: C simulation of a project's generated HLS against its reference outputs.

Builds DIR/hls (top.cpp + tb_top.cpp, the very sources Vitis HLS synthesizes) with g++ and hls4ml's
ap_types (-ffp-contract=off, cached by content), runs the testbench (prefill + teacher-forced decode,
logits compared bit for bit with DIR/reference/), and runs the synthesizability check over DIR/hls.
Exit 0 only when both pass. --threads runs the threaded C simulation (edgellm/dataflow.h): the
processes of the stream-connected DATAFLOW regions concurrently over FIFOs of their declared depths,
a deadlock reported as a failure.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

# C++14: what Vitis HLS compiles (run_hls.tcl uses the same standard and fp flags)
TB_FLAGS = ("-std=c++14", "-O2", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wno-unknown-pragmas",
            "-Wno-unused-function")
TB_SOURCES = ("top.cpp", "tb_top.cpp")
REFERENCE_FILES = ("reference/ref.json", "reference/embeds.f32", "reference/logits.f32")


def check_project(project: Path) -> Path:
    """DIR/hls of a compiled project; EdgeLLMError naming the first missing file."""
    from edgellm.errors import EdgeLLMError

    if not project.is_dir():
        raise EdgeLLMError(f"{project}: no such project directory")
    if not (project / "manifest.json").is_file():
        raise EdgeLLMError(f"{project} is not an edgellm project: manifest.json is missing "
                           "(run edgellm compile)")
    for rel in ("weights.bin", *(f"hls/{s}" for s in TB_SOURCES), "hls/edgellm_config.h", *REFERENCE_FILES):
        if not (project / rel).is_file():
            raise EdgeLLMError(f"{project / rel} is missing (recompile the project with edgellm compile)")
    return project / "hls"


def _digest(hls: Path, flags: tuple[str, ...], compiler: str, extra: Path | None = None) -> str:
    h = hashlib.sha256()
    for root in (hls, *([extra] if extra else [])):
        for f in sorted(p for p in root.rglob("*") if p.suffix in (".h", ".cpp") and p.is_file()):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    h.update(" ".join(flags).encode())
    h.update(subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.encode())
    return h.hexdigest()[:20]


def build_testbench(hls: Path, threads: bool = False) -> Path:
    """Compile hls/top.cpp + hls/tb_top.cpp into a cached executable (only the project's own headers
    and hls4ml's ap_types are on the include path; threads: also edgellm's bounded, thread-safe
    hls_stream.h ahead of them, for the threaded C simulation)."""
    from edgellm.errors import EdgeLLMError
    from edgellm.hw import csim

    cxx = csim.cxx()
    flags = TB_FLAGS + (csim.THREAD_FLAGS if threads else ())
    key = _digest(hls, flags, cxx, csim.THREADS_DIR if threads else None)
    out = csim.cache_dir() / f"tb_top{'_mt' * threads}-{key}"
    if out.is_file():
        return out
    with tempfile.TemporaryDirectory(dir=csim.cache_dir()) as tmp:
        tmp_out = Path(tmp) / out.name
        inc = [f"-I{csim.THREADS_DIR}"] if threads else []
        cmd = [cxx, *flags, *inc, f"-I{hls}", f"-isystem{csim.ap_types_dir()}",
               *(str(hls / s) for s in TB_SOURCES), "-o", str(tmp_out)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            head = "\n".join(res.stderr.strip().splitlines()[:20])
            raise EdgeLLMError(f"C simulation build of {hls} failed:\n{head}")
        os.replace(tmp_out, out)
    return out


def run_testbench(exe: Path, project: Path, decode_steps: int | None = None) -> int:
    """Run the testbench on project, streaming its output; return its exit code."""
    cmd = [str(exe), str(project)]
    if decode_steps is not None:
        cmd += ["--decode-steps", str(decode_steps)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        typer.echo(line.rstrip("\n"))
    return proc.wait()


def csim_cmd(
    project: Annotated[Path, typer.Argument(help="Project directory written by edgellm compile")],
    decode_steps: Annotated[int | None, typer.Option("--decode-steps", min=0,
                                                     help="Run only this many decode steps")] = None,
    threads: Annotated[bool, typer.Option(
        "--threads", help="Run the DATAFLOW processes concurrently over FIFOs of their declared depths "
                          "(deadlocks detected)")] = False,
) -> None:
    """C-simulate the project's HLS (g++) against its reference outputs, bit for bit."""
    from edgellm.hw import csim, synth_check

    hls = check_project(project)
    found = synth_check.check_paths([hls])
    for f in found:
        typer.echo(f"synth_check: {f}")
    typer.echo(f"synth_check: {len(found)} finding(s) in {len(synth_check.sources(hls))} file(s) of {hls}")
    t0 = time.perf_counter()
    exe = build_testbench(hls, threads)
    t1 = time.perf_counter()
    typer.echo(f"build: {t1 - t0:.1f} s (g++ {' '.join(TB_FLAGS + (csim.THREAD_FLAGS if threads else ()))})")
    rc = run_testbench(exe, project.resolve(), decode_steps)
    typer.echo(f"run: {time.perf_counter() - t1:.1f} s")
    ok = rc == 0 and not found
    typer.echo(f"csim: {'PASS' if ok else 'FAIL'} (testbench exit {rc}, {len(found)} synth_check finding(s))")
    sys.stdout.flush()
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `edgellm csim`."""
    app.command("csim")(csim_cmd)
