"""The weight ports' shares of a stream in proportion to their rates (design.port_shares; the TLMM's tile
columns, the LM head's rows and the low-bit gearbox's words all follow them). One rule for the compiler
(compiler/cost/ddr.py rate_shares: the modelled rates) and the calibration kit (runtime/calibrate.py: the
rates the board measured). Standard library only (board-side).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

SHARE_UNITS = 32  # a stream splits into about this many units (tlmm_config.h SHARE_SUM: <= MAX_PORT_SHARES)


def shares_of_rates(rates: Sequence[float]) -> tuple[int, ...]:
    """About SHARE_UNITS units in proportion to `rates`, rounded per port (at least one), divided by their
    common factor; () when that gives equal shares."""
    if not rates or any(not r > 0 for r in rates):
        raise ValueError(f"port rates must be positive, got {list(rates)}")
    shares = [max(1, round(SHARE_UNITS * r / sum(rates))) for r in rates]
    g = functools.reduce(math.gcd, shares)
    shares = [s // g for s in shares]
    return () if len(set(shares)) == 1 else tuple(shares)
