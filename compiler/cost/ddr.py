"""DDR side of the performance model: which PL->DDR port each m_axi bundle uses (port_plan, shared with
compiler/vivado_tcl.py), what the design's ports, their paths into the DDR controller and the board's
DDR can move in the board's bandwidth scenario (low / central / high, boards/*.toml), the bytes one
decode step needs, and the DDR-bound decode rate (the physical limit). Projections.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

from edgellm.boards import CCI_PATH, Board
from edgellm.compiler.cost.tlmm import MAX_STREAM_PORTS, stream_ports
from edgellm.compiler.design import DesignParams, shares_for
from edgellm.compiler.design_bytes import (
    ACT_BYTES,
    NORM_BYTES,
    kv_bytes_per_token,
    layer_weight_bytes,
    lm_head_bytes,
    weight_bytes,
)
from edgellm.errors import EdgeLLMError
from edgellm.models.config import PRESETS, ModelConfig
from edgellm.runtime.port_shares import shares_of_rates

# Effective DDR streaming rate of a GEMV on the KV260's four Cortex-A53 cores (NEON). Derived from
# bitnet.cpp's 2.77 tok/s for BitNet-b1.58-2B-4T on the KV260's A53s, as measured by bitnet-kv260
# (github MerlijnW70/bitnet-kv260, docs/measurements.md),
# reading per token the I2_S ternary weights (2 bits/weight) plus the fp16 tied embedding as LM head.
BITNET_CPP_A53_TOK_S = 2.77
BITNET_CPP_BITS_PER_WEIGHT = 2.0  # I2_S
BITNET_CPP_HEAD_BYTES = 2  # fp16 output embedding


def _arm_stream_bytes_per_s() -> float:
    cfg = PRESETS["bitnet-b1.58-2B-4T"]
    per_token = (cfg.n_ternary_params() * BITNET_CPP_BITS_PER_WEIGHT / 8
                 + cfg.vocab_size * cfg.hidden_size * BITNET_CPP_HEAD_BYTES)
    return per_token * BITNET_CPP_A53_TOK_S


ARM_STREAM_BYTES_PER_S = _arm_stream_bytes_per_s()  # about 3.3e9


@dataclass(frozen=True)
class Bandwidth:
    """Bytes/s the design can pull: weight ports together, the data port, the board's DDR; kv_port:
    one weight port reading the KV cache (its stream rate), kv_ports: the weight ports that do."""

    weights: float
    data: float
    ddr: float
    kv_port: float = 0.0
    kv_ports: int = 0


def _stream_caps(board: Board, ports: list[str]) -> list[float]:
    """Per stream on `ports` (one stream each, repeats allowed): what its path into the DDR controller
    lets it have in the board's scenario (bytes/s, inf when unlimited). Streams through the CCI get
    cci_stream_gbps each; the streams on one shared path (an XPI two HP ports share) split
    shared_path_gbps evenly; a port alone on its path gets port_stream_gbps (where the board measured
    it; else only its own beat rate limits it)."""
    caps = []
    for port in ports:
        path = board.ddr_path(port)
        if path == CCI_PATH and board.cci_stream_gbps:
            caps.append(board.pick(board.cci_stream_gbps) * 1e9)
            continue
        sharing = sum(board.ddr_path(q) == path for q in ports)
        if sharing > 1 and board.shared_path_gbps:
            caps.append(board.pick(board.shared_path_gbps) * 1e9 / sharing)
        elif board.port_stream_gbps:
            caps.append(board.pick(board.port_stream_gbps) * 1e9)
        else:
            caps.append(math.inf)
    return caps


def stream_rates(board: Board, ports: list[str], beat_bytes_per_s: float) -> list[float]:
    """Rate of each stream on `ports`: its beat rate, at most what its path gives it."""
    return [min(beat_bytes_per_s, cap) for cap in _stream_caps(board, ports)]


def _plan_rate(board: Board, weights: list[str], data: str | None) -> float:
    """The weight streams' rate together at the board's PL clock and HP width (central scenario): each
    port carries an equal share of every tile, so the slowest stream sets the pace."""
    central = board.with_scenario("central")
    beat = board.hp_port_width_bits / 8 * board.pl_clock_mhz * 1e6
    rates = stream_rates(central, weights + ([data] if data else []), beat)[:len(weights)]
    return len(weights) * min(rates)


def port_plan(board: Board, n_weight: int, allowed: list[str] | None = None) -> list[str]:
    """The PL->DDR port of each m_axi bundle: w0..w{n-1}, then the data port. The weight streams take
    the set of ports whose slowest stream is fastest in the central scenario (ties: fewer shared paths,
    fewer CCI ports, then the board's order); the data port the first remaining port by (shares a
    path with a weight stream, goes through the CCI, board order). Beyond the ports: round-robin.
    compiler/vivado_tcl.py connects the bundles so; bandwidth() models the same assignment."""
    return list(_port_plan(board, n_weight, None if allowed is None else tuple(allowed)))


@functools.lru_cache(maxsize=256)
def _port_plan(board: Board, n_weight: int, allowed: tuple[str, ...] | None) -> tuple[str, ...]:
    """port_plan, memoized: a pure function of the (frozen) board and the counts, asked for every design
    the DSE prices."""
    ports = [p for p in board.hp_port_names if allowed is None or p in allowed]
    if not ports:
        raise EdgeLLMError(f"board {board.name}: no PL->DDR port to assign")
    n = min(n_weight, len(ports))
    paths = [board.ddr_path(p) for p in ports]

    def cost(idx: tuple[int, ...]) -> tuple:
        chosen = [paths[i] for i in idx]
        shared = sum(chosen.count(x) > 1 for x in chosen if x != CCI_PATH)
        return (-_plan_rate(board, [ports[i] for i in idx], None), shared, chosen.count(CCI_PATH), idx)

    best = min(itertools.combinations(range(len(ports)), n), key=cost)
    weights = [ports[i] for i in best]
    weights += [ports[i % len(ports)] for i in range(n, n_weight)]
    rest = [i for i in range(len(ports)) if i not in best]
    if not rest:
        return (*weights, ports[n_weight % len(ports)])
    used = {paths[i] for i in best}
    data = min(rest, key=lambda i: (paths[i] in used and paths[i] != CCI_PATH, paths[i] == CCI_PATH, i))
    return (*weights, ports[data])


def port_bandwidth(board: Board, p: DesignParams, n_weight: int, per_port: float, kv_ports: int) -> Bandwidth:
    """Bandwidths of `n_weight` weight streams of at most `per_port` bytes/s each and the data port, sitting
    where port_plan puts them: each stream at most what its path gives it (_stream_caps); stream i moves
    its share s_i of every tile (design.shares_for: p.port_shares, equal by default), so together they
    move min_i(rate_i x sum(s) / s_i), the stream that finishes last setting the pace (equal shares:
    n_weight x the slowest); everything at most the scenario's DDR ceiling. kv_ports: the weight ports
    that also read the KV cache."""
    f = p.clock_mhz * 1e6
    plan = port_plan(board, n_weight)
    rates = stream_rates(board, plan, per_port)
    ddr = board.ddr_achievable_gbps * 1e9
    data_beat = min(p.data_port_width_bits, board.hp_port_width_bits) / 8 * f
    data = min(data_beat, _stream_caps(board, plan)[-1])
    shares = shares_for(p, n_weight)
    weights = min(r * sum(shares) / s for r, s in zip(rates[:n_weight], shares, strict=True))
    return Bandwidth(weights=min(weights, ddr), data=min(data, ddr), ddr=ddr,
                     kv_port=min(rates[:n_weight]), kv_ports=kv_ports)


def rate_shares(board: Board, p: DesignParams) -> tuple[int, ...]:
    """The TLMM weight ports' shares of a tile in proportion to their streams' rates in the board's central
    scenario (port_bandwidth's rates for p's ports, clock and beat): runtime/port_shares.py's rule (about
    SHARE_UNITS units rounded per port, at least one, divided by their common factor; () when that gives
    equal shares: no path shared, or every stream at its beat rate). The DSE gives its designs these
    (design.port_shares)."""
    return shares_of_rates(_weight_rates(board.with_scenario("central"), p))


def bandwidth(board: Board, p: DesignParams) -> Bandwidth:
    """Port-, path- and DDR-limited bandwidths of a design on a board, in the board's scenario
    (port_bandwidth): the generated engine streams over at most MAX_STREAM_PORTS weight ports (and at
    most the board's), one beat of min(port width, HP width, R bytes) per cycle each, and reads K/V over
    its stream ports. The serial description (overlap False) has its own (cost_serial.bandwidth)."""
    if not p.overlap:
        from edgellm.compiler.cost import serial  # it imports this module

        return serial.bandwidth(board, p)
    n_weight, per_port = _weight_streams(board, p)
    return port_bandwidth(board, p, n_weight, per_port, stream_ports(board, p))


def _weight_streams(board: Board, p: DesignParams) -> tuple[int, float]:
    """The generated engine's weight streams: how many (p's ports, at most MAX_STREAM_PORTS and the
    board's) and each one's beat rate (min(port width, HP width, R bytes) per cycle, bytes/s)."""
    f = p.clock_mhz * 1e6
    per_port = min(min(p.port_width_bits, board.hp_port_width_bits) / 8 * f, p.rows * f)
    return min(p.weight_ports, len(board.hp_port_names), MAX_STREAM_PORTS), per_port


def _weight_rates(board: Board, p: DesignParams) -> list[float]:
    """Each weight stream's rate in the board's scenario (bytes/s): its beat rate, at most what its path
    gives it, the streams and the data port placed as port_plan places them (port_bandwidth's rates)."""
    n, per_port = _weight_streams(board, p)
    return stream_rates(board, port_plan(board, n), per_port)[:n]


def head_stream_ratio(board: Board) -> float:
    """The LM head's row reads against sequential streams on the same ports (Board.head_stream_ratio, what
    the calibration kit's head run measured over its weight ports together); 1 when not measured: the
    head is then priced as the weight streams are, each port its equal share of the rows, paced by the
    slowest stream's path."""
    return 1.0 if board.head_stream_ratio is None else board.head_stream_ratio


def port_rows_bytes_per_cycle(board: Board, p: DesignParams, beat_bytes: int) -> list[float]:
    """Bytes each weight port moves per cycle while the LM head streams its rows (lm_head.seconds: port p
    reads its share of every cycle of rows, lm_head_config.h lm_block_row): one beat of `beat_bytes`, at
    most the port and HP widths and what its stream's path gives it (port_bandwidth's rates, the data
    port placed as port_plan places it) times the head's measured pattern ratio."""
    f = p.clock_mhz * 1e6
    cap = min(beat_bytes, p.port_width_bits / 8, board.hp_port_width_bits / 8)
    return [min(cap, r * head_stream_ratio(board) / f) for r in _weight_rates(board, p)]


def port_bytes_per_cycle(board: Board, p: DesignParams, beat_bytes: int) -> float:
    """The slowest weight port's bytes per cycle while the LM head streams its rows
    (port_rows_bytes_per_cycle): what paces equal shares, each port a row of every block."""
    return min(port_rows_bytes_per_cycle(board, p, beat_bytes))


def head_stream_bytes_per_s(board: Board, p: DesignParams, nports: int) -> float:
    """The LM head's rows over `nports` weight ports together (bytes/s): each port at
    port_bytes_per_cycle, at most the scenario's DDR ceiling. The calibration prices bitnet-kv260's head
    (four engines, each its own contiguous quarter of the rows) with it, the design's head
    (lm_head.seconds) is priced by the same per-port rate."""
    per_port = port_bytes_per_cycle(board, p, min(p.port_width_bits, board.hp_port_width_bits) // 8)
    return min(nports * per_port * p.clock_mhz * 1e6, board.ddr_achievable_gbps * 1e9)


def ddr_bytes_per_cycle(board: Board, p: DesignParams) -> float:
    """The board's achievable DDR bytes per design clock cycle."""
    return board.ddr_achievable_gbps * 1e9 / (p.clock_mhz * 1e6)


def activation_bytes(cfg: ModelConfig) -> int:
    """DDR bytes one token's activations move through the data port in one decode step, pass by pass as
    cost_elementwise counts them (A = ACT_BYTES fp32, G = NORM_BYTES gamma, int8 rows one byte): per
    layer the attention norm (row A, gamma G, int8 out), each linear's int8 input row and fp32 output
    row, RoPE of q and k (row in and out, this position's cos/sin), the K/V rows into the cache
    (the cache's own bytes are kv_bytes_per_token's), attention's q row in and o row out, the SubLN
    (or quantize), the residual + FFN norm (y, h read and written, gamma, int8 out), the GLU (g, u,
    [gamma], int8 out) and the last residual (y, h read and written); then the final norm, the LM
    head's int8 input row and the fp32 logits."""
    h, q, kv, f, d = cfg.hidden_size, cfg.q_size, cfg.kv_size, cfg.ffn_size, cfg.head_dim
    a, g = ACT_BYTES, NORM_BYTES
    linears = sum(n_in + a * out for out, n_in in cfg.linear_shapes().values())
    norm_q = (lambda n: (2 * a + 1) * n) if cfg.subln else (lambda n: (a + 1) * n)  # row [, gamma], int8
    layer = ((a + g + 1) * h + linears
             + 2 * a * q + a * d + 2 * a * kv + a * d  # RoPE of q and of k: row in, row out, cos/sin
             + 2 * a * kv  # K and V rows read for the cache write
             + 2 * a * q  # attention: q row in, o row out
             + norm_q(q)  # attention SubLN (or quantize)
             + (3 * a + g + 1) * h  # y, h read and written, gamma, int8 out
             + 2 * a * f + (g + 1 if cfg.subln else 1) * f  # GLU: g, u [, gamma], int8 out
             + 3 * a * h)  # last residual: y, h read and written
    return cfg.n_layers * layer + (a + g + 1) * h + h + a * cfg.vocab_size


def decode_bytes_per_token(cfg: ModelConfig, p: DesignParams, context: int | None = None) -> int:
    """DDR bytes one decode step reads and writes: weights, LM head, KV cache (context reads + one
    write) and the activations through the data port (activation_bytes: norm gammas and fp32 linear
    outputs included)."""
    ctx = p.decode_context if context is None else context
    return (weight_bytes(cfg, p) + lm_head_bytes(cfg, p.lm_head_bits)
            + (ctx + 1) * kv_bytes_per_token(cfg, p) + activation_bytes(cfg))


def ddr_bound_tokens_per_s(cfg: ModelConfig, board: Board, p: DesignParams,
                           context: int | None = None) -> float:
    """The physical limit: achievable DDR bandwidth / bytes per decode step."""
    return board.ddr_achievable_gbps * 1e9 / decode_bytes_per_token(cfg, p, context)


def weight_load_s(cfg: ModelConfig, board: Board, p: DesignParams) -> float:
    """Seconds to stream one copy of the ternary weights through the weight ports."""
    return cfg.n_layers * layer_weight_bytes(cfg, p) / bandwidth(board, p).weights
