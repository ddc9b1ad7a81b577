"""Pass: group ternary linears that share a quantized input, and fuse their element-wise
consumers (RoPE + KV write, gated activation, residual add) into the group's epilogue."""

from __future__ import annotations

from edgellm.compiler.ir import LINEAR_KINDS, ModelGraph, Op

EPILOGUE_KINDS = ("rope", "kv_write", "act_gate", "residual")


def fuse_linear_epilogues(g: ModelGraph) -> ModelGraph:
    """ternary_linear* (or lowbit_linear*, same input) + rope/kv_write/act_gate/residual ==> linear_group.

    The group streams its weights once per token block; only tensors used after the group
    (its outputs) leave the chip. attrs: "linears" (each with its "output" tensor), "epilogue" (each
    op's kind, name, inputs, outputs), "params"."""
    ops, out, i = g.ops, [], 0
    while i < len(ops):
        op = ops[i]
        if op.kind not in LINEAR_KINDS:
            out.append(op)
            i += 1
            continue
        j = i + 1
        while j < len(ops) and ops[j].kind == op.kind and ops[j].inputs == op.inputs:
            j += 1
        lins = ops[i:j]
        produced = {t for lin in lins for t in lin.outputs}
        while j < len(ops) and ops[j].kind in EPILOGUE_KINDS and produced & set(ops[j].inputs):
            produced.update(ops[j].outputs)
            j += 1
        group = ops[i:j]
        epi = group[len(lins):]
        later = {t for o in ops[j:] for t in o.inputs}
        outs = [t for o in group for t in o.outputs if t in later]
        extra = [t for e in epi for t in e.inputs if t not in produced and t not in op.inputs]
        short = "+".join(lin.name.rsplit(".", 1)[-1] for lin in lins)
        out.append(Op(f"layers.{op.layer}.{short}", "linear_group", [*op.inputs, *extra], outs,
                      op.layer,
                      {"linears": [{"name": lin.name, "output": lin.outputs[0], **lin.attrs} for lin in lins],
                       "epilogue": [{"kind": e.kind, "name": e.name, "inputs": e.inputs,
                                     "outputs": e.outputs, **e.attrs} for e in epi],
                       "params": [p for lin in lins for p in lin.attrs["params"]]}))
        i = j
    g.ops = out
    return g
