"""The designs an exploration keeps for plots (edgellm report, estimate --html): the designs it scored
on TTFT and an even spread of the feasible ones by decode speed, with their projected decode tok/s and
TTFT, and their JSON form (report/estimate.json "dse").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgellm.boards import Board
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.design import DesignParams
from edgellm.models.config import ModelConfig

SAMPLE_DESIGNS = 200  # feasible designs DseResult.sample keeps (spread by decode rank)
Point = tuple[float, float, DesignParams]  # (decode tok/s, TTFT s, design)


def design_label(p: DesignParams) -> str:
    """The explored fields of p in a short line (plots' tooltips)."""
    glu = f"/{p.ew_glu_vec}" if p.ew_glu_vec else ""
    return (f"G{p.group_size} T{p.tables} R{p.rows} OL{p.out_lanes} P{p.weight_ports} {p.weight_buffer}/"
            f"{p.act_buffer} head-{'fabric' if p.lm_head_on_fabric else 'arm'} A{p.attn_lanes} "
            f"KV{p.attn_kv_block} EW{p.ew_vec}{glu} TP{p.token_lanes} DSP{p.dsp_lanes} "
            f"PB{p.prefill_token_block}{' pipe' if p.prefill_pipeline else ''} F{p.fetch_depth} "
            f"HL{p.head_lanes}")


def sample_designs(cfg: ModelConfig, board: Board, feasible: list[tuple[float, float, Any]],
                   build: Callable[[Any], DesignParams], tokens: int) -> tuple[Point, ...]:
    """Up to SAMPLE_DESIGNS of the feasible (decode, LUT fraction, entry) triples, evenly spread over their
    decode ranking, each with its decode tok/s and its TTFT for `tokens` tokens (computed for the plot,
    not for the search); build(entry) is the entry's design."""
    ranked = sorted(feasible, key=lambda f: f[0])
    picks = ranked[::max(1, -(-len(ranked) // SAMPLE_DESIGNS))]
    return tuple((dec, cost_model.prefill(cfg, board, p, tokens).seconds, p)
                 for dec, p in ((dec, build(q)) for dec, _, q in picks))


def record(chosen: DesignParams, feasible: int, explored: int, tokens: int, scored: tuple[Point, ...],
           sample: tuple[Point, ...]) -> dict[str, Any]:
    """The explored designs as JSON: counts, the chosen design's label and one row per distinct point
    (designs that differ only where weights and activations are stored tie)."""
    rows: dict[tuple, dict] = {}
    for kind, pts in (("scored", scored), ("sample", sample)):
        for d, t, p in pts:
            k = (round(d, 2), round(t, 5), kind)
            if k not in rows:
                rows[k] = {"decode_tok_s": k[0], "ttft_s": k[1], "set": kind, "design": design_label(p)}
    return {"feasible": feasible, "explored": explored, "ttft_tokens": tokens, "chosen": design_label(chosen),
            "designs": list(rows.values())}
