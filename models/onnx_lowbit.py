"""The W{b}A8 low-bit linears of the ONNX export in the ecosystem's form, build_onnx(lowbit="nbits") /
backend `onnx-nbits` (models/onnx_export.py builds the graph around them; the default form, in the
numerics contract's order, is models/onnx_contract.py).

2-, 4- and 8-bit codes go through com.microsoft MatMulNBits (packed codes, per-group scales, zero
points 0) plus the offsets' term (per-group activation sums times mins); other widths through a MatMul
on the dequantized weights; then divided by qs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from onnx import TensorProto

from edgellm.models.weights import Linear, LowBitLinear

if TYPE_CHECKING:
    from edgellm.models.onnx_graph import GraphBuilder

NBITS = (2, 4, 8)  # code widths onnxruntime's MatMulNBits takes (others: MatMul on dequantized weights)
MS_DOMAIN = "com.microsoft"


def pack_nbits(codes: np.ndarray, bits: int, block: int) -> np.ndarray:
    """(N, K) codes -> MatMulNBits' B (N, K / block, block * bits / 8): low bits first in each byte."""
    n, k = codes.shape
    per = 8 // bits
    c = codes.reshape(n, k // block, block // per, per)
    out = np.zeros(c.shape[:-1], np.uint8)
    for j in range(per):
        out |= (c[..., j] << np.uint8(bits * j)).astype(np.uint8)
    return out


def q_float(g: GraphBuilder, q8: str) -> str:
    """The int8 activation values as float32 (exact); a uint8 q + 128 is shifted back."""
    qf = g.op1("Cast", q8, to=TensorProto.FLOAT)
    return g.op1("Sub", qf, g.const(128.0)) if g.offset_ternary else qf


def lowbit(g: GraphBuilder, qf: str, qs: str, lin: LowBitLinear, name: str) -> str:
    """W{b}A8: y = (sum_g s_g P_g + m_g S_g) / qs with qf the int8 activations as float (T, K).
    2/4/8 bits: MatMulNBits (zero points 0: w = s * code) plus (group sums) @ mins^T; otherwise
    MatMul with the dequantized weights. Float32 sums, not the contract's order: agrees within rounding
    (the onnx-nbits form; models/onnx_contract.py is the bit-exact one)."""
    w = lin.quant
    n, k = w.shape
    if w.bits in NBITS:
        nb = k // w.group
        acc = g.op1("MatMulNBits", qf, g.init(f"{name}.codes", pack_nbits(w.codes, w.bits, w.group)),
                    g.init(f"{name}.scales", w.scales.reshape(-1)),
                    g.init(f"{name}.zeros", np.zeros(n * -(-nb * w.bits // 8), np.uint8)),
                    domain=MS_DOMAIN, K=k, N=n, bits=w.bits, block_size=w.group)
        sums = g.op1("ReduceSum", g.op1("Reshape", qf, g.const([0, nb, w.group], np.int64)),
                     g.const([-1], np.int64), keepdims=0)  # (T, nb)
        acc = g.op1("Add", acc, g.op1("MatMul", sums, g.init(f"{name}.mins", np.ascontiguousarray(w.mins.T))))
    else:
        acc = g.op1("MatMul", qf, g.init(f"{name}.weight", np.ascontiguousarray(w.dequantize().T)))
    return g.op1("Div", acc, qs)


def linear_bytes(lin: Linear) -> int:
    """A linear's exported weight bytes: int8 ternary; MatMulNBits codes + f32 scales/mins; else f32."""
    o, k = lin.shape
    if not isinstance(lin, LowBitLinear):
        return o * k
    if lin.bits in NBITS:
        return o * k * lin.bits // 8 + o * (k // lin.group) * 8
    return o * k * 4
