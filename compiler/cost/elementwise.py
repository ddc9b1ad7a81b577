"""The fused element-wise stages as built (hw/include/edgellm/elementwise.h, kv_cache.h): their cycles and
the engine's resources (resources(), engine_resources()).

Each stage is a sequence of pipelined passes over a row (II = 1): an on-chip pass moves VEC elements
per cycle (ew_traits VEC = design.ew_vec; the GLU act(g) * u pass GLU_VEC = design.glu_vec); a pass
that reads or writes DDR moves at most the data port's width per cycle (128 bits = 4 fp32 or 16
int8); the RMSNorm sum of squares keeps the contract's NORM_LANES lane order with LaneUnits adders
(numerics_lanes.h lane_sum). Every pass also pays a pipeline fill. The passes of one decoder layer follow
decoder_layer.h's order; nothing here overlaps with the linears or attention (the stages run between
them).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

from edgellm.compiler.cost.memory import Resources, bound_memory
from edgellm.compiler.cost.ops import FADD, FCVT, FDIV, FMUL, FRSQRT, ops
from edgellm.compiler.design import DesignParams
from edgellm.models.config import ModelConfig
from edgellm.runtime.layout import ADD_LATENCY

# Pipeline fill of one on-chip fp32 pass (load, multiply/add chain, store). Assumption, cycles.
EW_PASS_FILL = 12
# Extra latency of a pass whose first element comes from DDR (AXI read round trip on the Zynq
# UltraScale+ HP ports, about 100-200 ns at 250 MHz). Assumption, cycles.
DDR_READ_LATENCY = 48


def _ddr(n: int, per_cycle: float, read: bool = True) -> int:
    return math.ceil(n / per_cycle) + EW_PASS_FILL + (DDR_READ_LATENCY if read else 0)


class _Widths:
    """Elements per cycle of each pass kind for one design."""

    def __init__(self, p: DesignParams) -> None:
        port_bytes = p.data_port_width_bits // 8
        self.vec = p.ew_vec
        self.glu = p.glu_vec  # the GLU act(g) * u pass (GLU_VEC <= VEC)
        self.f32_ddr = min(p.ew_vec, port_bytes // 4)  # fp32 elements per cycle over the data port
        self.i8_ddr = min(p.ew_vec, port_bytes)  # int8 elements per cycle over the data port
        self.lanes = p.ew_lanes  # NORM_LANES: the contract's lane order of the sum of squares
        self.sumsq_units = sumsq_units(p)


def sumsq_units(p: DesignParams) -> int:
    """Adders of the RMSNorm sum of squares (numerics_lanes.h LaneUnits): at most VEC, and few enough that
    each of the NORM_LANES lanes is revisited no sooner than ADD_LATENCY cycles."""
    return sumsq_units_for(p.ew_vec, p.ew_lanes)


def sumsq_units_for(vec: int, lanes: int) -> int:
    """sumsq_units for VEC and NORM_LANES."""
    return max(1, min(vec, lanes // ADD_LATENCY))


class EwCounts(NamedTuple):
    """Steady-state pipelined-loop counts of one token of one stage (C simulation's ew_trace)."""

    iters: int  # loop iterations, the lane trees' included
    loops: int  # pipelined-loop entries (a lane tree: one per level)
    tree: int  # of iters, the lane trees' (LANES - 1 each)


STAGES = ("norm", "rope", "glu", "residual")  # elementwise.h EwMode kEwNorm, kEwRope, kEwGlu, kEwResidual


def tree_iterations(lanes: int) -> int:
    """Iterations of numerics_lanes.h lane_tree over `lanes` lanes (level h: h of them)."""
    return lanes - 1


def _ring_carries(x: int, ii: int, lanes: int) -> bool:
    """numerics_lanes.h RowFuse<LANES, X, II>::SS: the pass owns LANES lanes and a tree (X a LaneUnits width,
    or X dividing LANES at II > 1: a lane's adds LANES / X * II cycles apart)."""
    return sumsq_units_for(x, lanes) == x or (ii > 1 and lanes % x == 0)


def ring_iterations(n: int, units: int, lanes: int) -> int:
    """Iterations of a loop feeding `units` elements per cycle into numerics_lanes.h's LaneRing of `lanes`
    lanes: ceil(n / units) chunks padded to whole rotations of lanes / units."""
    rot = max(1, lanes // units)
    return math.ceil(math.ceil(n / units) / rot) * rot


def beat_cycles(n: int, w: int, x: int) -> int:
    """Cycles of a pass over n elements that moves one data beat of x fields per iteration at w elements
    per cycle (ew_passes.h, ew_fused.h ew_fused_pass: II = x / w, 1 when w >= x)."""
    return math.ceil(n / x) * max(1, x // w)


def _produce_counts(n: int, w: int, lanes: int, sumsq: bool, x: int) -> EwCounts:
    """A fused producing pass W wide (elementwise.h ew_load_pass / ew_glu_pass / ew_residual_pass): one
    beat of x 32-bit fields per iteration at II = x / W, ceil(n / x) iterations; when it carries the sum
    of squares the iterations run in whole rotations of the lane ring (lanes / x sets of x), then
    RowFuse::finish runs lane_tree over its LANES lanes (log2(LANES) levels, LANES - 1 iterations).
    Counted in cycles (iterations * II)."""
    ii = max(1, x // w)
    if not (sumsq and _ring_carries(x, ii, lanes)):
        return EwCounts(beat_cycles(n, w, x), 1, 0)
    tree = tree_iterations(lanes)
    return EwCounts(ring_iterations(n, x, lanes) * ii + tree, 1 + int(math.log2(lanes)), tree)


def stage_counts(stage: str, n: int, norm: bool, vec: int, lanes: int, head_dim: int = 2,
                 glu_vec: int = 0, beat_floats: int = 4) -> EwCounts:
    """Loop counts of one token of one element-wise stage as ew_engine's pipelined loops run them (no
    fills or latencies), iterations counted in cycles (times the loop's II): every pass moves one data
    beat per iteration (beat_floats 32-bit fields, 4 * beat_floats int8; 4 at 128 bits, also the plain
    arrays' shape) at II = fields / width. `stage` in STAGES; n: row length (rope: heads * head_dim);
    norm: the RMSNorm / SubLN / next norm (ignored for rope); vec: ew_traits VEC; lanes: NORM_LANES;
    glu_vec: ew_traits GLU_VEC (the GLU act pass's width; 0: vec). Rows starting on a beat (the int8 rows
    of the layer may not: a row that straddles one more beat costs one more iteration there).
    tests/test_hw_elementwise.py holds these against the C simulation's ew_trace."""
    if stage not in STAGES:
        raise ValueError(f"element-wise stage {stage!r}: expected one of {STAGES}")
    def fused_width(w: int) -> int:  # a producing pass's width (EwFused: U, or VEC unnormed)
        u = sumsq_units_for(w, lanes)
        return u if (u == w or norm) else w

    x = beat_floats
    fused = fused_width(vec)
    c = beat_cycles(n, vec, x)
    parts: list[EwCounts] = []
    if stage == "norm":
        parts.append(_produce_counts(n, fused, lanes, norm, x))
    else:
        parts.append(_produce_counts(n, vec, lanes, False, x))  # the linear output's load (no reduction)
        if stage == "rope":  # the cos row, the sin row (ew_row_in), rope_row
            parts += [EwCounts(beat_cycles(head_dim // 2, vec, x), 1, 0)] * 2 + [EwCounts(c, 1, 0)]
        else:
            w = fused_width(glu_vec or vec) if stage == "glu" else fused  # act * u: GLU_VEC wide
            parts.append(_produce_counts(n, w, lanes, norm, x))  # act * u, or h += y
    if stage in ("norm", "glu") or (stage == "residual" and norm):
        if norm:
            parts.append(EwCounts(c, 1, 0))  # rmsnorm_scale
        parts.append(EwCounts(beat_cycles(n, vec, 4 * x), 1, 0))  # quantize_store: int8 beats
    return EwCounts(*(sum(p[k] for p in parts) for k in range(3)))


def stage_iterations(stage: str, n: int, norm: bool, vec: int, lanes: int, head_dim: int = 2,
                     glu_vec: int = 0) -> int:
    """Steady-state loop iterations of one token of one stage (stage_counts(...).iters)."""
    return stage_counts(stage, n, norm, vec, lanes, head_dim, glu_vec).iters


def _produce_sumsq(n: int, w: _Widths, units: int = 0) -> int:
    """A producing pass that reads DDR and carries the sum of squares (numerics_lanes.h RowFuse): `units`
    (default U) elements per cycle (at most the port's fp32 width) into the contract's lanes, padded
    to whole rotations of the lane ring (at most lanes / units - 1 idle iterations), then the halving
    tree."""
    units = units or w.sumsq_units
    tree = tree_iterations(w.lanes) + int(math.log2(w.lanes)) * ADD_LATENCY
    ii = max(1, math.ceil(ADD_LATENCY * units / w.lanes))
    pad = ring_iterations(n, units, w.lanes) - math.ceil(n / units)
    return (_ddr(n, min(units, w.f32_ddr)) + pad) * ii + tree


def _norm_tail(n: int, w: _Widths) -> int:
    """Scale (gamma from DDR) + absmax, then round + clamp + store q (int8 to DDR)."""
    return _ddr(n, w.f32_ddr) + _ddr(n, w.i8_ddr, read=False)


def norm_quantize(n: int, norm: bool, w: _Widths) -> int:
    """One token (norm_quantize_tokens): load + sum of squares, scale + absmax, round + store; without
    the norm: load + absmax, round + store."""
    if norm:
        return _produce_sumsq(n, w) + _norm_tail(n, w)
    return _ddr(n, w.f32_ddr) + _ddr(n, w.i8_ddr, read=False)


def final_norm(cfg: ModelConfig, p: DesignParams) -> int:
    """The final norm's cycles (one row, after the last layer, before the LM head)."""
    return norm_quantize(cfg.hidden_size, True, _Widths(p))


def dequant_rope(n_heads: int, head_dim: int, w: _Widths) -> int:
    """One token: load row, this position's cos/sin rows, RoPE fused into the output pass."""
    n, half = n_heads * head_dim, head_dim // 2
    tables = 2 * _ddr(half, w.f32_ddr)  # the cos row, then the sin row: a loop each (ew_row_in)
    return _ddr(n, w.f32_ddr) + tables + _ddr(n, w.f32_ddr, read=False)


def glu_norm_quantize(n: int, subln: bool, w: _Widths) -> int:
    """One token: load g; act(g) * u (u from DDR; GLU_VEC wide) + sum of squares (SubLN) or absmax;
    [scale + absmax]; round + store."""
    if subln:
        return _ddr(n, w.f32_ddr) + _produce_sumsq(n, w, sumsq_units_for(w.glu, w.lanes)) + _norm_tail(n, w)
    return _ddr(n, w.f32_ddr) + _ddr(n, min(w.glu, w.f32_ddr)) + _ddr(n, w.i8_ddr, read=False)


def residual_norm_quantize(n: int, next_norm: bool, w: _Widths) -> int:
    """One token: load y; h += y (h read and written over DDR's read and write channels) [+ sum of
    squares; scale + absmax; round + store]."""
    if next_norm:
        return _ddr(n, w.f32_ddr) + _produce_sumsq(n, w) + _norm_tail(n, w)
    return 2 * _ddr(n, w.f32_ddr)


def kv_write(kv_size: int, w: _Widths) -> int:
    """One token: K and V rows from scratch into the cache (kv_cache_write)."""
    return 2 * _ddr(kv_size, w.f32_ddr)


def layer_cycles(cfg: ModelConfig, p: DesignParams, tokens: int) -> int:
    """Element-wise cycles of one decoder layer for `tokens` tokens (decoder_layer.h order)."""
    w = _Widths(p)
    per_token = (
        norm_quantize(cfg.hidden_size, True, w)  # attention input norm
        + dequant_rope(cfg.n_heads, cfg.head_dim, w) + dequant_rope(cfg.n_kv_heads, cfg.head_dim, w)
        + kv_write(cfg.kv_size, w)
        + norm_quantize(cfg.q_size, cfg.subln, w)  # SubLN (or plain quantize) before o_proj
        + residual_norm_quantize(cfg.hidden_size, True, w)  # h += o; FFN norm
        + glu_norm_quantize(cfg.ffn_size, cfg.subln, w)
        + residual_norm_quantize(cfg.hidden_size, False, w)  # h += down
    )
    return tokens * per_token


# --- Resources ------------------------------------------------------------------------------------
# The design fields resources() reads (tests/test_cost_fields.py; the DSE keys its caches by them).
RESOURCE_FIELDS = ("ew_vec", "ew_lanes", "ew_glu_vec", "act_buffer")
EW_F32_ROWS = 1  # elementwise.h EwRows: the one fp32 row the fused stages share
ABSMAX_LUT = 40  # |x| and a 32-bit float compare/select per lane (sign-magnitude compare), estimate
CLAMP_LUT = 30  # rint result clamp to [-128, 127] and int8 select per lane, estimate


def resources(cfg: ModelConfig, p: DesignParams) -> Resources:
    """elementwise.h ew_engine: one engine serves every element-wise job of the layer and the final norm,
    its operators limited to what its widest pass needs (EwBudget; V = ew_vec, U = LaneUnits, g =
    glu_vec and gu = min(g, U): the GLU act(g) * u pass's widths without and with the SubLN's sum of
    squares): ReLU^2 max(2V, 3gu, 2g, U) fmul, max(V, 2U) fadd, V fsub, 1 fdiv, 1 fsqrt; SiLU (exp_f
    is multiplies and adds) max(11g, 12gu, 2V, U) fmul, max(8g, 9gu, V, 2U) fadd, max(3g, V) fsub,
    g fdiv, 1 fsqrt. Plus V absmax compares, V round/clamp/convert lanes, the NORM_LANES lane
    registers and the one shared row (EwRows: N_MAX floats, cyclic by VEC, bound to
    design.act_buffer)."""
    return engine_resources(cfg, p.ew_vec, p.ew_lanes, p.act_buffer, p.glu_vec)


@functools.lru_cache(maxsize=1024)
def engine_resources(cfg: ModelConfig, v: int, lanes: int, act_buffer: str, g: int = 0) -> Resources:
    """resources() from the fields it reads: VEC, NORM_LANES, act_buffer, GLU_VEC (0: VEC)."""
    g = g or v
    u = sumsq_units_for(v, lanes)
    gu = min(g, u)
    if cfg.act == "silu":
        fmul, fadd, fdiv = max(11 * g, 12 * gu, 2 * v, u), max(8 * g, 9 * gu, v, 2 * u) + max(3 * g, v), g
    else:
        fmul, fadd, fdiv = max(2 * v, 3 * gu, 2 * g, u), max(v, 2 * u) + v, 1
    units = (ops(FMUL, n=fmul) + ops(FADD, n=fadd) + ops(FDIV, n=fdiv) + ops(FRSQRT)
             + ops(FCVT, n=v) + Resources(lut=v * (ABSMAX_LUT + CLAMP_LUT), ff=32 * lanes))
    n_max = max(cfg.hidden_size, cfg.q_size, cfg.ffn_size)
    return units + bound_memory(32, -(-n_max // v), v * EW_F32_ROWS, act_buffer)
