"""Lossless speculative decoding over any backend-like engine (numpy only; runs on the board too).

One verify pass feeds the pending token and k drafted tokens at the current position, as prefill
feeds a block, and reads every row's next-token distribution; the longest prefix of drafts the
target agrees with is accepted, plus one token the target picks itself (the bonus), so a pass gives
1 .. k+1 tokens for one pass over the weights. The backend then moves back over the rejected rows
(`rewind`): their KV-cache rows stay in memory but are never read, since attention reads positions
below the query only and every call writes its own rows' K/V before its attention reads them (the
next call starts at the first rejected position and overwrites it; docs/runtime.md).

Acceptance:
- greedy, and sampling with a deterministic drafter (prompt lookup): row by row, the sampler picks
  the token plain decode would pick from that row (Sampler.next: filtered_probs, repetition penalty
  included, and one draw of the sampler's own generator per token, as plain decode draws); drafts are
  accepted while they equal those picks. The output is identical token for token to plain decode,
  greedy or with the same seed (the numerics contract gives every row the same bits whether it runs
  in a block or alone, tests/test_speculative.py checks it). For a one-hot q this is the rule below:
  a draft x is accepted with probability p(x), and on rejection the token is p's draw given it is not
  x, i.e. norm(max(0, p - onehot(x)));
- sampling with a drafter that samples its drafts from q (self-speculation): the speculative-sampling
  rule (Leviathan et al. 2023, Chen et al. 2023): a draft x drawn from q is accepted with probability
  min(1, p(x) / q(x)); on rejection the token is drawn from norm(max(0, p - q)); after k acceptances
  the bonus is drawn from the last row's p. The tokens are distributed exactly as plain sampling from
  p, but a seeded run draws differently from plain decode (the drafts use the generator too).

k adapts to the recent acceptance (KController): with the per-token acceptance a estimated from
decayed counts, the pass length maximizes expected tokens (1 - a^(k+1)) / (1 - a) per unit of pass
cost (1 + row_cost k + draft_cost k, in plain decode steps); k = 0 is a plain decode step through
the backend's ordinary forward, so text without matches costs what plain decode costs, plus an
occasional k = 1 probe (after probe_every idle passes, or more when a probe is dear: its excess cost
over a plain step stays below PROBE_BUDGET = 2% of plain decode). A free drafter (prompt lookup: no
accelerator pass) drafts first and the controller prices the draft it has; a dear one (self-speculation)
drafts the k the controller chose. Either way a draft shorter than asked is re-priced at its length (the
verify cost table can be flat between row counts: TLMM token lanes, head lanes), so two drafts may go as
one. SpecStats.why counts the plain passes by reason (WHY).

Drafters live in runtime/drafters.py; the backend side (verify rows, rewind) in
runtime/spec_backend.py; the acceptance rules above in runtime/spec_accept.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.runtime.generation import GenerationResult, OnToken, check_prompt, context_of, device_picker
from edgellm.runtime.sampling import Sampler, SamplingParams
from edgellm.runtime.spec_accept import (  # noqa: F401  (draw, AcceptRule: the module's API too)
    AcceptRule,
    accept_replay,
    accept_sampling,
    draw,
    target_dists,
)
from edgellm.runtime.spec_backend import (  # noqa: F401  (rewind, can_rewind: the module's API too)
    DEFAULT_K_MAX,
    K_LIMIT,
    block_limit,
    can_rewind,
    check_rewind,
    physical_room,
    rewind,
    verify_pick,
    verify_rows,
)

MODES = ("off", "lookup", "self")
WHY = {  # why a pass went plain (k = 0): SpecStats.why's keys
    "room": "no room for a draft (the output's last token, the cache or the block full)",
    "no_draft": "the drafter had nothing to propose (prompt lookup: no n-gram of the history's tail matched)",
    "controller": "a draft was there (or, drafting being dear, might have been): the controller chose k = 0"}
PROBE_BUDGET = 0.02  # probes at k = 1 cost at most this share of plain decode (their whole excess cost)


@dataclass(frozen=True)
class SpecConfig:
    """How to speculate. k_max / k_min bound the drafted tokens per verify pass (k_min > 0 forces at
    least that many whenever the drafter has them); a verify call of k drafts costs pass_costs[k] plain
    decode steps when given (compiler/cost/speculative.py pass_costs, projected for the design), else
    1 + row_cost k; draft_cost is the cost of drafting one token; probe_every: a k = 1 probe after that
    many passes at k = 0."""

    mode: str = "lookup"
    k_max: int = DEFAULT_K_MAX
    k_min: int = 0
    ngram_max: int = 3
    ngram_min: int = 2
    row_cost: float = 0.03
    draft_cost: float = 0.0
    probe_every: int = 8
    draft_layers: tuple[int, ...] = ()
    pass_costs: tuple[float, ...] = ()  # verify call of k drafts in plain decode steps, k = 0.. (projected)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise EdgeLLMError(f"unknown speculation mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if not 1 <= self.k_max <= K_LIMIT:
            raise EdgeLLMError(f"speculation k_max must be in [1, {K_LIMIT}], got {self.k_max}")
        if not 0 <= self.k_min <= self.k_max:
            raise EdgeLLMError(f"speculation k_min must be in [0, k_max = {self.k_max}], got {self.k_min}")
        if not 1 <= self.ngram_min <= self.ngram_max <= 32:
            raise EdgeLLMError(f"lookup n-gram lengths must satisfy 1 <= min <= max <= 32, got "
                               f"{self.ngram_min}..{self.ngram_max}")
        for name in ("row_cost", "draft_cost"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise EdgeLLMError(f"speculation {name} must be a finite number >= 0, got {v}")
        if any(not (np.isfinite(c) and c > 0) for c in self.pass_costs):
            raise EdgeLLMError(f"speculation pass costs must be finite and > 0, got {self.pass_costs}")
        if self.probe_every < 1:
            raise EdgeLLMError(f"speculation probe_every must be >= 1, got {self.probe_every}")

    @property
    def on(self) -> bool:
        return self.mode != "off"


@dataclass
class SpecStats:
    """What speculation did in one generation: verify passes (k >= 1) and plain passes (k = 0) after
    the prefill, tokens drafted and accepted, draft passes (self-speculation), projected cost in plain
    decode steps."""

    verify_passes: int = 0
    plain_passes: int = 0
    drafted: int = 0
    accepted: int = 0
    draft_passes: int = 0
    decode_tokens: int = 0  # tokens produced by the passes after the prefill
    cost_steps: float = 0.0
    k_counts: dict[int, int] = field(default_factory=dict)  # verify passes by drafted tokens k
    rejections: int = 0  # verify passes that ended at a rejected draft
    why: dict[str, int] = field(default_factory=dict)  # plain passes by reason (WHY)

    @property
    def passes(self) -> int:
        return self.verify_passes + self.plain_passes

    @property
    def acceptance(self) -> float | None:
        """Accepted / drafted tokens (None when nothing was drafted)."""
        return self.accepted / self.drafted if self.drafted else None

    @property
    def rate(self) -> float | None:
        """Per-token acceptance a of the geometric model (a draft accepted given the previous one was):
        accepted / (accepted + rejections), the maximum-likelihood estimate from the passes."""
        n = self.accepted + self.rejections
        return self.accepted / n if n else None

    @property
    def tokens_per_pass(self) -> float | None:
        """Decode tokens per target pass over the weights (plain decode: 1.0)."""
        return self.decode_tokens / self.passes if self.passes else None

    @property
    def projected_speedup(self) -> float | None:
        """Decode tokens per projected cost (plain decode steps): > 1 is faster than plain decode."""
        return self.decode_tokens / self.cost_steps if self.cost_steps else None

    def summary(self) -> dict[str, Any]:
        return {"verify_passes": self.verify_passes, "plain_passes": self.plain_passes,
                "drafted": self.drafted, "accepted": self.accepted, "draft_passes": self.draft_passes,
                "acceptance": self.acceptance, "rate": self.rate, "tokens_per_pass": self.tokens_per_pass,
                "projected_speedup": self.projected_speedup, "k_counts": dict(sorted(self.k_counts.items())),
                "why": dict(sorted(self.why.items()))}

    def count_plain(self, reason: str) -> None:
        """One plain pass (k = 0), for `reason` (a key of WHY)."""
        self.plain_passes += 1
        self.cost_steps += 1.0
        self.why[reason] = self.why.get(reason, 0) + 1


class Drafter(Protocol):
    """Proposes up to k tokens to follow `history` (pending token last). probs: the draft distribution
    of each proposed token ((k, vocab) float64) or None for a deterministic drafter (one-hot q)."""

    def propose(self, target: Any, history: Sequence[int], k: int, params: SamplingParams,
                rng: np.random.Generator) -> tuple[list[int], np.ndarray | None]:
        ...


class KController:
    """The draft length: maximizes expected tokens per pass cost at the recent acceptance."""

    def __init__(self, cfg: SpecConfig, decay: float = 0.8) -> None:
        self.cfg = cfg
        self.decay = decay
        self.acc, self.rej = 1.0, 1.0  # decayed counts of accepted drafts and rejections (prior a = 0.5)
        self.idle = 0  # passes at k = 0 since the last verify pass

    @property
    def rate(self) -> float:
        """Estimated probability that a draft token is accepted given the previous one was."""
        return self.acc / (self.acc + self.rej)

    def cost(self, k: int) -> float:
        """Projected cost of a pass with k drafts (drafting included), in plain decode steps."""
        return verify_cost(self.cfg, k) + k * self.cfg.draft_cost

    def choose(self, available: int) -> int:
        """k for the next pass, at most `available` (room left in the cache, the block, the output)."""
        top = min(self.cfg.k_max, available)
        if top <= 0:
            return 0
        a = self.rate
        best_k, best = 0, 1.0
        for k in range(1, top + 1):
            gain = sum(a ** i for i in range(k + 1)) / self.cost(k)
            if gain > best * 1.0001:
                best_k, best = k, gain
        gap = max(self.cfg.probe_every, math.ceil((self.cost(1) - 1.0) / PROBE_BUDGET))
        if best_k == 0 and self.idle + 1 >= gap:
            best_k = 1  # a probe, so a rising acceptance is noticed
        return max(best_k, min(self.cfg.k_min, top))

    def update(self, drafted: int, accepted: int) -> None:
        if drafted == 0:
            self.idle += 1
            return
        self.idle = 0
        self.acc = self.decay * self.acc + accepted
        self.rej = self.decay * self.rej + (1.0 if accepted < drafted else 0.0)


def verify_cost(cfg: SpecConfig, k: int) -> float:
    """A verify call of k drafts in plain decode steps: pass_costs[k], else 1 + row_cost k."""
    pc = cfg.pass_costs
    if k < len(pc):
        return pc[k] / pc[0]
    if pc:  # past the table: its last step per row
        last = len(pc) - 1
        step = (pc[last] - pc[last - 1]) / pc[0] if last else cfg.row_cost
        return pc[last] / pc[0] + (k - last) * step
    return 1.0 + k * cfg.row_cost


# ---- the generation loop ----

@dataclass
class _Emitter:
    """Appends tokens with plain generate()'s stop checks, in its order."""

    res: GenerationResult
    history: list[int]
    params: SamplingParams
    context: int
    on_token: OnToken | None
    stops: frozenset[int] = field(default_factory=frozenset)
    done: bool = False

    def emit(self, tok: int) -> None:
        self.res.tokens.append(tok)
        self.history.append(tok)
        if tok in self.stops:
            p = self.params
            self.res.stop_reason = "eos" if tok == p.eos_id and p.stop_at_eos else "stop_id"
            self.done = True
            return
        if self.on_token is not None:
            self.on_token(tok)
        if len(self.res.tokens) >= self.params.max_new_tokens:
            self.res.stop_reason, self.done = "max_new_tokens", True
        elif len(self.history) >= self.context:  # no room to feed this token back
            self.res.stop_reason, self.done = "context", True


def generate_speculative(backend: Any, prompt_ids: Sequence[int], params: SamplingParams, spec: SpecConfig,
                         drafter: Drafter, on_token: OnToken | None = None,
                         past: Sequence[int] | None = None, accept: AcceptRule = accept_sampling,
                         stats: SpecStats | None = None) -> GenerationResult:
    """generate() with drafted tokens verified in blocks. Same tokens as generate() when greedy or
    when a deterministic drafter's drafts are sampled with the same seed, the same distribution when
    a sampling drafter's are; res.speculation holds the SpecStats. `accept` is the rule for drafts
    sampled from q (tests swap in a broken one to show the statistical test catches it). `stats`: a
    SpecStats to count into (a caller that may stop generation from on_token keeps what was measured)."""
    context = context_of(backend)
    check_rewind(backend)
    vocab = getattr(getattr(backend, "config", None), "vocab_size", None)
    kept = [int(t) for t in past] if past is not None else []
    ids = check_prompt(prompt_ids, context - len(kept), vocab)
    sampler = Sampler(params)
    stats = stats if stats is not None else SpecStats()
    res = GenerationResult(prompt_ids=list(ids), speculation=stats)
    out = _Emitter(res, kept + list(ids), params, context, on_token, params.stop_set())
    ctl = KController(spec)
    if past is None:
        backend.reset()
    plain = device_picker(backend, sampler)  # plain decode's feed-and-pick (the head's argmax / top-k)
    t0 = time.perf_counter()
    out.emit(plain(ids, out.history))
    res.token_latencies_s.append(time.perf_counter() - t0)
    while not out.done:
        t0 = time.perf_counter()
        n0 = len(res.tokens)
        try:
            _one_pass(backend, sampler, spec, drafter, ctl, out, stats, context, accept, plain)
        finally:  # on_token may stop generation inside a pass: count what it emitted
            n = len(res.tokens) - n0
            stats.decode_tokens += n
        dt = time.perf_counter() - t0
        res.token_latencies_s.extend([dt / n] * n)  # a pass's time spread over its tokens
    res.ttft_s = res.token_latencies_s[0]
    return res


def _one_pass(backend: Any, sampler: Sampler, spec: SpecConfig, drafter: Drafter, ctl: KController,
              out: _Emitter, stats: SpecStats, context: int, accept: AcceptRule,
              plain: Callable[[Sequence[int], Sequence[int]], int]) -> None:
    """Draft, verify, accept, emit, move the KV position back over what was rejected; a pass without
    drafts feeds and picks as plain decode does (`plain`: generation.device_picker's)."""
    history, params = out.history, sampler.params
    pos = int(backend.length)  # the pending token (history[-1]) goes here
    room = min(physical_room(backend, context) - 1, context - len(history),
               params.max_new_tokens - len(out.res.tokens) - 1, block_limit(backend) - 1)
    free = bool(getattr(drafter, "free", False))  # drafting costs nothing: draft first, then choose k
    k = min(spec.k_max, max(room, 0)) if free else ctl.choose(room)
    drafts, q = drafter.propose(backend, history, k, params, sampler.rng) if k > 0 else ([], None)
    stats.draft_passes += getattr(drafter, "last_passes", 0) if k > 0 else 0
    draft_cost = getattr(drafter, "last_cost", 0.0) if k > 0 else 0.0
    proposed = min(k, len(drafts))  # the controller prices the draft it has (the cost table is flat
    drafts = [int(t) for t in drafts[:ctl.choose(proposed)]]  # between some row counts)
    if not drafts:
        ctl.update(0, 0)
        stats.count_plain("room" if room <= 0 else "no_draft" if k > 0 and proposed == 0 else "controller")
        stats.cost_steps += draft_cost
        out.emit(plain([history[-1]], history))
        return
    pick = verify_pick(backend, sampler.params, q is None)
    rows = verify_rows(backend, [history[-1], *drafts], pick)  # (k+1, vocab) logits, or argmax / top-k
    stats.verify_passes += 1
    stats.k_counts[len(drafts)] = stats.k_counts.get(len(drafts), 0) + 1
    stats.drafted += len(drafts)
    stats.cost_steps += verify_cost(spec, len(drafts)) + draft_cost
    base = list(history)
    if params.greedy or q is None:
        n_acc, extra = accept_replay(sampler, rows, base, drafts, pick)
    else:
        p = target_dists(rows, params, base, drafts)
        n_acc, extra = accept(p, None if q is None else q[:len(drafts)], drafts, sampler.rng)
    stats.accepted += n_acc
    stats.rejections += int(n_acc < len(drafts))
    ctl.update(len(drafts), n_acc)
    emitted = 0
    for tok in [*drafts[:n_acc], extra]:
        out.emit(int(tok))
        emitted += 1
        if out.done:
            break
    # keep the pending token and the emitted tokens but the last (it is the next pending one)
    rewind(backend, pos + emitted)
