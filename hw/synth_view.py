"""The synthesis view of a generated top: hls/top.cpp compiled as Vitis HLS's front end reads it.

Vitis HLS defines __SYNTHESIS__ and compiles with run_hls.tcl's cflags (C++14); the C simulation never
does, so a `#ifdef __SYNTHESIS__` branch (tlmm_config.h's DSP operand types) or what is left once the
`#ifndef __SYNTHESIS__` branches are gone (a name only the C simulation declares) had never been
compiled. The open ap_types hls4ml ships refuse __SYNTHESIS__ (`#error`), so the view includes them
first, without it, then defines it and includes top.cpp: the ap types stay the C-simulation ones (their
include guards keep them), every edgellm source is read as synthesis reads it. Compiled -fsyntax-only
with clang++ where one is on PATH (Vitis HLS's front end is clang-based), else with the libclang wheel
(hw/synth_view_libclang.py: the [test] extra installs it, so CI reads the view with clang too), else with
the C simulation's g++, and -Werror=vla (a variable-length array compiles as an extension and cannot be
synthesized).
This is a compile of the sources, not a synthesis: what Vitis HLS accepts beyond parsing is not checked.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from edgellm.errors import EdgeLLMError

# the headers the sources take from hls4ml's ap_types, included before __SYNTHESIS__ is defined
PREINCLUDE = ("ap_int.h", "ap_fixed.h", "hls_stream.h", "hls_math.h")
# as run_hls.tcl's cflags (compiler/hls_tcl.py CFLAGS), syntax only
FLAGS = ("-std=c++14", "-fsyntax-only", "-ffp-contract=off", "-fno-fast-math", "-Werror=vla",
         "-Wno-unknown-pragmas", "-Wno-unused-label")
TIMEOUT_S = 300.0
MAX_LINES = 10  # error lines reported per failed view
LIBCLANG = "libclang"  # front_end()'s name for hw/synth_view_libclang.py


def clang() -> str | None:
    """A clang++ on PATH: `clang++`, else the newest `clang++-N`; None without one."""
    if shutil.which("clang++"):
        return "clang++"
    versioned = []
    for d in os.environ.get("PATH", "").split(os.pathsep):
        try:
            names = os.listdir(d) if d else []
        except OSError:
            continue
        versioned += [(int(m.group(1)), n) for n in names if (m := re.fullmatch(r"clang\+\+-(\d+)", n))]
    return max(versioned)[1] if versioned else None


def front_end() -> str:
    """The compiler the view uses: $EDGELLM_SYNTH_VIEW_CXX (a compiler on PATH, or `libclang`), else
    clang() (Vitis HLS's front end is clang-based), else LIBCLANG where the libclang wheel loads, else the
    C simulation's compiler (hw/csim.py cxx)."""
    from edgellm.hw import csim, synth_view_libclang

    env = os.environ.get("EDGELLM_SYNTH_VIEW_CXX")
    if env == LIBCLANG:
        if synth_view_libclang.version() is None:
            raise EdgeLLMError("EDGELLM_SYNTH_VIEW_CXX=libclang: the libclang module does not load "
                               "(pip install libclang)")
        return env
    if env:
        if shutil.which(env) is None:
            raise EdgeLLMError(f"EDGELLM_SYNTH_VIEW_CXX={env}: not found on PATH")
        return env
    return clang() or (LIBCLANG if synth_view_libclang.version() else None) or csim.cxx()


def identity(cxx: str) -> str:
    """What names the front end's behaviour (for caches): `cxx --version`, or libclang's version and the
    builtin headers it takes from the C simulation's compiler."""
    from edgellm.hw import csim, synth_view_libclang

    if cxx != LIBCLANG:
        return csim.compiler_version(cxx)
    return f"{synth_view_libclang.version()} {synth_view_libclang.builtin_include(csim.cxx())}"


def command(cxx: str, unit: Path, ap_dir: Path, top_dir: Path) -> list[str]:
    """The view's compile command: cxx's, or for LIBCLANG hw/synth_view_libclang.py's with the C
    simulation compiler's builtin headers last (the wheel has none)."""
    from edgellm.hw import csim, synth_view_libclang

    search = [f"-isystem{ap_dir}", f"-idirafter{top_dir}"]
    if cxx != LIBCLANG:
        return [cxx, *FLAGS, *search, str(unit)]
    builtin = synth_view_libclang.builtin_include(csim.cxx())
    return [sys.executable, "-m", "edgellm.hw.synth_view_libclang",
            *(f for f in FLAGS if f != "-fsyntax-only"), *search,
            *([f"-idirafter{builtin}"] if builtin else []), str(unit)]


def wrapper(top: Path) -> str:
    """The translation unit of the view: the ap types, then __SYNTHESIS__, then the top."""
    head = "".join(f"#include <{h}>\n" for h in PREINCLUDE)
    return f"{head}#define __SYNTHESIS__ 1\n#include \"{top.resolve()}\"\n"


def check(cxx: str, top: Path, ap_dir: Path, timeout_s: float = TIMEOUT_S) -> list[str]:
    """Findings of the synthesis view of `top` (its folder searched after the system's, as the C
    simulation's build searches it): the first error lines, [] when it compiles. EdgeLLMError when the
    compiler cannot run or runs past timeout_s."""
    from edgellm.hw import csim

    with tempfile.TemporaryDirectory() as tmp:
        unit = Path(tmp) / "synthesis_view.cpp"
        unit.write_text(wrapper(top))
        cmd = command(cxx, unit, ap_dir, top.resolve().parent)
        try:  # (its process group killed on a timeout: csim.compile_diagnostics)
            rc, stderr = csim.compile_diagnostics(cmd, f"the synthesis view of {top} ({cxx})", timeout_s,
                                                  env={**os.environ, "LC_ALL": "C"})  # ASCII quotes
        except OSError as e:
            raise EdgeLLMError(f"the synthesis view of {top}: {cxx} could not run ({e})") from None
    if rc == 0:
        return []
    lines = [ln.replace(str(unit), "synthesis_view.cpp") for ln in stderr.splitlines()]
    errors = [ln for ln in lines if "error" in ln] or lines or [f"{cxx} exited {rc}"]
    if cxx == LIBCLANG:
        from edgellm.hw import synth_view_libclang

        cxx = f"libclang, {synth_view_libclang.version()}"
    return [f"synthesis view ({cxx}, __SYNTHESIS__ defined, C++14): {ln.strip()[:300]}"
            for ln in errors[:MAX_LINES]]
