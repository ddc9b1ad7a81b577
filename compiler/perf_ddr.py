"""DDR side of the performance model: what the design's ports and the board's DDR can move, the bytes
one decode step needs, and the DDR-bound decode rate (the physical limit, ANCHORS.md). Projections.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgellm.boards import Board
from edgellm.compiler.design import (
    ACT_BYTES,
    DesignParams,
    kv_bytes_per_token,
    layer_weight_bytes,
    lm_head_bytes,
    weight_bytes,
)
from edgellm.compiler.perf_tlmm import MAX_STREAM_PORTS, stream_ports
from edgellm.models.config import PRESETS, ModelConfig

# Effective DDR streaming rate of a GEMV on the KV260's four Cortex-A53 cores (NEON). Derived from the
# bitnet.cpp anchor in ANCHORS.md (bitnet-kv260 row): 2.77 tok/s for BitNet-b1.58-2B-4T on the A53s,
# reading per token the I2_S ternary weights (2 bits/weight) plus the fp16 tied embedding as LM head.
BITNET_CPP_A53_TOK_S = 2.77
BITNET_CPP_BITS_PER_WEIGHT = 2.0  # I2_S
BITNET_CPP_HEAD_BYTES = 2  # fp16 output embedding


def _arm_stream_bytes_per_s() -> float:
    cfg = PRESETS["bitnet-b1.58-2B-4T"]
    per_token = (cfg.n_ternary_params() * BITNET_CPP_BITS_PER_WEIGHT / 8
                 + cfg.vocab_size * cfg.hidden_size * BITNET_CPP_HEAD_BYTES)
    return per_token * BITNET_CPP_A53_TOK_S


ARM_STREAM_BYTES_PER_S = _arm_stream_bytes_per_s()  # about 3.3e9


@dataclass(frozen=True)
class Bandwidth:
    """Bytes/s the design can pull: weight ports together, the data port, the board's DDR; kv_port:
    one weight port reading the KV cache (full port width), kv_ports: the weight ports that do."""

    weights: float
    data: float
    ddr: float
    kv_port: float = 0.0
    kv_ports: int = 0


def bandwidth(board: Board, p: DesignParams) -> Bandwidth:
    """Port-limited and DDR-limited bandwidths of a design on a board."""
    f = p.clock_mhz * 1e6
    per_port = min(p.port_width_bits, board.hp_port_width_bits) / 8 * f
    distinct = min(p.weight_ports, len(board.hp_port_names))  # more m_axi than HP ports share them
    if p.overlap:  # the generated engine streams over at most MAX_STREAM_PORTS ports, R bytes each
        distinct = min(distinct, MAX_STREAM_PORTS)
        per_port = min(per_port, p.rows * f)
    ddr = board.ddr_achievable_gbps * 1e9
    data = min(p.data_port_width_bits, board.hp_port_width_bits) / 8 * f
    kv_port = min(p.port_width_bits, board.hp_port_width_bits) / 8 * f
    kv_ports = stream_ports(board, p) if p.overlap else 0
    return Bandwidth(weights=min(distinct * per_port, ddr), data=min(data, ddr), ddr=ddr,
                     kv_port=kv_port, kv_ports=kv_ports)


def port_bytes_per_cycle(board: Board, p: DesignParams, beat_bytes: int) -> float:
    """Bytes one weight port moves per cycle: one beat of `beat_bytes`, at most the port and HP widths."""
    return min(beat_bytes, p.port_width_bits / 8, board.hp_port_width_bits / 8)


def ddr_bytes_per_cycle(board: Board, p: DesignParams) -> float:
    """The board's achievable DDR bytes per design clock cycle."""
    return board.ddr_achievable_gbps * 1e9 / (p.clock_mhz * 1e6)


def decode_bytes_per_token(cfg: ModelConfig, p: DesignParams, context: int | None = None) -> int:
    """DDR bytes one decode step reads and writes (weights, LM head, KV cache, activations)."""
    ctx = p.decode_context if context is None else context
    acts = 2 * cfg.n_layers * max(cfg.hidden_size, cfg.ffn_size) * ACT_BYTES + cfg.vocab_size * ACT_BYTES
    return (weight_bytes(cfg, p) + lm_head_bytes(cfg, p.lm_head_bits)
            + (ctx + 1) * kv_bytes_per_token(cfg, p) + acts)


def ddr_bound_tokens_per_s(cfg: ModelConfig, board: Board, p: DesignParams,
                           context: int | None = None) -> float:
    """The physical limit: achievable DDR bandwidth / bytes per decode step."""
    return board.ddr_achievable_gbps * 1e9 / decode_bytes_per_token(cfg, p, context)


def weight_load_s(cfg: ModelConfig, board: Board, p: DesignParams) -> float:
    """Seconds to stream one copy of the ternary weights through the weight ports."""
    return cfg.n_layers * layer_weight_bytes(cfg, p) / bandwidth(board, p).weights
