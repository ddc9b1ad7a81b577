"""The LM head as built (hw/include/edgellm/lm_head.h): an int8 GEMV over the vocabulary's rows, an fp32
row scale, running argmax / top-k; its time per token (seconds()) and its resources (resources()). Off
the fabric (design.lm_head_on_fabric False) the ARM cores stream it (arm_seconds). Projections.
"""

from __future__ import annotations

import math

from edgellm.boards import Board
from edgellm.compiler.cost.ddr import ARM_STREAM_BYTES_PER_S, ddr_bytes_per_cycle, port_bytes_per_cycle
from edgellm.compiler.cost.elementwise import DDR_READ_LATENCY
from edgellm.compiler.cost.memory import Resources, bram36_for
from edgellm.compiler.cost.ops import FCVT, FMUL, INT8_MACS_PER_DSP, ops
from edgellm.compiler.cost.tlmm import LINEAR_PIPELINE_DEPTH, TILE_PIPELINE_DEPTH
from edgellm.compiler.design import DesignParams, lm_head_bytes, stream_ports
from edgellm.models.config import ModelConfig

# The design fields resources() reads (tests/test_cost_fields.py; the DSE keys its caches by them).
RESOURCE_FIELDS = ("lm_head_on_fabric", "rows", "weight_ports")
# LM head scoring process (lm_head.h lm_score): II per row and pipeline depth (divide, multiply,
# argmax, top-K insert). Assumption; it keeps up with the dot process while NP * II <= hidden / P.
LM_SCORE_II = 1
LM_SCORE_DEPTH = 40
MAC_LUT_FF = (20, 32)  # per int8 MAC lane: LUT and FF beside its DSP share, estimate
CONTROL = Resources(lut=300, ff=300)  # the row loop, argmax / top-k compare and insert, estimate


def arm_seconds(cfg: ModelConfig, p: DesignParams) -> float:
    """The head on the ARM cores: its bytes at the A53s' streaming rate (cost_ddr.ARM_STREAM_BYTES_PER_S)."""
    return lm_head_bytes(cfg, p.lm_head_bits) / ARM_STREAM_BYTES_PER_S


def seconds(cfg: ModelConfig, board: Board, p: DesignParams, tokens: int = 1) -> float:
    """lm_head.h lm_dot_fifo (one token): blocks of NP rows (row v on port v % NP), P = R bytes per beat
    (the weight ports' m_axi element, one TLMM tile column), popped from the fetchers' head FIFOs in ONE
    (block, beat) loop: per block the longer of its nbeats dot cycles and its rows' DDR time; the logits
    are scored alongside."""
    if not p.lm_head_on_fabric:
        return arm_seconds(cfg, p)
    f = p.clock_mhz * 1e6
    nports, beat = stream_ports(board, p), p.rows
    row = math.ceil(cfg.hidden_size * p.lm_head_bits / 8)  # a row's bytes at lm_head_bits (int8: hidden)
    nbeats, nblk = -(-row // beat), -(-cfg.vocab_size // nports)
    blk_load = max(nbeats * beat / port_bytes_per_cycle(board, p, beat),
                   nports * row / ddr_bytes_per_cycle(board, p))
    blk_compute = tokens * nbeats
    score_drain = nports * LM_SCORE_II + LM_SCORE_DEPTH  # the last block's rows through the scoring process
    cycles = (nblk * max(blk_load, blk_compute) + TILE_PIPELINE_DEPTH + score_drain + LINEAR_PIPELINE_DEPTH
              + DDR_READ_LATENCY)
    return cycles / f


def datapath(board: Board, lanes: int, extra: Resources) -> Resources:
    """`lanes` int8 MACs (INT8_MACS_PER_DSP per DSP), `extra` (the token's beats), the row-scale
    dequantize (FCVT, FMUL) and CONTROL."""
    macs = Resources(lut=lanes * MAC_LUT_FF[0], ff=lanes * MAC_LUT_FF[1],
                     dsp=math.ceil(lanes / INT8_MACS_PER_DSP[board.ps]))
    return macs + extra + ops(FCVT, FMUL) + CONTROL


def resources(cfg: ModelConfig, board: Board, p: DesignParams) -> Resources:
    """lm_head.h lm_dot_fifo: NP ports x P bytes of MACs per cycle popping the rows straight from the
    fetcher's head FIFOs (counted in cost_fetch.resources; no row banks) and the token's beats in BRAM;
    nothing off the fabric."""
    if not p.lm_head_on_fabric:
        return Resources()
    beat = p.rows  # P: the weight ports' beat, one TLMM tile column (lm_head.h LmHeadConfig P = R)
    row = Resources(bram36=bram36_for(8 * beat, -(-cfg.hidden_size // beat)))  # the token's beats
    return datapath(board, stream_ports(board, p) * beat, row)
