"""Roofline points of the projected phases (decode, prefill) against the DDR and compute ceilings.

Ops: two per weight and token (a ternary MAC is an add or subtract of an int8 sum, counted as two
ops, as a multiply-accumulate is) over the decoder's linears, the LM head once per call sequence (the
logits of the last token) and attention (q.k and p.v: 2 x 2 x heads x head_dim per key a query sees).
Bytes: DDR traffic as the performance model counts it (weights streamed once per call, the LM head,
the K/V cache read and written, the activations through the data port). Ceilings: the DDR bandwidth
the PL gets (the board's central scenario) and the DDR's theoretical peak, and the TLMM's peak (R x G
x T MACs per cycle per token lane: one lane for a decode step, every lane in prefill). All projected.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgellm.boards import Board
from edgellm.compiler.cost.ddr import activation_bytes, bandwidth, decode_bytes_per_token
from edgellm.compiler.cost.tlmm import tlmm_tables
from edgellm.compiler.design import DesignParams
from edgellm.compiler.design_bytes import kv_bytes_per_token, lm_head_bytes
from edgellm.models.config import ModelConfig
from edgellm.report.timing import TimeSplit


@dataclass(frozen=True)
class Roof:
    """One phase on the roofline: its ops, DDR bytes and projected seconds, and the ceilings."""

    phase: str
    tokens: int
    ops: float
    nbytes: float
    seconds: float
    peak_ops_s: float  # the TLMM's compute ceiling for this phase (ops/s)
    ddr_bytes_s: float  # what the PL gets of the board's DDR (bytes/s, central scenario)
    ddr_peak_bytes_s: float  # the DDR's theoretical peak (bytes/s)

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, ops per DDR byte."""
        return self.ops / self.nbytes

    @property
    def attained_ops_s(self) -> float:
        """Projected ops per second."""
        return self.ops / self.seconds

    def roof(self, intensity: float, bytes_s: float | None = None) -> float:
        """The attainable ops/s at `intensity` under the compute ceiling and a bandwidth (default DDR)."""
        return min(self.peak_ops_s, intensity * (self.ddr_bytes_s if bytes_s is None else bytes_s))


def tlmm_peak_ops_s(p: DesignParams, lanes: int) -> float:
    """2 x R rows x G x T weights per cycle per token lane x lanes x clock."""
    return 2.0 * p.rows * p.group_size * tlmm_tables(p) * lanes * p.clock_mhz * 1e6


def phase_ops(cfg: ModelConfig, tokens: int, context0: int) -> float:
    """Ops of `tokens` tokens after `context0` cached ones: linears, attention (causal), LM head once."""
    linear = sum(o * i for o, i in cfg.linear_shapes().values())
    keys = sum(context0 + t + 1 for t in range(tokens))  # keys each new query attends to
    attn = 4.0 * cfg.n_heads * cfg.head_dim * keys
    return cfg.n_layers * (2.0 * linear * tokens + attn) + 2.0 * cfg.vocab_size * cfg.hidden_size


def roof(cfg: ModelConfig, board: Board, p: DesignParams, s: TimeSplit) -> Roof:
    """The roofline point of a decode or prefill TimeSplit of design p."""
    bw = bandwidth(board, p)
    if s.phase == "decode":
        nbytes = float(decode_bytes_per_token(cfg, p))
        ops, lanes = phase_ops(cfg, 1, p.decode_context), 1
    else:
        nbytes = (s.weight_bytes + s.kv_read_bytes + lm_head_bytes(cfg, p.lm_head_bits)
                  + s.tokens * (kv_bytes_per_token(cfg, p) + activation_bytes(cfg)))
        ops, lanes = phase_ops(cfg, s.tokens, 0), p.token_lanes
    return Roof(s.phase, s.tokens, ops, nbytes, s.total, tlmm_peak_ops_s(p, lanes), bw.ddr,
                board.ddr_peak_gbps * 1e9)
