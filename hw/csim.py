"""C simulation harness: build HLS C++ with g++ against hls4ml's ap_types headers, load via ctypes.

Libraries are cached by a hash of every header under hw/include, the sources, the flags and the
compiler version, so unchanged code is never rebuilt. Builds write to a temp file and rename.

Include order: the toolkit's own headers (csim_threads/ when threaded, hw/include, hls4ml's ap_types)
come before the system headers, and a project's folders (`includes`) come last (-idirafter), so a
header a project adds can never stand in for hls_stream.h, ap_int.h or the kernel library; the
project's own copies of the kernels are found beside the files that include them.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import signal
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
BUILD_TIMEOUT_S = 1800.0  # one g++ run
INCLUDE_ORDER = "toolkit, ap_types, system, project (-idirafter)"  # part of the cache key
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
    """Where built libraries live: $EDGELLM_CACHE/csim or ~/.cache/edgellm/csim (one-line EdgeLLMError
    when it cannot be a folder: EDGELLM_CACHE naming a file, no permission)."""
    env = os.environ.get("EDGELLM_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "edgellm"
    d = base / "csim"
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        what = f"EDGELLM_CACHE={env}" if env else str(base)
        raise EdgeLLMError(f"the C-simulation cache {d} cannot be created ({what}: "
                           f"{e.strerror or e}); point EDGELLM_CACHE at a writable folder") from None
    if not d.is_dir():
        raise EdgeLLMError(f"the C-simulation cache {d} is not a folder; point EDGELLM_CACHE elsewhere")
    return d


def regular_files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The regular files under root with one of suffixes, sorted, reached without symbolic links (a link
    or a FIFO named *.h is skipped, never read)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):  # os.walk does not follow links to folders
        dirnames.sort()
        for n in filenames:
            f = Path(dirpath) / n
            if f.suffix in suffixes and not f.is_symlink() and f.is_file():
                out.append(f)
    return sorted(out)


def compiler_version(exe: str) -> str:
    """`exe --version` (bounded: a compiler that hangs is an error, not a wait)."""
    try:
        return subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EdgeLLMError(f"{exe} --version failed: {e}") from None


def _digest(sources: list[Path], includes: list[Path], flags: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for inc in includes:
        for f in regular_files(inc, (".h",)):
            h.update(str(f.relative_to(inc)).encode())
            h.update(f.read_bytes())
    for s in sources:
        h.update(s.read_bytes())
    h.update(" ".join(flags).encode())
    h.update(INCLUDE_ORDER.encode())
    h.update(compiler_version(cxx()).encode())
    return h.hexdigest()[:20]


def include_flags(project_includes: list[Path], threads: bool = False) -> list[str]:
    """-I/-isystem/-idirafter in search order: the toolkit's headers first (csim_threads when threaded,
    hw/include, hls4ml's ap_types), then the system's, then the project's folders."""
    return [*([f"-I{THREADS_DIR}"] if threads else []), f"-I{INCLUDE_DIR}", f"-isystem{ap_types_dir()}",
            *(f"-idirafter{i}" for i in project_includes)]


def compile_diagnostics(cmd: list[str], what: str, timeout_s: float = BUILD_TIMEOUT_S,
                        env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a compiler command line in its own process group; (exit code, stderr). After timeout_s the
    group (cc1plus with it) is killed and EdgeLLMError raised; so is an interrupt's."""
    # its own group: cc1plus goes with it on a timeout
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True, env=env)
    try:
        _, stderr = proc.communicate(timeout=timeout_s)
    except BaseException as e:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise EdgeLLMError(f"C simulation build of {what} took more than {timeout_s:g} s; "
                               "stopped") from None
        raise
    return proc.returncode, stderr


def run_compiler(cmd: list[str], what: str, timeout_s: float = BUILD_TIMEOUT_S) -> None:
    """Run a g++ command line; EdgeLLMError with the first error lines on failure or after timeout_s."""
    rc, stderr = compile_diagnostics(cmd, what, timeout_s)
    if rc != 0:
        lines = stderr.strip().splitlines()
        errors = [ln for ln in lines if "error" in ln]  # the errors first, not the warnings before them
        head = "\n".join((errors or lines)[:20])
        raise EdgeLLMError(f"C simulation build of {what} failed:\n{head}")


def build(sources: list[Path], name: str, includes: list[Path] | None = None,
          defines: dict[str, str] | None = None, threads: bool = False) -> Path:
    """Compile sources into a cached shared library; return its path. Compiler errors raise
    EdgeLLMError with the first lines of the diagnostics. threads: the threaded C simulation
    (edgellm/dataflow.h): every DATAFLOW process of the stream-only regions in its own thread over
    bounded streams (THREADS_DIR's hls_stream.h, found before hls4ml's), deadlocks detected.
    includes: a project's folders, searched after the toolkit's and the system's headers. With
    $EDGELLM_CSIM_SANITIZE=1 under the sanitizers (hw/sanitize.py LIBRARY_ENV: the process must preload
    their runtime)."""
    from edgellm.hw import sanitize

    project_includes = [Path(i) for i in includes or []]
    flags = (CXXFLAGS + (THREAD_FLAGS if threads else ())
             + tuple(f"-D{k}={v}" for k, v in sorted((defines or {}).items()))
             + (sanitize.FLAGS if os.environ.get(sanitize.LIBRARY_ENV) == "1" else ()))
    incs = [*([THREADS_DIR] if threads else []), INCLUDE_DIR, *project_includes]
    for attempt in range(3):
        key = _digest([Path(s) for s in sources], incs, flags)
        out = cache_dir() / f"{name}-{key}.so"
        if out.is_file():
            return out
        with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
            tmp_out = Path(tmp) / out.name
            cmd = [cxx(), *flags, *include_flags(project_includes, threads), *(str(s) for s in sources),
                   "-o", str(tmp_out)]
            run_compiler(cmd, name)
            # a source edited while it compiled (another process at work in the same tree) would leave a
            # library under a key its code does not match: cache only a build whose inputs held still
            if _digest([Path(s) for s in sources], incs, flags) == key or attempt == 2:
                os.replace(tmp_out, out)
                return out
    return out


def load(sources: list[Path], name: str, **kw: object) -> ctypes.CDLL:
    """build() then ctypes.CDLL."""
    return ctypes.CDLL(str(build(sources, name, **kw)))  # type: ignore[arg-type]


def ptr(a: np.ndarray) -> ctypes.c_void_p:
    """Pointer to a C-contiguous numpy array's data (the caller keeps the array alive)."""
    if not a.flags["C_CONTIGUOUS"]:
        raise ValueError("array must be C-contiguous")
    return ctypes.c_void_p(a.ctypes.data)
