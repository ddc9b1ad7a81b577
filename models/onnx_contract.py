"""The W{b}A8 low-bit linear in the numerics contract's order with standard ONNX ops (the default `onnx`
reference; models/onnx_lowbit.py keeps the MatMulNBits graph as `onnx-nbits`).

docs/numerics.md "W{b}A8": per token t and output o, with the groups in order g = 0, 1, ...

    P[g] = sum_{i in g} codes[o, i] * q[t, i]        exact int32
    S[g] = sum_{i in g} q[t, i]                      exact
    acc  = (acc + scales[o, g] * float(P[g])) + mins[o, g] * float(S[g])
    y    = acc / qs[t]

As ONNX: one batched MatMulInteger (nb, T, G) x (nb, G, N) -> P int32 (nb, T, N) (uint8 q + 128 with
a_zero_point 128 against uint8 codes: the same integers, and onnxruntime's u8 x u8 CPU kernel is exact and
~5x faster than its s8 x u8 one at T = 1), Cast to float (exact: |P| < 2^24), S = ReduceSum of the float
activations per group (exact integers), then a Scan over the nb groups whose body is the contract's four
binary32 ops as separate Mul / Add nodes (no FMA: onnxruntime's CPU provider fuses no elementwise Mul +
Add, checked bit for bit at every graph optimization level in tests/test_onnx_lowbit_contract.py), then Div
by qs. A Scan, not unrolled nodes: llama-3.2-1b's down projection alone has 256 groups of 32, which
unrolled would be ~1000 nodes per linear (~110k for the model); the Scan is 11 nodes per linear.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from onnx import TensorProto, helper

from edgellm.models.weights import LowBitLinear

if TYPE_CHECKING:
    from edgellm.models.onnx_graph import GraphBuilder

F32 = TensorProto.FLOAT


def q_uint8(g: GraphBuilder, q8: str) -> str:
    """The activations as uint8 q + 128 (a uint8 q from GraphBuilder.offset_ternary already is)."""
    if g.offset_ternary:
        return q8
    q32 = g.op1("Add", g.op1("Cast", q8, to=TensorProto.INT32), g.const(128, np.int32))
    return g.op1("Cast", q32, to=TensorProto.UINT8)


def _body(name: str) -> object:
    """Scan body: state acc (T, N); per group P (T, N), S (T, 1), s (N,), m (N,) ->
    acc' = (acc + s * P) + m * S, four separate binary32 nodes."""
    v = f"{name}.scan"
    nodes = [helper.make_node("Mul", [f"{v}.s", f"{v}.p"], [f"{v}.sp"]),
             helper.make_node("Add", [f"{v}.acc", f"{v}.sp"], [f"{v}.a1"]),
             helper.make_node("Mul", [f"{v}.m", f"{v}.S"], [f"{v}.ms"]),
             helper.make_node("Add", [f"{v}.a1", f"{v}.ms"], [f"{v}.acc_out"])]
    ins = [helper.make_tensor_value_info(f"{v}.acc", F32, ["T", "N"]),
           helper.make_tensor_value_info(f"{v}.p", F32, ["T", "N"]),
           helper.make_tensor_value_info(f"{v}.S", F32, ["T", 1]),
           helper.make_tensor_value_info(f"{v}.s", F32, ["N"]),
           helper.make_tensor_value_info(f"{v}.m", F32, ["N"])]
    outs = [helper.make_tensor_value_info(f"{v}.acc_out", F32, ["T", "N"])]
    return helper.make_graph(nodes, f"{v}.body", ins, outs)


def lowbit_contract(g: GraphBuilder, qu: str, qf: str, qs: str, lin: LowBitLinear, name: str) -> str:
    """W{b}A8 in the contract's order: qu the activations as uint8 q + 128 (T, K), qf as float (T, K),
    qs (T, 1) -> y float32 (T, N), bit for bit models.lowbit.lowbit_linear."""
    w = lin.quant
    n, k = w.shape
    nb = k // w.group
    i64 = np.int64
    codes = np.ascontiguousarray(w.codes.reshape(n, nb, w.group).transpose(1, 2, 0))  # (nb, G, N)
    qg = g.op1("Transpose", g.op1("Reshape", qu, g.const([0, nb, w.group], i64)), perm=[1, 0, 2])
    p = g.op1("MatMulInteger", qg, g.init(f"{name}.codes", codes), g.const(128, np.uint8))  # (nb, T, N)
    pf = g.op1("Cast", p, to=F32)
    s3 = g.op1("ReduceSum", g.op1("Reshape", qf, g.const([0, nb, w.group], i64)), g.const([2], i64),
               keepdims=1)  # (T, nb, 1)
    sums = g.op1("Transpose", s3, perm=[1, 0, 2])  # (nb, T, 1)
    shape = g.op1("Concat", g.op1("Shape", qf, end=1), g.const([n], i64), axis=0)
    zero = g.op1("ConstantOfShape", shape, value=helper.make_tensor("zero", F32, [1], [0.0]))
    acc = g.op1("Scan", zero, pf, sums, g.init(f"{name}.scales", np.ascontiguousarray(w.scales.T)),
                g.init(f"{name}.mins", np.ascontiguousarray(w.mins.T)), body=_body(name), num_scan_inputs=4)
    return g.op1("Div", acc, qs)


def contract_bytes(lin: LowBitLinear) -> int:
    """Exported bytes of a contract-order linear: one uint8 per code plus f32 scales and mins per group."""
    o, k = lin.shape
    return o * k + o * (k // lin.group) * 8
