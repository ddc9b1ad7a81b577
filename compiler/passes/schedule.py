"""Analysis: the fused graph of one decoder layer as the hardware's stage sequence.

decoder_layer.h runs a layer as nine stages, vector and linear in turn (its sequential slot schedule):
  V0 attention norm | L0 q, k, v | V1 RoPE q, k; K/V write; attention; SubLN | L1 o_proj |
  V2 residual + FFN norm | L2 gate, up | V3 GLU (+ SubLN) | L3 down | V4 residual
`layer_schedule` derives the same sequence from the fused graph: each linear_group is a linear stage
(its linears, in order), its epilogue opens the vector stage after it, and every other op joins the
vector stage it falls in. Steps are named as hw/tb/layer_schedule_tb.cpp names the calls it records,
so tests/test_ir_schedule.py compares the two:
  norm_quant(<gamma>)  a fused norm + quantize (gamma: the norm's parameter, layer prefix dropped)
  quantize             a norm_quant without a norm (a model without SubLN)
  <kind><a,b>          an epilogue op of the group before it, with the group's linears whose outputs it
                       reads directly (rope<q>, kv_write<v>, residual<o>, act_gate<gate,up>)
  <kind>               any other op (attention)
An op that reads a linear's output without being in its group's epilogue shows without the <..>, so it
differs from the hardware's step (which reads the linear's output rows in the next vector stage).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgellm.compiler.ir import LINEAR_KINDS, IRError, ModelGraph, Op


@dataclass(frozen=True)
class Stage:
    """One stage of a layer: V<i> (vector: its steps in order) or L<i> (linear: its linears in order)."""

    name: str
    steps: tuple[str, ...]


def _short(name: str) -> str:
    """layers.3.attn_sub_norm -> attn_sub_norm (the name without its layer prefix)."""
    parts = name.split(".")
    return ".".join(parts[2:]) if len(parts) > 2 and parts[0] == "layers" else name


def _step(op: Op) -> str:
    """A standalone op of a vector stage."""
    if op.kind == "norm_quant":
        return f"norm_quant({_short(op.attrs['params'][0])})" if op.attrs.get("norm") else "quantize"
    return op.kind


def _epilogue(group: Op) -> list[str]:
    """The group's epilogue ops, each with the group's linears whose outputs it reads."""
    lin_of = {lin["output"]: _short(lin["name"]) for lin in group.attrs["linears"]}
    steps = []
    for e in group.attrs["epilogue"]:
        reads = [lin_of[t] for t in e["inputs"] if t in lin_of]
        steps.append(f"{e['kind']}<{','.join(reads)}>" if reads else e["kind"])
    return steps


def layer_schedule(g: ModelGraph, layer: int) -> list[Stage]:
    """The fused ops of one layer as the hardware's stages V0 L0 V1 .. (IRError on an unfused linear)."""
    ops = [op for op in g.ops if op.layer == layer]
    if not ops:
        raise IRError(f"layer {layer}: no ops")
    stages: list[Stage] = []
    vec: list[str] = []
    for op in ops:
        if op.kind in LINEAR_KINDS:
            raise IRError(f"op {op.name}: a linear outside a linear_group (run the fusion passes first)")
        if op.kind != "linear_group":
            vec.append(_step(op))
            continue
        stages.append(Stage(f"V{len(stages) // 2}", tuple(vec)))
        lins = tuple(_short(lin["name"]) for lin in op.attrs["linears"])
        stages.append(Stage(f"L{len(stages) // 2}", lins))
        vec = _epilogue(op)
    stages.append(Stage(f"V{len(stages) // 2}", tuple(vec)))
    return stages


def graph_schedule(g: ModelGraph) -> list[Stage]:
    """The one stage sequence every layer of g follows (the hardware runs one schedule for all layers);
    IRError naming the first layer that differs from layer 0."""
    layers = sorted({op.layer for op in g.ops if op.layer is not None})
    if not layers:
        raise IRError("the graph has no decoder layers")
    first = layer_schedule(g, layers[0])
    for i in layers[1:]:
        if layer_schedule(g, i) != first:
            raise IRError(f"layer {i}: its fused ops follow another stage sequence than layer {layers[0]}'s")
    return first

