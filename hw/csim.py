"""C simulation harness: build HLS C++ with g++ against hls4ml's ap_types headers, load via ctypes.

Libraries are cached by a hash of every header under hw/include, the sources, the flags and the
compiler version, so unchanged code is never rebuilt. Builds write to a temp file and rename.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgellm.errors import EdgeLLMError

HW_DIR = Path(__file__).resolve().parent
INCLUDE_DIR = HW_DIR / "include"
THREADS_DIR = HW_DIR / "csim_threads"  # the threaded C simulation's bounded hls_stream.h
# the threaded C simulation's build (with THREADS_DIR first on the include path): threads, and
# edgellm/dataflow.h's threaded mode
THREAD_FLAGS = ("-pthread", "-DEDGELLM_CSIM_THREADS=1")
TB_DIR = HW_DIR / "tb"
CXXFLAGS = ("-std=c++17", "-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math",
            "-Wall", "-Wextra", "-Wno-unknown-pragmas")


def ap_types_dir() -> Path:
    """hls4ml's open ap_int/ap_fixed/hls_stream/hls_math C-simulation headers."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or spec.origin is None:
        raise EdgeLLMError("C simulation needs hls4ml's ap_types headers: pip install hls4ml")
    d = Path(spec.origin).parent / "templates" / "vivado" / "ap_types"
    if not (d / "ap_int.h").is_file():
        raise EdgeLLMError(f"hls4ml is installed but {d}/ap_int.h is missing")
    return d


def cxx() -> str:
    """The C++ compiler (CXX or g++)."""
    exe = os.environ.get("CXX", "g++")
    if shutil.which(exe) is None:
        raise EdgeLLMError(f"C simulation needs a C++ compiler: {exe} not found (apt-get install g++)")
    return exe


def cache_dir() -> Path:
    """Where built libraries live: $EDGELLM_CACHE or ~/.cache/edgellm/csim."""
    d = Path(os.environ.get("EDGELLM_CACHE", Path.home() / ".cache" / "edgellm")) / "csim"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _digest(sources: list[Path], includes: list[Path], flags: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for inc in includes:
        for f in sorted(inc.rglob("*.h")):
            h.update(str(f.relative_to(inc)).encode())
            h.update(f.read_bytes())
    for s in sources:
        h.update(s.read_bytes())
    h.update(" ".join(flags).encode())
    h.update(subprocess.run([cxx(), "--version"], capture_output=True, text=True).stdout.encode())
    return h.hexdigest()[:20]


def build(sources: list[Path], name: str, includes: list[Path] | None = None,
          defines: dict[str, str] | None = None, threads: bool = False) -> Path:
    """Compile sources into a cached shared library; return its path. Compiler errors raise
    EdgeLLMError with the first lines of the diagnostics. threads: the threaded C simulation
    (edgellm/dataflow.h): every DATAFLOW process of the stream-only regions in its own thread over
    bounded streams (THREADS_DIR's hls_stream.h, found before hls4ml's), deadlocks detected."""
    includes = [*([THREADS_DIR] if threads else []), INCLUDE_DIR, *(includes or [])]
    flags = (CXXFLAGS + (THREAD_FLAGS if threads else ())
             + tuple(f"-D{k}={v}" for k, v in sorted((defines or {}).items())))
    key = _digest([Path(s) for s in sources], includes, flags)
    out = cache_dir() / f"{name}-{key}.so"
    if out.is_file():
        return out
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        tmp_out = Path(tmp) / out.name
        cmd = [cxx(), *flags, *(f"-I{i}" for i in includes), f"-isystem{ap_types_dir()}",
               *(str(s) for s in sources), "-o", str(tmp_out)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            lines = res.stderr.strip().splitlines()
            errors = [ln for ln in lines if "error" in ln]  # the errors first, not the warnings before them
            head = "\n".join((errors or lines)[:20])
            raise EdgeLLMError(f"C simulation build of {name} failed:\n{head}")
        os.replace(tmp_out, out)
    return out


def load(sources: list[Path], name: str, **kw: object) -> ctypes.CDLL:
    """build() then ctypes.CDLL."""
    return ctypes.CDLL(str(build(sources, name, **kw)))  # type: ignore[arg-type]


def ptr(a: np.ndarray) -> ctypes.c_void_p:
    """Pointer to a C-contiguous numpy array's data (the caller keeps the array alive)."""
    if not a.flags["C_CONTIGUOUS"]:
        raise ValueError("array must be C-contiguous")
    return ctypes.c_void_p(a.ctypes.data)
