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
The graph builder and the contract's blocks (RMSNorm, quantize, linears, RoPE, attention):
models/onnx_graph.py (importable from here too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgellm.errors import EdgeLLMError
from edgellm.models import numerics as nx
from edgellm.models.config import ModelConfig
from edgellm.models.onnx_contract import contract_bytes, q_uint8
from edgellm.models.onnx_graph import (
    GraphBuilder,
    attention,
    kv_round,
    linears,
    lowbit_node,
    quantize,
    rmsnorm,
    rope,
)
from edgellm.models.onnx_lowbit import MS_DOMAIN, linear_bytes, q_float
from edgellm.models.weights import Int8Head, Linear, LowBitLinear, QuantModel

__all__ = ["CONFIG_KEY", "EXTERNAL_DATA_BYTES", "KV_DTYPE_KEY", "LOWBIT_KEY", "LOWBIT_MODES", "MIN_OPSET",
           "GraphBuilder", "attention", "build_onnx", "check_lowbit_mode", "config_of", "decoder_layer",
           "export_onnx", "kv_round", "linears", "lm_head", "lowbit_node", "needs_external", "q_float",
           "q_uint8", "quantize", "rmsnorm", "rope", "tap_quant", "weight_bytes"]

EXTERNAL_DATA_BYTES = 1_500_000_000  # above this, weights go to a side file (protobuf limit is 2 GB)
CONFIG_KEY = "edgellm.config"  # metadata_props key holding ModelConfig JSON
KV_DTYPE_KEY = "edgellm.kv_dtype"  # metadata_props key: the KV cache rounding built into the graph
LOWBIT_KEY = "edgellm.lowbit_onnx"  # metadata_props key: the low-bit linears' form (LOWBIT_MODES)
LOWBIT_MODES = ("contract", "nbits")  # contract order (bit-exact W{b}A8) | com.microsoft MatMulNBits
MIN_OPSET = 17


# ---------------------------------------------------------------- model

def decoder_layer(g: GraphBuilder, qm: QuantModel, i: int, h: str, cos: str, sin: str, mask: str,
                  kv_dtype: str = "f32") -> str:
    """One decoder layer: attention block (writes present_key_i / present_value_i, rounded as the
    kv_dtype cache stores them) and gated FFN."""
    cfg, L = qm.config, qm.layers[i]
    pre, d = f"layers.{i}", cfg.head_dim
    x = rmsnorm(g, h, g.init(f"{pre}.attn_norm", L.attn_norm.astype(np.float32)), cfg.hidden_size,
                cfg.rms_eps)
    q8, qs = quantize(g, x, g.offset_ternary)
    tap_quant(g, f"L{i}.attn_in", x, q8, cfg.hidden_size, g.offset_ternary)
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
    tap_quant(g, f"L{i}.o_in", a, q8, cfg.q_size, g.offset_ternary)
    h = g.op1("Add", h, linears(g, q8, qs, [L.o], f"{pre}.o")[0])
    g.tap(f"L{i}.h_attn", h, ["T", cfg.hidden_size])
    x = rmsnorm(g, h, g.init(f"{pre}.ffn_norm", L.ffn_norm.astype(np.float32)), cfg.hidden_size,
                cfg.rms_eps)
    q8, qs = quantize(g, x, g.offset_ternary)
    tap_quant(g, f"L{i}.ffn_in", x, q8, cfg.hidden_size, g.offset_ternary)
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
    tap_quant(g, f"L{i}.down_in", f, q8, cfg.ffn_size, g.offset_ternary)
    h = g.op1("Add", h, linears(g, q8, qs, [L.down], f"{pre}.down")[0])
    g.tap(f"L{i}.h_out", h, ["T", cfg.hidden_size])
    return h


def tap_quant(g: GraphBuilder, name: str, x: str, q8: str, width: int, offset: bool) -> None:
    """With taps: a requantization's float input as `{name}_x` and its codes as int8 `{name}_q` (with
    offset, q8 is uint8 q + 128, as the builder's offset ternary linears take it; the tap is the int8
    value either way)."""
    if g.taps is None:
        return
    g.tap(f"{name}_x", x, ["T", width])
    if offset:
        q_f = g.op1("Sub", g.op1("Cast", q8, to=TensorProto.FLOAT), g.const(128.0))
        q8 = g.op1("Cast", q_f, to=TensorProto.INT8)
    g.tap(f"{name}_q", q8, ["T", width], TensorProto.INT8)


def lm_head(g: GraphBuilder, x: str, head: Int8Head | LowBitLinear) -> str:
    """(T, hidden) normed -> logits (T, vocab) = (float(acc) / qs) * row_scale, int8 x int8 (a low-bit
    head: the W{b}A8 linear)."""
    q8, qs = quantize(g, x)
    hidden = head.shape[1] if isinstance(head, LowBitLinear) else head.w.shape[1]
    tap_quant(g, "head_in", x, q8, hidden, offset=False)  # the head's q8 is int8 either way
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
