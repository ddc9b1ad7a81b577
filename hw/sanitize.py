"""The C simulation under the compilers' sanitizers (`edgellm csim --sanitize`; the kernel tests:
`python -m edgellm.hw.sanitize python -m pytest -n 0 -s tests/test_hw_tlmm.py`).

An index past an on-chip array, a read past a buffer or of freed memory, a signed overflow or an
oversized shift in a kernel would still simulate here, and the golden comparison can pass by chance
(the bytes past an array happen to hold the right values); on the FPGA it computes something else. So
the testbench (sequential or `--threads`) is built with AddressSanitizer and UndefinedBehaviorSanitizer
and stops at the first report from edgellm's sources (UBSAN_OPTIONS halt_on_error, ASan's default: a
non-zero exit, so csim fails). ThreadSanitizer on the threaded simulation was tried and not kept: every
stream operation takes the simulation's one scheduler lock, which orders nearly every pair of accesses,
so two processes sharing a variable beside their stream were not reported (synth_check's array-fanout
rule checks the sharing of arrays statically instead).
hls4ml's open ap types shift negative values inside their own arithmetic (ap_private.h: undefined in
C++14, the sign-extension idiom; their semantics are defined, modular, and Vitis HLS synthesizes its
own types), so UBSan's shift and signed-overflow reports from inside the ap types folder are suppressed
(SUPPRESSED_CHECKS; suppressions apply to recoverable checks only, hence no -fno-sanitize-recover);
anything else reported there, and every report from edgellm's sources, stands.
"""

from __future__ import annotations

import os
from pathlib import Path

FLAGS = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g")
# The kernel tests' libraries (hw/csim.py build, loaded by ctypes into Python) are built with FLAGS when
# this is "1"; the Python process then needs the runtime preloaded (preload_command shows how).
LIBRARY_ENV = "EDGELLM_CSIM_SANITIZE"
SUPPRESSED_CHECKS = ("shift-base", "shift-exponent", "signed-integer-overflow")


def suppressions(ap_dir: Path) -> str:
    """UBSan runtime suppressions: SUPPRESSED_CHECKS for sources under ap_dir (hls4ml's ap types)."""
    return "".join(f"{check}:{ap_dir.resolve()}/*\n" for check in SUPPRESSED_CHECKS)


def environment(ap_dir: Path, folder: Path) -> dict[str, str]:
    """The testbench's environment: the suppressions written to folder/ubsan.supp, both sanitizers
    stopping at their first report with exit code 1, leaks not checked (the testbench frees at exit only)."""
    supp = folder / "ubsan.supp"
    supp.write_text(suppressions(ap_dir))
    return {**os.environ,
            "UBSAN_OPTIONS": f"suppressions={supp}:print_stacktrace=1:halt_on_error=1",
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=1"}


def preload_command(cxx: str, ap_dir: Path, folder: Path, args: str) -> str:
    """A shell line running `args` (e.g. `python -m pytest -n 0 -s tests/test_hw_attention.py`) with the
    kernel libraries under the sanitizers: LIBRARY_ENV set, libasan and libubsan preloaded into Python,
    environment()'s options (Python's own leaks not checked)."""
    env = environment(ap_dir, folder)
    libs = " ".join(f"$({cxx} -print-file-name={lib})" for lib in ("libasan.so", "libubsan.so"))
    return (f"{LIBRARY_ENV}=1 LD_PRELOAD=\"{libs}\" UBSAN_OPTIONS={env['UBSAN_OPTIONS']} "
            f"ASAN_OPTIONS={env['ASAN_OPTIONS']} {args}")


def main(argv: list[str]) -> int:
    """Run argv (a command line) with the kernel libraries under the sanitizers; its exit code."""
    import shlex
    import subprocess
    import tempfile

    from edgellm.hw import csim

    if not argv:
        print("usage: python -m edgellm.hw.sanitize COMMAND [ARGS...]  (e.g. python -m pytest -n 0 -s "
              "tests/test_hw_tlmm.py)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        line = preload_command(csim.cxx(), csim.ap_types_dir(), Path(tmp), shlex.join(argv))
        return subprocess.run(["bash", "-c", line]).returncode


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
