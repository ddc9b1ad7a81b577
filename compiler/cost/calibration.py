"""Calibration: the published designs the performance and resource models are checked against, with the
figures fitted to them kept apart from the held-out ones (docs/performance.md "Calibration").

- TeLLMe v2 (KV260, bitnet_b1_58-large): its speed through the code path of the headline figures (the
  generated engine's, overlap=True) configured like its released design (tellme_overlap_params); its
  resources through its own serial description (tellme_params: its URAM weight buffer is not our bank
  layout, so our engine's resource model would not describe it).
- bitnet-kv260 (KV260, BitNet-b1.58-2B-4T, an RTL design measured on the board): the bandwidth model's
  central XPI 4 share is taken from its model stream (fitted); its bytes per token and its head stream
  (priced by the function that prices our head) are held out.

A fitted figure is listed as fitted with its error, never as a prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgellm.boards import SCENARIOS, load_board
from edgellm.compiler.cost import ddr as cost_ddr
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.design import FETCH_DEPTH_RANGE, DesignParams, tlmm_tables
from edgellm.compiler.design_bytes import linear_bytes, weight_bytes
from edgellm.compiler.estimate import Estimate, Range, estimate
from edgellm.models.config import PRESETS, ModelConfig

# TeLLMe v2 published figures: speeds from arXiv 2510.15926 (abstract: "Under a 5W power budget, TeLLMe
# delivers up to 25 tokens/s decoding throughput and 0.45-0.96 s time-to-first-token (TTFT) for 64-128
# token prompts"); resources as reported for its released KV260 build (github UCI-CORSA/TeLLMe_FPGA_2026),
# not re-derived here. The paper's body (its weight-loading ports, burst and clock, decode attention, the
# context the 25 tokens/s was measured at) is not among the sources read here: only its abstract is, which
# states none of them, so nothing in the replica below is configured from the paper beyond the abstract.
TELLME_PUBLISHED = {
    "decode tok/s": 25.0, "TTFT 64 tokens (s)": 0.45, "TTFT 128 tokens (s)": 0.96,
    "LUT": 98303, "FF": 136721, "DSP": 610, "BRAM36": 98.5, "URAM": 60,
}
# Figures fitted to TeLLMe rather than predicted: LUT, FF, BRAM36 through resource_model's fixed terms,
# TTFT(64) through TELLME_PREFILL_TOKEN_BLOCK.
TELLME_FITTED = {"LUT", "FF", "BRAM36", "TTFT 64 tokens (s)"}
# [fitted] prompt tokens per weight pass in TeLLMe's prefill: the integer whose TTFT(64) on the overlap
# path comes closest to the published 0.45 s (fit_tellme_prefill_block; tests check it is the argmin).
# TeLLMe's TTFT grows by about 8 ms per prompt token, four times its TLMM compute per token, which this
# reads as the weights being re-streamed once every few prompt tokens.
TELLME_PREFILL_TOKEN_BLOCK = 3

# bitnet-kv260 (github MerlijnW70/bitnet-kv260, docs/measurements.md): KV260, 250 MHz, four read engines
# x 16 B on S_AXI_HP0..3_FPD (AXI DMA MM2S, 64-beat bursts), BitNet-b1.58-2B-4T at 5 trits/byte with a
# ternary head. Both streams are read the same way (runtime/bitnet_kria.c engine_phase): engine i reads its
# own contiguous quarter of the rows (the model's per phase, the head's 32,064 rows of 512 B), in 8 chunks.
BITNET_KV260 = {
    "model stream bytes": 417_546_240,  # "Bandwidth": in 32.799 ms = 12.73 GB/s
    "head stream bytes": 65_667_072,
    "weight stream GB/s": (12.73, 12.73),
    # results/probe-2026-09-26.txt: every engine's done count polled, 1031 head chunks of 2,052,096 B an
    # engine: all four done at 610.7 us = 13.44 GB/s (HP1/HP2 engines 3.36 GB/s, HP0/HP3 3.85-3.86).
    # docs/measurements.md's 15.93-16.01 GB/s (4.103-4.123 ms) is the runtime's stage-1 timer, t1 - t0
    # minus the top-K work of every chunk, which runs while the next chunk streams: in the probe's run it
    # read 3.998 ms, 16.4 GB/s, above the four engines' 16.0 GB/s beat rate.
    "head stream GB/s": (13.44, 13.44),
    "decode tok/s": (16.29, 16.78),  # 16.78 bench ("Speed"), 16.29 beside bitnet.cpp; 15.44 over a battery
    "token ms": 59.6,  # "Where a generated token goes": weights 32.80, glue 6.85, head 5.43 (4.12 its
    # stream), attention 4.78 (on the A53s), norms/quantisation/RoPE/residuals 3.50, shift scan 2.50, ...
}


def tellme_params(cfg: ModelConfig) -> DesignParams:
    """TeLLMe's released KV260 design (github UCI-CORSA/TeLLMe_FPGA_2026) as its serial description:
    the resource model's view of it (and the overlap=False engine)."""
    g, t, r = 3, 28, 16
    return DesignParams(
        group_size=g, tables=t, rows=r, clock_mhz=250.0,
        weight_ports=3, port_width_bits=256,  # three 256-bit weight ports (768-bit beat)
        data_port_width_bits=128,  # assumption: one HP-width port for activations/KV
        bits_per_weight=2.06, overlap=False,
        lm_head_on_fabric=False,
        # Assumption: int8 NEON GEMV. An fp16 head alone would stream 98 MB at the A53s' ~3.3 GB/s
        # (30 ms), which with the >= 12 ms weight stream cannot fit the published 40 ms per token.
        lm_head_bits=8,
        weight_buffer="uram",
        weight_buffer_depth=3 * math.ceil(cfg.hidden_size / (g * t)) * cfg.hidden_size // r,  # [3][19][1536]
        prefill_token_block=TELLME_PREFILL_TOKEN_BLOCK,
        attn_q_block=8, attn_kv_block=32, attn_lanes=16,  # lanes: assumption
        # decode_context: assumption, the table's 128-token context (the abstract's "up to 25 tokens/s"
        # names none; docs/performance.md "Calibration" gives the projection's sensitivity to it)
        kv_bytes=2, decode_context=128, max_context=1024,
        ip_calls_per_token=cfg.n_layers,  # assumption: the PYNQ host starts the IP once per layer
    )


def tellme_overlap_params(cfg: ModelConfig, block: int = TELLME_PREFILL_TOKEN_BLOCK) -> DesignParams:
    """TeLLMe's design on the generated engine's path (overlap=True, the headline's): G3, R16, T25 (TeLLMe's
    28 rounded down to the engine's multiple of 5), three 128-bit-landing weight ports, 2.06 bits/weight, the
    LM head on the A53s, one IP start per layer, no decoupled fetcher (the smallest fetch FIFO), and its
    attention after the q, k, v linears (attn_split off: not beside k and v). What this path cannot
    express: TeLLMe's serial weight load (the engine overlaps a tile's load with the previous tile's
    compute), its K/V reads over one port (the engine's decode attention reads over the weight ports) and
    its URAM weight buffer layout (docs/performance.md "Calibration")."""
    p = tellme_params(cfg)
    return p.replace(overlap=True, tables=tlmm_tables(p), fetch_depth=FETCH_DEPTH_RANGE[0],
                     weight_buffer_depth=0, prefill_token_block=block, attn_split=False)


@dataclass(frozen=True)
class Anchor:
    """A published or measured figure beside the model's projection of it (central, with its low and
    high ends). status: "fitted" (the model is fitted to it), "held-out" (predicted)."""

    source: str
    figure: str
    published: tuple[float, float]  # (lo, hi); lo == hi for a single figure
    projected: Range
    status: str
    note: str = ""

    @property
    def in_range(self) -> bool:
        """Whether the published figure (interval) meets the projected low-high range."""
        a, b = sorted((self.projected.low, self.projected.high))
        return self.published[0] <= b and self.published[1] >= a

    @property
    def error(self) -> float:
        """Central projection against the published figure (or its nearest end), in percent."""
        lo, hi = self.published
        c = self.projected.central
        ref = lo if c < lo else hi if c > hi else c
        return 100.0 * (c - ref) / ref


def _same(x: float) -> Range:
    return Range(x, x, x)


def _speed(cfg: ModelConfig, p: DesignParams) -> dict[str, Range]:
    """decode tok/s and TTFT(64/128) of p on the KV260 at the low, central and high bandwidth (its clock)."""
    runs = {}
    for s in SCENARIOS:
        b = load_board("kv260").with_scenario(s)
        runs[s] = (cost_model.decode_step(cfg, b, p).tokens_per_s, cost_model.prefill(cfg, b, p, 64).seconds,
                   cost_model.prefill(cfg, b, p, 128).seconds)
    keys = ("decode tok/s", "TTFT 64 tokens (s)", "TTFT 128 tokens (s)")
    return {k: Range(runs["central"][i], runs["low"][i], runs["high"][i]) for i, k in enumerate(keys)}


def tellme_estimate() -> Estimate:
    """TeLLMe's serial description on the KV260 (its resources)."""
    cfg = PRESETS["bitnet_b1_58-large"]
    return estimate(cfg, load_board("kv260"), tellme_params(cfg), ranges=False)


def tellme_anchors() -> list[Anchor]:
    """TeLLMe v2's published figures: speed on the overlap path, resources from its serial description."""
    cfg = PRESETS["bitnet_b1_58-large"]
    tot = tellme_estimate().resources["total"]
    projected = {**_speed(cfg, tellme_overlap_params(cfg)),
                 **{k: _same(getattr(tot, k.lower())) for k in ("LUT", "FF", "DSP", "BRAM36", "URAM")}}
    notes = {"decode tok/s": "overlap path, measured lone-stream rate; not expressed: TeLLMe's serial load, "
                             "one-port K/V",
             "TTFT 64 tokens (s)": "prefill token block fitted",
             "TTFT 128 tokens (s)": "slope check of the fit",
             "LUT": "fixed platform term", "FF": "fixed platform term", "BRAM36": "fixed platform term",
             "DSP": "unit costs", "URAM": "unit costs"}
    return [Anchor("TeLLMe v2", k, (v, v), projected[k], "fitted" if k in TELLME_FITTED else "held-out",
                   notes.get(k, "overlap path")) for k, v in TELLME_PUBLISHED.items()]


def bitnet_kv260_params() -> DesignParams:
    """bitnet-kv260's read side as a design: four 128-bit read ports on HP0-HP3 at 250 MHz (R = 16: one
    16-byte beat a cycle each)."""
    return DesignParams(rows=16, weight_ports=4, port_width_bits=128, clock_mhz=250.0)


def bitnet_kv260_anchors() -> list[Anchor]:
    """bitnet-kv260's measurements: the bytes of its token through our packing (held out), the weight
    stream the bandwidth model's central XPI 4 share is derived from (fitted), its head stream priced as it
    splits the rows (cost_ddr.head_stream_bytes_per_s: equal quarters on its four ports, paced by the
    slowest stream; held out)."""
    cfg, m, p = PRESETS["bitnet-b1.58-2B-4T"], BITNET_KV260, bitnet_kv260_params()
    mb = (weight_bytes(cfg, p) + linear_bytes(cfg.vocab_size, cfg.hidden_size, p)) / 1e6
    boards = {s: load_board("kv260").with_scenario(s) for s in SCENARIOS}
    rate = {s: cost_ddr.bandwidth(b, p).weights / 1e9 for s, b in boards.items()}
    head = {s: cost_ddr.head_stream_bytes_per_s(b, p, p.weight_ports) / 1e9 for s, b in boards.items()}
    total = (m["model stream bytes"] + m["head stream bytes"]) / 1e6
    return [
        Anchor("bitnet-kv260", "bytes per token (MB)", (total, total), _same(mb), "held-out",
               "5 trits/byte packing, ternary head"),
        Anchor("bitnet-kv260", "weight stream GB/s (HP0-HP3)", m["weight stream GB/s"],
               Range(rate["central"], rate["low"], rate["high"]), "fitted",
               "central XPI 4 share derived from it"),
        Anchor("bitnet-kv260", "head stream GB/s (HP0-HP3)", m["head stream GB/s"],
               Range(head["central"], head["low"], head["high"]), "held-out",
               "priced as its head: 4 equal quarters paced by XPI 4"),
    ]


def calibration() -> list[Anchor]:
    """Every anchor, TeLLMe's first."""
    return tellme_anchors() + bitnet_kv260_anchors()


def tellme_calibration() -> list[tuple[str, float, float, float]]:
    """Rows of (figure, published, projected central, error %) for TeLLMe."""
    return [(a.figure, a.published[0], a.projected.central, a.error) for a in tellme_anchors()]


def fit_tellme_prefill_block(blocks: range = range(1, 17)) -> int:
    """The prefill token block whose TTFT(64) on the overlap path (central bandwidth) is closest to the
    published 0.45 s: how TELLME_PREFILL_TOKEN_BLOCK was chosen."""
    cfg, board = PRESETS["bitnet_b1_58-large"], load_board("kv260")
    target = TELLME_PUBLISHED["TTFT 64 tokens (s)"]

    def miss(block: int) -> float:
        return abs(cost_model.prefill(cfg, board, tellme_overlap_params(cfg, block), 64).seconds - target)

    return min(blocks, key=miss)
