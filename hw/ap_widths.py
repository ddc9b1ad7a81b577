"""The widest arbitrary-precision integer a synthesized source instantiates, against Vitis HLS's limit.

Vitis HLS accepts ap_[u]int<W> up to AP_INT_MAX_W bits: 1024 by default, raised to at most 4096 by
defining the macro before ap_int.h is included (UG1399 "Arbitrary Precision Integer Types": "The default
maximum width allowed is 1024 bits. This default may be overridden by defining the macro AP_INT_MAX_W
with a positive integer value less than or equal to 4096 before inclusion of the ap_int.h header
file."). hls4ml's C-simulation headers, which `edgellm csim` builds with, do not enforce it:
ap_uint<2048> compiles and simulates there and fails only in Vitis. So the check compiles the top's
translation unit without optimisation (every template it uses is emitted) and reads the widths of the
ap_int_base / ap_uint / ap_int / ap_range_ref / ap_bit_ref / ap_concat_ref instances from the object's
symbols (`nm -C`): operator results (a + 1 on ap_uint<W> is W + 1 bits) count like declared types.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from edgellm.errors import EdgeLLMError

AP_INT_MAX_W = 1024  # Vitis HLS's default AP_INT_MAX_W (UG1399)
AP_INT_MAX_W_LIMIT = 4096  # the most AP_INT_MAX_W may be raised to (UG1399)
COMPILE_TIMEOUT_S = 300.0
_TYPE = re.compile(r"\bap_(?:u?int|int_base|range_ref|bit_ref|concat_ref)<(\d+)")
_DEFINE = re.compile(r"^\s*#\s*define\s+AP_INT_MAX_W\s+(\d+)", re.M)


def symbol_widths(symbols: str) -> dict[int, str]:
    """Width -> the first demangled symbol that names an ap type of it."""
    out: dict[int, str] = {}
    for line in symbols.splitlines():
        for m in _TYPE.finditer(line):
            out.setdefault(int(m.group(1)), line.split(" ", 2)[-1].strip())
    return out


def declared_limit(sources: list[Path]) -> int:
    """The AP_INT_MAX_W the sources define (the largest #define; the default when none does)."""
    found = [int(m.group(1)) for s in sources for m in _DEFINE.finditer(s.read_text(errors="replace"))]
    return max(found, default=AP_INT_MAX_W)


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise EdgeLLMError(f"{name} not found on PATH: the ap width check needs it (binutils / g++)")
    return exe


def object_widths(cxx: str, source: Path, flags: list[str]) -> dict[int, str]:
    """Compile `source` (-O0 -c, the given include flags; hw/csim.run_compiler: its errors, its bound) in a
    temporary folder and return the widths its object's symbols name (symbol_widths); EdgeLLMError when
    the compiler or nm fails."""
    from edgellm.hw.csim import run_compiler

    nm = _tool("nm")
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "top.o"
        run_compiler([cxx, "-std=c++14", "-O0", "-c", *flags, str(source), "-o", str(obj)],
                     f"{source} (the ap width check, -O0)", COMPILE_TIMEOUT_S)
        try:
            sym = subprocess.run([nm, "-C", str(obj)], capture_output=True, text=True,
                                 timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise EdgeLLMError(f"nm on {source}'s object ran past {COMPILE_TIMEOUT_S:g} s") from None
        if sym.returncode != 0:
            raise EdgeLLMError(f"nm failed on {source}'s object: {sym.stderr.strip()[:200]}")
        return symbol_widths(sym.stdout)


def findings(widths: dict[int, str], limit: int) -> list[str]:
    """One line per width over `limit` (the widest first), naming a symbol that uses it."""
    return [f"ap width {w} bits > AP_INT_MAX_W {limit}: {widths[w][:160]}"
            for w in sorted(widths, reverse=True) if w > limit]


def check_top(cxx: str, top: Path, flags: list[str], sources: list[Path]) -> tuple[int, list[str]]:
    """(widest ap width the top instantiates, findings over the limit its sources declare, at most
    AP_INT_MAX_W_LIMIT)."""
    limit = min(declared_limit(sources), AP_INT_MAX_W_LIMIT)
    widths = object_widths(cxx, top, flags)
    return max(widths, default=0), findings(widths, limit)
