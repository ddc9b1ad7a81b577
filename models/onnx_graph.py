"""The ONNX graph builder and the numerics contract's blocks as ONNX nodes (models/onnx_export.py builds
the model from them): GraphBuilder (unique names, deduplicated constants, weights streamed to an external
data file), RMSNorm, per-token absmax int8 quantization, the ternary / low-bit linears (MatMulInteger;
models/onnx_contract.py, models/onnx_lowbit.py), rotate-half RoPE, causal GQA attention and the KV cache's
rounding. fp32 ops are standard ONNX ones (plain softmax, ONNX reductions), so results agree with the
contract within rounding, the integer parts exactly."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgellm.models import numerics as nx
from edgellm.models.config import ModelConfig
from edgellm.models.onnx_contract import lowbit_contract, q_uint8
from edgellm.models.onnx_lowbit import lowbit, q_float
from edgellm.models.weights import Linear, LowBitLinear, TernaryLinear

EXTERNAL_ALIGN = 4096  # offsets of external tensors (page aligned, so onnxruntime can map them)


class GraphBuilder:
    """Accumulates nodes and initializers with unique names; one method per ONNX op used."""

    def __init__(self, opset: int, taps: bool = False, offset_ternary: bool = False,
                 data: BinaryIO | None = None, data_location: str = "", lowbit: str = "contract") -> None:
        self.opset = opset
        self.lowbit = lowbit  # LOWBIT_MODES: how low-bit linears are built
        self.data, self.data_location = data, data_location  # external data file, its relative name
        self.offset_ternary = offset_ternary  # ternary linears take uint8 q + 128 (zero point 128)
        self.taps: list[onnx.ValueInfoProto] | None = [] if taps else None  # extra graph outputs
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._consts: dict[tuple[str, bytes, tuple[int, ...]], str] = {}
        self._n = 0

    def fresh(self, hint: str) -> str:
        """A new unique value name."""
        self._n += 1
        return f"{hint}_{self._n}"

    def init(self, name: str, arr: np.ndarray) -> str:
        """Add a named initializer (weights); with a data file, tensors >= 1 KiB are streamed to it."""
        arr = np.asarray(arr, order="C")
        if self.data is None or arr.nbytes < 1024:
            self.inits.append(numpy_helper.from_array(arr, name))
            return name
        off = -(-self.data.tell() // EXTERNAL_ALIGN) * EXTERNAL_ALIGN
        self.data.seek(off)
        self.data.write(arr.tobytes())
        t = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(arr.dtype),
                        dims=arr.shape, data_location=TensorProto.EXTERNAL)
        for k, v in (("location", self.data_location), ("offset", str(off)), ("length", str(arr.nbytes))):
            t.external_data.add(key=k, value=v)
        self.inits.append(t)
        return name

    def const(self, value: np.ndarray | float | int | list[int], dtype: type = np.float32) -> str:
        """A small constant initializer, deduplicated by dtype, shape and value."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.tobytes(), arr.shape)
        if key not in self._consts:
            self._consts[key] = self.init(self.fresh("c"), arr)
        return self._consts[key]

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, out: list[str] | None = None,
           **attrs: object) -> list[str]:
        """Append a node; returns its output names (fresh unless `out` names them)."""
        outs = out or [self.fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs

    def op1(self, op_type: str, *inputs: str, **attrs: object) -> str:
        """Append a single-output node; returns its output name."""
        return self.op(op_type, list(inputs), **attrs)[0]

    def tap(self, name: str, x: str, shape: list[int | str], elem_type: int = TensorProto.FLOAT
            ) -> None:
        """Expose x as graph output `name` (golden tap names) when built with taps."""
        if self.taps is not None:
            self.op("Identity", [x], out=[name])
            self.taps.append(helper.make_tensor_value_info(name, elem_type, shape))

    def reduce(self, op_type: str, x: str, axis: int = -1) -> str:
        """Reduce over one axis with keepdims=1 (axes as attribute before opset 18 where required)."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op1(op_type, x, self.const([axis], np.int64), keepdims=1)
        return self.op1(op_type, x, axes=[axis], keepdims=1)


# ---------------------------------------------------------------- blocks (contract primitives)

def rmsnorm(g: GraphBuilder, x: str, weight: str, n: int, eps: float) -> str:
    """(x * (1 / sqrt(sum(x*x)/n + eps))) * weight over the last axis."""
    ss = g.reduce("ReduceSum", g.op1("Mul", x, x))
    ms = g.op1("Div", ss, g.const(float(n)))
    r = g.op1("Div", g.const(1.0), g.op1("Sqrt", g.op1("Add", ms, g.const(eps))))
    return g.op1("Mul", g.op1("Mul", x, r), weight)


def quantize(g: GraphBuilder, x: str, offset: bool = False) -> tuple[str, str]:
    """Per-token absmax int8: returns (q int8 (T, n), qs float32 (T, 1)); with offset, q + 128 as
    uint8 (the same integers for MatMulInteger with a_zero_point 128)."""
    amax = g.reduce("ReduceMax", g.op1("Abs", x))
    qs = g.op1("Div", g.const(float(nx.QMAX)), g.op1("Max", amax, g.const(float(nx.ABSMAX_FLOOR))))
    r = g.op1("Round", g.op1("Mul", x, qs))  # ONNX Round is half to even
    c = g.op1("Clip", r, g.const(-128.0), g.const(127.0))
    if offset:
        return g.op1("Cast", g.op1("Add", c, g.const(128.0)), to=TensorProto.UINT8), qs
    return g.op1("Cast", c, to=TensorProto.INT8), qs


def ternary(g: GraphBuilder, q: str, qs: str, lins: list[TernaryLinear], name: str) -> list[str]:
    """Linears sharing one quantized input, fused into one int8 x int8 MatMulInteger (K, sum N);
    each output column is float(acc) / (qs * its weight_scale), exactly the per-linear result.
    A uint8 q (GraphBuilder.offset_ternary) is taken with a_zero_point 128."""
    w = np.concatenate([lin.dense().T for lin in lins], axis=1)  # int8 (K, N)
    sizes = [lin.shape[0] for lin in lins]
    scales = np.concatenate([np.full(n, lin.scale, np.float32) for n, lin in zip(sizes, lins, strict=True)])
    zp = [g.const(128, np.uint8)] if g.offset_ternary else []
    acc = g.op1("MatMulInteger", q, g.init(f"{name}.weight", w.astype(np.int8)), *zp)  # int32 (T, N)
    den = g.op1("Mul", qs, g.init(f"{name}.scale", scales))  # (T, N)
    y = g.op1("Div", g.op1("Cast", acc, to=TensorProto.FLOAT), den)
    if len(lins) == 1:
        return [y]
    return g.op("Split", [y, g.const(sizes, np.int64)], n_out=len(lins), axis=1)


def lowbit_node(g: GraphBuilder, qu: str, qf: str, qs: str, lin: LowBitLinear, name: str) -> str:
    """A W{b}A8 linear in the builder's form: contract order (qu: uint8 q + 128) or MatMulNBits."""
    if g.lowbit == "contract":
        return lowbit_contract(g, qu, qf, qs, lin, name)
    return lowbit(g, qf, qs, lin, name)


def linears(g: GraphBuilder, q: str, qs: str, lins: list[Linear], name: str,
            biases: list[np.ndarray | None] | None = None) -> list[str]:
    """Linears sharing one quantized input: all ternary -> one fused MatMulInteger (ternary); otherwise
    each on its own (lowbit / ternary); biases added after."""
    if all(isinstance(lin, TernaryLinear) for lin in lins):
        outs = ternary(g, q, qs, lins, name)  # type: ignore[arg-type]
    else:
        qf = q_float(g, q) if any(isinstance(lin, LowBitLinear) for lin in lins) else ""
        qu = q_uint8(g, q) if qf and g.lowbit == "contract" else ""
        names = [f"{name}.{j}" for j in range(len(lins))] if len(lins) > 1 else [name]
        outs = [lowbit_node(g, qu, qf, qs, lin, nm) if isinstance(lin, LowBitLinear)
                else ternary(g, q, qs, [lin], nm)[0] for lin, nm in zip(lins, names, strict=True)]
    for j, b in enumerate(biases or []):
        if b is not None:
            outs[j] = g.op1("Add", outs[j], g.init(f"{name}.bias{j}", np.asarray(b, np.float32)))
    return outs


def rope(g: GraphBuilder, x: str, cos: str, sin: str, head_dim: int) -> str:
    """Rotate-half RoPE on (T, heads, head_dim) with per-token tables (T, 1, head_dim/2)."""
    half = head_dim // 2
    ax = g.const([2], np.int64)
    a = g.op1("Slice", x, g.const([0], np.int64), g.const([half], np.int64), ax)
    b = g.op1("Slice", x, g.const([half], np.int64), g.const([head_dim], np.int64), ax)
    lo = g.op1("Sub", g.op1("Mul", a, cos), g.op1("Mul", b, sin))
    hi = g.op1("Add", g.op1("Mul", b, cos), g.op1("Mul", a, sin))
    return g.op1("Concat", lo, hi, axis=-1)


def attention(g: GraphBuilder, cfg: ModelConfig, q: str, k: str, v: str, mask: str) -> str:
    """Causal GQA softmax attention. q (T, H, D); k, v (S, Hkv, D); mask bool (T, S).
    Query head h uses kv head h // (H / Hkv). Returns (T, H*D)."""
    n_kv, grp, d = cfg.n_kv_heads, cfg.n_heads // cfg.n_kv_heads, cfg.head_dim
    q4 = g.op1("Reshape", q, g.const([-1, n_kv, grp, d], np.int64))  # (T, Hkv, G, D)
    q4 = g.op1("Transpose", q4, perm=[1, 2, 0, 3])  # (Hkv, G, T, D)
    kt = g.op1("Unsqueeze", g.op1("Transpose", k, perm=[1, 2, 0]), g.const([1], np.int64))  # (Hkv,1,D,S)
    vt = g.op1("Unsqueeze", g.op1("Transpose", v, perm=[1, 0, 2]), g.const([1], np.int64))  # (Hkv,1,S,D)
    s = g.op1("Mul", g.op1("MatMul", q4, kt), g.const(float(np.float32(1.0 / np.sqrt(d)))))  # (Hkv,G,T,S)
    s = g.op1("Where", mask, s, g.const(-np.inf))
    p = g.op1("Softmax", s, axis=-1)
    o = g.op1("Transpose", g.op1("MatMul", p, vt), perm=[2, 0, 1, 3])  # (T, Hkv, G, D)
    return g.op1("Reshape", o, g.const([-1, cfg.q_size], np.int64))


def kv_round(g: GraphBuilder, x: str, kv_dtype: str) -> str:
    """x as the KV cache stores it: unchanged for f32; f16: Cast to float16 (round to nearest even)
    and back to float32 (exact)."""
    if kv_dtype == "f32":
        return x
    return g.op1("Cast", g.op1("Cast", x, to=TensorProto.FLOAT16), to=TensorProto.FLOAT)
