"""Tiny low-bit checkpoints for tests that compile them into projects (tests/test_lowbit_reproject.py): a
llama GGUF with llama.cpp's Q4_K_M mix (Q4_K + Q6_K, Llama-3 rope frequency factors) and a qwen2 GPTQ
directory, each with a small byte-level BPE tokenizer. Test modules import these from here, never from
each other (test_lowbit_project.py builds its three checkpoints from tiny_config and shared_project's
tokenizer_json)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from shared_project import tokenizer_json

from edgellm.models.config import ModelConfig


def tiny_config(vocab: int, arch: str) -> ModelConfig:
    """Tiny llama (Llama-3 rope: frequency factors, as a GGUF's rope_freqs) or qwen2 (q/k/v biases)."""
    rope = tuple(float(f) for f in np.geomspace(1.0, 8.0, 32)) if arch == "llama" else ()
    return ModelConfig(name=f"lb-{arch}", hidden_size=256, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=256,
                       vocab_size=vocab, act="silu", subln=False, rope_theta=10000.0, tied_embeddings=True,
                       max_context=64, bos_id=1, eos_id=2, qkv_bias=arch == "qwen2", rope_freq_factors=rope)


def tiny_checkpoints(d: Path) -> dict[str, Path]:
    """{"llama-Q4_K_M": a GGUF file, "qwen2-gptq": a GPTQ directory (4-bit, group 64)} under d."""
    from tokenizers import Tokenizer

    from edgellm.models.loaders.gguf_write import write_gguf
    from edgellm.models.loaders.gptq_write import save_gptq
    from edgellm.models.random_model import random_float_weights

    tj = tokenizer_json(d)
    vocab = Tokenizer.from_str(tj).get_vocab_size()

    def weights(arch: str, seed: int):  # -> FloatWeights
        fw = random_float_weights(tiny_config(vocab, arch), seed=seed)
        fw.embed = fw.embed / 8
        return fw

    out = {"llama-Q4_K_M": d / "llama-q4km.gguf"}
    write_gguf(out["llama-Q4_K_M"], weights("llama", 1), "llama", "Q4_K_M", tj)
    out["qwen2-gptq"] = save_gptq(d / "gptq", weights("qwen2", 3), "qwen2", 4, 64, False, "gptq",
                                  tokenizer_json=tj)
    return out
