"""Writing llama/qwen2 GGUF files with group-quantized tensors (test fixtures, the accuracy bench).

gguf-py quantizes Q4_0, Q4_1, Q5_0 and Q8_0 itself (gguf.quants.quantize, as llama.cpp does); it only
dequantizes the K-quants, so Q2_K .. Q6_K are encoded here with round-to-nearest in llama.cpp's block
layouts (ggml-common.h): per sub-block scale (and min) by RTN, the sub-block scales quantized to 4/6/8
bits against the super-block's fp16 d (and dmin), then codes by RTN against the decoded scales. This is
not llama.cpp's searched quantizer (make_qkx2_quants etc.): the layouts are exact, the error is RTN's.

Mixes (Q4_0, Q4_K_M, Q2_K, Q8_0): llama.cpp's tensor types, loaders/gguf_mix.py (a tied model's
token_embd, the LM head too, in the output tensor's type: Q6_K, or Q8_0), with two differences:
Q2_K's attn_v is Q4_K whatever the model's GQA (llama.cpp: Q3_K below 4 query heads a KV head), and a
Q2_K / Q3_K tensor whose row length is not a multiple of 256 falls back to Q4_0 (llama.cpp: IQ4_NL, a
non-linear codebook no GroupQuant holds).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgellm.errors import CheckpointError
from edgellm.models.loaders.gguf_llama import LINEARS, permute_rows
from edgellm.models.loaders.gguf_mix import DEFAULT, QK_K, fallback
from edgellm.models.loaders.gguf_mix import tensor_type as llama_cpp_type
from edgellm.models.weights import FloatWeights

F32 = np.float32
MIXES = tuple(DEFAULT)
WRITER_GQA = 4  # the GQA the mixes are taken at: Q2_K's attn_v is Q4_K for every model


def _f16(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 -> (fp16 bytes (..., 2), the fp16 value back as float32)."""
    h = np.asarray(x, F32).astype(np.float16)
    return h[..., None].view(np.uint8).reshape(*h.shape, 2), h.astype(F32)


def _safe(d: np.ndarray) -> np.ndarray:
    return np.where(d == 0, F32(1.0), d)


def _sub_scales(x: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric RTN per sub-block (n, subs, size): scale = (max - min') / levels, min = -min' (>= 0),
    min' = min(x, 0)."""
    lo = np.minimum(x.min(-1), 0.0)
    return ((x.max(-1) - lo) / F32(levels)).astype(F32), (-lo).astype(F32)


def _pack_bits(vals: np.ndarray, bits: int) -> np.ndarray:
    """(n, groups, per, 32) small values -> (n, groups, 32) bytes, value j at bit bits*j."""
    out = np.zeros(vals.shape[:-2] + (vals.shape[-1],), np.uint8)
    for j in range(vals.shape[-2]):
        out |= (vals[..., j, :].astype(np.uint8) << np.uint8(bits * j)).astype(np.uint8)
    return out


def _q2_k(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    xs = x.reshape(n, 16, 16)
    sc, mn = _sub_scales(xs, 3)
    db, d = _f16(sc.max(-1) / 15)
    mb, dm = _f16(mn.max(-1) / 15)
    isc = np.clip(np.rint(sc / _safe(d)[:, None]), 0, 15).astype(np.uint8)
    imn = np.clip(np.rint(mn / _safe(dm)[:, None]), 0, 15).astype(np.uint8)
    s, m = d[:, None] * isc.astype(F32), dm[:, None] * imn.astype(F32)
    q = np.clip(np.rint((xs + m[..., None]) / _safe(s)[..., None]), 0, 3).astype(np.uint8)
    q = q.reshape(n, 2, 4, 32)  # element 128 h + 32 k + l at bits 2k of byte 32 h + l
    return np.concatenate([isc | (imn << np.uint8(4)), _pack_bits(q, 2).reshape(n, 64), db, mb], axis=1)


def _k_scales_pack(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """Eight 6-bit scales and mins -> Q4_K/Q5_K's 12 bytes (inverse of gguf-py get_scale_min)."""
    d = (sc[:, :4] & 63) | ((sc[:, 4:] >> 4) << 6)
    m = (mn[:, :4] & 63) | ((mn[:, 4:] >> 4) << 6)
    md = (sc[:, 4:] & 15) | ((mn[:, 4:] & 15) << 4)
    return np.concatenate([d, m, md], axis=1).astype(np.uint8)


def _q45_k(x: np.ndarray, bits: int) -> np.ndarray:
    n = x.shape[0]
    xs = x.reshape(n, 8, 32)
    sc, mn = _sub_scales(xs, (1 << bits) - 1)
    db, d = _f16(sc.max(-1) / 63)
    mb, dm = _f16(mn.max(-1) / 63)
    isc = np.clip(np.rint(sc / _safe(d)[:, None]), 0, 63).astype(np.uint8)
    imn = np.clip(np.rint(mn / _safe(dm)[:, None]), 0, 63).astype(np.uint8)
    s, m = d[:, None] * isc.astype(F32), dm[:, None] * imn.astype(F32)
    q = np.clip(np.rint((xs + m[..., None]) / _safe(s)[..., None]), 0, (1 << bits) - 1).astype(np.uint8)
    q = q.reshape(n, 4, 2, 32)  # element 64 c + 32 h + l
    ql = (q[:, :, 0] & 15) | ((q[:, :, 1] & 15) << 4)  # (n, 4, 32)
    parts = [db, mb, _k_scales_pack(isc, imn)]
    if bits == 5:
        parts.append(_pack_bits((q.reshape(n, 8, 32) >> 4)[:, None], 1).reshape(n, 32))
    return np.concatenate(parts + [ql.reshape(n, 128)], axis=1)


def _signed_sub(xs: np.ndarray, qmin: int) -> np.ndarray:
    """Symmetric RTN scale per sub-block mapping its largest-magnitude value to qmin (< 0)."""
    idx = np.abs(xs).argmax(-1)
    big = np.take_along_axis(xs, idx[..., None], -1)[..., 0]
    return (big / F32(qmin)).astype(F32)


def _signed_k(x: np.ndarray, half: int, smax: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q3_K / Q6_K's quantization of (n, 256) rows: 16 sub-blocks of 16, each with a signed integer scale
    isc in -smax-1..smax of the super-block's f16 d and signed codes in -half..half-1. Returns the codes
    + half (n, 256) uint8, isc (n, 16) int16 and d's bytes."""
    n = x.shape[0]
    xs = x.reshape(n, 16, 16)
    ss = _signed_sub(xs, -half)
    db, d = _f16(np.abs(ss).max(-1) / smax)
    isc = np.clip(np.rint(ss / _safe(d)[:, None]), -smax - 1, smax).astype(np.int16)
    s = d[:, None] * isc.astype(F32)
    q = np.clip(np.rint(xs / _safe(s)[..., None]), -half, half - 1).astype(np.int16) + half
    return q.astype(np.uint8).reshape(n, 256), isc, db


def _q3_k(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    q, isc, db = _signed_k(x, 4, 31)  # code 0..7
    sc6 = (isc + 32).astype(np.uint8)
    lo = (sc6[:, :8] & 15) | ((sc6[:, 8:] & 15) << 4)
    hi = _pack_bits(((sc6 >> 4) & 3).reshape(n, 4, 4)[:, None], 2)  # (n, 1, 4): scale j in byte j % 4
    hmask = _pack_bits((q >> 2).reshape(n, 1, 8, 32), 1).reshape(n, 32)
    qs = _pack_bits((q & 3).reshape(n, 2, 4, 32), 2).reshape(n, 64)
    return np.concatenate([hmask, qs, lo, hi.reshape(n, 4), db], axis=1)


def _q6_k(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    q, isc, db = _signed_k(x, 32, 127)  # code 0..63
    q = q.reshape(n, 2, 2, 2, 32)  # element 128 h + 64 nib + 32 k2 + l
    ql = (q[:, :, 0] & 15) | ((q[:, :, 1] & 15) << 4)  # (n, 2, 2, 32) -> low nibble elements 128h + 32k2 + l
    qh = _pack_bits((q.reshape(n, 2, 4, 32) >> 4), 2)  # (n, 2, 32)
    sc = isc.astype(np.int8).view(np.uint8)
    return np.concatenate([ql.reshape(n, 128), qh.reshape(n, 64), sc, db], axis=1)


_K_ENCODERS = {"Q2_K": _q2_k, "Q3_K": _q3_k, "Q4_K": lambda x: _q45_k(x, 4), "Q5_K": lambda x: _q45_k(x, 5),
               "Q6_K": _q6_k}


def quantize(w: np.ndarray, kind: str) -> np.ndarray:
    """(out, k) float32 -> GGUF bytes (out, k / block * bytes) of type kind."""
    import gguf
    import gguf.quants

    w = np.ascontiguousarray(w, F32)
    if kind in _K_ENCODERS:
        out, k = w.shape
        if k % QK_K:
            raise CheckpointError(f"{kind} needs a row length divisible by {QK_K}, got {k}")
        return _K_ENCODERS[kind](w.reshape(-1, QK_K)).reshape(out, -1)
    return gguf.quants.quantize(w, gguf.GGMLQuantizationType[kind])


def tensor_type(mix: str, name: str, layer: int, n_layers: int, k: int, has_output: bool = True) -> str:
    """The type a mix gives tensor `name` (attn_q, ffn_down, token_embd, output, ...) of row length k in a
    model with (has_output) or without an output.weight (tied: token_embd takes the output's type)."""
    t = fallback(llama_cpp_type(mix, name, layer, n_layers, WRITER_GQA, has_output), k)
    return "Q4_0" if t == "IQ4_NL" else t


def write_gguf(path: str | os.PathLike, fw: FloatWeights, arch: str, mix: str,
               tokenizer_json: str | None = None) -> dict[str, str]:
    """Write fw as a GGUF of architecture arch ("llama": attn_q/attn_k rows permuted as
    convert_hf_to_gguf.py does; "qwen2": q/k/v biases) quantized by mix. Written to a temporary name and
    renamed (nothing half-written). Returns tensor name -> type."""
    import gguf

    c = fw.config
    if arch not in ("llama", "qwen2"):
        raise CheckpointError(f"write_gguf: architecture {arch!r} (llama or qwen2)")
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    w = gguf.GGUFWriter(str(tmp), arch)
    w.add_name(c.name)
    w.add_context_length(c.max_context)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.n_layers)
    w.add_feed_forward_length(c.ffn_size)
    w.add_head_count(c.n_heads)
    w.add_head_count_kv(c.n_kv_heads)
    w.add_key_length(c.head_dim)
    w.add_value_length(c.head_dim)
    w.add_rope_dimension_count(c.head_dim)
    w.add_rope_freq_base(c.rope_theta)
    w.add_layer_norm_rms_eps(c.rms_eps)
    w.add_vocab_size(c.vocab_size)
    w.add_bos_token_id(c.bos_id)
    w.add_eos_token_id(c.eos_id)
    if tokenizer_json is not None:
        w.add_string("tokenizer.huggingface.json", tokenizer_json)
    types: dict[str, str] = {}

    def put(name: str, arr: np.ndarray, kind: str) -> None:
        types[name] = kind
        if kind == "F32":
            w.add_tensor(name, np.ascontiguousarray(arr, F32))
        else:
            w.add_tensor(name, quantize(arr, kind), raw_dtype=gguf.GGMLQuantizationType[kind])

    put("token_embd.weight", fw.embed,
        tensor_type(mix, "token_embd", 0, c.n_layers, c.hidden_size, has_output=fw.head is not None))
    if c.rope_freq_factors:
        put("rope_freqs.weight", np.asarray(c.rope_freq_factors, F32), "F32")
    for i, L in enumerate(fw.layers):
        p = f"blk.{i}."
        put(p + "attn_norm.weight", L["attn_norm"], "F32")
        put(p + "ffn_norm.weight", L["ffn_norm"], "F32")
        for n, gn in LINEARS.items():
            m = np.asarray(L[n], F32)
            if arch == "llama" and n in ("q", "k"):
                m = m[permute_rows(m.shape[0], c.n_heads if n == "q" else c.n_kv_heads)]
            put(p + gn + ".weight", m, tensor_type(mix, gn, i, c.n_layers, m.shape[1]))
        if c.qkv_bias:
            for n in "qkv":
                put(f"{p}attn_{n}.bias", L[f"{n}_bias"], "F32")
    put("output_norm.weight", fw.final_norm, "F32")
    if fw.head is not None:
        put("output.weight", fw.head, tensor_type(mix, "output", 0, c.n_layers, c.hidden_size))
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return types
