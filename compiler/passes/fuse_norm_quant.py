"""Pass: fuse rmsnorm followed by quantize of its output into one streaming norm_quant op."""

from __future__ import annotations

from edgellm.compiler.ir import ModelGraph, Op


def fuse_norm_quant(g: ModelGraph) -> ModelGraph:
    """rmsnorm(x) -> quantize  ==>  norm_quant(x) (the f32 normed tensor never leaves the chip).
    A quantize with no norm before it becomes a norm_quant without gamma."""
    users: dict[str, list[Op]] = {}
    for op in g.ops:
        for t in op.inputs:
            users.setdefault(t, []).append(op)
    out: list[Op] = []
    skip: set[str] = set()
    for op in g.ops:
        if op.name in skip:
            continue
        if op.kind == "rmsnorm":
            cons = users.get(op.outputs[0], [])
            if len(cons) == 1 and cons[0].kind == "quantize":
                q = cons[0]
                skip.add(q.name)
                del g.tensors[op.outputs[0]]
                out.append(Op(op.name, "norm_quant", op.inputs, q.outputs, op.layer,
                              {**op.attrs, "norm": True}))
                continue
        if op.kind == "quantize":
            op = Op(op.name, "norm_quant", op.inputs, op.outputs, op.layer, {"norm": False})
        out.append(op)
    g.ops = out
    return g
