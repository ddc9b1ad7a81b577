"""The resource type and memory-block arithmetic every resource estimate is built from.

`Resources` counts LUT, FF, DSP, BRAM36 and URAM (BRAM36 may be fractional: an 18 Kb half counts
0.5). Memories are sized by width x depth against the primitives' aspect ratios (BRAM36: 512x72 ..
4Kx9; URAM: 4Kx72; distributed RAM per LUT). compiler/cost/resource_model.py prices the kernels with them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from edgellm.boards import Board

KINDS = ("lut", "ff", "dsp", "bram36", "uram")

# --- memory primitives ------------------------------------------------------------------------
BRAM36_SHAPES = ((512, 72), (1024, 36), (2048, 18), (4096, 9))
URAM_SHAPE = (4096, 72)
URAM_MIN_DEPTH = 1024  # shallower memories go to BRAM even where URAM is preferred (as synthesis does)
# Simple-dual-port distributed RAM (ram_s2p): RAM64M8 = 8 LUTs for 64 x 7 bits and RAM32M16 = 8 LUTs
# for 32 x 14 bits, i.e. 56 bits per LUT at full depth (UG574 CLB guide); 42 leaves room for the
# read-address decode and partially used primitives.
LUTRAM_SDP_BITS_PER_LUT = 42
AUTO_LUTRAM_BITS = 8192  # unbound arrays up to this size stay in distributed RAM (HLS default, assumption)


@dataclass(frozen=True)
class Resources:
    """PL resource counts (BRAM36 may be fractional: an 18 Kb half counts 0.5)."""

    lut: float = 0
    ff: float = 0
    dsp: float = 0
    bram36: float = 0
    uram: float = 0

    def __add__(self, o: Resources) -> Resources:
        return Resources(self.lut + o.lut, self.ff + o.ff, self.dsp + o.dsp, self.bram36 + o.bram36,
                         self.uram + o.uram)

    def rounded(self) -> Resources:
        """Rounded up to whole LUTs, FFs, DSPs, URAMs and BRAM18 halves."""
        return Resources(lut=math.ceil(self.lut), ff=math.ceil(self.ff), dsp=math.ceil(self.dsp),
                         bram36=math.ceil(self.bram36 * 2) / 2, uram=math.ceil(self.uram))

    def scaled(self, k: float) -> Resources:
        """Every count times k."""
        return Resources(self.lut * k, self.ff * k, self.dsp * k, self.bram36 * k, self.uram * k)

    def utilization(self, board: Board) -> dict[str, float]:
        """Fraction of the board's resources used, per kind (0 available and 0 used -> 0)."""
        out = {}
        for k in KINDS:
            have, used = board.resource(k), getattr(self, k)
            out[k] = used / have if have else (0.0 if used == 0 else math.inf)
        return out


def total_of(parts: Iterable[Resources]) -> Resources:
    """The sum of some kernels' resources, rounded up to whole LUTs, FFs, DSPs, URAMs and BRAM18 halves."""
    total = Resources()
    for r in parts:
        total += r
    return total.rounded()


def bram36_for(width: int, depth: int) -> float:
    """BRAM36 blocks for one width x depth memory (best aspect ratio; a shallow half counts 0.5)."""
    if depth <= 0 or width <= 0:
        return 0.0
    best = min(math.ceil(width / w) * math.ceil(depth / d) for d, w in BRAM36_SHAPES)
    if depth <= 512 and width <= 36:
        return 0.5  # fits a BRAM18
    return float(best)


def uram_for(width: int, depth: int) -> int:
    """URAM blocks for one width x depth memory."""
    return math.ceil(width / URAM_SHAPE[1]) * math.ceil(depth / URAM_SHAPE[0]) if depth > 0 else 0


def memory(width: int, depth: int, banks: int, use_uram: bool) -> Resources:
    """`banks` memories of width x depth: URAM when preferred and deep enough, else BRAM."""
    if use_uram and depth >= URAM_MIN_DEPTH:
        return Resources(uram=banks * uram_for(width, depth))
    return Resources(bram36=banks * bram36_for(width, depth))


def mux_luts(n: int) -> int:
    """LUTs per bit of an n:1 multiplexer (LUT6 4:1; 8:1 as two LUT6 and a MUXF7), estimate: 0 for n = 1."""
    return 0 if n <= 1 else 1 if n <= 4 else 2 * math.ceil(n / 8)


def lutram_luts(width: int, depth: int) -> int:
    """LUTs of one width x depth simple-dual-port distributed RAM (depth rounded up to 32)."""
    return math.ceil(width * max(32, depth) / LUTRAM_SDP_BITS_PER_LUT) if depth > 0 else 0


def auto_memory(width: int, depth: int, n: int) -> Resources:
    """n memories without a BIND_STORAGE: HLS keeps small ones in distributed RAM (assumption: up to
    AUTO_LUTRAM_BITS bits each), larger ones in BRAM."""
    if width * depth <= AUTO_LUTRAM_BITS:
        return Resources(lut=n * lutram_luts(width, depth))
    return Resources(bram36=n * bram36_for(width, depth))


def bound_memory(width: int, depth: int, n: int, kind: str) -> Resources:
    """n memories bound by BIND_STORAGE to URAM, BRAM or LUTRAM (no depth threshold: the pragma decides)."""
    if kind == "uram":
        return Resources(uram=n * uram_for(width, depth))
    if kind == "lutram":
        return Resources(lut=n * lutram_luts(width, depth))
    return Resources(bram36=n * bram36_for(width, depth))
