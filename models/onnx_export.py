"""ONNX export of a QuantModel (the onnxruntime reference of the verification ladder).

The graph is built directly with onnx.helper and follows the numerics contract op by op: ternary
linears are int8 x int8 MatMulInteger on per-token absmax-quantized activations, dequantized as
float(acc) / (qs * weight_scale); the LM head is int8 x int8 MatMulInteger with per-row scales;
everything else is fp32 with standard ONNX ops (plain softmax instead of the online softmax, ONNX
reductions instead of the contract's lane order, so results agree within rounding, not bit for bit).

Graph interface (T new tokens, P past positions, one past/present pair per layer i):
  inputs   input_ids int64 (T,), pos0 int64 scalar (absolute position of input_ids[0], = P),
           past_key_i / past_value_i float32 (P, n_kv, head_dim)   (P = 0 for a prefill)
  outputs  logits float32 (T, vocab), present_key_i / present_value_i float32 (P+T, n_kv, head_dim)
Low-bit linears (models/weights.LowBitLinear, W{b}A8) have two forms (build_onnx(lowbit=...)):
"contract" (the default, backend `onnx`, the compiled project's reference/model.onnx) computes the numerics
contract bit for bit (models/onnx_contract.py: MatMulInteger per group, a Scan of separate Mul / Add over
the groups); "nbits" (backend `onnx-nbits`, the ecosystem's form) uses com.microsoft MatMulNBits for 2/4/8
bits, else a dequantized MatMul, float sums in onnxruntime's order (models/onnx_lowbit.py). Qwen2's q/k/v
biases are added after either.
build_onnx(taps=True) adds GoldenModel-named intermediate outputs; build_onnx(fast=True) feeds the
ternary linears uint8 q + 128 (same integers, a much faster onnxruntime kernel); build_onnx(kv_dtype=
"f16") rounds each new K (after RoPE) and V to binary16 and back (Cast, round to nearest even) before
it joins the cache, as the numerics plan's f16 KV cache does; past/present stay float32 tensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgellm.errors import EdgeLLMError
from edgellm.models import numerics as nx
from edgellm.models.config import ModelConfig
from edgellm.models.onnx_contract import contract_bytes, lowbit_contract, q_uint8
from edgellm.models.onnx_lowbit import MS_DOMAIN, linear_bytes, lowbit, q_float
from edgellm.models.weights import Int8Head, Linear, LowBitLinear, QuantModel, TernaryLinear

EXTERNAL_DATA_BYTES = 1_500_000_000  # above this, weights go to a side file (protobuf limit is 2 GB)
EXTERNAL_ALIGN = 4096  # offsets of external tensors (page aligned, so onnxruntime can map them)
CONFIG_KEY = "edgellm.config"  # metadata_props key holding ModelConfig JSON
KV_DTYPE_KEY = "edgellm.kv_dtype"  # metadata_props key: the KV cache rounding built into the graph
LOWBIT_KEY = "edgellm.lowbit_onnx"  # metadata_props key: the low-bit linears' form (LOWBIT_MODES)
LOWBIT_MODES = ("contract", "nbits")  # contract order (bit-exact W{b}A8) | com.microsoft MatMulNBits
MIN_OPSET = 17


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


def decoder_layer(g: GraphBuilder, qm: QuantModel, i: int, h: str, cos: str, sin: str, mask: str,
                  kv_dtype: str = "f32") -> str:
    """One decoder layer: attention block (writes present_key_i / present_value_i, rounded as the
    kv_dtype cache stores them) and gated FFN."""
    cfg, L = qm.config, qm.layers[i]
    pre, d = f"layers.{i}", cfg.head_dim
    x = rmsnorm(g, h, g.init(f"{pre}.attn_norm", L.attn_norm.astype(np.float32)), cfg.hidden_size,
                cfg.rms_eps)
    q8, qs = quantize(g, x, g.offset_ternary)
    if g.taps is not None:  # the tap is the int8 value even when the linears take q + 128
        q_i8 = q8
        if g.offset_ternary:
            q_f = g.op1("Sub", g.op1("Cast", q8, to=TensorProto.FLOAT), g.const(128.0))
            q_i8 = g.op1("Cast", q_f, to=TensorProto.INT8)
        g.tap(f"L{i}.attn_in_q", q_i8, ["T", cfg.hidden_size], TensorProto.INT8)
    qh, kh, vh = linears(g, q8, qs, [L.q, L.k, L.v], f"{pre}.qkv", [L.q_bias, L.k_bias, L.v_bias])
    qh = rope(g, g.op1("Reshape", qh, g.const([-1, cfg.n_heads, d], np.int64)), cos, sin, d)
    kh = rope(g, g.op1("Reshape", kh, g.const([-1, cfg.n_kv_heads, d], np.int64)), cos, sin, d)
    vh = g.op1("Reshape", vh, g.const([-1, cfg.n_kv_heads, d], np.int64))
    g.tap(f"L{i}.q_rope", qh, ["T", cfg.n_heads, d])
    g.tap(f"L{i}.k_rope", kh, ["T", cfg.n_kv_heads, d])
    g.tap(f"L{i}.v", vh, ["T", cfg.n_kv_heads, d])
    k_all = g.op("Concat", [f"past_key_{i}", kv_round(g, kh, kv_dtype)], out=[f"present_key_{i}"], axis=0)[0]
    v_all = g.op("Concat", [f"past_value_{i}", kv_round(g, vh, kv_dtype)], out=[f"present_value_{i}"],
                 axis=0)[0]
    a = attention(g, cfg, qh, k_all, v_all, mask)  # (T, q_size)
    g.tap(f"L{i}.attn", a, ["T", cfg.q_size])
    if cfg.subln:
        a = rmsnorm(g, a, g.init(f"{pre}.attn_sub_norm", L.attn_sub_norm), cfg.q_size, cfg.rms_eps)
    q8, qs = quantize(g, a, g.offset_ternary)
    h = g.op1("Add", h, linears(g, q8, qs, [L.o], f"{pre}.o")[0])
    g.tap(f"L{i}.h_attn", h, ["T", cfg.hidden_size])
    x = rmsnorm(g, h, g.init(f"{pre}.ffn_norm", L.ffn_norm.astype(np.float32)), cfg.hidden_size,
                cfg.rms_eps)
    q8, qs = quantize(g, x, g.offset_ternary)
    gate, up = linears(g, q8, qs, [L.gate, L.up], f"{pre}.gate_up")
    if cfg.act == "relu2":
        r = g.op1("Relu", gate)
        act = g.op1("Mul", r, r)
    else:  # silu = x / (1 + exp(-x)), as the contract writes it
        act = g.op1("Div", gate, g.op1("Add", g.const(1.0), g.op1("Exp", g.op1("Neg", gate))))
    f = g.op1("Mul", act, up)
    g.tap(f"L{i}.ffn_act", f, ["T", cfg.ffn_size])
    if cfg.subln:
        f = rmsnorm(g, f, g.init(f"{pre}.ffn_sub_norm", L.ffn_sub_norm), cfg.ffn_size, cfg.rms_eps)
    q8, qs = quantize(g, f, g.offset_ternary)
    h = g.op1("Add", h, linears(g, q8, qs, [L.down], f"{pre}.down")[0])
    g.tap(f"L{i}.h_out", h, ["T", cfg.hidden_size])
    return h


def lm_head(g: GraphBuilder, x: str, head: Int8Head | LowBitLinear) -> str:
    """(T, hidden) normed -> logits (T, vocab) = (float(acc) / qs) * row_scale, int8 x int8 (a low-bit
    head: the W{b}A8 linear)."""
    q8, qs = quantize(g, x)
    if isinstance(head, LowBitLinear):
        offset, g.offset_ternary = g.offset_ternary, False
        qu = q_uint8(g, q8) if g.lowbit == "contract" else ""
        y = lowbit_node(g, qu, q_float(g, q8), qs, head, "lm_head")
        g.offset_ternary = offset
        return g.op("Identity", [y], out=["logits"])[0]
    acc = g.op1("MatMulInteger", q8, g.init("lm_head.weight", np.ascontiguousarray(head.w.T)))
    y = g.op1("Div", g.op1("Cast", acc, to=TensorProto.FLOAT), qs)
    return g.op("Mul", [y, g.init("lm_head.row_scale", head.row_scale.astype(np.float32))],
                out=["logits"])[0]


# ---------------------------------------------------------------- model

def build_onnx(qm: QuantModel, opset: int = MIN_OPSET, taps: bool = False, fast: bool = False,
               data: BinaryIO | None = None, data_location: str = "", kv_dtype: str = "f32",
               lowbit: str = "contract") -> onnx.ModelProto:
    """The ONNX model of `qm` (in memory; see export_onnx for saving large models). With taps,
    intermediate values are extra outputs named as GoldenModel's taps (embed, L{i}.attn, ...).

    fast: ternary linears take uint8 q + 128 with a_zero_point 128 instead of int8 q. onnxruntime's
    int8 x int8 MatMulInteger has no fast CPU kernel (~100x slower at T=1); uint8 x int8 does, and is
    exact here because ternary weights keep every u8*s8 pair sum within int16 (|2 * 255 * 1|). Same
    integers, so the same logits bit for bit; the LM head (int8 weights) stays int8 x int8.
    data: weights are written to this open file as they are made (external data named
    data_location, relative to the model file), so the proto stays small.
    kv_dtype: the numerics plan's KV cache type ("f32" or "f16"; NumericsPlan.kv_dtype).
    lowbit: the low-bit linears' form, "contract" (bit for bit the W{b}A8 contract) or "nbits"
    (com.microsoft MatMulNBits); ternary-only models build the same graph either way."""
    if kv_dtype not in nx.KV_DTYPES:
        raise EdgeLLMError(f"kv_dtype {kv_dtype!r}: expected one of {', '.join(nx.KV_DTYPES)}")
    check_lowbit_mode(lowbit)
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise EdgeLLMError(f"ONNX opset {opset} unsupported; use {MIN_OPSET}.."
                           f"{onnx.defs.onnx_opset_version()}")
    qm.validate()
    cfg, g = qm.config, GraphBuilder(opset, taps, fast, data, data_location, lowbit)
    i64 = np.int64
    # positions: q_pos = pos0 + [0, T); key positions [0, S) with S = P + T
    t_len = g.op1("Squeeze", g.op1("Shape", "input_ids"), g.const([0], i64))
    q_pos = g.op1("Range", "pos0", g.op1("Add", "pos0", t_len), g.const(1, i64))  # (T,)
    s_len = g.op1("Add", g.op1("Squeeze", g.op1("Shape", "past_key_0", end=1), g.const([0], i64)),
                  t_len)
    k_pos = g.op1("Range", g.const(0, i64), s_len, g.const(1, i64))  # (S,)
    mask = g.op1("LessOrEqual", g.op1("Unsqueeze", k_pos, g.const([0], i64)),
                 g.op1("Unsqueeze", q_pos, g.const([1], i64)))  # (T, S)
    cos_t, sin_t = cfg.rope_tables(cfg.max_context)
    axis1 = g.const([1], i64)
    cos = g.op1("Unsqueeze", g.op1("Gather", g.init("rope.cos", cos_t), q_pos), axis1)  # (T,1,D/2)
    sin = g.op1("Unsqueeze", g.op1("Gather", g.init("rope.sin", sin_t), q_pos), axis1)
    embed = qm.embed_rows(np.arange(cfg.vocab_size))  # (vocab, hidden) f32
    h = g.op1("Gather", g.init("embed.weight", embed), "input_ids")  # (T, hidden)
    g.tap("embed", h, ["T", cfg.hidden_size])
    for i in range(cfg.n_layers):
        h = decoder_layer(g, qm, i, h, cos, sin, mask, kv_dtype)
    x = rmsnorm(g, h, g.init("final_norm", qm.final_norm.astype(np.float32)), cfg.hidden_size,
                cfg.rms_eps)
    lm_head(g, x, qm.lm_head)

    kv = ["P", cfg.n_kv_heads, cfg.head_dim]
    kv_out = ["S", cfg.n_kv_heads, cfg.head_dim]
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["T"]),
              helper.make_tensor_value_info("pos0", TensorProto.INT64, [])]
    outputs = [helper.make_tensor_value_info("logits", f32, ["T", cfg.vocab_size])]
    for i in range(cfg.n_layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_{kind}_{i}", f32, kv))
            outputs.append(helper.make_tensor_value_info(f"present_{kind}_{i}", f32, kv_out))
    outputs += g.taps or []
    graph = helper.make_graph(g.nodes, cfg.name, inputs, outputs, g.inits)
    ops = [helper.make_opsetid("", opset)]
    if any(n.domain == MS_DOMAIN for n in g.nodes):
        ops.append(helper.make_opsetid(MS_DOMAIN, 1))
    model = helper.make_model(graph, opset_imports=ops, producer_name="edgellm",
                              ir_version=helper.find_min_ir_version_for(ops, ignore_unknown=True))
    helper.set_model_props(model, {CONFIG_KEY: json.dumps(cfg.to_dict()), KV_DTYPE_KEY: kv_dtype,
                                   LOWBIT_KEY: lowbit})
    return model


def check_lowbit_mode(lowbit: str) -> None:
    """One-line EdgeLLMError unless `lowbit` is one of LOWBIT_MODES."""
    if lowbit not in LOWBIT_MODES:
        raise EdgeLLMError(f"low-bit ONNX form {lowbit!r}: expected one of {', '.join(LOWBIT_MODES)}")


def _lin_bytes(lin: Linear, lowbit: str) -> int:
    if lowbit == "contract" and isinstance(lin, LowBitLinear):
        return contract_bytes(lin)
    return linear_bytes(lin)


def weight_bytes(cfg: ModelConfig, qm: QuantModel | None = None, lowbit: str = "contract") -> int:
    """Approximate size of the exported weights: int8 ternary linears and head, fp32 embedding; with qm,
    low-bit linears as exported (contract: uint8 codes and f32 scales/mins; nbits: MatMulNBits' packed
    codes and f32 scales/mins, else f32 dequantized)."""
    v, h = cfg.vocab_size, cfg.hidden_size
    linears = cfg.n_ternary_params()
    if qm is not None:
        linears = sum(_lin_bytes(lin, lowbit) for L in qm.layers for lin in L.linears().values())
        if isinstance(qm.lm_head, LowBitLinear):
            linears += _lin_bytes(qm.lm_head, lowbit) - v * h
    return linears + v * h * 5 + cfg.max_context * cfg.head_dim * 4


def needs_external(cfg: ModelConfig, qm: QuantModel | None = None, lowbit: str = "contract") -> bool:
    """Whether the export must put its weights in a side file (over EXTERNAL_DATA_BYTES)."""
    return weight_bytes(cfg, qm, lowbit) > EXTERNAL_DATA_BYTES


def export_onnx(qm: QuantModel, path: str | Path, opset: int = MIN_OPSET, fast: bool = False,
                taps: bool = False, kv_dtype: str = "f32", lowbit: str = "contract") -> Path:
    """Write the ONNX model of `qm` to `path` (see build_onnx); when needs_external, weights are
    streamed to `<path>.data` (page-aligned external data) instead of the protobuf."""
    check_lowbit_mode(lowbit)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not needs_external(qm.config, qm, lowbit):
        onnx.save_model(build_onnx(qm, opset, taps, fast, kv_dtype=kv_dtype, lowbit=lowbit), str(path))
        return path
    location = path.name + ".data"
    with open(path.parent / location, "wb") as f:
        model = build_onnx(qm, opset, taps, fast, data=f, data_location=location, kv_dtype=kv_dtype,
                           lowbit=lowbit)
    onnx.save_model(model, str(path))
    return path


def config_of(model: onnx.ModelProto | dict[str, str]) -> ModelConfig:
    """The ModelConfig stored in an exported model's metadata (a ModelProto or its metadata map)."""
    meta = model if isinstance(model, dict) else {p.key: p.value for p in model.metadata_props}
    if CONFIG_KEY not in meta:
        raise EdgeLLMError(f"ONNX model has no {CONFIG_KEY!r} metadata (not exported by edgellm)")
    return ModelConfig.from_dict(json.loads(meta[CONFIG_KEY]))
