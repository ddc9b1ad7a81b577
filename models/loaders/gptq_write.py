"""Writing GPTQ-format checkpoints by round-to-nearest (test fixtures, the accuracy bench).

Not the GPTQ algorithm (no Hessian-guided rounding): each group of group_size inputs gets AutoGPTQ's
quantizer parameters (asymmetric: xmin = min(w, 0), xmax = max(w, 0), scale = (xmax - xmin) / maxq,
zero = round(-xmin / scale); symmetric: xmax = max(|xmin|, xmax), xmin = -xmax, zero = (maxq + 1) / 2),
the scale rounded to float16, codes q = clamp(round(w / scale) + zero, 0, maxq). Written in the layout
models/loaders/gptq.py reads (checkpoint_format "gptq": zeros stored minus one; "gptq_v2": as they are).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgellm.errors import CheckpointError
from edgellm.models.loaders.gguf_write import FloatWeights
from edgellm.models.loaders.gptq import BITS, FORMATS, PROJ, pack_stream
from edgellm.models.loaders.safetensors_io import write_safetensors

F32 = np.float32


def rtn_gptq(w: np.ndarray, bits: int, group: int, sym: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(out, in) float -> codes uint8 (out, in), float16 scales (groups, out), zeros int (groups, out)."""
    out, k = w.shape
    maxq = (1 << bits) - 1
    wg = np.asarray(w, F32).reshape(out, k // group, group)
    xmin = np.minimum(wg.min(-1), 0.0)
    xmax = np.maximum(wg.max(-1), 0.0)
    if sym:
        xmax = np.maximum(np.abs(xmin), xmax)
        xmin = np.where(xmin < 0, -xmax, xmin)
    dead = (xmin == 0) & (xmax == 0)
    xmin, xmax = np.where(dead, -1.0, xmin), np.where(dead, 1.0, xmax)
    scale = ((xmax - xmin) / maxq).astype(np.float16)
    s32 = scale.astype(F32)
    zero = np.full(scale.shape, (maxq + 1) // 2) if sym else np.rint(-xmin / s32).astype(np.int64)
    q = np.clip(np.rint(wg / s32[..., None]) + zero[..., None], 0, maxq).astype(np.uint8)
    return q.reshape(out, k), scale.T.copy(), zero.T.copy()


def hf_config(fw: FloatWeights, model_type: str, qc: dict) -> dict:
    """config.json of a Llama / Qwen2 model with its quantization_config (rope_scaling from fw.meta)."""
    c = fw.config
    d = {"architectures": ["LlamaForCausalLM" if model_type == "llama" else "Qwen2ForCausalLM"],
         "model_type": model_type, "hidden_size": c.hidden_size, "intermediate_size": c.ffn_size,
         "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads,
         "num_key_value_heads": c.n_kv_heads, "head_dim": c.head_dim, "vocab_size": c.vocab_size,
         "max_position_embeddings": c.max_context, "rms_norm_eps": c.rms_eps, "rope_theta": c.rope_theta,
         "tie_word_embeddings": c.tied_embeddings, "hidden_act": "silu", "bos_token_id": c.bos_id,
         "eos_token_id": c.eos_id, "quantization_config": qc}
    if "rope_scaling" in fw.meta:
        d["rope_scaling"] = fw.meta["rope_scaling"]
    return d


def save_gptq(out_dir: str | os.PathLike, fw: FloatWeights, model_type: str = "llama", bits: int = 4,
              group_size: int = 128, sym: bool = True, fmt: str = "gptq", tokenizer_json: str | None = None
              ) -> Path:
    """Write fw as a GPTQ directory (RTN), atomically (temporary directory, then rename)."""
    if bits not in BITS or fmt not in FORMATS or model_type not in ("llama", "qwen2"):
        raise CheckpointError(f"save_gptq: bits {bits} / checkpoint_format {fmt} / model_type {model_type} "
                              "unsupported")
    c = fw.config
    qc = {"quant_method": "gptq", "bits": bits, "group_size": group_size, "desc_act": False, "sym": sym,
          "checkpoint_format": fmt}
    specs = [("model.embed_tokens.weight", "F32", fw.embed.shape, lambda: np.asarray(fw.embed, F32)),
             ("model.norm.weight", "F32", fw.final_norm.shape, lambda: np.asarray(fw.final_norm, F32))]
    if fw.head is not None:
        specs.append(("lm_head.weight", "F32", fw.head.shape, lambda: np.asarray(fw.head, F32)))
    for i, L in enumerate(fw.layers):
        p = f"model.layers.{i}."
        for key, name in (("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm")):
            specs.append((p + name + ".weight", "F32", L[key].shape, lambda a=L[key]: np.asarray(a, F32)))
        for n, path in PROJ.items():
            w = np.asarray(L[n], F32)
            g = w.shape[1] if group_size == -1 else group_size
            codes, scales, zeros = rtn_gptq(w, bits, g, sym)
            stored = zeros - 1 if fmt == "gptq" else zeros
            qweight = np.ascontiguousarray(pack_stream(codes, bits).T)  # (in * bits / 32, out)
            qzeros = pack_stream(stored, bits)  # (groups, out * bits / 32)
            g_idx = (np.arange(w.shape[1]) // g).astype(np.int32)
            for suffix, tag, arr in (("qweight", "I32", qweight), ("qzeros", "I32", qzeros),
                                     ("scales", "F16", scales), ("g_idx", "I32", g_idx)):
                specs.append((f"{p}{path}.{suffix}", tag, arr.shape, lambda a=arr: a))
            if n in ("q", "k", "v") and c.qkv_bias:
                b = np.asarray(L[f"{n}_bias"], F32)
                specs.append((f"{p}{path}.bias", "F32", b.shape, lambda a=b: a))
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(hf_config(fw, model_type, qc), indent=2) + "\n")
        if tokenizer_json is not None:
            (tmp / "tokenizer.json").write_text(tokenizer_json)
        write_safetensors(tmp / "model.safetensors", specs)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
