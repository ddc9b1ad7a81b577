"""The data port's DDR traffic (activation rows, norm gammas, the linears' int8 inputs and fp32 outputs)
stage by stage, and its charge against the weight fetcher where both draw on the DDR controller.

The data port is its own m_axi bundle on its own PS port (cost/ddr.py port_plan), so it never takes the
weight ports' beats; where it shares a path into the DDR controller with a weight stream, port_bandwidth
already splits that path. What remains is the DDR ceiling both draw on: the weight streams get
bw.weights = min(their ports' rate, the DDR ceiling), which leaves headroom = ceiling - bw.weights for
everything else. While the data port moves d bytes in a phase of s seconds, the part of d beyond
headroom x s comes out of the weight fetcher's rate (cost/fetch.py Phase.ddr_share_bytes, as attention's
K/V reads do), the data port drawing at most its own port's rate and, under the DDR controller's
round-robin, one port's share of the ceiling (so the fetcher always keeps a share). In decode the
weight streams run below the ceiling in the central scenario (four HP ports, two of them on one XPI),
so only the element-wise passes' bursts beyond that headroom count; at the high end the streams sit at
the ceiling and every data byte counts.

stage_bytes splits cost/ddr.py activation_bytes (one token) into decoder_layer.h's stages; their sum is
activation_bytes (tests/test_data_port.py).
"""

from __future__ import annotations

from edgellm.compiler.cost.ddr import Bandwidth
from edgellm.compiler.cost.fetch import Phase
from edgellm.compiler.design_bytes import ACT_BYTES, NORM_BYTES
from edgellm.models.config import ModelConfig


def gap_bytes(cfg: ModelConfig) -> tuple[int, ...]:
    """Data-port bytes of one token's element-wise gaps, in model.elementwise_gaps order: attention norm;
    RoPE of q and k + the K/V rows for the cache write; attention SubLN (or quantize); residual + FFN
    norm; GLU (+ SubLN); last residual (cost/ddr.py activation_bytes' terms)."""
    h, q, kv, f, d = cfg.hidden_size, cfg.q_size, cfg.kv_size, cfg.ffn_size, cfg.head_dim
    a, g = ACT_BYTES, NORM_BYTES
    return ((a + g + 1) * h,
            2 * a * q + a * d + 2 * a * kv + a * d + 2 * a * kv,
            (2 * a + 1) * q if cfg.subln else (a + 1) * q,
            (3 * a + g + 1) * h,
            2 * a * f + (g + 1 if cfg.subln else 1) * f,
            3 * a * h)


def rope_q_bytes(cfg: ModelConfig) -> int:
    """gap_bytes' share of RoPE q for one token (the sequential schedule runs it beside the k and v
    linears): the q row in and out, the tables' row."""
    return 2 * ACT_BYTES * cfg.q_size + ACT_BYTES * cfg.head_dim


def linear_bytes(out: int, n_in: int) -> int:
    """Data-port bytes of one linear for one token: its int8 input row and its fp32 output row."""
    return n_in + ACT_BYTES * out


def attention_bytes(cfg: ModelConfig) -> int:
    """Data-port bytes of attention for one token: the q row in, the o row out (fp32)."""
    return 2 * ACT_BYTES * cfg.q_size


def final_bytes(cfg: ModelConfig) -> int:
    """After the layers, one token: the final norm (row, gamma, int8 out), the LM head's int8 input row
    and its fp32 logits."""
    h = cfg.hidden_size
    return (ACT_BYTES + NORM_BYTES + 1) * h + h + ACT_BYTES * cfg.vocab_size


def stage_bytes(cfg: ModelConfig) -> dict[str, int]:
    """One token's data-port bytes per stage of a layer (gaps, each linear, attention) and after them."""
    gaps = gap_bytes(cfg)
    out = {f"gap{i}": b for i, b in enumerate(gaps)}
    out.update({name: linear_bytes(*shape) for name, shape in cfg.linear_shapes().items()})
    out["attention"] = attention_bytes(cfg)
    out["final"] = final_bytes(cfg)
    return out


def headroom(bw: Bandwidth) -> float:
    """Bytes/s of the DDR ceiling the weight streams leave to the data port."""
    return max(0.0, bw.ddr - bw.weights)


def draw(bw: Bandwidth) -> float:
    """The most bytes/s the data port takes from the DDR while the weight streams also want it: its own
    port's rate, and under the DDR controller's round-robin between ports busy at once (the weight
    streams' ports and the data port) one port's share of the ceiling."""
    return min(bw.data, bw.ddr / (max(1, bw.kv_ports) + 1))


def charged(ph: Phase, data_bytes: float, bw: Bandwidth) -> Phase:
    """ph with the data port's `data_bytes` during it charged against the weight fetcher where they
    exceed the DDR headroom over the phase (the data port drawing at most draw(bw))."""
    moved = min(data_bytes, draw(bw) * ph.seconds)
    excess = moved - headroom(bw) * ph.seconds
    return ph if excess <= 0 else ph._replace(ddr_share_bytes=ph.ddr_share_bytes + excess)
