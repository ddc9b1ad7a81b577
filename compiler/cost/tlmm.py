"""The TLMM engine as built (hw/include/edgellm/tlmm.h, weight_buffer.h): the cycles of its tiles, their
compute loop, their bank fills from the weight fetcher's FIFOs, one linear; and its resources (tables,
lookups, adder trees, DSP token lanes, accumulators, trit decoder, weight and activation banks).

A linear of n_out x k for `tokens` tokens: R-row tiles of nb = ceil(k / 5) byte columns; each stream
port fills its share of tile i+1's banks from its FIFO (two columns per cycle) while tile i computes
(tlmm_tile_iters: token groups of TP, outputs OL per cycle). cost_model runs the linears against the
fetcher (cost_fetch); the headers state the same formulas.
"""

from __future__ import annotations

import math

from edgellm.boards import Board
from edgellm.compiler.cost.memory import Resources, bound_memory, mux_luts
from edgellm.compiler.cost.ops import FCVT, FDIV, FMUL, ops
from edgellm.compiler.design import FETCH_BEATS, DesignParams, shares_for, tlmm_tables
from edgellm.compiler.design import stream_ports as stream_ports  # the models' import point
from edgellm.compiler.packing import port_columns
from edgellm.models.config import ModelConfig
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


def port_run_cols(nb: int, p: DesignParams, nports: int) -> int:
    """The most byte columns of a tile one weight port loads: its share's run (packing.port_columns, as
    weight_bank_fill.h port_cols cuts a tile of nb columns; equal shares: ceil(nb / nports))."""
    return max(c1 - c0 for c0, c1 in port_columns(nb, shares_for(p, nports)))


def fifo_tile_load_cycles(n_in: int, p: DesignParams, nports: int) -> int:
    """Cycles to fill one full weight tile's banks from the fetcher FIFOs (weight_buffer.h
    load_port_slice from a FIFO): the busiest port's run of columns (port_run_cols) at FETCH_BEATS
    columns per cycle when a bank row has >= 2 slots (BEATS_PER_STEP = G*T/5 >= 2), else one column per
    cycle."""
    run = port_run_cols(stream_cols(n_in, p), p, nports)
    bps = p.group_size * tlmm_tables(p) // 5
    return -(-run // FETCH_BEATS) if bps >= 2 else run


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
    last_load = tile_load if tail == r else tail * port_run_cols(stream_cols(n_in, p), p, nports)
    tile_compute = tlmm_tile_compute_cycles(n_in, p, tokens)
    # load_acts: per token its int8 row one data beat per cycle, then a chunk of 5 G bytes per cycle; load_qs
    acts = tokens * (-(-n_in // (p.data_port_width_bits // 8)) + nsteps * (t5 // 5)) + tokens
    first = last_load if ntiles == 1 else tile_load
    total = (max(acts, first) + max(0, ntiles - 2) * max(tile_load, tile_compute)
             + (max(last_load, tile_compute) if ntiles > 1 else 0) + tile_compute + LINEAR_PIPELINE_DEPTH)
    load = (ntiles - 1) * tile_load + last_load
    return total / f, load / f, (ntiles * tile_compute + acts) / f


# --- Resources ------------------------------------------------------------------------------------
# The design fields resources() reads (tests/test_cost_fields.py checks it by recording every read;
# the DSE keys its caches by them).
RESOURCE_FIELDS = ("group_size", "tables", "rows", "weight_ports", "bits_per_weight", "token_lanes",
                   "dsp_lanes", "out_lanes", "weight_buffer", "act_buffer", "prefill_token_block",
                   "data_port_width_bits", "port_shares")
LUT_MUX_INPUTS = 4  # a LUT6 is a 4:1 mux; wider muxes use F7/F8 muxes plus more LUTs
DSP_SIMD_LANES = 4  # DSP48E2 SIMD FOUR12 mode: four 12-bit adds per DSP (UG579) build the tables
ROWS_PER_TABLE_COPY = 8  # table registers are replicated every 8 rows to bound fanout (design choice)
ACC_BITS = 24  # int24 accumulators (TeLLMe; numerics contract proves the width per model)
TRIT_DECODE_LUT_PER_BYTE = 40  # 256-entry ROM byte -> 5 trits (10 output bits, 4 LUT6 each)
# --- DSP token lanes (tlmm.h tlmm_traits DL): per row pair (rows 2p, 2p+1, PAIRS = ceil(R/2)) and step
# G*T DSP48E2 in cascades of DSP_CHAIN, stage j adding a_j * x_j with a_j = w[2p][j] * 2^S + w[2p+1][j]
# (two MACs per DSP), and a tree of DSP adders over the cascades. Estimates, with the reasoning beside
# each:
DSP_TRIT_DECODE_LUT = 2  # per trit: one base-3 digit of a <= 7-bit group index -> 2-bit code, 2 LUT6
DSP_TRIT_CODE_BITS = 4  # a pair's operands are its two rows' 2-bit trit codes (D = w0 << S, A = w1:
# sign extension and shift are wiring; the DSP48E2 pre-adder forms D + A, so packing takes no LUTs)
SRL_DEPTH = 32  # SRLC32E: one LUT delays one bit by up to 32 cycles (UG574)
DSP_ACT_BITS = 8  # an int8 activation (the B operand's 18 bits are its sign extension)
DSP_P_BITS = 48  # the P register read out of each pair's last stage


def entry_bits(group_size: int) -> int:
    """Bits of one table entry: a signed sum of G int8 magnitudes (<= 128 G)."""
    return math.ceil(math.log2(128 * group_size)) + 1


def weight_banks(cfg: ModelConfig, board: Board, p: DesignParams) -> dict[str, int]:
    """The generated engine's weight buffer (tlmm.h tlmm_traits, weight_buffer.h TlmmBuffers): ping and
    pong, each NPORTS banks of [BANK_ROWS][BPS] R-byte beats (BANK_ROWS from the largest port share's
    run, CPP_MAX) with the slot dimension partitioned, so
    2 * NPORTS * BPS memories of width 8R and depth BANK_ROWS; and the activation block xbuf,
    TP x CPC memories (one set per token lane) of 40 G bits x MAX_TOK / TP * NSTEP_MAX."""
    g, t5 = p.group_size, tlmm_tables(p)
    bps, cpc = g * t5 // 5, t5 // 5
    nports = stream_ports(board, p)
    nb_max = -(-max(cfg.hidden_size, cfg.q_size, cfg.ffn_size) // 5)
    nstep_max = -(-nb_max // bps)
    shares = shares_for(p, nports)  # CPP_MAX: the largest share of ceil(NB_MAX / SHARE_SUM)-column units
    cpp = max(shares) * -(-nb_max // sum(shares))
    rows = nstep_max if nports == 1 else (cpp + bps - 2) // bps + 1
    tp = p.token_lanes  # the activation block is split by token lane (read TP tokens per step)
    return {"memories": 2 * nports * bps, "width": 8 * p.rows, "depth": rows,
            "x_memories": tp * cpc, "x_width": 8 * 5 * g, "x_depth": p.prefill_token_block // tp * nstep_max}


def psum_bits(g: int, t: int) -> int:
    """tlmm.h PSUM_BITS = SignedBits<128 G T>: one step's partial sum; also the DSP lanes' packing shift S."""
    return (128 * g * t).bit_length() + 1


def skew_srl_luts(stages: int) -> int:
    """LUTs per bit to skew the operands of a `stages`-long systolic cascade: stage j takes its operand j
    cycles late, an SRLC32E per SRL_DEPTH cycles of delay: sum_j ceil(j / SRL_DEPTH) (= stages - 1 up to
    SRL_DEPTH + 1 stages)."""
    return sum(-(-j // SRL_DEPTH) for j in range(stages))


def dsp_lane_resources(p: DesignParams) -> Resources:
    """The DSP token lanes of the generated engine (tlmm.h header; zero without them). Assumptions:
    each row pair's step is DSP_CHAINS PCOUT -> PCIN cascades of at most DSP_CHAIN DSP48E2
    (dsp_lanes * PAIRS * G * T DSPs: Vitis keeps each linear chain, EXPRESSION_BALANCE off) and a
    balanced tree of DSP_CHAINS - 1 adders per pair bound to DSPs (their 48-bit ALU, registered), so
    dsp_lanes * PAIRS * (G * T + DSP_CHAINS - 1) DSPs in all; stage u of a cascade gets its
    operands u cycles late (systolic skew, SRLs). Shared by all DSP lanes (once): the trit decode of the
    R rows' group indices (R * T * G trits, DSP_TRIT_DECODE_LUT each) and the pairs' operand skew, their
    DSP_TRIT_CODE_BITS code bits delayed (skew_srl_luts per bit, chain and pair; the pre-adder packs
    them in the DSP). Per DSP lane: the activations' skew (DSP_ACT_BITS per delayed stage), the field
    extraction of every pair (L = the low S bits, H = floor(P / 2^S) + P[S-1]: a PSUM_BITS incrementer
    and the sign, PSUM_BITS + 1 LUT) and FF for the lane's registered activations (G*T*8) and the
    pairs' P outputs (PAIRS * 48)."""
    dl = p.dsp_lanes
    if dl == 0:
        return Resources()
    g, t, r = p.group_size, tlmm_tables(p), p.rows
    pairs, stages, chains, s = (r + 1) // 2, g * t, dsp_chains(p), psum_bits(g, t)
    per_chain = skew_srl_luts(min(DSP_CHAIN, stages))
    shared = Resources(lut=r * t * g * DSP_TRIT_DECODE_LUT + pairs * DSP_TRIT_CODE_BITS * chains * per_chain)
    lane = Resources(lut=DSP_ACT_BITS * chains * per_chain + pairs * (s + 1),
                     ff=stages * DSP_ACT_BITS + pairs * DSP_P_BITS, dsp=pairs * (stages + chains - 1))
    return shared + lane.scaled(dl)


def table_lane(g: int, t: int, r: int) -> tuple[Resources, Resources, Resources]:
    """One token lane's table datapath for G, T tables and R rows: (lookups, adder trees, table
    builders)."""
    eb = entry_bits(g)
    n_half = (3 ** g + 1) // 2  # distinct entries up to sign, zero included (14 for G = 3)
    n_sums = (3 ** g - 1) // 2  # non-zero sums to build per table (13 for G = 3)
    lookup = Resources(lut=r * t * (eb * math.ceil(n_half / LUT_MUX_INPUTS) + eb), ff=r * t * eb)
    tree_w = eb + math.ceil(math.log2(max(t, 2))) / 2
    tree = Resources(lut=r * (t - 1) * tree_w, ff=r * (t - 1) * tree_w)
    build = Resources(lut=t * n_sums * 2, ff=t * n_half * eb * math.ceil(r / ROWS_PER_TABLE_COPY),
                      dsp=t * math.ceil(n_sums / DSP_SIMD_LANES))
    return lookup, tree, build


def trit_decode_bytes(p: DesignParams) -> int:
    """Weight bytes the engine decodes to group indices per cycle: tlmm.h compute_tile (rows loop:
    chunk_indices_u of every row's G bytes per chunk) decodes a whole step's R x BEATS_PER_STEP bytes
    each cycle, whatever the DDR delivers."""
    return p.rows * p.group_size * tlmm_tables(p) // 5


def trit_decoder(decode_bytes: float) -> Resources:
    """The 5-trits/byte unpacker for `decode_bytes` weight bytes per cycle (ROM lookups, registered)."""
    return Resources(lut=decode_bytes * TRIT_DECODE_LUT_PER_BYTE, ff=decode_bytes * 8 * 2)


def act_row(cfg: ModelConfig, p: DesignParams) -> Resources:
    """load_acts' on-chip activation row (tlmm.h: one token's int8 row in kPart explicit banks of block
    RAM), its loader's rotation of a data beat into an aligned block (maxi.h
    row_load_banked: E fields of 8 bits, E:1) and the chunk loop's choice of CK = 5 G bytes among the
    kPart banks read (kPart:1)."""
    ck, xe = 5 * p.group_size, p.data_port_width_bits // 8
    part = (32 if ck > 16 else 16) if ck > xe else xe
    nb_max = -(-max(cfg.hidden_size, cfg.q_size, cfg.ffn_size) // 5)
    bps = p.group_size * tlmm_tables(p) // 5
    row = -(-nb_max // bps) * (tlmm_tables(p) // 5) * ck  # kRow = NSTEP_MAX x CPC x CK bytes
    banks = bound_memory(8, -(-row // part), part, "bram")
    return banks + Resources(lut=xe * 8 * mux_luts(xe) + ck * 8 * mux_luts(part))


def resources(cfg: ModelConfig, board: Board, p: DesignParams) -> Resources:
    """Table builders, lookups, adder trees, accumulators, trit decoder and weight/activation buffers of
    the generated engine: TP token lanes (design.dsp_lanes of them DSP MAC cascades, dsp_lane_resources),
    OL output lanes, banked buffers (weight_banks), the trit decoder at trit_decode_bytes, the activation
    row load_acts keeps (act_row)."""
    g, t, r = p.group_size, tlmm_tables(p), p.rows
    lookup, tree, build = table_lane(g, t, r)
    decode = Resources()
    if p.bits_per_weight is None:  # our 5-trits/byte stream is unpacked to group indices on the fly
        decode = trit_decoder(trit_decode_bytes(p))
    use_uram = p.weight_buffer == "uram" and board.uram > 0
    tp = p.token_lanes
    # every table lane has its tables, lookups and trees; the DSP lanes their MAC cascades
    lanes = (lookup + tree + build).scaled(tp - p.dsp_lanes) + dsp_lane_resources(p)
    acc = Resources(lut=tp * r * ACC_BITS, ff=2 * tp * r * ACC_BITS)  # all lanes' accumulators + shadow
    out = ops(FCVT, FMUL, FDIV, n=p.out_lanes)  # dequantize: float(acc) / (qs * wscale)
    wb = weight_banks(cfg, board, p)
    kind = "uram" if use_uram else ("lutram" if p.weight_buffer == "lutram" else "bram")
    wbuf = bound_memory(wb["width"], wb["depth"], wb["memories"], kind)
    akind = "uram" if use_uram or (kind == "lutram" and p.act_buffer == "uram" and board.uram) else "bram"
    abuf = bound_memory(wb["x_width"], wb["x_depth"], wb["x_memories"], akind)
    return lanes + acc + out + decode + wbuf + abuf + act_row(cfg, p)
