"""ModelGraph: the compiler's IR. Ops with shapes and quantization parameters, and a verifier.

A graph is a list of ops in execution order over named tensors. Weights live in `params` (numpy
arrays or TernaryLinear objects from the QuantModel); the fusion passes (compiler/passes/) rewrite the
ops and record what they fused in each op's attrs. `verify()` runs after the frontend and after every
pass (compiler/steps.py step_frontend, step_fuse). The graph is a checked description: the memory plan
(compiler/memory_plan.py) reads the QuantModel and codegen the design, neither the graph. What it
describes is checked against the hardware: compiler/passes/schedule.py maps a layer's fused ops to the
stages of decoder_layer.h's slot schedule, and tests/test_ir_schedule.py compares them with the stages
the layer's own code runs (hw/tb/layer_schedule_tb.cpp).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig

# op kind -> (number of activation inputs, number of outputs); -1 = any
OP_KINDS: dict[str, tuple[int, int]] = {
    "embed": (1, 1),  # token ids -> hidden (host)
    "rmsnorm": (1, 1),
    "quantize": (1, 2),  # x -> (q8, qs)
    "ternary_linear": (2, 1),  # (q8, qs) -> y
    "lowbit_linear": (2, 1),  # (q8, qs) -> y (+ its f32 bias): W{b}A8 (models/lowbit.py lowbit_linear)
    "rope": (1, 1),
    "kv_write": (2, 0),  # (k, v) -> cache
    "attention": (1, 1),  # q -> a (reads the cache)
    "act_gate": (2, 1),  # (gate, up) -> f
    "residual": (2, 1),
    "lm_head": (2, 1),  # (q8, qs) of the final norm -> logits
    # produced by the fusion passes (fuse_norm_quant, fuse_linear_epilogues)
    "norm_quant": (1, 2),  # rmsnorm + quantize
    "linear_group": (-1, -1),  # (q8, qs, residual?) -> ternary linears sharing one input + epilogues
}
LINEAR_KINDS = ("ternary_linear", "lowbit_linear")  # the matmul engine's ops (a design has one kind)


class IRError(EdgeLLMError):
    """The IR violates an invariant (a compiler bug or an unsupported model)."""


@dataclass
class TensorSpec:
    """An activation tensor: per-token width and dtype (the token count is dynamic)."""

    name: str
    width: int
    dtype: str  # "f32" | "i8" | "f32_scale" (one per token) | "i32"


@dataclass
class Op:
    """One operation; `attrs` carries shapes, quantization and fusion details."""

    name: str
    kind: str
    inputs: list[str]
    outputs: list[str]
    layer: int | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelGraph:
    """Ops in execution order for one token block of one forward pass."""

    config: ModelConfig
    tensors: dict[str, TensorSpec] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def tensor(self, name: str, width: int, dtype: str = "f32") -> str:
        """Declare an activation tensor; returns its name."""
        if name in self.tensors:
            raise IRError(f"tensor {name} declared twice")
        self.tensors[name] = TensorSpec(name, width, dtype)
        return name

    def add(self, op: Op) -> Op:
        """Append an op."""
        self.ops.append(op)
        return op


def verify(g: ModelGraph) -> None:
    """Check the IR's invariants; raise IRError naming the op at fault."""
    defined = {"tokens"}
    names = set()
    for op in g.ops:
        if op.kind not in OP_KINDS:
            raise IRError(f"op {op.name}: unknown kind {op.kind}")
        if op.name in names:
            raise IRError(f"op {op.name}: duplicate name")
        names.add(op.name)
        n_in, n_out = OP_KINDS[op.kind]
        if n_in >= 0 and len(op.inputs) != n_in:
            raise IRError(f"op {op.name}: {len(op.inputs)} inputs, {op.kind} takes {n_in}")
        if n_out >= 0 and len(op.outputs) != n_out:
            raise IRError(f"op {op.name}: {len(op.outputs)} outputs, {op.kind} gives {n_out}")
        for t in op.inputs:
            if t not in defined:
                raise IRError(f"op {op.name}: input {t} used before it is defined")
        for t in op.outputs:
            if t not in g.tensors:
                raise IRError(f"op {op.name}: output {t} is not a declared tensor")
            defined.add(t)
        for p in op.attrs.get("params", []):
            if p not in g.params:
                raise IRError(f"op {op.name}: parameter {p} missing")
        if op.kind in LINEAR_KINDS:
            n_out_w, k = op.attrs["shape"]
            src = g.tensors[op.inputs[0]]
            if src.width != k or g.tensors[op.outputs[0]].width != n_out_w:
                raise IRError(f"op {op.name}: shape {op.attrs['shape']} does not match its tensors")
