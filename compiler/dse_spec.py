"""The design-space exploration's speculation objective (`edgellm estimate --speculate lookup|self`,
compiler/dse.py explore(speculate=...)): rank the feasible designs by projected effective decode with
speculative decoding at the measured acceptance, not by plain decode.

The figure ranked is the one `edgellm estimate` prints for the drafter's copy-heavy greedy run of the
shipped tiny model (compiler/cost/speculative_acceptance.json, bench/speculative_acceptance.py): the run's
plain passes and verify passes by k, each at the projected seconds of its call on the design
(cost_speculative.run_tokens_per_s, the extra rows' attention added in full). Widened beyond the plain
search's prefill fields: more TLMM token lanes (SPEC_TOKEN_LANES), their DSP lanes and the LM head's token
lanes (design.HEAD_LANES), which shorten a verify call's rows.

Search: the feasible designs (plain search's set) in order of their ceiling (cost_spec.run_ceiling: a
verify call costs at least a decode step plus its rows' attention over the cache, and no widened variant
decodes faster than its base), widened best variant first; a design whose ceiling is below the best
speculative figure found cannot win, nor any after it, and within a design a variant below it neither
(exact bounds; only those that could win are checked for fit). Of designs with the same performance fields
(cost_model.PERF_FIELDS) only the one with the fewest LUTs is widened (a heuristic: the variants add LUTs
and DSPs to it). Ties (within SPEC_TIE): plain decode, then TTFT(128), then LUTs.
"""

from __future__ import annotations

import itertools

from edgellm.compiler.cost import pipe_threshold
from edgellm.compiler.cost import speculative as cost_spec
from edgellm.compiler.design import HEAD_LANES, DesignParams
from edgellm.compiler.dse_search import Feasible, _built, _Search, decode_key, res_key

SPEC_TIE = 0.995  # speculative figures within 0.5% of the best tie (then plain decode, TTFT, LUTs decide)
SPEC_TOKEN_LANES = (1, 2, 4, 8)  # TLMM token lanes the speculation objective explores (plain: 1, 2, 4)
SPEC_SCORED = 50  # designs the result keeps for --top (best first)
SpecPoint = tuple[float, float, float, DesignParams]  # (speculative tok/s, decode tok/s, LUT share, design)


class SpecSearch:
    """One speculation-ranked exploration over a _Search's caches, for one measured run."""

    def __init__(self, s: _Search, run: dict, blocks: tuple[int, ...], pipelines: tuple[bool, ...]) -> None:
        self.s, self.run = s, run
        self.blocks, self.pipelines = blocks, pipelines
        self.cache: dict[tuple, float] = {}  # (decode_key, head_lanes) -> speculative tok/s
        self.tpp = cost_spec.run_tokens_per_pass(run)

    def score(self, p: DesignParams) -> float:
        """Projected effective decode of the run on p (0 when the run's k does not fit p's block)."""
        key = (decode_key(p), p.head_lanes)
        if key not in self.cache:
            self.cache[key] = cost_spec.run_tokens_per_s(self.s.cfg, self.s.board, p, self.run)
        return self.cache[key]

    def variants(self, p: DesignParams) -> list[tuple[float, DesignParams]]:
        """p's variants in prefill block, token lanes (of them 0 .. TP-1 on DSPs), pipeline and head lanes
        (at p's fetch depth; fitting or not), with their speculative figures, best first."""
        out = []
        for pb, tp, pipe, hl in itertools.product(self.blocks, SPEC_TOKEN_LANES, self.pipelines, HEAD_LANES):
            for dl in range(tp) if pb % tp == 0 else ():
                q = p.replace(prefill_token_block=pb, token_lanes=tp, dsp_lanes=dl, prefill_pipeline=pipe,
                              head_lanes=hl)
                q = q.replace(pipe_min_tokens=pipe_threshold.pipe_min_tokens_for(self.s.cfg, self.s.board, q))
                out.append((self.score(q), q))
        return sorted(out, key=lambda v: -v[0])

    def search(self, feasible: list[Feasible]) -> tuple[list[SpecPoint], int]:
        """(the scored designs, best first; how many widened variants were checked and fit)."""
        firsts: dict[tuple, tuple[float, float, DesignParams | tuple]] = {}
        for dec, lut, q in feasible:  # per performance key, the fewest LUTs
            k = decode_key(_built(q))
            if k not in firsts or lut < firsts[k][1]:
                firsts[k] = (dec, lut, q)
        bases = [_built(q) for _, _, q in firsts.values()]
        ceilings = sorted(((cost_spec.run_ceiling(self.s.cfg, self.s.board, p, self.run), p) for p in bases),
                          key=lambda c: -c[0])
        best, fit = 0.0, 0
        points: list[SpecPoint] = []
        for ceiling, p in ceilings:
            if ceiling < SPEC_TIE * best:  # no variant of this design or any after it can win
                break
            for sp, v in self.variants(p):
                if sp < SPEC_TIE * best:  # the rest of p's variants cannot tie either
                    break
                self.s.explored += 1
                key = res_key(v)
                if self.s.violations(v, key, v.fetch_depth):
                    continue
                fit += 1
                best = max(best, sp)
                points.append((sp, self.s.decode_of(v, decode_key(v)), self.s.res_cache[key][2], v))
        tied = [pt for pt in points if pt[0] >= SPEC_TIE * best]
        rest = sorted((pt for pt in points if pt[0] < SPEC_TIE * best), key=lambda pt: (-pt[0], pt[2]))
        tied.sort(key=lambda pt: (-pt[1], self.s.ttft_s(pt[3]), pt[2]))
        return (tied + rest)[:SPEC_SCORED], fit
