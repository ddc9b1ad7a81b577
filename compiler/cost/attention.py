"""The attention kernels as built (hw/include/edgellm/attention_prefill.h, attention_decode.h): their
cycles and the core's resources (resources(), core_resources()).

The core (attn_rows) has A = dot_lanes fp32 lanes and walks the head dimension in nc = ceil(d / A)
chunks; its passes run at II = 1 with the row loop innermost, padded (pass_rows), and the K/V tile
is double-buffered, and the online softmax is software-pipelined: one pass scores tile t while it
accumulates tile t - 1, copying K of tile t + 1 and V of tile t from the reader's streams alongside
(header comment of attention_prefill.h; call_cycles is its formula). A reader process
streams the K/V tiles alongside (DATAFLOW), so a job takes the longer of the compute and the
reader's DDR time.
The jobs of a call (attention_plan.h attn_plan_of, mirrored by plan()): a call whose tokens' rows of
one KV head fit the core's rows (tokens x group <= rows_max: decode, and short multi-row calls such as
speculative decoding's verify call) runs cached-style: jobs of every token x th KV heads' query heads,
the cache read once per call, the K/V of earlier calls over min(P, n_kv) weight ports merged into one
beat per cycle, the positions the call itself wrote over the data port (decode_reader_s). Longer calls:
one job per (query block, KV head), one after another, K/V over the data port.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from edgellm.compiler.cost.elementwise import DDR_READ_LATENCY  # first-beat latency of a burst
from edgellm.compiler.cost.memory import Resources, auto_memory, lutram_luts, mux_luts
from edgellm.compiler.cost.ops import FADD, FDIV, FEXP, FMUL, ops
from edgellm.compiler.design import DesignParams, dot_lanes
from edgellm.models.config import ModelConfig
from edgellm.runtime.layout import ATTN_MEM_LANES, ATTN_MIN_ROWS, MUL_ADD_LATENCY

MIN_ROWS = ATTN_MIN_ROWS  # attn_config MIN_ROWS: rows interleaved per key (>= fp32 add latency)
MAC_SPAN = max(MUL_ADD_LATENCY, MIN_ROWS)  # attn_config mac_span: iterations between a row's o / l updates
MEM_LANES = ATTN_MEM_LANES  # attn_config MEM_LANES: elements per K (and V) beat the reader hands the core
DATA_LANES = 4  # attn_config DATA_LANES: fp32 elements per cycle of q loads / o stores (128-bit data port)
# The K/V readers (attention_decode.h attn_kv_segs) read a row (a position's heads, or one head's d values
# in prefill) as one burst, one beat per cycle, and request a row's burst when its loop starts: the first
# beat's latency is paid per row (Vitis does not overlap the bursts of consecutive loop runs). Assumption.
KV_ROW_RESTART = DDR_READ_LATENCY
LOOP_FILL = 24  # pipeline depth of one attention pass (dot chunk, exp, multiply-add). Assumption.


def lanes(cfg: ModelConfig, p: DesignParams) -> int:
    """A: the core's lanes = the numerics plan's dot_lanes (attn_lanes, at most a pure tree)."""
    return lanes_for(cfg, p.attn_lanes)


def lanes_for(cfg: ModelConfig, attn_lanes: int) -> int:
    """lanes() from design.attn_lanes alone (design.dot_lanes: the numerics plan's)."""
    return dot_lanes(cfg, attn_lanes)


def pass_rows(rows: int, nc: int) -> int:
    """nr, the stage pass's padded row loop (attention_prefill.h attn_pass_rows): a row's lane sums
    recur nr >= MIN_ROWS iterations apart and its o / l multiply-adds nc * nr >= MAC_SPAN apart."""
    return max(rows, MIN_ROWS, math.ceil(MAC_SPAN / nc))


@dataclass(frozen=True)
class AttnCall:
    """One attn_rows invocation: rows, tile heads, keys."""

    rows: int
    tile_heads: int
    keys: int


def job_counts(c: AttnCall, d: int, a: int, kv_block: int,
               data_lanes: int = DATA_LANES) -> tuple[int, int, int]:
    """(steady-state cycles, pipelined-loop entries, K and V beats read) of one job (attention_prefill.h
    header): row table, q load (with K of tile 0), then stages st = 0 .. tiles -- each one pass scoring
    tile st while accumulating tile st - 1, the longer of it and its copy phase (K of tile st + 1 and
    V of tile st, moved in pairs) -- and the normalize + store.
    tests/test_hw_attention.py checks these against the C simulation's loop-iteration trace."""
    nc, nb = math.ceil(d / a), math.ceil(d / MEM_LANES)
    nq, nr = math.ceil(d / data_lanes), pass_rows(c.rows, nc)  # q / o: one data-port beat per cycle
    nk = [min(kv_block, c.keys - b0) for b0 in range(0, c.keys, kv_block)]
    tile = [k * c.tile_heads * nb for k in nk] + [0, 0]  # beats of tile t per stream (none past the last)
    stages = sum(max(max(nk[st] if st < len(nk) else 0, nk[st - 1] if st else 0) * nc * nr,
                     tile[st + 1], tile[st])
                 for st in range(len(nk) + 1))
    steady = c.rows + max(c.rows * nq, tile[0]) + stages + c.rows * nq
    return steady, 2 * (len(nk) + 1) + 4, 2 * sum(tile)


# A job's part (attention_core.h, the sequential schedule's attention in two parts): WHOLE, FIRST (keys
# before the split, the rows' state saved: (l, m) stored in lm_beats beats a row after the o rows),
# SECOND (the rest, resumed: o and (l, m) loaded first).
WHOLE, FIRST, SECOND = 0, 1, 2


def lm_beats(data_lanes: int) -> int:
    """attn_config lm_beats: data-port beats of a saved row's (l, m)."""
    return -(-2 // data_lanes)


def part_counts(rows: int, d: int, part: int, data_lanes: int = DATA_LANES) -> tuple[int, int]:
    """(iterations, loop entries) a part adds to a job (attention_core.h attn_store_lm /
    attn_load_state): FIRST stores each row's (l, m), SECOND loads each row's o and (l, m)."""
    lb, nq = lm_beats(data_lanes), math.ceil(d / data_lanes)
    return {WHOLE: (0, 0), FIRST: (rows * lb, 1), SECOND: (rows * (nq + lb), 1)}[part]


@functools.lru_cache(maxsize=1 << 16)
def call_cycles(c: AttnCall, d: int, a: int, kv_block: int, data_lanes: int = DATA_LANES, part: int = WHOLE
                ) -> int:
    """Compute-process cycles of one job (of a part: c.keys the part's keys): job_counts' steady cycles
    plus a fill per loop entry, and the part's state loop."""
    steady, entries, _ = job_counts(c, d, a, kv_block, data_lanes)
    extra, loops = part_counts(c.rows, d, part, data_lanes)
    return steady + extra + (entries + loops) * LOOP_FILL


def kv_bytes(c: AttnCall, d: int, elem_bytes: int) -> int:
    """K and V bytes the reader streams for one call."""
    return 2 * c.keys * c.tile_heads * d * elem_bytes


def layer_ddr_bytes(cfg: ModelConfig, p: DesignParams, queries: int, context: int) -> int:
    """DDR bytes of one layer's attention for `queries` new tokens ending at `context` (causal), then the
    new K/V written: a cached-style call (plan) streams the cache once, a prefill-style one per query
    block of attn_q_block up to its last key (a TeLLMe-style serial description, p.overlap False, always
    the latter: cost/serial.py)."""
    first = context - queries  # keys already cached before the new tokens
    row = 2 * cfg.kv_size * p.kv_bytes  # K and V of one token, one layer
    rows = rows_max(cfg, p.attn_q_block)
    if p.overlap and plan(queries, cfg.n_heads, cfg.n_kv_heads, rows, p.attn_q_block).cached:
        return context * row + queries * row
    blocks = math.ceil(queries / p.attn_q_block)
    streamed = sum(min(context, first + (b + 1) * p.attn_q_block) for b in range(blocks)) * row
    return streamed + queries * row  # read tiles + write the new K/V


def rows_max(cfg: ModelConfig, q_block: int) -> int:
    """The core's row capacity (attn_config rows_max): max(query block x group, query heads)."""
    return max(q_block * (cfg.n_heads // cfg.n_kv_heads), cfg.n_heads)


@dataclass(frozen=True)
class AttnPlan:
    """A call's jobs (attention_plan.h attn_plan): cached-style or prefill-style, tile heads per cached
    job (the last may have fewer), job count."""

    cached: bool
    tile_heads: int
    jobs: int


def plan(t_len: int, n_heads: int, n_kv: int, rows: int, q_block: int) -> AttnPlan:
    """attention_plan.h attn_plan_of, the one rule: cached-style when t_len x group <= rows (the core's
    row capacity), its KV heads split evenly over ceil(n_kv / (rows // (t_len x group))) jobs; else the
    prefill jobs, ceil(t_len / q_block) query blocks x n_kv heads."""
    grp = n_heads // n_kv
    if t_len * grp > rows:
        return AttnPlan(False, 1, -(-t_len // q_block) * n_kv)
    jobs = -(-n_kv // (rows // (t_len * grp)))
    return AttnPlan(True, -(-n_kv // jobs), jobs)


def call_jobs(t_len: int, pos0: int, n_heads: int, n_kv: int, rows: int, q_block: int) -> list[AttnCall]:
    """The jobs (rows, tile heads, keys) of one attention_layer call of t_len tokens at pos0, in order."""
    pl, grp = plan(t_len, n_heads, n_kv, rows, q_block), n_heads // n_kv
    if pl.cached:
        heads = [min(pl.tile_heads, n_kv - h) for h in range(0, n_kv, pl.tile_heads)]
        return [AttnCall(t_len * th * grp, th, pos0 + t_len) for th in heads]
    out = []
    for t0 in range(0, t_len, q_block):
        bq = min(q_block, t_len - t0)
        out += [AttnCall(bq * grp, 1, pos0 + t0 + bq)] * n_kv
    return out


def prefill_calls(cfg: ModelConfig, q_block: int, queries: int, context: int) -> list[AttnCall]:
    """The calls of one layer's prefill attention for `queries` tokens ending at `context`, in query
    blocks of q_block (design.attn_q_block)."""
    pos0, grp = context - queries, cfg.n_heads // cfg.n_kv_heads
    calls = []
    for t0 in range(0, queries, q_block):
        bq = min(q_block, queries - t0)
        calls += [AttnCall(bq * grp, 1, pos0 + t0 + bq)] * cfg.n_kv_heads
    return calls


def decode_reader_s(c: AttnCall, d: int, kv_elem: int, f_hz: float, data_bps: float,
                    kv_read_bps: float, kv_ports: int = 1, new: int = 1) -> float:
    """A cached-style job's K/V stream (decode: new = 1; a short multi-row call: new = its tokens): the
    positions earlier calls wrote (all but the last `new`) over the kv_ports K/V ports (position p on
    port p % kv_ports, its K row then its V row: the job's heads, one burst each), then the `new` this
    call wrote over the data port, the argument that wrote them (attention_layer.h attn_port_positions:
    an m_axi argument never reads what another wrote in the same call); a row's first-beat latency each
    (KV_ROW_RESTART; the ports' rows overlap). (A half of a pipelined prefill call also reads the other
    half's new positions over the data port: a few positions, not modelled.)"""
    old = AttnCall(c.rows, c.tile_heads, max(0, c.keys - new))
    rows = 2 * math.ceil(old.keys / max(1, kv_ports))  # the busiest port's rows
    ports = rows * KV_ROW_RESTART / f_hz + kv_bytes(old, d, kv_elem) / kv_read_bps if old.keys else 0.0
    mine = AttnCall(c.rows, c.tile_heads, c.keys - old.keys)
    return ports + 2 * mine.keys * KV_ROW_RESTART / f_hz + kv_bytes(mine, d, kv_elem) / data_bps


def prefill_reader_s(c: AttnCall, d: int, kv_elem: int, f_hz: float, data_bps: float) -> float:
    """A prefill job's K/V stream over the data port: per key its head's K row then its V row (d values
    each, one burst: a row's first-beat latency, KV_ROW_RESTART)."""
    return 2 * c.keys * c.tile_heads * KV_ROW_RESTART / f_hz + kv_bytes(c, d, kv_elem) / data_bps


def layer_seconds(cfg: ModelConfig, p: DesignParams, queries: int, context: int, f_hz: float,
                  data_bps: float, kv_read_bps: float, kv_ports: int = 1) -> float:
    """One layer's attention for `queries` tokens ending at `context`: the call's jobs (plan: cached-style,
    the earlier calls' K/V at kv_read_bps over kv_ports ports, or prefill-style over the data port). q / o
    move one data-port beat (data_port_width_bits / 32 floats) per cycle."""
    return _layer_seconds(cfg, lanes(cfg, p), p.attn_kv_block, p.attn_q_block, p.kv_bytes, queries, context,
                          f_hz, data_bps, kv_read_bps, kv_ports, max(1, p.data_port_width_bits // 32))


@functools.lru_cache(maxsize=1 << 14)
def _layer_seconds(cfg: ModelConfig, a: int, kv_block: int, q_block: int, kv_elem: int, queries: int,
                   context: int, f_hz: float, data_bps: float, kv_read_bps: float, kv_ports: int = 1,
                   data_lanes: int = DATA_LANES) -> float:
    """layer_seconds from the design fields it reads (A, K/V tile, query block, KV element bytes, K/V
    ports, the data port's floats per beat)."""
    d, rows = cfg.head_dim, rows_max(cfg, q_block)
    cached = plan(queries, cfg.n_heads, cfg.n_kv_heads, rows, q_block).cached
    total = 0.0
    for c in call_jobs(queries, context - queries, cfg.n_heads, cfg.n_kv_heads, rows, q_block):
        compute = call_cycles(c, d, a, kv_block, data_lanes) / f_hz
        reader = (decode_reader_s(c, d, kv_elem, f_hz, data_bps, kv_read_bps, kv_ports, queries) if cached
                  else prefill_reader_s(c, d, kv_elem, f_hz, data_bps))
        total += max(compute, reader)
    return total


def split_key(cfg: ModelConfig, p: DesignParams, queries: int, context: int) -> int:
    """attention_layer.h attn_split_key: where the sequential schedule splits a call of `queries` tokens
    ending at `context` (the last K/V block boundary at or below its first position; 0, no split, for a
    prefill-style call or a design without attn_split)."""
    if not p.attn_split:
        return 0
    rows = rows_max(cfg, p.attn_q_block)
    if not plan(queries, cfg.n_heads, cfg.n_kv_heads, rows, p.attn_q_block).cached:
        return 0
    return (context - queries) // p.attn_kv_block * p.attn_kv_block


def layer_parts(cfg: ModelConfig, p: DesignParams, queries: int, context: int, f_hz: float, data_bps: float,
                kv_read_bps: float, kv_ports: int = 1) -> tuple[float, float]:
    """One layer's attention in the sequential schedule (decoder_layer.h V1.1 and V1.2): (seconds of the
    keys before split_key, beside the k and v linears; seconds of the rest, resumed from the saved state).
    (0, layer_seconds) when the call does not split."""
    key = split_key(cfg, p, queries, context)
    if not key:
        return 0.0, layer_seconds(cfg, p, queries, context, f_hz, data_bps, kv_read_bps, kv_ports)
    a, dl = lanes(cfg, p), max(1, p.data_port_width_bits // 32)
    d, rows = cfg.head_dim, rows_max(cfg, p.attn_q_block)
    first = second = 0.0
    for c in call_jobs(queries, context - queries, cfg.n_heads, cfg.n_kv_heads, rows, p.attn_q_block):
        c1, c2 = AttnCall(c.rows, c.tile_heads, key), AttnCall(c.rows, c.tile_heads, c.keys - key)
        first += max(call_cycles(c1, d, a, p.attn_kv_block, dl, FIRST) / f_hz,
                     decode_reader_s(c1, d, p.kv_bytes, f_hz, data_bps, kv_read_bps, kv_ports, 0))
        second += max(call_cycles(c2, d, a, p.attn_kv_block, dl, SECOND) / f_hz,
                      decode_reader_s(c2, d, p.kv_bytes, f_hz, data_bps, kv_read_bps, kv_ports, queries))
    return first, second


# --- Resources ------------------------------------------------------------------------------------
# The design fields resources() reads (tests/test_cost_fields.py; the DSE keys its caches by them).
RESOURCE_FIELDS = ("attn_lanes", "attn_q_block", "attn_kv_block")


def _core(a: int, d: int, rows: int, tile_heads: int, kv_block: int) -> Resources:
    """One attn_rows instance (attention_prefill.h header): 3A+2 multipliers, 3A+2 adders, 2 exp units,
    4 dividers (normalize at the data port's rate, a beat per cycle); o and q rows in max(A, 4) banks,
    the score lane sums, a double-buffered K and V tile in max(A, 16) banks (all without a BIND_STORAGE:
    memory.auto_memory), two score tiles in LUTRAM (the software-pipelined softmax scores one tile while
    it accumulates the previous one), the two tiles' block maxima (LUTRAM halves)."""
    cost = ops(FMUL, FADD, n=3 * a + 2) + ops(FEXP, FEXP) + ops(FDIV, n=DATA_LANES)
    dp = -(-d // a) * a
    kv_part = max(a, MEM_LANES)
    dkv = -(-d // kv_part) * kv_part
    qo = max(a, DATA_LANES)  # q / o banks: A lanes, one data beat per cycle in and out
    rows_bufs = auto_memory(32, rows * dp // qo, 2 * qo)  # q and o: [rows][dp] cyclic by max(A, QL), unbound
    lane_sums = Resources(lut=a * lutram_luts(32, rows))  # acc[rows][A], A LUTRAM columns
    tiles = auto_memory(32, 2 * kv_block * tile_heads * dkv // kv_part, 2 * kv_part)  # kt, vt: two halves
    scores = Resources(lut=2 * lutram_luts(32, rows * kv_block))  # s_tile[2]: one scored, one accumulated
    # mx[2][rows]: two LUTRAM halves, each read once (row sr) and written once a cycle, the parity's choice
    block_max = Resources(lut=2 * lutram_luts(32, rows) + 2 * 32 * mux_luts(2))
    return cost + rows_bufs + lane_sums + tiles + scores + block_max


def resources(cfg: ModelConfig, p: DesignParams) -> Resources:
    """One attn_rows core serves prefill and decode (attention_layer): rows = max(BQ x group, heads),
    tiles of all KV heads; A = the plan's dot_lanes (lanes())."""
    return core_resources(cfg, lanes(cfg, p), p.attn_q_block, p.attn_kv_block)


@functools.lru_cache(maxsize=1024)
def core_resources(cfg: ModelConfig, a: int, q_block: int, kv_block: int) -> Resources:
    """resources() from the core's lanes A (lanes()), query block and K/V tile."""
    d, group = cfg.head_dim, cfg.n_heads // cfg.n_kv_heads
    return _core(a, d, max(q_block * group, cfg.n_heads), cfg.n_kv_heads, kv_block)
