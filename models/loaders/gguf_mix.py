"""llama.cpp's tensor-type rules for a GGUF file type (src/llama-quant.cpp, llama_tensor_get_type), the
one place they are written: the test/bench GGUF writer (loaders/gguf_write.py) and the low-bit projections
(compiler/cost/lowbit_mix.py) both take the types from here.

  Q4_0    every linear and token_embd Q4_0, output Q6_K
  Q4_K_M  Q4_K, with attn_v and ffn_down Q6_K in the first and last eighth of the layers and every
          third layer between (use_more_bits), output Q6_K
  Q2_K    Q2_K, attn_v Q4_K (GQA >= 4) or Q3_K, attn_output and ffn_down Q3_K, output Q6_K
  Q8_0    every tensor Q8_0
A model without output.weight (tied embeddings) stores token_embd as the output tensor: Q6_K (Q8_0 for
Q8_0), since token_embd is then the LM head too (llama_tensor_get_type: `name == output.weight ||
(tied && name == token_embd.weight)`, tied = no output.weight among the model's tensors).
A K-quant tensor whose row length is not a multiple of 256 falls back (K_FALLBACK: Q4_K -> Q5_0, Q5_K ->
Q5_1, Q6_K -> Q8_0, Q2_K / Q3_K -> IQ4_NL, a non-linear codebook neither user represents)."""

from __future__ import annotations

from edgellm.errors import CheckpointError
from edgellm.models.loaders.gguf_quants import FORMATS, QK_K

DEFAULT = {"Q4_0": "Q4_0", "Q4_K_M": "Q4_K", "Q2_K": "Q2_K", "Q8_0": "Q8_0"}
K_FALLBACK = {"Q2_K": "IQ4_NL", "Q3_K": "IQ4_NL", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
BLOCK = {t: f[2] for t, f in FORMATS.items()}  # elements a block of each type holds (32 or 256)


def use_more_bits(i: int, n: int) -> bool:
    """Whether layer i of n takes Q4_K_M's extra bits: the first and last eighth, every third between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_type(ftype: str, name: str, layer: int, n_layers: int, n_gqa: int, has_output: bool = True) -> str:
    """The type file type `ftype` gives tensor `name` (attn_q .. ffn_down, token_embd, output) of layer
    `layer` of n_layers in a model of n_gqa query heads a KV head, before any fallback for its row length;
    has_output False (a tied model: no output.weight) gives token_embd the output tensor's type."""
    if ftype not in DEFAULT:
        raise CheckpointError(f"unknown quantization mix {ftype!r} (one of {', '.join(DEFAULT)})")
    if name == "output" or (name == "token_embd" and not has_output):
        return "Q8_0" if ftype == "Q8_0" else "Q6_K"
    if ftype == "Q4_K_M" and name in ("attn_v", "ffn_down") and use_more_bits(layer, n_layers):
        return "Q6_K"
    if ftype == "Q2_K" and name == "attn_v":
        return "Q4_K" if n_gqa >= 4 else "Q3_K"
    if ftype == "Q2_K" and name in ("attn_output", "ffn_down"):
        return "Q3_K"
    return DEFAULT[ftype]


def fallback(t: str, k: int) -> str:
    """The type llama.cpp stores a tensor of type t and row length k in: K_FALLBACK's when t is a K-quant
    and k is not a multiple of 256, t otherwise."""
    return K_FALLBACK[t] if t in K_FALLBACK and k % QK_K else t
