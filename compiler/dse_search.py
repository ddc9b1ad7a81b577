"""The design-space exploration's state (compiler/dse.py): its cache keys, derived from the design fields
each cost model declares it reads (resource_model.ENTRY_FIELDS, FIFO_FIELDS, cost_model.PERF_FIELDS;
tests/test_cost_fields.py fails on a read outside a model's list), and _Search: the fit checks (a fast
exact path that builds no DesignParams) and the projections, each cached by those keys.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable

from edgellm.boards import Board
from edgellm.compiler.cost import attention as cost_attention
from edgellm.compiler.cost import elementwise as cost_elementwise
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost.memory import KINDS, Resources, total_of
from edgellm.compiler.cost.resource_model import (
    ENTRY_FIELDS,
    FIFO_FIELDS,
    estimate_resources,
    fetch_fifos,
    vector_kernels,
)
from edgellm.compiler.design import DesignParams
from edgellm.compiler.estimate import fits_board
from edgellm.models.config import ModelConfig

LOGIC = ("lut", "ff", "dsp")  # resources the fetch FIFO depth does not change (BRAM/URAM FIFOs in the DSE)


# --- Cache keys: the fields each model reads, as the models declare them (resource_model.ENTRY_FIELDS,
# FIFO_FIELDS, cost_model.PERF_FIELDS; tests/test_cost_fields.py fails when a model reads a field outside
# its list). A key is the design's values of those fields; the board, model and limits are fixed within one
# exploration.
def _union(*lists: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(f for fields in lists for f in fields))


_VECTOR_ENTRIES = ("elementwise", "attention")
# every kernel but the element-wise engine and the attention core, with the weight FIFOs (subtracted)
REST_FIELDS = _union(*(v for k, v in ENTRY_FIELDS.items() if k not in _VECTOR_ENTRIES), FIFO_FIELDS)
# every kernel but the weight FIFOs, whose depth violations() takes separately
RES_FIELDS = tuple(f for f in _union(*ENTRY_FIELDS.values()) if f != "fetch_depth")
FIFO_KEY_FIELDS = tuple(f for f in FIFO_FIELDS if f != "fetch_depth")
# what decode_step and prefill read (the TTFT cache and the prefill floor read no other field)
DECODE_FIELDS = cost_model.PERF_FIELDS


@functools.cache
def _getter(fields: tuple[str, ...]) -> Callable[[dict], tuple]:
    get = operator.itemgetter(*fields)
    return get if len(fields) > 1 else lambda d: (get(d),)


def key_of(fields: tuple[str, ...], p: DesignParams, v: dict | None = None) -> tuple:
    """p's values of `fields`, those in `v` taken from v (p.replace(**v)'s key without building it)."""
    return _getter(fields)({**vars(p), **v} if v else vars(p))


def decode_key(p: DesignParams) -> tuple:
    """p's DECODE_FIELDS."""
    return key_of(DECODE_FIELDS, p)


def _decode_key_of(rest: DesignParams, v: dict, depth: int) -> tuple:
    """decode_key(rest.replace(**v, fetch_depth=depth)) without building it."""
    return key_of(DECODE_FIELDS, rest, {**v, "fetch_depth": depth})


def _built(q: DesignParams | tuple) -> DesignParams:
    """A feasible entry's design: built, or (rest, vector fields, fetch depth) from the fast path."""
    return q if isinstance(q, DesignParams) else q[0].replace(**q[1], fetch_depth=q[2])


# (decode tok/s, LUT fraction, design or the fast path's (rest, vector fields, fetch depth): _built)
Feasible = tuple[float, float, "DesignParams | tuple"]


class _Search:
    """One exploration's fit checks and projections, each cached by the fields its model reads."""

    def __init__(self, cfg: ModelConfig, board: Board, limits: dict[str, float],
                 fetch_depths: tuple[int, ...], ttft_tokens: int, prefill_blocks: tuple[int, ...]) -> None:
        self.cfg, self.board, self.limits = cfg, board, limits
        self.depths = sorted(fetch_depths, reverse=True)
        self.ttft_tokens, self.prefill_blocks = ttft_tokens, prefill_blocks
        # as fits_board counts
        self.mem_limit = (limits["bram36"] * board.bram36, limits["uram"] * board.uram)
        self.explored = 0
        self.smallest: tuple[float, list[str]] | None = None  # the smallest misfit: (LUT fraction, reasons)
        # RES_FIELDS key -> (every kernel but the weight FIFOs; its violations if LUT/FF/DSP fail; LUT
        # fraction)
        self.res_cache: dict[tuple, tuple[Resources, list[str], float]] = {}
        # REST_FIELDS key -> (the kernels but the element-wise engine and attention core, in
        # estimate_resources' order; minus the design's weight FIFOs)
        self.rest_cache: dict[tuple, tuple[list[Resources], Resources]] = {}
        self.fifo_cache: dict[tuple, Resources] = {}  # (FIFO_KEY_FIELDS..., depth) -> fetch_fifos
        self.decode_cache: dict[tuple, float] = {}  # decode_key -> decode tokens/s
        self.ttft: dict[tuple, float] = {}  # decode_key -> TTFT(ttft_tokens)
        self.floors: dict[tuple, float] = {}  # decode_key -> prefill floor over the explored blocks

    # --- resources ---------------------------------------------------------------------------------
    def rest_kernels(self, p: DesignParams, v: dict | None = None) -> tuple[list[Resources], Resources]:
        """The kernels but the vector ones of p (completed by v), cached by REST_FIELDS."""
        key = key_of(REST_FIELDS, p, v)
        if key not in self.rest_cache:
            q = p.replace(**v) if v else p
            parts = estimate_resources(self.cfg, self.board, q)
            others = [r for k, r in parts.items() if k not in (*_VECTOR_ENTRIES, "total")]
            self.rest_cache[key] = (others, fetch_fifos(self.board, q).scaled(-1))
        return self.rest_cache[key]

    def core_of(self, others: list[Resources], minus_fifo: Resources, ew: Resources,
                at: Resources) -> tuple[Resources, float]:
        """(every kernel but the weight FIFOs, rounded; the total LUT fraction): total_of's sums in
        estimate_resources' order (tlmm, elementwise, attention, the others), without its objects."""
        seq = [others[0], ew, at, *others[1:]]
        raw = [sum(getattr(r, k) for r in seq) for k in KINDS]
        core = Resources(*(x + getattr(minus_fifo, k) for x, k in zip(raw, KINDS, strict=True))).rounded()
        return core, math.ceil(raw[0]) / self.board.lut

    def logic_fits(self, core: Resources) -> bool:
        util = core.utilization(self.board)
        return all(util[k] <= self.limits[k] for k in LOGIC)

    def memory_fits(self, core: Resources, fifo: Resources) -> bool:
        bram, uram = math.ceil((core.bram36 + fifo.bram36) * 2) / 2, core.uram + fifo.uram
        return bram <= self.mem_limit[0] and uram <= self.mem_limit[1]

    def fifo_at(self, p: DesignParams, depth: int, v: dict | None = None,
                base: tuple | None = None) -> Resources:
        """fetch_fifos(board, p completed by v, depth), cached by FIFO_FIELDS (base: p's FIFO_KEY_FIELDS
        key when the caller has it)."""
        fkey = (*(base if base is not None else key_of(FIFO_KEY_FIELDS, p, v)), depth)
        if fkey not in self.fifo_cache:
            self.fifo_cache[fkey] = fetch_fifos(self.board, p.replace(**v) if v else p, depth)
        return self.fifo_cache[fkey]

    def note_misfit(self, lut: float, reasons: list[str]) -> None:
        if self.smallest is None or lut < self.smallest[0]:
            self.smallest = (lut, reasons)

    def smaller_misfit(self, lut: float) -> bool:
        return self.smallest is None or lut < self.smallest[0]

    def violations(self, p: DesignParams, key: tuple, depth: int) -> list[str]:
        """Why p with weight FIFOs of `depth` words does not fit (empty: it fits); key: res_key(p)."""
        if key not in self.res_cache:
            core, lut = self.core_of(*self.rest_kernels(p), *vector_kernels(self.cfg, p))
            logic = [] if self.logic_fits(core) else fits_board(core, self.board, self.limits)
            self.res_cache[key] = (core, logic, lut)
        core, logic, lut = self.res_cache[key]
        out = logic  # a logic violation: no FIFO depth can help
        if not logic:
            fifo = self.fifo_at(p, depth)
            if self.memory_fits(core, fifo):
                return []
            out = ["bram36/uram"]  # the reasons are spelled out only for the smallest misfit
            if self.smaller_misfit(lut):
                out = fits_board(total_of([core, fifo]), self.board, self.limits)
        self.note_misfit(lut, out)
        return out

    def fits(self, p: DesignParams) -> bool:
        return not self.violations(p, res_key(p), p.fetch_depth)

    def quick_fit(self, rest: DesignParams, v: dict) -> tuple[int, float]:
        """(the deepest fetch depth at which rest completed by v fits, 0 if none; its total LUT fraction)
        exactly as consider() / violations() decide it (same kernels, same summation order, same
        rounding), without building the DesignParams (the generated engine's vector kernels)."""
        cfg = self.cfg
        ew = cost_elementwise.engine_resources(cfg, v["ew_vec"], v["ew_lanes"], rest.act_buffer,
                                               v["ew_glu_vec"])
        at = cost_attention.core_resources(cfg, cost_attention.lanes_for(cfg, v["attn_lanes"]),
                                           rest.attn_q_block, v["attn_kv_block"])
        core, lut = self.core_of(*self.rest_kernels(rest, v), ew, at)
        if self.logic_fits(core):
            base = key_of(FIFO_KEY_FIELDS, rest, v)
            for d in self.depths:  # deepest first (a deeper FIFO may move from BRAM to URAM)
                if self.memory_fits(core, self.fifo_at(rest, d, v, base)):
                    return d, lut
        return 0, lut

    # --- projections -------------------------------------------------------------------------------
    def decode_of(self, q: DesignParams | tuple, dkey: tuple) -> float:
        """Projected decode tok/s of q (a design, or the fast path's tuple: _built), whose decode_key is
        dkey; the design is built only on a cache miss."""
        if dkey not in self.decode_cache:
            self.decode_cache[dkey] = cost_model.decode_step(self.cfg, self.board, _built(q)).tokens_per_s
        return self.decode_cache[dkey]

    def ttft_s(self, p: DesignParams) -> float:
        key = decode_key(p)
        if key not in self.ttft:
            self.ttft[key] = cost_model.prefill(self.cfg, self.board, p, self.ttft_tokens).seconds
        return self.ttft[key]

    def floor_s(self, p: DesignParams) -> float:
        """cost_model.prefill_floor over the blocks p and its widened variants can take."""
        key = decode_key(p)
        if key not in self.floors:
            blocks = tuple(sorted({p.prefill_token_block, *self.prefill_blocks}))
            self.floors[key] = cost_model.prefill_floor(self.cfg, self.board, p, self.ttft_tokens, blocks)
        return self.floors[key]


def res_key(p: DesignParams) -> tuple:
    """p's RES_FIELDS (violations() takes the fetch depth separately)."""
    return key_of(RES_FIELDS, p)
