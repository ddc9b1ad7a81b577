"""Design-space exploration: size the accelerator to the board (docs/architecture.md, docs/performance.md).

Objective, in order: maximize projected decode tokens/s (candidates within DECODE_TIE of the best
count as equal), then minimize projected TTFT for a 128-token prompt, then minimize LUT use. The
near-best designs are widened in the prefill-only fields: token lanes (and how many of them are DSP
lanes), the prefill token block and the prefill pipeline. Hard
constraints: the board's resources under the routing headroom limits (estimate.UTIL_LIMITS) and the
model's DDR footprint under DDR minus the OS reservation. The weight fetcher's FIFO depth: every
candidate takes the deepest of FETCH_DEPTHS that fits (decode never drops with depth); the near-best
designs then keep the shallowest depth within FETCH_TIE of that decode.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from edgellm.boards import Board
from edgellm.compiler.cost import attention as cost_attention
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost.elementwise import ADD_LATENCY
from edgellm.compiler.cost.memory import KINDS, Resources, total_of
from edgellm.compiler.cost.resource_model import (
    attention,
    attention_core,
    elementwise,
    elementwise_engine,
    estimate_resources,
    fetch_fifo,
)
from edgellm.compiler.design import DesignParams, check_ddr_fit
from edgellm.compiler.dse_points import Point, record, sample_designs
from edgellm.compiler.estimate import UTIL_LIMITS, Estimate, estimate, fits_board
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig

DECODE_TIE = 0.995  # decode within 0.5% of the best counts as a tie (then TTFT decides)
TTFT_TOKENS = 128
# Candidate sets (small on purpose: every point is costed by the resource and performance models).
GROUP_SIZES = (2, 3)
TABLES = (5, 10, 15, 20, 30, 55)  # multiples of 5: the TLMM engine reads G bytes = 5 groups at a time
ROWS = (4, 8, 16, 32)
ATTN_LANES = (2, 4, 8, 16, 32)
PREFILL_TOKEN_BLOCKS = (16, 64)
TOKEN_LANES = (1, 2, 4)  # TLMM tokens per step (prefill throughput); of them 0 .. TP-1 on DSP MAC chains
PREFILL_PIPELINE = (False, True)  # prefill calls in two overlapped halves (decoder_layer.h layer_slot_run)
EW_VECS = (1, 2, 4, 8)  # element-wise elements per cycle (norm lanes: enough for VEC adders, LaneUnits)
GLU_VECS = (1, 2)  # narrower GLU act * u passes (besides ew_vec itself): SiLU's exp_f and divider per lane
STORAGE = ("uram", "bram", "lutram")  # weight buffer kind (uram only where the board has URAM)
ACT_STORAGE = ("bram", "uram")  # activation buffers (uram only where the board has URAM)
ATTN_KV_BLOCKS = (8, 32)  # keys per K/V tile (NumericsPlan.kv_block): tile buffers vs per-tile overhead
# words per weight fetcher FIFO (design.fetch_depth): powers of two, and whole URAMs deep above 4096
FETCH_DEPTHS = (512, 2048, 4096, 8192, 12288, 16384)
LOGIC = ("lut", "ff", "dsp")  # resources the fetch FIFO depth does not change (BRAM/URAM FIFOs in the DSE)
# The fields only the element-wise engine and the attention core read (resource_model.elementwise /
# attention), normalized when the other kernels are looked up (tests/test_estimate.py checks the split)
VECTOR_FIELDS = dict(ew_vec=1, ew_glu_vec=0, ew_lanes=16, attn_lanes=1, attn_kv_block=8)
OUT_LANES = (1, 2, 4)  # TLMM outputs dequantized per cycle (capped by the data port's fp32 width)
FETCH_TIE = 0.999  # a shallower fetch FIFO within 0.1% of the deepest fitting one's decode is enough


def _port_counts(board: Board) -> list[int]:
    return sorted({board.hp_ports, max(1, board.hp_ports // 2), 1}, reverse=True)


def _memory_candidates(board: Board, base: DesignParams, clock_mhz: float) -> Iterator[dict]:
    kinds = STORAGE if board.uram else tuple(k for k in STORAGE if k != "uram")
    acts = ACT_STORAGE if board.uram else ("bram",)
    for ports, kind, act, lm in itertools.product(_port_counts(board), kinds, acts, (True, False)):
        yield dict(weight_ports=ports, port_width_bits=board.hp_port_width_bits,
                   data_port_width_bits=board.hp_port_width_bits, weight_buffer=kind, act_buffer=act,
                   lm_head_on_fabric=lm, prefill_token_block=PREFILL_TOKEN_BLOCKS[0],
                   clock_mhz=clock_mhz)  # no timing model: the board's PL clock or the user's


def _ew_widths(cfg: ModelConfig) -> list[tuple[int, int]]:
    """(ew_vec, ew_glu_vec) pairs: every VEC with the GLU pass as wide; for SiLU models (whose act * u
    pass costs 11 fmul, 11 fadd/fsub and a divider per lane) also with a narrower GLU pass."""
    narrow = GLU_VECS if cfg.act == "silu" else ()
    return [(v, g) for v in EW_VECS for g in (0, *(x for x in narrow if x < v))]


def _out_lanes(board: Board, base: DesignParams) -> list[int]:
    """TLMM output lanes to explore: powers of two up to the fp32 outputs per data beat (each lane has
    its own dequantize divider; decode writes a tile's R outputs OL per cycle after its steps)."""
    most = max(1, min(base.out_lanes, board.hp_port_width_bits // 32))
    return [ol for ol in OUT_LANES if ol <= most] or [most]


def candidate_groups(cfg: ModelConfig, board: Board, base: DesignParams,
                     clock_mhz: float | None = None) -> Iterator[tuple[DesignParams, list[dict]]]:
    """Every candidate configuration for a board with one token lane and the smallest prefill block
    (fields not explored are taken from `base`), grouped: a design with VECTOR_FIELDS normalized (the
    TLMM, memories, ports, output lanes) and the vector-unit choices that complete it (attention
    lanes and K/V tile, element-wise and GLU widths). explore() widens the near-best ones in token
    lanes and prefill blocks."""
    vectors = [dict(attn_lanes=a, attn_kv_block=kvb, ew_vec=vec, ew_glu_vec=gv,
                    ew_lanes=max(16, ADD_LATENCY * vec))
               for a, kvb, (vec, gv) in itertools.product(ATTN_LANES, ATTN_KV_BLOCKS, _ew_widths(cfg))]
    for g, t, r, ol in itertools.product(GROUP_SIZES, TABLES, ROWS, _out_lanes(board, base)):
        for mem in _memory_candidates(board, base, float(clock_mhz or board.pl_clock_mhz)):
            yield base.replace(group_size=g, tables=t, rows=r, token_lanes=1, out_lanes=ol, **mem,
                               **VECTOR_FIELDS), vectors


def candidates(cfg: ModelConfig, board: Board, base: DesignParams) -> Iterator[DesignParams]:
    """candidate_groups, each design completed (the whole candidate set, one DesignParams each)."""
    for rest, vectors in candidate_groups(cfg, board, base):
        for v in vectors:
            yield rest.replace(**v)


@dataclass(frozen=True)
class DseResult:
    """The chosen design, its estimate and how many candidates were feasible out of how many. For plots
    (edgellm report): (decode tok/s, TTFT(TTFT_TOKENS) s, design) of the designs scored on TTFT, best
    first, and of an even spread of the feasible ones by decode (sample_designs)."""

    params: DesignParams
    estimate: Estimate
    feasible: int
    explored: int
    scored: tuple[Point, ...] = ()
    sample: tuple[Point, ...] = ()
    board: Board | None = None  # the board explored for (as given: a calibrated one included)

    def record(self) -> dict:
        """The explored designs as JSON (report/estimate.json "dse"; dse_points.record)."""
        return record(self.params, self.feasible, self.explored, TTFT_TOKENS, self.scored, self.sample)


def explore(cfg: ModelConfig, board: Board, base: DesignParams | None = None,
            limits: dict[str, float] = UTIL_LIMITS, clock_mhz: float | None = None) -> DseResult:
    """Choose the best feasible design for `cfg` on `board` at `clock_mhz` (default: the board's PL
    clock) under the utilization `limits` (default UTIL_LIMITS: a LUT cap that leaves routing margin);
    EdgeLLMError if none exists. Memoized per (model, board, base, limits, clock) within the process:
    the search is deterministic."""
    if clock_mhz is not None and (isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float))
                                  or not 0 < clock_mhz <= 1000):
        raise EdgeLLMError(f"clock must be a number of MHz in (0, 1000], got {clock_mhz!r}")
    for k, v in limits.items():
        if k not in KINDS or isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise EdgeLLMError(f"utilization limit {k!r} must be a fraction in (0, 1], got {v!r}")
    full = {**UTIL_LIMITS, **limits}
    return _explore(cfg, board, base or DesignParams(), tuple(sorted(full.items())),
                    float(clock_mhz) if clock_mhz is not None else None)


def _fetch_knee(cfg: ModelConfig, board: Board, p: DesignParams, decode: float,
                fits: Callable[[DesignParams], bool]) -> tuple[float, DesignParams]:
    """The shallowest fitting fetch depth whose decode is within FETCH_TIE of `decode` (p's, at the
    deepest fitting depth): deeper FIFOs that buy nothing only take memory."""
    for d in sorted(x for x in FETCH_DEPTHS if x < p.fetch_depth):
        q = p.replace(fetch_depth=d)
        if fits(q):
            dec = cost_model.decode_step(cfg, board, q).tokens_per_s
            if dec >= FETCH_TIE * decode:
                return dec, q
    return decode, p


# The explored fields decode_step (and, with the prefill-only fields, prefill) reads: not where the
# weight banks and activation rows are stored, nor the token lanes, prefill block and pipeline (a
# decode step is one token on lane 0 in the sequential schedule; tests/test_estimate.py checks it).
# The DSP lanes do count: they deepen the TLMM loop every call pays once per tile. The others are the
# base's, fixed within one exploration.
DECODE_FIELDS = ("group_size", "tables", "rows", "attn_lanes", "attn_kv_block", "ew_vec", "ew_glu_vec",
                 "ew_lanes", "out_lanes", "dsp_lanes", "weight_ports", "lm_head_on_fabric", "fetch_depth")


def decode_key(p: DesignParams) -> tuple:
    """p's DECODE_FIELDS."""
    return tuple(getattr(p, f) for f in DECODE_FIELDS)


def _decode_key_of(rest: DesignParams, v: dict, depth: int) -> tuple:
    """decode_key(rest.replace(**v, fetch_depth=depth)) without building it."""
    return tuple(depth if f == "fetch_depth" else v[f] if f in v else getattr(rest, f) for f in DECODE_FIELDS)


def _built(q: DesignParams | tuple) -> DesignParams:
    """A feasible entry's design: built, or (rest, vector fields, fetch depth) from the fast path."""
    return q if isinstance(q, DesignParams) else q[0].replace(**q[1], fetch_depth=q[2])


@functools.lru_cache(maxsize=64)
def _explore(cfg: ModelConfig, board: Board, base: DesignParams, limit_items: tuple,
             clock_mhz: float | None) -> DseResult:
    limits = dict(limit_items)
    check_ddr_fit(cfg, base, board.ddr_available_bytes,
                  f"{board.name} ({board.ddr_bytes / 2**20:.0f} MiB DDR)")
    # (decode tok/s, LUT fraction, design or the fast path's (rest, vector fields, fetch depth): _built)
    feasible: list[tuple[float, float, DesignParams | tuple]] = []
    explored = 0
    smallest: tuple[float, list[str]] | None = None
    # resource key -> (every kernel but the weight FIFOs; its violations if LUT/FF/DSP fail; LUT fraction)
    res_cache: dict[tuple, tuple[Resources, list[str], float]] = {}
    decode_cache: dict[tuple, float] = {}  # decode_key -> decode tokens/s
    depths = sorted(FETCH_DEPTHS, reverse=True)
    mem_limit = (limits["bram36"] * board.bram36, limits["uram"] * board.uram)  # as fits_board counts
    # a design with VECTOR_FIELDS normalized -> (its kernels but the element-wise engine and attention
    # core, which read none of those fields, in estimate_resources' order; minus its weight FIFOs)
    rest_cache: dict[DesignParams, tuple[list[Resources], Resources]] = {}
    fifo_cache: dict[tuple, Resources] = {}  # fetch_fifo per (rows, ports, port width, overlap, depth)

    def rest_kernels(rest: DesignParams) -> tuple[list[Resources], Resources]:
        if rest not in rest_cache:
            parts = estimate_resources(cfg, board, rest)
            others = [r for k, r in parts.items() if k not in ("elementwise", "attention", "total")]
            rest_cache[rest] = (others, fetch_fifo(board, rest).scaled(-1))
        return rest_cache[rest]

    def core_of(others: list[Resources], minus_fifo: Resources, ew: Resources,
                at: Resources) -> tuple[Resources, float]:
        """(every kernel but the weight FIFOs, rounded; the total LUT fraction): total_of's sums in
        estimate_resources' order (tlmm, elementwise, attention, the others), without its objects."""
        seq = [others[0], ew, at, *others[1:]]
        raw = [sum(getattr(r, k) for r in seq) for k in KINDS]
        core = Resources(*(x + getattr(minus_fifo, k) for x, k in zip(raw, KINDS, strict=True))).rounded()
        return core, math.ceil(raw[0]) / board.lut

    def logic_fits(core: Resources) -> bool:
        util = core.utilization(board)
        return all(util[k] <= limits[k] for k in LOGIC)

    def memory_fits(core: Resources, fifo: Resources) -> bool:
        bram, uram = math.ceil((core.bram36 + fifo.bram36) * 2) / 2, core.uram + fifo.uram
        return bram <= mem_limit[0] and uram <= mem_limit[1]

    def fifo_at(p: DesignParams, depth: int) -> Resources:
        """fetch_fifo(board, p, depth), cached on what it reads."""
        fkey = (p.rows, p.weight_ports, p.port_width_bits, p.overlap, depth)
        if fkey not in fifo_cache:
            fifo_cache[fkey] = fetch_fifo(board, p, depth)
        return fifo_cache[fkey]

    def violations(p: DesignParams, key: tuple, depth: int) -> list[str]:
        """Why p with weight FIFOs of `depth` words does not fit (empty: it fits)."""
        nonlocal smallest
        if key not in res_cache:
            core, lut = core_of(*rest_kernels(p.replace(**VECTOR_FIELDS)), elementwise(cfg, p),
                                attention(cfg, p))
            res_cache[key] = (core, [] if logic_fits(core) else fits_board(core, board, limits), lut)
        core, logic, lut = res_cache[key]
        out = logic  # a logic violation: no FIFO depth can help
        if not logic:
            fifo = fifo_at(p, depth)
            if memory_fits(core, fifo):
                return []
            out = ["bram36/uram"]  # the reasons are spelled out only for the smallest misfit
            if smallest is None or lut < smallest[0]:
                out = fits_board(total_of([core, fifo]), board, limits)
        if smallest is None or lut < smallest[0]:
            smallest = (lut, out)
        return out

    def res_key(p: DesignParams) -> tuple:
        """Every field but the fetch depth (violations() takes the depth separately)."""
        return tuple(v for k, v in vars(p).items() if k != "fetch_depth")

    def fits(p: DesignParams) -> bool:
        return not violations(p, res_key(p), p.fetch_depth)

    def decode_of(q: DesignParams | tuple, dkey: tuple) -> float:
        """Projected decode tok/s of q (a design, or the fast path's tuple: _built), whose decode_key is
        dkey; the design is built only on a cache miss."""
        if dkey not in decode_cache:
            decode_cache[dkey] = cost_model.decode_step(cfg, board, _built(q)).tokens_per_s
        return decode_cache[dkey]

    def consider(p: DesignParams, fetch_depths: list[int] = depths) -> None:
        """Add p at the deepest of `fetch_depths` that fits (decode never drops with depth)."""
        nonlocal explored
        explored += 1
        key = res_key(p)
        for d in fetch_depths:
            if violations(p, key, d):
                continue
            q = p if d == p.fetch_depth else p.replace(fetch_depth=d)
            feasible.append((decode_of(q, decode_key(q)), res_cache[key][2], q))
            return

    def quick_fit(rest: DesignParams, v: dict) -> tuple[int, float]:
        """(the deepest fetch depth at which rest completed by v fits, 0 if none; its total LUT fraction)
        exactly as consider() / violations() decide it (same kernels, same summation order, same
        rounding), without building the DesignParams."""
        ew = elementwise_engine(cfg, v["ew_vec"], v["ew_lanes"], rest.act_buffer, v["ew_glu_vec"])
        at = attention_core(cfg, cost_attention.lanes_for(cfg, v["attn_lanes"]), rest.attn_q_block,
                            v["attn_kv_block"])
        core, lut = core_of(*rest_kernels(rest), ew, at)
        if logic_fits(core):
            for d in depths:  # deepest first (a deeper FIFO may move from BRAM to URAM)
                if memory_fits(core, fifo_at(rest, d)):
                    return d, lut
        return 0, lut

    for rest, vectors in candidate_groups(cfg, board, base, clock_mhz):
        if not rest.overlap:  # the element-wise/attention shortcuts below are the generated engine's
            for v in vectors:
                consider(rest.replace(**v))
            continue
        for v in vectors:
            d, lut = quick_fit(rest, v)
            if d:  # consider(), with the design built only when its decode is first needed
                explored += 1
                feasible.append((decode_of((rest, v, d), _decode_key_of(rest, v, d)), lut, (rest, v, d)))
            elif smallest is None or lut < smallest[0]:  # the smallest misfit's reasons are reported
                consider(rest.replace(**v))
            else:
                explored += 1
    if not feasible:
        why = "; ".join(smallest[1]) if smallest else "no candidates"
        raise EdgeLLMError(f"no accelerator configuration for {cfg.name} fits {board.name} within the "
                           f"routing headroom ({why})")
    # The near-best designs (decode within DECODE_TIE of the best), each at the fetch depth it needs
    best = max(f[0] for f in feasible)
    near = [(dec, lut, _built(q)) for dec, lut, q in feasible if dec >= DECODE_TIE * best]
    others = [f for f in feasible if f[0] < DECODE_TIE * best]
    kneed = [(*_fetch_knee(cfg, board, p, dec, fits), lut) for dec, lut, p in near]
    best_decode = max([dec for dec, _, _ in kneed] + [f[0] for f in others])
    # candidates: (decode, LUT fraction, design, widen it in the prefill-only fields)
    base = [(dec, lut, p, True) for dec, p, lut in kneed if dec >= DECODE_TIE * best_decode]
    base += [(dec, lut, _built(q), False) for dec, lut, q in others if dec >= DECODE_TIE * best_decode]
    ttft: dict[tuple, float] = {}  # decode_key, token lanes, prefill token block and pipeline -> TTFT
    floors: dict[tuple, float] = {}

    def ttft_s(p: DesignParams) -> float:
        key = (*decode_key(p), p.token_lanes, p.prefill_token_block, p.prefill_pipeline)
        if key not in ttft:
            ttft[key] = cost_model.prefill(cfg, board, p, TTFT_TOKENS).seconds
        return ttft[key]

    def floor_s(p: DesignParams) -> float:
        """cost_model.prefill_floor over the blocks p and its widened variants can take."""
        key = (*decode_key(p), p.prefill_token_block)
        if key not in floors:
            blocks = tuple(sorted({p.prefill_token_block, *PREFILL_TOKEN_BLOCKS}))
            floors[key] = cost_model.prefill_floor(cfg, board, p, TTFT_TOKENS, blocks)
        return floors[key]

    def widened(p: DesignParams, dec: float) -> Iterator[tuple[DesignParams, float, float]]:
        """p's variants in token lanes (of them 0 .. TP-1 DSP lanes), prefill block and pipeline that fit
        (at p's fetch depth), with their LUT fractions and decode (p's `dec` unless they change the DSP
        lanes: decode_step reads no other of those fields, DECODE_FIELDS)."""
        nonlocal explored, widened_fit
        for pb, tp, pipe in itertools.product(PREFILL_TOKEN_BLOCKS, TOKEN_LANES, PREFILL_PIPELINE):
            for dl in range(tp) if pb % tp == 0 else ():
                q = p.replace(prefill_token_block=pb, token_lanes=tp, dsp_lanes=dl, prefill_pipeline=pipe)
                if q == p:
                    continue
                explored += 1
                key = res_key(q)
                if not violations(q, key, q.fetch_depth):
                    widened_fit += 1
                    qdec = dec if dl == p.dsp_lanes else decode_of(q, decode_key(q))
                    yield q, res_cache[key][2], qdec

    # Score in order of the TTFT floor; a design (with all its variants) whose floor exceeds the best
    # TTFT found cannot win, nor can any after it: branch and bound, exact.
    widened_fit = 0
    base.sort(key=lambda b: floor_s(b[2]))
    scored: list[tuple[float, float, float, DesignParams]] = []
    best_t = math.inf
    for dec, lut, p, widen in base:
        if floor_s(p) > best_t:
            break
        for q, qlut, qdec in [(p, lut, dec), *(widened(p, dec) if widen else ())]:
            if qdec < DECODE_TIE * best_decode:  # DSP lanes that cost decode beyond the tie
                continue
            t = ttft_s(q)
            best_t = min(best_t, t)
            scored.append((t, qlut, -qdec, q))
    scored.sort(key=lambda s: s[:3])
    chosen = scored[0][3]
    return DseResult(chosen, estimate(cfg, board, chosen), len(feasible) + widened_fit, explored,
                     tuple((-nd, t, q) for t, _, nd, q in scored),
                     sample_designs(cfg, board, feasible, _built, TTFT_TOKENS), board)
