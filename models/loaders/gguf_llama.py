"""GGUF files of the llama and qwen2 architectures (llama.cpp's convert_hf_to_gguf.py layout) with
group-quantized tensors (models/loaders/gguf_quants.py), mixed per tensor as real files are.

- Linears: Q4_0, Q4_1, Q5_0, Q8_0, Q2_K .. Q6_K -> LowBitLinear (W{b}A8); a linear stored as F32/F16/BF16
  is quantized to Q8_0 with gguf-py's own quantizer (meta["requantized"] lists them), or refused with
  float_linears="error".
- llama: convert_hf_to_gguf.py permutes the rows of attn_q / attn_k for llama.cpp's interleaved RoPE;
  the rows are permuted back here so that our rotate-half RoPE (as transformers) applies. qwen2 is
  stored unpermuted (llama.cpp runs it with NEOX RoPE, i.e. rotate-half).
- qwen2: attn_q/k/v.bias (F32) -> Layer.q_bias/k_bias/v_bias.
- Llama 3 rope scaling: the rope_freqs.weight tensor (head_dim/2 frequency divisors) -> rope_freq_factors.
- Embeddings: any supported type, dequantized to float32 (bf16 bits when exact). LM head (output.weight,
  or token_embd when tied): int8 per row from the dequantized rows (default), or with lowbit_head=True
  the file's quantized tensor as a LowBitLinear.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgellm.errors import CheckpointError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders import gguf_quants as gq
from edgellm.models.loaders.common import check_finite, head_from_rows
from edgellm.models.loaders.safetensors_io import bf16_bits_if_exact
from edgellm.models.weights import Layer, LowBitLinear, QuantModel

LOWBIT_ARCHS = ("llama", "qwen2")
# a layer's linears (ModelConfig.linear_shapes) by their GGUF tensor names (llama.cpp's LLM_TENSOR_*;
# the bitnet loader, the GGUF writer and the llama.cpp mix use these too)
LINEARS = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
           "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}
FLOAT_LINEARS = ("q8_0", "error")


def unpermute_rows(out: int, n_heads: int) -> np.ndarray:
    """Row order undoing convert_hf_to_gguf.py's permute(w, n_heads): hf rows = gguf rows[idx]."""
    d = out // n_heads
    return np.arange(out).reshape(n_heads, d // 2, 2).transpose(0, 2, 1).reshape(-1)


def permute_rows(out: int, n_heads: int) -> np.ndarray:
    """convert_hf_to_gguf.py's permute as a row order: gguf rows = hf rows[idx]."""
    d = out // n_heads
    return np.arange(out).reshape(n_heads, 2, d // 2).transpose(0, 2, 1).reshape(-1)


def rope_factors(g: Any, head_dim: int) -> tuple[float, ...]:
    """rope_freqs.weight (Llama 3 rope scaling) as ModelConfig.rope_freq_factors; () when absent."""
    t = g.tensors.get("rope_freqs.weight")
    if t is None:
        return ()
    kind = t.tensor_type.name
    vals = gq.floats(kind, t.data, (int(np.prod(t.shape)),), f"{g.path}: tensor rope_freqs.weight")
    if vals.size != head_dim // 2:
        raise CheckpointError(f"{g.path}: tensor rope_freqs.weight: {vals.size} values, expected "
                              f"head_dim/2 = {head_dim // 2}")
    check_finite(vals, f"{g.path}: tensor rope_freqs.weight")
    return tuple(float(v) for v in vals)


def _group_quant(g: Any, name: str, out: int, k: int, float_linears: str, meta: dict) -> LowBitLinear:
    """One linear tensor as a LowBitLinear (float tensors requantized to Q8_0 or refused)."""
    t = g.tensor(name, (out, k))
    kind = t.tensor_type.name
    what = f"{g.path}: tensor {name}"
    if kind in gq.FLOAT_TYPES:
        if float_linears != "q8_0":
            raise CheckpointError(f"{what}: {kind} linear; float linears are quantized only on request "
                                  "(float_linears='q8_0')")
        import gguf.quants

        w = check_finite(gq.floats(kind, t.data, (out, k), what), what)
        if k % 32:
            raise CheckpointError(f"{what}: a {kind} linear needs a row length divisible by 32 to be "
                                  f"quantized to Q8_0, got {k}")
        raw = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q8_0)
        meta.setdefault("requantized", []).append(f"{name}: {kind} -> Q8_0")
        return LowBitLinear(gq.decode("Q8_0", raw, out, k, what), "Q8_0")
    return LowBitLinear(gq.decode(kind, t.data, out, k, what), kind)


def _dense(g: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
    """Any supported tensor as float32 rows (quantized ones dequantized)."""
    t = g.tensor(name, shape)
    kind = t.tensor_type.name
    what = f"{g.path}: tensor {name}"
    if kind in gq.FLOAT_TYPES:
        return check_finite(gq.floats(kind, t.data, shape, what), what)
    return gq.decode(kind, t.data, *shape, what).dequantize()


def _vector(g: Any, name: str, n: int) -> np.ndarray:
    t = g.tensor(name, (n,))
    what = f"{g.path}: tensor {name}"
    return check_finite(gq.floats(t.tensor_type.name, t.data, (n,), what), what)


def load_layers(g: Any, cfg: ModelConfig, arch: str, float_linears: str, meta: dict) -> list[Layer]:
    """The decoder layers of a llama/qwen2 GGUF."""
    shapes, h = cfg.linear_shapes(), cfg.hidden_size
    layers = []
    for i in range(cfg.n_layers):
        p = f"blk.{i}."
        lin = {n: _group_quant(g, p + gn + ".weight", *shapes[n], float_linears, meta)
               for n, gn in LINEARS.items()}
        if arch == "llama":
            lin["q"] = lin["q"].rows(unpermute_rows(cfg.q_size, cfg.n_heads))
            lin["k"] = lin["k"].rows(unpermute_rows(cfg.kv_size, cfg.n_kv_heads))
        extra = {}
        if cfg.qkv_bias:
            sizes = {"q": cfg.q_size, "k": cfg.kv_size, "v": cfg.kv_size}
            extra = {f"{n}_bias": _vector(g, f"{p}attn_{n}.bias", sizes[n]) for n in "qkv"}
        layers.append(Layer(attn_norm=_vector(g, p + "attn_norm.weight", h),
                            ffn_norm=_vector(g, p + "ffn_norm.weight", h), **lin, **extra))
    return layers


def load_lowbit_gguf(g: Any, cfg: ModelConfig, lowbit_head: bool = False, float_linears: str = "q8_0"
                     ) -> QuantModel:
    """A llama/qwen2-architecture GGUFFile (models/loaders/gguf_loader.py) -> QuantModel."""
    if float_linears not in FLOAT_LINEARS:
        raise CheckpointError(f"float_linears must be one of {', '.join(FLOAT_LINEARS)}, "
                              f"got {float_linears!r}")
    arch = g.meta_str("general.architecture")
    meta: dict = {"source": str(g.path), "format": "gguf", "arch": arch}
    layers = load_layers(g, cfg, arch, float_linears, meta)
    v, h = cfg.vocab_size, cfg.hidden_size
    e = _dense(g, "token_embd.weight", (v, h))
    bits = bf16_bits_if_exact(e)
    embed = bits if bits is not None else e
    final = _vector(g, "output_norm.weight", h)
    head_name = "token_embd.weight" if cfg.tied_embeddings else "output.weight"
    head_t = g.tensor(head_name, (v, h))
    if lowbit_head:
        if head_t.tensor_type.name in gq.FLOAT_TYPES:
            raise CheckpointError(f"{g.path}: tensor {head_name}: a low-bit LM head needs a quantized "
                                  f"tensor, got {head_t.tensor_type.name}")
        head: Any = _group_quant(g, head_name, v, h, "error", meta)
    else:
        head = head_from_rows(e if cfg.tied_embeddings else _dense(g, head_name, (v, h)))
    meta["types"] = _type_counts(g)
    qm = QuantModel(cfg, embed, layers, final, head, meta=meta)
    qm.validate()
    return qm


def _type_counts(g: Any) -> dict[str, int]:
    """Tensor type -> number of tensors of it in the file (the file's quantization mix)."""
    out: dict[str, int] = {}
    for t in g.reader.tensors:
        out[t.tensor_type.name] = out.get(t.tensor_type.name, 0) + 1
    return dict(sorted(out.items()))
