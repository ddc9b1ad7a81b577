"""Cycles, bytes and resources of the low-bit matmul engine (hw/include/edgellm/lowbit_mm.h) and the
tensor formats it streams (docs/performance.md "Low-bit models"). Projections, not measurements.

Cycles are the engine's pipelined loops counted as built (initiation interval 1, one engine beat of
128 x ports bits per iteration at most): `iterations` equals the C simulation's own loop counters
(lowbit_mm.h lb_iters; tested), plus PIPE_FILL cycles per loop run. E engines each run lowbit_mm over
a contiguous share of the row tiles from their own ports; linear_seconds (a linear alone, e.g. the
--lowbit-head projection's head) takes the longer of the slowest engine's cycles and its stream bytes over
the weight ports' bandwidth (cost/ddr.py, E x ports ports).

The rest of a low-bit projection lives beside this module: cost/lowbit_run.py runs a model's decode or
prefill as built (the engine's program against the top's weight fetchers, which prefetch the next
linears' streams across the element-wise stages and attention; the LM head, the host), and
cost/lowbit_search.py holds the design (DesignParams, resources as built, the search over engine shapes,
vector engines and the weight FIFOs' depth).

The LM head is priced as `edgellm compile` builds it: lm_head.h's int8 per-row head (cost/lm_head.py, the
ternary designs' head model, at the low-bit design's beat P = 16 bytes, design.head_beat_bytes, over its
weight ports; its bytes, time and resources, its row FIFOs included). LowbitModel.lowbit_head instead
projects the checkpoint's own quantized head as one more linear on the low-bit engine (`edgellm estimate
--lowbit-head`): a projection only, compile builds the int8 head and refuses a low-bit one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgellm.compiler.design_bytes import lm_head_bytes
from edgellm.compiler.packing_lowbit import record_groups
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.runtime.layout import (
    LB_BEAT_BITS,
    LB_FLOAT_UNITS,
    LB_GROUPS,
    LB_MAX_GROUP,
    LB_MAX_RECORD_BITS,
    LB_MAX_SB,
    LB_MIN_GROUP,
    LB_PORTS,
    LB_SCALE_LANES,
    k_max,
    lb_float_steps,
)
from edgellm.runtime.lowbit_gear import Gear, gear_of

PORT_BITS = LB_BEAT_BITS  # one weight port's beat (lb_beat_t); the engine's beat is 128 x its ports
# Pipeline prologue + epilogue of one run of a pipelined loop (the block loop's deepest path: table
# build, 32 lookups, adder tree, fmul, two fadds). Assumption, cycles.
PIPE_FILL = 16
LOOP_RUNS = 4  # pipelined loop runs a lowbit_mm call: acts, P_0's beats, P_0's decode, the block loop
FADD_CHAIN = 8  # lowbit_mm.h kLbFaddChain: iterations between an accumulator's step and its next read
SCALE_LAG = 8  # lowbit_format.h kLbScaleLag: iterations from a block's last decode to the block's end
HEAD_BITS = 8  # the LM head compile builds: lm_head.h's int8 per-row head (design()'s lm_head_bits)
HEAD_LANE = 1  # its token lanes (design.head_lanes): one row per pass, as decode and TTFT need


@dataclass(frozen=True)
class TensorFormat:
    """How one tensor type streams: b-bit codes, groups of G, SB groups per parameter record of
    record_bits (compiler/packing_lowbit.py's ParamCodec for that type's parameterisation)."""

    name: str
    bits: int
    group: int
    sb: int
    record_bits: int
    dper: bool = False  # one scale per group, SB of them a record (packing_lowbit ParamCodec.dper)

    @property
    def bits_per_weight(self) -> float:
        """Streamed bits per weight for whole tiles (parameter blocks beat-padded per R rows: exact when
        R * record_bits is a multiple of the beat, which R = 32 at 128-bit and R = 128 at 512-bit beats
        give every format below)."""
        return self.bits + self.record_bits / (self.group * self.sb)


# GGUF tensor types and GPTQ as packing_lowbit stores them (tests/test_lowbit_cost.py packs each).
FORMATS = {f.name: f for f in (
    TensorFormat("Q4_0", 4, 32, 8, 8 * 16, True),  # f16 d per group, m = -(8 d); 8 groups a record
    TensorFormat("Q4_1", 4, 32, 8, 8 * 32, True),  # f16 d, f16 m per group
    TensorFormat("Q5_0", 5, 32, 8, 8 * 16, True),
    TensorFormat("Q5_1", 5, 32, 8, 8 * 32, True),
    TensorFormat("Q8_0", 8, 32, 8, 8 * 16, True),
    TensorFormat("Q2_K", 2, 16, 16, 16 + 16 + 16 * 8),  # f16 d, dmin; 4-bit scales and mins
    TensorFormat("Q3_K", 3, 16, 16, 16 + 16 * 6),  # f16 d; 6-bit signed scales; m = -(4 s)
    TensorFormat("Q4_K", 4, 32, 8, 16 + 16 + 8 * 12),  # f16 d, dmin; 6-bit scales and mins
    TensorFormat("Q5_K", 5, 32, 8, 16 + 16 + 8 * 12),
    TensorFormat("Q6_K", 6, 16, 16, 16 + 16 * 8),  # f16 d; int8 scales; m = -(32 s)
    TensorFormat("GPTQ4", 4, 128, 2, 2 * (16 + 4), True),  # f16 scale, 4-bit zero per group: m = -(s z)
)}
MAX_RECORD_BITS = LB_MAX_RECORD_BITS  # lowbit_format.h kLbMaxRecordBits (runtime/layout.py)
SCALE_LANES = LB_SCALE_LANES  # LowbitConfig SL (16 = kLbMaxSb: a whole record per iteration)
SEARCH_SCALE_LANES = (2, 4, 16)  # the SL search() tries (SL 1 saves 240 LUTs of SL 2 and halves its pace)
FLOAT_UNITS = LB_FLOAT_UNITS  # LowbitConfig FU (at most BW / 16 of them used: 32 = one per lane)


def fit(fmt: TensorFormat, n_in: int) -> TensorFormat:
    """The format a tensor of n_in inputs streams in: per-group-scale formats put as many groups in a
    record as fit and divide the row (packing_lowbit.record_groups, the packer's own rule)."""
    if not fmt.dper:
        return fmt
    per = fmt.record_bits // fmt.sb
    k = record_groups(fmt.group, n_in // fmt.group, per)
    return dataclasses.replace(fmt, sb=k, record_bits=k * per)


@dataclass(frozen=True)
class LowbitEngine:
    """One lowbit_mm instance's LowbitConfig (R, MAXT, MAXG, TP, BW = 128 x ports, RD, SL) and how many
    instances run side by side (each on its own ports and share of the row tiles)."""

    rows: int = 128
    max_tokens: int = 8
    max_group: int = 32
    token_lanes: int = 1
    engines: int = 1
    max_k: int = 8192
    ports: int = 4  # weight ports one engine reads at once: BW = 128 x ports
    record_decoders: int = 1  # RD
    scale_lanes: int = 16  # SL: sub-scales a record decoder decodes per iteration (16: a whole record)
    float_units: int = 32  # FU: float steps per token lane and iteration (min(FU, BW / 16) built: `fu`)
    max_sb: int = LB_MAX_SB  # MAXSB: groups a parameter record covers at most (sizes the s / m buffers)
    min_group: int = LB_MIN_GROUP  # MING: the narrowest group (the engine's group-size choices MING .. MAXG)
    # the parameter codecs it decodes, (record bits, groups a record) each (lowbit_decode.h: one static
    # field set per codec and chunk); () prices one codec of the widest record
    codecs: tuple[tuple[int, int], ...] = ()
    # not the engine's but the top's: words (128-bit beats) of each weight port's fetcher FIFO
    # (design.fetch_depth; cost/lowbit_search.search chooses it, 2048 the DesignParams default)
    fetch_depth: int = 2048
    # not the engine's but the LM head's: the weight ports' shares of every cycle of its rows
    # (design.port_shares; cost/lowbit_search.search gives the board's rate shares, cost/ddr.rate_shares).
    # The engine itself pops a word of every port a beat (lockstep): its streams take equal shares
    head_shares: tuple[int, ...] = ()
    # not the engine's but the fetchers': the weight gearbox (runtime/lowbit_gear.py, design.lowbit_gear) that
    # lets the engine's streams take head_shares too (search sets it where the shares gear)
    geared: bool = False

    def __post_init__(self) -> None:
        self._check_fields()
        if self.fu % self.record_decoders:
            raise EdgeLLMError(f"low-bit engine: {self.record_decoders} record decoders need as many float "
                               f"units (FU {self.fu}: decoder k writes the s / m banks b % RD == k)")

    def _check_fields(self) -> None:
        if self.ports not in LB_PORTS:
            raise EdgeLLMError(f"low-bit engine: ports per engine must be one of {LB_PORTS}, got "
                               f"{self.ports}")
        bw = self.beat_bits
        if self.rows % 32 or self.rows % (bw // 16) or self.rows * 4 < bw:
            raise EdgeLLMError(f"low-bit engine: rows must be a multiple of 32 and of {bw // 16}, at least "
                               f"{bw // 4}, got {self.rows}")
        if not 1 <= self.token_lanes <= self.max_tokens:
            raise EdgeLLMError(f"low-bit engine: token lanes must be 1 .. {self.max_tokens}")
        if self.engines < 1 or self.record_decoders not in (1, 2):
            raise EdgeLLMError("low-bit engine: at least one engine, 1 or 2 record decoders (the parameter "
                               "banks' two ports)")
        if self.scale_lanes not in SCALE_LANES:
            raise EdgeLLMError(f"low-bit engine: scale lanes one of {SCALE_LANES}, got {self.scale_lanes}")
        if not 1 <= self.max_sb <= LB_MAX_SB:
            raise EdgeLLMError(f"low-bit engine: MAXSB 1 .. {LB_MAX_SB}, got {self.max_sb}")
        if self.min_group not in LB_GROUPS or self.min_group > self.max_group:
            raise EdgeLLMError(f"low-bit engine: MING one of {LB_GROUPS}, at most MAXG {self.max_group}, got "
                               f"{self.min_group}")
        if self.float_units not in FLOAT_UNITS:
            raise EdgeLLMError(f"low-bit engine: float units one of {FLOAT_UNITS}, got {self.float_units}")

    @property
    def gear(self) -> Gear:
        """The fetchers' weight gearbox (Gear(): none, the engine's streams at equal shares)."""
        return gear_of(self.head_shares, self.ports) if self.geared and self.engines == 1 else Gear()

    @property
    def beat_bits(self) -> int:
        return PORT_BITS * self.ports

    @property
    def row_lanes(self) -> int:
        """Rows a code beat finishes at most (LowbitConfig LANES = BW / MING, at least one)."""
        return max(1, self.beat_bits // self.min_group)

    @property
    def fu(self) -> int:
        """The float steps built per token lane (LowbitConfig FU = min(FU_, LANES))."""
        return min(self.float_units, self.row_lanes)


def beat_rows(group: int, bw: int) -> int:
    """Rows a code beat of bw bits finishes for a group (one when the group spans beats: lb_lanes)."""
    return max(1, bw // group)


def _plane_beats(group: int, bw: int) -> int:
    return max(1, group // bw)


def float_steps(fmt: TensorFormat, bw: int) -> int:
    """Float steps per iteration and token lane a tensor needs (lowbit_format.h lb_float_steps): a row set's
    BW / G rows (at least one) step once per bits x plane beats iterations (layout.lb_float_steps)."""
    return lb_float_steps(fmt.bits, fmt.group, bw)


def float_units_for(fmts: list[TensorFormat], bw: int) -> int:
    """The fewest float units FU (a power of two) that step every one of `fmts` at beats of bw bits."""
    need = max(float_steps(f, bw) for f in fmts)
    return next(u for u in FLOAT_UNITS if u >= need)


def drain_extra(fmt: TensorFormat, eng: LowbitEngine, token_blocks: int, idle: int) -> int:
    """Iterations a tile's last float step comes after its last block iteration (lowbit_mm.h lb_drain):
    the last row set's ceil(rl / FU) x token blocks steps start at its first token block's last plane,
    n_tb - 1 + idle iterations before the block's end (idle: the block's decode-only iterations)."""
    chunks = -(-beat_rows(fmt.group, eng.beat_bits) // eng.fu)
    return max(0, (chunks - 1) * token_blocks - idle)


def param_beats(fmt: TensorFormat, rows: int, bw: int = PORT_BITS) -> int:
    """Beats of one (tile, super-block) parameter block (lb_param_beats)."""
    return -(-rows * fmt.record_bits // bw)


def decode_iters(fmt: TensorFormat, eng: LowbitEngine) -> int:
    """Iterations decoding one block's R records (lb_decode_iters): RD decoders, ceil(SB / SL) each a
    record."""
    return -(-eng.rows // eng.record_decoders) * -(-fmt.sb // eng.scale_lanes)


def block_iters(fmt: TensorFormat, eng: LowbitEngine, token_blocks: int, more: bool) -> int:
    """One block's iterations in the block loop (lb_block_iters): a block followed by another runs its
    next parameter block's decode and SCALE_LAG iterations more."""
    bw, rows = eng.beat_bits, eng.rows
    codes = fmt.sb * rows // beat_rows(fmt.group, bw) * fmt.bits * _plane_beats(fmt.group, bw) * token_blocks
    return param_beats(fmt, rows, bw) + max(codes, decode_iters(fmt, eng) + SCALE_LAG) if more else codes


def stream_bytes(out: int, n_in: int, fmt: TensorFormat, rows: int, bw: int = PORT_BITS) -> int:
    """Bytes of a tensor's stream (packing_lowbit.pack_lowbit at `rows` and beat_bits bw)."""
    tiles, nsbr = -(-out // rows), n_in // fmt.group // fmt.sb
    code = fmt.sb * rows // beat_rows(fmt.group, bw) * fmt.bits * _plane_beats(fmt.group, bw)
    return tiles * nsbr * (param_beats(fmt, rows, bw) + code) * bw // 8


def _check(out: int, n_in: int, fmt: TensorFormat, eng: LowbitEngine) -> None:
    if (n_in % (fmt.group * fmt.sb) or n_in > eng.max_k or not eng.min_group <= fmt.group <= eng.max_group
            or float_steps(fmt, eng.beat_bits) > eng.fu or fmt.sb > eng.max_sb):
        raise EdgeLLMError(f"low-bit engine: a {out} x {n_in} {fmt.name} tensor does not fit (MAXK "
                           f"{eng.max_k}, groups MING {eng.min_group} .. MAXG {eng.max_group}, FU {eng.fu} "
                           f"float steps of the {float_steps(fmt, eng.beat_bits)} it needs, MAXSB "
                           f"{eng.max_sb} of its {fmt.sb} groups a record, whole {fmt.group * fmt.sb}-input "
                           f"blocks)")


def out_waits(tiles: int, tile_iters: int, last_tile_iters: int, outputs: int, extra: int = 0,
              last_extra: int = 0) -> int:
    """Output-only iterations of the block loop (lowbit_mm.h lb_blocks): tile t's `outputs` (tokens x R) go
    out one per iteration from kLbFaddChain iterations after its last block iteration (or its last float
    step, `extra` iterations later; last_extra: the last tile's) on (after tile t - 1's), tile t + 2 starts
    only when tile t's are all out, and the loop ends with the last tile's. tile_iters: a tile's block
    iterations (last_tile_iters: the last tile's, whose last block reads no next P)."""
    start, end_prev, out_end, out_prev = 0, 0, 0, 0  # out_prev: tile t - 2's outputs end (t - 1's: out_end)
    busy = 0
    for t in range(tiles):
        if t:
            start = max(end_prev, out_prev)  # tile t waits for tile t - 2's outputs
        end = start + (last_tile_iters if t == tiles - 1 else tile_iters)
        busy += end - start
        ext = last_extra if t == tiles - 1 else extra
        out_prev, out_end = out_end, max(out_end, end + ext + FADD_CHAIN - 1) + outputs
        end_prev = end
    return out_end - busy


def iterations(out: int, n_in: int, fmt: TensorFormat, eng: LowbitEngine, tokens: int) -> dict[str, int]:
    """One lowbit_mm call (tokens <= MAXT) over all `out` rows: iterations per loop kind (LbLoop order:
    acts, params, decode; the block loop's block iterations and its output-only ones), as C simulation
    counts them."""
    _check(out, n_in, fmt, eng)
    if not 1 <= tokens <= eng.max_tokens:
        raise EdgeLLMError(f"low-bit engine: {tokens} tokens per call, MAXT is {eng.max_tokens}")
    tiles, nsbr = -(-out // eng.rows), n_in // fmt.group // fmt.sb
    n_blk, tb = tiles * nsbr, -(-tokens // eng.token_lanes)
    more, last = block_iters(fmt, eng, tb, True), block_iters(fmt, eng, tb, False)
    block = (n_blk - 1) * more + last
    idle = more - param_beats(fmt, eng.rows, eng.beat_bits) - last  # decode-only iterations after the codes
    waits = out_waits(tiles, nsbr * more, (nsbr - 1) * more + last, tokens * eng.rows,
                      drain_extra(fmt, eng, tb, idle), drain_extra(fmt, eng, tb, 0))
    return {"acts": tokens * (n_in // 16), "params": param_beats(fmt, eng.rows, eng.beat_bits),
            "decode": decode_iters(fmt, eng), "block": block, "out": waits}


def linear_cycles(out: int, n_in: int, fmt: TensorFormat, eng: LowbitEngine, tokens: int) -> int:
    """Cycles of one linear for `tokens` tokens on the slowest of E engines (a contiguous share of
    ceil(tiles / E) tiles each), calls of at most MAXT tokens, PIPE_FILL per loop run: four a call (acts,
    P_0's beats, its decode, the block loop that runs every block and writes every output)."""
    all_tiles = -(-out // eng.rows)
    tiles = -(-all_tiles // eng.engines)
    share = min(out, tiles * eng.rows)
    total, left = 0, tokens
    while left > 0:
        n = min(left, eng.max_tokens)
        it = iterations(share, n_in, fmt, eng, n)
        total += sum(it.values()) + LOOP_RUNS * PIPE_FILL
        left -= n
    return total


def linear_seconds(out: int, n_in: int, fmt: TensorFormat, eng: LowbitEngine, tokens: int,
                   clock_hz: float, weights_bps: float) -> float:
    """A linear: its engines' cycles, at least its streams' bytes (once per call) over the weight ports."""
    calls = -(-tokens // eng.max_tokens)
    nbytes = calls * stream_bytes(out, n_in, fmt, eng.rows, eng.beat_bits)
    return max(linear_cycles(out, n_in, fmt, eng, tokens) / clock_hz, nbytes / weights_bps)


@dataclass(frozen=True)
class LowbitModel:
    """A model's low-bit formats: per layer, per linear (ModelConfig.linear_shapes names), and the
    checkpoint's head format. lowbit_head False (the design compile builds): the head is priced as the
    int8 per-row head (HEAD_BITS, cost/lm_head.py); True: as `head` on the low-bit engine (a projection of
    an option compile refuses)."""

    layers: tuple[dict[str, TensorFormat], ...]
    head: TensorFormat
    lowbit_head: bool = False

    def linear_bytes(self, cfg: ModelConfig, rows: int, bw: int = PORT_BITS) -> int:
        """Stream bytes of every layer's linears (the head not included)."""
        sh = cfg.linear_shapes()
        return sum(stream_bytes(*sh[n], f, rows, bw) for layer in self.layers for n, f in layer.items())

    def head_bytes(self, cfg: ModelConfig, rows: int, bw: int = PORT_BITS) -> int:
        """The head's bytes per decode step: the int8 head's rows and row scales
        (design_bytes.lm_head_bytes), or with lowbit_head its low-bit stream."""
        if self.lowbit_head:
            return stream_bytes(cfg.vocab_size, cfg.hidden_size, self.head, rows, bw)
        return lm_head_bytes(cfg, HEAD_BITS)

    def weight_bytes(self, cfg: ModelConfig, rows: int, bw: int = PORT_BITS) -> int:
        """Stream bytes of every layer's linears and the head, read once per decode step."""
        return self.linear_bytes(cfg, rows, bw) + self.head_bytes(cfg, rows, bw)

    def max_group(self) -> int:
        """The widest group the engine runs (MAXG): the linears', and the head's when it runs there."""
        groups = [f.group for layer in self.layers for f in layer.values()]
        return max(groups + [self.head.group] if self.lowbit_head else groups)

    def formats(self) -> list[TensorFormat]:
        """Every format the engine runs: the linears', and the head's when it runs there."""
        fmts = [f for layer in self.layers for f in layer.values()]
        return fmts + [self.head] if self.lowbit_head else fmts

    def min_group(self) -> int:
        """The narrowest group the engine runs (MING): the linears', and the head's when it runs there."""
        return min(f.group for f in self.formats())

    def codecs(self) -> tuple[tuple[int, int], ...]:
        """The distinct parameter codecs of the engine's formats as the decoder is priced: (record bits,
        groups a record), sorted (formats of one record layout share a codec up to constants)."""
        return tuple(sorted({(f.record_bits, f.sb) for f in self.formats()}))

    def max_sb(self) -> int:
        """The most groups a record of the engine's formats covers (MAXSB: sizes the s / m buffers)."""
        return max(f.sb for f in self.formats())

    def float_units(self, bw: int) -> int:
        """The float steps FU the engine needs at beats of bw bits (float_units_for its formats)."""
        return float_units_for(self.formats(), bw)


def model_max_k(cfg: ModelConfig) -> int:
    """MAXK of a model's engine: its widest linear input in whole 256-input super-blocks (what
    codegen_config.lowbit_fields generates)."""
    return -(-k_max(cfg) // LB_MAX_GROUP) * LB_MAX_GROUP
