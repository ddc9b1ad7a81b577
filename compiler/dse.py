"""Design-space exploration: size the accelerator to the board (docs/architecture.md, docs/performance.md).

Objective, in order: maximize projected decode tokens/s (candidates within DECODE_TIE of the best
count as equal), then minimize projected TTFT for a 128-token prompt, then minimize LUT use. The
near-best designs are widened in the prefill-only fields: token lanes (and how many of them are DSP
lanes), the prefill token block and the prefill pipeline, and in the LM head's token lanes
(design.HEAD_LANES: they change neither decode nor TTFT, only resources, so this objective keeps the
fewest that tie). explore(speculate="lookup"|"self") ranks by projected effective decode with
speculative decoding at the measured acceptance instead (compiler/dse_spec.py). Hard
constraints: the board's resources under the routing headroom limits (estimate.UTIL_LIMITS) and the
model's DDR footprint under DDR minus the OS reservation. The weight fetcher's FIFO depth: every
candidate takes the deepest of FETCH_DEPTHS that fits (decode never drops with depth); the near-best
designs then keep the shallowest depth within FETCH_TIE of that decode.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

from edgellm.boards import Board
from edgellm.compiler.cost import ddr as cost_ddr
from edgellm.compiler.cost import elementwise as cost_elementwise
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost import pipe_threshold
from edgellm.compiler.cost import speculative as cost_spec
from edgellm.compiler.cost.memory import KINDS
from edgellm.compiler.design import HEAD_LANES, DesignParams
from edgellm.compiler.design_bytes import check_board_ddr_fit
from edgellm.compiler.dse_points import Point, record, sample_designs
from edgellm.compiler.dse_search import (  # noqa: F401  (the keys: tests and callers read them here too)
    DECODE_FIELDS,
    RES_FIELDS,
    REST_FIELDS,
    Feasible,
    _built,
    _decode_key_of,
    _Search,
    decode_key,
    key_of,
    res_key,
)
from edgellm.compiler.estimate import UTIL_LIMITS, Estimate, estimate
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig

# decode within 1% of the best counts as a tie (then TTFT decides): a difference the model cannot resolve
# (a projection's low-high range spans -18% .. +4% of its central figure); at 0.5% the ZCU104's large
# design took 0.5% more decode for twice the TTFT(128) (64.8 tok/s, 0.706 s against 64.5, 0.324 s). A
# wider tie widens more designs (2%: the ZCU104 search 19 -> 58 s) and trades more decode for TTFT
DECODE_TIE = 0.99
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
# The vector-unit fields candidate_groups explores per group (the element-wise engine's and the attention
# core's), here at placeholder values: a group's design before its vector choices complete it.
VECTOR_FIELDS = dict(ew_vec=1, ew_glu_vec=0, ew_lanes=16, attn_lanes=1, attn_kv_block=8)
OUT_LANES = (1, 2, 4)  # TLMM outputs dequantized per cycle (capped by the data port's fp32 width)
FETCH_TIE = 0.999  # a shallower fetch FIFO within 0.1% of the deepest fitting one's decode is enough


def _port_counts(board: Board) -> list[int]:
    return sorted({board.hp_ports, max(1, board.hp_ports // 2), 1}, reverse=True)


def _memory_candidates(board: Board, base: DesignParams, clock_mhz: float) -> Iterator[dict]:
    kinds = STORAGE if board.uram else tuple(k for k in STORAGE if k != "uram")
    acts = ACT_STORAGE if board.uram else ("bram",)
    # The LM head on the fabric only: the generated top always builds it and the runtime has no host head,
    # so a design with the head on the ARM cores (lm_head_on_fabric False: TeLLMe's, the calibration's)
    # would project what compile does not build.
    for ports, kind, act, lm in itertools.product(_port_counts(board), kinds, acts, (True,)):
        yield dict(weight_ports=ports, port_width_bits=board.hp_port_width_bits,
                   data_port_width_bits=board.hp_port_width_bits, weight_buffer=kind, act_buffer=act,
                   lm_head_on_fabric=lm, prefill_token_block=PREFILL_TOKEN_BLOCKS[0],
                   head_lanes=HEAD_LANES[0],  # the fewest: the widened variants add more
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
                    ew_lanes=max(16, cost_elementwise.ADD_LATENCY * vec))
               for a, kvb, (vec, gv) in itertools.product(ATTN_LANES, ATTN_KV_BLOCKS, _ew_widths(cfg))]
    for g, t, r, ol in itertools.product(GROUP_SIZES, TABLES, ROWS, _out_lanes(board, base)):
        for mem in _memory_candidates(board, base, float(clock_mhz or board.pl_clock_mhz)):
            d = base.replace(group_size=g, tables=t, rows=r, token_lanes=1, out_lanes=ol, **mem,
                             **VECTOR_FIELDS)
            # the weight ports' shares of a tile in proportion to their rates (a shared DDR path's two
            # ports carry fewer columns): cost/ddr.py rate_shares
            yield d.replace(port_shares=cost_ddr.rate_shares(board, d)), vectors


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
    speculate: str | None = None  # the speculation objective's drafter (None: plain decode, then TTFT)
    spec: tuple[tuple[float, float, DesignParams], ...] = ()  # its (speculative tok/s, decode, design), best

    def record(self) -> dict:
        """The explored designs as JSON (report/estimate.json "dse"; dse_points.record), with the objective
        ("decode", or the speculation objective's drafter and its projected figure for the chosen design)."""
        rec = record(self.params, self.feasible, self.explored, TTFT_TOKENS, self.scored, self.sample)
        rec["objective"] = f"speculate {self.speculate}" if self.speculate else "decode"
        if self.spec:
            rec["speculative_tok_s"] = round(self.spec[0][0], 2)
        return rec


def check_clock_and_limits(clock_mhz: float | None, limits: dict[str, float] | None) -> None:
    """A design search's clock (MHz in (0, 1000]; None: the board's) and utilization limits (fractions in
    (0, 1] of resource kinds), as explore and the low-bit search (lowbit_estimate.estimate) take them."""
    if clock_mhz is not None and (isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float))
                                  or not 0 < clock_mhz <= 1000):
        raise EdgeLLMError(f"clock must be a number of MHz in (0, 1000], got {clock_mhz!r}")
    for k, v in (limits or {}).items():
        if k not in KINDS or isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise EdgeLLMError(f"utilization limit {k!r} must be a fraction in (0, 1], got {v!r}")


def explore(cfg: ModelConfig, board: Board, base: DesignParams | None = None,
            limits: dict[str, float] = UTIL_LIMITS, clock_mhz: float | None = None,
            speculate: str | None = None) -> DseResult:
    """Choose the best feasible design for `cfg` on `board` at `clock_mhz` (default: the board's PL
    clock) under the utilization `limits` (default UTIL_LIMITS: a LUT cap that leaves routing margin);
    EdgeLLMError if none exists. speculate "lookup" or "self": rank by projected effective decode with
    that drafter at its measured acceptance (compiler/dse_spec.py); None or "off": plain decode, then
    TTFT. Memoized per (model, board, base, limits, clock, objective) within the process: the search is
    deterministic."""
    if speculate == "off":
        speculate = None
    if speculate not in (None, "lookup", "self"):
        raise EdgeLLMError(f"unknown speculation objective {speculate!r}; choose off, lookup or self")
    check_clock_and_limits(clock_mhz, limits)
    full = {**UTIL_LIMITS, **limits}
    run = cost_spec.objective_run(speculate) if speculate else None
    return _explore(cfg, board, base or DesignParams(), tuple(sorted(full.items())),
                    float(clock_mhz) if clock_mhz is not None else None, speculate,
                    _frozen(run) if run else None)


def _frozen(run: dict) -> tuple:
    """A measured run as a hashable key (the memo's), k_counts and pass_steps included."""
    def frozen(v: object) -> object:
        return (tuple(sorted(v.items())) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v)
    return tuple(sorted((k, frozen(v)) for k, v in run.items()))


def _thawed(run: tuple | None) -> dict:
    """_frozen's inverse (k_counts a dict again)."""
    out = dict(run or ())
    out["k_counts"] = dict(out.get("k_counts", ()))
    return out


def _consider(s: _Search, p: DesignParams, feasible: list[Feasible]) -> None:
    """Add p at the deepest fetch depth that fits (decode never drops with depth)."""
    s.explored += 1
    key = res_key(p)
    for d in s.depths:
        if s.violations(p, key, d):
            continue
        q = p if d == p.fetch_depth else p.replace(fetch_depth=d)
        feasible.append((s.decode_of(q, decode_key(q)), s.res_cache[key][2], q))
        return


def _feasible(s: _Search, base: DesignParams, clock_mhz: float | None) -> list[Feasible]:
    """Every candidate of candidate_groups that fits, at the deepest fetch depth that fits. The generated
    engine's groups take the fast path (quick_fit; the design is built only when its decode is first
    needed); the smallest misfit is checked through violations() for its reasons."""
    feasible: list[Feasible] = []
    for rest, vectors in candidate_groups(s.cfg, s.board, base, clock_mhz):
        if not rest.overlap:  # the fast path's vector kernels are the generated engine's
            for v in vectors:
                _consider(s, rest.replace(**v), feasible)
            continue
        for v in vectors:
            d, lut = s.quick_fit(rest, v)
            if d:
                s.explored += 1
                feasible.append((s.decode_of((rest, v, d), _decode_key_of(rest, v, d)), lut, (rest, v, d)))
            elif s.smaller_misfit(lut):  # the smallest misfit's reasons are reported
                _consider(s, rest.replace(**v), feasible)
            else:
                s.explored += 1
    return feasible


def _fetch_knee(s: _Search, p: DesignParams, decode: float) -> tuple[float, DesignParams]:
    """The shallowest fitting fetch depth whose decode is within FETCH_TIE of `decode` (p's, at the
    deepest fitting depth): deeper FIFOs that buy nothing only take memory."""
    for d in sorted(x for x in FETCH_DEPTHS if x < p.fetch_depth):
        q = p.replace(fetch_depth=d)
        if s.fits(q):
            dec = cost_model.decode_step(s.cfg, s.board, q).tokens_per_s
            if dec >= FETCH_TIE * decode:
                return dec, q
    return decode, p


def _near_best(s: _Search, feasible: list[Feasible]) -> tuple[list[tuple[float, float, DesignParams, bool]],
                                                            float]:
    """The designs to score on TTFT: the near-best ones (decode within DECODE_TIE of the best), each at the
    fetch depth it needs (_fetch_knee) and to be widened in the prefill-only fields, and the others
    that come within the tie of the best decode after that; with the best decode."""
    best = max(f[0] for f in feasible)
    near = [(dec, lut, _built(q)) for dec, lut, q in feasible if dec >= DECODE_TIE * best]
    others = [f for f in feasible if f[0] < DECODE_TIE * best]
    kneed = [(*_fetch_knee(s, p, dec), lut) for dec, lut, p in near]
    best_decode = max([dec for dec, _, _ in kneed] + [f[0] for f in others])
    base = [(dec, lut, p, True) for dec, p, lut in kneed if dec >= DECODE_TIE * best_decode]
    base += [(dec, lut, _built(q), False) for dec, lut, q in others if dec >= DECODE_TIE * best_decode]
    return base, best_decode


def _widened(s: _Search, p: DesignParams) -> Iterator[tuple[DesignParams, float, float]]:
    """p's variants in token lanes (of them 0 .. TP-1 DSP lanes), prefill block, pipeline and head lanes
    that fit (at p's fetch depth), with their LUT fractions and projected decode."""
    fields = (PREFILL_TOKEN_BLOCKS, TOKEN_LANES, PREFILL_PIPELINE, HEAD_LANES)
    for pb, tp, pipe, hl in itertools.product(*fields):
        for dl in range(tp) if pb % tp == 0 else ():
            q = p.replace(prefill_token_block=pb, token_lanes=tp, dsp_lanes=dl, prefill_pipeline=pipe,
                          head_lanes=hl)
            if q == p:
                continue
            s.explored += 1
            key = res_key(q)
            if not s.violations(q, key, q.fetch_depth):
                yield q, s.res_cache[key][2], s.decode_of(q, decode_key(q))


def _score(s: _Search, base: list[tuple[float, float, DesignParams, bool]],
           best_decode: float) -> tuple[list[tuple[float, float, float, DesignParams]], int]:
    """(TTFT, LUT fraction, -decode, design) of the base designs and their widened variants within the tie
    of the best decode, best first; and how many widened variants fit. Scored in order of the TTFT
    floor: a design (with all its variants) whose floor exceeds the best TTFT found cannot win, nor
    can any after it: branch and bound, exact."""
    base = sorted(base, key=lambda b: s.floor_s(b[2]))
    scored: list[tuple[float, float, float, DesignParams]] = []
    best_t, widened_fit = math.inf, 0
    for dec, lut, p, widen in base:
        if s.floor_s(p) > best_t:
            break
        variants = list(_widened(s, p)) if widen else []
        widened_fit += len(variants)
        for q, qlut, qdec in [(p, lut, dec), *variants]:
            if qdec < DECODE_TIE * best_decode:  # DSP lanes that cost decode beyond the tie
                continue
            q = _ranked_threshold(s, q)
            t = s.ttft_s(q)
            best_t = min(best_t, t)
            scored.append((t, qlut, -qdec, q))
    scored.sort(key=lambda x: x[:3])
    if scored:  # the chosen design with its own threshold (the same TTFT: _ranked_threshold)
        t, lut, nd, q = scored[0]
        exact = pipe_threshold.pipe_min_tokens_for(s.cfg, s.board, q)
        scored[0] = (t, lut, nd, q.replace(pipe_min_tokens=exact))
    return scored, widened_fit


def _ranked_threshold(s: _Search, q: DesignParams) -> DesignParams:
    """q as _score ranks it: with the prefill pipeline, TTFT(TTFT_TOKENS) is whole blocks of
    prefill_token_block tokens, which run the halves under q's own pipe_min_tokens whenever the halves pay
    at that block (one check, pipe_threshold.halves_pay): q's TTFT is then pipe_min_tokens 2's; otherwise the
    threshold itself (pipe_threshold.pipe_min_tokens_for's scan)."""
    pb = q.prefill_token_block
    if not q.prefill_pipeline or (TTFT_TOKENS % pb == 0 and pipe_threshold.halves_pay(s.cfg, s.board, q, pb)):
        return q
    return q.replace(pipe_min_tokens=pipe_threshold.pipe_min_tokens_for(s.cfg, s.board, q))


@functools.lru_cache(maxsize=64)
def _explore(cfg: ModelConfig, board: Board, base: DesignParams, limit_items: tuple,
             clock_mhz: float | None, speculate: str | None = None, run: tuple | None = None) -> DseResult:
    check_board_ddr_fit(cfg, base, board)
    s = _Search(cfg, board, dict(limit_items), FETCH_DEPTHS, TTFT_TOKENS, PREFILL_TOKEN_BLOCKS)
    feasible = _feasible(s, base, clock_mhz)
    if not feasible:
        why = "; ".join(s.smallest[1]) if s.smallest else "no candidates"
        raise EdgeLLMError(f"no accelerator configuration for {cfg.name} fits {board.name} within the "
                           f"routing headroom ({why})")
    sample = sample_designs(cfg, board, feasible, _built, TTFT_TOKENS)
    if speculate:
        from edgellm.compiler.dse_spec import SpecSearch

        points, widened_fit = SpecSearch(s, _thawed(run), PREFILL_TOKEN_BLOCKS, PREFILL_PIPELINE
                                         ).search(feasible)
        if not points or not points[0][0]:
            raise EdgeLLMError(f"no feasible design for {cfg.name} on {board.name} takes the measured "
                               f"{speculate} run's verify calls")
        chosen = points[0][3]
        return DseResult(chosen, estimate(cfg, board, chosen), len(feasible) + widened_fit, s.explored,
                         tuple((d, s.ttft_s(q), q) for _, d, _, q in points), sample, board, speculate,
                         tuple((sp, d, q) for sp, d, _, q in points))
    scored, widened_fit = _score(s, *_near_best(s, feasible))
    chosen = scored[0][3]
    return DseResult(chosen, estimate(cfg, board, chosen), len(feasible) + widened_fit, s.explored,
                     tuple((-nd, t, q) for t, _, nd, q in scored), sample, board)
