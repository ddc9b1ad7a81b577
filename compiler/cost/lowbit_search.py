"""The low-bit design search (bench/lowbit_projections.py prints it; `edgellm estimate` and `edgellm
compile` of a low-bit model run it through compiler/lowbit_estimate.py): a design's DesignParams, its
resources as built (the engines, the vector engines, AXI, the platform, the weight fetchers with their
FIFOs, the int8 LM head), its projection (cost/lowbit_run.py) and the search over engine shapes, vector
engines and the weight FIFOs' depth. Projections, not measurements.
"""

from __future__ import annotations

import dataclasses
import itertools

from edgellm.boards import Board
from edgellm.compiler.cost import fetch as cost_fetch
from edgellm.compiler.cost import lm_head as cost_lm_head
from edgellm.compiler.cost.ddr import rate_shares
from edgellm.compiler.cost.lowbit import (
    HEAD_LANE,
    PORT_BITS,
    SEARCH_SCALE_LANES,
    LowbitEngine,
    LowbitModel,
    model_max_k,
)
from edgellm.compiler.cost.lowbit_resources import resources
from edgellm.compiler.cost.lowbit_run import ddr_bound_tokens_per_s, run_seconds
from edgellm.compiler.cost.memory import Resources, auto_memory, bound_memory, total_of
from edgellm.compiler.design import FETCH_DEPTH_RANGE, URAM_WORDS, DesignParams, head_beat_bytes, stream_ports
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.runtime.layout import GEAR_COUNT_DEPTH, GEAR_LANE_DEPTH, HEAD_FIFO_DEPTH

# (attention lanes, K/V tile, element-wise vector[, GLU vector]) of the vector engines the search may pair
# with the low-bit engines (DesignParams attn_lanes, attn_kv_block, ew_vec, ew_glu_vec: a narrower GLU
# pass, whose SiLU lanes cost most of a wider element-wise engine's LUTs, as the ternary DSE's GLU_VECS;
# absent: 0 = ew_vec; the ternary DSE's defaults last)
VECTOR: tuple[tuple[int, ...], ...] = ((2, 8, 1), (2, 32, 1), (4, 8, 1), (4, 8, 2, 1), (4, 8, 2),
                                       (4, 8, 4, 1), (4, 4, 2, 1), (4, 4, 4, 1), (8, 4, 2), (8, 4, 4, 1),
                                       (8, 8, 2, 1), (8, 8, 4, 1), (8, 16, 2), (8, 16, 4, 1), (16, 32, 4))
# words (128-bit beats) per weight fetcher FIFO the search tries: powers of two up to a URAM's depth, then
# every whole number of URAMs deep up to design.FETCH_DEPTH_RANGE's 65536 (a 128-bit word takes two 72-bit
# URAM columns, so each step of URAM_WORDS costs 2 URAMs a port)
FETCH_DEPTHS = (512, 1024, 2048, *range(URAM_WORDS, FETCH_DEPTH_RANGE[1] + 1, URAM_WORDS))
# The engine's token block MAXT (the design's prefill block): 8, or fewer only where no design of 8 fits
# (halves the accumulators, tables' depth and activation banks; prefill re-streams the weights per block).
MAX_TOKENS = (8, 4, 2)
FETCH_TIE = 0.999  # as the ternary DSE's: a shallower FIFO within 0.1% of the deepest fitting one's decode


def design(board: Board, eng: LowbitEngine, vec: tuple[int, ...] = VECTOR[-1],
           clock_mhz: float | None = None) -> DesignParams:
    """The DesignParams of a low-bit design: the engine's ports and MAXT, its weight FIFOs' depth
    (eng.fetch_depth), the ports' shares of the LM head's rows (eng.head_shares), the vector engines
    (VECTOR's fields), and a one-lane int8 LM head (HEAD_LANE: the
    low-bit path scores one row per OP_HEAD; lanes only pay for a speculative verify's rows, which it does
    not run)."""
    return DesignParams(clock_mhz=clock_mhz or board.pl_clock_mhz, weight_ports=eng.engines * eng.ports,
                        prefill_token_block=eng.max_tokens, attn_lanes=vec[0], attn_kv_block=vec[1],
                        ew_vec=vec[2], ew_glu_vec=vec[3] if len(vec) > 3 else 0, head_lanes=HEAD_LANE,
                        fetch_depth=eng.fetch_depth, port_shares=eng.head_shares,
                        lowbit_gear=eng.gear.active)


def head_resources(cfg: ModelConfig, board: Board, m: LowbitModel, p: DesignParams) -> Resources:
    """The int8 head as the low-bit design builds it (cost/lm_head.resources at P = head_beat_bytes, over
    its weight ports) and its row FIFOs (HEAD_FIFO_DEPTH beats of 8P bits a port, as cost/fetch.py counts
    the ternary designs'); none with m.lowbit_head (the head is one more linear on the engine)."""
    if m.lowbit_head or not p.lm_head_on_fabric:
        return Resources()
    beat = head_beat_bytes(p, "lowbit")
    return (cost_lm_head.resources(cfg, board, p, beat)
            + auto_memory(8 * beat, HEAD_FIFO_DEPTH, stream_ports(board, p)))


def fetch_resources(board: Board, p: DesignParams) -> Resources:
    """The low-bit top's weight fetchers (top.h fetch_program over lowbit_mm_policy::fetch): per weight
    port its program walker and address generator (cost/fetch.py FETCH_WALKER) and its FIFO of fetch_depth
    128-bit words (lb_beat_t) where codegen binds it (cost/fetch.py storage: EDGELLM_FETCH_STORAGE); and
    the weight gearbox's (gear_resources)."""
    n = stream_ports(board, p)
    walker = Resources(lut=n * cost_fetch.FETCH_WALKER[0], ff=n * cost_fetch.FETCH_WALKER[1])
    return (walker + bound_memory(PORT_BITS, p.fetch_depth, n, cost_fetch.storage(board, p))
            + gear_resources(board, p))


# A gearbox lane merge (lowbit_gear.h lb_lane_merge): its 128-bit 2:1 word choice, the pass's beat counter
# and cycle place (32 + 8 bits: an incrementer and a compare each) and the loop control. Estimate.
GEAR_MERGE = Resources(lut=PORT_BITS + 2 * 40 + 60, ff=32 + 8 + 40)
# A donor fetcher's split (lb_fetch_split): the cycle place and the side flag, the two FIFOs' write
# enables. Estimate.
GEAR_SPLIT = Resources(lut=30, ff=12)


def gear_resources(board: Board, p: DesignParams) -> Resources:
    """The weight gearbox (top.h top_region_geared; none without one): the two side FIFOs (the given words
    of fetch_depth beats, bound as the weight FIFOs), the two count FIFOs (kGearCountDepth x 32 bits) and
    merged-lane FIFOs (kGearLaneDepth x 128 bits) in distributed RAM, two lane merges and two splits."""
    g = p.gear
    if not g.active:
        return Resources()
    side = total_of([bound_memory(PORT_BITS, -(-p.fetch_depth * k // g.cycle) + 2, 1,
                                  cost_fetch.storage(board, p)) for k in (g.k1, g.k2)])
    small = auto_memory(32, GEAR_COUNT_DEPTH, 2) + auto_memory(PORT_BITS, GEAR_LANE_DEPTH, 2)
    return side + small + GEAR_MERGE.scaled(2) + GEAR_SPLIT.scaled(2)


def total_resources(cfg: ModelConfig, board: Board, m: LowbitModel, eng: LowbitEngine,
                    vec: tuple[int, ...], p: DesignParams | None = None) -> Resources:
    """The design's resources: engines, element-wise engine, attention, AXI, platform, the weight
    fetchers (fetch_resources) and the LM head (head_resources). p: the design (default design(board,
    eng, vec))."""
    # imported here: estimate imports the cost modules
    from edgellm.compiler.cost import axi as cost_axi
    from edgellm.compiler.cost import resource_model

    p = p or design(board, eng, vec)
    ew, attn = resource_model.vector_kernels(cfg, p)
    return total_of([resources(eng), ew, attn, cost_axi.resources(p), resource_model.PLATFORM,
                     fetch_resources(board, p), head_resources(cfg, board, m, p)])


def limits_of(limits: dict[str, float] | None = None) -> dict[str, float]:
    """The utilization limits a search keeps to: estimate.UTIL_LIMITS (the routing headroom) with `limits`
    in place of its entries (`edgellm estimate --lut-cap`: {"lut": fraction})."""
    from edgellm.compiler.estimate import UTIL_LIMITS  # it imports the cost modules

    return {**UTIL_LIMITS, **(limits or {})}


def fits(cfg: ModelConfig, board: Board, eng: LowbitEngine, vec: tuple[int, ...],
         m: LowbitModel, limits: dict[str, float] | None = None) -> bool:
    """Whether the design's total_resources fit the board under limits_of(limits) (default: the routing
    headroom, estimate.UTIL_LIMITS)."""
    from edgellm.compiler.estimate import fits_board  # it imports the cost modules

    return not fits_board(total_resources(cfg, board, m, eng, vec), board, limits_of(limits))


def project(cfg: ModelConfig, board: Board, m: LowbitModel, eng: LowbitEngine,
            vec: tuple[int, ...], clock_mhz: float | None = None) -> dict[str, float]:
    """Decode tok/s, TTFT(128) seconds and the model's DDR bound (tok/s) of the design (eng, vec)."""
    p = design(board, eng, vec, clock_mhz)
    dec = run_seconds(cfg, board, m, eng, p, 1, p.decode_context)
    pre = run_seconds(cfg, board, m, eng, p, 128, 0)  # TTFT(128)
    return {"decode": 1.0 / sum(dec.values()), "ttft": sum(pre.values()),
            "bound": ddr_bound_tokens_per_s(cfg, board, m, p, eng)}


def _overrun(cfg: ModelConfig, board: Board, m: LowbitModel, eng: LowbitEngine,
             vec: tuple[int, ...], limits: dict[str, float]) -> float:
    """The design's worst resource use over its limit (limits_of's): <= 1 fits."""
    use = total_resources(cfg, board, m, eng, vec).utilization(board)
    return max(use[k] / lim for k, lim in limits.items())


def _deepest(cfg: ModelConfig, board: Board, m: LowbitModel, eng: LowbitEngine, vec: tuple[int, ...],
             depths: tuple[int, ...], limits: dict[str, float]) -> tuple[LowbitEngine, float]:
    """eng at the deepest of `depths` whose design fits (decode never drops with depth), else at the
    shallowest; with that design's overrun (_overrun)."""
    over = 0.0
    for d in sorted(depths, reverse=True):
        q = dataclasses.replace(eng, fetch_depth=d)
        over = _overrun(cfg, board, m, q, vec, limits)
        if over <= 1:
            return q, over
    return q, over


def _knee(cfg: ModelConfig, board: Board, m: LowbitModel, eng: LowbitEngine, vec: tuple[int, ...],
          decode: float, depths: tuple[int, ...], clock_mhz: float | None) -> LowbitEngine:
    """The shallowest of `depths` below eng's whose decode is within FETCH_TIE of `decode` (eng's): deeper
    FIFOs that buy nothing only take memory (the ternary DSE's _fetch_knee)."""
    for d in sorted(x for x in depths if x < eng.fetch_depth):
        q = dataclasses.replace(eng, fetch_depth=d)
        if project(cfg, board, m, q, vec, clock_mhz)["decode"] >= FETCH_TIE * decode:
            return q
    return eng


def search(cfg: ModelConfig, board: Board, m: LowbitModel, engine_counts: tuple[int, ...] = (1, 2, 4),
           depths: tuple[int, ...] = FETCH_DEPTHS, clock_mhz: float | None = None,
           limits: dict[str, float] | None = None, gear: bool = True) -> tuple[LowbitEngine, tuple[int, ...]]:
    """The engines (E x ports per engine), token lanes, record decoders and their scale lanes, and the
    vector engines' size (VECTOR) with the highest decode rate, then the lowest TTFT(128), then the fewest
    engine LUTs, among those whose resources (total_resources: engines, element-wise engine, attention,
    AXI, platform, the weight fetchers, the LM head) fit the board under limits_of(limits) (the routing
    headroom, estimate.UTIL_LIMITS, unless `limits` replaces an entry), in the board's scenario at
    `clock_mhz` (default the board's PL clock). Each candidate takes the deepest weight FIFO of `depths`
    that fits; the winner then the shallowest within FETCH_TIE of its decode (eng.fetch_depth). The engine
    is sized to the model: MAXG its widest group (m.max_group), MAXK its widest input (as lowbit_fields
    generates it), FU the float steps its formats need at the engine's beat (m.float_units), MAXSB its
    widest record (m.max_sb), MING its narrowest group (m.min_group).
    engine_counts: the engine counts E it may choose. EdgeLLMError naming what the smallest candidate
    overruns when none fits."""
    from edgellm.compiler.estimate import fits_board  # it imports the cost modules

    full = limits_of(limits)
    best, least = None, None
    ports = min(4, len(board.hp_port_names))
    shapes = [(e, w) for e in engine_counts for w in (1, 2, 4) if e * w <= ports]
    max_k = model_max_k(cfg)
    head_shares: dict[tuple[int, int], tuple[int, ...]] = {}  # per shape: the ports' rate shares of the head
    for maxt, (e, w), tp, rd, sl, vec in itertools.product(MAX_TOKENS, shapes, (1, 2, 4, 8), (1, 2),
                                                           SEARCH_SCALE_LANES, VECTOR):
        if best is not None and maxt < best[1][0].max_tokens:
            break  # a smaller token block only when no design of the larger one fits
        fu = m.float_units(PORT_BITS * w)
        if tp > maxt or min(fu, max(1, PORT_BITS * w // m.min_group())) % rd:
            continue  # RD decoders need RD float units (decoder k writes the s / m banks b % RD == k)
        eng = LowbitEngine(rows=max(32, 32 * w), max_tokens=maxt, max_group=m.max_group(),
                           token_lanes=tp, engines=e, max_k=max_k, ports=w, record_decoders=rd,
                           scale_lanes=sl, float_units=fu, max_sb=m.max_sb(),
                           min_group=m.min_group(), codecs=m.codecs())
        if (e, w) not in head_shares:  # the ports, their beat (R) and the clock decide them
            head_shares[(e, w)] = rate_shares(board, design(board, eng, vec, clock_mhz))
        # the shares gear where they can (eng.gear: a 4-port engine, KV260 / ZCU104's 9:7:7:9; gear False:
        # the lockstep engine, bench/lowbit_projections.py's reference)
        eng = dataclasses.replace(eng, head_shares=head_shares[(e, w)], geared=gear)
        eng, over = _deepest(cfg, board, m, eng, vec, depths, full)
        if over > 1:
            if least is None or over < least[0]:
                least = (over, eng, fits_board(total_resources(cfg, board, m, eng, vec), board, full))
            continue
        r = project(cfg, board, m, eng, vec, clock_mhz)
        key = (-round(r["decode"], 2), round(r["ttft"], 3), resources(eng).lut)
        if best is None or key < best[0]:
            best = (key, (eng, vec), r["decode"])
    if best is None:
        assert least is not None
        g = least[1]
        raise EdgeLLMError(f"no low-bit engine configuration fits {board.name}: the smallest ({g.ports} "
                           f"port(s), R {g.rows}, {g.record_decoders} decoder(s) of {g.scale_lanes} scale "
                           f"lane(s), with the vector engines, AXI, platform, weight fetchers and LM head) "
                           f"needs {'; '.join(least[2])} "
                           f"({'the limits given' if limits else 'the routing headroom'})")
    (eng, vec), decode = best[1], best[2]
    return _knee(cfg, board, m, eng, vec, decode, depths, clock_mhz), vec
