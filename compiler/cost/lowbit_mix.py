"""llama.cpp's tensor types for a model at a GGUF file type (Q4_0, Q4_K_M, Q2_K), as the low-bit engine's
formats: what `edgellm estimate --weights` and bench/lowbit_projections.py project for a preset's shapes
(src/llama-quant.cpp, llama_tensor_get_type). The engine's cost model: cost/lowbit.py."""

from __future__ import annotations

from edgellm.compiler.cost.lowbit import FORMATS, LowbitModel, fit
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig

DEFAULT = {"Q4_0": "Q4_0", "Q4_K_M": "Q4_K", "Q2_K": "Q2_K"}
FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
BLOCK = {"Q4_0": 32, "Q4_1": 32, "Q5_0": 32, "Q5_1": 32, "Q8_0": 32, "Q2_K": 256, "Q3_K": 256, "Q4_K": 256,
         "Q5_K": 256, "Q6_K": 256}


def use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _gguf_type(name: str, n_in: int) -> str:
    if n_in % BLOCK[name] == 0:
        return name
    if name not in FALLBACK:
        raise EdgeLLMError(f"low-bit mix: no fallback for {name} at input size {n_in}")
    return FALLBACK[name]


def llama_cpp_mix(cfg: ModelConfig, ftype: str) -> LowbitModel:
    """The tensor types llama.cpp's quantizer (src/llama-quant.cpp, llama_tensor_get_type) gives a model
    at file type `ftype` (Q4_0, Q4_K_M, Q2_K), as engine formats: every linear takes the file type's
    default type except the LM head (the token embedding of a tied model): Q6_K, or Q8_0 when the
    hidden size is not a multiple of the default type's block; Q4_K_M: attn_v and ffn_down Q6_K where
    use_more_bits(i, n) holds; Q2_K: attn_v Q4_K (GQA >= 4) or Q3_K, ffn_down and attn_output Q3_K; a
    K-quant whose input size is not a multiple of 256 falls back (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K ->
    Q8_0)."""
    if ftype not in DEFAULT:
        raise EdgeLLMError(f"low-bit mix: unknown file type {ftype!r} (one of {', '.join(DEFAULT)})")
    base = DEFAULT[ftype]
    sh = cfg.linear_shapes()
    layers = []
    for i in range(cfg.n_layers):
        t = dict.fromkeys(sh, base)
        if ftype == "Q4_K_M" and use_more_bits(i, cfg.n_layers):
            t["v"] = t["down"] = "Q6_K"
        if ftype == "Q2_K":
            t["v"] = "Q4_K" if cfg.n_heads // cfg.n_kv_heads >= 4 else "Q3_K"
            t["down"] = t["o"] = "Q3_K"
        layers.append({n: fit(FORMATS[_gguf_type(t[n], sh[n][1])], sh[n][1]) for n in sh})
    head = "Q8_0" if cfg.hidden_size % BLOCK[base] else "Q6_K"
    return LowbitModel(tuple(layers), fit(FORMATS[_gguf_type(head, cfg.hidden_size)], cfg.hidden_size))
