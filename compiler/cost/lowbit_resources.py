"""Resources of the low-bit matmul engine (hw/include/edgellm/lowbit_mm.h) as built: its datapaths and the
banked stores of lowbit_banks.h, every memory sized by its bank count and depth, every runtime choice by
its multiplexer (docs/performance.md "Low-bit engine resources"). Estimates, not synthesis results.

The engine builds only the group-size choices MING .. MAXG (LowbitEngine.min_group / max_group): a model
with one group size has no candidate muxes in its lookups, lane sums, activation or s / m selections.
"""

from __future__ import annotations

import math

from edgellm.compiler.cost.lowbit import LowbitEngine, beat_rows
from edgellm.compiler.cost.memory import Resources, bram36_for, lutram_luts, mux_luts
from edgellm.runtime.layout import LB_MAX_RECORD_BITS

# The block loop's counters (lowbit_mm.h lb_advance, LbPos / LbOutPos) beyond the per-block loop's own:
# the code beat's token block, 128-bit part, plane, row set and group (3 + 4 + 3 + 8 + 5 bits), the tile
# and super-block (12 + 9), the output's tile, token and row (12 + 4 + 8) and the tiles done (12), one
# LUT and FF a bit (an incrementer on the carry chain, the wrap as the flip-flops' reset) and a 4-LUT
# wrap compare each; the loop's iteration and the output's ready mark (32 bits each: an incrementer, an
# adder, a compare). Estimate.
COUNTER_BITS = (3, 4, 3, 8, 5, 12, 9, 12, 4, 8, 12)
BLOCK_LOOP_CONTROL = Resources(lut=sum(COUNTER_BITS) + 4 * len(COUNTER_BITS) + 3 * 32,
                               ff=sum(COUNTER_BITS) + 2 * 32)
# The float steps' drain (lowbit_steps.h LbDrain): its step, chunk, token block and row base counters (10 + 5
# + 8 + 8 bits, an incrementer and a wrap compare each as above), the parity and first flags, and its
# last step's iteration (32 bits: an adder, a compare with the iteration and the max the ready mark takes).
DRAIN_CONTROL = Resources(lut=31 + 4 * 4 + 3 * 32, ff=31 + 2 + 32)
# One float step (2 fmul + 2 fadd: 3 + 2 DSPs, about 350 LUTs and 400 FFs, Vitis HLS full-DSP binary32;
# its int-to-float of P included) and a lane's P update (shift, 32-bit add, clear) of 40 LUTs.
FLOAT_STEP = Resources(lut=350, ff=400, dsp=2 * 3 + 2 * 2)
LANE_TREE_LUT = 40
LOOKUP_LUT_PER_BIT = 5  # a 16:1 multiplexer of a table entry's bits (a LUT6 + F7 / F8 muxes)
TABLE_BITS = 12  # lb_tab_t
# A record decoder's float work per sub-scale: 2 fmul (120 LUTs, 200 FFs, 3 DSPs each) and d's and dm's
# f16 -> f32 (30 LUTs each) and sc's and mc's int -> f32 (60 LUTs each). Estimate.
DECODE_FMUL = Resources(lut=120, ff=200, dsp=3)
DECODE_CONVERT_LUT = 2 * 30 + 2 * 60
RAW_FIELD_BITS = 32 + 32 + 8 + 8  # a sub-scale's raw d, dm, sc and mc (lowbit_decode.h LbRaw)
CONTROL_LUT = 1500  # the engine's remaining control (the call's setup, the loops' exits), estimate


def groups(eng: LowbitEngine) -> list[int]:
    """The group-size choices the engine builds: MING, 2 MING, .. MAXG (lowbit_format.h NG)."""
    return [eng.min_group << c for c in range(int(math.log2(eng.max_group // eng.min_group)) + 1)]


def token_slots(eng: LowbitEngine) -> int:
    """Tokens a token lane holds (LowbitConfig TD = ceil(MAXT / TP))."""
    return -(-eng.max_tokens // eng.token_lanes)


def lookups(eng: LowbitEngine) -> Resources:
    """A token lane's BW / 4 lookups (lowbit_lookup.h lb_lane_sums): each a 16:1 multiplexer of 12 bits on
    table n % (MAXG / 4) (static: the tables repeat narrower groups), or on each of the MAXG / BW tables a
    group spanning beats offers, and a choice among them; the adder tree (BW / 4 - 1 adders of 16 bits);
    each lane's tap among the tree levels of the group-size choices it serves."""
    bw, nib = eng.beat_bits, eng.beat_bits // 4
    spans = max(1, eng.max_group // bw)
    lut = nib * TABLE_BITS * (LOOKUP_LUT_PER_BIT * spans + mux_luts(spans)) + (nib - 1) * 16
    for lane in range(eng.row_lanes):
        lut += 32 * mux_luts(sum(1 for g in groups(eng) if lane < beat_rows(g, bw)))
    return Resources(lut=lut)


def tables(eng: LowbitEngine) -> Resources:
    """A token lane's tables, built every iteration (lowbit_mm.h lb_codes: nothing stored): 11 adders per 4
    activations (MAXG / 4 x 16 entries of 12 bits) and the group's activations chosen from the MAXG banks
    (input i % G of a group of G from one of MAXG / G banks, for each group-size choice G)."""
    mg = eng.max_group
    pick = mg * 8 * mux_luts(sum(mg // g for g in groups(eng)))
    return Resources(lut=mg // 4 * 11 * TABLE_BITS + pick)


def float_stage(eng: LowbitEngine) -> tuple[Resources, Resources]:
    """The float steps' staging (lowbit_steps.h LbStageArrays) and lane mux, (per token lane, per engine).
    Per token lane: the staged P (LANES lanes of 32 bits for each of its TD tokens: flip-flops at one token,
    else LUTRAM) and each of the FU steps' choice of its P among the LANES / FU lanes it serves (and among FU
    when a row set can be narrower than the units: groups wider than BW / FU); per engine: the staged s and
    m (LANES x 2 words), the tokens' float(S) (MAXT words) and each step's s / m choice, and the drain's
    control."""
    lanes, td, fu = eng.row_lanes, token_slots(eng), eng.fu
    p_bits = lanes * 32
    p_store = Resources(ff=p_bits) if td == 1 else Resources(lut=lanes * lutram_luts(32, td))
    choices = lanes // fu + (fu if eng.beat_bits // eng.max_group < fu else 0)
    mux = mux_luts(choices)
    lane = p_store + Resources(lut=fu * 32 * mux)
    engine = Resources(lut=fu * 64 * mux, ff=2 * lanes * 32 + eng.max_tokens * 32) + DRAIN_CONTROL
    return lane, engine


def accumulators(eng: LowbitEngine) -> Resources:
    """A token lane's P accumulators (TD x LANES words of 32 bits in flip-flops, the token slot's choice,
    the P update) and the engine's float accumulators (lowbit_banks.h acc: 2 tile parities x TP x FU banks
    of TD x R / FU words, each read by its float unit and by the outputs: a LUTRAM copy per read port; the
    outputs' choice among the banks)."""
    lanes, td = eng.row_lanes, token_slots(eng)
    p = Resources(lut=lanes * (LANE_TREE_LUT + 32 * mux_luts(td)), ff=td * lanes * 32)
    banks = 2 * eng.token_lanes * eng.fu
    acc = Resources(lut=2 * banks * lutram_luts(32, td * eng.rows // eng.fu) + 32 * mux_luts(banks))
    return p.scaled(eng.token_lanes) + acc


def scales(eng: LowbitEngine) -> Resources:
    """The s / m banks (lowbit_banks.h: FU x SLB banks each, SMD = 2 x R / FU x ceil(MAXSB / SLB) words of
    block RAM: both ping-pong halves, one write and one read an iteration), each bank's sub-bank choice
    (SLB:1) and the fetched row set's s and m (LANES x 2 words of flip-flops, written FU lanes at a time;
    the staged copy is float_stage's)."""
    slb = min(eng.scale_lanes, eng.max_sb)
    depth = 2 * (eng.rows // eng.fu) * -(-eng.max_sb // slb)
    return Resources(lut=2 * eng.fu * 32 * mux_luts(slb), ff=2 * eng.row_lanes * 32,
                     bram36=2 * eng.fu * slb * bram36_for(32, depth))


def shifter_lut(bits: int, positions: int) -> int:
    """LUTs of a shifter of `bits` output bits over `positions` positions (log stages, two a LUT6 level)."""
    return 0 if positions <= 1 else bits * math.ceil(math.log2(positions) / 2)


def decoders(eng: LowbitEngine) -> Resources:
    """RD record decoders (lowbit_decode.h lb_record_at), each: the NW parameter banks read once and rotated
    into order (NW x BW bits, NW:1), the record's shift (its widest record's bits over BW / 2^z positions,
    z: the trailing zero bits every codec's record size shares), the raw fields of each sub-scale chosen
    among every codec's chunks (static positions), and SL x (2 fmul + the conversions)."""
    bw, sl = eng.beat_bits, eng.scale_lanes
    codecs = eng.codecs or ((LB_MAX_RECORD_BITS, eng.max_sb),)
    nw = -(-LB_MAX_RECORD_BITS // bw) + 1
    zeros = min(min((rb & -rb).bit_length() - 1 for rb, _ in codecs), int(math.log2(bw)))
    widest = max(rb for rb, _ in codecs)
    cands = sum(-(-sb // sl) for _, sb in codecs)
    lut = (nw * bw * mux_luts(nw) + shifter_lut(widest, bw >> zeros) + sl * RAW_FIELD_BITS * mux_luts(cands)
           + sl * DECODE_CONVERT_LUT)
    one = Resources(lut=lut) + DECODE_FMUL.scaled(2 * sl)
    return one.scaled(eng.record_decoders)


def memories(eng: LowbitEngine) -> Resources:
    """BRAM: the activations (TP x MAXG banks of TD x MAXK / MAXG bytes, BRAM18 halves at 2048 x 9) and the
    parameter ping-pong (2 x PB_MAX beats), one more for the call's descriptors."""
    depth = token_slots(eng) * eng.max_k // eng.max_group
    acts = eng.token_lanes * eng.max_group * max(0.5, math.ceil(depth / 2048) / 2)
    pb_max = eng.rows * LB_MAX_RECORD_BITS // eng.beat_bits + 2
    return Resources(bram36=acts + 2 * math.ceil(pb_max * eng.beat_bits / 36864) + 1)


def resources(eng: LowbitEngine) -> Resources:
    """The engines' LUT/FF/DSP/BRAM (estimate; named per datapath): per token lane the tables, lookups,
    float steps and staging; per engine the accumulators, s / m banks, record decoders, memories, the
    block loop's counters and control (the functions above)."""
    stage_lane, stage_engine = float_stage(eng)
    lane = tables(eng) + lookups(eng) + FLOAT_STEP.scaled(eng.fu) + stage_lane
    one = (lane.scaled(eng.token_lanes) + accumulators(eng) + scales(eng) + decoders(eng) + memories(eng)
           + stage_engine + BLOCK_LOOP_CONTROL + Resources(lut=CONTROL_LUT))
    return one.scaled(eng.engines)
