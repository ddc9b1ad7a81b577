"""Design-space exploration: size the accelerator to the board (DESIGN.md section 4).

Objective, in order: maximize projected decode tokens/s (candidates within DECODE_TIE of the best
count as equal), then minimize projected TTFT for a 128-token prompt, then minimize LUT use. Hard
constraints: the board's resources under the routing headroom limits (estimate.UTIL_LIMITS) and the
model's DDR footprint under DDR minus the OS reservation.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from edgellm.boards import Board
from edgellm.compiler import perf_model
from edgellm.compiler.design import DesignParams, check_ddr_fit
from edgellm.compiler.estimate import UTIL_LIMITS, Estimate, estimate, fits_board
from edgellm.compiler.perf_elementwise import ADD_LATENCY
from edgellm.compiler.resource_model import estimate_resources
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
TOKEN_LANES = (1, 2, 4)  # TLMM tokens per step (prefill throughput)
EW_VECS = (1, 2, 4, 8)  # element-wise elements per cycle (norm lanes: enough for VEC adders, LaneUnits)
STORAGE = ("uram", "bram", "lutram")  # weight buffer kind (uram only where the board has URAM)
ACT_STORAGE = ("bram", "uram")  # activation buffers (uram only where the board has URAM)
ATTN_KV_BLOCKS = (8, 32)  # keys per K/V tile (NumericsPlan.kv_block): tile buffers vs per-tile overhead


def _port_counts(board: Board) -> list[int]:
    return sorted({board.hp_ports, max(1, board.hp_ports // 2), 1}, reverse=True)


def _memory_candidates(board: Board, base: DesignParams) -> Iterator[dict]:
    kinds = STORAGE if board.uram else tuple(k for k in STORAGE if k != "uram")
    acts = ACT_STORAGE if board.uram else ("bram",)
    for ports, kind, act, lm in itertools.product(_port_counts(board), kinds, acts, (True, False)):
        yield dict(weight_ports=ports, port_width_bits=board.hp_port_width_bits,
                   data_port_width_bits=board.hp_port_width_bits, weight_buffer=kind, act_buffer=act,
                   lm_head_on_fabric=lm, prefill_token_block=PREFILL_TOKEN_BLOCKS[0],
                   clock_mhz=float(board.pl_clock_mhz))  # no timing model: the board's PL clock


def candidates(board: Board, base: DesignParams) -> Iterator[DesignParams]:
    """Every candidate configuration for a board with one token lane and the smallest prefill block
    (fields not explored are taken from `base`); explore() widens the near-best ones in both."""
    out_lanes = max(1, min(base.out_lanes, board.hp_port_width_bits // 32))  # fp32 outputs per data beat
    for g, t, r, lanes, kvb, vec in itertools.product(GROUP_SIZES, TABLES, ROWS, ATTN_LANES, ATTN_KV_BLOCKS,
                                                      EW_VECS):
        for mem in _memory_candidates(board, base):
            yield base.replace(group_size=g, tables=t, rows=r, attn_lanes=lanes, attn_kv_block=kvb,
                               token_lanes=1, ew_vec=vec, ew_lanes=max(16, ADD_LATENCY * vec),
                               out_lanes=out_lanes, **mem)


@dataclass(frozen=True)
class DseResult:
    """The chosen design, its estimate and how many candidates were feasible out of how many."""

    params: DesignParams
    estimate: Estimate
    feasible: int
    explored: int


def explore(cfg: ModelConfig, board: Board, base: DesignParams | None = None,
            limits: dict[str, float] = UTIL_LIMITS) -> DseResult:
    """Choose the best feasible design for `cfg` on `board`; EdgeLLMError if none exists. Results are
    memoized per (model, board, base, limits) within the process: the search is deterministic."""
    return _explore(cfg, board, base or DesignParams(), tuple(sorted(limits.items())))


@functools.lru_cache(maxsize=64)
def _explore(cfg: ModelConfig, board: Board, base: DesignParams, limit_items: tuple) -> DseResult:
    limits = dict(limit_items)
    check_ddr_fit(cfg, base, board.ddr_available_bytes,
                  f"{board.name} ({board.ddr_bytes / 2**20:.0f} MiB DDR)")
    feasible: list[tuple[float, float, DesignParams]] = []
    explored = 0
    smallest: tuple[float, list[str]] | None = None
    res_cache: dict[tuple, tuple[list[str], float]] = {}  # resource key -> (violations, LUT fraction)
    decode_cache: dict[DesignParams, float] = {}  # decode does not depend on the prefill token block

    def consider(p: DesignParams) -> None:
        nonlocal explored, smallest
        explored += 1
        key = (p.group_size, p.tables, p.rows, p.attn_lanes, p.attn_kv_block, p.weight_ports, p.weight_buffer,
               p.act_buffer, p.lm_head_on_fabric, p.prefill_token_block, p.token_lanes, p.ew_vec)
        if key not in res_cache:
            total = estimate_resources(cfg, board, p)["total"]
            res_cache[key] = (fits_board(total, board, limits), total.utilization(board)["lut"])
            why, lut = res_cache[key]
            if why and (smallest is None or lut < smallest[0]):
                smallest = (lut, why)
        why, lut = res_cache[key]
        if why:
            return
        dkey = p.replace(prefill_token_block=p.token_lanes)
        if dkey not in decode_cache:
            decode_cache[dkey] = perf_model.decode_step(cfg, board, p).tokens_per_s
        feasible.append((decode_cache[dkey], lut, p))

    for p in candidates(board, base):
        consider(p)
    if feasible:  # token lanes and larger prefill blocks only speed up prefill: widen the near-best designs
        best = max(f[0] for f in feasible)
        for _, _, p in [f for f in feasible if f[0] >= DECODE_TIE * best]:
            for pb, tp in itertools.product(PREFILL_TOKEN_BLOCKS, TOKEN_LANES):
                if (pb, tp) != (p.prefill_token_block, p.token_lanes) and pb % tp == 0:
                    consider(p.replace(prefill_token_block=pb, token_lanes=tp))
    if not feasible:
        why = "; ".join(smallest[1]) if smallest else "no candidates"
        raise EdgeLLMError(f"no accelerator configuration for {cfg.name} fits {board.name} within the "
                           f"routing headroom ({why})")
    best_decode = max(f[0] for f in feasible)
    near = [f for f in feasible if f[0] >= DECODE_TIE * best_decode]
    scored = [(perf_model.prefill(cfg, board, p, TTFT_TOKENS).seconds, lut, -dec, p) for dec, lut, p in near]
    scored.sort(key=lambda s: s[:3])
    chosen = scored[0][3]
    return DseResult(chosen, estimate(cfg, board, chosen), len(feasible), explored)
