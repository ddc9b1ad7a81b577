"""The weight fetcher (top.h fetch_program, weight_fetch.h): the fluid model of its FIFO, a rate-limited
producer ahead of a phased consumer, and its resources (FIFOs, program walkers, loader muxes, LM-head
FIFOs: resources(), fifo_resources()).

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

from edgellm.boards import Board
from edgellm.compiler.cost.memory import (
    AUTO_LUTRAM_BITS,
    URAM_MIN_DEPTH,
    Resources,
    auto_memory,
    lutram_luts,
    uram_for,
)
from edgellm.compiler.design import FETCH_BEATS, DesignParams, stream_ports, tlmm_tables
from edgellm.runtime.layout import HEAD_FIFO_DEPTH


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
             total_bytes: float | None = None, durations: list[float] | None = None) -> FetchResult:
    """Run a program against a producer of `rate` bytes/s and a FIFO of `capacity` bytes (empty at the
    start; the producer never fetches more than the program's total bytes, `total_bytes` when the
    caller knows it). Closed form per phase; `durations`, when given, gets each phase's seconds in
    order (they sum to the result's). A phase's other DDR traffic (ddr_share_bytes) runs over its
    nominal seconds: a phase the producer holds up past them has the producer's whole rate after."""
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
            if durations is not None:
                durations.append(s)
            continue
        need = n - level  # bytes beyond those queued that must arrive during the phase
        if need > b * s:  # the FIFO runs empty: the phase proceeds at the producer's rate; once the
            # phase's other traffic (its nominal seconds' worth) is done, at the whole rate or the
            # consumer's own, whichever is less (the producer then refills the FIFO by the difference)
            rest, own = need - b * s, (n / s if s > 0 else math.inf)
            after = rest / (rate if rate < own else own)
            refill = rate * after - rest if rate > own else 0.0
            if refill > capacity:
                refill = capacity
            if refill > left - need:
                refill = max(0.0, left - need)
            stall += after
            total += after
            left -= need + refill
            level = refill
            if durations is not None:
                durations.append(s + after)
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
        if durations is not None:
            durations.append(s)
    return FetchResult(total, stall)



# --- Resources ------------------------------------------------------------------------------------
# The design fields resources() and fifo_resources() read (tests/test_cost_fields.py; the DSE keys its
# caches by them; fifo_resources' depth may also come as an argument).
RESOURCE_FIELDS = ("group_size", "tables", "rows", "weight_ports", "lm_head_on_fabric", "fetch_depth")
FIFO_FIELDS = ("rows", "weight_ports", "fetch_depth")
# Per weight port: the program walker (descriptor and layer-table reads, tile/slice counters) and the
# burst address generator. Estimate (a few counters, comparators and a small FSM), LUT and FF.
FETCH_WALKER = (600, 900)
# The TLMM loader's write mux per port: each of the FETCH_BEATS columns of a FIFO word can land in any
# of the bank row's BEATS_PER_STEP slots, about half a LUT per slot and data bit. Estimate.
LOADER_MUX_LUT_PER_SLOT_BIT = 0.5


def _fifo_memory(width: int, depth: int, n: int, board: Board) -> Resources:
    """n FIFOs of width x depth: distributed RAM under the AUTO_LUTRAM_BITS rule, else URAM where the board
    has it and depth >= URAM_MIN_DEPTH (ceil(width/72) x ceil(depth/4096)), else BRAM36 cascaded 512 x 72
    (ceil(width/72) x ceil(depth/512))."""
    if width * depth <= AUTO_LUTRAM_BITS:
        return Resources(lut=n * lutram_luts(width, depth))
    if board.uram > 0 and depth >= URAM_MIN_DEPTH:
        return Resources(uram=n * uram_for(width, depth))
    return Resources(bram36=n * math.ceil(width / 72) * math.ceil(depth / 512))


def storage(board: Board | None, p: DesignParams) -> str:
    """Where the weight FIFOs live (_fifo_memory's rule; codegen emits it as EDGELLM_FETCH_STORAGE):
    "lutram", "uram" or "bram"."""
    width, depth = 8 * p.rows * FETCH_BEATS, p.fetch_depth
    if width * depth <= AUTO_LUTRAM_BITS:
        return "lutram"
    return "uram" if board is not None and board.uram > 0 and depth >= URAM_MIN_DEPTH else "bram"


def fifo_resources(board: Board, p: DesignParams, depth: int | None = None) -> Resources:
    """The weight FIFOs alone: one per stream port, fetch_depth (or `depth`) words of FETCH_BEATS R-byte
    beats (8 R FETCH_BEATS bits)."""
    return _fifo_memory(8 * p.rows * FETCH_BEATS, depth or p.fetch_depth, stream_ports(board, p), board)


def resources(board: Board, p: DesignParams) -> Resources:
    """The decoupled weight fetcher: per stream port the weight FIFO (fifo_resources), the program walker
    and address generator (FETCH_WALKER), the TLMM loader's write mux (BEATS_PER_STEP x 8R x
    LOADER_MUX_LUT_PER_SLOT_BIT LUT) and, with the LM head on the fabric, its FIFO of HEAD_FIFO_DEPTH
    beats of 8P bits (P = R, the weight ports' beat)."""
    nports = stream_ports(board, p)
    bps = p.group_size * tlmm_tables(p) // 5
    logic = Resources(lut=nports * (FETCH_WALKER[0] + bps * 8 * p.rows * LOADER_MUX_LUT_PER_SLOT_BIT),
                      ff=nports * FETCH_WALKER[1])
    head = Resources()
    if p.lm_head_on_fabric:
        beat = p.rows  # the weight ports' beat (LmHeadConfig P = R)
        head = auto_memory(8 * beat, HEAD_FIFO_DEPTH, nports)
    return fifo_resources(board, p) + logic + head
