"""Performance model of speculative decoding (runtime/speculative.py): the verify call, effective tokens/s
as a function of the acceptance, projected speed-ups. Everything here is a projection (docs/performance.md,
"Speculative decoding"), built from the public functions of the engine's model:

- a verify call of k drafted tokens feeds T = k + 1 rows at a position with `context` tokens cached. Its
  layers are the engine's T-token block at that context (cost_model.call(T, context): the TLMM serves
  the T token lanes from one fetch of every weight, the element-wise stages run T rows, the T rows'
  attention over the cache runs as built -- a cached-style call, cost_attention.plan: the cache read
  once per call, the earlier positions over the K/V ports -- and the weight fetcher prefetches during
  it as far as its FIFOs hold; in the schedule the design runs a T-token call in: the prefill
  pipeline's two halves from pipe_min_tokens tokens on, else one pass), at least a decode step's
  layers. Reported as the same block with its rows' attention over the cache hidden
  (cost_model.prefill(T), from context 0: `layers`) plus the rest (`attention_cache`); hide_attention
  drops the latter (the optimistic bound);
- the LM head: with the multi-row head (`multi_row_head=True`, the verify call of issue 18, built:
  lm_head.h lm_dot_rows, C-simulated bit-exact, tests/test_speculative_hw.py) one OP_HEAD over all T rows
  in the layers' start, its weights streamed once: each popped beat feeds every row's token lane, so
  T <= L rows cost one pass of the dot loop (cost_lm_head.seconds(tokens=1)), more rows ceil(T / L)
  passes, L the design's head lanes (DesignParams.head_lanes clamped to the block: head_lanes()); the
  scoring process takes T x NPORTS rows per block at LM_SCORE_II, which bounds the pass when it exceeds
  the block's dot cycles (small hidden sizes). Without it (the hardware before issue 18's head,
  `multi_row_head=False`) one OP_HEAD start per row, each streaming the whole head, and one host round
  trip per start. A head on the ARM cores (lm_head_on_fabric False) has no token lanes: every row
  streams the whole head there (cost_lm_head.arm_seconds), with no accelerator start;
- a plain decode step is cost_model.decode_step at the same context.

With per-token acceptance a (the chance a draft is accepted given the previous one was), a pass of k
drafts yields E(a, k) = (1 - a^(k+1)) / (1 - a) tokens; effective decode = E / verify seconds.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from edgellm.boards import Board
from edgellm.compiler.cost import attention as cost_attention
from edgellm.compiler.cost import ddr as cost_ddr
from edgellm.compiler.cost import lm_head as cost_lm_head
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.design import DesignParams, stream_ports
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig


@dataclass(frozen=True)
class VerifyCost:
    """Seconds of one verify call (parts: layers, attention over the cache, lm_head, host) and of a plain
    decode step at the same context."""

    k: int
    seconds: float
    parts: dict[str, float]
    decode_s: float

    @property
    def relative(self) -> float:
        """The call's cost in plain decode steps."""
        return self.seconds / self.decode_s


# Acceptance measured on the golden model by bench/speculative_acceptance.py --record (per workload kind)
MEASURED_FILE = Path(__file__).with_name("speculative_acceptance.json")


def max_k(p: DesignParams) -> int:
    """The most drafts one verify call takes: T = k + 1 rows in one block (prefill_token_block = max_t)."""
    return max(0, p.prefill_token_block - 1)


def _attention_s(cfg: ModelConfig, board: Board, p: DesignParams, queries: int, contexts: range | tuple
                 ) -> float:
    """One layer's attention for `queries` rows ending at each of `contexts`, summed
    (cost_attention.layer_seconds with the bandwidths cost_model uses)."""
    bw = cost_ddr.bandwidth(board, p)
    f = p.clock_mhz * 1e6
    ports = bw.kv_ports or 1
    read_bw = min(ports * bw.kv_port, 2 * cost_attention.MEM_LANES * p.kv_bytes * f, bw.ddr)
    return sum(cost_attention.layer_seconds(cfg, p, queries, c, f, bw.data, read_bw, ports) for c in contexts)


_PREFILL_CACHE: dict[tuple, cost_model.Projection] = {}
_PREFILL_CACHE_MAX = 1 << 15


def _prefill(cfg: ModelConfig, board: Board, p: DesignParams, t: int, context: int = 0
             ) -> cost_model.Projection:
    """cost_model.call(cfg, board, p, t, context) (cost_model.prefill at context 0), memoized by the
    fields it reads (cost_model.PERF_FIELDS: a design's head lanes are not among them, so its head-lane
    variants share it); a copy (verify_call adjusts its parts)."""
    key = (cfg, board, t, context, *(getattr(p, f) for f in cost_model.PERF_FIELDS))
    if key not in _PREFILL_CACHE:
        if len(_PREFILL_CACHE) >= _PREFILL_CACHE_MAX:
            _PREFILL_CACHE.clear()
        _PREFILL_CACHE[key] = cost_model.call(cfg, board, p, t, context)
    pr = _PREFILL_CACHE[key]
    return cost_model.Projection(pr.seconds, dict(pr.parts), dict(pr.detail))


@functools.lru_cache(maxsize=4096)
def _decode(cfg: ModelConfig, board: Board, p: DesignParams, context: int) -> cost_model.Projection:
    """cost_model.decode_step, memoized (the DSE's speculation objective asks for the same step for every
    verify call of a design)."""
    return cost_model.decode_step(cfg, board, p, context)


def head_lanes(cfg: ModelConfig, p: DesignParams) -> int:
    """The built head's token lanes (lm_head.h lm_dot_rows, the generated head's MAX_TOK): each fetched
    head beat feeds up to this many rows' dot products in the same cycle, so up to it rows cost one pass
    of the dot loop, more rows ceil(T / lanes) passes (one OP_HEAD start each after the first). The
    design's head_lanes clamped to its block (cost_lm_head.head_lanes); 1 for a head on the ARM cores."""
    return cost_lm_head.head_lanes(cfg, p) if p.lm_head_on_fabric else 1


def cache_attention_s(cfg: ModelConfig, board: Board, p: DesignParams, k: int, context: int) -> float:
    """A lower bound of the attention of a verify call's T = k + 1 rows over `context` cached tokens in
    every layer, as built (cost_attention.layer_seconds: one call of T rows, or the prefill pipeline's two
    halves one after another, whatever the split): the engine runs it between the layer's other stages.
    It reads no prefill-only field and no head field."""
    t, end = k + 1, (context + k + 1,)
    whole = _attention_s(cfg, board, p, t, end)
    halves = min((_attention_s(cfg, board, p, a, (context + a,)) + _attention_s(cfg, board, p, t - a, end)
                  for a in range(1, t)), default=whole)
    return cfg.n_layers * min(whole, halves)


def run_ceiling(cfg: ModelConfig, board: Board, p: DesignParams, run: dict) -> float:
    """An upper bound of run_tokens_per_s on p and on every design that differs from p only in the
    prefill block, token and DSP lanes, prefill pipeline and head lanes, when none of them decodes faster
    than p (the DSE widens its base designs so: tests/test_dse_spec.py): a verify call of k costs at least
    a decode step, its layers at least its rows' attention over the cache (cache_attention_s; its head at
    least one pass, its host at least one call), drafting costs at least nothing."""
    step = _decode(cfg, board, p, p.decode_context)
    dec, dec_layers = step.seconds, step.parts["layers"]
    kc = {int(k): int(n) for k, n in run["k_counts"].items()}
    total = int(run["plain_passes"]) * dec + sum(
        n * (dec + max(0.0, cache_attention_s(cfg, board, p, k, p.decode_context) - dec_layers))
        for k, n in kc.items())
    return int(run["decode_tokens"]) / total if total else 0.0


def multi_row_head_s(cfg: ModelConfig, board: Board, p: DesignParams, t: int, lanes: int | None = None
                     ) -> tuple[float, int]:
    """(seconds, starts) of the multi-row head over t rows: ceil(t / lanes) passes over the weights, each
    the dot loop's pass (cost_lm_head.seconds(tokens=1)) or, when longer, the scoring of its rows (rows x
    NPORTS x LM_SCORE_II cycles per block of NPORTS head rows)."""
    lanes = max(1, head_lanes(cfg, p) if lanes is None else lanes)
    passes, out = -(-t // lanes), 0.0
    nblk = -(-cfg.vocab_size // stream_ports(board, p))
    for i in range(passes):
        rows = min(lanes, t - i * lanes)
        score = nblk * rows * stream_ports(board, p) * cost_lm_head.LM_SCORE_II / (p.clock_mhz * 1e6)
        out += max(cost_lm_head.seconds(cfg, board, p), score)
    return out, passes


def verify_call(cfg: ModelConfig, board: Board, p: DesignParams, k: int, context: int | None = None,
                multi_row_head: bool = True, head_lanes: int | None = None, hide_attention: bool = False,
                logits: bool = False) -> VerifyCost:
    """One verify call of k drafts (T = k + 1 rows) with `context` tokens cached (default
    p.decode_context). k = 0 is a plain decode step. hide_attention: the optimistic bound, the rows'
    attention over the cache hidden (the block priced from context 0, at least a decode step's layers).
    Greedy verification reads every row's argmax (runtime/session.py verify_argmax); with `logits`
    (sampling) the host reads and samples every row's logits (cost_model.HOST_SAMPLE_S_PER_VOCAB)."""
    ctx = p.decode_context if context is None else context
    dec = _decode(cfg, board, p, ctx)
    read = (k + 1) * cfg.vocab_size * cost_model.HOST_SAMPLE_S_PER_VOCAB if logits else 0.0
    if k == 0:
        parts = {**dec.parts, "host": dec.parts["host"] + read}
        return VerifyCost(0, dec.seconds + read, parts, dec.seconds)
    if not 1 <= k <= max_k(p):
        raise ValueError(f"k = {k}: a verify call takes 1..{max_k(p)} drafts "
                         f"(prefill block {p.prefill_token_block})")
    t = k + 1
    # the T-row block over the weights at its context, at least a decode step's layers, in the schedule
    # the design runs a T-token call in (cost_model.pipelined: the prefill pipeline's two token halves,
    # each streaming the weights, from pipe_min_tokens tokens on; one pass below). Its rows attend over
    # the cache as built (a cached-style call: cost_attention.plan), the fetcher prefetching meanwhile as
    # far as its FIFOs hold; `layers` is the block priced from context 0 (that attention hidden),
    # `attention_cache` the rest
    def block_at(c: int) -> cost_model.Projection:
        b = _prefill(cfg, board, p, t, c)
        b.parts["layers"] = max(b.parts["layers"], dec.parts["layers"])
        return b

    block = block_at(0)
    cache = 0.0 if hide_attention else max(0.0, block_at(ctx).parts["layers"] - block.parts["layers"])
    one_head = cost_lm_head.seconds(cfg, board, p)
    if not p.lm_head_on_fabric:  # the head on the ARM cores: every row streams it there, no OP_HEAD start
        head, host = t * one_head, block.parts["host"]
    elif multi_row_head:  # one OP_HEAD over the rows in the layers' start (head_lanes rows per pass)
        head, passes = multi_row_head_s(cfg, board, p, t, head_lanes)
        host = block.parts["host"] + (passes - 1) * cost_model.HOST_CALL_S
    else:  # one OP_HEAD start per row (the last row's head runs in the layers' start)
        head = t * one_head
        host = block.parts["host"] + k * cost_model.HOST_CALL_S
    parts = {"layers": block.parts["layers"], "attention_cache": cache, "lm_head": head, "host": host + read}
    return VerifyCost(k, sum(parts.values()), parts, dec.seconds)


def pass_costs(cfg: ModelConfig, board: Board, p: DesignParams, k_max: int, context: int | None = None,
               multi_row_head: bool = True) -> tuple[float, ...]:
    """Seconds of verify calls of k = 0 .. min(k_max, max_k) drafts (runtime SpecConfig.pass_costs: the
    controller takes them relative to k = 0)."""
    return tuple(verify_call(cfg, board, p, k, context, multi_row_head).seconds
                 for k in range(min(k_max, max_k(p)) + 1))


def expected_tokens(a: float, k: int) -> float:
    """Tokens per pass of k drafts at per-token acceptance a: 1 + a + ... + a^k."""
    return float(sum(a ** i for i in range(k + 1)))


def draft_token_s(cfg: ModelConfig, board: Board, p: DesignParams, n_draft_layers: int,
                  context: int | None = None) -> float:
    """One self-speculation draft token: the kept layers' share of a decode step's layers, the LM head
    and the host's call (Session.draft_logits: one start)."""
    dec = cost_model.decode_step(cfg, board, p, p.decode_context if context is None else context)
    return dec.parts["layers"] * n_draft_layers / cfg.n_layers + dec.parts["lm_head"] + dec.parts["host"]


def head_share(cfg: ModelConfig, board: Board, p: DesignParams) -> float:
    """The LM head's share of a plain decode step (what a draft token pays whatever its layers)."""
    dec = cost_model.decode_step(cfg, board, p)
    return dec.parts["lm_head"] / dec.seconds


def row_cost(cfg: ModelConfig, board: Board, p: DesignParams, k: int = 4, context: int | None = None,
             multi_row_head: bool = True) -> float:
    """The extra cost of one verify row in plain decode steps (SpecConfig.row_cost), from a call of k."""
    k = max(1, min(k, max_k(p)))
    v = verify_call(cfg, board, p, k, context, multi_row_head)
    return (v.relative - 1.0) / k


def effective_tokens_per_s(cfg: ModelConfig, board: Board, p: DesignParams, a: float, k: int,
                           context: int | None = None, multi_row_head: bool = True,
                           draft_s: float = 0.0, hide_attention: bool = False) -> float:
    """Decode tokens/s when every pass drafts k tokens accepted at per-token rate a (draft_s: seconds
    to draft one token; 0 for prompt lookup)."""
    v = verify_call(cfg, board, p, k, context, multi_row_head, hide_attention=hide_attention)
    return expected_tokens(a, k) / (v.seconds + k * draft_s)


def best_k(cfg: ModelConfig, board: Board, p: DesignParams, a: float, k_max: int = 8,
           context: int | None = None, multi_row_head: bool = True, draft_s: float = 0.0
           ) -> tuple[int, float]:
    """(k, tokens/s) maximizing effective decode at acceptance a (k = 0: plain decode)."""
    best = (0, effective_tokens_per_s(cfg, board, p, a, 0, context, multi_row_head))
    for k in range(1, min(k_max, max_k(p)) + 1):
        r = effective_tokens_per_s(cfg, board, p, a, k, context, multi_row_head, draft_s)
        if r > best[1]:
            best = (k, r)
    return best


def workload_tokens_per_s(cfg: ModelConfig, board: Board, p: DesignParams, decode_tokens: int,
                          plain_passes: int, k_counts: dict[int, int], draft_tokens: int = 0,
                          draft_s: float = 0.0, context: int | None = None, multi_row_head: bool = True,
                          hide_attention: bool = False, logits: bool = False) -> float:
    """Projected decode tokens/s of a measured run (runtime.speculative.SpecStats): its plain passes and
    its verify passes by k, each at the projected seconds of its call (`logits`: a sampled run, the host
    reading every row's logits: verify_call), plus its draft tokens."""
    dec = verify_call(cfg, board, p, 0, context, logits=logits).seconds
    total = plain_passes * dec + draft_tokens * draft_s
    for k, n in k_counts.items():
        total += n * verify_call(cfg, board, p, int(k), context, multi_row_head,
                                 hide_attention=hide_attention, logits=logits).seconds
    return decode_tokens / total if total else 0.0


def measured_rates(path: Path | None = None) -> list[dict]:
    """The recorded measurements (model, drafter, kind, acceptance, rate, tokens_per_pass) of `path`
    (default MEASURED_FILE); [] without a file."""
    try:
        return list(json.loads((path or MEASURED_FILE).read_text())["measured"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


# The run the DSE's speculation objective ranks designs by (compiler/dse_spec.py): the drafter's greedy
# copy-heavy run of the shipped tiny model (real text; the random large-shape model's greedy output only
# repeats itself).
OBJECTIVE_RUN = {"model": "tiny", "kind": "copy", "temperature": 0.0}


def objective_run(drafter: str, path: Path | None = None) -> dict:
    """The recorded run (measured_rates) the speculation objective ranks by for `drafter` ("lookup" or
    "self"); EdgeLLMError when none is recorded."""
    for r in measured_rates(path):
        if r.get("drafter") == drafter and all(r.get(k, 0.0) == v for k, v in OBJECTIVE_RUN.items()):
            return r
    raise EdgeLLMError(f"--speculate {drafter}: no measured {drafter} run on the copy-heavy prompts in "
                       f"{(path or MEASURED_FILE).name} (python bench/speculative_acceptance.py --record"
                       f"{' --self' if drafter == 'self' else ''})")


def run_tokens_per_pass(run: dict) -> float:
    """Decode tokens per pass over the model of a recorded run (plain passes and verify passes)."""
    passes = int(run["plain_passes"]) + sum(int(n) for n in run["k_counts"].values())
    return int(run["decode_tokens"]) / max(1, passes)


def run_tokens_per_s(cfg: ModelConfig, board: Board, p: DesignParams, run: dict,
                     hide_attention: bool = False) -> float:
    """A recorded run projected on p pass by pass (workload_tokens_per_s: its plain passes, its verify
    passes by k, its draft tokens at the kept layers' share; a sampled run's host reading every row's
    logits); 0 when one of its verify calls takes more drafts than p's block holds (max_k)."""
    kc = {int(k): int(n) for k, n in run["k_counts"].items()}
    if any(k > max_k(p) for k in kc):
        return 0.0
    n_draft = round(float(run.get("draft_layer_fraction", 0.0)) * cfg.n_layers)
    ds = draft_token_s(cfg, board, p, n_draft) if n_draft else 0.0
    return workload_tokens_per_s(cfg, board, p, int(run["decode_tokens"]), int(run["plain_passes"]), kc,
                                 int(run.get("draft_tokens", 0)), ds, hide_attention=hide_attention,
                                 logits=bool(run.get("temperature")))


COSTS_TIE = 0.02  # a recorded run's verify costs within 2% of a design's: its k choices stand for it


def costs_note(cfg: ModelConfig, board: Board, p: DesignParams, run: dict) -> str:
    """The empty string when the recorded run's k controller chose k at p's verify costs (its pass_steps:
    the calls of k = 0 .. drafts in decode steps, within COSTS_TIE for every k it ran) or the record has no
    pass_steps; else a note that its passes followed other costs (the projection prices the recorded
    passes at p's costs, passes a controller on p's costs would not all have chosen)."""
    rec = [float(x) for x in run.get("pass_steps", ())]
    ks = sorted(int(k) for k in run.get("k_counts", {}))
    if not rec or not ks or ks[-1] >= len(rec) or ks[-1] > max_k(p):
        return ""
    here = pass_costs(cfg, board, p, ks[-1])
    mine = [c / here[0] for c in here]
    if all(abs(mine[k] - rec[k]) <= COSTS_TIE * rec[k] for k in ks):
        return ""
    k = max(ks, key=lambda k: abs(mine[k] - rec[k]) / rec[k])
    return (f"its k choices followed other verify costs (k = {k}: {rec[k]:.2f} decode steps recorded, "
            f"{mine[k]:.2f} on this design: a controller on its costs would choose other passes)")


def speedup_lines(cfg: ModelConfig, board: Board, p: DesignParams) -> list[str]:
    """For `edgellm estimate`: each recorded measured run (bench/speculative_acceptance.py --record)
    projected on this design pass by pass (workload_tokens_per_s: its plain passes, its verify passes by
    k, its draft tokens at the kept layers' share), with the multi-row head: the extra rows' attention
    added in full (conservative) and hidden (optimistic)."""
    rows = measured_rates()
    if not rows:
        return []
    dec = cost_model.decode_step(cfg, board, p).tokens_per_s
    lanes = head_lanes(cfg, p)
    span = f"up to {lanes} rows (its token lanes)" if lanes > 1 else "one row (1 token lane: a pass per row)"
    head = (f"layers and the multi-row LM head in one start, the head's weights streamed once for {span}; "
            "built, C-simulated" if p.lm_head_on_fabric else
            "layers in one start; the LM head on the ARM cores in this design, every verify row streaming "
            "the whole head there (no multi-row head)")
    out = [f"speculative decoding, projected from runs measured by bench/speculative_acceptance.py "
           f"(verify call: {head}): plain decode {dec:.1f} tok/s"]
    for r in rows:
        try:
            cons = run_tokens_per_s(cfg, board, p, r)
            hid = run_tokens_per_s(cfg, board, p, r, hide_attention=True)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if not cons:  # a verify call the design's block cannot take
            continue
        how = "greedy" if not r.get("temperature") else f"sampled at T={r['temperature']:g}"
        how += f", k <= {r['k_max']}" if r.get("k_max") else ""
        # against plain decode of the same kind: a sampled run's plain steps read the logits too
        base = 1.0 / verify_call(cfg, board, p, 0, logits=True).seconds if r.get("temperature") else dec
        note = costs_note(cfg, board, p, r)
        out.append(f"  {r['drafter']} on {r['kind']} prompts ({r['model']} model, {how}): acceptance "
                   f"{100 * float(r['acceptance']):.0f}%, {float(r['tokens_per_pass']):.2f} tokens per pass "
                   f"-> {cons:.1f} tok/s ({cons / base:.2f}x; {hid / base:.2f}x with the rows' attention "
                   f"hidden){'; ' + note if note else ''}")
    return out
