"""The LM head's resource model counts what lm_head.h builds in the generated top: with the multi-row head
(lm_dot_rows, MAX_TOK = layout.head_rows(max_t, design.head_lanes) token lanes) every fetched beat is dotted
with every row's beat in the same cycle, so the MACs, the rows' on-chip beats (qbuf, one memory per row)
and the per-row scoring state grow with the lanes the generated config builds. The lanes are a design
field (DesignParams.head_lanes), clamped to the design's block."""

from __future__ import annotations

import dataclasses
import math

import pytest

from edgellm.boards import load_board
from edgellm.compiler.codegen_config import head_fields
from edgellm.compiler.cost import lm_head as cost_lm_head
from edgellm.compiler.cost.memory import auto_memory, bram36_for, mux_luts
from edgellm.compiler.cost.ops import INT8_MACS_PER_DSP
from edgellm.compiler.design import DesignParams, stream_ports
from edgellm.models.config import PRESETS
from edgellm.runtime import layout

LARGE = PRESETS["bitnet_b1_58-large"]


def _built_max_tok(cfg, p: DesignParams) -> int:
    """MAX_TOK of the head codegen writes for p (max_t as compiler/steps.py step_plan_memory sizes it)."""
    fields = head_fields(cfg, p.rows, layout.TOP_K, 1, max_t=min(p.prefill_token_block, cfg.max_context),
                         lanes=p.head_lanes)
    return next(v for name, v, _ in fields if name == "MAX_TOK")


@pytest.mark.parametrize("board_name", ["kv260", "zcu104", "pynq_z2"])
@pytest.mark.parametrize("head_lanes", [1, 2, 4, 8])
def test_head_resources_grow_with_the_built_token_lanes(board_name: str, head_lanes: int) -> None:
    board = load_board(board_name)
    prev = None
    for block in (1, 2, 4, 8, 16, 64):
        p = DesignParams(rows=16, weight_ports=4, prefill_token_block=block, token_lanes=1,
                         head_lanes=head_lanes)
        lanes = _built_max_tok(LARGE, p)
        assert cost_lm_head.head_lanes(LARGE, p) == lanes == min(block, head_lanes)
        r = cost_lm_head.resources(LARGE, board, p)
        macs = lanes * stream_ports(board, p) * p.rows  # lm_dot_rows: MAX_TOK x NPORTS x P int8 MACs
        one = cost_lm_head.resources(LARGE, board, p.replace(head_lanes=1))
        assert r.dsp - one.dsp == math.ceil(macs / INT8_MACS_PER_DSP[board.ps]) - math.ceil(
            macs // lanes / INT8_MACS_PER_DSP[board.ps])
        row_beats = bram36_for(8 * p.rows, -(-LARGE.hidden_size // p.rows))
        assert r.bram36 == lanes * row_beats  # qbuf: one memory per row
        if prev is not None:
            grew = lanes > prev[0]
            assert (r.lut > prev[1].lut and r.ff > prev[1].ff and r.dsp > prev[1].dsp) == grew, (block, r)
            assert (r == prev[1]) == (not grew)
        prev = (lanes, r)


def test_kv260_large_head_at_eight_lanes() -> None:
    """The KV260 large design's head (4 ports x 16-byte beats, 8 lanes): 512 int8 MACs, 256 DSPs for them
    (two a DSP48E2) beside the scoring's fp32 operators, and over 8k LUTs; one lane stays under 3k beside
    the token row it packs its beats from (16 LUTRAM banks and the data beat's rotation into aligned
    blocks, maxi.h row_load_banked: priced since the twelfth session)."""
    board = load_board("kv260")
    p = DesignParams(rows=16, weight_ports=4, prefill_token_block=64, token_lanes=1, head_lanes=8)
    eight = cost_lm_head.resources(LARGE, board, p)
    one = cost_lm_head.resources(LARGE, board, p.replace(head_lanes=1))
    row = auto_memory(8, -(-LARGE.hidden_size // 16) + 1, 16).lut + 16 * 8 * mux_luts(16)
    assert eight.dsp >= 256 and eight.lut > 8 * 1024 and one.lut - row < 3000 and one.dsp < 40
    narrow = cost_lm_head.resources(LARGE, board, p.replace(head_lanes=1, data_port_width_bits=64))
    assert one.lut - narrow.lut == 16 * 8 * mux_luts(16) - 8 * 8 * mux_luts(8)  # the rotation: 16 or 8 fields
    assert one == cost_lm_head.resources(LARGE, board, p.replace(prefill_token_block=1))  # clamped alike
    two, four = (cost_lm_head.resources(LARGE, board, p.replace(head_lanes=n)) for n in (2, 4))
    assert one.lut < two.lut < four.lut < eight.lut


def test_a_short_context_model_builds_fewer_lanes() -> None:
    """max_t is the block at most the model's context: a model of context 4 builds a 4-lane head."""
    cfg = dataclasses.replace(LARGE, max_context=4)
    p = DesignParams(rows=16, weight_ports=4, prefill_token_block=64, token_lanes=1)
    board = load_board("kv260")
    assert cost_lm_head.head_lanes(cfg, p) == _built_max_tok(cfg, p) == 4
    assert cost_lm_head.resources(cfg, board, p) == cost_lm_head.resources(
        LARGE, board, p.replace(prefill_token_block=4))


def test_off_the_fabric_head_uses_nothing() -> None:
    p = DesignParams(lm_head_on_fabric=False, prefill_token_block=64)
    assert cost_lm_head.resources(LARGE, load_board("kv260"), p) == cost_lm_head.resources(
        LARGE, load_board("kv260"), p.replace(head_lanes=1)) == cost_lm_head.resources(
        LARGE, load_board("kv260"), p.replace(prefill_token_block=1))


def test_head_lanes_is_a_validated_design_field() -> None:
    from edgellm.errors import EdgeLLMError

    assert DesignParams().head_lanes == layout.HEAD_ROWS_MAX  # the head every project built before
    for bad in (0, 3, 16, True):
        with pytest.raises(EdgeLLMError, match="head_lanes"):
            DesignParams(head_lanes=bad)
