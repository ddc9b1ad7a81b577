"""The derived design facts design.py owns (one definition each, issue 15): the TLMM's built tables, the
ports the TLMM and the LM head stream over, and the numerics plan's dot lanes, which the compile step
takes from the design alone, never from the performance model (compiler/cost/)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgellm.boards import load_board
from edgellm.compiler import steps
from edgellm.compiler.design import DesignParams, dot_lanes, stream_ports, tlmm_tables
from edgellm.compiler.pipeline import BuildConfig, BuildContext
from edgellm.models.config import ModelConfig

CFG = ModelConfig(name="facts", hidden_size=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=344,
                  vocab_size=300, max_context=64)


def test_tlmm_tables() -> None:
    # the serial description (overlap False) takes any T; the generated engine (validate) only multiples of 5
    assert [tlmm_tables(DesignParams(tables=t, overlap=False)) for t in (1, 4, 5, 9, 10, 28, 30)] == \
        [5, 5, 5, 5, 10, 25, 30]
    assert [tlmm_tables(DesignParams(tables=t)) for t in (5, 10, 25, 30)] == [5, 10, 25, 30]


def test_stream_ports() -> None:
    kv260 = load_board("kv260")
    two = dataclasses.replace(kv260, hp_port_names=kv260.hp_port_names[:2])
    for n, want in ((1, 1), (3, 3), (4, 4), (6, 4)):
        assert stream_ports(kv260, DesignParams(weight_ports=n)) == want
        assert stream_ports(None, DesignParams(weight_ports=n)) == want
        assert stream_ports(two, DesignParams(weight_ports=n)) == min(want, 2)


def test_dot_lanes() -> None:
    """attn_lanes, at most head_dim rounded up to a power of two (a pure tree)."""
    assert [dot_lanes(CFG, a) for a in (4, 16, 32, 64)] == [4, 16, 32, 32]
    odd = dataclasses.replace(CFG, head_dim=24)  # up to 32 lanes
    assert odd.head_dim == 24 and dot_lanes(odd, 64) == 32 and dot_lanes(odd, 16) == 16


def test_numerics_plan_does_not_read_the_performance_model(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    """step_dse builds the numerics plan (the bit-exact contract) from the chosen design; with the
    exploration stubbed and every attention-lane function of the cost model broken it still does."""
    from edgellm.compiler import dse
    from edgellm.compiler.cost import attention as cost_attention

    design = DesignParams(attn_lanes=16, ew_lanes=32, attn_kv_block=8, kv_bytes=2)
    monkeypatch.setattr(dse, "explore", lambda *a, **kw: SimpleNamespace(params=design))

    def broken(*a: object, **kw: object) -> int:
        raise AssertionError("the numerics plan asked the performance model")

    monkeypatch.setattr(cost_attention, "lanes", broken)
    monkeypatch.setattr(cost_attention, "lanes_for", broken)
    ctx = BuildContext(BuildConfig(None), tmp_path)
    ctx.state.update(qm=SimpleNamespace(config=CFG), board=load_board("kv260"))
    steps.step_dse(ctx)
    n = ctx.state["numerics"]
    assert (n.norm_lanes, n.dot_lanes, n.kv_block, n.kv_dtype) == (32, 16, 8, "f16")
