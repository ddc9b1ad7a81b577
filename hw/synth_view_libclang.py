"""The synthesis view's clang front end where no clang++ is installed: libclang (the `libclang` wheel the
[test] extra installs, so CI compiles the view with clang as Vitis HLS's front end is, not with g++).

    python -m edgellm.hw.synth_view_libclang [COMPILER ARGS ...] UNIT

parses UNIT (C++) with the arguments as clang++ -fsyntax-only would, prints every warning and error as a
compiler does (`file:line:col: error: message`) on stderr and exits 1 when there is an error, 2 when
libclang cannot load or parse at all. The wheel carries libclang.so without clang's builtin headers
(stddef.h ...): the C simulation's g++ supplies its own (`g++ -print-file-name=include`, builtin_include),
searched after everything else. hw/synth_view.py runs this module through csim.compile_diagnostics (its
process group bounded by a timeout, as a compiler is).
"""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys

SEVERITY = {2: "warning", 3: "error", 4: "fatal error"}


@functools.lru_cache(maxsize=1)
def version() -> str | None:
    """libclang's version string ('clang version 18.1.1 ...'), None when the module or library is missing."""
    if importlib.util.find_spec("clang") is None or importlib.util.find_spec("clang.cindex") is None:
        return None
    try:
        import clang.cindex as ci

        fn = ci.conf.lib.clang_getClangVersion  # not among the bindings' registered functions
        fn.argtypes, fn.restype, fn.errcheck = [], ci._CXString, ci._CXString.from_result
        return str(fn())
    except Exception:  # the wheel's shared library could not load (another platform, a broken install)
        return None


@functools.lru_cache(maxsize=4)
def builtin_include(cxx: str) -> str | None:
    """The compiler's own builtin headers' folder (`cxx -print-file-name=include`), None when unknown."""
    try:
        out = subprocess.run([cxx, "-print-file-name=include"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    path = out.stdout.strip()
    return path if out.returncode == 0 and path.startswith("/") else None


def main(argv: list[str]) -> int:
    """Parse argv[-1] with argv[:-1] as clang arguments; print the diagnostics; 1 on an error."""
    if not argv:
        print("usage: python -m edgellm.hw.synth_view_libclang [ARGS ...] UNIT", file=sys.stderr)
        return 2
    try:
        import clang.cindex as ci

        tu = ci.Index.create().parse(argv[-1], args=["-x", "c++", *argv[:-1]])
    except Exception as e:  # no library, or a parse that produced no translation unit
        print(f"libclang could not parse {argv[-1]}: {e}", file=sys.stderr)
        return 2
    failed = False
    for d in tu.diagnostics:
        if d.severity < 2:
            continue
        failed |= d.severity >= 3
        loc = d.location
        where = f"{loc.file.name}:{loc.line}:{loc.column}" if loc.file else "<command line>"
        print(f"{where}: {SEVERITY[min(d.severity, 4)]}: {d.spelling}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
