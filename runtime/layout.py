"""The accelerator's hardware facts: one source for the compiler, the generated C++ and the board runtime.

What lives here: the layer's DDR tap and scratch layouts (decoder_layer.h layer_taps<C> /
layer_scratch<C>), the port counts, FIFO depths, latencies and bounds the kernels are built with. The
C++ side gets the constants from hw/include/edgellm/hw_facts.h, which `c_header()` writes
(compiler/codegen_hls.py writes it into every project; tests/test_hw_facts.py checks the repository's
copy equals it and compiles a testbench that exports the kernels' own values for comparison).

Board-side: standard library only, Python 3.10. A model shape is anything with hidden_size, q_size,
kv_size and ffn_size (models/config.py ModelConfig).
"""

from __future__ import annotations

from typing import Any

# ---- ports ----
MAX_STREAM_PORTS = 4  # weight ports the TLMM engine and the LM head stream over concurrently
FETCH_BEATS = 2  # R-byte weight beats per word of a weight fetcher FIFO (two byte columns per cycle)
MAX_PORT_SHARES = 64  # units the weight ports' shares may sum to (a TLMM tile, a cycle of head rows)
PORT_WIDTHS = (32, 64, 128, 256, 512, 1024)  # an m_axi port's data bits: powers of two to AXI4's widest

# ---- FIFO depths ----
HEAD_FIFO_DEPTH = 64  # words of each LM-head FIFO hq{P} (64 x 128 bits stays in distributed RAM)
GEAR_COUNT_DEPTH = 32  # pass counts a weight-gearbox count FIFO holds (a fetcher's lead over its lane merge)
GEAR_LANE_DEPTH = 16  # words of a weight-gearbox merged-lane FIFO (the merge's latency)

# ---- latencies (cycles) ----
ADD_LATENCY = 8  # a pipelined fp32 add before its result feeds the next add into the same lane
MUL_ADD_LATENCY = 16  # a multiply-add recurrence through memory (y = y * c + p * v) before its next update
DSP_CHAIN = 4  # DSP48E2s per PCOUT -> PCIN cascade of a TLMM DSP token lane (a short cascade: shallow loop)

# ---- attention core ----
ATTN_MIN_ROWS = 8  # rows interleaved per key (>= ADD_LATENCY)
ATTN_MEM_LANES = 16  # floats per K (and V) beat the reader hands the core

# ---- LM head ----
K_TOP_MAX = 64  # top-k capacity bound of the LM head (LmHeadConfig K_TOP)
TOP_K = 8  # the top-k a compiled project's LM head returns (interface.top_k)
HEAD_ROWS_MAX = 8  # most rows the multi-row LM head scores in one pass over its weights (token lanes, KMAX)

# ---- low-bit engine (lowbit_mm.h) ----
LB_BEAT_BITS = 128  # bits of a low-bit weight port's beat (lb_beat_t); the engine's beat is 128 x its ports
LB_MAX_GROUP = 256  # widest group, and the inputs of a super-block (GGUF K-quants' QK_K): a record's span
LB_MIN_GROUP = 16  # narrowest group the engine decodes
LB_MAX_SB = LB_MAX_GROUP // LB_MIN_GROUP  # most groups a parameter record covers (16)
LB_MAX_RECORD_BITS = 32 + 32 + LB_MAX_SB * 16  # a record's widest on-chip window: d, dm, SB x (sc + mc)
LB_GROUPS = tuple(g for g in (16, 32, 64, 128, 256) if LB_MIN_GROUP <= g <= LB_MAX_GROUP)  # powers of two
LB_PORTS = (1, 2, 4)  # weight ports one low-bit engine reads at once (design.lowbit_ports)
LB_BEAT_WIDTHS = tuple(LB_BEAT_BITS * p for p in LB_PORTS)  # its beat BW: 128, 256 or 512 bits
LB_MIN_BITS = 2  # narrowest code width (bits per weight code) the engine decodes
LB_MAX_BITS = 8  # widest code width: a code's planes, one bit plane per bit
LB_CODE_BITS = tuple(range(LB_MIN_BITS, LB_MAX_BITS + 1))  # code widths a low-bit tensor may have: 2 .. 8
LB_SCALE_LANES = (1, 2, 4, 8, 16)  # sub-scales a record decoder decodes per iteration (design SL)
LB_FLOAT_UNITS = (1, 2, 4, 8, 16, 32)  # float steps per token lane and iteration (design FU; <= BW / 16 used)
LB_CODEC_WORDS = 10  # a parameter codec's words (ParamCodec.as_words, LB_SB .. LB_DPER of a record)
LB_MAX_CODECS = 8  # parameter codecs a design may list (design.lowbit_codecs: the engine specialised to them)


def lb_float_steps(bits: int, group: int, bw: int) -> int:
    """Float steps per iteration and token lane a tensor of `bits`-bit codes in groups of `group` needs at
    beats of bw bits (lowbit_format.h lb_float_steps): a row set's bw / group rows (at least one) step once
    per bits x plane beats (group / bw, at least one) iterations."""
    return -(-max(1, bw // group) // (bits * max(1, group // bw)))

# (C++ name in namespace edgellm::facts, Python value, what it is): the header's contents
C_FACTS = (
    ("kMaxStreamPorts", "MAX_STREAM_PORTS", "weight ports the TLMM engine and the LM head stream over"),
    ("kFetchBeats", "FETCH_BEATS", "R-byte beats per word of a weight fetcher FIFO"),
    ("kMaxPortShares", "MAX_PORT_SHARES", "units the weight ports' shares (tile, head rows) sum to at most"),
    ("kHeadFifoDepth", "HEAD_FIFO_DEPTH", "words of each LM-head FIFO"),
    ("kGearCountDepth", "GEAR_COUNT_DEPTH", "pass counts of a weight-gearbox count FIFO"),
    ("kGearLaneDepth", "GEAR_LANE_DEPTH", "words of a weight-gearbox merged-lane FIFO"),
    ("kAddLatency", "ADD_LATENCY", "cycles between two fp32 adds into one lane"),
    ("kMulAddLatency", "MUL_ADD_LATENCY", "cycles between two updates of a multiply-add recurrence"),
    ("kDspChain", "DSP_CHAIN", "DSPs per cascade of a TLMM DSP token lane"),
    ("kAttnMinRows", "ATTN_MIN_ROWS", "attention rows interleaved per key"),
    ("kAttnMemLanes", "ATTN_MEM_LANES", "floats per K/V beat the attention reader hands the core"),
    ("kTopKMax", "K_TOP_MAX", "top-k capacity bound of the LM head"),
    ("kHeadRowsMax", "HEAD_ROWS_MAX", "rows the LM head scores in one pass (token lanes)"),
    ("kLogitsRowAlign", "LOGITS_ROW_ALIGN", "floats a row of the logits region is padded to"),
    ("kLbBeatBits", "LB_BEAT_BITS", "bits of a low-bit weight port's beat"),
    ("kLbMaxGroup", "LB_MAX_GROUP", "widest low-bit group, and a super-block's inputs"),
    ("kLbMinGroup", "LB_MIN_GROUP", "narrowest low-bit group"),
    ("kLbMaxSb", "LB_MAX_SB", "most groups a low-bit parameter record covers"),
    ("kLbMaxRecordBits", "LB_MAX_RECORD_BITS", "bits of the widest low-bit parameter record"),
    ("kLbMinBits", "LB_MIN_BITS", "narrowest low-bit code width"),
    ("kLbMaxBits", "LB_MAX_BITS", "widest low-bit code width"),
)

# ---- the layer's DDR areas (offsets in floats; rows max_t apart) ----
TAP_NAMES = ("q_rope", "k_rope", "v", "attn", "h_attn", "ffn_act")  # layer_taps<C>, in order (h_out = H)
SCRATCH_NAMES = ("q_lin", "k_lin", "q", "k", "v", "attn", "g", "u", "y")  # layer_scratch<C>, then qs_a, qs_b


def head_rows(max_t: int, lanes: int) -> int:
    """Rows one OP_HEAD scores in one pass over the head's weights (the generated head's MAX_TOK, the
    logits / argmax regions' rows): the design's head lanes (compiler/design.py DesignParams.head_lanes,
    at most HEAD_ROWS_MAX), clamped to the block of max_t tokens a call takes."""
    return max(1, min(HEAD_ROWS_MAX, int(lanes), int(max_t)))


LOGITS_ROW_ALIGN = 16  # floats a row of the logits region is padded to (64 bytes: the widest data beat)


def logits_row(vocab: int) -> int:
    """Floats from one row of the logits region to the next (OP_HEAD over several rows): the vocabulary
    padded to whole data beats, so no two rows share a beat (lm_head.h LmLogits)."""
    return -(-int(vocab) // LOGITS_ROW_ALIGN) * LOGITS_ROW_ALIGN


def k_max(cfg: Any) -> int:
    """Widest linear input / row (layer_traits k_max): the int8 scratch's row."""
    return max(cfg.hidden_size, cfg.q_size, cfg.ffn_size)


def _widths(cfg: Any) -> dict[str, int]:
    return {"q_lin": cfg.q_size, "k_lin": cfg.kv_size, "q": cfg.q_size, "k": cfg.kv_size, "v": cfg.kv_size,
            "attn": cfg.q_size, "g": cfg.ffn_size, "u": cfg.ffn_size, "y": cfg.hidden_size,
            "q_rope": cfg.q_size, "k_rope": cfg.kv_size, "h_attn": cfg.hidden_size, "ffn_act": cfg.ffn_size}


def tap_layout(cfg: Any, max_t: int) -> dict[str, tuple[int, int]]:
    """Tap -> (float offset in the taps area, row width) of layer_taps<C>."""
    w, out, off = _widths(cfg), {}, 0
    for n in TAP_NAMES:
        out[n] = (off, w[n])
        off += max_t * w[n]
    return out


def tap_offsets(cfg: Any, max_t: int) -> dict[str, int]:
    """Float offsets of each tap (layer_taps<C>) and the area's size 'floats'."""
    lay = tap_layout(cfg, max_t)
    out = {n: o for n, (o, _) in lay.items()}
    out["floats"] = sum(max_t * w for _, w in lay.values())
    return out


def tap_floats(cfg: Any, max_t: int) -> int:
    """layer_taps<C>::floats."""
    return tap_offsets(cfg, max_t)["floats"]


def scratch_offsets(cfg: Any, max_t: int) -> dict[str, int]:
    """Float offsets of layer_scratch<C>'s rows, its token scales qs_a / qs_b, its size 'floats' and the
    int8 area's bytes 'bytes8'."""
    w, out, off = _widths(cfg), {}, 0
    for n in SCRATCH_NAMES:
        out[n] = off
        off += max_t * w[n]
    out["qs_a"], out["qs_b"], out["floats"] = off, off + max_t, off + 2 * max_t
    out["bytes8"] = max_t * k_max(cfg)
    return out


def layer_buffer_sizes(cfg: Any, max_t: int) -> tuple[int, int, int]:
    """(scratch floats, scratch int8 bytes, tap floats) of layer_scratch<C> / layer_taps<C>."""
    s = scratch_offsets(cfg, max_t)
    return s["floats"], s["bytes8"], tap_floats(cfg, max_t)


def c_header() -> str:
    """hw/include/edgellm/hw_facts.h: the constants above for the kernels (namespace edgellm::facts)."""
    g = globals()
    lines = [f"const int {c} = {int(g[py])};  // {what} ({py})" for c, py, what in C_FACTS]
    body = "\n".join(lines)
    return f"""// Generated from edgellm/runtime/layout.py (c_header): do not edit. Edit layout.py, then
// regenerate (python -c "from edgellm.runtime import layout; print(layout.c_header(), end='')").
// The hardware facts the compiler's models, the runtime and the kernels share.
#pragma once

namespace edgellm {{
namespace facts {{

{body}

}}  // namespace facts
}}  // namespace edgellm
"""
