"""The LM head as built (hw/include/edgellm/lm_head.h): an int8 GEMV over the vocabulary's rows, an fp32
row scale, running argmax / top-k; its time per token (seconds()) and its resources (resources()). Off
the fabric (design.lm_head_on_fabric False) the ARM cores stream it (arm_seconds). Projections.
"""

from __future__ import annotations

import math

from edgellm.boards import Board
from edgellm.compiler.cost.ddr import ARM_STREAM_BYTES_PER_S, ddr_bytes_per_cycle, port_rows_bytes_per_cycle
from edgellm.compiler.cost.elementwise import DDR_READ_LATENCY
from edgellm.compiler.cost.memory import Resources, auto_memory, bram36_for, mux_luts
from edgellm.compiler.cost.ops import FCVT, FDIV, FMUL, INT8_MACS_PER_DSP, ops
from edgellm.compiler.cost.tlmm import LINEAR_PIPELINE_DEPTH, TILE_PIPELINE_DEPTH
from edgellm.compiler.design import DesignParams, shares_for, stream_ports
from edgellm.compiler.design import head_rows as built_head_rows
from edgellm.compiler.design_bytes import lm_head_bytes
from edgellm.models.config import ModelConfig
from edgellm.runtime import layout

# The design fields resources() reads (tests/test_cost_fields.py; the DSE keys its caches by them):
# head_lanes sets the head's token lanes, clamped to the block (prefill_token_block: design.head_rows),
# data_port_width_bits the per-row logits beat (LmLogits).
RESOURCE_FIELDS = ("lm_head_on_fabric", "rows", "weight_ports", "prefill_token_block", "data_port_width_bits",
                   "head_lanes")
# LM head scoring process (lm_head.h lm_score): II per row and pipeline depth (divide, multiply,
# argmax, top-K insert). Assumption; it keeps up with the dot process while NP * II <= hidden / P.
LM_SCORE_II = 1
LM_SCORE_DEPTH = 40
MAC_LUT_FF = (20, 32)  # per int8 MAC lane: LUT and FF beside its DSP share, estimate
CONTROL = Resources(lut=300, ff=300)  # the row loop, argmax / top-k compare and insert, estimate


def arm_seconds(cfg: ModelConfig, p: DesignParams) -> float:
    """The head on the ARM cores: its bytes at the A53s' streaming rate (cost_ddr.ARM_STREAM_BYTES_PER_S)."""
    return lm_head_bytes(cfg, p.lm_head_bits) / ARM_STREAM_BYTES_PER_S


def row_bytes(cfg: ModelConfig, bits: int) -> int:
    """One vocabulary row's bytes at `bits` (the int8 head: hidden): the row the head reads at v * row
    bytes (lm_head_load.h), which a calibration's head run should be measured at (--head-row-bytes)."""
    return math.ceil(cfg.hidden_size * bits / 8)


def seconds(cfg: ModelConfig, board: Board, p: DesignParams, tokens: int = 1,
            beat: int | None = None) -> float:
    """lm_head.h lm_dot_fifo (one token): blocks of at most NP rows, P = R bytes per beat (the weight ports'
    m_axi element, one TLMM tile column; `beat`: another design's P, a low-bit design's
    design.head_beat_bytes), popped from the fetchers' head FIFOs in ONE (block, beat) loop. Port p reads
    s_p rows of every cycle of sum(s) rows (design.shares_for: the TLMM's port shares; equal: one row a
    block, row v on port v % NP), a cycle max(s) blocks: per cycle the longest of its blocks' dot cycles,
    the port finishing its rows last (its share at its own rate, ddr.port_rows_bytes_per_cycle) and the
    rows' DDR time; the logits are scored alongside."""
    if not p.lm_head_on_fabric:
        return arm_seconds(cfg, p)
    f = p.clock_mhz * 1e6
    nports, beat = stream_ports(board, p), beat or p.rows
    shares = shares_for(p, nports)
    row = row_bytes(cfg, p.lm_head_bits)
    nbeats, ncycles = -(-row // beat), -(-cfg.vocab_size // sum(shares))
    rates = port_rows_bytes_per_cycle(board, p, beat)
    cycle_load = max(max(s * nbeats * beat / r for s, r in zip(shares, rates, strict=True)),
                     sum(shares) * row / ddr_bytes_per_cycle(board, p))
    cycle_compute = tokens * nbeats * max(shares)
    score_drain = nports * LM_SCORE_II + LM_SCORE_DEPTH  # the last block's rows through the scoring process
    cycles = (ncycles * max(cycle_load, cycle_compute) + TILE_PIPELINE_DEPTH + score_drain
              + LINEAR_PIPELINE_DEPTH + DDR_READ_LATENCY)
    return cycles / f


def datapath(board: Board, lanes: int, extra: Resources) -> Resources:
    """`lanes` int8 MACs (INT8_MACS_PER_DSP per DSP), `extra` (the token's beats), the row-scale
    dequantize (FCVT, FMUL) and CONTROL."""
    macs = Resources(lut=lanes * MAC_LUT_FF[0], ff=lanes * MAC_LUT_FF[1],
                     dsp=math.ceil(lanes / INT8_MACS_PER_DSP[board.ps]))
    return macs + extra + ops(FCVT, FMUL) + CONTROL


def head_lanes(cfg: ModelConfig, p: DesignParams) -> int:
    """The built head's token lanes (its MAX_TOK): the design's head_lanes, at most the block the memory
    plan and codegen size (design.head_rows: max_t = min(prefill_token_block, the model's max_context))."""
    return built_head_rows(cfg, p)


def acc_bits(hidden: int) -> int:
    """lm_head.h LmHeadConfig ACC_BITS: SignedBits<128 * 128 * HID_MAX> (weight_codec.h)."""
    return (128 * 128 * hidden).bit_length() + 1


def row_state(cfg: ModelConfig, p: DesignParams, lanes: int, nports: int) -> Resources:
    """What the head keeps per row (token lane), lm_head.h: lm_score's running top-K (tv, ti: K_TOP fp32 +
    int32, completely partitioned), argmax (bestv, besti) and the row's scale (qsl), and its logits beat
    (LmLogits: RowStore first, last, v[E] of the data port's beat, and its offsets); the scoring inserts
    one row per cycle, reading row t's slots through a lanes:1 multiplexer. With more than one lane
    (lm_dot_rows) the lane packets (lanes x NPORTS accumulators and the block) pass a FIFO of depth 2 into
    lm_unlane's registers (la), read one row at a time."""
    k, db = max(layout.TOP_K, 1), p.data_port_width_bits
    out = Resources(lut=(k * 64 + 96 + db) * mux_luts(lanes), ff=lanes * (k * 64 + 96 + 3 * db + 128))
    if lanes > 1:
        packet = lanes * nports * acc_bits(cfg.hidden_size)
        out += Resources(lut=nports * acc_bits(cfg.hidden_size) * mux_luts(lanes), ff=3 * packet + 2 * 32)
    return out


def resources(cfg: ModelConfig, board: Board, p: DesignParams, beat: int | None = None) -> Resources:
    """lm_head.h as the generated top builds it: lm_dot_fifo (one lane) or lm_dot_rows (token lanes: each
    fetched beat dotted with every row's beat in the same cycle), lanes x NP ports x P bytes of MACs
    popping the rows straight from the fetcher's head FIFOs (counted in cost_fetch.resources; no row
    banks); each row's beats in its own BRAM (qbuf partitioned by row) and the token row it is packed from;
    the scoring process's divide,
    convert and multiply (one row per cycle) and its per-row state (row_state); nothing off the fabric.
    beat: P when it is not R (a low-bit design's, design.head_beat_bytes)."""
    if not p.lm_head_on_fabric:
        return Resources()
    beat, lanes = beat or p.rows, head_lanes(cfg, p)  # P: the weight ports' beat (LmHeadConfig P = R)
    qbuf = Resources(bram36=lanes * bram36_for(8 * beat, -(-cfg.hidden_size // beat)))  # rows' beats
    nports = stream_ports(board, p)
    # the token row on its way into qbuf: max(P, QE) explicit banks (auto_memory) and the loader's rotation
    # of a data beat into an aligned block (maxi.h row_load_banked: QE fields of 8 bits, QE:1)
    xe = p.data_port_width_bits // 8
    part = max(beat, xe)
    row = auto_memory(8, -(-cfg.hidden_size // part) + 1, part) + Resources(lut=xe * 8 * mux_luts(xe))
    extra = qbuf + ops(FDIV) + row_state(cfg, p, lanes, nports) + row
    return datapath(board, lanes * nports * beat, extra)
