"""The decode / prefill projection of a low-bit design as built (docs/performance.md "Low-bit models"):
the engine's program against the top's weight fetchers. Projections, not measurements.

The generated top of a low-bit design runs the ternary one's fetchers (top.h, top_fetch.h fetch_program):
per weight port a process walks the call's descriptor program and pushes the port's image of every
linear's stream (lowbit_policy.h lowbit_mm_policy::fetch, one 128-bit beat a word, once per engine pass)
into its FIFO of fetch_depth words, in the order the engine pops them (lowbit_source.h). So while the
engine runs the element-wise stages and attention, the ports stream the next linears' weights, up to the
FIFOs' capacity. This is the ternary projection's program (cost/model.py _layer_phases: element-wise
gaps, attention whose K/V reads take DDR bandwidth from the fetcher, the data port's bytes charged where
they pass the DDR ceiling) with the low-bit engine's linears as its FIFO consumers (_linear_phase: the
stream's bytes, the slowest engine's cycles when the data is there), run against cost/fetch.py's fluid
model of the fetcher (the FIFOs start empty every call); then the final norm, the LM head (not
prefetched: cost/lm_head.py's int8 head at P = 16, or with m.lowbit_head one more linear on the engine)
and the host.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from edgellm.boards import Board
from edgellm.compiler.cost import elementwise as cost_elementwise
from edgellm.compiler.cost import fetch as cost_fetch
from edgellm.compiler.cost import lm_head as cost_lm_head
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.cost.ddr import Bandwidth, activation_bytes, bandwidth
from edgellm.compiler.cost.lowbit import (
    PORT_BITS,
    LowbitEngine,
    LowbitModel,
    TensorFormat,
    linear_cycles,
    linear_seconds,
    stream_bytes,
)
from edgellm.compiler.cost.model import host_seconds
from edgellm.compiler.design import DesignParams, head_beat_bytes, stream_ports
from edgellm.compiler.design_bytes import kv_bytes_per_token
from edgellm.models.config import ModelConfig


def decode_bytes(cfg: ModelConfig, m: LowbitModel, p: DesignParams, eng: LowbitEngine) -> int:
    """DDR bytes of one decode step: weight and head streams, K/V (context reads + one write), the
    activations through the data port (cost/ddr.py activation_bytes)."""
    return (m.weight_bytes(cfg, eng.rows, eng.beat_bits) + (p.decode_context + 1) * kv_bytes_per_token(cfg, p)
            + activation_bytes(cfg))


def ddr_bound_tokens_per_s(cfg: ModelConfig, board: Board, m: LowbitModel, p: DesignParams,
                           eng: LowbitEngine) -> float:
    """The model's own DDR bound: the board's achievable bandwidth / decode_bytes (the ternary estimate's
    definition, cost/ddr.py ddr_bound_tokens_per_s, over the low-bit design's bytes)."""
    return board.ddr_achievable_gbps * 1e9 / decode_bytes(cfg, m, p, eng)


def engine_bandwidth(board: Board, p: DesignParams) -> Bandwidth:
    """The low-bit engine's weight streams: it takes a 128-bit word of every lane a beat (lockstep,
    lowbit_source.h), so its ports carry equal shares whatever shares p gives the LM head's rows, unless
    the weight gearbox (p.lowbit_gear, lowbit_gear.h) lets the fast ports carry part of the slow lanes:
    then they stream at p.port_shares as the head's rows do."""
    return bandwidth(board, p if p.lowbit_gear else p.replace(port_shares=()))


def fifo_bytes(board: Board, p: DesignParams) -> int:
    """Bytes the weight FIFOs hold together: one per stream port, fetch_depth 128-bit words."""
    return stream_ports(board, p) * p.fetch_depth * PORT_BITS // 8


@functools.lru_cache(maxsize=1 << 16)
def _linear_phase(out: int, n_in: int, fmt: TensorFormat, eng: LowbitEngine, tokens: int,
                  clock_hz: float) -> cost_fetch.Phase:
    """One linear as a FIFO consumer: the bytes its ports' images stream (once per engine pass of at most
    MAXT tokens) and the slowest engine's time when they are there."""
    passes = -(-tokens // eng.max_tokens)
    return cost_fetch.Phase(passes * stream_bytes(out, n_in, fmt, eng.rows, eng.beat_bits),
                            linear_cycles(out, n_in, fmt, eng, tokens) / clock_hz)


@dataclass
class LowbitRun:
    """A projected run split as built (seconds): per decoder layer (all calls; its linears, stalls
    included, and its vector work), per linear name (summed over layers and calls), the layers' vector
    work (element-wise stages, attention), the final norm, the LM head, the host; stall: the time the
    engine waited for weights (part of the linears')."""

    layers: list[float] = field(default_factory=list)
    linears: dict[str, float] = field(default_factory=dict)
    vector: float = 0.0
    final: float = 0.0
    lm_head: float = 0.0
    host: float = 0.0
    stall: float = 0.0

    def parts(self) -> dict[str, float]:
        """{"linears", "vector" (the final norm included), "lm_head", "host"}: they sum to the run's
        seconds."""
        return {"linears": sum(self.linears.values()), "vector": self.vector + self.final,
                "lm_head": self.lm_head, "host": self.host}


def _call(cfg: ModelConfig, board: Board, m: LowbitModel, eng: LowbitEngine, p: DesignParams, n: int,
          context: int, final: bool, run: LowbitRun) -> None:
    """One accelerator call of n tokens ending at `context`: every layer's program (cost/model.py's, the
    low-bit linears in it) and, when `final`, the final norm, against the fetcher; adds to `run`."""
    bw, f = engine_bandwidth(board, p), p.clock_mhz * 1e6
    sh = cfg.linear_shapes()
    phases: list[cost_fetch.Phase] = []
    # per phase: its layer, its linears' shares of its linear time (none: vector work; several in the slot of
    # k and v, by the bytes each streams) and the vector work it holds (that slot holds RoPE q and the
    # attention over the earlier K/V blocks: that part of its time is vector work)
    names: list[tuple[int, tuple[tuple[str, float], ...], float]] = []
    programs: dict[tuple, tuple[list[cost_fetch.Phase], list]] = {}
    for i, layer in enumerate(m.layers):
        key = tuple(layer.items())
        if key not in programs:  # layers of the same formats run the same program
            streamed: dict[str, int] = {}  # bytes per linear, as the program calls them

            def lin(name: str, layer: dict[str, TensorFormat] = layer, streamed: dict[str, int] = streamed
                    ) -> cost_fetch.Phase:
                ph = _linear_phase(*sh[name], layer[name], eng, n, f)
                streamed[name] = ph.nbytes
                return ph

            detail: dict[str, float] = dict.fromkeys(("attention", "elementwise"), 0.0)
            labels: list[tuple[tuple[str, ...], float]] = []
            prog = cost_model._layer_phases(cfg, board, p, bw, n, context, detail, lin, labels)
            shares = [(tuple((x, streamed[x] / sum(streamed[y] for y in lins)) for x in lins), vec)
                      for lins, vec in labels]
            programs[key] = (prog, shares)
        prog, shares = programs[key]
        phases += prog
        names += [(i, lin_shares, vec) for lin_shares, vec in shares]
    if final:  # the final norm (one row, before the LM head)
        phases.append(cost_fetch.Phase(0, cost_elementwise.final_norm(cfg, p) / f))
        names.append((-1, (), 0.0))
    durations: list[float] = []
    res = cost_fetch.simulate(phases, bw.weights, fifo_bytes(board, p), durations=durations)
    run.stall += res.stall
    for (i, lins, vec), s in zip(names, durations, strict=True):
        if i < 0:
            run.final += s
            continue
        run.layers[i] += s
        v = s if not lins else min(vec, s)  # a slot's vector work up to its time, the rest its linears'
        run.vector += v
        for name, share in lins:
            run.linears[name] = run.linears.get(name, 0.0) + (s - v) * share


def run_split(cfg: ModelConfig, board: Board, m: LowbitModel, eng: LowbitEngine, p: DesignParams,
              tokens: int, context0: int) -> LowbitRun:
    """`tokens` new tokens after `context0` cached ones (decode: 1; prefill: the prompt, in calls of
    prefill_token_block tokens), as built: each call's program against the weight fetchers, then the head
    once (the int8 head, or with m.lowbit_head the low-bit linear), the host per call."""
    run = LowbitRun(layers=[0.0] * len(m.layers))
    done = calls = 0
    while done < tokens:
        n = min(tokens - done, p.prefill_token_block)
        _call(cfg, board, m, eng, p, n, context0 + done + n, done + n == tokens, run)
        done += n
        calls += 1
    if m.lowbit_head:
        wbps = engine_bandwidth(board, p).weights
        run.lm_head = linear_seconds(cfg.vocab_size, cfg.hidden_size, m.head, eng, 1, p.clock_mhz * 1e6, wbps)
    else:
        run.lm_head = cost_lm_head.seconds(cfg, board, p, beat=head_beat_bytes(p, "lowbit"))
    run.host = host_seconds(cfg, p, calls)
    return run


def run_seconds(cfg: ModelConfig, board: Board, m: LowbitModel, eng: LowbitEngine, p: DesignParams,
                tokens: int, context0: int) -> dict[str, float]:
    """run_split's parts: linears (stalls included), vector work, LM head, host; they sum to the run."""
    return run_split(cfg, board, m, eng, p, tokens, context0).parts()
