"""Cycles of the TLMM engine as built (hw/include/edgellm/tlmm.h, weight_buffer.h): its tiles, their
compute loop, their bank fills from the weight fetcher's FIFOs, one linear.

A linear of n_out x k for `tokens` tokens: R-row tiles of nb = ceil(k / 5) byte columns; each stream
port fills its share of tile i+1's banks from its FIFO (two columns per cycle) while tile i computes
(tlmm_tile_iters: token groups of TP, outputs OL per cycle). cost_model runs the linears against the
fetcher (cost_fetch); the headers state the same formulas.
"""

from __future__ import annotations

import math

from edgellm.boards import Board
from edgellm.compiler.design import FETCH_BEATS, DesignParams, tlmm_tables
from edgellm.compiler.design import stream_ports as stream_ports  # the models' import point
from edgellm.runtime.layout import DSP_CHAIN
from edgellm.runtime.layout import MAX_STREAM_PORTS as MAX_STREAM_PORTS  # the models' import point

# Pipeline fill/drain of one linear: table build, lookup, adder tree, accumulate, dequantize.
# Assumption (typical Vitis HLS pipeline depth for this chain), in cycles.
LINEAR_PIPELINE_DEPTH = 64
# Pipeline fill of the per-token loops of one TLMM tile (steps + outputs) or LM-head block (dot beats
# + logits): assumption (a table/lookup/adder chain of a few stages each), cycles per token and tile.
TILE_PIPELINE_DEPTH = 8
# DSP token lanes (tlmm.h): a step's latency through a lane's cascades: the first DSP's pre-adder,
# multiplier and P registers, one cycle per further stage of a DSP_CHAIN cascade, one per level of the
# chains' adder tree, one for field extraction and accumulation. Where it exceeds TILE_PIPELINE_DEPTH
# the compute loop is that much deeper, paid once per tile by every call (decode included: the loop
# is the same). Assumptions, cycles.
DSP_STAGE_REGS = 3


def dsp_chains(p: DesignParams) -> int:
    """tlmm.h DSP_CHAINS: the cascades of at most DSP_CHAIN DSPs a row pair's G*T products form."""
    return -(-p.group_size * tlmm_tables(p) // DSP_CHAIN)


def dsp_lane_extra_depth(p: DesignParams) -> int:
    """Cycles the DSP lanes add to compute_tile's pipeline depth (0 without DSP lanes)."""
    if not p.dsp_lanes:
        return 0
    stages = p.group_size * tlmm_tables(p)
    depth = DSP_STAGE_REGS + (min(DSP_CHAIN, stages) - 1) + (dsp_chains(p) - 1).bit_length() + 1
    return max(0, depth - TILE_PIPELINE_DEPTH)


def tlmm_tile_compute_cycles(n_in: int, p: DesignParams, tokens: int) -> int:
    """Cycles of one weight tile against `tokens` tokens (tlmm.h compute_tile, tlmm_tile_iters): token
    groups of TP in one pipelined loop; phase g runs group g's steps while writing group g-1's TP*R
    outputs (OL per cycle); the last group's outputs drain at the end. Plus one pipeline fill (deeper
    with DSP lanes: dsp_lane_extra_depth)."""
    nb = -(-n_in // 5)
    nsteps = -(-nb // (p.group_size * tlmm_tables(p) // 5))
    return (tlmm_tile_iters(tokens, nsteps, p.token_lanes, p.rows, p.out_lanes) + TILE_PIPELINE_DEPTH
            + dsp_lane_extra_depth(p))


def tlmm_tile_iters(nt: int, nsteps: int, tp: int, r: int, ol: int) -> int:
    """Iterations of compute_tile's loop (tlmm.h tlmm_tile_iters): nsteps + (ng - 1) * max(nsteps, W) + WL,
    ng = ceil(nt / TP) groups, W = ceil(TP * R / OL), WL the last group's write cycles.
    tests/test_hw_tlmm.py checks it against the C++ loop bound."""
    ng = -(-nt // tp)
    last = nt - (ng - 1) * tp
    write, write_last = -(-tp * r // ol), -(-last * r // ol)
    return nsteps + (ng - 1) * max(nsteps, write) + write_last


def stream_cols(n_in: int, p: DesignParams) -> int:
    """R-byte columns a tile of an n_in-wide linear streams: ceil(n_in / 5) for our 5-trits/byte code;
    with design.bits_per_weight (modelling another design's stream, e.g. TeLLMe's 2.06 bits/weight)
    ceil(n_in * bits / 8)."""
    if p.bits_per_weight is None:
        return -(-n_in // 5)
    return math.ceil(n_in * p.bits_per_weight / 8)


def fifo_tile_load_cycles(n_in: int, p: DesignParams, nports: int) -> int:
    """Cycles to fill one full weight tile's banks from the fetcher FIFOs (weight_buffer.h
    load_port_slice from a FIFO): each port's cpp columns at FETCH_BEATS columns per cycle when a bank
    row has >= 2 slots (BEATS_PER_STEP = G*T/5 >= 2), else one column per cycle."""
    nb = stream_cols(n_in, p)
    cpp = -(-nb // nports)
    bps = p.group_size * tlmm_tables(p) // 5
    return -(-cpp // FETCH_BEATS) if bps >= 2 else cpp


def tlmm_linear_s(board: Board, out: int, n_in: int, p: DesignParams,
                   tokens: int) -> tuple[float, float, float]:
    """(total, load, compute) seconds of one linear on the generated engine for `tokens` tokens when its
    weights are always waiting in the fetcher FIFOs (cost_fetch adds the waits): tile i+1's banks fill
    from the FIFOs (fifo_tile_load_cycles; a tail tile of rows_t < R rows one byte per cycle) while
    tile i computes."""
    f = p.clock_mhz * 1e6
    r, t5 = p.rows, tlmm_tables(p)
    nb = -(-n_in // 5)
    nsteps = -(-nb // (p.group_size * t5 // 5))
    ntiles = -(-out // r)
    nports = stream_ports(board, p)
    tile_load = fifo_tile_load_cycles(n_in, p, nports)
    tail = out - (ntiles - 1) * r  # rows of the last tile
    last_load = tile_load if tail == r else tail * -(-stream_cols(n_in, p) // nports)
    tile_compute = tlmm_tile_compute_cycles(n_in, p, tokens)
    # load_acts: per token its int8 row one data beat per cycle, then a chunk of 5 G bytes per cycle; load_qs
    acts = tokens * (-(-n_in // (p.data_port_width_bits // 8)) + nsteps * (t5 // 5)) + tokens
    first = last_load if ntiles == 1 else tile_load
    total = (max(acts, first) + max(0, ntiles - 2) * max(tile_load, tile_compute)
             + (max(last_load, tile_compute) if ntiles > 1 else 0) + tile_compute + LINEAR_PIPELINE_DEPTH)
    load = (ntiles - 1) * tile_load + last_load
    return total / f, load / f, (ntiles * tile_compute + acts) / f
