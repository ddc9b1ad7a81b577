"""The TeLLMe-style serial description (design.overlap False): TeLLMe's released design described by its
own parameters, kept apart from the model of what edgellm builds. Serial weight load then compute per
layer at the whole-port bandwidth (every weight port at its full width, no fetcher), attention's K/V
over the data port, MACs of the LM head at the weight stream's rate; its resources: row banks of
buffer_depth entries, one token's vector unit, double-buffered K/V tiles (calibration.tellme_params
prices TeLLMe's published totals through it; the fixed platform terms are fitted so).

cost_model, cost_ddr.bandwidth and resource_model.estimate_resources hand a design with overlap False
to this module; nothing else reads the flag. Projections.
"""

from __future__ import annotations

import math

from edgellm.boards import Board
from edgellm.compiler.cost import attention as cost_attention
from edgellm.compiler.cost import axi as cost_axi
from edgellm.compiler.cost import lm_head as cost_lm_head
from edgellm.compiler.cost import tlmm as cost_tlmm
from edgellm.compiler.cost.ddr import Bandwidth, port_bandwidth
from edgellm.compiler.cost.memory import Resources, memory
from edgellm.compiler.cost.ops import FADD, FCVT, FDIV, FEXP, FMUL, FRSQRT, ops
from edgellm.compiler.design import DesignParams
from edgellm.compiler.design_bytes import linear_bytes, lm_head_bytes, norms_per_layer
from edgellm.models.config import ModelConfig

# The design fields each part reads (tests/test_cost_fields.py records every read; the DSE keys its
# caches by them): the bandwidth, the projection (decode_step / prefill) and the resource entries.
BANDWIDTH_FIELDS = ("clock_mhz", "weight_ports", "port_width_bits", "data_port_width_bits", "port_shares")
PERF_FIELDS = (*BANDWIDTH_FIELDS, "group_size", "tables", "rows", "bits_per_weight", "lm_head_on_fabric",
               "lm_head_bits", "prefill_token_block", "attn_q_block", "attn_lanes", "ew_lanes", "kv_bytes",
               "decode_context", "ip_calls_per_token")
RESOURCE_FIELDS = {
    "tlmm": (*BANDWIDTH_FIELDS, "group_size", "tables", "rows", "bits_per_weight", "weight_buffer",
             "weight_buffer_depth", "prefill_token_block"),
    "elementwise": ("rows", "ew_lanes"),
    "attention": ("attn_lanes", "attn_q_block", "attn_kv_block"),
    "lm_head": (*BANDWIDTH_FIELDS, "lm_head_on_fabric", "lm_head_bits"),
    "fetch": (),
    "axi": cost_axi.RESOURCE_FIELDS,
}
# Pipeline depth of one linear (table build, lookup, adder tree, accumulate, dequantize), the same
# assumption as the generated engine's (cost_tlmm.LINEAR_PIPELINE_DEPTH), cycles.
LINEAR_PIPELINE_DEPTH = cost_tlmm.LINEAR_PIPELINE_DEPTH
# Pipeline depth of an attention tile (dot product tree + exp + rescale). Assumption, cycles.
ATTN_PIPELINE_DEPTH = 64
# Attention MAC lanes served by one pipelined fp32 exp unit (softmax). Design choice.
LANES_PER_EXP_UNIT = 16
LUTRAM_BITS = 64  # bits per LUT used as distributed RAM (SLICEM): the accumulators of a token block


def bandwidth(board: Board, p: DesignParams) -> Bandwidth:
    """cost_ddr.bandwidth for the serial description: every weight port (up to the board's) at its
    whole width, no K/V over the weight ports."""
    f = p.clock_mhz * 1e6
    per_port = min(p.port_width_bits, board.hp_port_width_bits) / 8 * f
    return port_bandwidth(board, p, min(p.weight_ports, len(board.hp_port_names)), per_port, 0)


def linear_cycles(out: int, n_in: int, p: DesignParams, tokens: int = 1) -> int:
    """Cycles of one linear for `tokens` tokens: R rows x T tables per cycle per token."""
    return math.ceil(out / p.rows) * math.ceil(n_in / p.group_cols) * tokens + LINEAR_PIPELINE_DEPTH


def buffer_depth(cfg: ModelConfig, p: DesignParams) -> int:
    """Entries per row bank of the weight buffer (default: two tiles of the widest linear)."""
    widest = max(i for _, i in cfg.linear_shapes().values())
    return p.weight_buffer_depth or 2 * math.ceil(widest / p.group_cols)


def lm_head_s(cfg: ModelConfig, p: DesignParams, bw: Bandwidth) -> float:
    """The LM head: MACs at the weight stream's rate, load then compute (off the fabric: the ARM's)."""
    if not p.lm_head_on_fabric:
        return cost_lm_head.arm_seconds(cfg, p)
    f = p.clock_mhz * 1e6
    lanes = max(1, int(bw.weights / f * 8 // p.lm_head_bits))
    cycles = math.ceil(cfg.vocab_size * cfg.hidden_size / lanes) + LINEAR_PIPELINE_DEPTH
    return lm_head_bytes(cfg, p.lm_head_bits) / bw.weights + cycles / f


def attention_s(cfg: ModelConfig, p: DesignParams, bw: Bandwidth, queries: int, context: int) -> float:
    """One layer's attention for `queries` new tokens ending at `context` (causal): attn_lanes MAC lanes,
    K/V tiles over the data port, load then compute."""
    f = p.clock_mhz * 1e6
    first = context - queries  # keys already cached before the new tokens
    nbytes = cost_attention.layer_ddr_bytes(cfg, p, queries, context)
    pairs = queries * first + queries * (queries + 1) // 2  # (query, key) score pairs per head
    exp_units = math.ceil(p.attn_lanes / LANES_PER_EXP_UNIT)
    cycles = (2 * cfg.n_heads * pairs * math.ceil(cfg.head_dim / p.attn_lanes)
              + math.ceil(cfg.n_heads * pairs / exp_units) + ATTN_PIPELINE_DEPTH)
    return nbytes / bw.data + cycles / f


def layer(cfg: ModelConfig, p: DesignParams, bw: Bandwidth, tokens: int, context: int) -> dict[str, float]:
    """One layer for a block of `tokens` tokens ending at `context`, everything serial at the whole-port
    bandwidth: load, compute, attention, elementwise, total (s)."""
    f = p.clock_mhz * 1e6
    shapes = cfg.linear_shapes().values()
    attn = attention_s(cfg, p, bw, tokens, context)
    ew = tokens * norms_per_layer(cfg) * math.ceil(cfg.hidden_size / p.ew_lanes) / f
    load = sum(linear_bytes(o, i, p) for o, i in shapes) / bw.weights
    compute = sum(linear_cycles(o, i, p, tokens) for o, i in shapes) / f
    return {"load": load, "compute": compute, "attention": attn, "elementwise": ew,
            "total": load + compute + attn + ew}


def run(cfg: ModelConfig, board: Board, p: DesignParams, tokens: int,
        context0: int) -> tuple[float, float, dict[str, float]]:
    """`tokens` tokens after `context0` cached ones, in blocks of prefill_token_block: (the layers'
    seconds, the LM head's, detail: load, compute, attention, elementwise; they add up to the layers).
    cost_model adds the host."""
    bw = bandwidth(board, p)
    layers = 0.0
    detail = {"load": 0.0, "compute": 0.0, "attention": 0.0, "elementwise": 0.0}
    done = 0
    while done < tokens:
        n = min(tokens - done, p.prefill_token_block)
        lay = layer(cfg, p, bw, n, context0 + done + n)
        layers += cfg.n_layers * lay["total"]
        for k in detail:
            detail[k] += cfg.n_layers * lay[k]
        done += n
    return layers, lm_head_s(cfg, p, bw), detail


# --- Resources ------------------------------------------------------------------------------------
def tlmm(cfg: ModelConfig, board: Board, p: DesignParams) -> Resources:
    """Table builders, lookups, adder trees (cost_tlmm.table_lane), accumulators, a trit decoder at the
    stream's rate, row banks of buffer_depth entries and one activation buffer."""
    g, t, r = p.group_size, p.tables, p.rows
    lookup, tree, build = cost_tlmm.table_lane(g, t, r)
    decode = Resources()
    if p.bits_per_weight is None:  # a 5-trits/byte stream would be unpacked at the stream's rate
        decode = cost_tlmm.trit_decoder(bandwidth(board, p).weights / (p.clock_mhz * 1e6))
    use_uram = p.weight_buffer == "uram" and board.uram > 0
    acc_bits = cost_tlmm.ACC_BITS
    acc = Resources(lut=r * acc_bits + r * p.prefill_token_block * acc_bits / LUTRAM_BITS, ff=r * acc_bits)
    wbuf = memory(t * p.index_bits, buffer_depth(cfg, p), r, use_uram)  # row banks
    widest = max(i for _, i in cfg.linear_shapes().values())
    abuf = memory(p.group_cols * 8, p.prefill_token_block * math.ceil(widest / p.group_cols), 1, use_uram)
    return lookup + tree + acc + build + decode + wbuf + abuf


def elementwise(cfg: ModelConfig, p: DesignParams) -> Resources:
    """Dequantize/residual per output row, RMSNorm + quantize, activation, RoPE."""
    post = ops(FCVT, FMUL, FMUL, FADD, n=p.rows)  # acc -> float, * scale, * gamma / residual add
    norm = ops(FMUL, FADD, FMUL, FCVT, n=p.ew_lanes) + ops(FRSQRT, FDIV)  # x^2 sum, scale, quantize
    act_lanes = max(1, p.rows // 4)
    act = ops(FEXP, FDIV, FADD, FMUL, n=act_lanes) if cfg.act == "silu" else ops(FMUL, FMUL, n=act_lanes)
    rope = ops(FMUL, FMUL, FMUL, FMUL, FADD, FADD, n=max(1, p.rows // 4))
    vec = memory(p.rows * 32, math.ceil(cfg.hidden_size / p.rows), 2, False)  # one token's x and residual
    return post + norm + act + rope + vec


def attention(cfg: ModelConfig, p: DesignParams) -> Resources:
    """attn_lanes lanes of QK and PV dot products, softmax exp units, double-buffered K/V tiles."""
    lanes = p.attn_lanes
    dots = ops(FMUL, FADD, n=2 * lanes)
    soft = ops(FEXP, FADD, FMUL, n=math.ceil(lanes / 16)) + ops(FDIV)
    w = lanes * 32
    hd = math.ceil(cfg.head_dim / lanes)
    bufs = (memory(w, 2 * p.attn_kv_block * hd, 2, False)  # K and V tiles, double-buffered
            + memory(w, p.attn_q_block * hd, 2, False)  # Q block and O accumulators
            + memory(32, p.attn_q_block * p.attn_kv_block, 1, False))  # scores
    return dots + soft + bufs


def lm_head(cfg: ModelConfig, board: Board, p: DesignParams) -> Resources:
    """int8 MACs at the weight stream's rate (cost_lm_head.datapath); nothing off the fabric."""
    if not p.lm_head_on_fabric:
        return Resources()
    lanes = max(1, int(bandwidth(board, p).weights / (p.clock_mhz * 1e6) * 8 // p.lm_head_bits))
    return cost_lm_head.datapath(board, lanes, Resources())


def resources(cfg: ModelConfig, board: Board, p: DesignParams) -> dict[str, Resources]:
    """Resources per kernel, in resource_model.estimate_resources' order (no weight fetcher)."""
    return {"tlmm": tlmm(cfg, board, p), "elementwise": elementwise(cfg, p), "attention": attention(cfg, p),
            "lm_head": lm_head(cfg, board, p), "fetch": Resources(), "axi": cost_axi.resources(p)}
