"""Frontend, verifier and fusion passes."""

import pytest

from edgellm.compiler.frontend import build_graph
from edgellm.compiler.ir import IRError, Op, verify
from edgellm.compiler.passes.fuse_linear_epilogues import fuse_linear_epilogues
from edgellm.compiler.passes.fuse_norm_quant import fuse_norm_quant
from edgellm.models.config import ModelConfig
from edgellm.models.random_model import random_model


@pytest.mark.parametrize("subln", [True, False])
def test_fusion_structure(subln: bool) -> None:
    cfg = ModelConfig(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=100,
                      vocab_size=97, max_context=64, subln=subln, act="relu2" if subln else "silu")
    g = build_graph(random_model(cfg))
    verify(g)
    verify(fuse_norm_quant(g))
    verify(fuse_linear_epilogues(g))
    kinds = [o.kind for o in g.ops if o.layer == 0]
    assert kinds == ["norm_quant", "linear_group", "attention", "norm_quant", "linear_group",
                     "norm_quant", "linear_group", "norm_quant", "linear_group"]
    qkv = g.ops[2]
    assert [x["name"] for x in qkv.attrs["linears"]] == ["layers.0.q", "layers.0.k", "layers.0.v"]
    assert [x["output"] for x in qkv.attrs["linears"]] == [f"layers.0.{n}.out" for n in "qkv"]
    assert [e["kind"] for e in qkv.attrs["epilogue"]] == ["rope", "rope", "kv_write"]
    assert qkv.outputs == ["layers.0.q.rope"]
    assert not any(o.kind in ("rmsnorm", "quantize", "rope", "residual") for o in g.ops)


def test_verifier_catches_bad_graphs() -> None:
    cfg = ModelConfig(hidden_size=64, n_layers=1, n_heads=4, n_kv_heads=2, ffn_size=100,
                      vocab_size=97, max_context=64)
    g = build_graph(random_model(cfg))
    g.ops.insert(1, Op("bogus", "residual", ["nope", "h0"], ["h0"], 0))
    with pytest.raises(IRError, match="bogus"):
        verify(g)
    g = build_graph(random_model(cfg))
    g.ops.append(Op("weird", "teleport", [], [], None))
    with pytest.raises(IRError, match="unknown kind"):
        verify(g)
    g = build_graph(random_model(cfg))
    del g.params["layers.0.q"]
    with pytest.raises(IRError, match="layers.0.q"):
        verify(g)
