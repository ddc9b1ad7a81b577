"""Fluid model of the weight fetcher's FIFO: a rate-limited producer ahead of a phased consumer.

The decoupled-access engine (hw weight fetcher, docs/performance.md) has a fetcher process that walks
one accelerator call's descriptor program and pushes every ternary-weight byte the TLMM will consume,
in consumption order, into FIFOs (capacity C bytes in all). It reads DDR at rate B and stops only when
the FIFOs are full or it has fetched everything the call will consume. The compute engine runs a
program of phases one after another: a linear consumes FIFO bytes; element-wise stages and attention
consume none (the fetcher keeps prefetching the next linears' weights), and attention's own K/V reads
take DDR bandwidth from the fetcher.

Bytes are a fluid (no beats, no DDR latency): a phase that consumes n bytes in `seconds` when data is
always there consumes at r = n / seconds. With L bytes queued at its start and a producer rate b
during it, the consumer can only run ahead of the producer by L, so the phase lasts

    max(seconds, (n - L) / b)

(if r <= b the FIFO never empties; if r > b it drains at r - b and once empty the phase proceeds at
b: either way the closed form above). The level then rises or falls, capped at C and at the bytes
the rest of the program still needs. One pass over the phases: O(len(phases)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple


class Phase(NamedTuple):
    """One step of the consumer's program.

    nbytes: FIFO bytes the phase consumes (0 for element-wise gaps and attention); seconds: its
    duration when data is always available; ddr_share_bytes: other DDR traffic during it (attention's
    K/V reads), spread evenly over `seconds`, that takes bandwidth from the producer.
    """

    nbytes: float
    seconds: float
    ddr_share_bytes: float = 0.0


class FetchResult(NamedTuple):
    """Total seconds of a program and the part of it the consumer waited for data (stall)."""

    seconds: float
    stall: float


def producer_rate(ph: Phase, rate: float) -> float:
    """Bytes/s left for the producer during a phase: rate minus the phase's other DDR traffic."""
    if ph.ddr_share_bytes <= 0:
        return rate
    if ph.seconds <= 0:
        return 0.0
    return max(0.0, rate - ph.ddr_share_bytes / ph.seconds)


def simulate(phases: Sequence[Phase], rate: float, capacity: float,
             total_bytes: float | None = None) -> FetchResult:
    """Run a program against a producer of `rate` bytes/s and a FIFO of `capacity` bytes (empty at the
    start; the producer never fetches more than the program's total bytes, `total_bytes` when the
    caller knows it). Closed form per phase. ValueError when the producer has no bandwidth left for
    a phase that needs bytes it lacks."""
    if rate <= 0 or capacity < 0:
        raise ValueError(f"fetch model: rate must be > 0 and capacity >= 0, got {rate}, {capacity}")
    left = math.fsum(ph.nbytes for ph in phases) if total_bytes is None else total_bytes
    level = total = stall = 0.0
    # (producer_rate and min() inlined: the design-space exploration runs this tens of thousands of times)
    for n, s, share in phases:
        b = rate if share <= 0 else (max(0.0, rate - share / s) if s > 0 else 0.0)
        total += s
        if n <= 0:  # a gap: the producer fills the FIFO
            gain = b * s
            room = capacity - level
            if room < gain:
                gain = room
            if left < gain:
                gain = left
            if gain > 0:
                level += gain
                left -= gain
            continue
        need = n - level  # bytes beyond those queued that must arrive during the phase
        if need > 0:
            if b <= 0:
                raise ValueError(f"fetch model: a phase needs {need:g} more bytes but the producer has "
                                 f"no bandwidth left (Phase({n}, {s}, {share}))")
            if need > b * s:  # the FIFO runs empty: the phase proceeds at the producer's rate
                wait = need / b
                stall += wait - s
                total += wait - s
                left -= need
                level = 0.0
                continue
        made = b * s  # the producer stops when the FIFO is full or the program's bytes are all fetched
        room = capacity - level + n
        if room < made:
            made = room
        if left < made:
            made = left
        left -= made
        level += made - n
        if level < 0.0:
            level = 0.0
    return FetchResult(total, stall)

