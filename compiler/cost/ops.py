"""fp32 operator costs (LUT, FF, DSP) every kernel's resource model prices its operators with, and the
int8 MACs a DSP slice packs per device generation.

After PG060 Floating-Point Operator resource tables (UltraScale+, full-DSP multiplier/adder, medium
latency), rounded.
"""

from __future__ import annotations

from edgellm.compiler.cost.memory import Resources

FMUL = (80, 170, 3)
FADD = (230, 330, 2)
FCVT = (130, 200, 0)  # int <-> float conversion
FEXP = (900, 1300, 7)  # Vitis HLS math library expf
FDIV = (800, 1400, 0)
FRSQRT = (600, 900, 2)
# int8 MACs per DSP by PS family (device generation): DSP48E2 packs two int8 products (WP486); the
# Zynq-7000's DSP48E1 does one.
INT8_MACS_PER_DSP = {"zynqmp": 2, "zynq7": 1}


def ops(*costs: tuple[int, int, int], n: float = 1) -> Resources:
    """n copies of the operators `costs` ((LUT, FF, DSP) each)."""
    lut = sum(o[0] for o in costs)
    ff = sum(o[1] for o in costs)
    dsp = sum(o[2] for o in costs)
    return Resources(lut=lut * n, ff=ff * n, dsp=dsp * n)
