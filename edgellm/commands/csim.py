"""`edgellm csim DIR`: C simulation of a project's generated HLS against its reference outputs.

Builds DIR/hls (top.cpp + tb_top.cpp, the very sources Vitis HLS synthesizes) with g++ and hls4ml's
ap_types (-ffp-contract=off, cached by content), runs the testbench (prefill + teacher-forced decode,
logits compared bit for bit with DIR/reference/), runs the synthesizability check over DIR/hls,
checks the widest ap_[u]int the top instantiates against Vitis HLS's AP_INT_MAX_W (hw/ap_widths.py) and
compiles the top as Vitis HLS's front end reads it (__SYNTHESIS__ defined, C++14: hw/synth_view.py).
Exit 0 only when all pass. --threads runs the threaded C simulation (edgellm/dataflow.h): the
processes of the stream-connected DATAFLOW regions concurrently over FIFOs of their declared depths,
a deadlock reported as a failure.

The project is opened as `run` opens it (Project.open: manifest schema, a closed set of listed files,
every sha256), the toolkit's headers come before the project's on the include path (hw/csim.py), and
the testbench runs in its own process group under --timeout (killed, one-line error, on expiry).
"""

from __future__ import annotations

import hashlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from edgellm.runtime.project import Project

# C++14: what Vitis HLS compiles (run_hls.tcl uses the same standard and fp flags)
TB_FLAGS = ("-std=c++14", "-O2", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wno-unknown-pragmas",
            "-Wno-unused-function")
TB_SOURCES = ("top.cpp", "tb_top.cpp")
REFERENCE_FILES = ("reference/ref.json", "reference/embeds.f32", "reference/logits.f32")
DEFAULT_TIMEOUT_S = 3600.0
MAX_TIMEOUT_S = 7 * 86400.0


def check_project(project: Path) -> Project:
    """A compiled project, opened and checked as `run` opens it (manifest schema, the closed set of
    listed files, every sha256); EdgeLLMError naming the first missing or foreign file."""
    from edgellm.errors import EdgeLLMError
    from edgellm.runtime.project import Project

    if not project.is_dir():
        raise EdgeLLMError(f"{project}: no such project directory")
    p = Project.open(project)
    for rel in ("weights.bin", *(f"hls/{s}" for s in TB_SOURCES), "hls/edgellm_config.h", *REFERENCE_FILES):
        if rel not in p.listed:
            raise EdgeLLMError(f"{project / rel} is missing (recompile the project with edgellm compile)")
    return p


def synth_sources(p: Project) -> list[Path]:
    """The listed sources under hls/ that get synthesized (testbenches excluded): what synth_check
    reads (never an unlisted file or a build output)."""
    from edgellm.hw import synth_check

    root = p.path.resolve()
    return [root / rel for rel in sorted(p.listed) if rel.startswith("hls/")
            and PurePosixPath(rel).suffix in synth_check.SUFFIXES
            and not synth_check.is_testbench(Path(rel.removeprefix("hls/")))]


def _digest(hls: Path, flags: tuple[str, ...], compiler: str, extra: Path | None = None) -> str:
    from edgellm.hw import csim, synth_view

    h = hashlib.sha256()
    for root in (hls, *([extra] if extra else [])):
        for f in csim.regular_files(root, (".h", ".cpp")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    h.update(" ".join(flags).encode())
    h.update(csim.INCLUDE_ORDER.encode())
    h.update(synth_view.identity(compiler).encode())  # a compiler's --version, or libclang's
    return h.hexdigest()[:20]


def _memo(name: str, valid: Callable[[Any], bool], compute: Callable[[], Any]) -> Any:
    """A check's result kept by content in the C-simulation cache as cache_dir()/name (JSON): read back
    when it is there and valid(value), else compute() and written atomically."""
    import json

    from edgellm.hw import csim
    from edgellm.runtime.project_files import write_atomic

    memo = csim.cache_dir() / name
    try:
        value = json.loads(memo.read_text())
        if not valid(value):
            raise ValueError(f"{name}: not a record of this check")
    except (OSError, ValueError, TypeError):
        value = compute()
        write_atomic(memo, json.dumps(value).encode())
    return value


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(f, str) for f in v)


def synth_check_findings(root: Path, sources: list[Path]) -> list[str]:
    """hw/synth_check.py over the project's synthesized sources (as `path:line: rule: detail`, paths under
    root). Cached by content: the sources (by their path under root), the library headers check_paths
    also reads and the checker's own modules (hw/synth_*.py) key it."""
    from edgellm.hw import synth_check

    h = hashlib.sha256()
    hw = Path(synth_check.__file__).resolve().parent
    for f in [*sources, *sorted(hw.glob("synth_*.py")), *synth_check.sources(hw / "include")]:
        h.update(str(f.relative_to(root) if f.is_relative_to(root) else f.relative_to(hw)).encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    rel = _memo(f"synth-{h.hexdigest()[:20]}.json", _strings,
                lambda: [str(f).removeprefix(f"{root}/") for f in synth_check.check_paths(sources)])
    return [f"{root}/{s}" for s in rel]


def ap_width_findings(hls: Path, sources: list[Path]) -> list[str]:
    """hw/ap_widths.py over hls/top.cpp, built as build_testbench builds it: the widest ap_[u]int the
    synthesized top instantiates against Vitis HLS's AP_INT_MAX_W (printed; a finding per width over)."""
    from edgellm.hw import ap_widths, csim

    flags = [f"-isystem{csim.ap_types_dir()}", f"-idirafter{hls}"]
    widest, over = _memo(f"apw-{_digest(hls, ('-O0', *flags[:1]), csim.cxx())}.json",
                         lambda v: isinstance(v, list) and len(v) == 2 and isinstance(v[0], int)
                         and _strings(v[1]),
                         lambda: list(ap_widths.check_top(csim.cxx(), hls / "top.cpp", flags, sources)))
    for f in over:
        typer.echo(f"ap widths: {f}")
    typer.echo(f"ap widths: widest {widest} bits, {len(over)} over Vitis HLS's AP_INT_MAX_W")
    return over


def synthesis_view_findings(hls: Path) -> list[str]:
    """hw/synth_view.py over hls/top.cpp: the sources as Vitis HLS's front end reads them (__SYNTHESIS__
    defined, C++14), compiled -fsyntax-only (printed; a finding per error line). Cached by content."""
    from edgellm.hw import csim, synth_view

    cxx = synth_view.front_end()
    over = _memo(f"synview-{_digest(hls, synth_view.FLAGS, cxx)}.json", _strings,
                 lambda: synth_view.check(cxx, hls / "top.cpp", csim.ap_types_dir()))
    for f in over:
        typer.echo(f)
    typer.echo(f"synthesis view: top.cpp with __SYNTHESIS__ defined, C++14, {cxx}: "
               f"{'compiles' if not over else 'fails'}")
    return over


def tb_flags(threads: bool = False, sanitize: bool = False) -> tuple[str, ...]:
    """The testbench's compiler flags: TB_FLAGS, the threaded C simulation's, the sanitizers'."""
    from edgellm.hw import csim
    from edgellm.hw import sanitize as san

    return TB_FLAGS + (csim.THREAD_FLAGS if threads else ()) + (san.FLAGS if sanitize else ())


def build_testbench(hls: Path, threads: bool = False, sanitize: bool = False) -> Path:
    """Compile hls/top.cpp + hls/tb_top.cpp into a cached executable. Include path: hls4ml's ap_types
    (threads: edgellm's bounded, thread-safe hls_stream.h ahead of it), the system's headers, then the
    project's hls/ (-idirafter: a header the project adds never replaces a toolkit or system one).
    sanitize: under AddressSanitizer and UndefinedBehaviorSanitizer (hw/sanitize.py)."""
    from edgellm.hw import csim

    cxx = csim.cxx()
    flags = tb_flags(threads, sanitize)
    key = _digest(hls, flags, cxx, csim.THREADS_DIR if threads else None)
    out = csim.cache_dir() / f"tb_top{'_mt' * threads}{'_san' * sanitize}-{key}"
    if out.is_file():
        return out
    with tempfile.TemporaryDirectory(dir=csim.cache_dir()) as tmp:
        tmp_out = Path(tmp) / out.name
        inc = [f"-I{csim.THREADS_DIR}"] if threads else []
        cmd = [cxx, *flags, *inc, f"-isystem{csim.ap_types_dir()}", f"-idirafter{hls}",
               *(str(hls / s) for s in TB_SOURCES), "-o", str(tmp_out)]
        csim.run_compiler(cmd, str(hls))
        os.replace(tmp_out, out)
    return out


def sanitizer_env(folder: Path) -> dict[str, str]:
    """The sanitized testbench's environment (hw/sanitize.py: hls4ml's ap types' own shifts suppressed)."""
    from edgellm.hw import csim, sanitize

    return sanitize.environment(csim.ap_types_dir(), folder)


def check_timeout(timeout_s: float) -> float:
    """--timeout: a finite number of seconds in (0, MAX_TIMEOUT_S] (NaN and inf would mean no bound)."""
    from edgellm.errors import EdgeLLMError

    if not (math.isfinite(timeout_s) and 0 < timeout_s <= MAX_TIMEOUT_S):
        raise EdgeLLMError(f"--timeout must be a finite number of seconds in (0, {MAX_TIMEOUT_S:g}], "
                           f"got {timeout_s}")
    return timeout_s


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the testbench's process group (it and anything it started)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_testbench(exe: Path, project: Path, decode_steps: int | None = None,
                  timeout_s: float = DEFAULT_TIMEOUT_S, env: dict[str, str] | None = None) -> int:
    """Run the testbench on project in its own process group (env: its environment, default ours),
    streaming its output; return its exit code. After timeout_s the group is killed and EdgeLLMError
    raised (so is an interrupt's)."""
    from edgellm.errors import EdgeLLMError

    cmd = [str(exe), str(project)]
    if decode_steps is not None:
        cmd += ["--decode-steps", str(decode_steps)]
    timeout_s = check_timeout(timeout_s)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True, env=env)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        _kill_group(proc)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            typer.echo(line.rstrip("\n"))
        rc = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:  # interrupted: leave nothing running
            _kill_group(proc)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    if expired.is_set():
        raise EdgeLLMError(f"the C-simulation testbench ran longer than --timeout {timeout_s:g} s; killed it")
    return rc


def csim_cmd(
    project: Annotated[Path, typer.Argument(help="Project directory written by edgellm compile")],
    decode_steps: Annotated[int | None, typer.Option("--decode-steps", min=0,
                                                     help="Run only this many decode steps")] = None,
    threads: Annotated[bool, typer.Option(
        "--threads", help="Run the DATAFLOW processes concurrently over FIFOs of their declared depths "
                          "(deadlocks detected)")] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Seconds the testbench may run before it is killed (finite, > 0)")
    ] = DEFAULT_TIMEOUT_S,
    sanitize: Annotated[bool, typer.Option(
        "--sanitize", help="Build the testbench under AddressSanitizer and UndefinedBehaviorSanitizer: an "
                           "out-of-bounds access or undefined behaviour in the kernels fails the run "
                           "(slower)")] = False,
) -> None:
    """C-simulate the project's HLS (g++) against its reference outputs, bit for bit."""
    from edgellm.hw import csim

    check_timeout(timeout)
    p = check_project(project)
    hls = p.path.resolve() / "hls"
    csim.cache_dir()  # a cache that cannot be a folder: an error before anything is printed
    sources = synth_sources(p)
    found = synth_check_findings(p.path.resolve(), sources)
    for f in found:
        typer.echo(f"synth_check: {f}")
    typer.echo(f"synth_check: {len(found)} finding(s) in {len(sources)} file(s) of {hls}")
    found += ap_width_findings(hls, sources)
    found += synthesis_view_findings(hls)
    t0 = time.perf_counter()
    from edgellm.commands.progress import Status

    with Status("building the C-simulation testbench (g++; cached after the first build)"):
        exe = build_testbench(hls, threads, sanitize)
    t1 = time.perf_counter()
    typer.echo(f"build: {t1 - t0:.1f} s (g++ {' '.join(tb_flags(threads, sanitize))})")
    with tempfile.TemporaryDirectory() as tmp:
        env = sanitizer_env(Path(tmp)) if sanitize else None
        rc = run_testbench(exe, hls.parent, decode_steps, timeout, env)
    typer.echo(f"run: {time.perf_counter() - t1:.1f} s")
    ok = rc == 0 and not found
    typer.echo(f"csim: {'PASS' if ok else 'FAIL'} (testbench exit {rc}, {len(found)} synth_check, "
               f"ap width and synthesis-view finding(s))")
    sys.stdout.flush()
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `edgellm csim`."""
    app.command("csim")(csim_cmd)
