"""Where a projected call's time goes: per decoder layer and per stage of a layer (edgellm report).

cost_model runs each accelerator call's program (one layer's phases for every layer, then the final
norm after the last block) against the weight fetcher's fluid model in one pass (cost_fetch.simulate).
The simulation is causal: with the program's total bytes given, the state after phase i does not
depend on the phases after it, so phase i lasts simulate(phases[:i+1]) - simulate(phases[:i]) (its
waits for weights included). This module rebuilds the programs cost_model builds for the generated
engine (overlap=True), names their phases and sums the times; the layers' sum is the Projection's
"layers" part (tests/test_report.py checks it). Everything here is projected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgellm.boards import Board
from edgellm.compiler.cost import elementwise as cost_elementwise
from edgellm.compiler.cost import fetch as cost_fetch
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost.ddr import bandwidth
from edgellm.compiler.design import DesignParams
from edgellm.models.config import ModelConfig

# One layer's program in decoder_layer.h order (cost_model._layer_phases: 13 phases; k and v beside RoPE q
# and the attention over the earlier K/V blocks in one slot).
SEQUENTIAL = ("attention norm", "q", "k, v | RoPE q + attention (earlier blocks)", "RoPE k + K/V write",
              "attention", "attention SubLN", "o", "residual + FFN norm", "gate", "up", "GLU + SubLN", "down",
              "residual")
# The pipelined prefill's vector stages (cost_model._pipelined_layer_phases) and linear stages.
VECTOR_STAGES = ("attention norm", "RoPE + attention + SubLN", "residual + FFN norm", "GLU + SubLN",
                 "residual")
LINEAR_STAGES = (("q", "k", "v"), ("o",), ("gate", "up"), ("down",))
FINAL = "final norm"


@dataclass
class TimeSplit:
    """One projected call sequence (a decode step, or a prompt's prefill) split by layer and by stage.

    layers: seconds per decoder layer (all blocks); stages: seconds per named stage over every layer and
    block (in program order); final: the final norm; lm_head, host: the Projection's other parts;
    pipelined: the stages are the two-half schedule's (a vector stage counts only the time it adds
    beyond the linears it overlaps)."""

    phase: str
    tokens: int
    layers: list[float]
    stages: dict[str, float]
    final: float
    lm_head: float
    host: float
    pipelined: bool = False
    kv_read_bytes: float = 0.0  # attention's K/V reads (the phases' other DDR traffic)
    weight_bytes: float = 0.0  # ternary weight bytes the fetchers stream (all calls)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Seconds of the whole phase (= the Projection's seconds)."""
        return sum(self.layers) + self.final + self.lm_head + self.host


def _names(pipelined: bool, n: int) -> list[str]:
    """Stage names of one layer's n phases (generic names if cost_model's program changed shape)."""
    if not pipelined:
        names = list(SEQUENTIAL)
    else:
        names = []
        for i in range(2 * len(VECTOR_STAGES)):
            if 1 <= i <= 2 * len(LINEAR_STAGES):
                names += LINEAR_STAGES[(i - 1) // 2]
            names.append(VECTOR_STAGES[i // 2])
    return names if len(names) == n else [f"phase {j}" for j in range(n)]


def _phase_times(phases: list[cost_fetch.Phase], rate: float, capacity: float) -> list[float]:
    """Seconds of each phase of one call's program (its share of cost_fetch.simulate's total)."""
    total = sum(ph.nbytes for ph in phases)
    out, before = [], 0.0
    for i in range(len(phases)):
        upto = cost_fetch.simulate(phases[:i + 1], rate, capacity, total).seconds
        out.append(upto - before)
        before = upto
    return out


def _split(cfg: ModelConfig, board: Board, p: DesignParams, tokens: int, context0: int, phase: str,
           proj: cost_model.Projection) -> TimeSplit:
    """The TimeSplit of `tokens` tokens after `context0` cached ones, whose Projection is `proj`
    (cost_model._run_fetched's calls: blocks of at most prefill_token_block tokens)."""
    out = TimeSplit(phase, tokens, [0.0] * cfg.n_layers, {}, 0.0, proj.parts.get("lm_head", 0.0),
                    proj.parts.get("host", 0.0))
    if not p.overlap:  # TeLLMe-style engine: no fetcher program; its layers are alike
        out.layers = [proj.parts["layers"] / cfg.n_layers] * cfg.n_layers
        out.stages = {k: v for k, v in proj.detail.items() if v}
        out.notes.append("serial engine (overlap off): the stages are its load, compute, attention and "
                         "element-wise sums")
        return out
    bw = bandwidth(board, p)
    cap = cost_model.fetch_capacity_bytes(board, p)
    final = cost_elementwise.final_norm(cfg, p)
    done = 0
    while done < tokens:
        n = min(tokens - done, p.prefill_token_block)
        pipelined = cost_model.pipelined(p, n)
        build = cost_model._pipelined_layer_phases if pipelined else cost_model._layer_phases
        scratch = dict.fromkeys(("load", "compute", "attention", "elementwise"), 0.0)
        layer = build(cfg, board, p, bw, n, context0 + done + n, scratch)
        out.pipelined |= pipelined
        names = _names(pipelined, len(layer))
        program = layer * cfg.n_layers
        done += n
        if done == tokens:
            program.append(cost_fetch.Phase(0, final / (p.clock_mhz * 1e6)))
        times = _phase_times(program, bw.weights, cap)
        for i, t in enumerate(times[:len(layer) * cfg.n_layers]):
            out.layers[i // len(layer)] += t
            name = names[i % len(layer)]
            out.stages[name] = out.stages.get(name, 0.0) + t
        out.final += sum(times[len(layer) * cfg.n_layers:])
        out.kv_read_bytes += cfg.n_layers * sum(ph.ddr_share_bytes for ph in layer)
        out.weight_bytes += cfg.n_layers * sum(ph.nbytes for ph in layer)
    return out


def decode_split(cfg: ModelConfig, board: Board, p: DesignParams) -> TimeSplit:
    """One decode step at p.decode_context cached tokens."""
    return _split(cfg, board, p, 1, p.decode_context, "decode", cost_model.decode_step(cfg, board, p))


def prefill_split(cfg: ModelConfig, board: Board, p: DesignParams, tokens: int) -> TimeSplit:
    """The prefill of a `tokens`-token prompt (time to first token)."""
    return _split(cfg, board, p, tokens, 0, "prefill", cost_model.prefill(cfg, board, p, tokens))
