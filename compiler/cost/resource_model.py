"""Resource model: LUT, FF, DSP, BRAM36 and URAM of an accelerator configuration, per kernel.

Unit costs are engineering estimates with their derivation beside each constant; the fixed platform
terms are fitted (marked so) so that TeLLMe's released configuration, as the serial description prices
it, reproduces its published totals (see calibration.tellme_calibration): they are not evidence. Memories
are sized with compiler/cost/memory.py (the Resources type and memory-block arithmetic), one bank per
parallel reader.
The generated engine's weight fetcher (FIFOs, walkers, loader muxes, LM-head FIFOs) is its own
entry, "fetch".
"""

from __future__ import annotations

import functools
import math

from edgellm.boards import Board
from edgellm.compiler.cost import attention as cost_attention
from edgellm.compiler.cost import elementwise as cost_elementwise
from edgellm.compiler.cost.ddr import bandwidth
from edgellm.compiler.cost.memory import (
    AUTO_LUTRAM_BITS,
    URAM_MIN_DEPTH,
    Resources,
    auto_memory,
    bound_memory,
    bram36_for,
    lutram_luts,
    memory,
    total_of,
    uram_for,
)
from edgellm.compiler.cost.model import buffer_depth
from edgellm.compiler.cost.tlmm import DSP_CHAIN, dsp_chains, stream_ports, tlmm_tables
from edgellm.compiler.design import FETCH_BEATS, DesignParams
from edgellm.models.config import ModelConfig
from edgellm.runtime.layout import HEAD_FIFO_DEPTH

# --- fp32 operator costs (LUT, FF, DSP), after PG060 Floating-Point Operator resource tables
# (UltraScale+, full-DSP multiplier/adder, medium latency), rounded. -----------------------------
FMUL = (80, 170, 3)
FADD = (230, 330, 2)
FCVT = (130, 200, 0)  # int <-> float conversion
FEXP = (900, 1300, 7)  # Vitis HLS math library expf
FDIV = (800, 1400, 0)
FRSQRT = (600, 900, 2)
# --- TLMM constants -------------------------------------------------------------------------
LUT_MUX_INPUTS = 4  # a LUT6 is a 4:1 mux; wider muxes use F7/F8 muxes plus more LUTs
DSP_SIMD_LANES = 4  # DSP48E2 SIMD FOUR12 mode: four 12-bit adds per DSP (UG579) build the tables
ROWS_PER_TABLE_COPY = 8  # table registers are replicated every 8 rows to bound fanout (design choice)
ACC_BITS = 24  # int24 accumulators (TeLLMe; numerics contract proves the width per model)
TRIT_DECODE_LUT_PER_BYTE = 40  # 256-entry ROM byte -> 5 trits (10 output bits, 4 LUT6 each)
LUTRAM_BITS = 64  # bits per LUT used as distributed RAM (SLICEM)
# --- DSP token lanes (tlmm.h TlmmConfig DL): per row pair (rows 2p, 2p+1, PAIRS = ceil(R/2)) and step
# G*T DSP48E2 in cascades of DSP_CHAIN, stage j adding a_j * x_j with a_j = w[2p][j] * 2^S + w[2p+1][j]
# (two MACs per DSP), and a tree of DSP adders over the cascades. Estimates, with the reasoning beside
# each:
DSP_TRIT_DECODE_LUT = 2  # per trit: one base-3 digit of a <= 7-bit group index -> 2-bit code, 2 LUT6
DSP_TRIT_CODE_BITS = 4  # a pair's operands are its two rows' 2-bit trit codes (D = w0 << S, A = w1:
# sign extension and shift are wiring; the DSP48E2 pre-adder forms D + A, so packing takes no LUTs)
SRL_DEPTH = 32  # SRLC32E: one LUT delays one bit by up to 32 cycles (UG574)
DSP_ACT_BITS = 8  # an int8 activation (the B operand's 18 bits are its sign extension)
DSP_P_BITS = 48  # the P register read out of each pair's last stage
EW_F32_ROWS = 1  # elementwise.h EwRows: the one fp32 row the fused stages share
ABSMAX_LUT = 40  # |x| and a 32-bit float compare/select per lane (sign-magnitude compare), estimate
CLAMP_LUT = 30  # rint result clamp to [-128, 127] and int8 select per lane, estimate
# --- int8 MACs per DSP by PS family (device generation): DSP48E2 packs two int8 products (WP486);
# the Zynq-7000's DSP48E1 does one. -------------------------------------------------------------
INT8_MACS_PER_DSP = {"zynqmp": 2, "zynq7": 1}
# --- weight fetcher (top.h fetch_program, weight_fetch.h) ----------------------------------------
# Per weight port: the program walker (descriptor and layer-table reads, tile/slice counters) and the
# burst address generator. Estimate (a few counters, comparators and a small FSM), LUT and FF.
FETCH_WALKER = (600, 900)
# The TLMM loader's write mux per port: each of the FETCH_BEATS columns of a FIFO word can land in any
# of the bank row's BEATS_PER_STEP slots, about half a LUT per slot and data bit. Estimate.
LOADER_MUX_LUT_PER_SLOT_BIT = 0.5
# --- AXI infrastructure ---------------------------------------------------------------------
MAXI_LUT = (1000, 4)  # HLS m_axi adapter: base + per data bit (burst/outstanding logic), estimate
MAXI_FF = (1500, 6)
SMARTCONNECT = (1500, 2500)  # one 1x1 SmartConnect with width/clock conversion per port, estimate
AXILITE = (400, 500)  # s_axilite control adapter
# Prefill pipeline (decoder_layer.h layer_slot_run): the data bundle's adapter arbitrating two arguments
# (data: the vector job; act: the linear job) and the slot DATAFLOW regions' start/done handshakes.
# Assumption (LUT, FF).
SLOT_PIPELINE = (500, 700)
# --- fixed platform terms [fitted, not predicted]: what is left of TeLLMe's published totals (98,303 LUT,
# 136,721 FF, 98.5 BRAM36) after subtracting every other term above for its configuration as the serial
# (overlap=False) description prices it (calibration.tellme_params, fitted when that description was
# written). They stand for whatever that description leaves out of TeLLMe (control FSMs, address
# generators, dataflow handshakes, stream FIFOs) and are reused unchanged for the generated engine,
# whose fixed logic was never measured: an assumption, and TeLLMe's LUT/FF/BRAM rows in the calibration
# table are fitted figures, not evidence (docs/performance.md "Calibration").
FIXED_LUT = 14250
FIXED_FF = 29250
FIFO_BRAM36 = 26


def _ops(*ops: tuple[int, int, int], n: float = 1) -> Resources:
    lut = sum(o[0] for o in ops)
    ff = sum(o[1] for o in ops)
    dsp = sum(o[2] for o in ops)
    return Resources(lut=lut * n, ff=ff * n, dsp=dsp * n)


def entry_bits(group_size: int) -> int:
    """Bits of one table entry: a signed sum of G int8 magnitudes (<= 128 G)."""
    return math.ceil(math.log2(128 * group_size)) + 1


def weight_banks(cfg: ModelConfig, board: Board, p: DesignParams) -> dict[str, int]:
    """The generated engine's weight buffer (tlmm.h TlmmConfig, weight_buffer.h TlmmBuffers): ping and
    pong, each NPORTS banks of [BANK_ROWS][BPS] R-byte beats with the slot dimension partitioned, so
    2 * NPORTS * BPS memories of width 8R and depth BANK_ROWS; and the activation block xbuf,
    TP x CPC memories (one set per token lane) of 40 G bits x MAX_TOK / TP * NSTEP_MAX."""
    g, t5 = p.group_size, tlmm_tables(p)
    bps, cpc = g * t5 // 5, t5 // 5
    nports = stream_ports(board, p)
    nb_max = -(-max(cfg.hidden_size, cfg.q_size, cfg.ffn_size) // 5)
    nstep_max = -(-nb_max // bps)
    cpp = -(-nb_max // nports)
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


def tlmm_dsp_lanes(p: DesignParams) -> Resources:
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


def trit_decode_bytes(board: Board, p: DesignParams) -> float:
    """Weight bytes decoded to group indices per cycle. The generated engine (tlmm.h compute_tile, rows
    loop: chunk_indices_u of every row's G bytes per chunk) decodes a whole step's R x BEATS_PER_STEP
    bytes each cycle, whatever the DDR delivers; a TeLLMe-style engine decodes at the stream's rate."""
    if p.overlap:
        return p.rows * p.group_size * tlmm_tables(p) // 5
    return bandwidth(board, p).weights / (p.clock_mhz * 1e6)


def tlmm(cfg: ModelConfig, board: Board, p: DesignParams) -> Resources:
    """Table builders, lookups, adder trees, accumulators, trit decoder and weight/activation buffers;
    the generated engine's DSP token lanes (design.dsp_lanes) replace that many table lanes
    (tlmm_dsp_lanes)."""
    g, t, r = p.group_size, (tlmm_tables(p) if p.overlap else p.tables), p.rows
    eb = entry_bits(g)
    n_half = (3 ** g + 1) // 2  # distinct entries up to sign, zero included (14 for G = 3)
    n_sums = (3 ** g - 1) // 2  # non-zero sums to build per table (13 for G = 3)
    lookup = Resources(lut=r * t * (eb * math.ceil(n_half / LUT_MUX_INPUTS) + eb), ff=r * t * eb)
    tree_w = eb + math.ceil(math.log2(max(t, 2))) / 2
    tree = Resources(lut=r * (t - 1) * tree_w, ff=r * (t - 1) * tree_w)
    build = Resources(lut=t * n_sums * 2, ff=t * n_half * eb * math.ceil(r / ROWS_PER_TABLE_COPY),
                      dsp=t * math.ceil(n_sums / DSP_SIMD_LANES))
    decode = Resources()
    if p.bits_per_weight is None:  # our 5-trits/byte stream is unpacked to group indices on the fly
        decode_bytes = trit_decode_bytes(board, p)
        decode = Resources(lut=decode_bytes * TRIT_DECODE_LUT_PER_BYTE, ff=decode_bytes * 8 * 2)
    use_uram = p.weight_buffer == "uram" and board.uram > 0
    if p.overlap:  # the generated engine as built: TP token lanes, OL output lanes, banked buffers
        tp = p.token_lanes
        # every table lane has its tables, lookups and trees; the DSP lanes their MAC cascades
        lanes = (lookup + tree + build).scaled(tp - p.dsp_lanes) + tlmm_dsp_lanes(p)
        acc = Resources(lut=tp * r * ACC_BITS, ff=2 * tp * r * ACC_BITS)  # all lanes' accumulators + shadow
        out = _ops(FCVT, FMUL, FDIV, n=p.out_lanes)  # dequantize: float(acc) / (qs * wscale)
        wb = weight_banks(cfg, board, p)
        kind = "uram" if use_uram else ("lutram" if p.weight_buffer == "lutram" else "bram")
        wbuf = bound_memory(wb["width"], wb["depth"], wb["memories"], kind)
        akind = "uram" if use_uram or (kind == "lutram" and p.act_buffer == "uram" and board.uram) else "bram"
        abuf = bound_memory(wb["x_width"], wb["x_depth"], wb["x_memories"], akind)
        return lanes + acc + out + decode + wbuf + abuf
    acc = Resources(lut=r * ACC_BITS + r * p.prefill_token_block * ACC_BITS / LUTRAM_BITS, ff=r * ACC_BITS)
    wbuf = memory(t * p.index_bits, buffer_depth(cfg, p), r, use_uram)  # TeLLMe-style row banks
    widest = max(i for _, i in cfg.linear_shapes().values())
    abuf = memory(p.group_cols * 8, p.prefill_token_block * math.ceil(widest / p.group_cols), 1, use_uram)
    return lookup + tree + acc + build + decode + wbuf + abuf


def elementwise(cfg: ModelConfig, p: DesignParams) -> Resources:
    """Fused fp32 ops around the linears. The generated engine (overlap): elementwise_as_built. A
    TeLLMe-style design: dequantize/residual per output row, RMSNorm+quantize, activation, RoPE."""
    if p.overlap:
        return elementwise_as_built(cfg, p)
    post = _ops(FCVT, FMUL, FMUL, FADD, n=p.rows)  # acc -> float, * scale, * gamma / residual add
    norm = _ops(FMUL, FADD, FMUL, FCVT, n=p.ew_lanes) + _ops(FRSQRT, FDIV)  # x^2 sum, scale, quantize
    act_lanes = max(1, p.rows // 4)
    act = _ops(FEXP, FDIV, FADD, FMUL, n=act_lanes) if cfg.act == "silu" else _ops(FMUL, FMUL, n=act_lanes)
    rope = _ops(FMUL, FMUL, FMUL, FMUL, FADD, FADD, n=max(1, p.rows // 4))
    vec = memory(p.rows * 32, math.ceil(cfg.hidden_size / p.rows), 2, False)  # one token's x and residual
    return post + norm + act + rope + vec


def elementwise_as_built(cfg: ModelConfig, p: DesignParams) -> Resources:
    """elementwise.h ew_engine: one engine serves every element-wise job of the layer and the final norm,
    its operators limited to what its widest pass needs (EwBudget; V = ew_vec, U = LaneUnits, g =
    glu_vec and gu = min(g, U): the GLU act(g) * u pass's widths without and with the SubLN's sum of
    squares): ReLU^2 max(2V, 3gu, 2g, U) fmul, max(V, 2U) fadd, V fsub, 1 fdiv, 1 fsqrt; SiLU (exp_f
    is multiplies and adds) max(11g, 12gu, 2V, U) fmul, max(8g, 9gu, V, 2U) fadd, max(3g, V) fsub,
    g fdiv, 1 fsqrt. Plus V absmax compares, V round/clamp/convert lanes, the NORM_LANES lane
    registers and the one shared row (EwRows: N_MAX floats, cyclic by VEC, bound to
    design.act_buffer)."""
    return elementwise_engine(cfg, p.ew_vec, p.ew_lanes, p.act_buffer, p.glu_vec)


@functools.lru_cache(maxsize=1024)
def elementwise_engine(cfg: ModelConfig, v: int, lanes: int, act_buffer: str, g: int = 0) -> Resources:
    """elementwise_as_built from the fields it reads: VEC, NORM_LANES, act_buffer, GLU_VEC (0: VEC)."""
    g = g or v
    u = cost_elementwise.sumsq_units_for(v, lanes)
    gu = min(g, u)
    if cfg.act == "silu":
        fmul, fadd, fdiv = max(11 * g, 12 * gu, 2 * v, u), max(8 * g, 9 * gu, v, 2 * u) + max(3 * g, v), g
    else:
        fmul, fadd, fdiv = max(2 * v, 3 * gu, 2 * g, u), max(v, 2 * u) + v, 1
    units = (_ops(FMUL, n=fmul) + _ops(FADD, n=fadd) + _ops(FDIV, n=fdiv) + _ops(FRSQRT)
             + _ops(FCVT, n=v) + Resources(lut=v * (ABSMAX_LUT + CLAMP_LUT), ff=32 * lanes))
    n_max = max(cfg.hidden_size, cfg.q_size, cfg.ffn_size)
    return units + bound_memory(32, -(-n_max // v), v * EW_F32_ROWS, act_buffer)


def attention(cfg: ModelConfig, p: DesignParams) -> Resources:
    """QK and PV dot-product units, softmax exp units, buffers. The generated engine (overlap):
    attention_as_built; a TeLLMe-style design: attn_lanes lanes, double-buffered K/V tiles."""
    if p.overlap:
        return attention_as_built(cfg, p)
    lanes = p.attn_lanes
    dots = _ops(FMUL, FADD, n=2 * lanes)
    soft = _ops(FEXP, FADD, FMUL, n=math.ceil(lanes / 16)) + _ops(FDIV)
    w = lanes * 32
    hd = math.ceil(cfg.head_dim / lanes)
    bufs = (memory(w, 2 * p.attn_kv_block * hd, 2, False)  # K and V tiles, double-buffered
            + memory(w, p.attn_q_block * hd, 2, False)  # Q block and O accumulators
            + memory(32, p.attn_q_block * p.attn_kv_block, 1, False))  # scores
    return dots + soft + bufs


def _attn_core(a: int, d: int, rows: int, tile_heads: int, kv_block: int) -> Resources:
    """One attn_rows instance (attention_prefill.h header): 3A+2 multipliers, 3A+2 adders, 2 exp units,
    4 dividers (normalize at the data port's rate, a beat per cycle); o and q rows in max(A, 4) banks,
    the score lane sums, a double-buffered K and V tile in max(A, 16) banks (all without a BIND_STORAGE:
    _auto_memory), two score tiles in LUTRAM (the software-pipelined softmax scores one tile while it
    accumulates the previous one)."""
    ops = _ops(FMUL, FADD, n=3 * a + 2) + _ops(FEXP, FEXP) + _ops(FDIV, n=cost_attention.DATA_LANES)
    dp = -(-d // a) * a
    kv_part = max(a, cost_attention.MEM_LANES)
    dkv = -(-d // kv_part) * kv_part
    qo = max(a, cost_attention.DATA_LANES)  # q / o banks: A lanes, one data beat per cycle in and out
    rows_bufs = auto_memory(32, rows * dp // qo, 2 * qo)  # q and o: [rows][dp] cyclic by max(A, QL), unbound
    lane_sums = Resources(lut=a * lutram_luts(32, rows))  # acc[rows][A], A LUTRAM columns
    tiles = auto_memory(32, 2 * kv_block * tile_heads * dkv // kv_part, 2 * kv_part)  # kt, vt: two halves
    scores = Resources(lut=2 * lutram_luts(32, rows * kv_block))  # s_tile[2]: one scored, one accumulated
    return ops + rows_bufs + lane_sums + tiles + scores


def attention_as_built(cfg: ModelConfig, p: DesignParams) -> Resources:
    """One attn_rows core serves prefill and decode (attention_layer): rows = max(BQ x group, heads),
    tiles of all KV heads; A = the plan's dot_lanes (cost_attention.lanes)."""
    return attention_core(cfg, cost_attention.lanes(cfg, p), p.attn_q_block, p.attn_kv_block)


@functools.lru_cache(maxsize=1024)
def attention_core(cfg: ModelConfig, a: int, q_block: int, kv_block: int) -> Resources:
    """attention_as_built from the core's lanes A (cost_attention.lanes), query block and K/V tile."""
    d, group = cfg.head_dim, cfg.n_heads // cfg.n_kv_heads
    return _attn_core(a, d, max(q_block * group, cfg.n_heads), cfg.n_kv_heads, kv_block)


def lm_head(cfg: ModelConfig, board: Board, p: DesignParams) -> Resources:
    """int8 LM head GEMV, fp32 row scale, running argmax / top-k. Generated engine (lm_head.h
    lm_dot_fifo): NP ports x P bytes of MACs per cycle popping the rows straight from the fetcher's
    head FIFOs (counted in fetch(); no row banks) and the token's beats in BRAM."""
    if not p.lm_head_on_fabric:
        return Resources()
    extra = Resources()
    if p.overlap:
        beat = p.rows  # P: the weight ports' beat, one TLMM tile column (lm_head.h LmHeadConfig P = R)
        lanes = stream_ports(board, p) * beat
        extra = Resources(bram36=bram36_for(8 * beat, -(-cfg.hidden_size // beat)))
    else:
        lanes = max(1, int(bandwidth(board, p).weights / (p.clock_mhz * 1e6) * 8 // p.lm_head_bits))
    macs = Resources(lut=lanes * 20, ff=lanes * 32, dsp=math.ceil(lanes / INT8_MACS_PER_DSP[board.ps]))
    return macs + extra + _ops(FCVT, FMUL) + Resources(lut=300, ff=300)


def _fifo_memory(width: int, depth: int, n: int, board: Board) -> Resources:
    """n FIFOs of width x depth: distributed RAM under the AUTO_LUTRAM_BITS rule, else URAM where the board
    has it and depth >= URAM_MIN_DEPTH (ceil(width/72) x ceil(depth/4096)), else BRAM36 cascaded 512 x 72
    (ceil(width/72) x ceil(depth/512))."""
    if width * depth <= AUTO_LUTRAM_BITS:
        return Resources(lut=n * lutram_luts(width, depth))
    if board.uram > 0 and depth >= URAM_MIN_DEPTH:
        return Resources(uram=n * uram_for(width, depth))
    return Resources(bram36=n * math.ceil(width / 72) * math.ceil(depth / 512))


def fetch_storage(board: Board | None, p: DesignParams) -> str:
    """Where the weight FIFOs live (_fifo_memory's rule; codegen emits it as EDGELLM_FETCH_STORAGE):
    "lutram", "uram" or "bram"."""
    width, depth = 8 * p.rows * FETCH_BEATS, p.fetch_depth
    if width * depth <= AUTO_LUTRAM_BITS:
        return "lutram"
    return "uram" if board is not None and board.uram > 0 and depth >= URAM_MIN_DEPTH else "bram"


def fetch_fifo(board: Board, p: DesignParams, depth: int | None = None) -> Resources:
    """The weight FIFOs alone: one per stream port, fetch_depth (or `depth`) words of FETCH_BEATS R-byte
    beats (8 R FETCH_BEATS bits)."""
    if not p.overlap:
        return Resources()
    return _fifo_memory(8 * p.rows * FETCH_BEATS, depth or p.fetch_depth, stream_ports(board, p), board)


def fetch(cfg: ModelConfig, board: Board, p: DesignParams) -> Resources:
    """The decoupled weight fetcher (generated engine only): per stream port the weight FIFO
    (fetch_fifo), the program walker and address generator (FETCH_WALKER), the TLMM loader's write mux
    (BEATS_PER_STEP x 8R x LOADER_MUX_LUT_PER_SLOT_BIT LUT) and, with the LM head on the fabric, its
    FIFO of HEAD_FIFO_DEPTH beats of 8P bits (P = R, the weight ports' beat)."""
    if not p.overlap:
        return Resources()
    nports = stream_ports(board, p)
    bps = p.group_size * tlmm_tables(p) // 5
    logic = Resources(lut=nports * (FETCH_WALKER[0] + bps * 8 * p.rows * LOADER_MUX_LUT_PER_SLOT_BIT),
                      ff=nports * FETCH_WALKER[1])
    head = Resources()
    if p.lm_head_on_fabric:
        beat = p.rows  # the weight ports' beat (LmHeadConfig P = R)
        head = auto_memory(8 * beat, HEAD_FIFO_DEPTH, nports)
    return fetch_fifo(board, p) + logic + head


def axi(p: DesignParams) -> Resources:
    """m_axi adapters (with burst buffers) + one SmartConnect per port, s_axilite control; with the
    prefill pipeline, the data adapter's arbitration between its two arguments and the slot regions'
    handshakes (SLOT_PIPELINE)."""
    total = Resources(lut=AXILITE[0], ff=AXILITE[1])
    if p.prefill_pipeline:
        total += Resources(lut=SLOT_PIPELINE[0], ff=SLOT_PIPELINE[1])
    for width in [p.port_width_bits] * p.weight_ports + [p.data_port_width_bits]:
        total += Resources(lut=MAXI_LUT[0] + MAXI_LUT[1] * width + SMARTCONNECT[0],
                           ff=MAXI_FF[0] + MAXI_FF[1] * width + SMARTCONNECT[1],
                           bram36=bram36_for(width, 256))  # 16 outstanding x 16-beat bursts
    return total


def estimate_resources(cfg: ModelConfig, board: Board, p: DesignParams) -> dict[str, Resources]:
    """Resources per kernel; the 'total' entry sums them (rounded up to whole blocks)."""
    parts = {
        "tlmm": tlmm(cfg, board, p), "elementwise": elementwise(cfg, p), "attention": attention(cfg, p),
        "lm_head": lm_head(cfg, board, p), "fetch": fetch(cfg, board, p), "axi": axi(p),
        "platform": Resources(lut=FIXED_LUT, ff=FIXED_FF, bram36=FIFO_BRAM36),
    }
    parts["total"] = total_of(parts.values())
    return parts
