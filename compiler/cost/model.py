"""Performance model: projected decode tokens/s and prefill time-to-first-token (docs/performance.md).

Everything here is a projection, not a measurement. Time is counted per kernel invocation from trip
counts (initiation interval 1 in every steady-state loop) and from DDR bytes over the bandwidth the
design can actually pull.

Two engines:
- `overlap=True`: the hardware edgellm generates (hw/include/edgellm), counted loop by loop, with a
  decoupled weight fetcher (top.h, weight_fetch.h). Per weight port a fetcher process walks the
  call's descriptor program and pushes every ternary-weight beat the TLMM will consume, in order,
  into a FIFO (fetch_depth words of FETCH_BEATS R-byte beats) at the weight ports' DDR rate; it
  stops only when the FIFO is full, so while the engine runs element-wise stages and attention it
  prefetches the next linears' weights. The engine's program, per prefill token block and layer in
  decoder_layer.h order (element-wise gaps from cost_elementwise, attention from cost_attention,
  linears), then the final norm, is run against that producer by cost_fetch's fluid model (the FIFO
  is empty at the start of every call). A linear, when its weights are waiting: the activation
  block loads one chunk per cycle (tlmm.h load_acts) while the first tile's banks fill from the
  FIFOs (FETCH_BEATS columns per port and cycle where BEATS_PER_STEP >= 2), then tile i+1 fills
  while tile i computes (per token: one cycle per step + R output cycles + pipeline fill). Decode
  attention reads K/V over its own m_axi arguments on the weight ports (KV head h on port h % P,
  attention_decode.h attention_decode_ports; at most one merged beat of MEM_LANES K and V elements
  per cycle) and prefill over the data port; those reads take DDR bandwidth from the fetcher. The LM
  head streams NP rows per block, one per weight port, at P bytes per port and cycle (lm_head.h)
  from its own shallow FIFOs: it is not prefetched (its time adds after the layers), nor is
  anything across calls. Projection.detail (seconds, summed over the call): load = tile-bank fills
  from the FIFOs, compute = TLMM compute, attention, elementwise (final norm included), stall =
  time the engine waited for weights, fetch = weight bytes / the fetcher's DDR rate.
- `overlap=False`: TeLLMe's released design, described by its own parameters: compiler/cost/serial.py
  (decode_step, prefill and prefill_floor hand such a design to it; nothing below reads the flag).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from edgellm.boards import Board
from edgellm.compiler.cost import attention as cost_attention
from edgellm.compiler.cost import data_port as cost_data_port
from edgellm.compiler.cost import elementwise as cost_elementwise
from edgellm.compiler.cost import fetch as cost_fetch
from edgellm.compiler.cost import lm_head as cost_lm_head
from edgellm.compiler.cost import serial as cost_serial
from edgellm.compiler.cost.ddr import Bandwidth, bandwidth
from edgellm.compiler.cost.tlmm import stream_cols, stream_ports, tlmm_linear_s
from edgellm.compiler.design import FETCH_BEATS, DesignParams
from edgellm.compiler.design_bytes import ACT_BYTES
from edgellm.models.config import ModelConfig

# --- Named constants (source in each comment) ---------------------------------------------------
# Host cost of one ap_start write + ap_done poll from Python through PYNQ MMIO. Assumption (tens of us).
HOST_CALL_S = 50e-6
# Host argmax/sampling over fp32 logits on the ARM cores, seconds per vocabulary entry. Assumption. Paid
# where the host reads the logits: sampled decode, a speculative verify's rows (cost/speculative.py), the
# serial description's host (TeLLMe's runtime: assumed to read them); greedy decode on the generated
# designs reads the LM head's argmax instead (runtime/session.py forward_argmax), a few hundred bytes
# that the host call's time covers.
HOST_SAMPLE_S_PER_VOCAB = 2e-9
# Between two slots of the prefill pipeline: the DATAFLOW region's start and done handshakes and the
# processes' argument setup. Assumption, cycles.
SLOT_SYNC_CYCLES = 16
# The design fields decode_step and prefill read for the generated engine (tests/test_cost_fields.py
# records every read; the DSE keys its decode and TTFT caches by PERF_FIELDS, the serial
# description's included).
ENGINE_FIELDS = ("overlap", "clock_mhz", "group_size", "tables", "rows", "weight_ports", "port_width_bits",
                 "data_port_width_bits", "bits_per_weight", "lm_head_on_fabric", "lm_head_bits",
                 "prefill_token_block", "attn_q_block", "attn_kv_block", "attn_lanes", "ew_lanes", "ew_vec",
                 "ew_glu_vec", "token_lanes", "out_lanes", "dsp_lanes", "prefill_pipeline", "pipe_min_tokens",
                 "attn_split", "kv_bytes", "decode_context", "ip_calls_per_token", "fetch_depth",
                 "port_shares")
PERF_FIELDS = tuple(dict.fromkeys((*ENGINE_FIELDS, *cost_serial.PERF_FIELDS)))


def host_seconds(cfg: ModelConfig, p: DesignParams, calls: int = 1, logits: bool = False) -> float:
    """The host's share of a run of `calls` accelerator calls (each p.ip_calls_per_token starts), ending
    in a greedy token from the LM head's argmax, or with `logits` in an argmax / sample over the logits
    it reads (HOST_SAMPLE_S_PER_VOCAB a vocabulary entry)."""
    return calls * p.ip_calls_per_token * HOST_CALL_S + (cfg.vocab_size * HOST_SAMPLE_S_PER_VOCAB if logits
                                                         else 0.0)


def _attention(cfg: ModelConfig, p: DesignParams, bw: Bandwidth, queries: int,
               context: int) -> tuple[float, int]:
    """(seconds, DDR bytes) of one layer's attention for `queries` new tokens ending at `context` (causal):
    the generated kernels as built (cost_attention; the K/V write is an element-wise pass)."""
    f = p.clock_mhz * 1e6
    nbytes = cost_attention.layer_ddr_bytes(cfg, p, queries, context)
    ports = bw.kv_ports or 1  # decode reads position p over K/V port p % ports (attention_decode.h)
    read_bw = min(ports * bw.kv_port, 2 * cost_attention.MEM_LANES * p.kv_bytes * f, bw.ddr)
    return cost_attention.layer_seconds(cfg, p, queries, context, f, bw.data, read_bw, ports), nbytes


def elementwise_gaps(cfg: ModelConfig, p: DesignParams, tokens: int) -> tuple[int, ...]:
    """Cycles of the element-wise stages between one layer's linears for `tokens` tokens, in
    decoder_layer.h order: attention norm; RoPE q + RoPE k + K/V write; attention SubLN (or quantize);
    residual + FFN norm; GLU (+ SubLN); residual. They sum to cost_elementwise.layer_cycles."""
    w = cost_elementwise._Widths(p)
    h, subln = cfg.hidden_size, cfg.subln
    per_token = (
        cost_elementwise.norm_quantize(h, True, w),
        cost_elementwise.dequant_rope(cfg.n_heads, cfg.head_dim, w)
        + cost_elementwise.dequant_rope(cfg.n_kv_heads, cfg.head_dim, w)
        + cost_elementwise.kv_write(cfg.kv_size, w),
        cost_elementwise.norm_quantize(cfg.q_size, subln, w),
        cost_elementwise.residual_norm_quantize(h, True, w),
        cost_elementwise.glu_norm_quantize(cfg.ffn_size, subln, w),
        cost_elementwise.residual_norm_quantize(h, False, w),
    )
    return tuple(tokens * c for c in per_token)


def _linear_phase(board: Board, out: int, n_in: int, p: DesignParams, tokens: int,
                  detail: dict[str, float]) -> cost_fetch.Phase:
    """One linear as a consumer phase: the weight bytes it pops (the encoded image, out x nb bytes padded
    to R: a tail tile is stored densely) and its time when they are there; adds its load and compute
    to `detail`."""
    total, load, compute = tlmm_linear_s(board, out, n_in, p, tokens)
    detail["load"] += load
    detail["compute"] += compute
    return cost_fetch.Phase(-(-out * stream_cols(n_in, p) // p.rows) * p.rows, total)


def _vector_work(cfg: ModelConfig, p: DesignParams, bw: Bandwidth, tokens: int, context: int,
                 detail: dict[str, float]) -> tuple[list[float], float, float]:
    """One layer's vector-engine work for `tokens` tokens ending at `context`: the element-wise gaps
    (seconds, elementwise_gaps' order), attention's seconds and its K/V read bytes (the new K/V is
    written in a gap); adds both engines' time to `detail`."""
    gaps = [c / (p.clock_mhz * 1e6) for c in elementwise_gaps(cfg, p, tokens)]
    attn_s, attn_bytes = _attention(cfg, p, bw, tokens, context)
    detail["attention"] += attn_s
    detail["elementwise"] += sum(gaps)
    return gaps, attn_s, attn_bytes - tokens * 2 * cfg.kv_size * p.kv_bytes


def _attention_parts(cfg: ModelConfig, p: DesignParams, bw: Bandwidth, queries: int, context: int
                     ) -> tuple[float, float]:
    """(seconds of the keys before the split, of the rest) of one layer's attention in the sequential
    schedule (cost_attention.layer_parts, the bandwidths of _attention)."""
    f = p.clock_mhz * 1e6
    ports = bw.kv_ports or 1
    read_bw = min(ports * bw.kv_port, 2 * cost_attention.MEM_LANES * p.kv_bytes * f, bw.ddr)
    return cost_attention.layer_parts(cfg, p, queries, context, f, bw.data, read_bw, ports)


def _layer_phases(cfg: ModelConfig, board: Board, p: DesignParams, bw: Bandwidth, tokens: int,
                  context: int, detail: dict[str, float],
                  linear: Callable[[str], cost_fetch.Phase] | None = None,
                  labels: list[tuple[tuple[str, ...], float]] | None = None) -> list[cost_fetch.Phase]:
    """One layer's program for a block of `tokens` tokens ending at `context` in the sequential schedule
    (decoder_layer.h, layer_schedule.h): element-wise gaps, linears (FIFO consumers) and attention (its
    K/V reads share the DDR), with k and v in one slot beside RoPE q and the attention over the K/V
    blocks before the call (cost_attention.split_key; none for a prefill-style call): that slot lasts
    the longer of the two jobs (the fetcher streaming k and v meanwhile) plus SLOT_SYNC_CYCLES, the rest
    of attention runs from the saved state after RoPE k and the K/V write. linear: the phase of the
    linear it names (default the TLMM's, _linear_phase; cost/lowbit.py passes the low-bit engine's).
    labels, when given, gets per phase (the linears in it, the seconds of vector work it holds): a linear's
    phase ((name,), 0), a vector phase ((), its seconds), the slot (("k", "v"), RoPE q + the first part)."""
    sh = cfg.linear_shapes()
    f = p.clock_mhz * 1e6
    gaps, attn_s, kv_reads = _vector_work(cfg, p, bw, tokens, context, detail)
    first, second = _attention_parts(cfg, p, bw, tokens, context)
    detail["attention"] += first + second - attn_s
    key = cost_attention.split_key(cfg, p, tokens, context)
    reads1 = kv_reads * key / context if context else 0.0
    data = cost_data_port.stage_bytes(cfg)

    def lin(name: str) -> cost_fetch.Phase:  # the data port's bytes charged where they pass the DDR ceiling
        ph = linear(name) if linear else _linear_phase(board, *sh[name], p, tokens, detail)
        return cost_data_port.charged(ph, tokens * data[name], bw)

    def gap(i: int) -> cost_fetch.Phase:
        return cost_data_port.charged(cost_fetch.Phase(0, gaps[i]), tokens * data[f"gap{i}"], bw)

    # V1.1 (RoPE q, attention over the earlier blocks) beside L0's k and v
    widths = cost_elementwise._Widths(p)
    rope_q = tokens * cost_elementwise.dequant_rope(cfg.n_heads, cfg.head_dim, widths) / f
    rope_q_bytes = tokens * cost_data_port.rope_q_bytes(cfg)
    att = tokens * data["attention"]
    v11 = cost_data_port.charged(cost_fetch.Phase(0, rope_q + first, reads1),
                                 rope_q_bytes + (att if key else 0), bw)
    k, v = lin("k"), lin("v")
    slot_s = max(k.seconds + v.seconds, v11.seconds) + SLOT_SYNC_CYCLES / f
    slot = cost_fetch.Phase(k.nbytes + v.nbytes, slot_s,
                            k.ddr_share_bytes + v.ddr_share_bytes + v11.ddr_share_bytes)
    # V1.2: RoPE k + the K/V write, the rest of attention (resumed: the saved o rows read back), SubLN
    rest1 = cost_data_port.charged(cost_fetch.Phase(0, gaps[1] - rope_q),
                                   tokens * data["gap1"] - rope_q_bytes, bw)
    resumed = tokens * ACT_BYTES * cfg.q_size if key else 0
    attn = cost_data_port.charged(cost_fetch.Phase(0, second, kv_reads - reads1), att + resumed, bw)
    program = [(gap(0), ()), (lin("q"), ("q",)), (slot, ("k", "v")), (rest1, ()), (attn, ()), (gap(2), ()),
               (lin("o"), ("o",)), (gap(3), ()), (lin("gate"), ("gate",)), (lin("up"), ("up",)), (gap(4), ()),
               (lin("down"), ("down",)), (gap(5), ())]  # (phase, its linears)
    if labels is not None:
        labels += [(names, v11.seconds if ph is slot else 0.0 if names else ph.seconds)
                   for ph, names in program]
    return [ph for ph, _ in program]


def first_half(tokens: int, lanes: int) -> int:
    """Tokens of a pipelined call's first half (decoder_layer.h first_half): ceil(tokens / 2) rounded up
    to the TLMM's token lanes, at most tokens - 1."""
    half = (tokens + 1) // 2
    return min(-(-half // lanes) * lanes, tokens - 1)


def _pipelined_layer_phases(cfg: ModelConfig, board: Board, p: DesignParams, bw: Bandwidth, tokens: int,
                            context: int, detail: dict[str, float]) -> list[cost_fetch.Phase]:
    """One layer of a prefill call under the two-half schedule (decoder_layer.h layer_slot_run): halves
    A and B; slot i runs vector stage i // 2 on half i % 2 and, for 1 <= i <= 8, linear stage
    (i - 1) // 2 on half (i - 1) % 2, the two jobs overlapped. A slot lasts the longer of its jobs
    plus SLOT_SYNC_CYCLES: its linears as FIFO consumers, then a gap for the rest of the vector job.
    The linear jobs' activation reads and output writes share the data port's bundle with the vector
    job (argument act), so they lengthen it by their bytes over the data port's rate. Attention's K/V
    reads take DDR bandwidth from the fetcher over the slot."""
    f = p.clock_mhz * 1e6
    sh = cfg.linear_shapes()
    n_a = first_half(tokens, p.token_lanes)
    halves = ((n_a, context - tokens + n_a), (tokens - n_a, context))  # (tokens, context at its end)
    vec: list[list[tuple[float, float]]] = []  # per half, per vector stage: (seconds, K/V read bytes)
    lin: list[list[list[cost_fetch.Phase]]] = []  # per half, per linear stage: its linears
    act: list[list[float]] = []  # per half, per linear stage: data-port bytes of its linears
    vdata: list[list[float]] = []  # per half, per vector stage: its data-port bytes
    stages = (("q", "k", "v"), ("o",), ("gate", "up"), ("down",))
    data = cost_data_port.stage_bytes(cfg)
    for n, ctx in halves:
        gaps, attn_s, kv_reads = _vector_work(cfg, p, bw, n, ctx, detail)
        vec.append([(gaps[0], 0.0), (gaps[1] + attn_s + gaps[2], kv_reads), (gaps[3], 0.0), (gaps[4], 0.0),
                    (gaps[5], 0.0)])
        vdata.append([n * data["gap0"], n * (data["gap1"] + data["attention"] + data["gap2"]),
                      n * data["gap3"], n * data["gap4"], n * data["gap5"]])
        lin.append([[_linear_phase(board, *sh[m], p, n, detail) for m in st] for st in stages])
        act.append([sum(n * sh[m][1] + ACT_BYTES * n * sh[m][0] for m in st) for st in stages])
    sync = SLOT_SYNC_CYCLES / f
    phases: list[cost_fetch.Phase] = []
    for i in range(2 * len(vec[0])):
        v_s, share = vec[i % 2][i // 2]
        moved = vdata[i % 2][i // 2]  # the slot's data-port bytes
        linears: list[cost_fetch.Phase] = []
        if 1 <= i <= 2 * len(stages):
            st, hf = (i - 1) // 2, (i - 1) % 2
            linears = lin[hf][st]
            v_s += act[hf][st] / bw.data
            moved += act[hf][st]
        t_s = sum(ph.seconds for ph in linears)
        slot = max(t_s, v_s)
        for ph in linears:  # the K/V reads and the data port's bytes spread over the slot
            frac = ph.seconds / slot if slot else 0.0
            phases.append(cost_data_port.charged(cost_fetch.Phase(ph.nbytes, ph.seconds, share * frac),
                                                 moved * frac, bw))
        rest = slot - t_s
        frac = rest / slot if slot else 0.0
        phases.append(cost_data_port.charged(cost_fetch.Phase(0, rest + sync, share * frac), moved * frac,
                                             bw))
    return phases


@dataclass(frozen=True)
class Projection:
    """A projected time (seconds): `parts` sum to it; `detail` breaks the layers down (not additive)."""

    seconds: float
    parts: dict[str, float] = field(default_factory=dict)
    detail: dict[str, float] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        """1 / seconds (meaningful for one decode step)."""
        return 1.0 / self.seconds


def fetch_capacity_bytes(board: Board, p: DesignParams) -> int:
    """Bytes the weight fetcher FIFOs hold together: ports x fetch_depth words x FETCH_BEATS x R."""
    return stream_ports(board, p) * p.fetch_depth * FETCH_BEATS * p.rows


def _run_fetched(cfg: ModelConfig, board: Board, p: DesignParams, tokens: int, context0: int) -> Projection:
    """The generated engine: one accelerator call per token block of at most prefill_token_block tokens
    (runtime/driver.py: one IP start per block), each call's program (every layer, the final norm after
    the last block) run against the weight fetcher (cost_fetch; its FIFOs start empty every call), then
    the LM head and the host (one ap_start round trip per call)."""
    bw = bandwidth(board, p)
    f = p.clock_mhz * 1e6
    cap = fetch_capacity_bytes(board, p)
    detail = {"load": 0.0, "compute": 0.0, "attention": 0.0, "elementwise": 0.0, "stall": 0.0, "fetch": 0.0}
    layers, done, calls = 0.0, 0, 0
    while done < tokens:
        n = min(tokens - done, p.prefill_token_block)
        one: dict[str, float] = dict.fromkeys(("load", "compute", "attention", "elementwise"), 0.0)
        build = _pipelined_layer_phases if pipelined(p, n) else _layer_phases
        layer = build(cfg, board, p, bw, n, context0 + done + n, one)
        phases = layer * cfg.n_layers  # every layer of a block runs the same program
        for k in one:
            detail[k] += cfg.n_layers * one[k]
        done += n
        calls += 1
        if done == tokens:  # the final norm (one row, before the LM head)
            final = cost_elementwise.final_norm(cfg, p) / f
            phases.append(cost_fetch.Phase(0, final))
            detail["elementwise"] += final
        nbytes = cfg.n_layers * sum(ph.nbytes for ph in layer)
        run = cost_fetch.simulate(phases, bw.weights, cap, nbytes)
        layers += run.seconds
        detail["stall"] += run.stall
        detail["fetch"] += nbytes / bw.weights
    parts = {"layers": layers, "lm_head": cost_lm_head.seconds(cfg, board, p),
             "host": host_seconds(cfg, p) + (calls - 1) * HOST_CALL_S}
    return Projection(sum(parts.values()), parts, detail)


def pipelined(p: DesignParams, tokens: int) -> bool:
    """Whether a call of `tokens` tokens runs the two-half schedule (layer_schedule.h layer_halves): the
    design has the prefill pipeline and the call at least pipe_min_tokens (>= 2) tokens."""
    return p.prefill_pipeline and tokens >= max(2, p.pipe_min_tokens)


def _run(cfg: ModelConfig, board: Board, p: DesignParams, tokens: int, context0: int) -> Projection:
    if not p.overlap:  # the TeLLMe-style serial description
        layers, head, detail = cost_serial.run(cfg, board, p, tokens, context0)
        parts = {"layers": layers, "lm_head": head, "host": host_seconds(cfg, p, logits=True)}
        return Projection(sum(parts.values()), parts, detail)
    return _run_fetched(cfg, board, p, tokens, context0)


def prefill_floor(cfg: ModelConfig, board: Board, p: DesignParams, n_tokens: int,
                  blocks: tuple[int, ...]) -> float:
    """A lower bound of prefill(cfg, board, q, n_tokens).seconds for every q that differs from p only in
    the prefill-only fields (token lanes, DSP lanes, the prefill pipeline, a prefill token block from
    `blocks`): the vector engines' work alone (element-wise stages and attention of every block and
    layer, the final norm; they run one job at a time in every schedule, and a pipelined slot lasts at
    least its vector job; a block's work the lesser of the whole block's and its pipelined halves' for
    any token lanes, attention's jobs depending on a call's size: cost_attention.plan) plus the LM head
    and the host's one call. The DSE prunes with it."""
    if not p.overlap:  # the serial description: no bound
        return 0.0
    bw = bandwidth(board, p)
    f = p.clock_mhz * 1e6

    def vector_s(q: DesignParams, tokens: int, context: int) -> float:
        work = dict.fromkeys(("attention", "elementwise"), 0.0)
        _vector_work(cfg, q, bw, tokens, context, work)
        return work["attention"] + work["elementwise"]

    best = math.inf
    for block in blocks:
        q = p.replace(prefill_token_block=block, token_lanes=1, dsp_lanes=0)
        total = 0.0
        for done in range(0, n_tokens, block):
            n, end = min(n_tokens - done, block), min(n_tokens, done + block)
            splits = {first_half(n, lanes) for lanes in (1, 2, 4, 8)} if n >= 2 else set()
            total += min([vector_s(q, n, end)]
                         + [vector_s(q, a, end - n + a) + vector_s(q, n - a, end) for a in splits])
        best = min(best, cfg.n_layers * total)
    final = cost_elementwise.final_norm(cfg, p) / f
    return best + final + cost_lm_head.seconds(cfg, board, p) + host_seconds(cfg, p)


def decode_step(cfg: ModelConfig, board: Board, p: DesignParams, context: int | None = None) -> Projection:
    """One decode step with `context` tokens already cached (default p.decode_context). Projected."""
    return _run(cfg, board, p, 1, p.decode_context if context is None else context)


def prefill(cfg: ModelConfig, board: Board, p: DesignParams, n_tokens: int) -> Projection:
    """Time to first token for an `n_tokens` prompt (all layers, LM head once). Projected."""
    return _run(cfg, board, p, n_tokens, 0)


def call(cfg: ModelConfig, board: Board, p: DesignParams, n_tokens: int, context0: int) -> Projection:
    """`n_tokens` tokens appended after `context0` cached ones (speculative decoding's verify call,
    cost/speculative.py): prefill's program at that context, the rows' attention over the cache as built.
    Projected."""
    return _run(cfg, board, p, n_tokens, context0)
