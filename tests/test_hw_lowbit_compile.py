"""The frontend builds all-low-bit models (every linear W{b}A8: lowbit_linear ops, q/k/v biases as their
params) and refuses, in one line, what the hardware does not build: a mix of ternary and low-bit linears,
a low-bit LM head, q/k/v biases on a ternary model, a low-bit model with SubLN."""

import dataclasses

import pytest

from edgellm.compiler.frontend import build_graph
from edgellm.compiler.ir import verify
from edgellm.compiler.passes.fuse_linear_epilogues import fuse_linear_epilogues
from edgellm.compiler.passes.fuse_norm_quant import fuse_norm_quant
from edgellm.compiler.passes.schedule import graph_schedule
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.models.random_model import random_model

CFG = ModelConfig(hidden_size=64, n_layers=1, n_heads=2, n_kv_heads=2, ffn_size=128, vocab_size=96,
                  act="silu", subln=False, name="lowbit-tiny")


@pytest.mark.parametrize("kw, match", [
    ({"lowbit": {"down": (6, 16)}}, "mixing ternary and low-bit"),
    ({"lowbit": (4, 32), "lowbit_head": (8, 32)}, "low-bit LM head"),
    ({"lowbit_head": (8, 32)}, "low-bit LM head"),
])
def test_unbuildable_low_bit_models_are_refused(kw: dict, match: str) -> None:
    with pytest.raises(EdgeLLMError, match=match) as e:
        build_graph(random_model(CFG, **kw))
    assert "\n" not in str(e.value)


def test_biases_on_ternary_and_subln_on_low_bit_are_refused() -> None:
    with pytest.raises(EdgeLLMError, match="biases compile on low-bit"):
        build_graph(random_model(dataclasses.replace(CFG, qkv_bias=True)))
    with pytest.raises(EdgeLLMError, match="no SubLN"):
        build_graph(random_model(dataclasses.replace(CFG, subln=True), lowbit=(4, 32)))


def test_all_low_bit_model_builds_the_ternary_schedule() -> None:
    cfg = dataclasses.replace(CFG, qkv_bias=True, n_layers=2)
    g = build_graph(random_model(cfg, lowbit=(4, 32)))
    verify(g)
    lin = [op for op in g.ops if op.kind.endswith("_linear")]
    assert {op.kind for op in lin} == {"lowbit_linear"} and len(lin) == 14
    q = next(op for op in lin if op.name == "layers.0.q")
    assert q.attrs["params"] == ["layers.0.q", "layers.0.q_bias"] and q.attrs["bits"] == 4
    assert next(op for op in lin if op.name == "layers.0.o").attrs["params"] == ["layers.0.o"]
    fused = fuse_linear_epilogues(fuse_norm_quant(g))
    verify(fused)
    ternary = fuse_linear_epilogues(fuse_norm_quant(build_graph(random_model(CFG))))
    assert graph_schedule(fused) == graph_schedule(ternary)  # one layer schedule for both engines
